"""Round trips through files written in tmp_path: SPSS (.sav/.zsav) with Cyrillic labels and
user-missing codes, Stata, Excel; the parallel and chunked readers against the plain one."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyreadstat
import pytest

import diaspora_survey as ds
from diaspora_survey.errors import InputFileError
from diaspora_survey.io import spss as spss_mod


def _survey(n=200, seed=1):
    rng = np.random.default_rng(seed)
    edu = rng.choice([1, 2, 3, 4, 98, 99], size=n).astype(float)
    df = pd.DataFrame({
        "id": np.arange(1, n + 1, dtype=float),
        "sex": rng.choice([1.0, 2.0], size=n),
        "edu": edu,
        "income": np.round(rng.lognormal(7, 0.5, n), 2),
        "w": rng.uniform(0.2, 3.0, n),
        "city": rng.choice(["Тбилиси", "Ереван", "Белград", ""], size=n),
        "departed": [dt.date(2022, 3, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 600, n)],
    })
    df.loc[5, "income"] = np.nan
    return df


def _write_sav(path, df, **kw):
    pyreadstat.write_sav(
        df, str(path),
        column_labels={"sex": "Пол", "edu": "Образование", "income": "Доход, евро", "w": "Вес",
                       "city": "Город", "departed": "Дата отъезда"},
        variable_value_labels={"sex": {1: "Мужской", 2: "Женский"},
                               "edu": {1: "Среднее", 2: "Среднее профессиональное", 3: "Высшее",
                                       4: "Аспирантура", 98: "Затрудняюсь ответить", 99: "Отказ от ответа"}},
        missing_ranges={"edu": [98, 99], "income": [{"lo": 900000, "hi": 999999}]},
        variable_measure={"sex": "nominal", "edu": "ordinal", "income": "scale"},
        file_label="synthetic test file", **kw)


@pytest.mark.parametrize("suffix,compress", [(".sav", False), (".zsav", True)])
def test_spss_round_trip_cyrillic_user_missing(tmp_path, suffix, compress):
    df = _survey()
    path = tmp_path / f"wave{suffix}"
    _write_sav(path, df, compress=compress)
    before = path.read_bytes()
    w = ds.read_wave(path)
    assert path.read_bytes() == before
    assert w.source.format == suffix[1:]
    assert w.source.encoding == "utf-8"
    assert w.source.file_label == "synthetic test file"
    assert w.source.n_rows == 200 and w.source.n_columns == 7
    m = w.meta["edu"]
    assert m.label == "Образование"
    assert m.value_labels[98] == "Затрудняюсь ответить" and all(isinstance(k, int) for k in m.value_labels)
    assert m.missing_values == [98, 99]
    assert m.missing_kinds == {98: "dont_know", 99: "refused"}
    assert m.measure == "ordinal"
    assert w.meta["income"].missing_ranges == [(900000, 999999)]
    # raw codes, user-missing kept as values
    assert set(w.data["edu"].unique()) == {1, 2, 3, 4, 98, 99}
    assert w.data["edu"].dtype == np.int8
    assert (w.data["edu"].to_numpy() == df["edu"].to_numpy()).all()
    assert m.is_user_missing(w.data["edu"]).sum() == df["edu"].isin([98, 99]).sum()
    # floats stay float64 and exact
    assert w.data["w"].dtype == np.float64
    np.testing.assert_array_equal(w.data["w"].to_numpy(), df["w"].to_numpy())
    assert w.data["income"].isna().sum() == 1
    # strings and dates
    assert w.data["city"].tolist() == df["city"].tolist()
    assert w.meta["departed"].type == "date"
    assert w.data["departed"].dtype.kind == "M"
    assert [d.date() for d in w.data["departed"]] == df["departed"].tolist()


def test_columns_selected_in_order(tmp_path):
    path = tmp_path / "w.sav"
    _write_sav(path, _survey())
    w = ds.read_wave(path, columns=["w", "edu"])
    assert list(w.data.columns) == ["w", "edu"] and list(w.meta) == ["w", "edu"]
    with pytest.raises(InputFileError, match="no such column") as ei:
        ds.read_wave(path, columns=["eud"])
    assert "edu" in ei.value.hint


def test_encoding_override_for_wrongly_declared_code_page(tmp_path):
    """Old Russian files declare the wrong code page: a warning says so, encoding= fixes them."""
    df = pd.DataFrame({"q1": [1.0, 2.0, 98.0]})
    path = tmp_path / "old.sav"
    label = "Затрудняюсь ответить"
    pyreadstat.write_sav(df, str(path), column_labels={"q1": "Образование"},
                         variable_value_labels={"q1": {98: label}}, missing_ranges={"q1": [98]})
    raw = path.read_bytes()
    # declare WINDOWS-1252 (character-encoding record, subtype 20) but store Windows-1251 bytes
    record = b"\x07\x00\x00\x00\x14\x00\x00\x00\x01\x00\x00\x00"
    assert record + b"\x05\x00\x00\x00UTF-8" in raw
    raw = raw.replace(record + b"\x05\x00\x00\x00UTF-8", record + b"\x0c\x00\x00\x00WINDOWS-1252")
    for text in ("Образование", label):
        raw = raw.replace(text.encode("utf-8"), text.encode("cp1251").ljust(len(text.encode("utf-8")), b" "))
    path.write_bytes(raw)
    bad = ds.read_wave(path)
    assert bad.source.encoding == "cp1252"
    assert bad.meta["q1"].label.strip() == "Îáðàçîâàíèå"      # mojibake, as declared
    assert any("WINDOWS-1251" in x and "Russian" in x for x in bad.warnings), bad.warnings
    w = ds.read_wave(path, encoding="WINDOWS-1251")
    assert w.source.encoding == "cp1251" and not w.warnings
    assert any("encoding cp1251 (given); the file declares cp1252" in n for n in w.source.notes), w.source.notes
    assert w.meta["q1"].label.strip() == "Образование"
    assert w.meta["q1"].value_labels[98].strip() == label
    assert w.meta["q1"].missing_kinds[98] == "dont_know"


def _big(n=6000):
    rng = np.random.default_rng(7)
    df = pd.DataFrame({f"q{i}": rng.integers(1, 6, n).astype(float) for i in range(6)})
    df["x"] = rng.normal(size=n)
    df.loc[::17, "x"] = np.nan
    df["s"] = [f"id{i:05d}" for i in range(n)]
    df["d"] = [dt.date(2020, 1, 1) + dt.timedelta(days=i % 900) for i in range(n)]
    df["q0"] = df["q0"].where(df.index % 11 != 0, 99)
    return df


@pytest.fixture(params=["fork", "spawn"])
def helper_mode(request, monkeypatch):
    """Both ways of starting the second process: os.fork, or a fresh interpreter (no fork)."""
    monkeypatch.setattr(spss_mod, "_can_fork", lambda: request.param == "fork")
    return request.param


@pytest.mark.parametrize("compress", [False, True])
def test_parallel_and_chunked_reads_equal_plain(tmp_path, compress, helper_mode):
    df = _big()
    path = tmp_path / ("big.zsav" if compress else "big.sav")
    pyreadstat.write_sav(df, str(path), missing_ranges={"q0": [99]}, compress=compress,
                         variable_value_labels={"q1": {1: "a", 5: "e"}})
    plain = ds.read_wave(path, processes=1)
    par = ds.read_wave(path, processes=2)
    chunked = ds.read_wave(path, processes=1, chunksize=1000, progress=False)
    chunked_par = ds.read_wave(path, processes=2, chunksize=700, progress=True)
    assert any("2 processes" in n for n in par.source.notes), par.source.notes
    for other in (par, chunked, chunked_par):
        pd.testing.assert_frame_equal(plain.data, other.data)
        assert other.meta == plain.meta
    assert par.meta["q0"].missing_values == [99]  # metadata from the single metadata read (#146)
    assert any(("forked helper" in n) == (helper_mode == "fork") for n in par.source.notes if "2 processes" in n)
    # the values themselves, not only the agreement of our readers
    np.testing.assert_array_equal(par.data["x"].to_numpy(), df["x"].to_numpy())
    assert par.data["s"].tolist() == df["s"].tolist()


def test_parallel_without_shared_memory(tmp_path, monkeypatch):
    df = _big(3000)
    path = tmp_path / "b.sav"
    pyreadstat.write_sav(df, str(path))
    monkeypatch.setattr(spss_mod, "_can_fork", lambda: False)
    monkeypatch.setattr(spss_mod, "_shm_file", lambda nbytes: None)
    a = ds.read_wave(path, processes=2)
    b = ds.read_wave(path, processes=1)
    pd.testing.assert_frame_equal(a.data, b.data)


def test_parallel_helper_failure_falls_back(tmp_path, monkeypatch):
    df = _big(3000)
    path = tmp_path / "b.sav"
    pyreadstat.write_sav(df, str(path))
    import subprocess

    real = subprocess.Popen

    def broken(args, **kw):
        return real([args[0], "-c", "import sys; sys.stdin.read(); sys.exit(3)"], **kw)

    monkeypatch.setattr(spss_mod, "_can_fork", lambda: False)
    monkeypatch.setattr(spss_mod.subprocess, "Popen", broken)
    a = ds.read_wave(path, processes=2)
    assert any("helper process failed" in n for n in a.source.notes)
    pd.testing.assert_frame_equal(a.data, ds.read_wave(path, processes=1).data)


def _in_forked_helper(action, monkeypatch):
    """Make the forked helper (rows from the middle on, another pid) fail with ``action``."""
    import os

    from diaspora_survey.io import _sav_worker

    parent, real = os.getpid(), _sav_worker.read_range

    def read_range(reader, path, kwargs, start, stop, *a, **kw):
        if os.getpid() != parent and start > 0:
            action()
        return real(reader, path, kwargs, start, stop, *a, **kw)

    monkeypatch.setattr(spss_mod, "_can_fork", lambda: True)
    monkeypatch.setattr(_sav_worker, "read_range", read_range)


def test_forked_helper_failure_falls_back(tmp_path, monkeypatch):
    path = tmp_path / "b.sav"
    pyreadstat.write_sav(_big(3000), str(path))
    plain = ds.read_wave(path, processes=1)

    def fail():
        raise RuntimeError("helper broke")

    _in_forked_helper(fail, monkeypatch)
    a = ds.read_wave(path, processes=2)
    assert any("helper process failed" in n and "helper broke" in n for n in a.source.notes), a.source.notes
    pd.testing.assert_frame_equal(a.data, plain.data)


def test_forked_helper_crash_is_one_input_error(tmp_path, monkeypatch):
    import os
    import signal

    path = tmp_path / "b.sav"
    pyreadstat.write_sav(_big(3000), str(path))
    _in_forked_helper(lambda: os.kill(os.getpid(), signal.SIGSEGV), monkeypatch)
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(path, processes=2)
    assert ei.value.code == "input.crash" and "b.sav" in str(ei.value) and "SIGSEGV" in ei.value.message


def test_compact_false_keeps_float64(tmp_path):
    path = tmp_path / "w.sav"
    _write_sav(path, _survey())
    w = ds.read_wave(path, compact=False)
    assert w.data["edu"].dtype == np.float64


def test_stata_round_trip(tmp_path):
    df = pd.DataFrame({"sex": [1, 2, 2, 1], "age": [31, 45, 28, 60], "w": [0.5, 1.25, 2.0, 0.75],
                       "country": ["GE", "AM", "RS", "DE"],
                       "born": [dt.datetime(1990, 1, 2), dt.datetime(1979, 5, 6), dt.datetime(1996, 7, 8),
                                dt.datetime(1964, 9, 10)]})
    path = tmp_path / "w.dta"
    pyreadstat.write_dta(df, str(path), column_labels=["Пол", "Возраст", "Вес", "Страна", "Дата рождения"],
                         variable_value_labels={"sex": {1: "Мужской", 2: "Женский"}})
    w = ds.read_wave(path)
    assert w.source.format == "dta"
    assert w.meta["sex"].value_labels == {1: "Мужской", 2: "Женский"}
    assert w.meta["age"].label == "Возраст"
    assert w.data["age"].tolist() == [31, 45, 28, 60]
    assert w.data["w"].dtype == np.float64
    assert w.data["country"].tolist() == ["GE", "AM", "RS", "DE"]
    assert w.data["born"].dtype.kind == "M"
    assert w.data["born"].iloc[1] == pd.Timestamp("1979-05-06")
    with pytest.raises(InputFileError, match="1 or 2|only"):
        ds.read_wave(path, processes=2)


def test_xlsx_round_trip(tmp_path):
    df = pd.DataFrame({"id": [1, 2, 3], "страна": ["Грузия", "Армения", None], "w": [1.5, 0.25, 2.0],
                       "date": pd.to_datetime(["2022-03-01", "2022-10-01", "2023-05-01"])})
    path = tmp_path / "w.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        df.to_excel(xw, sheet_name="wave", index=False)
        pd.DataFrame({"a": [1]}).to_excel(xw, sheet_name="notes", index=False)
    w = ds.read_wave(path)
    assert w.source.format == "xlsx" and w.source.n_rows == 3
    assert w.data["id"].dtype == np.int8
    assert w.data["страна"].tolist()[:2] == ["Грузия", "Армения"]
    assert w.data["w"].tolist() == [1.5, 0.25, 2.0]
    assert w.meta["date"].type == "date"
    assert ds.read_wave(path, sheet="notes").data.shape == (1, 1)
    assert ds.read_wave(path, sheet=1).data.shape == (1, 1)
    with pytest.raises(InputFileError, match="no sheet"):
        ds.read_wave(path, sheet="nope")


def test_large_file_hash_and_no_thread_left(tmp_path, helper_mode):
    """A file above the background-hashing size: sha256 right, helper and hashing thread gone."""
    import hashlib
    import threading

    n = 120_000
    rng = np.random.default_rng(5)
    df = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(9)})
    df["s"] = np.where(rng.random(n) < 0.5, "Грузия", "Армения")
    path = tmp_path / "large.sav"
    pyreadstat.write_sav(df, str(path))
    assert path.stat().st_size > 8 << 20
    before = threading.active_count()
    w = ds.read_wave(path, processes=2)
    assert threading.active_count() == before
    assert w.source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(w.data["x3"].to_numpy(), df["x3"].to_numpy())
    assert w.data["s"].tolist() == df["s"].tolist()


def test_chunks_grow_so_that_metadata_re_parsing_stays_small(monkeypatch):
    """pyreadstat re-parses the dictionary per chunk (#285): after the first chunk, chunks are
    sized so that this costs at most ~5 % (simulated clock: 0.1 s per parse, 1 ms per row)."""
    from diaspora_survey.io import _sav_worker

    clock = [0.0]
    calls = []

    def fake_reader(path, row_offset, row_limit, **kw):
        calls.append(row_limit)
        n = min(row_limit, 10_000 - row_offset)
        clock[0] += 0.1 + 0.001 * n
        return pd.DataFrame({"x": np.arange(row_offset, row_offset + n, dtype=float)}), None

    monkeypatch.setattr(_sav_worker.time, "perf_counter", lambda: clock[0])
    arrays = {"x": np.empty(10_000)}
    got = _sav_worker.read_range(fake_reader, "f", {}, 0, 10_000, 100, arrays, {}, {}, None, meta_seconds=0.1)
    assert got == 10_000 and (arrays["x"] == np.arange(10_000)).all()
    assert calls[0] == 100 and calls[1] >= 2000 and len(calls) <= 6
    calls.clear()
    _sav_worker.read_range(fake_reader, "f", {}, 0, 10_000, 100, {"x": np.empty(10_000)}, {}, {}, None)
    assert calls == [100] * 100   # without meta_seconds (a chunksize given): exactly as asked


def test_converted_columns_give_their_shared_pages_back(tmp_path, monkeypatch):
    """After a 2-process read the shared mapping keeps only the float64 columns' pages."""
    import re
    from pathlib import Path

    status = Path("/proc/self/status")
    if not status.exists() or "RssShmem" not in status.read_text():
        pytest.skip("no /proc/self/status RssShmem here")

    def shmem_kb():
        return int(re.search(r"RssShmem:\s+(\d+)", status.read_text()).group(1))

    monkeypatch.setattr(spss_mod, "_can_fork", lambda: True)
    n = 200_000
    rng = np.random.default_rng(2)
    df = pd.DataFrame({f"q{i}": rng.integers(1, 6, n).astype(float) for i in range(12)})
    df["x"] = rng.normal(size=n)
    path = tmp_path / "w.sav"
    pyreadstat.write_sav(df, str(path))
    before = shmem_kb()
    w = ds.read_wave(path, processes=2)
    grown = shmem_kb() - before
    assert any("forked helper" in x for x in w.source.notes)
    assert (w.data.dtypes == np.int8).sum() == 12
    np.testing.assert_array_equal(w.data["x"].to_numpy(), df["x"].to_numpy())
    np.testing.assert_array_equal(w.data["q7"].to_numpy(), df["q7"].to_numpy())
    assert grown < 3 * n * 8 // 1024          # one float column (+ page slack), not 13
