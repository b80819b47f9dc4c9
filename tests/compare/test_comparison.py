"""Comparisons with the population: formulas (hand-computed), R goldens, null test, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as hs

import diaspora_survey as ds
from diaspora_survey.compare import standardisation as st
from diaspora_survey.compare.claims import evaluate_claims, parse_claims, verdict
from diaspora_survey.compare.comparison import compare, contrast_with_reference
from diaspora_survey.survey.design import SurveyDesign

Z975 = 1.959963984540054

# The tables shipped before the December 2026 figures (RosBRiS 2022 ages, 2010 census
# education 15+, 2002 census status in employment): the hand calculations and R goldens
# below were made with them; the new vintages are tested in test_vintages.py.
OLD_TABLES = ("age_sex_2022", "education_2010", "higher_education_2015_hse",
              "employment_status_2002", "entrepreneurs_15plus_2002")
OLD = ds.reference.ReferencePopulation(
    "russia", tables=tuple(t for t in ds.reference.load("russia").tables if t.id in OLD_TABLES),
    gaps=({"indicator": "education_by_age", "text": "education by age not in these tables"},
          {"indicator": "employment_by_age", "text": "status by age not in these tables"}))


# ------------------------------------------------------------------ pure formulas
def test_difference_and_ratio_by_hand():
    r = contrast_with_reference(0.6, 0.05, 0.2)                 # census value: no SE
    assert r["difference"] == pytest.approx(0.4)
    assert r["difference_ci_low"] == pytest.approx(0.4 - Z975 * 0.05)
    assert r["ratio"] == pytest.approx(3.0)
    sl = 0.05 / 0.6                                              # se of log ratio
    assert r["ratio_ci_low"] == pytest.approx(3 * math.exp(-Z975 * sl))
    assert r["ratio_ci_high"] == pytest.approx(3 * math.exp(Z975 * sl))
    assert r["p_value"] == pytest.approx(2 * 0.5 * math.erfc(8 / math.sqrt(2)), rel=1e-6)


def test_reference_se_enters_variance():
    r = contrast_with_reference(0.6, 0.05, 0.2, population_se=0.03, df=20)
    from scipy import stats
    sed = math.sqrt(0.05 ** 2 + 0.03 ** 2)
    t = stats.t.ppf(0.975, 20)
    assert r["difference_ci_high"] == pytest.approx(0.4 + t * sed)
    sl = math.sqrt((0.05 / 0.6) ** 2 + (0.03 / 0.2) ** 2)
    assert r["ratio_ci_low"] == pytest.approx(3 * math.exp(-t * sl))
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(0.4 / sed, 20))


def test_direct_standardisation_by_hand():
    # cells: Y = (2, 6), N = (4, 8); standard shares (0.5, 0.5): 0.5*0.5 + 0.5*0.75 = 0.625
    t = np.array([2.0, 6.0, 4.0, 8.0])
    V = np.diag([1.0, 2.0, 3.0, 4.0])
    e = st.direct(t, V, [1, 1])
    assert e.estimate == pytest.approx(0.625)
    g = np.array([0.5 / 4, 0.5 / 8, -0.5 * 2 / 16, -0.5 * 6 / 64])
    assert e.variance == pytest.approx(g @ V @ g)
    assert math.isnan(st.direct(np.array([2.0, 0, 4, 0]), V, [1, 1]).estimate)  # empty cell


def test_indirect_standardisation_by_hand():
    t = np.array([2.0, 6.0, 4.0, 8.0])      # O = 8, N = 12
    V = np.diag([1.0, 2.0, 3.0, 4.0])
    out = st.indirect(t, V, [0.25, 0.5])     # E = 4*.25 + 8*.5 = 5
    assert out["ratio"].estimate == pytest.approx(1.6)
    assert out["expected"].estimate == pytest.approx(5 / 12)
    assert out["difference"].estimate == pytest.approx(3 / 12)
    g = np.array([1 / 5, 1 / 5, -8 * 0.25 / 25, -8 * 0.5 / 25])
    assert out["ratio"].variance == pytest.approx(g @ V @ g)


def test_shares_jacobian_by_hand():
    p, Vp = st.shares(np.array([1.0, 3.0]), np.diag([1.0, 1.0]))
    assert p == pytest.approx([0.25, 0.75])
    # d p1/dT = (1-p1, -p1)/N = (0.1875, -0.0625): var = 0.1875² + 0.0625²
    assert Vp[0, 0] == pytest.approx(0.1875 ** 2 + 0.0625 ** 2)


def test_gof_equals_pearson_under_srs_like_identity():
    # V = N diag(p) - N p p' (multinomial totals) => all eigenvalues 1 on K-1 dims
    p = np.array([0.2, 0.3, 0.5])
    N = 1000.0
    T = np.array([210.0, 290.0, 500.0])
    V = N * (np.diag(p) - np.outer(p, p))
    g = st.gof_chisq(T, V, p)
    x2 = ((T - N * p) ** 2 / (N * p)).sum()
    assert g.statistic == pytest.approx(x2)
    from scipy import stats
    # lambdas (1, 1, 0): scale 1, df 2 -> the usual chi-square test
    assert g.df == pytest.approx(2) and g.scale == pytest.approx(1)
    assert g.p_value == pytest.approx(stats.chi2.sf(x2, 2))


# ------------------------------------------------------------------ R goldens
@pytest.fixture(scope="module")
def apiclus1(shared_dir):
    df = pd.read_csv(shared_dir / "oracle" / "data" / "apiclus1.csv", dtype={"cds": str})
    return df, SurveyDesign(df, weights="pw", psu="dnum", fpc="fpc")


def test_gof_matches_r_svygofchisq(apiclus1):
    """R 4.2.2, survey 4.1.1:
    dclus1 <- svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=apiclus1)
    r <- svygofchisq(~stype, p=c(0.6,0.2,0.2), design=dclus1)
      X-squared 957.333622333131, scale 88.8305703783900, df 1.2996869990829,
      p.value 0.00173146561702015
    r2 <- svygofchisq(~stype, p=c(0.75,0.1,0.15), design=dclus1)
      X-squared 52.8358394087773, scale 68.05715021835937, df 1.57633679534259,
      p.value 0.566533261472544
    """
    df, d = apiclus1
    Y = np.column_stack([(df.stype == k) for k in ("E", "H", "M")]).astype(float)
    t, V = d.total_vcov(Y)
    g = st.gof_chisq(t, V, [0.6, 0.2, 0.2])
    assert g.statistic == pytest.approx(957.333622333131, rel=1e-9)
    assert g.scale == pytest.approx(88.8305703783900, rel=1e-6)
    assert g.df == pytest.approx(1.2996869990829, rel=1e-6)
    assert g.p_value == pytest.approx(0.00173146561702015, rel=1e-6)
    g2 = st.gof_chisq(t, V, [0.75, 0.1, 0.15])
    assert g2.statistic == pytest.approx(52.8358394087773, rel=1e-9)
    assert g2.scale == pytest.approx(68.05715021835937, rel=1e-6)
    assert g2.df == pytest.approx(1.57633679534259, rel=1e-6)
    assert g2.p_value == pytest.approx(0.566533261472544, rel=1e-6)


def test_direct_standardisation_matches_r_svystandardize(apiclus1):
    """R 4.2.2, survey 4.1.1:
    dclus1 <- update(dclus1, aw = as.numeric(awards=="Yes"))
    ds <- svystandardize(dclus1, by=~stype, over=~1, population=c(0.5,0.3,0.2))
    svymean(~aw, ds)   # 0.6179880952381, SE 0.0523844194514689
    """
    df, d = apiclus1
    Y = np.column_stack([(df.stype == k) for k in ("E", "H", "M")]).astype(float)
    aw = (df.awards == "Yes").to_numpy(float)
    t, V = d.total_vcov(np.c_[Y * aw[:, None], Y])
    e = st.direct(t, V, [0.5, 0.3, 0.2])
    assert e.estimate == pytest.approx(0.6179880952381, rel=1e-9)
    assert e.se == pytest.approx(0.0523844194514689, rel=1e-6)


# ------------------------------------------------------------------ the null test
def _population_sample(n: int, seed: int) -> pd.DataFrame:
    """Respondents drawn from the reference population itself (Russia 18+): age from the
    RosBRiS 2022 age × sex table (single years uniform within bands), education from the
    2010 census shares, entrepreneurs among the employed at the 2002 census rate."""
    rng = np.random.default_rng(seed)
    ru = ds.reference.load("russia")
    age_t = ru.get("age_sex_2022")
    cells = []
    for sex in ("male", "female"):
        for r in age_t.select(sex, ""):
            lo, hi = ds.reference.parse_age_band(r.category)
            hi = lo + 9 if hi is None else hi
            for a in range(max(lo, 18), hi + 1):
                if a >= 18:
                    cells.append((sex, a, r.value / (hi - lo + 1)))
    w = np.array([c[2] for c in cells])
    pick = rng.choice(len(cells), size=n, p=w / w.sum())
    edu_t = ru.get("education_2010")
    codes = ["bachelor" if r.category == "higher" else r.maps_to[0] for r in edu_t.rows]
    ep = np.array([r.value for r in edu_t.rows])
    emp_t = ru.get("employment_status_2002")
    ev = {r.category: r.value for r in emp_t.rows}
    emp_codes = ["employee", "employer", "own_account"]
    emp_p = np.array([ev[c] for c in emp_codes], float)
    employed = rng.random(n) < 0.6
    status = np.where(employed, np.array(emp_codes)[rng.choice(3, n, p=emp_p / emp_p.sum())],
                      rng.choice(["student", "retired", "homemaker"], n))
    return pd.DataFrame({
        "wave": rng.choice(["w1", "w2"], n),
        "sex": [cells[i][0] for i in pick],
        "age": pd.array([cells[i][1] for i in pick], dtype="Int64"),
        "education": pd.Categorical(np.array(codes)[rng.choice(len(codes), n, p=ep / ep.sum())]),
        "employment_status": status,
        "w": rng.uniform(0.5, 1.5, n),   # weights unrelated to the variables
    })


@pytest.fixture(scope="module")
def null_result():
    df = _population_sample(6000, seed=20240601)
    d = SurveyDesign(df, weights="w", strata="wave")
    return compare(d, OLD, year=2022)


def test_sample_from_population_is_not_different(null_result):
    r = null_result
    gof = r[r.adjustment == "rao-scott"].set_index("indicator")
    assert gof.loc["age_distribution", "p_value"] > 0.01
    assert gof.loc["education_distribution", "p_value"] > 0.01
    crude = r[(r.adjustment == "crude") & r.indicator.isin(
        ["mean_age", "share_aged_18_34", "higher_education", "entrepreneurs_employed"])]
    assert len(crude) == 4
    assert ((crude.difference_ci_low <= 0) & (crude.difference_ci_high >= 0)).all()
    assert ((crude.ratio_ci_low <= 1) & (crude.ratio_ci_high >= 1)).all()
    direct = r[(r.indicator == "higher_education") & r.adjustment.str.startswith("direct")]
    assert direct.difference_ci_low.iloc[0] <= 0 <= direct.difference_ci_high.iloc[0]
    claims = evaluate_claims(r, "codebooks/claims.yaml")
    assert {v.split(" (")[0] for v in claims.verdict} <= {"not supported", "inconclusive", "not evaluable"}
    c = claims.set_index("claim")
    assert (c.loc[["younger_mean_8y", "three_times_educated"], "raw_verdict"] == "not supported").all()
    assert c.loc["younger_mean_8y", "verdict"] == "not supported"      # RosBRiS 2022, fieldwork 2022
    # the 2010 census (15+) behind the education claim: 12 years and a wider universe
    assert c.loc["three_times_educated", "verdict"].startswith(
        "inconclusive (reference 12 years from fieldwork; population ages 15+")
    assert c.loc["three_times_educated", "reference_table"] == "education_2010"


def test_result_shape_provenance_and_gaps(null_result):
    r = null_result
    assert {"estimate", "ci_low", "ci_high", "population", "difference", "ratio", "p_value",
            "n", "source", "year", "confidence", "frame"} <= set(r.columns)
    assert (r.frame == "ages 18+").all()
    crude = r[r.adjustment == "crude"]
    assert (crude.source != "").all() and crude.year.notna().all()
    # no education-by-age figures: the indirect row says so and has no number
    ind = r[(r.indicator == "higher_education") & (r.adjustment == "indirect")].iloc[0]
    assert math.isnan(ind.population) and "not available" in ind.note
    assert any("18-24 includes 2/5 of 15-19" in n for n in r.attrs["notes"])
    assert any(n.startswith("GAP (education_by_age)") for n in r.attrs["notes"])
    he = r[(r.indicator == "higher_education") & (r.adjustment == "crude")].iloc[0]
    assert he.population == pytest.approx(0.234) and "15" in he.note   # universe stated


def test_mean_age_row_by_hand():
    """Unweighted-equivalent check: equal weights, no strata -> mean and its SE are the
    SRS-with-replacement ones: se = sd * sqrt((n-1)/n) / sqrt(n-1)... i.e. sqrt(sum((x-m)^2))/n."""
    df = pd.DataFrame({"age": [20, 30, 40, 50], "sex": ["male"] * 4,
                       "education": ["bachelor"] * 4, "employment_status": ["employee"] * 4})
    d = SurveyDesign(df)
    r = compare(d, OLD, year=2022, indicators=["mean_age"])
    row = r.iloc[0]
    x = np.array([20, 30, 40, 50.0])
    se = math.sqrt(((x - x.mean()) ** 2).sum() * 4 / 3) / 4
    assert row.estimate == pytest.approx(35) and row.se == pytest.approx(se)
    pop = ds.reference.mean_age(OLD.get("age_sex_2022"), 18, None)
    assert row.population == pytest.approx(pop)
    assert row.difference == pytest.approx(35 - pop)
    assert row.df == 3


def test_frame_18_64_restricts_both_sides():
    df = _population_sample(800, seed=3)
    d = SurveyDesign(df, weights="w")
    r = compare(d, OLD, year=2022, max_age=64, indicators=["age_distribution", "mean_age"])
    assert (r.frame == "ages 18-64").all()
    dist = r[(r.indicator == "age_distribution") & (r.adjustment == "crude")]
    assert "65+" not in set(dist.category)
    assert dist.population.sum() == pytest.approx(1.0)
    assert r.n.iloc[0] == int((df.age <= 64).sum())


def test_by_wave_equals_domain_of_full_design():
    df = _population_sample(1000, seed=5)
    d = SurveyDesign(df, weights="w", strata="wave")
    r = compare(d, OLD, year=2022, by="wave", indicators=["higher_education"], standardise=None)
    w1 = r[(r.group == "w1") & (r.adjustment == "crude")].iloc[0]
    sub = d.subset((df.wave == "w1").to_numpy())
    he = df.education.isin(list(ds.schema.HIGHER_EDUCATION)).to_numpy(float)
    t, V = sub.total_vcov(np.c_[he, np.ones(len(df))])
    e = st.ratio(t, V, 0, 1)
    assert w1.estimate == pytest.approx(e.estimate) and w1.se == pytest.approx(e.se)
    assert set(r.group) == {"all", "w1", "w2"} and set(r.by) == {"", "wave"}


def test_user_table_enables_indirect_standardisation(tmp_path):
    p = tmp_path / "edu_by_age.csv"
    rows = ["id,kind,unit,year,publisher,table,url,confidence,category,age,value"]
    for band, v in (("18-34", 30), ("35-54", 25), ("55+", 15)):
        rows.append(f"he_age,higher_education_share,percent,2021,Rosstat,VPN-2020 vol.3 (user),http://x,HIGH,higher_education,{band},{v}")
    p.write_text("\n".join(rows) + "\n")
    df = _population_sample(1500, seed=9)
    d = SurveyDesign(df, weights="w")
    r = compare(d, OLD, year=2022, tables=[p], indicators=["higher_education"])
    ind = r[r.adjustment == "indirect"].iloc[0]
    age = df.age.astype(float).to_numpy()
    rate = np.where(age <= 34, .30, np.where(age <= 54, .25, .15))
    w = df.w.to_numpy()
    he = df.education.isin(list(ds.schema.HIGHER_EDUCATION)).to_numpy()
    assert ind.population == pytest.approx((w * rate).sum() / w.sum())
    assert ind.ratio == pytest.approx((w * he).sum() / (w * rate).sum())
    assert ind.reference_table == "he_age" and np.isfinite(ind.ratio_ci_low)


# ------------------------------------------------------------------ claims
@pytest.mark.parametrize("op, thr, lo, hi, expected", [
    ("<=", -8, -12, -9, "supported"), ("<=", -8, -7, -1, "not supported"),
    ("<=", -8, -10, -6, "inconclusive"), (">=", 3, 3.1, 4, "supported"),
    (">=", 3, 1.5, 2.9, "not supported"), (">=", 3, 2.5, 3.5, "inconclusive"),
    (">", 1, float("nan"), 2, "not evaluable"),
])
def test_verdict_rule(op, thr, lo, hi, expected):
    assert verdict(op, thr, lo, hi) == expected


@settings(max_examples=60, deadline=None)
@given(lo=hs.floats(-50, 50), width=hs.floats(0, 20), thr=hs.floats(-50, 50))
def test_verdict_is_symmetric(lo, width, thr):
    """'x >= thr' supported  <=>  '-x <= -thr' supported (mirror the interval)."""
    hi = lo + width
    assert verdict(">=", thr, lo, hi) == verdict("<=", -thr, -hi, -lo)


def test_claims_file_validation():
    from diaspora_survey.errors import ProjectError
    with pytest.raises(ProjectError, match="indicator"):
        parse_claims({"claims": [{"id": "a", "statement": "s", "indicator": "iq", "metric": "ratio",
                                  "op": ">=", "threshold": 3}]})
    cl = ds.compare  # noqa: F841 (lazy import works)
    from diaspora_survey.compare.claims import load_claims
    assert len(load_claims("codebooks/claims.yaml")) >= 6


# ------------------------------------------------------------------ CLI
@pytest.fixture()
def project_dir(tmp_path):
    (tmp_path / "diaspora-survey.toml").write_text(
        '[reference]\npopulation = "russia"\nmin_age = 18\nmax_age = 0\n'
        '[compare]\nclaims = "claims.yaml"\nby = ["wave"]\n', encoding="utf-8")
    import shutil
    shutil.copy("codebooks/claims.yaml", tmp_path / "claims.yaml")
    return tmp_path


def test_cli_compare_without_weighted_data(project_dir, capsys):
    from diaspora_survey.cli import main
    assert main(["compare", "--project", str(project_dir), "--no-rebuild"]) == 2
    err = capsys.readouterr().err
    assert "weighted.parquet" in err and "diaspora-survey weight" in err
    # without --no-rebuild the earlier steps run, and the first one that cannot says why
    assert main(["compare", "--project", str(project_dir)]) == 2
    assert "no waves" in capsys.readouterr().err


def test_cli_compare_json_csv_table(project_dir, capsys):
    from diaspora_survey.cli import main
    df = _population_sample(1200, seed=11)
    df["weight"] = df.pop("w")
    df["weight_pooled"] = df["weight"] * np.where(df.wave == "w1", 0.8, 1.2)
    (project_dir / "build").mkdir()
    df.to_parquet(project_dir / "build" / "weighted.parquet")
    assert main(["compare", "--project", str(project_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frame"]["text"] == "ages 18+" and out["claims"]
    groups = {r["group"] for r in out["rows"]}
    assert groups == {"all", "w1", "w2"}
    assert main(["compare", "--project", str(project_dir), "--csv", "--by", "wave"]) == 0
    csv_out = capsys.readouterr().out
    assert csv_out.splitlines()[0].startswith("by,group,indicator")
    assert main(["compare", "--project", str(project_dir)]) == 0
    txt = capsys.readouterr().out
    assert "Claims" in txt and "RosBRiS" in txt
    assert main(["compare", "--project", str(project_dir), "--by", "planet"]) == 2


def test_ds_compare_callable_after_submodule_import():
    import diaspora_survey
    import diaspora_survey.compare  # noqa: F401  (sets the package attribute to the module)
    df = _population_sample(300, seed=1)
    r = diaspora_survey.compare(SurveyDesign(df, weights="w"), "russia", indicators=["mean_age"])
    assert r.indicator.tolist() == ["mean_age"]


# ------------------------------------------------------------------ R goldens: the whole comparison
def _golden_data() -> pd.DataFrame:
    """240 respondents, 2 strata x 15 clusters, unequal weights; deterministic (no RNG) so
    that the same file can be rebuilt for R: ``_golden_data().to_csv("golden.csv")``."""
    i = np.arange(240)
    age = 18 + (i * 37 + (i // 7) * 11) % 62
    edu = np.array(["secondary_general", "secondary_vocational", "incomplete_higher", "bachelor",
                    "master"])[(i * 3 + age // 10) % 5]
    status = np.array(["employee", "employee", "own_account", "employer", "student", "retired",
                       "employee"])[(i * 2 + age // 7) % 7]
    stratum = np.where(i < 120, "A", "B")
    return pd.DataFrame({"age": age, "sex": np.where((i * 5 + i // 3) % 2 == 0, "male", "female"),
                         "education": edu, "employment_status": status, "stratum": stratum,
                         "psu": i // 8, "w": 1.0 + (i % 5) * 0.5 + (stratum == "B") * 1.5})


def test_compare_matches_r_survey_on_a_clustered_design():
    """R 4.2.2, survey 4.1.1 on ``_golden_data()`` written to golden.csv:

    df$band <- cut(df$age, c(17,24,29,34,39,44,49,54,59,64,Inf), labels=c("18-24", ..., "65+"))
    df$sex <- factor(df$sex, levels=c("male","female")); df$he <- education in bachelor/master
    df$ent <- status in employer/own_account; df$employed <- status in employee/employer/own_account
    d <- svydesign(id=~psu, strata=~stratum, weights=~w, data=df)              # degf 28
    svymean(~age, d)                     48.583333333333336  SE 0.649221145094717
    svymean(~he, d)                      0.4060606060606061  SE 0.0276078285407218
    svymean(~ent, d)                     0.2856060606060606  SE 0.0294603223516712
    svymean(~ent, subset(d, employed))   0.3985200845665962  SE 0.0380788197332081
    svymean(~I(age<=34), d)              0.2689393939393939  SE 0.0183672790079637
    svygofchisq(~band, p=shares, d)      X2 18.474447044594474 scale 6.592061157628509
                                         df 3.297397034426146  p 0.475252367851542
    s <- svystandardize(d, by=~band+sex, over=~1, population=mass)   # mass: RosBRiS 18+ M, F
    svymean(~he, s)                      0.4166633027279198  SE 0.0281669052515643
    svymean(~ent, s)                     0.2829623328160077  SE 0.0324936665384464
    svymean(~he, svystandardize(d, by=~band, over=~1, population=shares))
                                         0.3993115350331023  SE 0.0241237343913358
    svycontrast(svymean(~he, d), quote(log(he/0.234)))   SE 0.0679894284958075
    svyquantile(~age, d, 0.5, qrule="math", ci=TRUE)  49, CI 47 52, SE 1.22046049781343
    Education GOF vs the 2010 census (60,110,182,368,46,234 per 1000): R 4.1.1's
    svygofchisq pairs p with the categories through split(), which sorts the level names,
    so its scale/df/p are wrong unless the levels are in alphabetical order; with levels
    relabelled a_primary_or_less ... f_higher: X2 578.437805149762 scale 3.20981356041372
    df 2.59163555003550 p 3.12181870963096e-39 (= ours).
    """
    from diaspora_survey.compare.reference import ages as _age

    df = _golden_data()
    d = SurveyDesign(df, weights="w", strata="stratum", psu="psu")
    r = compare(d, OLD, year=2022)
    row = lambda ind, adj="crude", cat="": r[(r.indicator == ind) & (r.adjustment == adj)  # noqa: E731
                                             & (r.category == cat)].iloc[0]
    for ind, cat, est, se in (("mean_age", "", 48.583333333333336, 0.649221145094717),
                              ("higher_education", "", 0.4060606060606061, 0.0276078285407218),
                              ("entrepreneurs_all", "", 0.2856060606060606, 0.0294603223516712),
                              ("entrepreneurs_employed", "", 0.3985200845665962, 0.0380788197332081),
                              ("share_aged_18_34", "18-34", 0.2689393939393939, 0.0183672790079637)):
        x = row(ind, cat=cat)
        assert x.estimate == pytest.approx(est, rel=1e-9) and x.se == pytest.approx(se, rel=1e-6)
        assert x.df == 28
    med = row("median_age")
    assert (med.estimate, med.ci_low, med.ci_high) == (49, 47, 52)
    assert med.se == pytest.approx(1.22046049781343, rel=1e-6)
    assert (med.difference_ci_low, med.difference_ci_high) == (47 - med.population, 52 - med.population)
    g = row("age_distribution", "rao-scott", "goodness_of_fit")
    assert g.statistic == pytest.approx(18.474447044594474, rel=1e-9)
    assert g.p_value == pytest.approx(0.475252367851542, rel=1e-6)
    assert "scale 6.592, df 3.297" in g.note
    g = row("education_distribution", "rao-scott", "goodness_of_fit")
    assert g.statistic == pytest.approx(578.437805149762, rel=1e-9)
    assert g.p_value == pytest.approx(3.12181870963096e-39, rel=1e-6)
    assert "scale 3.21, df 2.592" in g.note
    x = row("higher_education", "direct (age x sex)")
    assert x.estimate == pytest.approx(0.4166633027279198, rel=1e-9)
    assert x.se == pytest.approx(0.0281669052515643, rel=1e-6)
    x = row("entrepreneurs_all", "direct (age x sex)")
    assert x.estimate == pytest.approx(0.2829623328160077, rel=1e-9)
    assert x.se == pytest.approx(0.0324936665384464, rel=1e-6)
    he = row("higher_education")
    t28 = __import__("scipy").stats.t.ppf(0.975, 28)
    assert he.ratio_ci_high == pytest.approx(he.ratio * math.exp(t28 * 0.0679894284958075), rel=1e-6)
    # the standard population used above is the RosBRiS 18+ structure
    t = ds.reference.load("russia").get("age_sex_2022")
    assert _age.frame_shares(t, ds.schema.DEFAULT_AGE_BANDS, 18, None, "male")[1][0] == pytest.approx(5009346.8)
    r2 = compare(d, OLD, year=2022, standardise="age", indicators=["higher_education"])
    x = r2[r2.adjustment == "direct (age)"].iloc[0]
    assert x.estimate == pytest.approx(0.3993115350331023, rel=1e-9)
    assert x.se == pytest.approx(0.0241237343913358, rel=1e-6)


# ------------------------------------------------------------------ user tables by age
EDU_BY_AGE = """id: edu_by_age
kind: education_distribution
unit: count
year: 2021
publisher: Rosstat
table: "Itogi VPN-2020 vol. 3 (test transcription)"
url: http://example.org
confidence: HIGH
rows:
  - {category: higher, age: "15-29", value: 30, maps_to: [bachelor, specialist, master, doctorate, higher_unspecified]}
  - {category: rest, age: "15-29", value: 70, maps_to: [primary_or_less, basic_general, secondary_general, secondary_vocational, incomplete_higher]}
  - {category: higher, age: "30-49", value: 50, maps_to: [bachelor, specialist, master, doctorate, higher_unspecified]}
  - {category: rest, age: "30-49", value: 150, maps_to: [primary_or_less, basic_general, secondary_general, secondary_vocational, incomplete_higher]}
  - {category: higher, age: "50+", value: 20, maps_to: [bachelor, specialist, master, doctorate, higher_unspecified]}
  - {category: rest, age: "50+", value: 180, maps_to: [primary_or_less, basic_general, secondary_general, secondary_vocational, incomplete_higher]}
