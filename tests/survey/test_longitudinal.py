"""Longitudinal estimates on the hand-built panel (tests/panel_helpers.py) against R ``survey``
4.1.1 and hand calculations.

R values: the linked pairs (``PanelLink.pairs()`` with the attrition weights ``aw_*`` as
computed by ``attrition_weights``) were written to CSV and run through
``tests/survey/panel_check.R`` (R 4.2, survey 4.1.1), e.g.::

    d <- svydesign(ids = ~1, weights = ~aw_propensity_rake, data = subset(p, retained))
    svyciprop(~ret, d, method = "logit")
    svyby(~ret, ~host_region, d, svyciprop, method = "logit", vartype = c("se", "ci"))
    svychisq(~host_region + status, d, statistic = "F")
    svykm(Surv(months, ret) ~ 1, d, se = FALSE); svykm(..., se = TRUE); confint(km, parm = c(1, 10))
    svycontrast(svyby(~retn, ~grp, d, svymean), c(a = 1, b = -1))
    svymean(~status, d); svyby(~country_fu, ~country, d, svymean)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import panel_helpers as ph
from diaspora_survey.errors import EstimationError
from diaspora_survey.harmonise.panel import link
from diaspora_survey.survey import longitudinal as lg
from diaspora_survey.weighting.attrition import attrition_weights

COV = ["age_group", "sex", "host_region"]


@pytest.fixture(scope="module")
def pairs():
    b = ph.baseline()
    f = ph.followup(b)
    p = link({"w1": b.drop(columns=["weight"]), "w2": f}, weights=b["weight"]).pairs()
    p["attrition_weight"] = attrition_weights(p, COV, method="propensity+rake").weights
    return p


@pytest.fixture(scope="module")
def design(pairs):
    return lg.panel_design(pairs)


def test_returned_share_by_hand(design):
    """p = sum w y / sum w; var = n/(n-1) sum (w_i (y_i - p))^2 / (sum w)^2 (ids = ~1)."""
    d = design.data
    w = d["attrition_weight"].to_numpy()
    y = (d["status"].astype(str) == "returned").to_numpy(dtype=float)
    p = (w * y).sum() / w.sum()
    n = len(w)
    se = np.sqrt(n / (n - 1) * ((w * (y - p)) ** 2).sum()) / w.sum()
    r = lg.movement_shares(design).set_index("status").loc["returned"]
    assert r["estimate"] == pytest.approx(p, rel=1e-12)
    assert r["se"] == pytest.approx(se, rel=1e-10)
    assert r["n"] == n and r["n_cell"] == int(y.sum())


def test_returned_share_matches_r(design):
    r = lg.movement_shares(design).set_index("status").loc["returned"]
    assert r["estimate"] == pytest.approx(0.4304591559393738, rel=1e-8)   # svyciprop: glm fit
    assert r["se"] == pytest.approx(0.0899221327106348, rel=1e-6)
    assert r["ci_low"] == pytest.approx(0.2641346544498135, rel=1e-6)
    assert r["ci_high"] == pytest.approx(0.6141124402504832, rel=1e-6)
    shares = lg.movement_shares(design).set_index("status")
    assert shares["estimate"].sum() == pytest.approx(1.0)
    # svymean(~status, d)
    for st, (est, se) in {"stayed": (0.462071882538154, 0.0911122394697747),
                          "moved_on": (0.107468961589975, 0.0724123316748015),
                          "returned": (0.430459155871870, 0.0899221327106348)}.items():
        assert shares.loc[st, "estimate"] == pytest.approx(est, rel=1e-9)
        assert shares.loc[st, "se"] == pytest.approx(se, rel=1e-6)


R_BY_REGION = {  # svyby(~ret, ~host_region, d, svyciprop, method = "logit"): estimate, se, ci_l, ci_u
    "eu_eea": (0.180825174636521, 0.122259962400870, 0.0318585051759143, 0.596894044862529),
    "south_caucasus": (0.442457027051514, 0.176028212350929, 0.1327709798581601, 0.804440910629182),
    "central_asia": (0.410832903550162, 0.182884091349273, 0.1088190714997393, 0.799282230836638),
    "turkey": (0.699842793379705, 0.175653880704093, 0.2531799399757960, 0.941300020924433),
}


def test_returned_share_by_region_matches_r(design):
    """Estimates, SEs and intervals as R; the intervals of svyby(svyciprop) use the df of each
    region's subset (R: degf() of the subset), as movement_shares and group_share do."""
    r = lg.movement_shares(design, by="host_region")
    r = r[r["status"] == "returned"].set_index("host_region")
    for region, (est, se, lo, hi) in R_BY_REGION.items():
        assert r.loc[region, "estimate"] == pytest.approx(est, rel=1e-8), region
        assert r.loc[region, "se"] == pytest.approx(se, rel=1e-6), region
        assert r.loc[region, "ci_low"] == pytest.approx(lo, rel=1e-6), region
        assert r.loc[region, "ci_high"] == pytest.approx(hi, rel=1e-6), region
        g = lg.group_share(design, "returned", group=region)
        assert g["estimate"] == pytest.approx(est, rel=1e-8)
        assert g["se"] == pytest.approx(se, rel=1e-6)
        assert (g["ci_low"], g["ci_high"]) == (pytest.approx(lo, rel=1e-6), pytest.approx(hi, rel=1e-6))


