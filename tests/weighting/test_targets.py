"""Target parsing and validation, and every bad-input path of issue 5: each is a
WeightingError with a clear message (or an explicit, reported decision)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import WeightingError
from diaspora_survey.weighting import calibrate, load_targets, parse_targets, poststratify, rake, targets_from_long, trim


@pytest.fixture
def df():
    rng = np.random.default_rng(1)
    n = 400
    return pd.DataFrame({
        "sex": rng.choice(["female", "male"], n, p=[0.6, 0.4]),
        "age_group": pd.Categorical(rng.choice(["18-24", "25-29", "30-34"], n), ordered=True,
                                    categories=["18-24", "25-29", "30-34"]),
        "country": rng.choice(["GE", "AM", "DE"], n, p=[0.5, 0.3, 0.2]),
        "age": rng.integers(18, 35, n),
        "w": rng.uniform(0.5, 2, n),
    })


SEX = {"female": 0.5, "male": 0.5}
COUNTRY = {"GE": 0.4, "AM": 0.3, "DE": 0.3}


def test_cross_classified_forms_agree(df):
    """'sex:age_group' keys with 'a:b' categories, tuples, and nested mappings are the same."""
    cells = {("female", a): v for a, v in zip(["18-24", "25-29", "30-34"], [0.2, 0.15, 0.15])}
    cells.update({("male", a): v for a, v in zip(["18-24", "25-29", "30-34"], [0.2, 0.2, 0.1])})
    t1 = {"sex:age_group": {f"{s}:{a}": v for (s, a), v in cells.items()}, "country": COUNTRY}
    t2 = {("sex", "age_group"): cells, "country": COUNTRY}
    t3 = {"sex:age_group": {s: {a: v for (s2, a), v in cells.items() if s2 == s} for s in ("female", "male")},
          "country": COUNTRY}
    ws = [rake(df, t, base_weight="w").weights for t in (t1, t2, t3)]
    np.testing.assert_allclose(ws[0], ws[1], rtol=1e-14)
    np.testing.assert_allclose(ws[0], ws[2], rtol=1e-14)
    # the cross-classified margin is met
    got = ws[0].groupby([df["sex"], df["age_group"].astype(str)]).sum() / ws[0].sum()
    for (s, a), v in cells.items():
        assert got[(s, a)] == pytest.approx(v, abs=1e-8)


def test_shares_are_scaled_counts_kept(df):
    r = rake(df, {"sex": SEX}, base_weight="w")
    assert r.weights.sum() == pytest.approx(df["w"].sum(), rel=1e-12)
    r = rake(df, {"sex": {"female": 5000, "male": 5000}, "country": COUNTRY}, base_weight="w")
    assert r.weights.sum() == pytest.approx(10000, rel=1e-10)
    assert any("shares scaled" in d for d in r.diagnostics.decisions)


def test_percent_kind(df):
    a = rake(df, {"sex": {"female": 50, "male": 50}}, kind="percent").weights
    b = rake(df, {"sex": SEX}).weights
    np.testing.assert_allclose(a, b, rtol=1e-14)


@pytest.mark.parametrize("targets, code, text", [
    ({"sex": {"female": 0.5, "male": 0.48}}, "weighting.shares_sum", "sum to 0.98, not 1"),
    ({"sex": {"female": 500, "male": 500}, "country": {"GE": 400, "AM": 300, "DE": 310}},
     "weighting.totals_disagree", "totals disagree"),
    ({"sex": {"female": -0.1, "male": 1.1}}, "weighting.bad_targets", "negative"),
    ({"sex": {"female": float("nan"), "male": 1}}, "weighting.bad_targets", "missing"),
    ({"sex": {"female": "x", "male": 1}}, "weighting.bad_targets", "not a number"),
    ({"sex:age_group": {"female": 0.5, "male": 0.5}}, "weighting.bad_targets", "expected 2"),
    ({}, "weighting.bad_targets", "non-empty"),
    ({"sex": {"female": 0.5, "male": 0.5}, "sex:age_group": {"female:18-24": 0.6, "male:18-24": 0.4}},
     "weighting.margins_inconsistent", "disagree on sex=female"),
])
def test_bad_targets(targets, code, text):
    with pytest.raises(WeightingError) as e:
        parse_targets(targets)
    assert e.value.code == code
    assert text in str(e.value)


def test_target_category_without_respondents(df):
    with pytest.raises(WeightingError) as e:
        rake(df, {"country": {**COUNTRY, "GE": 0.3, "NO": 0.1}}, label="wave 2022-11")
    assert "country=NO has no respondents in wave 2022-11: drop it or merge it" in str(e.value)
    assert e.value.code == "weighting.empty_category"
    r = rake(df, {"country": {**COUNTRY, "GE": 0.3, "NO": 0.1}}, empty="drop")
    assert any("country=NO" in d for d in r.diagnostics.decisions)
    shares = r.weights.groupby(df["country"]).sum() / r.weights.sum()
    assert shares["GE"] == pytest.approx(0.3 / 0.9, abs=1e-9)   # renormalised


def test_data_category_missing_from_targets(df):
    with pytest.raises(WeightingError) as e:
        rake(df, {"country": {"GE": 0.6, "AM": 0.4}})
    assert e.value.code == "weighting.unmatched_category"
    assert "country=DE is in the data but not in the targets" in str(e.value)
    r = rake(df, {"country": {"GE": 0.6, "AM": 0.4}}, unmatched="keep_base", base_weight="w")
    de = (df["country"] == "DE").to_numpy()
    np.testing.assert_allclose(r.weights[de], df["w"][de], rtol=1e-15)
    assert r.weights.sum() == pytest.approx(df["w"].sum(), rel=1e-12)
    other = r.weights[~de]
    assert (other[df["country"][~de] == "GE"].sum() / other.sum()) == pytest.approx(0.6, abs=1e-9)
    assert any("kept their base weight" in d for d in r.diagnostics.decisions)


def test_missing_values_in_margin_variable(df):
    d = df.copy()
    d.loc[d.index[:3], "sex"] = None
    with pytest.raises(WeightingError, match="sex is missing"):
        rake(d, {"sex": SEX})


@pytest.mark.parametrize("bad, what", [(0.0, "zero"), (-1.0, "negative"), (np.nan, "missing"),
                                       (np.inf, "infinite")])
def test_bad_base_weights(df, bad, what):
    d = df.copy()
    d.loc[d.index[5], "w"] = bad
    for fn, t in ((rake, {"sex": SEX}), (poststratify, {"sex": SEX}), (calibrate, {"sex": SEX})):
        with pytest.raises(WeightingError) as e:
            fn(d, t, base_weight="w")
        assert what in str(e.value) and e.value.code == "weighting.bad_weights"


def test_nonconvergence_names_worst_margin(df):
    t = {"sex": SEX, "country": COUNTRY}
    with pytest.raises(WeightingError) as e:
        rake(df, t, max_iter=1, tol=1e-12)
    assert e.value.code == "weighting.not_converged"
    assert "worst margin" in str(e.value) and "gap" in str(e.value)
    with pytest.warns(UserWarning, match="did not converge"):
        r = rake(df, t, max_iter=1, tol=1e-12, on_nonconvergence="warn")
    assert not r.diagnostics.converged


def test_infeasible_capped_raking_is_an_error(df):
    with pytest.raises(WeightingError, match="did not converge"):
        rake(df, {"sex": {"female": 0.1, "male": 0.9}}, bounds=(0.9, 1.1))


def test_capped_raking_respects_bounds(df):
    """Bounds slightly inside the range of the unbounded adjustment are met together with
    the margins; far too tight bounds are an error naming the worst margin."""
    t = {"sex": SEX, "country": COUNTRY}
    g_free = rake(df, t, base_weight="w").weights / df["w"]
    lo, hi = g_free.min() + 0.02, g_free.max() - 0.02
    r = rake(df, t, base_weight="w", bounds=(lo, hi), tol=1e-10)
    g = r.weights / df["w"]
    assert g.min() >= lo - 1e-12 and g.max() <= hi + 1e-12
    for v, tg in t.items():
        shares = r.weights.groupby(df[v]).sum() / r.weights.sum()
        for k, x in tg.items():
            assert shares[k] == pytest.approx(x, abs=1e-9)
    with pytest.raises(WeightingError, match="worst margin"):
        rake(df, t, base_weight="w", bounds=(0.95, 1.05))


def test_options_are_validated(df):
    for kw in ({"criterion": "x"}, {"unmatched": "lump"}, {"empty": "x"}, {"max_iter": 0},
               {"bounds": (1.2, 2)}, {"tol": 0}):
        with pytest.raises(WeightingError):
            rake(df, {"sex": SEX}, **kw)
    with pytest.raises(WeightingError, match="logit calibration needs finite bounds"):
        calibrate(df, {"sex": SEX}, method="logit")
    with pytest.raises(WeightingError, match="one joint table"):
        poststratify(df, {"sex": SEX, "country": COUNTRY})


def test_poststratify_collapses_small_cells_with_report(df):
    d = df[~((df["sex"] == "male") & (df["age_group"] == "30-34"))]
    cells = {"female:18-24": 0.2, "female:25-29": 0.15, "female:30-34": 0.15,
             "male:18-24": 0.2, "male:25-29": 0.2, "male:30-34": 0.1}
    with pytest.raises(WeightingError, match="fewer than 1 respondent"):
        poststratify(d, {"sex:age_group": cells}, strict=True)
    r = poststratify(d, {"sex:age_group": cells})
    assert r.diagnostics.extra["collapsed"] == [["male:25-29", "male:30-34"]]
    got = r.weights.groupby([d["sex"], d["age_group"].astype(str)]).sum() / r.weights.sum()
    assert got[("male", "25-29")] == pytest.approx(0.3, abs=1e-12)
    assert got[("female", "18-24")] == pytest.approx(0.2, abs=1e-12)
    # min_cell_size: merges until every cell has enough respondents
    r = poststratify(df, {"sex:age_group": cells}, min_cell_size=80)
    counts = df.groupby(["sex", df["age_group"].astype(str)]).size()
    for grp in r.diagnostics.extra["collapsed"]:
        assert sum(counts[tuple(g.split(":"))] for g in grp) >= 80


def test_calibration_errors(df):
    with pytest.raises(WeightingError, match="totals disagree"):
        calibrate(df, {"(Intercept)": 1000, "sex": {"female": 600, "male": 500}})
    with pytest.raises(WeightingError, match="not in the data"):
        calibrate(df, {"sex": SEX, "income": 5})
    with pytest.raises(WeightingError, match="negative weight"):
        calibrate(df, {"(Intercept)": 400, "age": 400 * 60})
    with pytest.raises(WeightingError, match="did not converge"):
        calibrate(df, {"(Intercept)": 400, "age": 400 * 60}, method="raking", bounds=(0.5, 2))


def test_calibrate_numeric_and_shares(df):
    N = df["w"].sum()
    r = calibrate(df, {"sex": SEX, "age": 26.0 * N}, base_weight="w", method="raking")
    w = r.weights
    assert w.sum() == pytest.approx(N, rel=1e-9)     # shares scaled to the base total
    assert (w * df["age"]).sum() / N == pytest.approx(26.0, rel=1e-9)
    assert any("scaled to the sum of the base weights" in d for d in r.diagnostics.decisions)
    r = calibrate(df, {"sex": {"female": 500, "male": 500}, "age": 26.0 * 1000}, base_weight="w",
                  method="logit", bounds=(0.2, 5))
    w = r.weights
    assert w.sum() == pytest.approx(1000, rel=1e-9)
    assert (w * df["age"]).sum() == pytest.approx(26000, rel=1e-9)
    g = w / df["w"]
    assert g.min() > 0.2 and g.max() < 5


def test_trim_strict_and_errors():
    w = pd.Series([1.0, 1, 1, 1, 10, 20], index=list("abcdef"))
    t = trim(w, upper=8)
    assert t.sum() == pytest.approx(w.sum()) and t.max() <= 8 + 1e-12
    assert list(t.index) == list("abcdef")
    t = trim(w, upper=1.2, relative=True)          # 1.2 x mean
    assert t.max() <= 1.2 * w.mean() + 1e-12 and t.sum() == pytest.approx(w.sum())
    with pytest.raises(WeightingError, match="cannot hold"):
        trim(w, upper=5)
    with pytest.raises(WeightingError):
        trim(w)
    with pytest.raises(WeightingError):
        trim(w, upper=8, redistribute="x")


def test_load_targets_yaml_and_long(tmp_path, df):
    (tmp_path / "t.yaml").write_text(
        "illustrative: true\nmargins:\n  sex: {female: 0.5, male: 0.5}\n"
        "  country: {GE: 0.4, AM: 0.3, DE: 0.3}\n"
        "waves:\n  w2:\n    restrict: {country: [GE, AM]}\n", encoding="utf-8")
    tf = load_targets(tmp_path / "t.yaml")
    assert tf.illustrative and [m.name for m in tf.targets] == ["sex", "country"]
    t2, notes = tf.for_wave("w2")
    c = next(m for m in t2 if m.name == "country")
    assert dict(zip([x[0] for x in c.categories], c.values)) == pytest.approx({"GE": 4 / 7, "AM": 3 / 7})
    assert notes and "restricted" in notes[0]
    long = pd.DataFrame({"variable": ["sex", "sex", "country", "country", "country"],
                         "category": ["female", "male", "GE", "AM", "DE"],
                         "value": [5000, 5000, 4000, 3000, 3000]})
    (tmp_path / "census.csv").write_text(long.to_csv(index=False), encoding="utf-8")
    a = rake(df, targets_from_long(tmp_path / "census.csv")).weights
    b = rake(df, tf.targets.to_dict()).weights * (10000 / len(df))
    np.testing.assert_allclose(a, b, rtol=1e-9)
    (tmp_path / "bad.yaml").write_text("margins:\n  sex: {female: 0.5, male: 0.4}\n", encoding="utf-8")
    with pytest.raises(WeightingError, match="sum to 0.9"):
        load_targets(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("margins: [1, 2\n", encoding="utf-8")
    with pytest.raises(WeightingError, match="not valid YAML"):
        load_targets(tmp_path / "bad2.yaml")
    with pytest.raises(WeightingError, match="not found"):
        load_targets(tmp_path / "none.yaml")


def test_diagnostics_content(df):
    r = rake(df, {"sex": SEX, "country": COUNTRY}, base_weight="w")
    d = r.diagnostics
    assert d.converged and d.iterations >= 1 and d.n == len(df)
    assert set(["margin", "category", "n", "sample_share", "weighted_share", "target_share",
                "difference"]) <= set(d.margins.columns)
    assert d.margins["difference"].abs().max() < 1e-8
    assert d.margins.loc[d.margins.category == "GE", "sample_share"].iloc[0] == pytest.approx(
        (df["country"] == "GE").mean())
    s = d.summary
    for k in ("n", "n_eff", "kish_deff", "min", "p1", "median", "p99", "max", "max_min_ratio"):
        assert k in s.index
    assert d["n_eff"] == d.n_eff == s["n_eff"]
    smd = d.smd
    assert "age" in set(smd["covariate"]) and "age_group" in set(smd["covariate"])
    assert "sex" not in set(smd["covariate"]) and "w" not in set(smd["covariate"])
    frame = r.frame(df)
    assert {"weight_base", "weight_raked", "weight"} <= set(frame.columns)


# ---------------------------------------------------------------- audit additions (issue 5)
def test_base_weight_series_is_matched_by_index(df):
    """A Series of base weights is aligned on the data's index, never taken by position."""
    t = {"sex": SEX}
    a = rake(df, t, base_weight="w").weights
    b = rake(df, t, base_weight=df["w"].iloc[::-1]).weights      # same values, reversed order
    np.testing.assert_allclose(a, b, rtol=1e-14)
    with pytest.raises(WeightingError, match="not indexed like the data"):
        rake(df, t, base_weight=df["w"].set_axis(df.index + 10_000))
    with pytest.raises(WeightingError, match="not numeric"):
        rake(df, t, base_weight=np.array(["a"] * len(df), dtype=object))