"""


def test_education_by_age_table_restricts_frame_and_enables_indirect(tmp_path):
    """The official education-by-age table dropped into a project: the population share is
    restricted to the frame, the indirect ratio uses its age-specific rates, and the gap
    note says it is filled. By hand, frame 18+: the 15-29 band keeps the part of its
    population aged 18-29, apportioned with the RosBRiS age structure (2/5 of 15-19 +
    20-24 + 25-29 over 15-29); rates 0.3, 0.25, 0.1.
    """
    p = tmp_path / "edu.yaml"
    p.write_text(EDU_BY_AGE, encoding="utf-8")
    ru = ds.reference.load("russia")
    at = ru.get("age_sex_2022")
    v = {r.category: r.value for r in at.select("total", "")}
    f1529 = (0.4 * v["15-19"] + v["20-24"] + v["25-29"]) / (v["15-19"] + v["20-24"] + v["25-29"])
    pop = (30 * f1529 + 50 + 20) / (100 * f1529 + 200 + 200)
    df = _golden_data()
    d = SurveyDesign(df, weights="w", strata="stratum", psu="psu")
    r = compare(d, OLD, year=2022, tables=[p], indicators=["higher_education", "higher_education_by_age",
                                                     "education_distribution"])
    crude = r[(r.indicator == "higher_education") & (r.adjustment == "crude")].iloc[0]
    assert crude.population == pytest.approx(pop, rel=1e-12)
    assert crude.reference_table == "edu_by_age" and "restricted to the frame" in crude.note
    dist = r[(r.indicator == "education_distribution") & (r.adjustment == "crude")]
    assert dist.population.sum() == pytest.approx(1.0)
    ind = r[(r.indicator == "higher_education") & (r.adjustment == "indirect")].iloc[0]
    age, w = df.age.to_numpy(), df.w.to_numpy()
    he = df.education.isin(["bachelor", "master"]).to_numpy()
    rate = np.select([age <= 29, age <= 49], [0.3, 0.25], 0.1)
    assert ind.population == pytest.approx((w * rate).sum() / w.sum(), rel=1e-12)
    assert ind.ratio == pytest.approx((w * he).sum() / (w * rate).sum(), rel=1e-12)
    by_age = r[(r.indicator == "higher_education_by_age") & (r.reference_table == "edu_by_age")]
    assert by_age.category.tolist() == ["15-29", "30-49", "50+"]
    assert by_age.population.tolist() == pytest.approx([0.3, 0.25, 0.1])
    m = (age <= 29)
    assert by_age.estimate.iloc[0] == pytest.approx((w * he)[m].sum() / w[m].sum())
    assert any(n.startswith("GAP (education_by_age) filled by table edu_by_age") for n in r.attrs["notes"])
    # frame 18-64: the open 50+ band is cut with the population age structure, not uniformly
    r64 = compare(d, OLD, year=2022, tables=[p], max_age=64, indicators=["higher_education"], standardise=None)
    f50 = (v["50-54"] + v["55-59"] + v["60-64"]) / sum(
        v[k] for k in v if ds.reference.parse_age_band(k)[0] >= 50)
    pop64 = (30 * f1529 + 50 + 20 * f50) / (100 * f1529 + 200 + 200 * f50)
    assert r64[r64.adjustment == "crude"].population.iloc[0] == pytest.approx(pop64, rel=1e-12)


def test_employment_status_by_age_table(tmp_path):
    """Counts of the employed by status and age: frame-restricted crude share of
    entrepreneurs among the employed and the indirect ratio, by hand."""
    p = tmp_path / "emp.csv"
    head = "id,kind,unit,year,publisher,table,url,confidence,category,age,value,maps_to\n"
    meta = "emp_age,employment_status,count,2002,Rosstat,vol. 7 table 5 (test),http://x,HIGH"
    rows = [("employee", "15-29", 900), ("employer", "15-29", 20), ("own_account", "15-29", 30),
            ("other", "15-29", 50), ("employee", "30+", 1800), ("employer", "30+", 60),
            ("own_account", "30+", 90)]
    p.write_text(head + "".join(f"{meta},{c},{a},{v},{c if c != 'other' else ''}\n"
                                for c, a, v in rows), encoding="utf-8")
    df = _golden_data()
    d = SurveyDesign(df, weights="w", strata="stratum", psu="psu")
    r = compare(d, OLD, year=2022, tables=[p], indicators=["entrepreneurs_employed"], standardise=None)
    crude, ind = r.iloc[0], r.iloc[1]
    # the 15-29 band keeps its 18-29 part, apportioned with the RosBRiS age structure
    ru = ds.reference.load("russia").get("age_sex_2022")
    v = {x.category: x.value for x in ru.select("total", "")}
    f = (0.4 * v["15-19"] + v["20-24"] + v["25-29"]) / (v["15-19"] + v["20-24"] + v["25-29"])
    assert crude.population == pytest.approx((50 * f + 150) / (950 * f + 1950), rel=1e-12)
    emp = df.employment_status.isin(["employee", "employer", "own_account"]).to_numpy()
    ent = df.employment_status.isin(["employer", "own_account"]).to_numpy()
    age, w = df.age.to_numpy(), df.w.to_numpy()
    rate = np.where(age <= 29, 50 / 950, 150 / 1950)
    assert ind.adjustment == "indirect"
    assert ind.ratio == pytest.approx((w * ent * emp).sum() / (w * rate * emp).sum(), rel=1e-12)
    assert any(n.startswith("GAP (employment_by_age) filled") for n in r.attrs["notes"])


def test_population_se_of_a_distribution_enters_the_variance(tmp_path):
    """A survey-based education distribution with row SEs (e.g. from an LFS): the share's
    SE is the delta-method one, var(p_g) = sum_k ((1[k in g] - p_g)/D)^2 se_k^2, and it
    enters the difference's variance."""
    p = tmp_path / "lfs.yaml"
    p.write_text("""id: lfs_edu
kind: education_distribution
unit: percent
year: 2022
publisher: Rosstat
table: LFS (test)
url: http://x
confidence: MED
rows:
  - {category: higher, value: 30, se: 0.5, maps_to: [bachelor, specialist, master, doctorate, higher_unspecified]}
  - {category: middle, value: 50, se: 0.6, maps_to: [secondary_general, secondary_vocational, incomplete_higher]}
  - {category: low, value: 20, se: 0.4, maps_to: [primary_or_less, basic_general]}
""", encoding="utf-8")
    df = _golden_data()
    d = SurveyDesign(df, weights="w", strata="stratum", psu="psu")
    r = compare(d, OLD, year=2022, tables=[p], indicators=["higher_education"], standardise=None)
    x = r[r.adjustment == "crude"].iloc[0]
    g = np.array([1 - 0.3, -0.3, -0.3]) / 100
    pse = math.sqrt(((g * np.array([0.5, 0.6, 0.4])) ** 2).sum())
    assert x.population == pytest.approx(0.3) and x.population_se == pytest.approx(pse, rel=1e-12)
    t28 = __import__("scipy").stats.t.ppf(0.975, 28)
    assert x.difference_ci_high - x.difference == pytest.approx(t28 * math.sqrt(x.se ** 2 + pse ** 2))


