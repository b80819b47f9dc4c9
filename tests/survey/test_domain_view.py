"""Domain views (``SurveyDesign.domain_view``) and one-pass coded totals
(``SurveyDesign.coded_totals``) give the numbers of ``subset`` / ``total_vcov`` on
every kind of Taylor design: stratified, clustered, multistage with fpc, each lonely-PSU
rule. ``subset`` itself is tested against R (test_oracle.py, R ``svyby``/``subset``), so
equality to 1e-12 here carries the R agreement over."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.survey.design import SurveyDesign


def _data(n=3000, seed=7):
    rng = np.random.default_rng(seed)
    st = rng.integers(0, 12, n)
    psu = st * 100 + rng.integers(0, 6, n)
    psu[st == 11] = 1100      # a stratum with a single PSU (for the lonely rules)
    ssu = psu * 10 + rng.integers(0, 4, n)
    df = pd.DataFrame({
        "st": st, "psu": psu, "ssu": ssu,
        "w": rng.uniform(0.5, 4, n),
        "y": rng.normal(40, 12, n).round(),
        "cat": pd.Categorical(rng.choice(list("abcd"), n)),
        "g": rng.choice(["x", "y", "z", "q"], n, p=[.5, .3, .15, .05]),
        "N1": 0.0, "N2": 0.0,
    })
    n_psu = df.groupby("st")["psu"].transform("nunique")
    df["N1"] = n_psu * 3
    n_ssu = df.groupby("psu")["ssu"].transform("nunique")
    df["N2"] = n_ssu * 2.5
    df.loc[df["y"] < 30, "y"] = np.nan
    return df


DESIGNS = {
    "srs": dict(weights="w"),
    "strat": dict(weights="w", strata="st"),
    "clus": dict(weights="w", psu="psu"),
    "strat_clus_remove": dict(weights="w", strata="st", psu="psu", lonely_psu="remove"),
    "strat_clus_adjust": dict(weights="w", strata="st", psu="psu", lonely_psu="adjust"),
    "strat_clus_average": dict(weights="w", strata="st", psu="psu", lonely_psu="average"),
    "strat_clus_certainty": dict(weights="w", strata="st", psu="psu", lonely_psu="certainty"),
    "twostage_fpc": dict(weights="w", strata=["st", None], psu=["psu", "ssu"], fpc=["N1", "N2"],
                         lonely_psu="remove"),
}


def _design(df, spec):
    spec = dict(spec)
    if isinstance(spec.get("strata"), list):
        spec["strata"] = [s for s in spec["strata"] if s]
    return SurveyDesign(df, **spec)


def _close(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * max(1.0, float(np.nanmax(np.abs(b)))))


@pytest.mark.parametrize("name", list(DESIGNS))
def test_domain_view_equals_subset(name):
    df = _data()
    d = _design(df, DESIGNS[name])
    for mask in (df["g"] == "z", df["g"] == "q", (df["g"] == "x") & (df["st"] < 4), df["g"] != "q"):
        sub, view = d.subset(mask.to_numpy()), d.domain_view(mask.to_numpy())
        assert view.n == int(mask.sum()) and view.degf == sub.degf
        for est in ("mean", "total"):
            a, b = getattr(sub, est)("y"), getattr(view, est)("y")
            _close(b["estimate"], a["estimate"])
            _close(b["se"], a["se"])
            assert list(b["n"]) == list(a["n"])
        a, b = sub.proportion("cat", by="g"), view.proportion("cat", by="g")
        _close(b["estimate"], a["estimate"])
        _close(b["se"], a["se"])
        _close(np.asarray(b.attrs["vcov"]), np.asarray(a.attrs["vcov"]))
        a, b = sub.quantile("y", 0.5), view.quantile("y", 0.5)
        _close(b[["estimate", "ci_low", "ci_high"]], a[["estimate", "ci_low", "ci_high"]])
        Y = np.c_[np.nan_to_num(df["y"].to_numpy()), np.ones(len(df))]
        rows = np.flatnonzero(mask.to_numpy())
        ta, Va = sub.total_vcov(Y)
        tb, Vb = view.total_vcov(Y[rows])
        _close(tb, ta)
        _close(Vb, Va)


def test_view_of_a_view_and_subset_of_a_view():
    df = _data()
    d = _design(df, DESIGNS["strat_clus_remove"])
    m1 = (df["g"] != "q").to_numpy()
    m2 = (df["st"] < 6).to_numpy()
    v = d.domain_view(m1)
    vv = v.domain_view(m2[m1])
    sub = d.subset(m1 & m2)
    _close(vv.mean("y")["se"], sub.mean("y")["se"])
    _close(v.subset(m2[m1]).mean("y")["se"], sub.mean("y")["se"])


def test_view_keeps_subset_behaviour_for_replicates_and_is_not_replicated():
    df = _data()
    df = df[df["st"] != 11].reset_index(drop=True)     # JKn: no single-PSU stratum
    d = _design(df, DESIGNS["strat_clus_remove"])
    m = (df["g"] == "x").to_numpy()
    r = d.to_replicate("JKn")
    rv = r.domain_view(m)
    _close(rv.mean("y")["se"], r.subset(m).mean("y")["se"])
    from diaspora_survey.errors import DesignError
    with pytest.raises(DesignError):
        d.domain_view(m).to_replicate("JKn")


@pytest.mark.parametrize("name", list(DESIGNS))
def test_coded_totals_equal_total_vcov(name):
    df = _data()
    d = _design(df, DESIGNS[name]).subset((df["g"] != "q").to_numpy())
    code = df["cat"].cat.codes.to_numpy().astype(np.int64)
    y = np.nan_to_num(df["y"].to_numpy())
    ok = ~np.isnan(df["y"].to_numpy())
    C = 4
    key_y = np.where(ok, code, -1)
    t, V = d.coded_totals([(y, key_y), (np.ones(len(df)), np.where(ok, C + code, -1))], 2 * C)
    Y = np.zeros((len(df), 2 * C))
    Y[np.flatnonzero(ok), code[ok]] = y[ok]
    Y[np.flatnonzero(ok), C + code[ok]] = 1.0
    t2, V2 = d.total_vcov(Y)
    _close(t, t2)
    _close(V, V2)