def test_keep_base_with_count_targets_stays_on_population_scale(df):
    """Rows kept out of the fit are scaled like the matched rows, not left at sample scale."""
    r = rake(df, {"country": {"GE": 6000, "AM": 4000}}, base_weight="w", unmatched="keep_base")
    de = (df["country"] == "DE").to_numpy()
    fitted_base = df["w"][~de].sum()
    np.testing.assert_allclose(r.weights[de], df["w"][de] * 10000 / fitted_base, rtol=1e-12)
    assert r.weights[~de].sum() == pytest.approx(10000, rel=1e-12)
    assert any("population scale" in d for d in r.diagnostics.decisions)
    p = poststratify(df, {"country": {"GE": 6000, "AM": 4000}}, base_weight="w", unmatched="keep_base")
    np.testing.assert_allclose(p.weights, r.weights, rtol=1e-12)


def test_poststratify_empty_cells_error_or_drop(df):
    cells = {"GE": 0.4, "AM": 0.3, "DE": 0.2, "NO": 0.1}
    with pytest.raises(WeightingError) as e:
        poststratify(df, {"country": cells}, empty="error", label="wave 2022-11")
    assert "country=NO has no respondents in wave 2022-11: drop it or merge it" in str(e.value)
    r = poststratify(df, {"country": cells}, empty="drop")
    shares = r.weights.groupby(df["country"]).sum() / r.weights.sum()
    assert shares["DE"] == pytest.approx(0.2 / 0.9, abs=1e-12)
    assert any("country=NO" in d for d in r.diagnostics.decisions)
    r = poststratify(df, {"country": cells})                       # default: collapsed, reported
    assert r.diagnostics.extra["collapsed"] == [["DE", "NO"]]
    with pytest.raises(WeightingError):
        poststratify(df, {"country": cells}, empty="lump")
    with pytest.raises(WeightingError):
        poststratify(df, {"country": COUNTRY}, strict="yes")


