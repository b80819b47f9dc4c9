"""ScanDesign (survey/scan.py): the estimators computed by DuckDB / pandas over parquet equal
the in-memory SurveyDesign to 1e-10 and R survey 4.1.1 (../shared/oracle) to the oracle's
tolerances. The Dask engine is tested in test_scan_dask.py.

R: the oracle cases' r_call (svymean/svytotal/svyby/svyratio on dstrat, dclus1 and their
no-fpc variants) with the data in parquet, i.e. what
``svydesign(..., data="apiclus1", dbtype="DuckDB", dbname=...)`` computes in the database.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import DesignError, EngineError, EstimationError
from diaspora_survey.survey.design import SurveyDesign
from diaspora_survey.survey.scan import ScanDesign
from scan_helpers import CALLS, generated

RTOL = 1e-10
EST_TOL, SE_TOL = 1e-9, 1e-6
FUNCS = {"svymean", "svytotal", "svyby", "svyratio"}


def _cases():
    from conftest import SHARED
    p = SHARED / "oracle" / "expected.json"
    if not p.exists():
        return []
    return [pytest.param(c, id=c["id"]) for c in json.loads(p.read_text())["cases"]
            if c["operation"]["function"] in FUNCS and "replicate_type" not in c["operation"].get("args", {})]


CASES = _cases()


@pytest.fixture(scope="module")
def api_files(shared_dir, tmp_path_factory):
    d = shared_dir / "oracle" / "data"
    out = tmp_path_factory.mktemp("api")
    frames = {}
    for k in ("apiclus1", "apistrat"):
        frames[k] = pd.read_csv(d / f"{k}.csv", dtype={"cds": str})
        frames[k].to_parquet(out / f"{k}.parquet")
    return frames, out


def _designs(case, api_files, engine):
    frames, folder = api_files
    d = case["design"]
    kw = dict(weights=d["weights"], strata=d["strata"], psu=d["ids"] or None,
              fpc=d["fpc"][0] if d["fpc"] else None, nest=d["nest"])
    return (SurveyDesign(frames[d["dataset"]], **kw),
            ScanDesign(folder / f"{d['dataset']}.parquet", engine=engine, **kw))


def _run(design, case):
    op, args = case["operation"], case["operation"]["args"]
    fn = op["function"]
    if fn == "svyratio":
        return design.ratio("api_stu", "enroll")
    if "subset" in args:
        design = design.subset("stype == 'E'")
    if fn == "svyby":
        f = design.mean if args["FUN"] == "svymean" else design.total
        return f(args["formula"].lstrip("~"), by=case["expected"]["by"], deff=bool(args.get("deff")))
    f = design.mean if fn == "svymean" else design.total
    return f(args["formula"].lstrip("~").split("+"), deff=bool(args.get("deff")))


def test_oracle_cases_found():
    if not CASES:
        pytest.skip("oracle not available")
    assert len(CASES) >= 15


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
@pytest.mark.parametrize("case", CASES)
def test_oracle(case, api_files, engine):
    """Every mean/total/svyby/ratio oracle case: R's numbers, and the in-memory frame exactly."""
    mem, scan = _designs(case, api_files, engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got, want = _run(scan, case), _run(mem, case)
    pd.testing.assert_frame_equal(got, want, rtol=RTOL)
    np.testing.assert_allclose(np.asarray(got.attrs["vcov"]), np.asarray(want.attrs["vcov"]), rtol=RTOL)
    rows = case["expected"]["results"]
    np.testing.assert_allclose(got["estimate"], [r["estimate"] for r in rows], rtol=EST_TOL)
    np.testing.assert_allclose(got["se"], [r["se"] for r in rows], rtol=SE_TOL)
    if "deff" in got.columns:
        np.testing.assert_allclose(got["deff"], [r["deff"] for r in rows], rtol=SE_TOL)


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
@pytest.mark.parametrize("lonely", ["adjust", "average"])
@pytest.mark.parametrize("call", list(CALLS))
def test_generated_equal_in_memory(tmp_path, engine, lonely, call):
    df = generated(7)
    path = tmp_path / "gen.parquet"
    df.to_parquet(path)
    kw = dict(weights="w", strata="h", psu="psu", fpc="N", nest=True, lonely_psu=lonely)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = CALLS[call](SurveyDesign(df, **kw))
        got = CALLS[call](ScanDesign(path, engine=engine, **kw))
    pd.testing.assert_frame_equal(got, want, rtol=RTOL)


@pytest.mark.parametrize("spec", [dict(weights="w", psu="psu"), dict(weights="w", strata="h"),
                                  dict(weights=None, strata="h", fpc="N"), dict()])
def test_generated_other_designs(tmp_path, spec):
    """Without strata, without PSUs (id=~1: every row a PSU), weights implied by fpc, none."""
    df = generated(3, 800)
    df["psu"] = df["h"] * 10 + df["psu"]
    df["N"] = df.groupby("h")["h"].transform("size") * 4.0     # rows are the PSUs of id=~1
    path = tmp_path / "gen.parquet"
    df.to_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for call in ("mean_by", "prop", "domain", "ratio"):
            want = CALLS[call](SurveyDesign(df, **spec))
            got = CALLS[call](ScanDesign(path, **spec))
            pd.testing.assert_frame_equal(got, want, rtol=RTOL)


def test_folder_and_relation(tmp_path):
    import duckdb

    df = generated(11, 1000)
    (tmp_path / "parts").mkdir()
    df.iloc[:400].to_parquet(tmp_path / "parts" / "a.parquet")
    df.iloc[400:].to_parquet(tmp_path / "parts" / "b.parquet")
    kw = dict(weights="w", strata="h", psu="psu", nest=True, lonely_psu="adjust")
    want = SurveyDesign(df, **kw).mean("y", by="g")
    pd.testing.assert_frame_equal(ScanDesign(tmp_path / "parts", **kw).mean("y", by="g"), want, rtol=RTOL)
    rel = duckdb.connect().from_df(df)
    pd.testing.assert_frame_equal(ScanDesign(rel, **kw).mean("y", by="g"), want, rtol=RTOL)


def test_lonely_fail_and_na_rm(tmp_path):
    df = generated(5, 1000)
    path = tmp_path / "gen.parquet"
    df.to_parquet(path)
    with pytest.raises(DesignError) as err:
        ScanDesign(path, weights="w", strata="h", psu="psu", nest=True).mean("y")
    assert err.value.code == "design.lonely_psu"
    d = ScanDesign(path, weights="w", strata="h", psu="psu", nest=True, lonely_psu="remove")
    with pytest.raises(EstimationError) as err:
        d.mean("y", na_rm=False)
    assert err.value.code == "estimate.missing_values"


def test_bad_input(tmp_path):
    df = generated(5, 300)
    df["wneg"] = df["w"] - 80
    df["hnull"] = df["h"].where(df.index % 9 != 0)
    df["wtext"] = df["w"].astype(str)
    path = tmp_path / "bad.parquet"
    df.to_parquet(path)
    cases = [(dict(weights="nope"), "engine.unknown_column"), (dict(weights="wneg"), "engine.negative"),
             (dict(weights="wtext"), "engine.not_numeric"), (dict(weights="w", strata="hnull"), "engine.null")]
    for kw, code in cases:
        with pytest.raises(EngineError) as err:
            ScanDesign(path, **kw)
        assert err.value.code == code and "bad.parquet" in err.value.where
        assert next(v for v in kw.values() if v != "w") in err.value.where
    with pytest.raises(EngineError) as err:
        ScanDesign(tmp_path / "absent.parquet", weights="w")
    assert err.value.code == "engine.source_missing" and "absent.parquet" in err.value.where
    with pytest.raises(DesignError) as err:
        ScanDesign(path, weights="w", psu=["psu", "k"])
    assert err.value.code == "design.multistage_scan"
    d = ScanDesign(path, weights="w")
    with pytest.raises(EngineError) as err:
        d.mean("nothere")
    assert err.value.code == "engine.unknown_column"
    with pytest.raises(EstimationError):
        d.subset("__import__('os')")
    with pytest.raises(EstimationError) as err:
        d.subset("k > 100").mean("y")
    assert err.value.code == "estimate.empty_domain"


def test_one_pass_returns_cells_not_rows(tmp_path):
    """The engine returns one row per stratum x PSU x group cell, not per data row."""
    df = generated(2, 5000)
    path = tmp_path / "gen.parquet"
    df.to_parquet(path)
    d = ScanDesign(path, weights="w", strata="h", psu="psu", nest=True, lonely_psu="remove")
    design, cells = d._cells(["y"], [], ["g"], squares=False)
    assert len(cells) <= df.groupby(["h", "psu"]).ngroups * 4 * 2 < len(df)
