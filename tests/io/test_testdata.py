"""Every file of ../shared/testdata: good ones read with the README's rows, columns and
value-label sets; bad ones end in one InputFileError naming the file."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import diaspora_survey as ds
from diaspora_survey.errors import InputFileError

from conftest import SHARED

TESTDATA = SHARED / "testdata"


def _readme_table() -> list[tuple[str, int, int, int, str]]:
    """(file, rows, cols, label sets, user-missing column) of the README's SPSS table."""
    readme = TESTDATA / "README.md"
    if not readme.exists():
        return []
    out = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 11 or not cells[0].startswith(("spss/", "bad/")):
            continue
        name, rows, cols, sets, user = cells[0], cells[5], cells[6], cells[7], cells[8]
        if rows == "-":
            continue
        out.append((name, int(rows), int(cols), int(sets), user))
    return out


def _csv_table() -> list[tuple[str, int, int]]:
    readme = TESTDATA / "README.md"
    if not readme.exists():
        return []
    out = []
    for m in re.finditer(r"^\| (csv/\S+) \|.*ok \((\d+), (\d+)\) \|$", readme.read_text(encoding="utf-8"), re.M):
        out.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return out


SPSS_ROWS = _readme_table()
CSV_ROWS = _csv_table()
needs_shared = pytest.mark.skipif(not TESTDATA.is_dir(), reason="../shared/testdata not found")


def label_sets(wave) -> int:
    return len({vm.label_set or id(vm) for vm in wave.meta.values() if vm.value_labels})


@needs_shared
def test_readme_table_parsed():
    assert len(SPSS_ROWS) >= 35
    assert len(CSV_ROWS) == 4


@needs_shared
def test_every_good_file_is_in_the_table():
    listed = {r[0] for r in SPSS_ROWS} | {r[0] for r in CSV_ROWS}
    on_disk = {str(p.relative_to(TESTDATA)) for p in TESTDATA.glob("spss/*.*")} | \
              {str(p.relative_to(TESTDATA)) for p in TESTDATA.glob("csv/*.csv")}
    assert on_disk <= listed


@needs_shared
@pytest.mark.parametrize("name,rows,cols,sets,user", SPSS_ROWS or [("none", 0, 0, 0, "")],
                         ids=[r[0] for r in SPSS_ROWS] or ["no-shared"])
def test_spss_file_matches_readme(name, rows, cols, sets, user):
    w = ds.read_wave(TESTDATA / name)
    assert w.source.n_rows == rows == len(w.data)
    assert w.source.n_columns == cols == w.data.shape[1]
    assert set(w.meta) == set(map(str, w.data.columns))
    assert label_sets(w) == sets
    assert len(w.source.sha256) == 64
    assert w.source.format in ("sav", "zsav", "por")
    if user.startswith("yes"):
        n = int(re.search(r"(\d+) vars", user).group(1))
        assert sum(1 for vm in w.meta.values() if vm.missing_values or vm.missing_ranges) == n
        if "ranges" in user:
            assert any(vm.missing_ranges for vm in w.meta.values())
    elif user == "no":
        assert not any(vm.missing_values or vm.missing_ranges for vm in w.meta.values())
    # value-label keys are ints where integral (pyreadstat gives floats)
    for vm in w.meta.values():
        for k in vm.value_labels:
            assert not (isinstance(k, float) and k.is_integer())


@needs_shared
@pytest.mark.parametrize("name,rows,cols", CSV_ROWS or [("none", 0, 0)], ids=[r[0] for r in CSV_ROWS] or ["no"])
def test_csv_file_matches_readme(name, rows, cols):
    w = ds.read_wave(TESTDATA / name)
    assert (w.source.n_rows, w.source.n_columns) == (rows, cols)
    assert w.source.format == "csv"


# every file of bad/ and spss/bad/, except the one that must be read (with a warning)
BAD_FILES = sorted(str(p.relative_to(TESTDATA)) for p in [*TESTDATA.glob("bad/*"), *TESTDATA.glob("spss/bad/*")]
                   if p.name != "haven__datetime.sav") if TESTDATA.is_dir() else []


def _readme_encodings() -> dict[str, str | None]:
    """file → encoding reported (README column), for the readable SPSS files."""
    readme = TESTDATA / "README.md"
    out = {}
    for line in readme.read_text(encoding="utf-8").splitlines() if readme.exists() else []:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0].startswith("spss/") and cells[5] != "-":
            out[cells[0]] = None if cells[9] == "None" else cells[9]
    return out