def test_region_test_matches_r(design):
    t = lg.region_test(design)
    assert t["statistic"] == pytest.approx(1.14257138806651, rel=1e-6)
    assert t["ndf"] == pytest.approx(5.68303022090988, rel=1e-6)
    assert t["ddf"] == pytest.approx(198.90605773184583, rel=1e-6)
    assert t["p_value"] == pytest.approx(0.339205840975072, rel=1e-6)


def test_difference_between_groups_matches_r(design):
    g = lg.group_share(design, "returned", group=["south_caucasus", "central_asia"], versus="eu_eea")
    assert g["estimate"] == pytest.approx(0.246133937915661, rel=1e-9)
    assert g["se"] == pytest.approx(0.176497457669460, rel=1e-6)
    assert g["estimate_group"] == pytest.approx(0.426959112019951, rel=1e-9)
    one = lg.group_share(design, "returned", group=["south_caucasus", "central_asia"])
    assert one["se"] == pytest.approx(0.127294360273818, rel=1e-6)
    assert one["ci_low"] == pytest.approx(0.199094399605560, rel=1e-6)
    assert one["ci_high"] == pytest.approx(0.690706936768829, rel=1e-6)
    assert one["df"] == 17
    with pytest.raises(EstimationError, match="no category"):
        lg.group_share(design, "returned", group="europe")


def test_cumulative_return_matches_r_svykm(design):
    km = lg.cumulative_return(design, end="2023-03-01").set_index("month")
    assert list(km.index) == [1, 6]
    assert 1 - km.loc[1, "estimate"] == pytest.approx(0.852029982011871, rel=1e-9)   # svykm(se=FALSE)
    assert 1 - km.loc[6, "estimate"] == pytest.approx(0.569540844128130, rel=1e-9)
    assert km.loc[1, "varlog"] == pytest.approx(0.00358836893160006, rel=1e-6)       # svykm(se=TRUE)
    assert km.loc[6, "varlog"] == pytest.approx(0.01257322953518583, rel=1e-6)
    na = lg.cumulative_return(design, end="2023-03-01", estimator="nelson_aalen").set_index("month")
    assert 1 - na.loc[1, "estimate"] == pytest.approx(0.862456972749604, rel=1e-9)
    assert 1 - na.loc[6, "estimate"] == pytest.approx(0.619081487153922, rel=1e-9)
    # confint(km, parm = c(1, 10)): S interval -> F interval
    assert (na.loc[1, "ci_low"], na.loc[1, "ci_high"]) == (pytest.approx(1 - 0.969900002279651, rel=1e-6),
                                                           pytest.approx(1 - 0.766916205893504, rel=1e-6))
    assert (na.loc[6, "ci_low"], na.loc[6, "ci_high"]) == (pytest.approx(1 - 0.771246840357368, rel=1e-6),
                                                           pytest.approx(1 - 0.496938032911904, rel=1e-6))


def test_cumulative_return_by_hand_with_delayed_entry(design):
    """With start = 2022-03-01 a respondent who left in December 2021 enters the risk set at
    month 3: the product limit over the at-risk weights by hand."""
    d = design.data
    w = d["attrition_weight"].to_numpy()
    dep = d["departure_date"].dt.to_period("M")
    ret = (d["status"].astype(str) == "returned").to_numpy()
    t_ret = (d["return_date_fu"].dt.to_period("M") - dep).map(lambda x: x.n if pd.notna(x) else np.nan)
    t_end = (pd.Period("2023-03", "M") - dep).map(lambda x: x.n).to_numpy()
    t = np.where(ret, t_ret.to_numpy(dtype=float), t_end)
    entry = (pd.Period("2022-03", "M") - dep).map(lambda x: x.n).to_numpy()
    km = lg.cumulative_return(design, end="2023-03-01", start="2022-03-01").set_index("month")
    S = 1.0
    for m in km.index:
        ok = ~(ret & (t < entry))
        at = ok & (entry <= m) & (t >= m)
        ev = at & ret & (t == m)
        S *= 1 - w[ev].sum() / w[at].sum()
        assert 1 - km.loc[m, "estimate"] == pytest.approx(S, rel=1e-12)
        assert km.loc[m, "n_risk"] == at.sum()
    assert km.attrs["n_entry_after_return"] == int((ret & (t < entry)).sum())


