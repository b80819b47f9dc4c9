"""Estimators: hand calculations, contrasts, tidy output, and the ``estimate`` CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from diaspora_survey.cli import main
from diaspora_survey.design import SurveyDesign
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