@needs_shared
def test_bad_file_list_is_complete():
    assert len(BAD_FILES) >= 5
    assert {"bad/empty_0_bytes.sav", "bad/random_bytes.sav", "bad/truncated60__readspss__electric.sav",
            "bad/mixed_encoding_ragged.csv", "spss/bad/readspss__hotel-encrypted.sav"} <= set(BAD_FILES)


@needs_shared
@pytest.mark.parametrize("name", sorted(_readme_encodings()))
def test_encoding_matches_readme_normalised(name):
    from diaspora_survey.io.encoding import normalise_encoding

    expected = _readme_encodings()[name]
    w = ds.read_wave(TESTDATA / name)
    assert w.source.encoding == normalise_encoding(expected)
    if expected is not None:  # one spelling whatever the file says (WINDOWS-1252, windows-1252 → cp1252)
        assert w.source.encoding == w.source.encoding.lower() and " " not in w.source.encoding


@needs_shared
@pytest.mark.parametrize("name", BAD_FILES or ["none"])
def test_bad_files_raise_one_input_error(name):
    path = TESTDATA / name
    before = path.read_bytes()
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(path)
    err = ei.value
    assert path.name in str(err)
    assert err.hint
    assert path.read_bytes() == before  # raw files are never modified


@needs_shared
def test_encrypted_and_corrupt_say_so():
    for name in ("spss/bad/readspss__hotel-encrypted.sav", "bad/truncated60__readspss__electric.sav",
                 "bad/random_bytes.sav"):
        with pytest.raises(InputFileError) as ei:
            ds.read_wave(TESTDATA / name)
        assert "corrupt, truncated or password-protected (encrypted)" in str(ei.value)
    with pytest.raises(InputFileError, match="password-protected"):
        ds.read_wave(TESTDATA / "spss/bad/readspss__hotel-encrypted.sav")


@needs_shared
def test_mixed_encoding_ragged_names_a_line():
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(TESTDATA / "bad/mixed_encoding_ragged.csv")
    assert re.search(r"mixed_encoding_ragged\.csv:\d+", str(ei.value))
    assert "line" in ei.value.message
    # with the encoding given, the ragged line is what stops it
    with pytest.raises(InputFileError, match=r"line 5 has 3 fields, the header has 5"):
        ds.read_wave(TESTDATA / "bad/mixed_encoding_ragged.csv", encoding="cp1251")


@needs_shared
def test_datetime_overflow_keeps_column_as_numbers():
    w = ds.read_wave(TESTDATA / "spss/bad/haven__datetime.sav")
    assert w.source.n_rows == 2
    assert any("date.posix" in msg and "raw numbers" in msg for msg in w.warnings)
    assert w.data["date.posix"].dtype.kind in "fi"
    assert w.meta["date.posix"].type == "numeric"
    other = [c for c in w.data.columns if c != "date.posix" and w.meta[c].format and "DATE" in w.meta[c].format]
    for c in other:  # the other date columns are still dates
        assert w.data[c].dtype.kind == "M"


@needs_shared
def test_zsav_named_file_that_is_sav_is_read_with_note():
    w = ds.read_wave(TESTDATA / "spss/savreaderwriter__zlib_compressed.zsav")
    assert w.source.format == "sav"
    assert any("content" in n for n in w.source.notes)


@needs_shared
def test_user_missing_discrete_and_ranges_sample_missing():
    w = ds.read_wave(TESTDATA / "spss/pyreadstat__sample_missing.sav")
    assert w.meta["mynum"].missing_values == [-1]
    assert w.meta["mynum"].missing_ranges == [(2000, 3000)]
    assert w.meta["myord"].missing_values == [-1, -2, -3]
    # codes stay visible as values
    assert -1 in set(w.data["myord"].dropna().tolist())
    assert 2500.0 in set(w.data["mynum"].dropna().tolist())
    assert w.meta["myord"].missing_kinds[-1] == "missing"
    assert w.meta["myord"].measure == "ordinal"
    assert w.data["mydate"].dtype.kind == "M"
    assert w.meta["mydate"].type == "date"
    assert str(w.data["mydate"].iloc[0].date()) == "2018-05-06"
    assert w.meta["mytime"].type == "time"
    assert w.data["mytime"].iloc[0] == pd.Timedelta("10:10:10")


