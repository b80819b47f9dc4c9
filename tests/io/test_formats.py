"""Dispatch by content, lying suffixes, and every way a file can be unreadable."""
from __future__ import annotations

import builtins
import os

import pandas as pd
import pyreadstat
import pytest

import diaspora_survey as ds
from diaspora_survey.errors import InputFileError
from diaspora_survey.io.detect import sniff_bytes


def _sav(path):
    pyreadstat.write_sav(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), str(path))
    return path


def test_public_api():
    from diaspora_survey.io import RawWave, SourceInfo, VariableMeta, read_wave

    assert RawWave and SourceInfo and VariableMeta

    assert ds.read_wave is read_wave


def test_sav_renamed_csv_is_a_clear_error(tmp_path):
    src = _sav(tmp_path / "a.sav")
    bad = tmp_path / "a.csv"
    bad.write_bytes(src.read_bytes())
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(bad)
    assert "a.csv is not a CSV text file: it looks like an SPSS system file" in str(ei.value)
    assert "rename it to .sav" in ei.value.hint
    # the escape hatch: format= says what it is
    assert ds.read_wave(bad, format="sav").data.shape == (2, 2)


def test_csv_renamed_sav_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.sav"
    bad.write_text("id;q1\n1;2\n", encoding="utf-8")
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(bad)
    assert "x.sav is not an SPSS system file: it looks like a CSV text file" in str(ei.value)
    assert "rename it to .csv" in ei.value.hint
    assert ei.value.code == "input.wrong_format"
    assert ds.read_wave(bad, format="csv").data.shape == (1, 2)


def test_zsav_and_sav_content_wins(tmp_path):
    src = tmp_path / "a.zsav"
    pyreadstat.write_sav(pd.DataFrame({"a": [1.0]}), str(src), compress=True)
    renamed = tmp_path / "b.sav"
    renamed.write_bytes(src.read_bytes())
    w = ds.read_wave(renamed)
    assert w.source.format == "zsav" and any("read by content" in n for n in w.source.notes)


def test_unknown_suffix_uses_content(tmp_path):
    src = _sav(tmp_path / "a.sav")
    other = tmp_path / "a.dat"
    other.write_bytes(src.read_bytes())
    w = ds.read_wave(other)
    assert w.source.format == "sav" and any("unknown suffix" in n for n in w.source.notes)


@pytest.mark.parametrize("head,kind", [(b"$FL2@(#)", "sav"), (b"$FL3@(#)", "zsav"), (b"<stata_dta><header>", "dta"),
                                       (b"\x72\x02\x01\x00", "dta"), (b"PK\x03\x04", "zip"),
                                       (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "xls"), (b"\x1f\x8b\x08", "gzip"),
                                       (b"a,b\n1,2\n", "csv"), (b"", "empty"),
                                       (b"\x00" * 8 + b"ENCRYPTEDSAV", "sav-encrypted")])
def test_sniff(head, kind):
    assert sniff_bytes(head).kind == kind


def test_nonexistent_file(tmp_path):
    (tmp_path / "wave1.sav").write_bytes(b"")
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(tmp_path / "wave_1.sav")
    assert ei.value.code == "input.not_found" and "wave1.sav" in ei.value.hint
    assert "wave_1.sav" in str(ei.value)


def test_directory(tmp_path):
    with pytest.raises(InputFileError, match="folder"):
        ds.read_wave(tmp_path)


def test_empty_file(tmp_path):
    for name in ("e.sav", "e.csv", "e.xlsx"):
        p = tmp_path / name
        p.write_bytes(b"")
        with pytest.raises(InputFileError, match="empty") as ei:
            ds.read_wave(p)
        assert name in str(ei.value)


def test_truncated_sav(tmp_path):
    src = tmp_path / "full.sav"
    pyreadstat.write_sav(pd.DataFrame({"a": [float(i) for i in range(2000)], "s": ["abc"] * 2000}), str(src))
    cut = tmp_path / "cut.sav"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(cut)
    assert "corrupt, truncated or password-protected" in str(ei.value) and "cut.sav" in str(ei.value)


def test_header_only_sav_truncated_in_dictionary(tmp_path):
    src = _sav(tmp_path / "full.sav")
    cut = tmp_path / "cut.sav"
    cut.write_bytes(src.read_bytes()[:300])
    with pytest.raises(InputFileError, match="cut.sav"):
        ds.read_wave(cut)


