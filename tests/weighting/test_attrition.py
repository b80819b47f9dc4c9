"""Attrition weights on the hand-built panel (tests/panel_helpers.py).

R (survey 4.1.1; tests/survey/panel_check.R)::

    d0 <- svydesign(ids = ~1, weights = ~weight, data = p)
    m <- svyglm(retained ~ age_group + sex + host_region, design = d0, family = quasibinomial())
    r$w_p <- r$weight / fitted(m)[p$retained]                 # = aw_propensity, max diff 4e-12
    rk <- rake(svydesign(ids = ~1, weights = ~w_p, data = r), list(~age_group, ~sex, ~host_region),
               list(pa, ps, pr))   # population = tapply(p$weight, p$v, sum): max diff 1.2e-10
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import panel_helpers as ph
from diaspora_survey.errors import WeightingError
from diaspora_survey.harmonise.panel import link
from diaspora_survey.weighting.attrition import attrition_weights

COV = ["age_group", "sex", "host_region"]
R_COEF = {"(Intercept)": -0.589821408611445, "age_group[30-44]": 0.678908047968744,
          "age_group[45+]": 1.477792234566150, "sex[male]": 0.297979712852208,
          "host_region[south_caucasus]": 0.286442150416978, "host_region[central_asia]": 0.116858113496506,
          "host_region[turkey]": 0.281748509141615}


@pytest.fixture(scope="module")
def pairs():
    b = ph.baseline()
    return link({"w1": b.drop(columns=["weight"]), "w2": ph.followup(b)}, weights=b["weight"]).pairs()


def _margins(df, w, v):
    return pd.Series(w, index=df.index).groupby(df[v], observed=False).sum()


def test_propensity_model_matches_r_svyglm(pairs):
    r = attrition_weights(pairs, COV, method="propensity")
    coef = r.coefficients.set_index("term")["estimate"]
    for term, v in R_COEF.items():
        assert coef[term] == pytest.approx(v, rel=1e-8, abs=1e-10), term
    ret = pairs["retained"].to_numpy()
    assert np.allclose(r.weights.to_numpy(), pairs["weight"].to_numpy()[ret] / r.propensity.to_numpy()[ret])
    assert r.n_retained == ret.sum() and r.n_baseline == len(pairs)


@pytest.mark.parametrize("method,classes", [("rake", 0), ("propensity+rake", 0), ("propensity+rake", 3)])
def test_attrition_weights_reproduce_the_baseline_weighted_margins(pairs, method, classes):
    r = attrition_weights(pairs, COV, method=method, classes=classes, min_cell=5)
    ret = pairs[pairs["retained"]]
    for v in COV:
        base = _margins(pairs, pairs["weight"].to_numpy(), v)
        after = _margins(ret, r.weights.to_numpy(), v)
        assert after.to_numpy() == pytest.approx(base.to_numpy(), rel=1e-8), v
    m = r.margins
    assert np.allclose(m["baseline"], m["retained_adjusted"], atol=1e-8)
    assert r.weights.sum() == pytest.approx(pairs["weight"].sum())
    assert r.diagnostics["n"] == len(ret) and r.diagnostics["kish_deff"] >= 1


def test_raked_weights_match_r(pairs):
    """Same weights as R's rake() of the propensity-weighted retained panel (max abs diff 1.2e-10
    in R); here: raking the propensity weights equals propensity+rake."""
    p = attrition_weights(pairs, COV, method="propensity")
    pr = attrition_weights(pairs, COV, method="propensity+rake")
    from diaspora_survey.weighting import rake

    ret = pairs[pairs["retained"]]
    targets = {v: {str(k): x for k, x in _margins(pairs, pairs["weight"].to_numpy(), v).items() if x > 0}
               for v in COV}
    again = rake(ret[COV].astype(str), targets, base_weight=p.weights.to_numpy(), kind="counts", tol=1e-10)
    assert np.allclose(again.weights.to_numpy(), pr.weights.to_numpy(), rtol=1e-8)


def test_propensity_classes_weighting_class_adjustment(pairs):
    r = attrition_weights(pairs, COV, method="propensity", classes=3, min_cell=1)
    c = r.classes
    assert len(c) == 3 and c["n"].sum() == len(pairs) and c["n_retained"].sum() == pairs["retained"].sum()
    # within a class the adjustment is W_class / W_retained
    assert np.allclose(c["adjustment"], 1 / c["response_rate"])
    assert r.weights.sum() == pytest.approx(pairs["weight"].sum())


def test_small_classes_are_merged_and_reported(pairs):
    r = attrition_weights(pairs, COV, method="propensity", classes=6, min_cell=8)
    assert len(r.classes) < 6 and r.classes["n_retained"].min() >= 8
    assert any("merged" in d for d in r.decisions)


def test_trimming_is_applied_and_reported(pairs):
    r = attrition_weights(pairs, COV, method="propensity", trim_upper=1.5)
    w = r.weights.to_numpy()
    assert w.max() <= 1.5 * w.mean() + 1e-9
    assert w.sum() == pytest.approx(attrition_weights(pairs, COV, method="propensity").weights.sum())
    assert any("trim" in d for d in r.decisions)


def test_bad_input(pairs):
    with pytest.raises(WeightingError, match="not a baseline variable"):
        attrition_weights(pairs, ["nope"])
    with pytest.raises(WeightingError, match="numeric"):
        attrition_weights(pairs, ["birth_year"])
    with pytest.raises(WeightingError, match="unknown attrition method"):
        attrition_weights(pairs, COV, method="ipw")
    with pytest.raises(WeightingError, match="classes"):
        attrition_weights(pairs, COV, classes=1)
    with pytest.raises(WeightingError, match="no baseline respondent"):
        attrition_weights(pairs.assign(retained=False), COV)
    lost = pairs.copy()
    lost.loc[lost["host_region"] == "turkey", "retained"] = False
    with pytest.raises(WeightingError, match="'turkey' has no re-interviewed"):
        attrition_weights(lost, COV)


def test_no_attrition_keeps_the_baseline_weights(pairs):
    allr = pairs[pairs["retained"]].copy()
    r = attrition_weights(allr, COV)
    assert np.allclose(r.weights.to_numpy(), allr["weight"].to_numpy())
    assert r.response_rate == 1.0 and "no attrition" in r.decisions[0]


def test_trimming_with_raking_keeps_the_margins_and_the_bound(pairs):
    r = attrition_weights(pairs, COV, method="propensity+rake", trim_upper=1.6)
    w = r.weights.to_numpy()
    assert w.max() <= 1.6 * w.mean() * (1 + 1e-9)
    assert np.allclose(r.margins["retained_adjusted"], r.margins["baseline"], atol=1e-8)
    assert any("re-raked" in d for d in r.decisions)
