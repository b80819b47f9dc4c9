"""Reading in chunks (io/chunks.py): the chunks, put together, are the frame read_wave gives —
values, dtypes, warnings, metadata — for SPSS and CSV files, whatever the chunk size; bad chunk
sizes, truncated files and files changed between the passes are one clear error."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from diaspora_survey.errors import InputFileError
from diaspora_survey.io import read_wave
from diaspora_survey.io.chunks import check_chunk_rows, from_raw, open_chunked

from conftest import REPO, SHARED

ESS = SHARED / "testdata" / "spss" / "Bor_Littvay_TIER_Protocol__ESS5RU.sav"


def _assert_same(path, k, columns=None, **opts):
    whole = read_wave(path, **opts)
    ref = whole.data if columns is None else whole.data[[c for c in whole.data.columns if c in columns]]
    cw = open_chunked(path, k, columns=columns, distinct=list(ref.columns), **opts)
    parts = list(cw.chunks())
    assert all(len(p) <= k for p in parts)
    got = pd.concat(parts)
    pd.testing.assert_frame_equal(got, ref)
    for c in ref.columns:
        pd.testing.assert_series_equal(cw.distinct(c), ref[c].dropna().drop_duplicates().reset_index(drop=True),
                                       check_names=False)
        if pd.api.types.is_float_dtype(ref[c].dtype):
            assert cw.integral(c) == bool((ref[c].dropna() % 1 == 0).all()), c
    assert cw.warnings == whole.warnings
    assert {c: m.type for c, m in cw.meta.items()} == {c: whole.meta[c].type for c in ref.columns}
    assert cw.source.sha256 == whole.source.sha256 and cw.source.n_rows == whole.source.n_rows
    return cw


@pytest.mark.parametrize("name,k", [("2022-03_wave1.sav", 7), ("2022-03_wave1.sav", 10_000),
                                    ("2024-05_wave3.zsav", 333), ("2022-11_wave2.csv", 333),
                                    ("2022-11_wave2.csv", 10_000)])
def test_example_waves_in_chunks_equal_the_whole_file(name, k):
    _assert_same(REPO / "raw" / name, k)


def test_chunks_of_one_row(tmp_path):
    df = pd.DataFrame({"id": [1.0, 2, 3, 4], "x": [1.5, np.nan, 3, 4], "s": ["a", "", "b", "a"],
                       "d": [0.0, 1e10, np.nan, 1.3e10]})
    p = tmp_path / "w.sav"
    pyreadstat.write_sav(df, str(p), variable_format={"d": "DATETIME20"}, missing_ranges={"x": [3]},
                         variable_value_labels={"x": {3: "refused"}})
    cw = _assert_same(p, 1)
    assert cw.meta["x"].missing_values == read_wave(p).meta["x"].missing_values == [3]
    assert cw.meta["x"].value_labels == {3: "refused"}


@pytest.mark.skipif(not ESS.exists(), reason="../shared/testdata/spss/…ESS5RU.sav not found")
def test_real_ess_file_in_chunks():
    cols = ["idno", "agea", "gndr", "edulvla", "mnactic", "emplrel", "emplno", "dweight", "cntry", "inwyr"]
    _assert_same(ESS, 997, columns=cols)


def test_a_date_out_of_range_in_a_later_chunk_keeps_the_column_numeric(tmp_path):
    df = pd.DataFrame({"d": [1.3e10, 1.31e10, 1.32e10, 1e15]})    # the last: beyond year 9999
    p = tmp_path / "d.sav"
    pyreadstat.write_sav(df, str(p), variable_format={"d": "DATETIME20"})
    cw = _assert_same(p, 2)
    assert cw.meta["d"].type == "numeric" and any("outside the range of dates" in w for w in cw.warnings)


CSV_ROWS = [
    # id; numtext; intna; boolna; boolint; dec; decbad; date; datelate; dt; late_text; big; dt_s
    ("1", "1", "5", "True", "True", "1,5", "2,5", "2022-01-01", "2022-01-01", "2022-01-01 10:00:00", "", "1.0",
     "2022-01-01 10:00"),
    ("2", "2", "6", "False", "False", "2,25", "3", "2022-01-02", "2022-01-02", "2022-01-02 11:00:00", "", "2",
     "2022-01-01 10:00:01"),
    ("3", "3", "", "", "True", "3", "4", "2022-01-03", "2022-01-03", "2022-01-03 12:00:00", "", "3.5", ""),
    ("4", "x7", "8", "True", "1", "4,0", "4,5", "2022-01-04", "2022-13-45", "2022-01-04 12:00:00.123456789",
     "a", "4", "2022-01-01 10:00:02"),
    ("5", "5", "9", "False", "False", "", "5.5", "", "2022-01-05", "", "b", "", "2022-01-01 10:00:03"),
]
CSV_HEADER = "id;numtext;intna;boolna;boolint;dec;decbad;date;datelate;dt;late_text;big;dt_s"


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_csv_types_decided_on_the_whole_column(tmp_path, k):
    """A column numeric in the first chunks and text later is text (as written) in every chunk;
    integers with a later empty cell are nullable; decimal commas and dates are decided on every
    value; the date-time resolution is the finest in the column."""
    p = tmp_path / "w.csv"
    p.write_text(CSV_HEADER + "\n" + "\n".join(";".join(r) for r in CSV_ROWS) + "\n", encoding="utf-8")
    cw = _assert_same(p, k)
    whole = read_wave(p).data
    assert whole["numtext"].tolist()[:3] == ["1", "2", "3"] and str(whole["intna"].dtype) == "Int8"
    assert whole["dec"].dtype == np.float64 and whole["decbad"].dtype != np.float64
    assert str(whole["dt"].dtype) == "datetime64[ns]" and whole["datelate"].dtype != whole["date"].dtype
    assert str(whole["dt_s"].dtype) != "datetime64[ns]"
    assert cw.n_rows == 5


def test_csv_with_encoding_and_decimal_comma_given(tmp_path):
    p = tmp_path / "w.csv"
    p.write_bytes("ид;доход\n1;1 250,50\n2;300\n3;\n".encode("cp1251"))
    for k in (1, 2, 5):
        _assert_same(p, k, encoding="cp1251", decimal=",")


def test_csv_beyond_64_bits_with_text_is_refused(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("a,b\n1,1\n18446744073709551615,2\nNA,3\n", encoding="utf-8")
    with pytest.raises(InputFileError) as e:
        open_chunked(p, 1)
    assert e.value.code == "input.chunked_unsupported" and "'a'" in e.value.message


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True, None])
def test_bad_chunk_rows(bad):
    with pytest.raises(InputFileError) as e:
        check_chunk_rows(bad)
    assert "positive whole number" in e.value.message
    with pytest.raises(InputFileError):
        open_chunked(REPO / "raw" / "2022-03_wave1.sav", bad)


def test_truncated_sav_names_the_file_and_the_rows(tmp_path):
    p = tmp_path / "cut.sav"
    data = (REPO / "raw" / "2022-03_wave1.sav").read_bytes()
    p.write_bytes(data[:len(data) - 100])
    with pytest.raises(InputFileError) as e:
        open_chunked(p, 500)
    assert str(p) == e.value.where
    assert "rows 1,501–2,000" in e.value.message and "cannot be read" in e.value.message


def test_a_file_changed_between_the_passes_is_refused(tmp_path):
    p = tmp_path / "w.sav"
    shutil.copy(REPO / "raw" / "2022-03_wave1.sav", p)
    cw = open_chunked(p, 500)
    it = cw.chunks()
    next(it)
    p.write_bytes(p.read_bytes() + b"\0")
    with pytest.raises(InputFileError) as e:
        list(it)
    assert e.value.code in ("input.changed", "input.corrupt")


def test_other_formats_are_not_read_in_chunks_but_can_be_wrapped(tmp_path):
    p = tmp_path / "w.dta"
    pyreadstat.write_dta(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), str(p))
    with pytest.raises(InputFileError) as e:
        open_chunked(p, 2)
    assert "not read in chunks" in e.value.message
    w = read_wave(p)
    cw = from_raw(w, 2, distinct=["a"])
    pd.testing.assert_frame_equal(pd.concat(list(cw.chunks())), w.data)
    assert cw.distinct("a").tolist() == [1, 2, 3]
