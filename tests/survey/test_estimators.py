"""Estimators: hand calculations, contrasts, tidy output, and the ``estimate`` CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from diaspora_survey.cli import main
from diaspora_survey.survey.design import SurveyDesign
from diaspora_survey.errors import EstimationError


@pytest.fixture
def waves():
    i = np.arange(40)
    return pd.DataFrame({
        "wave": np.where(i < 20, "w1", "w2"), "age": 20 + (i * 7) % 31 + (i >= 20) * 3.0,
        "edu": pd.Categorical(np.array(["low", "mid", "high"])[(i * 5) % 3],
                              categories=["low", "mid", "high"], ordered=True),
        "yes": (i % 4 == 0), "w": 1 + (i % 3) * 0.5, "c": i // 4, "h": i // 20})


def test_columns_and_srs_mean_by_hand(waves):
    d = SurveyDesign(waves)
    m = d.mean("age")
    assert list(m.columns) == ["variable", "estimate", "se", "ci_low", "ci_high", "df", "n", "cv"]
    y = waves.age.to_numpy()
    se = y.std(ddof=1) / np.sqrt(40)
    assert np.isclose(m.se[0], se, rtol=1e-12)
    t = stats.t.ppf(0.975, 39)
    assert np.isclose(m.ci_low[0], y.mean() - t * se, rtol=1e-12)
    assert m.n[0] == 40 and m.df[0] == 39 and np.isclose(m.cv[0], se / y.mean())
    z = d.mean("age", df=float("inf"))
    assert np.isclose(z.ci_high[0], y.mean() + stats.norm.ppf(0.975) * se, rtol=1e-12)


def test_difference_between_waves(waves):
    """Contrast of two domain means: estimate = m2 - m1, se from the full covariance
    (independent strata here -> sqrt(se1^2 + se2^2))."""
    d = SurveyDesign(waves, weights="w", strata="h", psu="c")
    m = d.mean("age", by="wave")
    diff = d.difference(m, "w2", "w1")
    assert np.isclose(diff.estimate[0], m.estimate[1] - m.estimate[0], rtol=1e-13)
    assert np.isclose(diff.se[0], np.hypot(m.se[0], m.se[1]), rtol=1e-12)
    c = d.contrast(m, [-1, 1])
    assert np.isclose(c.se[0], diff.se[0], rtol=1e-14)
    with pytest.raises(EstimationError, match="no row labelled"):
        d.difference(m, "w3", "w1")


def test_proportion_levels_and_total(waves):
    d = SurveyDesign(waves, weights="w", psu="c")
    p = d.proportion("edu", by="wave")
    assert list(p.level[:3]) == ["low", "mid", "high"]
    assert np.allclose(p.groupby("wave", observed=True).estimate.sum(), 1.0)
    w = waves.w.to_numpy()
    share = w[(waves.edu == "mid") & (waves.wave == "w1")].sum() / w[waves.wave == "w1"].sum()
    assert np.isclose(p.estimate[1], share, rtol=1e-13)
    t = d.total("edu")
    assert np.isclose(t.estimate.sum(), w.sum())
    b = d.proportion("yes")
    assert list(b.level) == [False, True]


def test_quantile_math_rule_by_hand():
    """qrule='math': smallest x with weighted ECDF >= p (R qrule_math)."""
    df = pd.DataFrame({"x": [5.0, 1, 3, 2, 4], "w": [1.0, 1, 1, 1, 4]})
    d = SurveyDesign(df, weights="w")
    q = d.quantile("x", [0.25, 0.5, 0.75])
    # sorted x 1 2 3 4 5 with w 1 1 1 4 1; cum 1 2 3 7 8 of 8
    assert list(q.estimate) == [2.0, 4.0, 4.0]
    assert (q.ci_low <= q.estimate).all() or q.ci_low.isna().any()


def test_ciprop_methods_agree_roughly(waves):
    d = SurveyDesign(waves, weights="w", psu="c")
    res = {m: d.ciprop("yes", method=m) for m in ("logit", "beta", "wilson", "asin", "mean", "likelihood")}
    p = res["mean"].estimate[0]
    for m, r in res.items():
        assert r.ci_low[0] < p < r.ci_high[0], m
        assert np.isclose(r.se[0], res["mean"].se[0])
    with pytest.raises(EstimationError, match="level_of"):
        d.ciprop("wave")
    assert np.isclose(d.ciprop("wave", level_of="w2").estimate[0],
                      waves.w[waves.wave == "w2"].sum() / waves.w.sum())


def test_chisq_returns_statistic_df_p(waves):
    d = SurveyDesign(waves, weights="w", psu="c")
    r = d.chisq("wave", "edu")
    assert {"statistic", "ndf", "ddf", "p_value"} <= set(r.index)
    assert 0 <= r["p_value"] <= 1
    assert r.attrs["table"].shape == (2, 3)


def test_glm_poisson_and_binomial_run(waves):
    d = SurveyDesign(waves, weights="w", psu="c")
    g = d.glm("yes ~ age + C(wave)", family="binomial")
    assert list(g.term) == ["(Intercept)", "C(wave)[T.w2]", "age"]
    assert (g.se > 0).all() and g.df[0] == d.degf + 1 - 3
    p = d.glm("age ~ C(wave)", family="poisson")
    assert np.isclose(np.exp(p.estimate[0]), d.subset(waves.wave == "w1").mean("age").estimate[0])


def test_ratio_and_var(waves):
    d = SurveyDesign(waves, weights="w")
    r = d.ratio("age", "w")
    assert np.isclose(r.estimate[0], (waves.w * waves.age).sum() / (waves.w ** 2).sum())
    v = SurveyDesign(waves).var("age")
    assert np.isclose(v.estimate[0], waves.age.var(ddof=1))


# ------------------------------------------------------------------ CLI

def test_cli_estimate_json_and_csv(tmp_path, capsys, waves):
    f = tmp_path / "d.parquet"
    waves.to_parquet(f)
    rc = main(["estimate", str(f), "--mean", "age", "--proportion", "edu", "--by", "wave",
               "--weights", "w", "--psu", "c", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = json.loads(out)
    d = SurveyDesign(waves, weights="w", psu="c").mean("age", by="wave")
    assert np.isclose(rows[0]["se"], d.se[0], rtol=1e-12) and rows[0]["statistic"] == "mean"
    assert len(rows) == 2 + 6
    rc = main(["estimate", str(f), "--total", "age", "--weights", "w", "--csv"])
    assert rc == 0 and capsys.readouterr().out.startswith("statistic,variable,estimate")
    rc = main(["estimate", str(f), "--mean", "age", "--weights", "w"])
    assert rc == 0 and "age" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys, waves):
    f = tmp_path / "d.parquet"
    waves.to_parquet(f)
    assert main(["estimate", str(f), "--mean", "nope", "--weights", "w"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["estimate", "--project", str(tmp_path), "--mean", "age"]) == 2
    assert "harmonise" in capsys.readouterr().err
    assert main(["estimate", str(f), "--weights", "w"]) == 2


# ------------------------------------------------------------------ R references (survey 4.1.1)
# On test_design.rsmall().to_csv(index=False), read with read.csv;
# d1 <- svydesign(id=~psu, strata=~st, fpc=~fpc1, weights=~w, nest=TRUE, data=d),
# d0 the same without fpc.

from survey.test_design import rsmall, rel  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture
def d1():
    df = rsmall()
    df["b1"] = df.b == 1
    return SurveyDesign(df, weights="w", strata="st", psu="psu", fpc="fpc1", nest=True)


def test_ciprop_by_and_subset_match_R(d1):
    """R: svyby(~I(b==1), ~g, d1, svyciprop, method="beta", vartype="ci");
    svyciprop(~I(b==1), subset(d1, g=="g1"), method="beta") - Korn-Graubard n is nrow() of
    the group's subset; svyby(~I(b==1), ~g, d1, svyciprop, method="logit", vartype=c("se","ci"))"""
    c = d1.ciprop("b1", by="g", method="beta")
    assert rel(np.r_[c.estimate, c.ci_low, c.ci_high],
               [0.625, 0.53030303030303, 0.247403993517293, 0.427873197414607, 0.913373640191315,
                0.630890560521124]) < 1e-12
    s = d1.subset(d1.data.g == "g1").ciprop("b1", method="beta")
    assert rel([s.ci_low[0], s.ci_high[0]], [0.247403993517293, 0.913373640191315]) < 1e-12
    lg = d1.ciprop("b1", by="g", method="logit")
    assert rel(np.r_[lg.se, lg.ci_low, lg.ci_high],
               [0.150399174306589, 0.0426934610681632, 0.267653370025232, 0.429487157718083,
                0.88372752636957, 0.628705069985918]) < 1e-10     # R: IRLS-fitted logit
    assert np.allclose(d1.ciprop("b1", method="xlogit").ci_low, d1.ciprop("b1").ci_low, rtol=1e-15)


