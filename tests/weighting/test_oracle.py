"""Weighting against R survey 4.1.1 (../shared/oracle/expected.json): final weights to
1e-8 relative, and svymean(~api00) / svytotal(~enroll) with SEs after weighting (the
design carries R's calibration record), estimates 1e-9, SEs 1e-6 relative."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import diaspora_survey as ds
from diaspora_survey.weighting import calibrate, diagnostics, poststratify, rake, trim

POP_STYPE = {"stype": {"E": 4421, "H": 755, "M": 1018}}
POP_RAKE = {"stype": {"E": 4421, "H": 755, "M": 1018}, "sch_wide": {"No": 1072, "Yes": 5122}}
TOTALS = {"stype": {"E": 4421, "H": 755, "M": 1018}, "api99": 3914069}


@pytest.fixture(scope="module")
def clus1(shared_dir):
    return pd.read_csv(shared_dir / "oracle" / "data" / "apiclus1.csv", dtype={"cds": str})


@pytest.fixture(scope="module")
def strat(shared_dir):
    return pd.read_csv(shared_dir / "oracle" / "data" / "apistrat.csv", dtype={"cds": str})


@pytest.fixture(scope="module")
def dclus1(clus1):
    return ds.SurveyDesign(clus1, weights="pw", psu="dnum", fpc="fpc")


def check_weights(w, case, df):
    exp = case["expected"]["final_weights"]
    assert list(df["snum"]) == exp["snum"]          # same row order as R
    np.testing.assert_allclose(np.asarray(w), exp["weights"], rtol=1e-8, atol=0)
    assert float(np.sum(w)) == pytest.approx(exp["sum_weights"], rel=1e-10)


def check_estimates(design, case):
    e = case["expected"]
    m = design.mean("api00").iloc[0]
    t = design.total("enroll").iloc[0]
    assert m["estimate"] == pytest.approx(e["svymean_api00"]["estimate"], rel=1e-9)
    assert m["se"] == pytest.approx(e["svymean_api00"]["se"], rel=1e-6)
    assert t["estimate"] == pytest.approx(e["svytotal_enroll"]["estimate"], rel=1e-9)
    assert t["se"] == pytest.approx(e["svytotal_enroll"]["se"], rel=1e-6)


def test_poststratify(clus1, dclus1, oracle_cases):
    """R: postStratify(dclus1, ~stype, pop.types)"""
    case = oracle_cases["clus1_poststratify_stype"]
    check_weights(poststratify(clus1, POP_STYPE, base_weight="pw").weights, case, clus1)
    r = poststratify(dclus1, POP_STYPE)
    check_weights(r.weights, case, clus1)
    check_estimates(r.design, case)


def test_rake_default_control(clus1, dclus1, oracle_cases):
    """R: rake(dclus1, list(~stype, ~sch_wide), list(pop.types, pop.schwide))
    (default control maxit=10, epsilon=1: change of the cross-table < 1 weight unit)."""
    case = oracle_cases["clus1_rake_stype_schwide_default"]
    r = rake(dclus1, POP_RAKE, criterion="r", tol=1, max_iter=10)
    check_weights(r.weights, case, clus1)
    ach = r.diagnostics.margins.set_index(["margin", "category"])["weighted"]
    np.testing.assert_allclose(ach.loc["stype"].to_numpy(), case["expected"]["margins_achieved"]["stype"],
                               rtol=1e-9)
    check_estimates(r.design, case)


def test_rake_tight(clus1, dclus1, oracle_cases):
    """R: rake(dclus1, list(~stype, ~sch_wide), list(pop.types, pop.schwide),
    control=list(maxit=1000, epsilon=1e-12))"""
    case = oracle_cases["clus1_rake_stype_schwide_tight"]
    r = rake(dclus1, POP_RAKE, criterion="r", tol=1e-12, max_iter=1000)
    check_weights(r.weights, case, clus1)
    check_estimates(r.design, case)
    # our default criterion (share scale) to 1e-12 gives the same weights
    r2 = rake(clus1, POP_RAKE, base_weight="pw", tol=1e-13)
    check_weights(r2.weights, case, clus1)


@pytest.mark.parametrize("cid, kw", [
    ("clus1_calibrate_linear", dict(method="linear")),
    ("clus1_calibrate_raking", dict(method="raking", tol=1e-12, max_iter=200)),
    ("clus1_calibrate_linear_bounds_0p7_1p7", dict(method="linear", bounds=(0.7, 1.7), tol=1e-12, max_iter=200)),
])
def test_calibrate(clus1, dclus1, oracle_cases, cid, kw):
    """R: calibrate(dclus1, ~stype+api99, pop.totals, calfun='linear'|'raking',
    [bounds=c(0.7,1.7)], maxit=200, epsilon=1e-12)"""
    case = oracle_cases[cid]
    r = calibrate(clus1, TOTALS, base_weight="pw", **kw)
    check_weights(r.weights, case, clus1)
    assert r.diagnostics.extra["g_min"] == pytest.approx(case["expected"]["g_min"], rel=1e-8)
    assert r.diagnostics.extra["g_max"] == pytest.approx(case["expected"]["g_max"], rel=1e-8)
    rd = calibrate(dclus1, TOTALS, **kw)
    check_weights(rd.weights, case, clus1)
    check_estimates(rd.design, case)


def test_calibrate_intercept_form(clus1, oracle_cases):
    """R's parametrisation (Intercept, stypeH, stypeM, api99) gives the same weights:
    calibrate(dclus1, ~stype+api99, c(6194, 755, 1018, 3914069))"""
    case = oracle_cases["clus1_calibrate_linear"]
    r = calibrate(clus1, {"(Intercept)": 6194, **TOTALS}, base_weight="pw")
    check_weights(r.weights, case, clus1)


def test_trimweights_after_calibration(clus1, dclus1, oracle_cases):
    """R: trimWeights(calibrate(dclus1, ~stype+api99, pop.totals), lower=29, upper=60)
    (strict=FALSE: one pass; the minimum ends at 25.95 < 29)"""
    case = oracle_cases["clus1_trimweights_callinear_29_60"]
    cal = calibrate(dclus1, TOTALS)
    t = trim(cal.weights, lower=29, upper=60, strict=False, redistribute="equal")
    check_weights(t, case, clus1)
    assert t.min() == pytest.approx(case["expected"]["final_weights"]["min_weight"], rel=1e-10)
    r = cal.trim(lower=29, upper=60, strict=False, redistribute="equal")
    check_weights(r.weights, case, clus1)
    assert list(r.steps) == ["weight_base", "weight_calibrated", "weight_trimmed"]
    check_estimates(r.design, case)


def test_trimweights_upper(strat, oracle_cases):
    """R: trimWeights(dstrat, upper=40)"""
    case = oracle_cases["strat_trimweights_upper40"]
    t = trim(strat["pw"], upper=40, strict=False, redistribute="equal")
    check_weights(t, case, strat)
    d = ds.SurveyDesign(strat, weights="pw", strata="stype", fpc="fpc").with_adjustment(t.to_numpy())
    check_estimates(d, case)


@pytest.mark.parametrize("cid", ["strat_kish_pw", "clus1_kish_calibrate_linear"])
def test_kish(cid, clus1, strat, oracle_cases):
    """R: n_eff = sum(w)^2/sum(w^2); deff = n*sum(w^2)/sum(w)^2 = 1 + CV^2 (population SD)"""
    e = oracle_cases[cid]["expected"]
    w = strat["pw"] if cid.startswith("strat") else calibrate(clus1, TOTALS, base_weight="pw").weights
    d = diagnostics(w)
    assert d["n"] == e["n"]
    assert d["sum"] == pytest.approx(e["sum_w"], rel=1e-12)
    assert d["n_eff"] == pytest.approx(e["n_eff_kish"], rel=1e-10)
    assert d["kish_deff"] == pytest.approx(e["deff_kish"], rel=1e-10)
    assert d["cv"] == pytest.approx(e["cv_population_sd"], rel=1e-10)
    assert 1 + d["cv"] ** 2 == pytest.approx(e["one_plus_cv2_population_sd"], rel=1e-10)


# ------------------------------------------------------------------ unequal base weights
# apiclus1's pw is constant, so the oracle cannot tell whether the calibration record
# carries the base weights correctly.  With apistrat's unequal weights the
# calibration-aware SE of a total must equal the plain SE of the total of the residuals
# e = y - x'B (B: base-weighted regression on the auxiliaries; post-stratification: the
# base-weighted cell means) under the final weights (Lumley 2010 §7; Särndal et al. 1992).
def _fixed_design(strat, w, e):
    return ds.SurveyDesign(strat.assign(_w=np.asarray(w), _e=np.asarray(e)), weights="_w",
                           strata="stype", fpc="fpc")


@pytest.mark.parametrize("method", ["linear", "raking"])
def test_calibration_se_with_unequal_base_weights(strat, method):
    d = ds.SurveyDesign(strat, weights="pw", strata="stype", fpc="fpc")
    totals = {"sch_wide": {"No": 1072, "Yes": 5122}, "api99": 3914069}
    r = calibrate(d, totals, method=method, tol=1e-12, max_iter=100)
    y = strat["enroll"].to_numpy(float)
    X = np.column_stack([np.ones(len(strat)), (strat["sch_wide"] == "Yes").to_numpy(float),
                         strat["api99"].to_numpy(float)])
    dw = strat["pw"].to_numpy()
    B = np.linalg.solve((X * dw[:, None]).T @ X, (X * dw[:, None]).T @ y)
    expected = _fixed_design(strat, r.weights, y - X @ B).total("_e").iloc[0]["se"]
    got = r.design.total("enroll").iloc[0]
    assert got["se"] == pytest.approx(expected, rel=1e-9)
    assert got["estimate"] == pytest.approx(float(np.dot(r.weights, y)), rel=1e-12)
    # and differs from treating the calibrated weights as fixed
    fixed = _fixed_design(strat, r.weights, y).total("_e").iloc[0]["se"]
    assert abs(fixed - got["se"]) > 1e-3 * got["se"]


def test_poststratification_se_with_unequal_base_weights(strat):
    d = ds.SurveyDesign(strat, weights="pw", strata="stype", fpc="fpc")
    r = poststratify(d, {"sch_wide": {"No": 1072, "Yes": 5122}})
    y = strat["enroll"].to_numpy(float)
    dw = strat["pw"].to_numpy()
    cell = strat["sch_wide"].to_numpy()
    ybar = pd.Series(y * dw).groupby(cell).transform("sum") / pd.Series(dw).groupby(cell).transform("sum")
    expected = _fixed_design(strat, r.weights, y - ybar.to_numpy()).total("_e").iloc[0]["se"]
    assert r.design.total("enroll").iloc[0]["se"] == pytest.approx(expected, rel=1e-9)
