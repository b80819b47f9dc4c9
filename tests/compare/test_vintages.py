"""Current reference tables, vintages matched to fieldwork, the right standard, honest
verdicts (issue 13): simulation coverage, old population vs new reference, bad tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import diaspora_survey as ds
from diaspora_survey.compare.claims import evaluate_claims, parse_claims
from diaspora_survey.compare.comparison import compare, fieldwork_year
from diaspora_survey.compare.reference import ReferencePopulation, parse_age_band
from diaspora_survey.errors import ReferenceDataError
from diaspora_survey.survey.design import SurveyDesign

RU = ds.reference.load("russia")
HIGHER = ("bachelor", "specialist", "master", "doctorate", "higher_unspecified")


# ------------------------------------------------------------------ a synthetic population
def _shares_table(t, tid):
    """The census education-by-age table as shares within each age group (percent of those
    who stated their education): the population's age structure then comes from the age
    table, so that the synthetic population below matches the reference exactly."""
    rows = []
    for band in dict.fromkeys(r.age for r in t.rows):
        rs = [r for r in t.rows if r.age == band and r.maps_to]
        tot = sum(r.value for r in rs)
        rows += [{"category": r.category, "age": band, "value": 100 * r.value / tot,
                  "maps_to": list(r.maps_to)} for r in rs]
    d = dict(t.meta(), id=tid, unit="percent", rows=rows)
    for k in ("derived", "origin", "n_rows", "caveat", "variable"):
        d.pop(k, None)
    return ds.reference.table_from_dict(d, tid)


def _sim_reference(year=2021):
    """The shipped tables of ``year``: the 1 January age x sex structure, the census 2021
    education rates by age, the LFS status in employment."""
    edu = _shares_table(RU.get("education_2021"), "education_2021_shares")
    keep = (RU.get(f"population_1jan_{year}"), edu, RU.get(f"employment_status_lfs_{year}"))
    return ReferencePopulation("russia_sim", tables=keep)


def _exact(p, n: int) -> np.ndarray:
    """Counts of n persons in proportion to p (largest remainder): the synthetic population
    matches the tables' shares up to rounding, not up to a random draw."""
    q = np.asarray(p, float) / np.sum(p) * n
    k = np.floor(q).astype(int)
    k[np.argsort(-(q - k), kind="stable")[: n - k.sum()]] += 1
    return k


def _population(ref, n_clusters=2000, size=40, seed=1):
    """A finite population of n_clusters x size adults (18+) built from the shipped tables
    (counts allocated exactly in proportion, then shuffled):
    age x sex from the age table (single years uniform within its 5-year bands, 80+ as
    80-89), education given the census age group (the census rates), employment (60 % of
    18-59, 15 % of 60+: not in the tables, any rule does) and among the employed the LFS
    status shares (employee / employer / own-account). Clusters are formed from people of
    similar age (sorted, with noise), so that the design effect is real; 10 strata."""
    rng = np.random.default_rng(seed)
    at = ref.first("age_distribution")
    cells = []
    for sex in ("male", "female"):
        for r in at.select(sex, ""):
            lo, hi = parse_age_band(r.category)
            hi = lo + 9 if hi is None else hi
            for a in range(max(lo, 18), hi + 1):
                cells.append((sex, a, r.value / (hi - lo + 1)))
    w = np.array([c[2] for c in cells])
    N = n_clusters * size
    pick = rng.permutation(np.repeat(np.arange(len(cells)), _exact(w, N)))
    sex = np.array([cells[i][0] for i in pick])
    age = np.array([cells[i][1] for i in pick])
    edu_t = ref.first("education_distribution")
    bands = list(dict.fromkeys(r.age for r in edu_t.rows))
    education = np.empty(N, object)
    for b in bands:
        lo, hi = parse_age_band(b)
        m = (age >= lo) & (age <= (999 if hi is None else hi))
        rs = [r for r in edu_t.rows if r.age == b]
        p = np.array([r.value for r in rs], float)
        codes = np.array(["bachelor" if r.category == "higher" else r.maps_to[0] for r in rs])
        education[np.flatnonzero(m)[rng.permutation(m.sum())]] = np.repeat(codes, _exact(p, m.sum()))
    st = {r.category: r.value for r in ref.first("employment_status").select("total", "")}
    ep = np.array([st["employee"], st["employer"], st["own_account"]])
    employed = rng.random(N) < np.where(age < 60, 0.6, 0.15)
    status = rng.choice(np.array(["student", "retired", "homemaker"], object), N)
    status[np.flatnonzero(employed)[rng.permutation(employed.sum())]] = np.repeat(
        np.array(["employee", "employer", "own_account"], object), _exact(ep, employed.sum()))
    order = np.argsort(age + rng.normal(0, 8, N), kind="stable")
    cluster = np.empty(N, int)
    cluster[order] = np.arange(N) // size
    stratum = cluster % 10
    return pd.DataFrame({"sex": sex, "age": pd.array(age, dtype="Int64"), "education": education,
                         "employment_status": status, "cluster": cluster, "stratum": stratum})