def test_proportion_and_total_by_with_deff_match_R(d1):
    """R: svyby(~h3, ~g, d1, svymean, deff=TRUE); svyby(~y, ~g, d1, svytotal, deff=TRUE)"""
    p = d1.proportion("h3", by="g", deff=True)
    T = lambda col: p[col].to_numpy().reshape(2, 3).T.ravel()   # R: level-major columns
    assert rel(T("estimate"), [0.393939393939394, 0.361742424242424, 0.333333333333333,
                               0.363636363636364, 0.272727272727273, 0.274621212121212]) < 1e-12
    assert rel(T("se"), [0.0764312834639362, 0.068207350441326, 0.0860411013132231,
                         0.0569485777752547, 0.0974134202783258, 0.0745082651906045]) < 1e-12
    assert rel(T("deff"), [0.667016445284787, 1.1275028456662, 0.908163702239789, 0.784230655742204,
                           1.30422168735971, 1.55941132190254]) < 1e-12
    t = d1.total("y", by="g", deff=True)
    assert rel(np.r_[t.estimate, t.se, t.deff], [1584.375, 2993.75, 191.980246831832, 117.24377915267,
                                                 5.84206053471122, 0.909856161446274]) < 1e-12


def test_deff_replace_and_missing_values_match_R(d1):
    """R: svymean(~y, d1, deff="replace"); svytotal(~y, d1, deff="replace");
    svymean(~x, d1, na.rm=TRUE, deff=TRUE); svyby(~x, ~g, d1, svymean, na.rm=TRUE, deff=TRUE)
    (x is missing in 3 rows)"""
    m = d1.mean("y", deff="replace")
    assert rel([m.se[0], m.deff[0]], [0.53716210605555, 0.370917765113431]) < 1e-12
    t = d1.total("y", deff="replace")
    assert rel([t.se[0], t.deff[0]], [127.922473945268, 0.536574732442036]) < 1e-12
    x = d1.mean("x", deff=True)
    assert rel([x.estimate[0], x.se[0], x.deff[0]], [6.9248322147651, 0.263781066891992,
                                                     0.387546020507607]) < 1e-12
    assert x.n[0] == 57
    xb = d1.mean("x", by="g", deff=True)
    assert rel(np.r_[xb.estimate, xb.se, xb.deff], [6.20576131687243, 7.27290836653386, 0.599431865935765,
                                                    0.29372801338571, 0.815089229672085,
                                                    0.294610029224962]) < 1e-12
    with pytest.raises(EstimationError, match="design-effect type"):
        d1.mean("y", deff="srs")


