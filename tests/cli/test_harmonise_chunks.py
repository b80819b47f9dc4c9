"""``harmonise --chunk-rows N`` and ``[data] chunk_rows``: the same parquet files as harmonising in
memory (rows, dtypes, categories, attrs, Arrow schema), written as row groups; bad sizes, a
truncated wave and a stop mid-way end in one message with nothing written; the engine weight
step reads the chunked file without pandas loading it."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from diaspora_survey.cli import main


def _copy(repo: Path, dest: Path) -> Path:
    for name in ("raw", "codebooks"):
        shutil.copytree(repo / name, dest / name)
    shutil.copy(repo / "diaspora-survey.toml", dest / "diaspora-survey.toml")
    return dest


def _set_data(proj: Path, text: str) -> None:
    toml = proj / "diaspora-survey.toml"
    toml.write_text(toml.read_text().replace("[harmonise]", f"[data]\n{text}\n\n[harmonise]", 1))


@pytest.fixture(scope="module")
def reference(repo_dir, tmp_path_factory):
    """The example project harmonised in memory: its two parquet files and the printed summary."""
    proj = _copy(repo_dir, tmp_path_factory.mktemp("mem"))
    out = proj / "ref" / "harmonised.parquet"
    assert main(["--no-isolate", "harmonise", "--project", str(proj), "-o", str(out)]) == 0
    return proj, out


def _same_files(a: Path, b: Path) -> None:
    for name in (a.name, "exclusions.parquet"):
        x, y = pd.read_parquet(a.with_name(name)), pd.read_parquet(b.with_name(name))
        pd.testing.assert_frame_equal(x, y)
        assert x.attrs == y.attrs
        assert pq.read_schema(a.with_name(name)).equals(pq.read_schema(b.with_name(name)), check_metadata=True)


def test_chunk_rows_option_gives_the_same_parquet(reference, tmp_path, capsys):
    proj, ref = reference
    capsys.readouterr()
    out = tmp_path / "c" / "harmonised.parquet"
    assert main(["--no-isolate", "harmonise", "--project", str(proj), "--chunk-rows", "1000", "-o", str(out)]) == 0
    _same_files(ref, out)
    assert pd.read_parquet(ref).attrs["source_rows"]["2022-03"][0] == 2000
    # one row group per chunk of each wave: 2000, 5000 and 1500 rows in chunks of 1000
    assert pq.ParquetFile(out).metadata.num_row_groups == 2 + 5 + 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["exclusions.parquet", "harmonised.parquet"]


def test_printed_summary_is_the_same(reference, tmp_path, capsys):
    proj, _ = reference
    capsys.readouterr()
    assert main(["--no-isolate", "harmonise", "--project", str(proj), "-o", str(tmp_path / "a.parquet")]) == 0
    whole = capsys.readouterr().out
    assert main(["--no-isolate", "harmonise", "--project", str(proj), "--chunk-rows", "777",
                 "-o", str(tmp_path / "b.parquet")]) == 0
    chunked = capsys.readouterr().out
    assert whole.replace("a.parquet", "b.parquet") == chunked
    assert "Issues" in whole and "excluded" in whole


def test_project_setting_chunk_rows(reference, tmp_path):
    proj, ref = reference
    p2 = _copy(proj, tmp_path / "p")
    _set_data(p2, "chunk_rows = 700")
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2)]) == 0
    out = p2 / "build" / "harmonised.parquet"
    _same_files(ref, out)
    assert pq.ParquetFile(out).metadata.num_row_groups == 3 + 8 + 3
    # the option overrides the project file
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2), "--chunk-rows", "5000"]) == 0
    assert pq.ParquetFile(out).metadata.num_row_groups == 3


@pytest.mark.parametrize("value", ["0", "-5", "1.5", '"1000"', "true"])
def test_bad_chunk_rows_in_the_project_file(reference, tmp_path, capsys, value):
    proj, _ = reference
    p2 = _copy(proj, tmp_path / "p")
    _set_data(p2, f"chunk_rows = {value}")
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2)]) == 2
    err = capsys.readouterr().err
    assert "chunk_rows" in err and "positive whole number" in err and "Traceback" not in err
    assert "diaspora-survey.toml:" in err
    assert not (p2 / "build").exists()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "2.5"])
def test_bad_chunk_rows_option(reference, capsys, value):
    proj, _ = reference
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(proj), "--chunk-rows", value]) == 2
    err = capsys.readouterr().err
    assert "--chunk-rows" in err and "Traceback" not in err


def test_truncated_wave_names_file_and_rows_and_leaves_no_output(reference, tmp_path, capsys):
    proj, _ = reference
    p2 = _copy(proj, tmp_path / "p")
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2)]) == 0
    build = p2 / "build"
    before = {p.name: p.read_bytes() for p in build.iterdir()}
    wave = p2 / "raw" / "2024-05_wave3.zsav"
    data = wave.read_bytes()
    wave.chmod(0o644)
    wave.write_bytes(data[:len(data) * 2 // 3])
    capsys.readouterr()
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2), "--chunk-rows", "400"]) == 2
    err = capsys.readouterr().err
    assert "2024-05_wave3.zsav" in err and "rows " in err and "cannot be read" in err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in build.iterdir()} == before      # old outputs, no temp file


def test_a_stop_while_writing_leaves_no_output(reference, tmp_path, monkeypatch, capsys):
    proj, _ = reference
    p2 = _copy(proj, tmp_path / "p")
    calls = {"n": 0}
    real = pq.ParquetWriter.write_table

    def stop_on_third(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", stop_on_third)
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2), "--chunk-rows", "1000"]) == 130
    assert calls["n"] == 3
    build = p2 / "build"
    assert not build.exists() or list(build.iterdir()) == []


def test_engine_weight_reads_the_chunked_file_without_pandas(reference, tmp_path, monkeypatch, capsys):
    """[data] engine = "duckdb" + chunk_rows: `weight` harmonises in chunks, then rakes in DuckDB;
    pandas never loads the harmonised file; the weights equal the in-memory weight step's."""
    proj, _ = reference
    mem = _copy(proj, tmp_path / "mem")
    assert main(["--no-isolate", "weight", "-q", "--project", str(mem)]) == 0
    want = pd.read_parquet(mem / "build" / "weighted.parquet")

    p2 = _copy(proj, tmp_path / "p")
    _set_data(p2, 'engine = "duckdb"\nchunk_rows = 600')
    read = []
    real = pd.read_parquet

    def spy(path, *a, **k):
        read.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(pd, "read_parquet", spy)
    assert main(["--no-isolate", "weight", "-q", "--project", str(p2)]) == 0
    assert "harmonised.parquet" not in read
    monkeypatch.setattr(pd, "read_parquet", real)
    assert pq.ParquetFile(p2 / "build" / "harmonised.parquet").metadata.num_row_groups > 3
    got = pd.read_parquet(p2 / "build" / "weighted.parquet")
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    for c in ("weight", "weight_pooled"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-10, atol=0)


def test_a_full_disk_while_writing_chunks_keeps_the_old_outputs(reference, tmp_path, monkeypatch, capsys):
    import errno

    proj, _ = reference
    p2 = _copy(proj, tmp_path / "p")
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2)]) == 0
    build = p2 / "build"
    before = {p.name: p.read_bytes() for p in build.iterdir()}
    real = pq.ParquetWriter.write_table
    calls = {"n": 0}

    def full(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    capsys.readouterr()
    assert main(["--no-isolate", "harmonise", "-q", "--project", str(p2), "--chunk-rows", "1000"]) == 2
    err = capsys.readouterr().err
    assert "output.disk_full" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in build.iterdir()} == before