def test_rich_output_says_what_is_not_available(project_dir, capsys, monkeypatch):
    from diaspora_survey.cli import main
    monkeypatch.setenv("COLUMNS", "400")     # no wrapping inside the table cells
    df = _population_sample(600, seed=12)
    df["weight"] = df.pop("w")
    (project_dir / "build").mkdir()
    df.to_parquet(project_dir / "build" / "weighted.parquet")
    assert main(["compare", "--project", str(project_dir), "--by", "wave"]) == 0
    out = capsys.readouterr().out
    assert "n/a *" in out and "Not available" in out and "entrepreneurs_employed (indirect)" in out
    assert "X² = " in out and "[reference] tables" in out and "Universe: employment_status_lfs_" in out
    assert "fieldwork year unknown" in out        # no dates: the caveat is in the table


def test_education_by_age_in_percent_uses_population_age_structure(tmp_path):
    """The same table as shares within each age band: bands weighted by the RosBRiS
    population aged 18-29, 30-49 and 50+ (18-19 = 2/5 of 15-19)."""
    text = EDU_BY_AGE.replace("unit: count", "unit: percent")
    for a, b in (("value: 50,", "value: 25,"), ("value: 150,", "value: 75,"),
                 ("value: 20,", "value: 10,"), ("value: 180,", "value: 90,")):
        text = text.replace(a, b)
    p = tmp_path / "edu_pct.yaml"
    p.write_text(text, encoding="utf-8")
    at = ds.reference.load("russia").get("age_sex_2022")
    a, _ = ds.reference.band_mass(at, 18, 29)
    b, _ = ds.reference.band_mass(at, 30, 49)
    c, _ = ds.reference.band_mass(at, 50, None)
    d = SurveyDesign(_golden_data(), weights="w", strata="stratum", psu="psu")
    r = compare(d, OLD, year=2022, tables=[p], indicators=["higher_education"], standardise=None)
    assert r.population.iloc[0] == pytest.approx((0.3 * a + 0.25 * b + 0.1 * c) / (a + b + c), rel=1e-12)
    assert "weighted by the population age structure" in r.note.iloc[0]


