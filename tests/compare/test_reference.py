"""Reference populations: packaged data, loader, age helpers and malformed user tables."""
from __future__ import annotations


import pytest

import diaspora_survey as ds
from diaspora_survey.errors import ReferenceDataError
from diaspora_survey.compare.reference import band_mass, frame_shares, mean_age, median_age
from diaspora_survey.harmonise.schema import DEFAULT_AGE_BANDS


@pytest.fixture(scope="module")
def ru():
    return ds.reference.load("russia")


def test_list_and_load(ru):
    assert "russia" in ds.reference.list()
    kinds = {t.kind for t in ru.tables}
    assert {"age_distribution", "education_distribution", "employment_status"} <= kinds
    for t in ru.tables:          # every table carries machine-readable provenance
        assert t.publisher and t.table and t.url and t.year and t.confidence
        assert "UNVERIFIED" not in t.confidence
    assert ru.gap("employment_by_age") and ru.gap("education_by_age") is None   # filled by the 2021 census


def test_transcribed_figures(ru):
    age = ru.get("age_sex_2022")
    total = sum(r.value for r in age.select("total", ""))
    assert total == pytest.approx(145_291_263, abs=2)          # RosBRiS 2022 code 643
    m = sum(r.value for r in age.select("male", ""))
    f = sum(r.value for r in age.select("female", ""))
    assert m + f == pytest.approx(total, abs=5)   # as published (67,511,431 + 77,779,835)
    edu = ru.get("education_2010")
    v = {r.category: r.value for r in edu.rows}
    assert v["higher"] == 234 and v["secondary_vocational"] == 312
    assert sum(v.values()) == 1000                                # residual row is derived
    assert "residual" in [r for r in edu.rows if r.category == "primary_or_less"][0].derived
    emp = ru.get("employment_status_2002")
    ev = {r.category: r.value for r in emp.rows}
    assert sum(ev.values()) == 61_583_710                         # all employed 15+, 2002 census


def test_age_derivations_match_reference_notes(ru):
    """README §1a (derived, exact age): 18+ mean 48.9, median 47.35; all ages 40.63/40.36;
    male 18+ mean 46.46; female 18+ median 49.93. Ours are in completed years: mean - 0.5,
    median = floor(exact)."""
    t = ru.get("age_sex_2022")
    assert mean_age(t, 18, None) + 0.5 == pytest.approx(48.90, abs=0.005)
    assert median_age(t, 18, None)[1] == pytest.approx(47.35, abs=0.005)
    assert median_age(t, 18, None)[0] == 47
    assert mean_age(t, 0, None) + 0.5 == pytest.approx(40.63, abs=0.005)
    assert median_age(t, 0, None)[1] == pytest.approx(40.36, abs=0.005)
    assert mean_age(t, 18, None, "male") + 0.5 == pytest.approx(46.46, abs=0.005)
    assert median_age(t, 18, None, "female")[1] == pytest.approx(49.93, abs=0.005)


def test_frame_split_18_19_is_two_fifths(ru):
    t = ru.get("age_sex_2022")
    m, splits = band_mass(t, 18, 24)
    assert m == pytest.approx(0.4 * 7_529_621 + 6_819_988)
    assert splits == ["2/5 of 15-19"]
    shares, _, notes = frame_shares(t, DEFAULT_AGE_BANDS, 18, None)
    assert sum(shares) == pytest.approx(1.0)
    assert notes == ["18-24 includes 2/5 of 15-19"]
    shares64, _, _ = frame_shares(t, DEFAULT_AGE_BANDS, 18, 64)
    assert shares64[-1] == 0 and sum(shares64) == pytest.approx(1.0)