def _sample(pop, rng, per_stratum=10):
    """Stratified cluster sample: per_stratum clusters by SRS in each stratum, everyone in
    them; weight = clusters in the stratum / clusters drawn; fpc = clusters in the stratum."""
    cl = pop.groupby("stratum")["cluster"].unique()
    chosen, wts, fpc = [], {}, {}
    for h, cs in cl.items():
        take = rng.choice(cs, per_stratum, replace=False)
        chosen += list(take)
        for c in take:
            wts[c], fpc[c] = len(cs) / per_stratum, len(cs)
    s = pop[pop["cluster"].isin(chosen)].copy()
    s["w"] = s["cluster"].map(wts)
    s["fpc"] = s["cluster"].map(fpc)
    return s


ROWS = [("mean_age", "", "crude"), ("share_aged_18_34", "18-34", "crude"),
        ("age_distribution", "25-29", "crude"), ("age_distribution", "65+", "crude"),
        ("higher_education", "", "crude"), ("education_distribution", "secondary_vocational", "crude"),
        ("entrepreneurs_employed", "", "crude"),
        ("higher_education", "", "direct (age x sex)"), ("higher_education", "", "indirect")]
INDICATORS = ["mean_age", "share_aged_18_34", "age_distribution", "higher_education",
              "education_distribution", "entrepreneurs_employed"]


def _coverage(n_samples: int, seed: int = 7):
    ref = _sim_reference(2021)
    pop = _population(ref)
    rng = np.random.default_rng(seed)
    hits = {k: 0 for k in ROWS}
    verdicts = []
    claim = parse_claims({"claims": [
        {"id": "he", "statement": "s", "indicator": "higher_education", "metric": "ratio",
         "op": ">", "threshold": 1},
        {"id": "he_std", "statement": "s", "indicator": "higher_education", "adjustment": "direct",
         "metric": "difference", "op": ">", "threshold": 0}]})
    for _ in range(n_samples):
        s = _sample(pop, rng)
        d = SurveyDesign(s, weights="w", strata="stratum", psu="cluster", fpc="fpc")
        r = compare(d, ref, indicators=INDICATORS, year=2021)
        key = list(zip(r.indicator, r.category, r.adjustment))
        for k in ROWS:
            row = r.iloc[key.index(k)]
            hits[k] += bool(row.difference_ci_low <= 0 <= row.difference_ci_high)
        verdicts += list(evaluate_claims(r, claim).verdict)
    return {k: v / n_samples for k, v in hits.items()}, verdicts


def _check(cov, verdicts, lo, hi, n):
    crude = [v for k, v in cov.items() if k[2] == "crude"]
    std = [v for k, v in cov.items() if k[2] != "crude"]
    assert lo <= np.mean(crude) <= hi, cov
    assert lo <= np.mean(std) <= hi, cov
    # each row on its own: within a binomial 99.9 % band around 95 % (n samples)
    band = 3.3 * math.sqrt(0.95 * 0.05 / n)
    assert all(0.95 - band <= v <= min(1.0, 0.95 + band) for v in cov.values()), cov
    # a sample of the population itself: a one-sided claim of a difference is supported
    # about 2.5 % of the time (the interval's lower tail), within a binomial 99.9 % band
    assert np.mean([v == "supported" for v in verdicts]) <= 0.025 + 3.3 * math.sqrt(0.025 * 0.975 / n)