def test_unusable_project_table_falls_back_and_says_so(tmp_path):
    """An education-by-age table whose bands do not cover the frame (here 25-29, 30-49,
    50+ for an 18+ frame) is not used: the packaged table is, and the output says why."""
    p = tmp_path / "edu.yaml"
    p.write_text(EDU_BY_AGE.replace('"15-29"', '"25-29"'), encoding="utf-8")
    d = SurveyDesign(_golden_data(), weights="w", strata="stratum", psu="psu")
    r = compare(d, OLD, year=2022, tables=[p], indicators=["higher_education"], standardise=None)
    crude = r[r.adjustment == "crude"].iloc[0]
    assert crude.reference_table == "education_2010" and crude.population == pytest.approx(0.234)
    assert "not used: the age groups of table edu_by_age do not cover the frame" in crude.note
    assert any(n.startswith("Not used: the age groups of table edu_by_age") for n in r.attrs["notes"])
    only = ds.reference.ReferencePopulation("x", tables=tuple(ds.reference.read_tables(p)))
    r = compare(d, only, indicators=["higher_education"], standardise=None)
    assert math.isnan(r.population.iloc[0]) and r.estimate.iloc[0] == pytest.approx(crude.estimate)


def test_project_designs_use_the_codebooks_design_columns():
    """Waves are strata, crossed with a wave's own strata; a wave's PSUs are nested in them
    and a wave without PSUs has one PSU per respondent: the SE equals the hand-built design."""
    import numpy as np
    import pandas as pd

    from diaspora_survey.compare.comparison import project_designs
    from diaspora_survey.survey.design import SurveyDesign

    rng = np.random.default_rng(3)
    n = 120
    d = pd.DataFrame({"wave": ["a"] * 60 + ["b"] * 60,
                      "strata": ["s1"] * 30 + ["s2"] * 30 + [None] * 60,
                      "psu": [f"p{i % 6}" for i in range(60)] + [None] * 60,
                      "age": rng.integers(18, 70, n).astype(float),
                      "weight": rng.uniform(0.5, 2, n)})
    d["weight_pooled"] = d["weight"]
    pooled, within = project_designs(d)
    hand = SurveyDesign(d.assign(st=[f"a{s}" for s in d["strata"][:60]] + ["b"] * 60,
                                 cl=list(d["psu"][:60]) + [f"r{i}" for i in range(60)]),
                        weights="weight", strata="st", psu="cl", nest=True)
    ours, ref = pooled.mean("age").iloc[0], hand.mean("age").iloc[0]
    assert ours["estimate"] == pytest.approx(ref["estimate"], rel=1e-12)
    assert ours["se"] == pytest.approx(ref["se"], rel=1e-12)
    assert pooled.degf == hand.degf == (12 + 60) - 3   # p0..p5 nested in s1 and in s2
    # without design columns: waves as strata, one PSU per respondent
    plain, _ = project_designs(d.drop(columns=["strata", "psu"]))
    assert plain.degf == n - 2


