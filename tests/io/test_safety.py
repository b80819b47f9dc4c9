"""Reading hostile raw files (issue 11, items 9, 11, 13)."""
from __future__ import annotations

import os

import pytest

from diaspora_survey.errors import InputFileError
from diaspora_survey.io import read_wave


@pytest.mark.parametrize("bad", [None, 123, 4.5, ["a.csv"]])
def test_read_wave_wrong_types(bad):
    with pytest.raises(InputFileError) as e:
        read_wave(bad)
    assert e.value.code == "input.bad_argument"


def test_a_fifo_raw_file_does_not_hang(tmp_path):
    p = tmp_path / "w.csv"
    os.mkfifo(p)
    with pytest.raises(InputFileError, match="FIFO"):
        read_wave(p)


def test_a_long_first_record_does_not_hide_the_separator(tmp_path):
    """An 11-field header and a data line with a 2 MB value: was 'the header has 1 field'."""
    p = tmp_path / "w.csv"
    head = ";".join(["id"] + [f"c{i}" for i in range(10)])
    p.write_text(head + "\n1;" + "x" * 2_000_000 + ";1;1;1;1;1;1;1;1;1\n2;y;1;1;1;1;1;1;1;1;1\n")
    w = read_wave(p)
    assert w.data.shape == (2, 11)


def test_a_400_digit_number_is_not_an_overflow(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("id,age\n1,30\n2," + "9" * 400 + "\n3,40\n")
    w = read_wave(p)        # read as a value; the codebook's valid_range then flags it
    assert len(w.data) == 3