def test_deff_needs_population_scaled_weights(d1):
    """As R (NA + warning when sum(w) < n): SRSWOR deff is NaN with a warning when the
    weights sum to less than n; deff='replace' still works."""
    df = d1.data.assign(w=0.5)
    d = SurveyDesign(df, weights="w", strata="st", psu="psu", nest=True)
    with pytest.warns(RuntimeWarning, match="deff='replace'"):
        assert np.isnan(d.mean("y", deff=True).deff[0])
    assert np.isfinite(d.mean("y", deff="replace").deff[0])


def test_domain_quantiles_match_R(d1):
    """R: svyby(~y, ~g, d1, svyquantile, quantiles=c(0.25, 0.5), ci=TRUE, vartype=c("se","ci"));
    the same with quantiles=0.5, qrule="hf7". g1's lower limit for the first quartile is NA
    (F_hat - t se < 0), so is its se."""
    q = d1.quantile("y", [0.25, 0.5], by="g")
    T = lambda col: q[col].to_numpy().reshape(2, 2).T.ravel()
    np.testing.assert_array_equal(T("estimate"), [19.5, 17, 23, 23])
    np.testing.assert_allclose(T("se"), [np.nan, 1.2687005125568, 3.06602623867893, 0.951525384417598],
                               rtol=1e-12)
    np.testing.assert_array_equal(T("ci_low"), [np.nan, 14.5, 17, 22])
    np.testing.assert_array_equal(T("ci_high"), [26.5, 20.5, 31.5, 26.5])
    h = d1.quantile("y", 0.5, by="g", qrule="hf7")
    assert rel(np.r_[h.estimate, h.se, h.ci_low, h.ci_high],
               [24.1805555555556, 23, 3.00941217558816, 0.903278437000758, 17.1674076442101, 22,
                31.3996656710788, 26.2718281961456]) < 1e-12