def test_by_group_on_domain_views_equals_subsets_and_replicates_work():
    """compare() estimates each domain on its own rows (SurveyDesign.domain_view, issue 17):
    every row by wave equals the same comparison of design.subset(wave) to 1e-12; a
    replicate design (no domain views: it needs every row) gives the subset's numbers too."""
    df = _population_sample(3000, seed=11)
    d = SurveyDesign(df, weights="w", strata="wave")
    r = compare(d, "russia", by="wave", overall=False)
    num = ["estimate", "se", "ci_low", "ci_high", "difference", "ratio", "statistic"]
    for w in ("w1", "w2"):
        a = r[r.group == w].reset_index(drop=True)
        b = compare(d.subset((df.wave == w).to_numpy()), "russia")
        b = b[b.group == "all"].reset_index(drop=True)
        assert list(a.indicator) == list(b.indicator) and list(a.adjustment) == list(b.adjustment)
        np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-12,
                                   atol=1e-13, equal_nan=True)
        assert list(a.n) == list(b.n)
    small = _population_sample(400, seed=12)
    rep = SurveyDesign(small, weights="w", strata="wave").to_replicate("bootstrap", replicates=20,
                                                                       seed=1)
    rr = compare(rep, "russia", by="wave", overall=False, indicators=["mean_age", "higher_education"],
                 standardise=None)
    sub = compare(rep.subset((small.wave == "w1").to_numpy()), "russia",
                  indicators=["mean_age", "higher_education"], standardise=None)
    np.testing.assert_allclose(rr[rr.group == "w1"]["se"].to_numpy(float), sub["se"].to_numpy(float),
                               rtol=1e-12)