def test_frame_outside_coverage_is_an_error(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("""id: a
kind: age_distribution
unit: count
year: 2020
publisher: X
table: T
url: http://x
confidence: HIGH
rows:
  - {category: "20-29", value: 10}
  - {category: "30+", value: 10}
""")
    t = ds.reference.read_tables(p)[0]
    with pytest.raises(ReferenceDataError, match="covers ages 20"):
        mean_age(t, 18, None)


GOOD_CSV = ("id,kind,unit,year,publisher,table,url,confidence,category,age,value,se\n"
            "he_by_age,higher_education_share,percent,2021,Rosstat,VPN-2020 vol.3,http://x,HIGH,higher_education,18-39,40,0.5\n"
            "he_by_age,higher_education_share,percent,2021,Rosstat,VPN-2020 vol.3,http://x,HIGH,higher_education,40+,25,0.5\n")


def test_user_csv_table_is_added(tmp_path):
    p = tmp_path / "he.csv"
    p.write_text(GOOD_CSV, encoding="utf-8")
    pop = ds.reference.load("russia", tables=[p])
    t = pop.get("he_by_age")
    assert t.kind == "higher_education_share" and len(t.rows) == 2 and t.rows[0].se == 0.5
    assert pop.of_kind("higher_education_share")[0].id == "he_by_age"   # project tables first


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s.replace(",HIGH,higher_education,40+", ",UNVERIFIED,higher_education,40+"), "UNVERIFIED|differs"),
    (lambda s: s.replace("40,0.5", "4o,0.5"), "value '4o' is not a number"),
    (lambda s: s.replace("18-39", "eighteen"), "not an age band"),
    (lambda s: s.replace("percent,2021", "percent,20x1"), "year"),
    (lambda s: s.replace(",url,", ",link,"), "unknown column"),
    (lambda s: s.replace("40,0.5", "140,0.5"), "exceeds"),
])
def test_malformed_csv_names_file_and_line(tmp_path, mutate, match):
    p = tmp_path / "bad.csv"
    p.write_text(mutate(GOOD_CSV), encoding="utf-8")
    with pytest.raises(ReferenceDataError, match=match) as ei:
        ds.reference.load("russia", tables=[p])
    assert str(p) in ei.value.where and ei.value.hint


def test_malformed_yaml_names_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("""id: edu
kind: education_distribution
unit: percent
year: 2021
publisher: Rosstat
table: T
url: http://x
confidence: HIGH
rows:
  - {category: higher, value: 30, maps_to: [bachelor, phd]}
""")
    with pytest.raises(ReferenceDataError, match="unknown education categories") as ei:
        ds.reference.read_tables(p)
    assert "rows[0]: maps_to" in ei.value.where
    p.write_text("id: x\nkind: [unclosed\n")
    with pytest.raises(ReferenceDataError, match="YAML") as ei:
        ds.reference.read_tables(p)
    assert ei.value.where.startswith(str(p))


def test_unknown_population():
    with pytest.raises(ReferenceDataError, match="unknown reference population"):
        ds.reference.load("atlantis")


def test_cli_reference_list_and_show(capsys):
    from diaspora_survey.cli import main

    assert main(["reference", "list"]) == 0
    assert "russia" in capsys.readouterr().out
    assert main(["reference", "show", "russia", "--json"]) == 0
    import json
    d = json.loads(capsys.readouterr().out)
    assert {t["id"] for t in d["tables"]} >= {"age_sex_2022", "education_2010"}
    assert all(t["url"] and t["confidence"] for t in d["tables"])
    assert main(["reference", "show", "atlantis"]) == 2
    assert "unknown reference population" in capsys.readouterr().err


# ------------------------------------------------------------------ traceability to the notes
def _csv(shared_dir, name):
    import pandas as pd
    return pd.read_csv(shared_dir / "reference" / name)