@needs_shared
def test_user_missing_ranges_ispss():
    w = ds.read_wave(TESTDATA / "spss/ispss__iSpssData.sav")
    assert w.meta["alter"].missing_ranges == [(-9, -1)] and w.meta["alter"].missing_values == []
    assert w.meta["nudelso"].missing_values == [-9]
    assert w.meta["groe"].missing_values == [-9, -8, -7]
    # the codes stay visible in the data and are recognised as user-missing
    assert {-8, -9} <= set(w.data["alter"].tolist())
    assert w.meta["alter"].is_user_missing(w.data["alter"]).sum() == (w.data["alter"] < 0).sum() == 2


@needs_shared
def test_encoding_spellings_normalised():
    encs = {ds.read_wave(TESTDATA / f).source.encoding
            for f in ("spss/readspss__electric.sav", "spss/pyreadstat__sample.sav")}
    assert encs == {"cp1252"}  # WINDOWS-1252 and windows-1252 → one spelling
    assert ds.read_wave(TESTDATA / "spss/readspss__hotel.sav").source.encoding == "utf-8"


@needs_shared
def test_por_rejects_encoding_and_reads_without():
    w = ds.read_wave(TESTDATA / "spss/pyreadstat__sample.por")
    assert w.source.format == "por" and w.source.encoding is None
    with pytest.raises(InputFileError, match="portable"):
        ds.read_wave(TESTDATA / "spss/pyreadstat__sample.por", encoding="cp1251")


@needs_shared
def test_sav_por_zsav_csv_agree():
    sav = ds.read_wave(TESTDATA / "spss/pyreadstat__sample.sav").data
    zsav = ds.read_wave(TESTDATA / "spss/pyreadstat__sample.zsav").data
    por = ds.read_wave(TESTDATA / "spss/pyreadstat__sample.por").data
    csv = ds.read_wave(TESTDATA / "csv/pyreadstat__sample.csv").data
    pd.testing.assert_frame_equal(sav, zsav)
    assert list(por.columns) == [c.upper() for c in sav.columns]
    np.testing.assert_allclose(sav["mynum"], csv["mynum"])
    assert (sav["mylabl"].to_numpy() == csv["mylabl"].to_numpy()).all()
    pd.testing.assert_series_equal(sav["mydate"], csv["mydate"])


@needs_shared
def test_real_survey_files_are_not_copied_into_the_repository(repo_dir):
    """ESS and BES extracts carry their publishers' terms: tests read them in ../shared only."""
    import hashlib
    import os

    real = [TESTDATA / "spss/Bor_Littvay_TIER_Protocol__ESS5RU.sav", TESTDATA / "spss/scgUtils__survey.sav"]
    sizes = {p.stat().st_size: hashlib.sha256(p.read_bytes()).hexdigest() for p in real}
    for root, dirs, files in os.walk(repo_dir):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "node_modules", "__pycache__")]
        for f in files:
            p = os.path.join(root, f)
            try:
                size = os.path.getsize(p)
            except OSError:
                continue
            if size in sizes:
                with open(p, "rb") as fh:
                    assert hashlib.sha256(fh.read()).hexdigest() != sizes[size], f"{p} is a copy of a real survey file"
    names = {p.name for p in real} | {"ESS5RU.sav", "survey.sav"}
    for root, dirs, files in os.walk(repo_dir):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "__pycache__")]
        assert not names & set(files), root


@needs_shared
def test_real_surveys_read_in_place():
    ess = ds.read_wave(TESTDATA / "spss/Bor_Littvay_TIER_Protocol__ESS5RU.sav")
    assert ess.source.n_columns == 673
    kinds = {k for vm in ess.meta.values() for k in vm.missing_kinds.values()}
    assert {"refused", "dont_know", "no_answer"} <= kinds
    bes = ds.read_wave(TESTDATA / "spss/scgUtils__survey.sav", columns=None)
    assert bes.source.n_rows == 5000


@needs_shared
def test_oracle_apiclus1_sav_vs_csv(shared_dir):
    sav = ds.read_wave(shared_dir / "oracle/data/apiclus1.sav")
    csv = ds.read_wave(shared_dir / "oracle/data/apiclus1.csv")
    assert sav.data.shape == csv.data.shape
    vm = sav.meta["acs_k3"]
    assert -9 in vm.missing_values
    n_user = int(vm.is_user_missing(sav.data["acs_k3"]).sum())
    assert n_user > 0
    # the user-missing code is visible in the data, and is NA in the CSV export
    assert (sav.data["acs_k3"] == -9).sum() == n_user
    assert csv.data["acs_k3"].isna().sum() >= n_user
    np.testing.assert_allclose(sav.data["pw"].to_numpy(float), csv.data["pw"].to_numpy(float))