def test_glm_poisson_and_binomial_match_R(d1):
    """R: svyglm(yi ~ x + g, d1, family=quasipoisson()) (df.residual 5);
    svyglm(b ~ x + g, d0, family=quasibinomial()) (x missing in 3 rows)"""
    g = d1.glm("yi ~ x + C(g)", family="poisson").set_index("term")
    idx = ["(Intercept)", "x", "C(g)[T.g2]"]
    assert rel(g.loc[idx, "estimate"], [2.14031010510159, -0.00550214259839753, -0.0719090057791946]) < 1e-10
    assert rel(g.loc[idx, "se"], [0.0450658129145159, 0.0109595488011535, 0.0988922213729318]) < 1e-10
    assert (g["df"] == 5).all()
    d0 = SurveyDesign(d1.data, weights="w", strata="st", psu="psu", nest=True)
    b = d0.glm("b ~ x + C(g)", family="binomial").set_index("term")
    assert rel(b.loc[idx, "estimate"], [1.20128940370426, -0.0711628566534114, -0.446889069537979]) < 1e-10
    assert rel(b.loc[idx, "se"], [0.502645482067475, 0.0760175994023914, 0.859467350786435]) < 1e-8
    with pytest.raises(EstimationError, match="family"):
        d0.glm("b ~ x", family="gamma")


def test_difference_of_domain_means_matches_svycontrast(d1):
    """R: b <- svyby(~y, ~g, d1, svymean, covmat=TRUE); svycontrast(b, c(-1, 1)) - the
    domains share PSUs, so their covariance matters; and without fpc (d0)."""
    m = d1.mean("y", by="g")
    c = d1.difference(m, "g2", "g1")
    assert rel([c.estimate[0], c.se[0]], [-1.32575757575757, 2.49415055645242]) < 1e-12
    assert abs(c.se[0] - np.hypot(*m.se)) > 0.1          # not the independent-groups SE
    d0 = SurveyDesign(d1.data, weights="w", strata="st", psu="psu", nest=True)
    c0 = d0.difference(d0.mean("y", by="g"), "g2", "g1")
    assert rel(c0.se, [2.72346286538199]) < 1e-12
    # sorted or filtered results keep their covariances
    s = m.sort_values("estimate")
    assert rel(d1.difference(s, "g2", "g1").se, c.se) < 1e-14
    with pytest.raises(EstimationError, match="covariance"):
        d1.contrast(m.reset_index(drop=True).iloc[::-1].reset_index(drop=True), [1, -1])
    # quantiles of several groups carry no covariances: refused, not assumed independent
    with pytest.raises(EstimationError, match="quantiles"):
        d1.difference(d1.quantile("y", 0.5, by="g"), "g2", "g1")


def test_chisq_with_missing_values_matches_R(d1):
    """R: h3 missing in rows 2, 9, 40; svychisq(~g+h3, dna); svychisq(~g+h3, dna,
    statistic="Chisq") (N counts the rows with NA, as R's nrow(mm))"""
    df = d1.data
    df.loc[[1, 8, 39], "h3"] = np.nan
    dna = SurveyDesign(df, weights="w", strata="st", psu="psu", fpc="fpc1", nest=True)
    f = dna.chisq("g", "h3")
    assert rel([f.statistic, f.ndf, f.ddf, f.p_value],
               [0.0967823085809561, 1.30651271578641, 9.14558901050487, 0.826513861423404]) < 1e-12
    c = dna.chisq("g", "h3", statistic="Chisq")
    assert rel([c.statistic, c.p_value], [0.112635920509936, 0.907753594794007]) < 1e-12 and c.df == 2
    with pytest.raises(EstimationError, match="na_rm"):
        dna.chisq("g", "h3", na_rm=False)
    # unused categories drop out (R tabulates factor() of the values)
    df["h4"] = pd.Categorical(df.h3, categories=["u", "v", "w", "never"])
    d4 = SurveyDesign(df, weights="w", strata="st", psu="psu", fpc="fpc1", nest=True)
    assert rel([d4.chisq("g", "h4").statistic], [f.statistic]) < 1e-13
    with pytest.raises(EstimationError, match="two"):
        d4.subset(df.g == "g1").chisq("g", "h3")