def test_calibrate_empty_category_drop_and_zero_total(df):
    tot = {"country": {"GE": 400, "AM": 300, "DE": 200, "NO": 100}}
    with pytest.raises(WeightingError, match="country=NO has no respondents: drop it or merge it"):
        calibrate(df, tot)
    r = calibrate(df, tot, empty="drop")
    assert r.weights.sum() == pytest.approx(1000, rel=1e-10)
    assert (r.weights[df["country"] == "DE"].sum()) == pytest.approx(200 / 0.9, rel=1e-10)
    assert any("country=NO" in d for d in r.diagnostics.decisions)
    with pytest.raises(WeightingError, match="total of 0"):
        calibrate(df, {"country": {"GE": 400, "AM": 300, "DE": 0}})


@pytest.mark.parametrize("call", [
    lambda d: rake(d, {"sex": SEX}, tol="x"),
    lambda d: rake(d, {"sex": SEX}, max_iter=True),
    lambda d: calibrate(d, {"sex": SEX}, tol=-1),
    lambda d: calibrate(d, {"sex": SEX}, method="raking", max_iter=0),
    lambda d: trim(d["w"], upper="x"),
    lambda d: trim(d["w"], upper=float("nan")),
    lambda d: trim(d["w"] * 0, upper=2, relative=True),
    lambda d: trim(d["w"], upper=2, relative="yes"),
])
def test_bad_options_are_weighting_errors(df, call):
    with pytest.raises(WeightingError):
        call(df)


def test_diagnostics_of_zero_weights_is_an_error():
    from diaspora_survey.weighting import diagnostics

    with pytest.raises(WeightingError, match="all zero"):
        diagnostics(pd.Series([0.0, 0.0]))


def test_smd_skips_constant_covariates(df):
    r = rake(df.assign(const="x", one=1.0), {"sex": SEX}, base_weight="w")
    smd = r.diagnostics.smd
    assert "const" not in set(smd["covariate"]) and "one" not in set(smd["covariate"])
    assert np.isfinite(smd["smd"]).all()