def test_every_shipped_figure_traces_to_the_reference_notes(ru, shared_dir):
    """Each number in russia.yaml equals the figure in shared/reference/*.csv (or is a row
    marked ``derived`` whose derivation is recomputed here); nothing else is shipped."""
    rb = _csv(shared_dir, "russia_age_structure_rosbris.csv")
    rb = rb[(rb.indicator == "population_by_age_643") & (rb.year == 2022)]
    want = {(r.sex, r.category): r.value for r in rb.itertuples()}
    age = ru.get("age_sex_2022")
    assert {(r.sex, r.category): r.value for r in age.rows} == want
    assert age.year == 2022 and age.confidence == "HIGH" and "RosBRiS" in age.publisher

    ed = _csv(shared_dir, "russia_education.csv")
    ed = ed[(ed.indicator == "education_15plus_per1000_indicating") & (ed.year == 2010)]
    edu = {r.category: r for r in ru.get("education_2010").rows}
    pick = lambda prefix: ed[ed.category.str.startswith(prefix)].value.tolist()  # noqa: E731
    assert pick("higher") == [edu["higher"].value] == [234]
    assert pick("incomplete higher") == [edu["incomplete_higher"].value]
    assert pick("secondary vocational") == [edu["secondary_vocational"].value]
    assert pick("initial vocational") == [edu["initial_vocational"].value]
    assert pick("secondary general") == [edu["secondary_general"].value]
    assert pick("basic general") == [edu["basic_general"].value]
    listed = sum(r.value for c, r in edu.items() if c != "primary_or_less")
    assert edu["primary_or_less"].derived and edu["primary_or_less"].value == 1000 - listed

    em = _csv(shared_dir, "russia_employment_status.csv")
    em = em[em.indicator == "employed_15plus_by_status"].set_index("category").value
    st = {r.category: r.value for r in ru.get("employment_status_2002").rows}
    assert sum(st.values()) == em["all employed 15+"]
    assert st["employee"] == em["employees (работающие по найму)"]
    assert st["employer"] == em["employers: not for hire WITH hired workers"]
    assert st["own_account"] == em["own-account: not for hire WITHOUT hired workers"]
    assert st["not_for_hire_other"] == em["not for hire, other (иное)"]
    assert st["status_not_stated"] == em["status in employment not stated"]

    ent = ru.get("entrepreneurs_15plus_2002").rows[0]
    e15 = _csv(shared_dir, "russia_education.csv")
    pop15 = e15[(e15.indicator == "education_15plus_count") & (e15.year == 2002)
                & (e15.category == "all persons 15+")].value.iloc[0] * 1e6
    assert ent.derived and ent.value == pytest.approx(
        100 * (em["employers: not for hire WITH hired workers"]
               + em["own-account: not for hire WITHOUT hired workers"]) / pop15, abs=5e-4)

    he = _csv(shared_dir, "russia_education.csv").set_index("indicator").value
    hse = {r.age: r.value for r in ru.get("higher_education_2015_hse").rows}
    assert hse == {"25-64": he["higher_education_share_25_64"], "25-34": he["higher_education_share_25_34"]}
    # section 7 (December 2026): census 2021 education by age, LFS 2019-2024, 1 January
    # population 2021/2024, census 2021 livelihood -- every number traced to its CSV
    e21 = _csv(shared_dir, "russia_education_census2021.csv")
    e21 = e21[(e21.indicator == "census2021_educ_count") & (e21.unit == "persons")]
    src = {tuple(x.strip() for x in c.split("|", 1)): v for c, v in zip(e21.category, e21.value)}
    names = {"higher": "higher total = vysshee + kadry vysshei kvalifikatsii (DERIVED sum)",
             "incomplete_higher": "incomplete higher (неполное высшее)",
             "secondary_vocational": "secondary vocational total (среднее профессиональное)",
             "secondary_general": "secondary general (среднее общее)",
             "basic_general": "basic general (основное общее)",
             "primary_general": "primary general (начальное общее)",
             "preschool": "pre-school (дошкольное)",
             "no_education": "no education (не имеющие образования)",
             "not_stated": "education not indicated (не указавшие)"}
    edu21 = ru.get("education_2021")
    assert len(edu21.rows) == 13 * 9
    for r in edu21.rows:
        assert r.value == src[(r.age, names[r.category])]
    stated = [r for r in edu21.rows if r.maps_to and r.age != "15-17"]
    hi = sum(r.value for r in stated if r.category == "higher")
    assert 100 * hi / sum(r.value for r in stated) == pytest.approx(27.78, abs=0.005)  # README 7a
    lfs = _csv(shared_dir, "russia_employment_status_lfs.csv")
    lfs = lfs[lfs.indicator == "lfs_employment_by_status_count"]
    code = {"employees": "employee", "employers": "employer", "own-account": "own_account",
            "members": "cooperative_member", "contributing": "family_worker"}
    for y in range(2019, 2025):
        t = ru.get(f"employment_status_lfs_{y}")
        assert t.year == y and t.confidence == "HIGH" and bool(t.caveat) == (y == 2024)
        want = {(r.sex, code[r.category.split()[0]]): r.value for r in lfs[lfs.year == y].itertuples()
                if not r.category.startswith("total")}
        assert {(r.sex, r.category): r.value for r in t.rows} == pytest.approx(want, abs=6e-4)
    t23 = {r.category: r.value for r in ru.get("employment_status_lfs_2023").select("total", "")}
    tot = 100 / sum(t23.values())
    assert (t23["employer"] * tot, t23["own_account"] * tot) == pytest.approx((1.39, 4.94), abs=0.005)
    pj = _csv(shared_dir, "russia_population_1jan.csv")
    pj = pj[pj.indicator == "population_1jan_by_age"]
    for y in (2021, 2024):
        t = ru.get(f"population_1jan_{y}")
        want = {(r.sex, r.category): r.value for r in pj[pj.year == y].itertuples()}
        assert {(r.sex, r.category): r.value for r in t.rows} == want
        total = sum(r.value for r in t.select("total", ""))
        assert total == {2021: 144_739_080, 2024: 144_889_510}[y]      # ages 1+ (DERIVED sums)
    lv = _csv(shared_dir, "russia_livelihood_census2021.csv")
    lv = lv[(lv.indicator == "census2021_livelihood_source_count") & lv.category.str.startswith("all ages")]
    liv = {(r.sex, r.category): r.value for r in ru.get("livelihood_2021").rows}
    assert liv[("total", "entrepreneurial_income")] == lv[(lv.sex == "total") & lv.category.str.contains(
        "entrepreneurial")].value.iloc[0]
    assert 100 * liv[("total", "entrepreneurial_income")] / liv[("total", "named_a_source")] == \
        pytest.approx(2.42, abs=0.005)
    # confidence labels as in the notes (README: 2a MED-HIGH, HSE LOW-MED, 3a HIGH, 7a-c HIGH, 7d MED)
    conf = {t.id: t.confidence for t in ru.tables}
    assert {k: conf[k] for k in ("age_sex_2022", "education_2010", "higher_education_2015_hse",
                                 "employment_status_2002", "entrepreneurs_15plus_2002",
                                 "education_2021", "population_1jan_2024", "livelihood_2021")} == {
        "age_sex_2022": "HIGH", "education_2010": "MED-HIGH", "higher_education_2015_hse": "LOW-MED",
        "employment_status_2002": "HIGH", "entrepreneurs_15plus_2002": "MED", "education_2021": "HIGH",
        "population_1jan_2024": "MED", "livelihood_2021": "HIGH"}
    text = (shared_dir / "reference" / "README.md").read_text(encoding="utf-8")
    assert "27%" in text and "UNVERIFIED" in text
    values = {r.value for t in ru.tables for r in t.rows}
    assert 27 not in values and 27.0 not in values         # the unverified "Russian average 27%"


