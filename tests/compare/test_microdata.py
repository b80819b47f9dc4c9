"""ds.reference.from_microdata: reference tables computed from weighted microdata by the
engine equal the in-memory domain estimates, carry provenance, and are used by compare().

R: svyby(~I(education %in% higher), ~ageband+sex, subset(svydesign(ids=~psu, strata=~h,
weights=~w, nest=TRUE, data=micro), age >= 25), svymean) for the design-based rows.
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np
import pandas as pd
import pytest

import diaspora_survey as ds
from diaspora_survey.errors import EngineError
from diaspora_survey.survey.design import SurveyDesign

HIGHER = sorted(ds.schema.HIGHER_EDUCATION)


def micro(n=6000, seed=4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    he = rng.random(n) < np.where(age < 40, 0.35, 0.22)
    edu = np.where(he, rng.choice(HIGHER, n), rng.choice(["secondary_general", "vocational"], n))
    return pd.DataFrame({"age": age, "sex": rng.choice([1, 2], n), "education": edu,
                         "w": rng.gamma(2.0, 40.0, n), "h": rng.integers(0, 8, n),
                         "psu": rng.integers(0, 6, n)})


@pytest.fixture(scope="module")
def micro_file(tmp_path_factory):
    df = micro()
    p = tmp_path_factory.mktemp("micro") / "census_sample.parquet"
    df.to_parquet(p)
    return df, p


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_design_based_rows_equal_in_memory(micro_file, engine):
    df, p = micro_file
    t = ds.reference.from_microdata(p, weights="w", indicator="education", share_of=HIGHER,
                                    year=2021, by=["age", "sex"], sex_labels={1: "male", 2: "female"},
                                    strata="h", psu="psu", nest=True, filter="age >= 25",
                                    min_age=25, max_age=89, engine=engine, id="he_micro")
    assert t.kind == "higher_education_share" and t.min_age == 25 and t.max_age == 89
    assert len(t.rows) == 13 * 3 and set(t.sexes) == {"total", "male", "female"}
    full = SurveyDesign(df.assign(he=df.education.isin(HIGHER).astype(float)), weights="w",
                        strata="h", psu="psu", nest=True)
    for sex, code, band, lo, hi in [("male", [1], "25-29", 25, 29), ("female", [2], "85-89", 85, 89),
                                    ("total", [1, 2], "40-44", 40, 44)]:
        dom = full.subset(lambda x: (x.age >= lo) & (x.age <= hi) & x.sex.isin(code))
        want = dom.mean("he")
        row = next(r for r in t.rows if r.sex == sex and r.age == band)
        assert row.value == pytest.approx(want.estimate[0], rel=1e-10, abs=0)
        assert row.se == pytest.approx(want.se[0], rel=1e-10, abs=0)
    # provenance: the file, its sha256, weight, filter, design, engine
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    assert sha in t.derived and "census_sample.parquet" in t.derived and "weights w" in t.derived
    assert "age >= 25" in t.derived and "psu=psu" in t.derived and f"engine {engine}" in t.derived
    assert t.origin.endswith("census_sample.parquet") and t.url.startswith("file://")


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_element_design_rows_equal_in_memory(micro_file, engine):
    """strata without PSUs (R's ids=~1: every row a PSU): the cell moments' SEs equal the
    in-memory design's."""
    df, p = micro_file
    t = ds.reference.from_microdata(p, weights="w", indicator="education", share_of=HIGHER,
                                    year=2021, by=["age", "sex"], sex_labels={1: "male", 2: "female"},
                                    strata="h", filter="age >= 25", min_age=25, max_age=89,
                                    engine=engine, id="he_micro")
    full = SurveyDesign(df.assign(he=df.education.isin(HIGHER).astype(float)), weights="w", strata="h")
    for sex, code, band, lo, hi in [("male", [1], "25-29", 25, 29), ("total", [1, 2], "40-44", 40, 44)]:
        want = full.subset(lambda x: (x.age >= lo) & (x.age <= hi) & x.sex.isin(code)).mean("he")
        row = next(r for r in t.rows if r.sex == sex and r.age == band)
        assert row.value == pytest.approx(want.estimate[0], rel=1e-10, abs=0)
        assert row.se == pytest.approx(want.se[0], rel=1e-10, abs=0)


def test_without_design_point_shares_and_distribution(micro_file):
    df, p = micro_file
    t = ds.reference.from_microdata(p, weights="w", indicator="education", share_of=HIGHER,
                                    year=2021, by=["age"], age_bands=[(18, 39), (40, None)],
                                    dataset_id="census-2021-sample")
    sel = df.age >= 40
    want = (df.w * df.education.isin(HIGHER))[sel].sum() / df.w[sel].sum()
    row = next(r for r in t.rows if r.age == "40+")
    assert row.value == pytest.approx(want, rel=1e-12) and row.se is None
    assert "census-2021-sample" in t.derived and t.publisher == "census-2021-sample"
    dist = ds.reference.from_microdata(p, weights="w", indicator="education", by=[], year=2021,
                                       kind="category_distribution", strata="h", psu="psu", nest=True)
    full = SurveyDesign(df, weights="w", strata="h", psu="psu", nest=True).proportion("education")
    got = {r.category: (r.value, r.se) for r in dist.rows}
    for lev, e, s in zip(full.level, full.estimate, full.se):
        assert got[lev][0] == pytest.approx(e, rel=1e-10) and got[lev][1] == pytest.approx(s, rel=1e-10)


def test_compare_uses_the_table(micro_file):
    """A 5-year age table computed from microdata enables indirect standardisation."""
    _, p = micro_file
    t = ds.reference.from_microdata(p, weights="w", indicator="education", share_of=HIGHER,
                                    year=2021, by=["age", "sex"], sex_labels={1: "male", 2: "female"},
                                    min_age=18, strata="h", psu="psu", nest=True, id="he_micro",
                                    publisher="Census", confidence="HIGH")
    sample = micro(1500, seed=9)
    sample["sex"] = sample["sex"].map({1: "male", 2: "female"})
    d = SurveyDesign(sample, weights="w")
    old = ("age_sex_2022", "education_2010", "higher_education_2015_hse")   # no by-age tables
    ru = ds.reference.ReferencePopulation(
        "russia", tables=tuple(x for x in ds.reference.load("russia").tables if x.id in old))
    ru = ds.reference.load(ru, tables=[t])
    r = ds.compare.compare(d, ru, year=2022, indicators=["higher_education"])
    ind = r[r.adjustment == "indirect"]
    assert len(ind) and (ind.reference_table == "he_micro").all()
    rate = {r_.age: r_.value for r_ in t.select("total", None)}
    assert np.isfinite(ind.ratio.iloc[0]) and 0 < ind.population.iloc[0] < 1
    assert len(rate) == 15       # 18-22, ..., 83-87, 88+


def test_bad_input_names_file_and_column(micro_file, tmp_path, monkeypatch):
    df, p = micro_file
    bad = df.assign(wneg=df.w - 100, wtxt=df.w.astype(str), hnull=df.h.where(df.index % 5 > 0))
    q = tmp_path / "bad.parquet"
    bad.to_parquet(q)
    base = dict(indicator="education", share_of=HIGHER, year=2021, by=["age"])
    for kw, code, col in [(dict(weights="nope"), "engine.unknown_column", "nope"),
                          (dict(weights="wtxt"), "engine.not_numeric", "wtxt"),
                          (dict(weights="wneg"), "engine.negative", "wneg"),
                          (dict(weights="w", strata="hnull", psu="psu"), "engine.null", "hnull"),
                          (dict(weights="w", indicator="edu_x"), "engine.unknown_column", "edu_x")]:
        with pytest.raises(EngineError) as err:
            ds.reference.from_microdata(q, **{**base, **kw})
        assert err.value.code == code and "bad.parquet" in err.value.where and col in err.value.where
    with pytest.raises(EngineError) as err:
        ds.reference.from_microdata(tmp_path / "nothere.parquet", weights="w", **base)
    assert err.value.code == "engine.source_missing" and "nothere.parquet" in err.value.where
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(EngineError) as err:
        ds.reference.from_microdata(tmp_path / "junk.parquet", weights="w", **base)
    assert err.value.code == "engine.unreadable" and "junk.parquet" in err.value.where
    monkeypatch.setitem(sys.modules, "duckdb", None)           # as if not installed
    with pytest.raises(EngineError) as err:
        ds.reference.from_microdata(p, weights="w", **base)
    assert err.value.code == "engine.not_installed" and "pip install" in err.value.hint
