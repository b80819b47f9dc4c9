"""SurveyDesign: construction, validation, lonely PSUs, multistage, domains, the
calibration hook and replicate designs - R references, hand calculations and properties."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from diaspora_survey.survey.design import SurveyDesign
from diaspora_survey.errors import DesignError, EstimationError


def small() -> pd.DataFrame:
    """60 rows, strata A/B/C (4, 4, 2 PSUs, nest=TRUE ids), 3 SSUs per PSU, deterministic.
    Written to CSV and read by R (survey 4.1.1) for the reference values below."""
    i = np.arange(60)
    s = np.where(i < 24, "A", np.where(i < 48, "B", "C"))
    psu = (i // 6) % 4 + 1
    return pd.DataFrame(dict(
        st=s, psu=psu, ssu=(i // 2) % 3 + 1,
        y=((i * 37) % 23) + 0.5 * (i % 7) + 10, x=((i * 11) % 13) + 1.0,
        g=np.where(i % 3 == 0, "g1", "g2"), w=1.0 + (i % 5) * 0.75 + (s == "B") * 2,
        fpc1=np.where(s == "A", 40, np.where(s == "B", 25, 9)).astype(float),
        fpc2=5.0 + (psu % 2) * 3))


def lonely() -> pd.DataFrame:
    d = small()
    d.loc[d.st == "C", "psu"] = 1
    return d


def rel(a, b):
    return np.max(np.abs(np.asarray(a, float) / np.asarray(b, float) - 1))


# ------------------------------------------------------------------ R reference values
# From R 4.2.2 / survey 4.1.1 on small().to_csv()/lonely().to_csv() (read.csv).

def test_two_stage_fpc_matches_R():
    """R: d2 <- svydesign(id=~psu+ssu, strata=~st, fpc=~fpc1+fpc2, weights=~w, nest=TRUE, data=d)
    svymean(~y, d2); svytotal(~y, d2); svyby(~y, ~g, d2, svymean)"""
    d = SurveyDesign(small(), weights="w", strata="st", psu=["psu", "ssu"], fpc=["fpc1", "fpc2"], nest=True)
    m = d.mean("y")
    assert rel(m.estimate, [23.121843434343432]) < 1e-12
    assert rel(m.se, [0.57915403991253767]) < 1e-12
    assert rel(d.total("y").se, [146.68537944959215]) < 1e-12
    b = d.mean("y", by="g")
    assert rel(b.estimate, [24.005681818181817, 22.679924242424242]) < 1e-12
    assert rel(b.se, [1.9991817500809452, 0.80746743258193576]) < 1e-12
    assert d.degf == 10 - 3


def test_two_stage_fraction_fpc_matches_R():
    """R: svydesign(id=~psu+ssu, strata=~st, fpc=~I(4/fpc1)+I(3/fpc2), weights=~w, nest=TRUE)
    then svymean(~y, .) - fpc given as sampling fractions."""
    df = small().assign(f1=lambda t: 4 / t.fpc1, f2=lambda t: 3 / t.fpc2)
    d = SurveyDesign(df, weights="w", strata="st", psu=["psu", "ssu"], fpc=["f1", "f2"], nest=True)
    assert rel(d.mean("y").se, [0.5592934822657698]) < 1e-12


def test_one_stage_and_ratio_match_R():
    """R: d1 <- svydesign(id=~psu, strata=~st, fpc=~fpc1, weights=~w, nest=TRUE, data=d);
    svymean(~y, d1); svyratio(~y, ~x, d1); without fpc: svyratio(~y, ~x, .)"""
    d1 = SurveyDesign(small(), weights="w", strata="st", psu="psu", fpc="fpc1", nest=True)
    assert rel(d1.mean("y").se, [0.5371621060555497]) < 1e-12
    r = d1.ratio("y", "x")
    assert rel(r.estimate, [3.2771116678596992]) < 1e-12 and rel(r.se, [0.18449594481250253]) < 1e-12
    d0 = SurveyDesign(small(), weights="w", strata="st", psu="psu", nest=True)
    assert rel(d0.ratio("y", "x").se, [0.20033106338527487]) < 1e-12


R_LONELY = {  # rule: (mean se, total se, total se with fpc=~fpc1)
    "remove": (0.46994090432806651, 108.89795969163059, 101.01178922531764),
    "certainty": (0.46994090432806651, 108.89795969163059, 101.01178922531764),
    "adjust": (0.48637296166963806, 778.15744912260527, 733.42366368381442),
    "average": (0.57555771243292486, 133.37221763733254, 123.71367080379595),
}


@pytest.mark.parametrize("rule", sorted(R_LONELY))
def test_lonely_psu_rules_match_R(rule):
    """R: options(survey.lonely.psu=rule); dl <- svydesign(id=~psu, strata=~st, weights=~w,
    nest=TRUE, data=l) (stratum C has one PSU); svymean(~y, dl); svytotal(~y, dl); and with
    fpc=~fpc1: svytotal(~y, .)"""
    d = SurveyDesign(lonely(), weights="w", strata="st", psu="psu", nest=True, lonely_psu=rule)
    m_se, t_se, tf_se = R_LONELY[rule]
    assert rel(d.mean("y").se, [m_se]) < 1e-12
    assert rel(d.total("y").se, [t_se]) < 1e-12
    df = SurveyDesign(lonely(), weights="w", strata="st", psu="psu", nest=True, lonely_psu=rule, fpc="fpc1")
    assert rel(df.total("y").se, [tf_se]) < 1e-12


def test_lonely_psu_fail_names_the_stratum():
    with pytest.raises(DesignError) as e:
        SurveyDesign(lonely(), weights="w", strata="st", psu="psu", nest=True)
    assert "C" in str(e.value) and e.value.code == "design.lonely_psu" and e.value.hint


def test_lonely_rule_is_per_design():
    a = SurveyDesign(lonely(), weights="w", strata="st", psu="psu", nest=True, lonely_psu="adjust")
    b = SurveyDesign(lonely(), weights="w", strata="st", psu="psu", nest=True, lonely_psu="remove")
    assert a.total("y").se[0] != b.total("y").se[0]


def test_jkn_matches_R():
    """R: jk <- as.svrepdesign(d1, type='JKn'); svymean(~y, jk); degf(jk); svyby(~y, ~g, jk, svymean)"""
    jk = SurveyDesign(small(), weights="w", strata="st", psu="psu", fpc="fpc1", nest=True).to_replicate("JKn")
    assert rel(jk.mean("y").se, [0.53641983121963155]) < 1e-12
    assert jk.degf == 7
    assert rel(jk.mean("y", by="g").se, [1.9711095947872641, 0.74033435933365521]) < 1e-12


# ------------------------------------------------------------------ hand calculations

def test_srs_formulas():
    """Equal weights, no clusters, no fpc: se(mean) = s/sqrt(n); se(total) = N s / sqrt(n)
    with N = sum of weights; fpc = N_pop gives the (1 - n/N) factor."""
    y = np.array([3.0, 7, 1, 8, 4, 4, 10, 2])
    n = y.size
    df = pd.DataFrame({"y": y, "w": 5.0, "N": 40.0})
    d = SurveyDesign(df, weights="w")
    s = y.std(ddof=1)
    assert rel(d.mean("y").se, [s / np.sqrt(n)]) < 1e-13
    assert rel(d.total("y").se, [40 * s / np.sqrt(n)]) < 1e-13
    f = SurveyDesign(df, weights="w", fpc="N")
    assert rel(f.mean("y").se, [np.sqrt((1 - n / 40) * s * s / n)]) < 1e-13
    assert d.degf == n - 1
    m = f.mean("y", deff=True)
    assert abs(m["deff"][0] - 1) < 1e-12       # SRSWOR reference: deff = 1 exactly


def test_cluster_total_by_hand():
    """One-stage cluster sample, with replacement: V = n/(n-1) sum_i (t_i - tbar)^2 of the
    weighted PSU totals."""
    df = pd.DataFrame({"c": [1, 1, 2, 2, 2, 3], "y": [1.0, 2, 3, 4, 5, 6], "w": [2.0, 2, 3, 3, 3, 1]})
    t = np.array([2 * 3.0, 3 * 12.0, 6.0])
    v = 3 / 2 * np.sum((t - t.mean()) ** 2)
    d = SurveyDesign(df, weights="w", psu="c")
    assert rel(d.total("y").se, [np.sqrt(v)]) < 1e-13
    tot, V = d.total_vcov(df[["y"]].to_numpy())
    assert rel(tot, [48.0]) < 1e-15 and rel(V, [[v]]) < 1e-13


def test_poststrat_hook_on_strata_by_hand():
    """Post-stratifying a with-replacement SRS (equal weights) on the strata variable gives
    n/(n-1) sum_h sum_i (z_hi - zbar_h)^2: the stratified variance with each stratum's
    n_h/(n_h-1) replaced by n/(n-1) (svyrecvar: z <- z - w * cellmean(z/w))."""
    df = pd.DataFrame({"h": list("aaabbbbcc"), "y": [1.0, 4, 2, 8, 3, 5, 9, 2, 6], "w": 2.5})
    n = len(df)
    strat = SurveyDesign(df, weights="w", strata="h")
    srs = SurveyDesign(df, weights="w")
    cells = pd.factorize(df.h)[0]
    ps = srs.with_adjustment(srs.weights, {"kind": "poststrat", "cells": cells, "w": srs.weights})
    z = (df.w * df.y).to_numpy()
    ss = sum(np.sum((z[cells == k] - z[cells == k].mean()) ** 2) for k in range(3))
    assert rel(ps.total("y").se, [np.sqrt(n / (n - 1) * ss)]) < 1e-13
    nh = np.bincount(cells)
    vstrat = sum(nh[k] / (nh[k] - 1) * np.sum((z[cells == k] - z[cells == k].mean()) ** 2) for k in range(3))
    assert rel(strat.total("y").se, [np.sqrt(vstrat)]) < 1e-13
    # GREG on the cell indicators is the same projection
    X = np.eye(3)[cells] * np.sqrt(df.w.to_numpy())[:, None]
    greg = srs.with_adjustment(srs.weights, {"kind": "greg", "X": X, "w": np.sqrt(df.w.to_numpy())})
    assert rel(greg.total("y").se, ps.total("y").se) < 1e-12
    # a single raking margin is post-stratification too
    rk = srs.with_adjustment(srs.weights, {"kind": "raking", "margins": [cells], "w": srs.weights})
    assert rel(rk.total("y").se, ps.total("y").se) < 1e-12


def test_greg_hook_matches_R_calibrate(oracle_cases, shared_dir):
    """R: calibrate(dclus1, ~stype+api99, pop.totals) then svymean(~api00, .) /
    svytotal(~enroll, .): the hook with X = mm*sqrt(w0), w = g*sqrt(w0) (R's qr(mm*whalf),
    w = g*whalf) reproduces the calibration SEs."""
    case = oracle_cases["clus1_calibrate_linear"]
    df = pd.read_csv(shared_dir / "oracle/data/apiclus1.csv", dtype={"cds": str})
    d = SurveyDesign(df, weights="pw", psu="dnum", fpc="fpc")
    w0 = d.weights
    mm = np.column_stack([np.ones(len(df)), df.stype == "H", df.stype == "M", df.api99]).astype(float)
    T = np.array([6194, 755, 1018, 3914069.0])
    g = 1 + mm @ np.linalg.solve((mm * w0[:, None]).T @ mm, T - mm.T @ w0)
    c = d.with_adjustment(w0 * g, {"kind": "greg", "X": mm * np.sqrt(w0)[:, None], "w": g * np.sqrt(w0)})
    e = case["expected"]
    assert rel(c.mean("api00").se, [e["svymean_api00"]["se"]]) < 1e-10
    assert rel(c.total("enroll").se, [e["svytotal_enroll"]["se"]]) < 1e-10
    ps = oracle_cases["clus1_poststratify_stype"]["expected"]
    cells = pd.factorize(df.stype)[0]
    pop = np.array([{"E": 4421, "H": 755, "M": 1018}[s] for s in pd.factorize(df.stype)[1]])
    w1 = w0 * (pop / np.bincount(cells, w0))[cells]
    p = d.with_adjustment(w1, {"kind": "poststrat", "cells": cells, "w": w1, "oldw": w0})
    assert rel(p.mean("api00").se, [ps["svymean_api00"]["se"]]) < 1e-10


def test_brr_and_fay_equal_taylor_for_totals():
    """For a total, fully balanced BRR (and Fay's BRR) reproduce the with-replacement
    Taylor variance sum_h (t_h1 - t_h2)^2 / 4 * 4 ... exactly."""
    df = pd.DataFrame({"h": np.repeat(np.arange(5), 4), "p": np.tile([0, 0, 1, 1], 5),
                       "y": np.arange(20.0) ** 1.5 % 7, "w": 1 + np.arange(20) % 3})
    t = SurveyDesign(df, weights="w", strata="h", psu="p", nest=True)
    for kind in ("BRR", "Fay"):
        r = t.to_replicate(kind)
        assert rel(r.total("y").se, t.total("y").se) < 1e-12, kind
    b = t.to_replicate("bootstrap", replicates=400, seed=1)
    b2 = t.to_replicate("bootstrap", replicates=400, seed=1)
    assert b.total("y").se[0] == b2.total("y").se[0]
    assert abs(b.total("y").se[0] / t.total("y").se[0] - 1) < 0.25


def test_user_replicate_weights_and_adjustment():
    df = pd.DataFrame({"y": [1.0, 2, 3, 4], "w": [1.0, 1, 1, 1]})
    jk = SurveyDesign(df, weights="w").to_replicate("JK1")
    R = jk.replicate_info["repw"]
    df2 = df.assign(**{f"r{j}": R[:, j] for j in range(4)})
    u = SurveyDesign.from_replicate_weights(df2, "w", "^r[0-9]", type="JK1")
    assert rel(u.mean("y").se, jk.mean("y").se) < 1e-13
    assert u.degf == 3
    doubled = u.with_adjustment(df.w.to_numpy() * 2)
    assert rel(doubled.total("y").se, 2 * u.total("y").se) < 1e-13


# ------------------------------------------------------------------ validation

def test_validation_messages():
    df = small()
    with pytest.raises(DesignError, match="not found") as e:
        SurveyDesign(df, weights="weight")
    assert e.value.hint and "w" in e.value.hint
    bad = df.assign(w=df.w.where(df.index != 3))
    with pytest.raises(DesignError, match="1 missing"):
        SurveyDesign(bad, weights="w")
    with pytest.raises(DesignError, match="negative"):
        SurveyDesign(df.assign(w=-df.w), weights="w")
    with pytest.raises(DesignError, match="missing value"):
        SurveyDesign(df.assign(st=df.st.where(df.index > 1)), weights="w", strata="st")
    with pytest.raises(DesignError, match="not nested"):
        SurveyDesign(df, weights="w", strata="st", psu="psu")
    with pytest.raises(DesignError, match="lonely_psu"):
        SurveyDesign(df, lonely_psu="ignore")
    with pytest.raises(DesignError, match="100%"):
        SurveyDesign(df.assign(N=2.0), weights="w", strata="st", psu="psu", nest=True, fpc="N")
    with pytest.raises(EstimationError, match="not found"):
        SurveyDesign(df, weights="w").mean("age")
    with pytest.raises(EstimationError, match="not numeric"):
        SurveyDesign(df, weights="w").mean("g") if False else SurveyDesign(df, weights="w").ratio("g", "x")


def test_immutable_and_data_copy():
    d = SurveyDesign(small(), weights="w")
    with pytest.raises(AttributeError):
        d._w = None
    data = d.data
    data.loc[0, "y"] = 1e9
    assert d.data.loc[0, "y"] != 1e9


def test_no_weights_and_accessor():
    df = small()
    d = df.survey(strata="st", psu="psu", nest=True)
    assert np.all(d.weights == 1) and d.n == 60
    assert d.degf == 10 - 3


def test_missing_values_stay_in_design():
    """na.rm: rows with NA are dropped per estimate but stay in the design (zero weight):
    identical to subsetting on the non-missing rows, and degf unchanged."""
    df = small()
    df.loc[[1, 7, 30], "y"] = np.nan
    d = SurveyDesign(df, weights="w", strata="st", psu="psu", nest=True)
    m = d.mean("y")
    s = d.subset(df.y.notna()).mean("y")
    assert rel(m.se, s.se) < 1e-13 and m["n"][0] == 57 and m["df"][0] == 7
    with pytest.raises(EstimationError, match="na_rm"):
        d.mean("y", na_rm=False)


# ------------------------------------------------------------------ properties

frames = st.integers(min_value=4, max_value=40).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=n, max_size=n),
    st.lists(st.floats(0.1, 10), min_size=n, max_size=n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.randoms(use_true_random=False)))


@settings(max_examples=40, deadline=None)
@given(frames)
def test_equal_weights_give_srs(data):
    y, _, _, _ = data
    y = np.array(y)
    d = SurveyDesign(pd.DataFrame({"y": y}))
    assert np.isclose(d.mean("y").estimate[0], y.mean(), rtol=1e-12, atol=1e-9)
    assert np.isclose(d.mean("y").se[0], y.std(ddof=1) / np.sqrt(y.size), rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(frames)
def test_row_permutation_changes_nothing(data):
    y, w, g, rnd = data
    n = len(y)
    df = pd.DataFrame({"y": y, "w": w, "g": g, "c": np.arange(n) % 3, "h": (np.arange(n) % 3 < 2)})
    perm = list(range(n))
    rnd.shuffle(perm)
    a = SurveyDesign(df, weights="w", psu="c").mean("y", by="g")
    b = SurveyDesign(df.iloc[perm], weights="w", psu="c").mean("y", by="g")
    pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(frames)
def test_subset_equals_by_row(data):
    y, w, g, _ = data
    n = len(y)
    df = pd.DataFrame({"y": y, "w": w, "g": g, "c": np.arange(n) % 4})
    if df.g.nunique() < 2:
        return
    d = SurveyDesign(df, weights="w", psu="c")
    by = d.mean("y", by="g")
    for k, row in by.iterrows():
        s = d.subset(df.g == row["g"]).mean("y")
        assert np.isclose(s.estimate[0], row.estimate, rtol=1e-12, atol=1e-12)
        assert np.isclose(s.se[0], row.se, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ more R references
# R 4.2.2 / survey 4.1.1 on rsmall().to_csv(index=False) and pairs().to_csv(index=False)
# (read.csv; R's glm needs the column g renamed - svyglm.svyrep.design evaluates its own
# variable `g` inside the data).

def rsmall() -> pd.DataFrame:
    """small() plus: yi = round(y/3); st2 = second-stage strata (ssu 1 vs 2-3: single-SSU
    strata at stage 2); x missing in rows 4, 17, 33; b = y > 22; h3 = a 3-level factor."""
    d = small()
    i = np.arange(len(d))
    d["yi"] = np.round(d.y / 3).astype(int)
    d["st2"] = np.where(d.ssu == 1, "s1", "s2")
    d.loc[[4, 17, 33], "x"] = np.nan
    d["b"] = (d.y > 22).astype(int)
    d["h3"] = np.array(["u", "v", "w"])[(i // 2 + i // 7) % 3]
    return d


def pairs() -> pd.DataFrame:
    return pd.DataFrame({"h": np.repeat(np.arange(5), 4), "p": np.tile([0, 0, 1, 1], 5),
                         "y": np.arange(20.0) ** 1.5 % 7, "x": 1.0 + np.arange(20) % 4,
                         "w": 1.0 + np.arange(20) % 3})


@pytest.mark.parametrize("kind, rho, mean_se, ratio_se", [
    ("BRR", None, 0.64241343729031, 0.259799449396668),
    ("Fay", 0.3, 0.634828353505178, 0.254497122042721)])
def test_brr_fay_match_R(kind, rho, mean_se, ratio_se):
    """R: dp <- svydesign(id=~p, strata=~h, weights=~w, nest=TRUE, data=p)
    brr <- as.svrepdesign(dp, type="BRR"); fay <- as.svrepdesign(dp, type="Fay", fay.rho=0.3)
    svymean(~y, .); svyratio(~y, ~x, .); degf(brr) = 5; ncol(repweights) = 8; fay$scale"""
    t = SurveyDesign(pairs(), weights="w", strata="h", psu="p", nest=True)
    r = t.to_replicate(kind, **({} if rho is None else {"rho": rho}))
    assert rel(r.mean("y").estimate, [2.85585447847633]) < 1e-12
    assert rel(r.mean("y").se, [mean_se]) < 1e-12
    assert rel(r.ratio("y", "x").estimate, [1.14823015113997]) < 1e-12
    assert rel(r.ratio("y", "x").se, [ratio_se]) < 1e-12
    info = r.replicate_info
    assert info["repw"].shape[1] == 8 and r.degf == 5
    if kind == "Fay":
        assert rel([info["scale"]], [0.255102040816327]) < 1e-12


@pytest.mark.parametrize("rule, m_se, t_se", [
    ("adjust", 0.604618976138785, 241.621151046038),
    ("average", 0.628363940853178, 160.3615717185),
    ("remove", 0.584544425320509, 145.051702892978),
    ("certainty", 0.584544425320509, 145.051702892978)])
def test_multistage_strata_lonely_second_stage_match_R(rule, m_se, t_se):
    """R: options(survey.lonely.psu=rule); dm <- svydesign(id=~psu+ssu, strata=~st+st2,
    fpc=~fpc1+fpc2, weights=~w, nest=TRUE, data=d); svymean(~y, dm); svytotal(~y, dm)
    (stratum s1 has one SSU in every PSU: lonely units at stage 2)"""
    d = SurveyDesign(rsmall(), weights="w", strata=["st", "st2"], psu=["psu", "ssu"],
                     fpc=["fpc1", "fpc2"], nest=True, lonely_psu=rule)
    assert rel(d.mean("y").estimate, [23.1218434343434]) < 1e-12
    assert rel(d.mean("y").se, [m_se]) < 1e-12
    assert rel(d.total("y").se, [t_se]) < 1e-12
    with pytest.raises(DesignError, match="stage 2"):
        SurveyDesign(rsmall(), weights="w", strata=["st", "st2"], psu=["psu", "ssu"],
                     fpc=["fpc1", "fpc2"], nest=True)


def test_replicate_estimators_match_R():
    """R: jk <- as.svrepdesign(svydesign(id=~psu, strata=~st, fpc=~fpc1, weights=~w,
    nest=TRUE, data=d), type="JKn"); svyglm(y ~ b + g, jk); svyratio(~y, ~x, jk, na.rm=TRUE);
    svyquantile(~y, jk, quantiles=0.5) (se and confint)"""
    jk = SurveyDesign(rsmall(), weights="w", strata="st", psu="psu", fpc="fpc1", nest=True).to_replicate("JKn")
    g = jk.glm("y ~ b + C(g)").set_index("term")
    assert rel(g.loc[["(Intercept)", "b", "C(g)[T.g2]"], "estimate"],
               [16.7448295510189, 11.6173636274606, -0.225628444369258]) < 1e-12
    assert rel(g.loc[["(Intercept)", "b", "C(g)[T.g2]"], "se"],
               [0.625954952320876, 0.453601471396122, 0.814899436539587]) < 1e-12
    r = jk.ratio("y", "x")
    assert rel(r.estimate, [3.38457065322737]) < 1e-12 and rel(r.se, [0.18182311563108]) < 1e-12
    q = jk.quantile("y", 0.5)
    assert rel([q.estimate[0], q.se[0], q.ci_low[0], q.ci_high[0]], [23, 0.528625213565332, 23, 25.5]) < 1e-12


def test_user_replicate_weights_other_scale_rscales_match_R():
    """R: dd <- cbind(d, weights(jk, "analysis")) (columns r1..r10);
    rs <- seq(0.5, 1.5, length.out=10); ur <- svrepdesign(data=dd, weights=~w,
    repweights="r[0-9]+", type="other", scale=0.7, rscales=rs, combined.weights=TRUE);
    svymean(~y, ur); degf(ur); the same with mse=TRUE"""
    df = rsmall()
    jk = SurveyDesign(df, weights="w", strata="st", psu="psu", fpc="fpc1", nest=True).to_replicate("JKn")
    R = jk.replicate_info["repw"]
    du = df.assign(**{f"r{j + 1}": R[:, j] for j in range(R.shape[1])})
    rs = np.linspace(0.5, 1.5, R.shape[1])
    u = SurveyDesign.from_replicate_weights(du, "w", r"^r[0-9]+$", type="other", scale=0.7, rscales=rs)
    assert rel(u.mean("y").se, [0.704800712931459]) < 1e-12 and u.degf == 7
    um = SurveyDesign.from_replicate_weights(du, "w", r"^r[0-9]+$", type="other", scale=0.7, rscales=rs,
                                             mse=True)
    assert rel(um.mean("y").se, [0.704807221302279]) < 1e-12
    # multipliers instead of analysis weights
    mult = du.assign(**{f"r{j + 1}": R[:, j] / df.w for j in range(R.shape[1])})
    m = SurveyDesign.from_replicate_weights(mult, "w", r"^r[0-9]+$", type="other", scale=0.7, rscales=rs,
                                            combined_weights=False)
    assert rel(m.mean("y").se, [0.704800712931459]) < 1e-12
    with pytest.raises(DesignError, match="rscales"):
        SurveyDesign.from_replicate_weights(du, "w", r"^r[0-9]+$", type="JKn")
    with pytest.raises(DesignError, match="rho"):
        SurveyDesign.from_replicate_weights(du, "w", r"^r[0-9]+$", type="BRR", rho=0.5)


def test_bootstraps_as_R():
    """R: as.svrepdesign(d0, type="bootstrap", replicates=50)$scale = 0.0306122448979592
    (nbar/((nbar-1)(R-1)), nbar = harmonic mean of 4, 4, 2 PSUs = 3) and type="subbootstrap":
    1/(R-1). The draws are numpy's (seeded), so replicates differ from R's; their variance
    is close to the Taylor one."""
    df = rsmall()
    d0 = SurveyDesign(df, weights="w", strata="st", psu="psu", nest=True)
    b = d0.to_replicate("bootstrap", replicates=50, seed=1)
    assert rel([b.replicate_info["scale"]], [0.0306122448979592]) < 1e-12
    s = d0.to_replicate("subbootstrap", replicates=50, seed=1)
    assert rel([s.replicate_info["scale"]], [1 / 49]) < 1e-12
    # reproducible with a seed, different without
    assert np.array_equal(b.replicate_info["repw"], d0.to_replicate("bootstrap", replicates=50, seed=1)
                          .replicate_info["repw"])
    F = b.replicate_info["factors"]
    st_ = d0._stages[0]
    # every replicate draws n_h PSUs in every stratum (with replacement)
    per_h = np.add.reduceat(F, st_.starts, axis=0)
    assert np.all(per_h == st_.n_h[:, None])
    taylor = d0.mean("y").se[0]
    for kind in ("bootstrap", "subbootstrap"):
        ses = [d0.to_replicate(kind, replicates=200, seed=k).mean("y").se[0] for k in range(5)]
        assert abs(np.mean(ses) / taylor - 1) < 0.1, kind
    # with a stage-1 fpc the bootstrap draws without replacement from the pseudo-population
    d1 = SurveyDesign(df.assign(N=np.where(df.st == "C", 2.0, 5.0)), weights="w", strata="st", psu="psu",
                      nest=True, fpc="N")
    F1 = d1.to_replicate("bootstrap", replicates=100, seed=3).replicate_info["factors"]
    c = d1._stages[0].starts[2]                      # stratum C: N = n = 2, every PSU once
    assert np.all(F1[c:c + 2] == 1)
    assert F1[:8].max() <= 2                         # N=5 pseudo-units from 4 PSUs: at most 2 copies


def test_to_replicate_options_are_checked():
    d = SurveyDesign(rsmall(), weights="w", strata="st", psu="psu", nest=True)
    with pytest.raises(DesignError, match="JKn"):
        d.to_replicate("JK1")                        # R: "Can't use JK1 for a stratified design"
    with pytest.raises(DesignError, match="replicates"):
        d.to_replicate("JKn", replicates=50)
    with pytest.raises(DesignError, match="rho"):
        d.to_replicate("BRR", rho=0.3)
    with pytest.raises(DesignError, match="unknown replicate type"):
        d.to_replicate("jackknife")
    with pytest.raises(DesignError, match="two PSUs"):
        d.to_replicate("BRR")
    f = SurveyDesign(pairs().assign(N=10.0), weights="w", strata="h", psu="p", nest=True, fpc="N")
    with pytest.warns(UserWarning, match="finite population correction is dropped"):
        f.to_replicate("BRR")
    m = SurveyDesign(small(), weights="w", strata="st", psu=["psu", "ssu"], fpc=["fpc1", "fpc2"], nest=True)
    with pytest.warns(UserWarning, match="after the first stage"):
        m.to_replicate("JKn")


@settings(max_examples=30, deadline=None)
@given(frames)
def test_row_permutation_changes_nothing_stratified(data):
    """Strata, clusters (nest=True), fpc, categorical shares and totals: same results for
    any row order."""
    y, w, g, rnd = data
    n = len(y)
    i = np.arange(n)
    df = pd.DataFrame({"y": y, "w": w, "g": np.array(["a", "b"])[g], "h": i % 2, "c": (i // 2) % 2,
                       "N": np.where(i % 2 == 0, 50.0, 80.0)})
    perm = list(range(n))
    rnd.shuffle(perm)
    kw = dict(weights="w", strata="h", psu="c", nest=True, fpc="N", lonely_psu="adjust")
    a = SurveyDesign(df, **kw)
    b = SurveyDesign(df.iloc[perm], **kw)
    for f in (lambda d: d.mean("y", by="g"), lambda d: d.total("y"), lambda d: d.proportion("g")):
        pd.testing.assert_frame_equal(f(a), f(b), rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(frames)
def test_constant_weights_and_fpc_give_srswor(data):
    """All weights equal (to N/n), no clusters, fpc = N: se(mean) = sqrt((1 - n/N) s^2/n),
    se(total) = N se(mean), deff = 1."""
    y, _, _, _ = data
    y = np.array(y)
    n = y.size
    N = 3.0 * n
    if np.ptp(y) < 1e-6:
        return
    d = SurveyDesign(pd.DataFrame({"y": y, "w": N / n, "N": N}), weights="w", fpc="N")
    se = np.sqrt((1 - n / N) * y.var(ddof=1) / n)
    m = d.mean("y", deff=True)
    assert np.isclose(m.se[0], se, rtol=1e-9, atol=1e-12)
    assert np.isclose(d.total("y").se[0], N * se, rtol=1e-9, atol=1e-9)
    assert np.isclose(m.deff[0], 1.0, rtol=1e-9)


def test_weights_implied_by_fpc_match_R():
    """R: a <- svydesign(id=~psu+ssu, strata=~st, fpc=~fpc1+fpc2, nest=TRUE, data=d)
    (no weights: prod_k N_k/n_k); svymean(~y, a); sum(weights(a)) = 962"""
    d = SurveyDesign(rsmall(), strata="st", psu=["psu", "ssu"], fpc=["fpc1", "fpc2"], nest=True)
    assert rel([d.weights.sum()], [962.0]) < 1e-13
    assert rel(d.mean("y").estimate, [22.184554747054747]) < 1e-12
    assert rel(d.mean("y").se, [0.681401574428763]) < 1e-12


def test_domain_glm_ratio_var_match_R():
    """R: s <- subset(d1, g=="g1"); svyglm(y ~ b + x, s); svyratio(~y, ~x, s, na.rm=TRUE);
    svyvar(~y, s) (g renamed for svyglm, see above)"""
    df = rsmall()
    s = SurveyDesign(df, weights="w", strata="st", psu="psu", fpc="fpc1", nest=True).subset(df.g == "g1")
    g = s.glm("y ~ b + x")
    assert rel(g.estimate, [18.6049947361833894, 10.0166224055429929, -0.0933397996068694]) < 1e-12
    assert rel(g.se, [1.4557897759770886, 1.7733569828888622, 0.1912409213481404]) < 1e-12
    assert (g.df == 5).all()
    r = s.ratio("y", "x")
    assert rel([r.estimate[0], r.se[0]], [4.000663129973475, 0.533441253212215]) < 1e-12
    v = s.var("y")
    assert rel([v.estimate[0], v.se[0]], [41.5599739923155, 10.2619819208308]) < 1e-12