def test_share_tables_need_a_share_unit(tmp_path):
    p = tmp_path / "t.csv"                  # a share table given with unit count
    p.write_text(GOOD_CSV.replace(",percent,", ",count,"), encoding="utf-8")
    with pytest.raises(ReferenceDataError, match="holds shares") as ei:
        ds.reference.read_tables(p)
    assert ei.value.where.endswith(": unit")


def test_age_table_with_se_is_rejected(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("""id: a
kind: age_distribution
unit: count
year: 2020
publisher: X
table: T
url: http://x
confidence: HIGH
rows:
  - {category: "0-49", value: 10, se: 1}
  - {category: "50+", value: 10}
""")
    with pytest.raises(ReferenceDataError, match="se is not used") as ei:
        ds.reference.read_tables(p)
    assert "rows[0]: se" in ei.value.where


def test_overlap_fraction():
    from diaspora_survey.compare.reference.ages import overlap_fraction
    assert overlap_fraction(15, 19, 18, None) == pytest.approx(0.4)
    assert overlap_fraction(60, 64, 18, 62) == pytest.approx(0.6)
    assert overlap_fraction(85, None, 18, 89) == pytest.approx(0.5)    # 85+ taken as 85-94
    assert overlap_fraction(0, 4, 18, None) == 0.0
