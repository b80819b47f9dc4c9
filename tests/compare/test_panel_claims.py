"""Panel claims (returned_share & co.) in the claims file: parsing, verdicts on the hand-built
panel (values as tests/survey/test_longitudinal.py, R survey 4.1.1), not evaluable without a panel."""
from __future__ import annotations

import pandas as pd
import pytest

import panel_helpers as ph
from diaspora_survey.compare.claims import evaluate_claims, parse_claims
from diaspora_survey.errors import ProjectError
from diaspora_survey.harmonise.panel import link
from diaspora_survey.survey import longitudinal as lg
from diaspora_survey.weighting.attrition import attrition_weights

EMPTY = pd.DataFrame(columns=["indicator", "category", "adjustment", "group"])


@pytest.fixture(scope="module")
def design():
    b = ph.baseline()
    p = link({"w1": b.drop(columns=["weight"]), "w2": ph.followup(b)}, weights=b["weight"]).pairs()
    p["attrition_weight"] = attrition_weights(p, ["age_group", "sex", "host_region"]).weights
    return lg.panel_design(p)


def _claims(*items):
    return parse_claims({"claims": list(items)})


def test_panel_claims_verdicts(design):
    cl = _claims(
        {"id": "half", "statement": "half returned", "indicator": "returned_share", "metric": "estimate",
         "op": ">=", "threshold": 0.5},
        {"id": "cis", "statement": "more in the CIS than in Europe", "indicator": "returned_share",
         "by": "host_region", "group": ["south_caucasus", "central_asia"], "versus": "eu_eea",
         "metric": "difference", "op": ">", "threshold": 0},
        {"id": "tr", "statement": "a tenth in Turkey", "indicator": "returned_share", "group": "turkey",
         "metric": "estimate", "op": ">", "threshold": 0.1},
        {"id": "mv", "statement": "few moved on", "indicator": "moved_on_share", "metric": "estimate",
         "op": "<", "threshold": 0.5})
    r = evaluate_claims(EMPTY, cl, panel=design).set_index("claim")
    # R: svyciprop(~ret, d): 0.4305 [0.2641, 0.6141] -> contains 0.5
    assert r.loc["half", "value"] == pytest.approx(0.4304591559393738, rel=1e-8)
    assert r.loc["half", "ci_low"] == pytest.approx(0.2641346544498135, rel=1e-6)
    assert r.loc["half", "verdict"] == "inconclusive"
    # R: svycontrast(...) 0.2461 (SE 0.1765), t on 35 df: the interval contains 0
    assert r.loc["cis", "value"] == pytest.approx(0.246133937915661, rel=1e-9)
    assert r.loc["cis", "verdict"] == "inconclusive"
    assert r.loc["cis", "group"] == "south_caucasus+central_asia vs eu_eea"
    # R: svyciprop(~ret, subset(d, host_region == "turkey")): 0.6998 [0.2532, 0.9413] > 0.1
    assert r.loc["tr", "verdict"] == "supported"
    assert r.loc["mv", "verdict"] == "supported"
    assert (r["reason"].str.startswith("CI [")).all()


def test_panel_claims_without_a_panel_are_not_evaluable():
    cl = _claims({"id": "half", "statement": "s", "indicator": "returned_share", "metric": "estimate",
                  "op": ">=", "threshold": 0.5})
    r = evaluate_claims(EMPTY, cl)
    assert r["verdict"].tolist() == ["not evaluable"] and "panel" in r["reason"].iloc[0]


@pytest.mark.parametrize("bad,match", [
    ({"metric": "ratio"}, "not available"),
    ({"metric": "difference"}, "needs 'versus'"),
    ({"versus": "eu_eea"}, "needs 'versus'"),
    ({"category": "x"}, "not used by panel"),
    ({"indicator": "mean_age", "by": "host_region"}, "panel indicators"),
    ({"indicator": "returned_shares"}, "not known"),
])
def test_panel_claim_validation(bad, match):
    c = {"id": "a", "statement": "s", "indicator": "returned_share", "metric": "estimate", "op": ">",
         "threshold": 0, **bad}
    with pytest.raises(ProjectError, match=match):
        parse_claims({"claims": [c]})


def test_example_claims_file_has_panel_claims_that_load():
    from diaspora_survey.compare.claims import load_claims

    cl = {c.id: c for c in load_claims("codebooks/claims.yaml")}
    assert cl["returns_cis_above_europe"].versus == "europe"
    assert cl["returns_cis_above_europe"].group == "south_caucasus+central_asia"
    assert cl["half_returned"].is_panel and not cl["younger_mean_8y"].is_panel
