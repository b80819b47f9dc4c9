"""ScanDesign with psu=None (element sampling, R's ``svydesign(ids=~1, strata=~h, ...)``): the
variance from per-cell moments (survey/scan.py, _element_vcov) equals the in-memory
SurveyDesign (every row its own PSU) to 1e-10 - with and without strata, fpc as population
sizes or fractions, weights implied by the fpc, weight-0 rows, every lonely-PSU rule, by=
groups, domains, proportions, ratios and deff - and the cell table does not grow with the rows.
Also: levels of a parquet Categorical in the pandas order on every engine.

R: svymean/svytotal/svyby/svyratio on svydesign(ids=~1, strata=~h, weights=~w, fpc=~N) (the
in-memory path is checked against R survey 4.1.1 in test_oracle.py; apistrat there is such a
design and runs through ScanDesign in test_scan.py::test_oracle).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import DesignError
from diaspora_survey.survey.design import SurveyDesign
from diaspora_survey.survey.scan import ScanDesign
from scan_helpers import CALLS, elements

RTOL = 1e-10
ENGINES = ["duckdb", "pandas"]


def _equal(got, want):
    pd.testing.assert_frame_equal(got, want, rtol=RTOL)
    V, W = np.asarray(got.attrs["vcov"]), np.asarray(want.attrs["vcov"])
    scale = np.abs(np.diag(W)).max()
    np.testing.assert_allclose(V, W, rtol=RTOL, atol=1e-13 * scale)     # covariances too


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("elements")
    out = {}
    for name, df in (("plain", elements(21)), ("lonely", elements(22, lonely=True))):
        df.to_parquet(folder / f"{name}.parquet")
        out[name] = (df, folder / f"{name}.parquet")
    return out


SPECS = {"no_strata": dict(weights="w"), "fpc_no_strata": dict(weights="w", fpc="Nall"),
         "strata": dict(weights="w", strata="h"),
         "fpc_size": dict(weights="w", strata="h", fpc="N"),
         "fpc_fraction": dict(weights="w", strata="h", fpc="f"),
         "implied_weights": dict(weights=None, strata="h", fpc="N"), "unweighted": dict()}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("call", list(CALLS))
def test_equal_in_memory(files, engine, spec, call):
    df, path = files["plain"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = CALLS[call](SurveyDesign(df, **SPECS[spec]))
        got = CALLS[call](ScanDesign(path, engine=engine, **SPECS[spec]))
    _equal(got, want)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("lonely", ["remove", "adjust", "average", "certainty"])
@pytest.mark.parametrize("fpc", [None, "N"])
def test_lonely_stratum_rules(files, engine, lonely, fpc):
    """A stratum with a single row under every rule of linearisation.LONELY_RULES."""
    df, path = files["lonely"]
    kw = dict(weights="w", strata="h", fpc=fpc, lonely_psu=lonely)
    mem, scan = SurveyDesign(df, **kw), ScanDesign(path, engine=engine, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for call in ("mean", "mean_by", "prop", "ratio", "domain", "total_by"):
            _equal(CALLS[call](scan), CALLS[call](mem))


@pytest.mark.parametrize("engine", ENGINES)
def test_lonely_fail_names_the_stratum(files, engine):
    df, path = files["lonely"]
    with pytest.raises(DesignError) as mem:
        SurveyDesign(df, weights="w", strata="h")
    with pytest.raises(DesignError) as err:
        ScanDesign(path, weights="w", strata="h", engine=engine).mean("y")
    assert err.value.code == mem.value.code == "design.lonely_psu"
    assert "stratum 9 " in err.value.where


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_fpc(tmp_path, engine):
    df = elements(3, 400)
    df["Nvar"] = df["N"] + (df.index % 2)
    df["Nsmall"] = 2.0
    path = tmp_path / "fpc.parquet"
    df.to_parquet(path)
    for col, code in (("Nvar", "design.fpc_varies"), ("Nsmall", "design.fpc_too_small")):
        with pytest.raises(DesignError) as mem:
            SurveyDesign(df, weights="w", strata="h", fpc=col)
        with pytest.raises(DesignError) as err:
            ScanDesign(path, weights="w", strata="h", fpc=col, engine=engine).mean("y")
        assert err.value.code == mem.value.code == code and col in err.value.where


@pytest.mark.parametrize("engine", ENGINES)
def test_large_weights_and_offsets(tmp_path, engine):
    """No cancellation: values with a large offset (years, 1e6) and weights of 1e5 give the
    in-memory SEs to 1e-10 (without the shift of the engine's second moments ~1e-9)."""
    rng = np.random.default_rng(5)
    n = 100_000
    df = pd.DataFrame({"h": rng.integers(0, 8, n), "w": rng.gamma(1.0, 1e5, n),
                       "y": 2020 + rng.normal(0, 1, n), "g": rng.integers(0, 5, n),
                       "x": 1e6 + rng.normal(0, 10, n)})
    df["y2"] = df["y"] + 0.001 * df["g"]
    path = tmp_path / "big.parquet"
    df.to_parquet(path)
    kw = dict(weights="w", strata="h")
    mem, scan = SurveyDesign(df, **kw), ScanDesign(path, engine=engine, **kw)
    for f in (lambda d: d.mean(["y", "y2"], by="g", deff=True), lambda d: d.total("y"),
              lambda d: d.ratio("y", "x", by="g")):
        _equal(f(scan), f(mem))


@pytest.mark.parametrize("engine", ENGINES)
def test_deff_of_a_clustered_design_without_cancellation(tmp_path, engine):
    """With PSUs too: deff's SRS variance from the cells' Σw·(y - s)², not Σw·y², so values
    with a large offset and weights of 1e5 give the in-memory deff to 1e-10."""
    rng = np.random.default_rng(6)
    n = 100_000
    df = pd.DataFrame({"h": rng.integers(0, 8, n), "w": rng.gamma(1.0, 1e5, n),
                       "y": 2020 + rng.normal(0, 1, n), "g": rng.integers(0, 5, n)})
    df["psu"] = df["h"] * 1000 + rng.integers(0, 200, n)
    path = tmp_path / "clus.parquet"
    df.to_parquet(path)
    kw = dict(weights="w", strata="h", psu="psu")
    mem, scan = SurveyDesign(df, **kw), ScanDesign(path, engine=engine, **kw)
    for f in (lambda d: d.mean("y", by="g", deff=True), lambda d: d.total("y", deff="replace")):
        _equal(f(scan), f(mem))


@pytest.mark.parametrize("engine", ENGINES)
def test_cell_table_does_not_grow_with_rows(tmp_path, engine):
    """One row per observed stratum x group x level x flags, never one per data row: at most
    7 strata x 4 g (with NA) x 4 k x ok x domain = 448 rows for 5 000 and for 200 000 rows."""
    for n in (5000, 200_000):
        df = elements(8, n)
        path = tmp_path / f"e{n}.parquet"
        df.to_parquet(path)
        d = ScanDesign(path, weights="w", strata="h", engine=engine).subset("z == 'p'")
        design, cells = d._cells(["y"], ["k"], ["g"], squares=True)
        observed = df.assign(ok=df.y.notna(), dom=df.z == "p").groupby(
            ["h", "g", "k", "ok", "dom"], dropna=False).ngroups
        assert len(cells) == design.n == observed <= 7 * 4 * 4 * 2 * 2
        assert cells["__n"].sum() == n
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            _equal(d.mean("y", by="g"), SurveyDesign(df, weights="w", strata="h")
                   .subset("z == 'p'").mean("y", by="g"))


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
@pytest.mark.parametrize("psu", [None, "psu"])
def test_categorical_levels_in_pandas_order(tmp_path, engine, psu):
    """A parquet Categorical (ordered, not alphabetical; an unused level) gives levels and
    groups in category order, as SurveyDesign on pd.read_parquet of the file."""
    rng = np.random.default_rng(2)
    n = 800
    edu = ["primary", "secondary", "vocational", "bachelor", "master", "doctorate"]
    df = pd.DataFrame({"education": pd.Categorical(rng.choice(edu[:5], n), categories=edu, ordered=True),
                       "region": pd.Categorical(rng.choice(["south", "north", "east"], n),
                                                categories=["south", "north", "east"]),
                       "h": rng.integers(0, 4, n), "psu": rng.integers(0, 5, n),
                       "w": rng.gamma(2, 30, n), "age": rng.uniform(18, 80, n)})
    path = tmp_path / "cat.parquet"
    df.to_parquet(path, row_group_size=300)
    kw = dict(weights="w", strata="h", psu=psu, nest=True)
    mem = SurveyDesign(pd.read_parquet(path), **kw)
    scan = ScanDesign(path, engine=engine, **kw)
    got = scan.proportion("education", by="region", deff=True)
    _equal(got, mem.proportion("education", by="region", deff=True))
    assert list(got["level"][:6]) == edu and list(got["region"].unique()) == ["south", "north", "east"]
    _equal(scan.mean("age", by="education"), mem.mean("age", by="education"))


def test_sparse_between_cells(files, monkeypatch):
    """Many cells x terms: the between-cell part formed sparse (Σ Z_c Z_c'/n_c - Z_h Z_h'/n_h)
    gives the same numbers."""
    import diaspora_survey.survey.scan as scan

    monkeypatch.setattr(scan, "_DENSE_LIMIT", 0)
    df, path = files["lonely"]
    kw = dict(weights="w", strata="h", fpc="N", lonely_psu="adjust")
    mem, d = SurveyDesign(df, **kw), ScanDesign(path, engine="duckdb", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for call in ("mean_by", "prop", "ratio", "domain"):
            _equal(CALLS[call](d), CALLS[call](mem))
