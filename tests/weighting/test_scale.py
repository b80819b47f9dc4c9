"""Weighting at scale (weighting/scale.py): the engines' weights equal the in-memory ones.

The reference is the in-memory rake / poststratify of this package (itself checked against
R's survey::rake / postStratify in test_oracle.py), run on the same generated rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import EngineError, WeightingError
from diaspora_survey.weighting import poststratify, rake
from diaspora_survey.weighting.scale import poststratify_source, rake_source

TARGETS = {"sex": {"female": 0.52, "male": 0.48},
           "age_group": {"18-29": 0.3, "30-44": 0.4, "45+": 0.3},
           "region": {"1": 0.2, "2": 0.5, "3": 0.3}}
JOINT = {"sex:age_group": {"female:18-29": 160, "female:30-44": 200, "female:45+": 160,
                           "male:18-29": 140, "male:30-44": 190, "male:45+": 150}}


def make(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "resp_id": [f"r{i}" for i in range(n)],
        "sex": pd.Categorical(rng.choice(["female", "male"], n, p=[0.6, 0.4]),
                              categories=["female", "male", "other"]),
        "age_group": pd.Categorical(rng.choice(["18-29", "30-44", "45+"], n, p=[0.5, 0.3, 0.2]),
                                    categories=["18-29", "30-44", "45+"], ordered=True),
        "region": rng.choice([1, 2, 3], n),
        "age": pd.array(rng.integers(18, 80, n), dtype="Int64"),
        "w0": rng.uniform(0.5, 3.0, n),
    })
    df.loc[::97, "age"] = pd.NA
    return df


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("scale")
    df = make()
    path = d / "in.parquet"
    df.to_parquet(path, index=False, row_group_size=700)
    return df, path


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def rel_diff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _source(engine, path, client):
    return path, client if engine == "dask" else None


@pytest.mark.parametrize("engine", ["duckdb", "dask"])
@pytest.mark.parametrize("base", [None, "w0"])
def test_rake_equals_in_memory(data, tmp_path, engine, base, request):
    df, path = data
    cl = request.getfixturevalue("client") if engine == "dask" else None
    src, cl = _source(engine, path, cl)
    out = tmp_path / "out.parquet"
    res = rake_source(src, TARGETS, base, out=out, engine=engine, client=cl)
    mem = rake(df, TARGETS, base)
    got = pd.read_parquet(out)
    assert list(got["resp_id"]) == list(df["resp_id"])            # rows keep their order
    assert rel_diff(got["weight"], mem.weights) < 1e-10
    assert rel_diff(got["weight_raked"], mem.weights) < 1e-10
    assert rel_diff(got["weight_base"], mem.steps["weight_base"]) < 1e-15
    # the input's schema is kept: categories (with their order), nullable integers
    pd.testing.assert_frame_equal(got[df.columns.tolist()], df)
    d, m = res.diagnostics, mem.diagnostics
    assert d.iterations == m.iterations and d.converged
    for k in ("n", "sum", "n_eff", "kish_deff", "cv", "min", "p1", "median", "p99", "max"):
        assert d[k] == pytest.approx(m[k], rel=1e-10), k
    for k in ("n", "sum", "n_eff", "min", "median", "max"):
        assert d.summary_before[k] == pytest.approx(m.summary_before[k], rel=1e-10), k
    pd.testing.assert_frame_equal(d.margins, m.margins, rtol=1e-10)


@pytest.mark.parametrize("engine", ["duckdb", "dask"])
def test_poststratify_equals_in_memory(data, tmp_path, engine, request):
    df, path = data
    cl = request.getfixturevalue("client") if engine == "dask" else None
    if engine == "dask":      # a Dask DataFrame (of several partitions), not a path
        import dask.dataframe as dd

        src = dd.from_pandas(df, npartitions=3)
    else:
        src = path
    out = tmp_path / "ps.parquet"
    res = poststratify_source(src, JOINT, "w0", out=out, engine=engine, client=cl)
    mem = poststratify(df, JOINT, "w0")
    got = pd.read_parquet(out)
    assert rel_diff(got["weight_poststratified"], mem.weights) < 1e-10
    assert got["weight"].sum() == pytest.approx(1000, rel=1e-12)
    pd.testing.assert_frame_equal(res.diagnostics.margins, mem.diagnostics.margins, rtol=1e-10)


def test_small_cells_collapse_as_in_memory(tmp_path):
    df = make(400, seed=3)
    keep = ~((df["sex"] == "male") & (df["age_group"] == "45+"))
    df = pd.concat([df[keep], df[~keep].head(2)], ignore_index=True)
    p = tmp_path / "in.parquet"
    df.to_parquet(p, index=False)
    res = poststratify_source(p, JOINT, out=tmp_path / "o.parquet", min_cell_size=5)
    mem = poststratify(df, JOINT, min_cell_size=5)
    assert res.diagnostics["collapsed"] == mem.diagnostics["collapsed"] != []
    assert res.diagnostics.decisions == mem.diagnostics.decisions
    assert rel_diff(pd.read_parquet(tmp_path / "o.parquet")["weight"], mem.weights) < 1e-10


def test_unmatched_and_missing_follow_the_in_memory_rule(tmp_path):
    df = make(500, seed=4)
    df.loc[:4, "sex"] = "other"
    df.loc[5:9, "region"] = np.nan
    p = tmp_path / "in.parquet"
    df.to_parquet(p, index=False)
    with pytest.raises(WeightingError) as e_mem:
        rake(df, TARGETS)
    with pytest.raises(WeightingError) as e_eng:
        rake_source(p, TARGETS, out=tmp_path / "o.parquet")
    assert str(e_eng.value) == str(e_mem.value)
    assert not (tmp_path / "o.parquet").exists()
    res = rake_source(p, TARGETS, out=tmp_path / "o.parquet", unmatched="keep_base")
    mem = rake(df, TARGETS, unmatched="keep_base")
    assert rel_diff(pd.read_parquet(tmp_path / "o.parquet")["weight"], mem.weights) < 1e-10
    assert res.diagnostics.decisions == mem.diagnostics.decisions


def test_bad_input(tmp_path, data, monkeypatch):
    df, path = data
    out = tmp_path / "o.parquet"
    with pytest.raises(EngineError, match="no such parquet") as e:
        rake_source(tmp_path / "missing.parquet", TARGETS, out=out)
    assert "missing.parquet" in e.value.where
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(EngineError, match="cannot read parquet") as e:
        rake_source(bad, TARGETS, out=out)
    assert "bad.parquet" in e.value.where
    with pytest.raises(EngineError, match="'nope' does not exist") as e:
        rake_source(path, TARGETS, "nope", out=out)
    assert "column nope" in e.value.where
    with pytest.raises(EngineError, match="target column 'region'"):
        rake_source(_without(path, tmp_path, "region"), TARGETS, out=out)
    with pytest.raises(EngineError, match="not numeric"):
        rake_source(path, TARGETS, "resp_id", out=out)
    neg = df.assign(w0=df["w0"].where(df.index != 7, -1.0))
    p2 = tmp_path / "neg.parquet"
    neg.to_parquet(p2, index=False)
    with pytest.raises(EngineError, match="1 negative value") as e:
        rake_source(p2, TARGETS, "w0", out=out)
    assert e.value.where.endswith("neg.parquet, column w0")
    nul = df.assign(w0=df["w0"].where(df.index != 7))
    nul.to_parquet(p2, index=False)
    with pytest.raises(EngineError, match="missing"):
        rake_source(p2, TARGETS, "w0", out=out)
    zero = df.assign(w0=df["w0"].where(df.index != 7, 0.0))
    zero.to_parquet(p2, index=False)
    with pytest.raises(WeightingError, match="zero"):
        rake_source(p2, TARGETS, "w0", out=out)
    with pytest.raises(EngineError, match="unknown engine"):
        rake_source(path, TARGETS, out=out, engine="spark")
    import sys

    monkeypatch.setitem(sys.modules, "dask.dataframe", None)     # as if dask were not installed
    with pytest.raises(EngineError, match="dask engine is not installed") as e:
        rake_source(path, TARGETS, out=out, engine="dask")
    assert "pip install" in e.value.hint
    assert not out.exists()


def _without(path, tmp_path, col):
    p = tmp_path / f"without_{col}.parquet"
    pd.read_parquet(path).drop(columns=[col]).to_parquet(p, index=False)
    return p


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    from pathlib import Path

    from diaspora_survey.project import Project

    proj = Project.load(Path(__file__).resolve().parents[2])
    data = proj.harmonised()
    p = tmp_path_factory.mktemp("example") / "harmonised.parquet"
    data.to_parquet(p, index=False)
    return proj, data, p


@pytest.mark.parametrize("engine", ["duckdb", "dask"])
def test_project_weight_step_equals_in_memory(example, tmp_path, engine, request):
    """The example project's [weighting] (rake per wave, trim 0.2..5 x mean, proportional
    pooling) through the engine equals weight_project in memory."""
    from diaspora_survey.weighting.scale import weight_waves_source
    from diaspora_survey.weighting.waves import project_options, weight_project

    proj, data, p = example
    cl = request.getfixturevalue("client") if engine == "dask" else None
    tf, kwargs, _ = project_options(proj)
    res = weight_waves_source(p, tf, out=tmp_path / "w.parquet", engine=engine, client=cl, **kwargs)
    mem = weight_project(proj, data)
    got = pd.read_parquet(tmp_path / "w.parquet")
    assert list(got.columns) == list(mem.data.columns)
    for c in ("weight_base", "weight_raked", "weight_trimmed", "weight", "weight_pooled"):
        assert rel_diff(got[c], mem.data[c]) < 1e-10, c
    assert list(res.results) == list(mem.results)
    for wv, r in mem.results.items():
        d = res.results[wv].diagnostics
        assert d.method == r.diagnostics.method
        for k in ("n", "n_eff", "kish_deff", "min", "p1", "median", "p99", "max"):
            assert d[k] == pytest.approx(r.diagnostics[k], rel=1e-10), (wv, k)
        pd.testing.assert_frame_equal(d.margins, r.diagnostics.margins, rtol=1e-10)
    pd.testing.assert_frame_equal(got.drop(columns=[c for c in got if c.startswith("weight")]),
                                  mem.data.drop(columns=[c for c in got if c.startswith("weight")]).reset_index(drop=True))


def test_output_never_replaces_its_source(tmp_path):
    """rake_source(out=<the source>) is refused before anything is written; the source keeps
    its bytes (outputs never land on inputs)."""
    from diaspora_survey.errors import OutputError

    df = pd.DataFrame({"sex": ["f", "m"] * 50, "w0": np.ones(100)})
    src = tmp_path / "in.parquet"
    df.to_parquet(src)
    before = src.read_bytes()
    with pytest.raises(OutputError):
        rake_source(src, {"sex": {"f": 0.5, "m": 0.5}}, "w0", out=src, engine="duckdb")
    assert src.read_bytes() == before


def test_targets_for_an_absent_wave_are_refused_as_in_memory(tmp_path):
    """A targets file with settings for a wave the data lack: the engine refuses it as
    weight_waves does (never silently unused), before anything is written."""
    from diaspora_survey.weighting import load_targets
    from diaspora_survey.weighting.scale import weight_waves_source
    from diaspora_survey.weighting.waves import weight_waves

    df = pd.DataFrame({"wave": pd.Categorical(["w1"] * 40 + ["w2"] * 40),
                       "sex": ["female", "male"] * 40, "weight_base": 1.0})
    src = tmp_path / "h.parquet"
    df.to_parquet(src, index=False)
    t = tmp_path / "t.yaml"
    t.write_text("margins:\n  sex: {female: 0.5, male: 0.5}\nwaves:\n  w9:\n    restrict: {sex: [female]}\n")
    with pytest.raises(WeightingError, match="'w9'") as mem:
        weight_waves(df, load_targets(t))
    with pytest.raises(WeightingError, match="'w9'") as eng:
        weight_waves_source(src, load_targets(t), out=tmp_path / "w.parquet", engine="duckdb")
    assert eng.value.code == mem.value.code == "weighting.bad_targets"
    assert not (tmp_path / "w.parquet").exists()