@pytest.mark.slow
def test_simulation_coverage_500_stratified_cluster_samples():
    """500 stratified cluster samples (10 strata x 10 clusters of 40, fpc) from a synthetic
    population built from the shipped tables: the 95 % intervals of the difference cover 0
    in 93-97 % of samples, pooled over the crude rows and over the standardised rows
    (direct age x sex, indirect), and every row lies within a binomial 99.9 % band."""
    cov, verdicts = _coverage(500)
    print({f"{k[0]} {k[1]} {k[2]}".strip(): round(v, 3) for k, v in cov.items()},
          "supported:", np.mean([v == "supported" for v in verdicts]))
    _check(cov, verdicts, 0.93, 0.97, 500)


def test_simulation_coverage_fast():
    """The same check on 40 samples (default suite): pooled coverage in 90-99 %."""
    cov, verdicts = _coverage(40, seed=11)
    _check(cov, verdicts, 0.90, 0.99, 40)


# ------------------------------------------------------------------ fieldwork matching
def _adults(n, seed, year_wave):
    rng = np.random.default_rng(seed)
    ref = _sim_reference(2021)
    pop = _population(ref, n_clusters=n // 10, size=10, seed=seed)
    pop["wave"] = year_wave
    pop["w"] = rng.uniform(0.5, 1.5, len(pop))
    return pop


def test_fieldwork_year_from_dates_wave_ids_or_setting():
    df = pd.DataFrame({"wave": ["2022-03"] * 5 + ["2022-11"] * 5 + ["2024-05"]})
    assert fieldwork_year(df) == (2023, "wave ids")        # midpoint of March 2022 - May 2024
    assert fieldwork_year(df, df.wave.eq("2024-05").to_numpy()) == (2024, "wave ids")
    df["interview_date"] = pd.to_datetime(["2021-12-30"] * 11)
    assert fieldwork_year(df) == (2021, "interview dates")
    assert fieldwork_year(pd.DataFrame({"wave": ["spring"]}), default=2019) == (2019, "[reference] year")
    assert fieldwork_year(pd.DataFrame({"wave": ["w1"]})) == (None, "unknown")


def test_vintages_nearest_fieldwork_and_flagged_2024_lfs():
    ent = lambda y: [t.id for t in RU.vintages("employment_status", y)][0]  # noqa: E731
    assert ent(2022) == "employment_status_lfs_2022"
    assert ent(2024) == "employment_status_lfs_2023"       # 2024 flagged, 2023 within the gap
    assert ent(2030) == "employment_status_lfs_2024"       # nothing unflagged within 3 years
    assert [t.id for t in RU.vintages("education_distribution", 2022)] == ["education_2021", "education_2010"]
    assert RU.vintages("age_distribution", 2010)[0].id == "population_1jan_2021"


def test_old_population_with_new_reference_is_caveated_and_inconclusive():
    """A 2010 survey (wave id 2010-10) compared with today's tables: every row says how far
    the reference is from fieldwork, and a claim resting on it is inconclusive; a 2022
    sample of the same population is within the gap and keeps its verdict."""
    claims = {"claims": [{"id": "younger", "statement": "s", "indicator": "mean_age",
                          "metric": "difference", "op": "<=", "threshold": -8}]}
    old = _adults(1500, 3, "2010-10")
    r = compare(SurveyDesign(old, weights="w"), "russia", indicators=["mean_age", "higher_education"])
    assert (r.fieldwork_year == 2010).all() and (r.fieldwork_basis == "wave ids").all()
    row = r[r.indicator == "mean_age"].iloc[0]
    assert row.reference_table == "population_1jan_2021" and row.year_gap == 11
    assert "reference 11 years from fieldwork" in row.caveat
    he = r[(r.indicator == "higher_education") & (r.adjustment == "crude")].iloc[0]
    assert he.reference_table == "education_2010" and he.year_gap == 0   # the 2010 census
    assert "population ages 15+" in he.caveat                      # no age bands: universe
    v = evaluate_claims(r, claims).iloc[0]
    assert v.raw_verdict == "not supported"
    assert v.verdict == "inconclusive (reference 11 years from fieldwork)"
    # accepted by the project: the caveat stays, the verdict is kept
    ra = compare(SurveyDesign(old, weights="w"), "russia", indicators=["mean_age"], accept=["year_gap"])
    assert "accepted by the project" in ra.caveat.iloc[0]
    assert evaluate_claims(ra, claims).verdict.iloc[0] == "not supported"
    # within the gap: no caveat, the verdict stands
    new = _adults(1500, 3, "2022-06")
    rn = compare(SurveyDesign(new, weights="w"), "russia", indicators=["mean_age"])
    assert rn.reference_table.iloc[0] == "age_sex_2022" and rn.caveat.iloc[0] == ""
    assert evaluate_claims(rn, claims).verdict.iloc[0] == "not supported"
    # a larger gap allowed: no caveat either
    rg = compare(SurveyDesign(old, weights="w"), "russia", indicators=["mean_age"], max_year_gap=12)
    assert rg.validity.iloc[0] == ""


def test_education_2021_restricted_to_18_plus_and_employed_standard():
    """Education: the 2021 census by age restricted to the frame (18+: 27.78 %); the
    indirect row is Σ n_a r_a / n; entrepreneurship among the employed: the LFS, and no
    standardised row on the whole population's age structure."""
    s = _adults(3000, 5, "2023-04")
    d = SurveyDesign(s, weights="w")
    r = compare(d, "russia")
    he = r[(r.indicator == "higher_education") & (r.adjustment == "crude")].iloc[0]
    assert he.reference_table == "education_2021" and he.population == pytest.approx(0.2778133, abs=1e-6)
    assert he.validity == "" and "restricted to ages 18+" in he.universe
    ind = r[(r.indicator == "higher_education") & (r.adjustment == "indirect")].iloc[0]
    t = RU.get("education_2021")
    rate = {}
    for b in dict.fromkeys(x.age for x in t.rows):
        rs = [x for x in t.rows if x.age == b and x.maps_to]
        rate[parse_age_band(b)] = sum(x.value for x in rs if x.category == "higher") / sum(x.value for x in rs)
    age, w = s.age.to_numpy(float), s.w.to_numpy()
    ra = np.array([next(v for (lo, hi), v in rate.items() if lo <= a <= (hi or 999)) for a in age])
    assert ind.population == pytest.approx((w * ra).sum() / w.sum(), rel=1e-12)
    assert ind.population_se > 0                 # the sample's age structure is estimated
    assert "sample's age structure" in ind.standard
    ent = r[r.indicator == "entrepreneurs_employed"]
    crude = ent[ent.adjustment == "crude"].iloc[0]
    assert crude.reference_table == "employment_status_lfs_2023"
    assert crude.population == pytest.approx(0.06345, abs=5e-5)
    assert "population ages 15+" in crude.caveat
    dstd = ent[ent.adjustment.str.startswith("direct")].iloc[0]
    assert math.isnan(dstd.estimate) and "age structure of the employed" in dstd.note
    direct = r[r.adjustment.str.startswith("direct") & r.estimate.notna()]
    assert set(direct.indicator) == {"higher_education", "entrepreneurs_all"}
    assert direct.standard.str.contains("population ages 18\\+ by age x sex").all()


def test_bad_reference_table_is_one_clear_error(tmp_path):
    """A project table without a year, or of an unknown kind: one error naming the file
    and the row (CSV line / YAML table)."""
    head = "id,kind,unit,year,publisher,table,url,confidence,category,value\n"
    p = tmp_path / "t.csv"
    p.write_text(head + "a,entrepreneur_share,percent,,Rosstat,x,http://x,HIGH,entrepreneur,3\n")
    with pytest.raises(ReferenceDataError) as e:
        ds.reference.load("russia", tables=[p])
    assert "year" in str(e.value.message) and str(p) + ":2" in e.value.where
    p.write_text(head + "a,higher_education_share,percent,2022,Rosstat,x,http://x,HIGH,higher_education,30\n"
                 "b,wealth,percent,2022,Rosstat,x,http://x,HIGH,rich,3\n")
    with pytest.raises(ReferenceDataError) as e:
        ds.reference.load("russia", tables=[p])
    assert "kind 'wealth'" in e.value.message and str(p) + ":3" in e.value.where
    y = tmp_path / "t.yaml"
    y.write_text("tables:\n  - {id: a, kind: age_distribution, unit: count, publisher: R, table: x,"
                 " url: http://x, confidence: HIGH, rows: [{category: '18+', value: 1}]}\n")
    with pytest.raises(ReferenceDataError) as e:
        ds.reference.load("russia", tables=[y])
    assert "year" in e.value.message and "tables[0]" in e.value.where and str(y) in e.value.where


def test_cli_bad_reference_table_exits_2(tmp_path, capsys):
    from diaspora_survey.cli import main

    (tmp_path / "t.csv").write_text("id,kind,unit,year,publisher,table,url,confidence,category,value\n"
                                    "a,wealth,percent,2022,R,x,http://x,HIGH,rich,3\n")
    (tmp_path / "diaspora-survey.toml").write_text('[reference]\ntables = ["t.csv"]\n')
    assert main(["reference", "show", "russia", "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "t.csv:2" in err and "wealth" in err and "Traceback" not in err


# ------------------------------------------------------------------ project indicators
MARRIED = """id: married_2021
kind: category_distribution
variable: marital_status
unit: count
year: 2021
publisher: Test
table: "test table (not a real figure)"
url: http://example.org
confidence: LOW
rows:
  - {category: married, age: "15-39", value: 30}
  - {category: single, age: "15-39", value: 70}
  - {category: married, age: "40+", value: 120}
  - {category: single, age: "40+", value: 80}
"""


def test_project_indicator_from_the_project_file(tmp_path):
    """A project's own indicator (a harmonised categorical variable against a
    category_distribution table): crude share restricted to 18+ with the table's counts
    (15-39 cut with the population age table), direct and indirect rows, claims accept it."""
    from diaspora_survey.compare.indicators import from_config
    from diaspora_survey.errors import ProjectError

    (tmp_path / "m.yaml").write_text(MARRIED, encoding="utf-8")
    ind = from_config({"name": "married", "variable": "marital_status", "categories": ["married"]})
    s = _adults(1200, 9, "2021-06")
    rng = np.random.default_rng(2)
    s["marital_status"] = np.where(rng.random(len(s)) < np.where(s.age < 40, 0.3, 0.6), "married", "single")
    r = compare(SurveyDesign(s, weights="w"), "russia", tables=[tmp_path / "m.yaml"],
                indicators=["mean_age", ind])
    m = r[r.indicator == "married"].set_index("adjustment")
    at = RU.vintages("age_distribution", 2021)[0]
    f = ds.reference.band_mass(at, 18, 39)[0] / ds.reference.band_mass(at, 15, 39)[0]
    assert m.loc["crude", "population"] == pytest.approx((30 * f + 120) / (100 * f + 200), rel=1e-12)
    w, y = s.w.to_numpy(), (s.marital_status == "married").to_numpy()
    assert m.loc["crude", "estimate"] == pytest.approx((w * y).sum() / w.sum(), rel=1e-12)
    rate = np.where(s.age.to_numpy() < 40, 0.3, 0.6)
    assert m.loc["indirect", "population"] == pytest.approx((w * rate).sum() / w.sum(), rel=1e-12)
    assert m.loc["direct (age x sex)", "standard"].startswith("population ages 18+")
    claims = {"claims": [{"id": "m", "statement": "s", "indicator": "married", "metric": "ratio",
                          "op": ">", "threshold": 1}]}
    assert evaluate_claims(r, claims, [ind]).verdict.iloc[0] in ("inconclusive", "not supported", "supported")
    with pytest.raises(ProjectError, match="built-in"):
        from_config({"name": "mean_age", "variable": "age"})
    with pytest.raises(ProjectError, match="standardise"):
        from_config({"name": "x", "variable": "v", "standardise": "sex"})


def test_project_file_indicators_and_reference_settings(tmp_path):
    from diaspora_survey.errors import ProjectError
    from diaspora_survey.project import Project

    (tmp_path / "diaspora-survey.toml").write_text(
        '[reference]\nyear = 2023\nmax_year_gap = 2\naccept = ["universe"]\n'
        '[[compare.indicators]]\nname = "married"\nvariable = "marital_status"\n'
        'categories = ["married"]\n', encoding="utf-8")
    p = Project.load(tmp_path)
    assert p.reference.compare_options()["year"] == 2023
    assert p.reference.compare_options()["accept"] == ("universe",)
    assert [i.name for i in p.indicators()] == ["married"]
    (tmp_path / "diaspora-survey.toml").write_text('[reference]\naccept = ["everything"]\n')
    with pytest.raises(ProjectError):
        Project.load(tmp_path)


def test_real_2010_survey_gets_caveats(shared_dir):
    """ESS round 5 Russia (fieldwork Dec 2010 - 2011, a real general-population survey):
    fieldwork from the interview dates; the age tables lie 10 years away (caveat, claims
    inconclusive), the 2010 census education is near but 15+ (the universe caveat)."""
    p = shared_dir / "testdata" / "spss" / "Bor_Littvay_TIER_Protocol__ESS5RU.sav"
    if not p.exists():
        pytest.skip("ESS5RU.sav not present")
    d = ds.read_wave(p).data
    age = pd.to_numeric(d.agea, errors="coerce").where(lambda a: a < 999)
    df = pd.DataFrame({
        "age": age.astype("Int64"), "sex": d.gndr.map({1: "male", 2: "female"}),
        "interview_date": pd.to_datetime(dict(year=d.inwyys, month=d.inwmms, day=d.inwdds), errors="coerce"),
        "education": pd.Series(np.where(d.eisced >= 6, "bachelor", "secondary_general")).where(d.eisced.between(1, 7)),
        "employment_status": d.emplrel.map({1: "employee", 2: "own_account"}), "w": d.dweight})
    r = compare(SurveyDesign(df, weights="w"), "russia", indicators=["mean_age", "higher_education"])
    assert r.attrs["fieldwork"]["all"] == {"year": 2011, "basis": "interview dates"}
    m = r[r.indicator == "mean_age"].iloc[0]
    assert m.reference_table == "population_1jan_2021" and "reference 10 years from fieldwork" in m.caveat
    he = r[(r.indicator == "higher_education") & (r.adjustment == "crude")].iloc[0]
    assert he.reference_table == "education_2010" and "population ages 15+" in he.validity
    claims = {"claims": [{"id": "y", "statement": "s", "indicator": "mean_age", "metric": "difference",
                          "op": "<", "threshold": 0}]}
    assert evaluate_claims(r, claims).verdict.iloc[0] == "inconclusive (reference 10 years from fieldwork)"


def test_docs_indicator_example_is_valid(repo_dir, tmp_path):
    """The [[compare.indicators]] entry and the table of docs/indicators.md are accepted."""
    import re
    import tomllib

    from diaspora_survey.compare.indicators import from_config

    text = (repo_dir / "docs" / "indicators.md").read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    ind = from_config(tomllib.loads(toml)["compare"]["indicators"][0])
    assert ind.name == "married" and ind.categories == ("married",)
    y = tmp_path / "married.yaml"
    y.write_text(re.search(r"```yaml\n(.*?)```", text, re.S).group(1), encoding="utf-8")
    (t,) = ds.reference.read_tables(y)
    assert t.kind == "category_distribution" and t.variable == "marital_status"
