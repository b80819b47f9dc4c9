"""``--engine`` / ``[data] engine`` on the example project: weight and estimate through DuckDB
and Dask equal the in-memory commands; bad engines and bad input end in one message, exit 2."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.cli import main


def _copy(repo: Path, dest: Path) -> Path:
    for name in ("raw", "codebooks"):
        shutil.copytree(repo / name, dest / name)
    shutil.copy(repo / "diaspora-survey.toml", dest / "diaspora-survey.toml")
    return dest


@pytest.fixture(scope="module")
def weighted(repo_dir, tmp_path_factory):
    """The example project weighted in memory (the reference) and the harmonised parquet."""
    proj = _copy(repo_dir, tmp_path_factory.mktemp("mem"))
    assert main(["--no-isolate", "weight", "-q", "--project", str(proj)]) == 0
    return proj, pd.read_parquet(proj / "build" / "weighted.parquet")


def _max_rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_weight_engine_duckdb_equals_pandas(weighted, tmp_path, capsys):
    proj, ref = weighted
    out = tmp_path / "w.parquet"
    assert main(["--no-isolate", "weight", "--project", str(proj), "--engine", "duckdb", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "duckdb engine" in text and "Weighting by wave" in text
    got = pd.read_parquet(out)
    assert list(got.columns) == list(ref.columns)
    for c in ("weight_base", "weight_raked", "weight_trimmed", "weight", "weight_pooled"):
        assert _max_rel(got[c], ref[c]) < 1e-10, c
    assert got["education"].dtype == ref["education"].dtype      # ordered categories kept


def test_project_engine_runs_the_weight_step_and_estimate(weighted, tmp_path, capsys):
    proj, ref = weighted
    p2 = _copy(proj, tmp_path / "p")
    toml = p2 / "diaspora-survey.toml"
    toml.write_text(toml.read_text().replace("[harmonise]", '[data]\nengine = "duckdb"\n\n[harmonise]', 1))
    assert main(["--no-isolate", "weight", "-q", "--project", str(p2)]) == 0
    got = pd.read_parquet(p2 / "build" / "weighted.parquet")
    assert _max_rel(got["weight_pooled"], ref["weight_pooled"]) < 1e-10
    capsys.readouterr()
    args = ["estimate", "--mean", "age", "--proportion", "higher_education", "--by", "wave", "--csv",
            "--project"]
    assert main(["--no-isolate", *args, str(p2)]) == 0                       # [data] engine = duckdb
    eng = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert main(["--no-isolate", *args, str(proj), "--engine", "pandas"]) == 0
    mem = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    keys = ["statistic", "wave", "variable", "level"]
    m = mem.merge(eng, on=keys, suffixes=("", "_e"))
    assert len(m) == len(mem) == len(eng)
    for c in ("estimate", "se", "ci_low", "ci_high"):
        ok = m[c].notna()
        assert (m[c].isna() == m[c + "_e"].isna()).all()
        assert _max_rel(m.loc[ok & (m[c] != 0), c + "_e"], m.loc[ok & (m[c] != 0), c]) < 1e-10, c
    assert (m["suppressed"] == m["suppressed_e"]).all()


@pytest.mark.parametrize("args, message", [
    (["weight", "--engine", "spark"], "unknown engine 'spark'"),
    (["estimate", "--mean", "age", "--engine", "nope"], "unknown engine 'nope'"),
    (["estimate", "missing.parquet", "--mean", "age", "--engine", "duckdb"], "no such parquet file"),
    (["estimate", "BAD", "--mean", "age", "--engine", "duckdb"], "cannot read parquet"),
    (["estimate", "W", "--mean", "nope", "--engine", "duckdb"], "'nope' does not exist"),
    (["estimate", "W", "--mean", "age", "--weights", "sex", "--engine", "duckdb"], "not numeric"),
    (["estimate", "W", "--mean", "age", "--weights", "neg", "--engine", "duckdb"], "negative value"),
    (["estimate", "W", "--mean", "age", "--strata", "st", "--weights", "weight", "--engine", "duckdb"],
     "missing (NULL)"),
    (["estimate", "W", "--mean", "resp_id", "--engine", "duckdb"], "identifies respondents"),
])
def test_bad_input_exit_2(weighted, tmp_path, capsys, args, message):
    proj, ref = weighted
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"garbage")
    w = tmp_path / "w.parquet"
    ref.assign(neg=-ref["weight"], st=ref["wave"].astype(str).where(ref.index % 50 != 0)).to_parquet(w)
    args = [{"BAD": str(bad), "W": str(w)}.get(a, a) for a in args]
    rc = main(["--no-isolate", *args, "--project", str(proj)])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err


def test_engine_not_installed(weighted, monkeypatch, capsys):
    proj, _ = weighted
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)        # as if dask were missing
    assert main(["--no-isolate", "weight", "--project", str(proj), "--engine", "dask"]) == 2
    err = capsys.readouterr().err
    assert "dask engine is not installed" in err and "pip install" in err


def test_bad_engine_in_project_file(tmp_path, capsys):
    (tmp_path / "diaspora-survey.toml").write_text('[data]\nengine = "spark"\n')
    assert main(["--no-isolate", "weight", "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "diaspora-survey.toml:2" in err and "data.engine" in err and "Traceback" not in err
    (tmp_path / "diaspora-survey.toml").write_text('[data]\nengines = "duckdb"\n')
    assert main(["--no-isolate", "weight", "--project", str(tmp_path)]) == 2
    assert "unknown key 'data.engines'" in capsys.readouterr().err


def test_estimate_categorical_levels_in_pandas_order(tmp_path, capsys):
    """A parquet written from a pandas Categorical (ordered scale, not alphabetical, an unused
    level): ``estimate --engine duckdb`` prints the pandas engine's table - the same rows in
    the same order (levels and groups in category order), the same numbers to 1e-10."""
    import io

    rng = np.random.default_rng(3)
    n = 900
    edu = ["primary", "secondary", "vocational", "bachelor", "master", "doctorate"]
    df = pd.DataFrame({"education": pd.Categorical(rng.choice(edu[:5], n, p=[.1, .3, .2, .25, .15]),
                                                   categories=edu, ordered=True),
                       "region": pd.Categorical(rng.choice(["south", "north", "east"], n),
                                                categories=["south", "north", "east"]),
                       "h": rng.integers(0, 4, n), "w": rng.gamma(2, 30, n),
                       "age": rng.integers(18, 80, n).astype(float)})
    path = tmp_path / "edu.parquet"
    df.to_parquet(path, row_group_size=400)
    out = {}
    for engine in ("pandas", "duckdb"):
        args = ["--no-isolate", "estimate", str(path), "--proportion", "education", "--mean", "age",
                "--by", "region", "--weights", "w", "--strata", "h", "--csv", "--engine", engine,
                "--project", str(tmp_path)]
        assert main(args) == 0
        out[engine] = pd.read_csv(io.StringIO(capsys.readouterr().out))
    mem, eng = out["pandas"], out["duckdb"]
    labels = [c for c in mem.columns if mem[c].dtype == object or c in ("n", "df", "suppressed")]
    pd.testing.assert_frame_equal(eng[labels], mem[labels])                  # rows in the same order
    assert list(mem.loc[mem.statistic == "proportion", "level"][:6]) == edu
    assert list(mem["region"][:3]) == ["south", "north", "east"]
    pd.testing.assert_frame_equal(eng.drop(columns=labels), mem.drop(columns=labels), rtol=1e-10)