def test_unreadable_permissions(tmp_path, monkeypatch):
    p = _sav(tmp_path / "locked.sav")
    real_open = builtins.open

    def fake_open(file, *a, **kw):
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(p)
    assert ei.value.code == "input.permission" and "locked.sav" in str(ei.value)


def test_unsupported_formats(tmp_path):
    p = tmp_path / "w.xls"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(InputFileError, match="legacy Excel") as ei:
        ds.read_wave(p)
    assert ".xlsx" in ei.value.hint
    g = tmp_path / "w.csv.gz"
    g.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 100)
    with pytest.raises(InputFileError, match="gzip"):
        ds.read_wave(g)
    z = tmp_path / "w.xlsx"
    z.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputFileError, match="w.xlsx"):
        ds.read_wave(z)


def test_options_honoured_or_rejected(tmp_path):
    p = _sav(tmp_path / "a.sav")
    with pytest.raises(InputFileError, match="unknown option"):
        ds.read_wave(p, delimiter=";")
    with pytest.raises(InputFileError, match="CSV files only"):
        ds.read_wave(p, sep=";")
    with pytest.raises(InputFileError, match="xlsx files only"):
        ds.read_wave(p, sheet=0)
    with pytest.raises(InputFileError, match="processes"):
        ds.read_wave(p, processes=4)
    with pytest.raises(InputFileError, match="unknown format"):
        ds.read_wave(p, format="parquet")
    with pytest.raises(InputFileError, match="chunksize"):
        ds.read_wave(p, chunksize=0)


def test_raw_file_untouched_and_sha256(tmp_path):
    import hashlib

    p = _sav(tmp_path / "a.sav")
    before = p.read_bytes()
    mtime = p.stat().st_mtime_ns
    w = ds.read_wave(p)
    assert p.read_bytes() == before and p.stat().st_mtime_ns == mtime
    assert w.source.sha256 == hashlib.sha256(before).hexdigest()
    assert list(tmp_path.iterdir()) == [p]


def test_broken_symlink(tmp_path):
    link = tmp_path / "wave.sav"
    link.symlink_to(tmp_path / "gone.sav")
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(link)
    assert ei.value.code == "input.not_found" and "symbolic link" in ei.value.message
    assert "wave.sav" not in (ei.value.hint or "")   # never "did you mean" the file itself


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_file_real_permissions(tmp_path):
    p = _sav(tmp_path / "locked.sav")
    p.chmod(0)
    try:
        with pytest.raises(InputFileError) as ei:
            ds.read_wave(p)
        assert ei.value.code == "input.permission" and "chmod" in ei.value.hint
    finally:
        p.chmod(0o644)


def test_spss_encoding_option_validated(tmp_path):
    p = _sav(tmp_path / "a.sav")
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(p, encoding="no-such-codec")
    assert ei.value.code == "input.bad_option" and "a.sav" in str(ei.value)
    # a name Python knows but iconv does not is an encoding error, not "corrupt"
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(p, encoding="hz")
    assert ei.value.code == "input.encoding" and "corrupt" not in ei.value.message
    # Python spellings reach iconv in its spelling (euc_kr → EUC-KR, latin-1 → ISO-8859-1)
    for name in ("euc_kr", "latin-1", "Windows-1251", "cp866", "KOI8-R"):
        assert ds.read_wave(p, encoding=name).data.shape == (2, 2)


def test_stata_tagged_missing_kept_as_codes(tmp_path):
    df = pd.DataFrame({"q": pd.Series([1.0, 2.0, "a", "b", None], dtype=object), "s": ["x", "a", "b", "c", "d"]})
    path = tmp_path / "tag.dta"
    pyreadstat.write_dta(df, str(path), missing_user_values={"q": ["a", "b"]},
                         variable_value_labels={"q": {1: "yes", 2: "no", "a": "refused", "b": "don't know"}})
    w = ds.read_wave(path)
    assert w.data["q"].tolist()[:4] == [1, 2, ".a", ".b"]
    assert w.data["s"].tolist() == ["x", "a", "b", "c", "d"]     # a string column is left alone
    vm = w.meta["q"]
    assert vm.missing_values == [".a", ".b"]
    assert vm.missing_kinds == {".a": "refused", ".b": "dont_know"}
    assert vm.is_user_missing(w.data["q"]).tolist() == [False, False, True, True, False]