def test_wilson_is_the_score_interval_at_the_effective_n(d1):
    """method='wilson': the classical Wilson interval with n_eff = p(1-p)/var(p) and the
    t quantile on the design df (normal with df=inf) - checked against statsmodels."""
    from statsmodels.stats.proportion import proportion_confint

    for df in (None, float("inf")):
        r = d1.ciprop("b1", method="wilson", df=df)
        p, se = r.estimate[0], r.se[0]
        neff = p * (1 - p) / se ** 2
        if df is None:
            z = stats.t.ppf(0.975, d1.degf)
            alpha = 2 * stats.norm.sf(z)
        else:
            alpha = 0.05
        lo, hi = proportion_confint(p * neff, neff, alpha=alpha, method="wilson")
        assert rel([r.ci_low[0], r.ci_high[0]], [lo, hi]) < 1e-10


def test_mean_by_two_variables(waves):
    """by= several variables: one row per combination present; equal to subsets."""
    d = SurveyDesign(waves, weights="w", strata="h", psu="c")
    m = d.mean("age", by=["wave", "edu"])
    assert len(m) == 6 and list(m.columns[:3]) == ["wave", "edu", "variable"]
    for _, row in m.iterrows():
        s = d.subset((waves.wave == row.wave) & (waves.edu == row.edu)).mean("age")
        assert np.isclose(s.estimate[0], row.estimate, rtol=1e-13)
        assert np.isclose(s.se[0], row.se, rtol=1e-12)


def test_cli_spss_user_missing_and_labels(tmp_path, capsys, shared_dir):
    """An SPSS file: user-missing codes (acs_k3 = -9) become NA, not numbers to average;
    --proportion/--by show value labels. Same numbers as the CSV of the same data."""
    o = shared_dir / "oracle" / "data"
    args = ["--mean", "acs_k3", "--proportion", "stype", "--by", "sch_wide", "--weights", "pw",
            "--psu", "dnum", "--fpc", "fpc", "--json"]
    assert main(["estimate", str(o / "apiclus1.sav")] + args) == 0
    sav = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert main(["estimate", str(o / "apiclus1.csv")] + args) == 0
    csv = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert list(sav.level.dropna()) == ["E", "H", "M"] * 2 and list(sav.sch_wide[:2]) == ["No", "Yes"]
    np.testing.assert_allclose(sav.estimate, csv.estimate, rtol=1e-12)
    np.testing.assert_allclose(sav.se, csv.se, rtol=1e-12)
    assert sav.n[0] + sav.n[1] == 144                      # 39 schools without acs_k3


def test_cli_bad_options_exit_2(tmp_path, capsys, waves):
    f = tmp_path / "d.parquet"
    waves.to_parquet(f)
    for extra, msg in ((["--deff", "--deff-replace"], "--deff"), (["--lonely-psu", "ignore"], "lonely"),
                       (["--level", "95"], "level"), (["--strata", "nope"], "nope"),
                       (["--json", "--csv"], "--json")):
        assert main(["estimate", str(f), "--mean", "age", "--weights", "w"] + extra) == 2, extra
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, extra
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    assert main(["estimate", str(bad), "--mean", "age"]) == 2
    assert "parquet" in capsys.readouterr().err
    assert main(["estimate", str(f), "--mean", "age", "--weights", "w", "--deff-replace", "--csv"]) == 0
    assert "deff" in capsys.readouterr().out.splitlines()[0]


def test_cli_project_data(tmp_path, capsys, repo_dir):
    """Without DATA: the project's weighted (else harmonised) data, 'weight' as weights."""
    if not (repo_dir / "build" / "weighted.parquet").exists():
        pytest.skip("example project not built")
    assert main(["estimate", "--project", str(repo_dir), "--mean", "age", "--by", "wave", "--csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("statistic,wave,variable") and len(out.splitlines()) == 4