def test_replicate_variance_is_an_option(design):
    jk = lg.cumulative_return(design, end="2023-03-01", replicates="JK1")
    lin = lg.cumulative_return(design, end="2023-03-01")
    assert jk.attrs["variance"] == "JK1" and lin.attrs["variance"] == "linearisation"
    assert np.allclose(jk["estimate"], lin["estimate"])
    assert np.all(jk["se"] > 0) and np.allclose(jk["se"], lin["se"], rtol=0.5)


R_RETENTION = {"18-29": (0.434554973821989, 0.118136859985472, 0.219328507015889, 0.677652084461222),
               "30-44": (0.6, 0.115441293056210, 0.354048448644953, 0.804116010214498),
               "45+": (0.766497461924204, 0.104804543575022, 0.490758368665676, 0.917907323197997)}


def test_retention_table_and_test_match_r(pairs):
    """d0 <- svydesign(ids = ~1, weights = ~weight, data = p); svyciprop(~retained, d0);
    svyby(~retained, ~age_group, d0, svyciprop, method = "logit"); svychisq(~age_group + retf, d0)."""
    tab, tests = lg.retention(pairs, ["age_group", "sex"])
    allr = tab[tab["variable"] == "all"].iloc[0]
    assert allr["estimate"] == pytest.approx(0.6020236087689712, rel=1e-8)
    assert allr["se"] == pytest.approx(0.0667346941422524, rel=1e-6)
    assert allr["ci_low"] == pytest.approx(0.4642002047999512, rel=1e-6)
    age = tab[tab["variable"] == "age_group"].set_index("category")
    for cat, (est, se, lo, hi) in R_RETENTION.items():
        assert age.loc[cat, "estimate"] == pytest.approx(est, rel=1e-8)
        assert age.loc[cat, "se"] == pytest.approx(se, rel=1e-6)
        assert (age.loc[cat, "ci_low"], age.loc[cat, "ci_high"]) == (pytest.approx(lo, rel=1e-6),
                                                                     pytest.approx(hi, rel=1e-6))
    assert age["n"].sum() == len(pairs) and age["n_retained"].sum() == pairs["retained"].sum()
    t = tests.set_index("variable").loc["age_group"]
    assert t["statistic"] == pytest.approx(1.94440029260982, rel=1e-6)
    assert t["ndf"] == pytest.approx(1.99773708466822, rel=1e-6)
    assert t["ddf"] == pytest.approx(117.86648799542492, rel=1e-6)
    assert t["p_value"] == pytest.approx(0.14768482426240, rel=1e-6)


R_TRANSITIONS = {  # svyby(~country_fu, ~country, d, svymean): estimate, SE
    ("DE", "DE"): (0.648548209243379, 0.17240703255398), ("DE", "ES"): (0.170626616652331, 0.153150588894418),
    ("DE", "RU"): (0.180825174104291, 0.122259962400870), ("GE", "RU"): (0.442457026653273, 0.176028212350929),
    ("KZ", "KG"): (0.258822488794987, 0.207656544009597), ("KZ", "KZ"): (0.330344607654870, 0.162936884015563),
    ("TR", "TR"): (0.300157206616518, 0.175653880704093)}


def test_transition_table(design):
    tr = lg.transition_table(design)
    t = tr.set_index(["country", "country_fu"])
    for key, (est, se) in R_TRANSITIONS.items():
        assert t.loc[key, "estimate"] == pytest.approx(est, rel=1e-9), key
        assert t.loc[key, "se"] == pytest.approx(se, rel=1e-6), key
    assert (tr["ci_low"] >= 0).all() and (tr["ci_high"] <= 1).all()      # logit intervals
    assert set(tr.columns) >= {"country", "country_fu", "estimate", "se", "n", "n_cell"}
    assert tr.groupby("country")["estimate"].sum().to_numpy() == pytest.approx(1.0)
    assert tr["n_cell"].sum() == len(design.data)
    de = tr[(tr["country"] == "DE") & (tr["country_fu"] == "RU")]
    d = design.data
    m = (d["country"] == "DE").to_numpy()
    w = d["attrition_weight"].to_numpy()
    assert de["estimate"].iloc[0] == pytest.approx(w[m & (d["country_fu"] == "RU").to_numpy()].sum() / w[m].sum())


def test_panel_design_needs_retained(pairs):
    with pytest.raises(EstimationError, match="retained"):
        lg.panel_design(pairs.drop(columns=["retained"]))
    with pytest.raises(EstimationError, match="no retained"):
        lg.panel_design(pairs.assign(retained=False))