@pytest.mark.parametrize("min_age,max_age", [(30, None), (25, 54)])
def test_every_row_applies_the_frame_or_says_why_not(min_age, max_age):
    """Issue 15, item 8: with a frame other than 18+ every row — crude, standardised,
    tests — is restricted to it, or its note says why not."""
    df = _population_sample(1500, seed=11)
    d = SurveyDesign(df, weights="w", strata="wave")
    r = compare(d, "russia", min_age=min_age, max_age=max_age, by="wave")
    txt = f"ages {min_age}+" if max_age is None else f"ages {min_age}-{max_age}"
    assert (r["frame"] == txt).all()
    in_frame = ((df.age >= min_age) & ((df.age <= max_age) if max_age else True)).sum()
    said = ("not the frame", "outside the frame", "not possible", f"{txt} structure",
            "cannot standardise")
    for rec in r.to_dict("records"):
        restricted = f"restricted to {txt}" in (rec["universe"] or "")
        if rec["indicator"] == "higher_education_by_age":        # a band inside the frame
            lo, hi = ds.reference.parse_age_band(rec["category"])
            restricted |= lo >= min_age and (max_age is None or (hi is not None and hi <= max_age))
        assert restricted or any(s in (rec["note"] or "") for s in said), (rec["indicator"], rec["category"], rec["adjustment"], rec["universe"], rec["note"])
        if rec["by"] == "" and rec["indicator"] == "mean_age":
            assert rec["n"] == in_frame
    direct = r[r["adjustment"].str.startswith("direct")]
    # every standardised row names its standard: the population's structure in the frame, or
    # why there is none (issue 13)
    said_direct = direct["note"].map(lambda x: f"population {txt} by age" in x
                                     or "no standardised row" in x or "cannot standardise" in x)
    assert len(direct) and said_direct.all()
    assert direct["note"].map(lambda x: f"population {txt} by age" in x).any()
