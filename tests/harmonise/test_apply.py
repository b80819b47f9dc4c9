"""Harmonisation: transforms, value maps, missing codes, unmapped reporting, eligibility,
exclusions ("nothing lost"), dtypes, the example project and the `harmonise` command."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from diaspora_survey.harmonise import schema
from diaspora_survey.errors import CodebookError, HarmonisationError
from diaspora_survey.harmonise.apply import harmonise, parse_month, stack
from diaspora_survey.io.base import VariableMeta

from harmonise_helpers import cb, make_wave





# ---- month parsing ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("03.2022", (2022, 3)), ("3.2022", (2022, 3)), ("03/2022", (2022, 3)), (" 03/2022 ", (2022, 3)),
    ("2022-03", (2022, 3)), ("2022.03", (2022, 3)), ("15.03.2022", (2022, 3)), ("2022-03-15", (2022, 3)),
    ("март 2022", (2022, 3)), ("Март 2022", (2022, 3)), ("МАРТА 2022", (2022, 3)), ("марта 2022 г.", (2022, 3)),
    ("в марте 2022", None), ("марте 2022", (2022, 3)), ("мар. 2022", (2022, 3)), ("2022 март", (2022, 3)),
    ("май 2022", (2022, 5)), ("мая 2022", (2022, 5)), ("сент. 2022", (2022, 9)), ("сентября 2022", (2022, 9)),
    ("Сентябрь 2022", (2022, 9)), ("нояб. 2022", (2022, 11)), ("февраля 2023", (2023, 2)),
    ("March 2022", (2022, 3)), ("mar 2022", (2022, 3)), ("Sept 2022", (2022, 9)), ("September, 2022", (2022, 9)),
    ("декабрь 2021", (2021, 12)), ("январь 2023", (2023, 1)), ("июнь 2022", (2022, 6)), ("июля 2022", (2022, 7)),
    ("13.2022", None), ("марс 2022", None), ("2022", None), ("", None), (None, None), ("не помню", None),
    ("03.1850", None),
])
def test_parse_month(text, expected):
    assert parse_month(text) == expected


def test_parse_month_all_russian_month_names_and_cases():
    nom = ["январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь",
           "ноябрь", "декабрь"]
    gen = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
           "ноября", "декабря"]
    for i, (a, b) in enumerate(zip(nom, gen), start=1):
        for form in (a, b, a.upper(), b.capitalize()):
            assert parse_month(f"{form} 2022") == (2022, i), form


@settings(max_examples=200, deadline=None)
@given(y=st.integers(1900, 2100), m=st.integers(1, 12), fmt=st.integers(0, 6))
def test_property_parse_month_round_trip(y, m, fmt):
    from diaspora_survey.harmonise.apply import MONTH_FORMS

    ru = [k for k, v in MONTH_FORMS.items() if v == m and not k.isascii()]
    en = max((k for k, v in MONTH_FORMS.items() if v == m and k.isascii()), key=len)
    text = [f"{m:02d}.{y}", f"{m}.{y}", f"{y}-{m:02d}", f"{m:02d}/{y}", f"{ru[(y + fmt) % len(ru)].upper()} {y}",
            f"{en.capitalize()} {y}", f"15.{m:02d}.{y}"][fmt]
    assert parse_month(text) == (y, m)


# ---- transforms ------------------------------------------------------------------------------

def test_age_from_birth_year_rules():
    df = pd.DataFrame({"by": [1990.0, 2000.0, np.nan, 1990.0],
                       "d": pd.to_datetime(["2022-03-10", "2022-08-01", "2022-03-10", None])})
    base = """
wave: w
variables:
  age:
    transform: age_from_birth_year
    source: [by, d]
    age_rule: {rule}
"""
    mid = harmonise(make_wave(df), cb(base.format(rule="midyear"))).data["age"]
    assert mid.tolist() == [31, 22, pd.NA, pd.NA]
    diff = harmonise(make_wave(df), cb(base.format(rule="year_difference"))).data["age"]
    assert diff.tolist() == [32, 22, pd.NA, pd.NA]
    assert str(mid.dtype) == "Int64"


def test_age_from_birth_year_with_constant_interview_date_and_missing_code():
    df = pd.DataFrame({"by": [1990, 9999, 2004]})
    h = harmonise(make_wave(df), cb("""
wave: w
variables:
  age:
    transform: age_from_birth_year
    source: by
    interview_date: 2022-11-15
    missing: [9999]
"""))
    assert h.data["age"].tolist() == [32, pd.NA, 18]
    assert h.summary.set_index("variable").loc["age", "missing"] == 1


def test_month_transform_reports_unparsed_values():
    df = pd.DataFrame({"m": ["03.2022", "2022-09", "сентябрь 2022", "не помню", "", None, "вчера"]})
    h = harmonise(make_wave(df), cb("""
wave: w
variables:
  departure_date:
    source: m
    transform: month
    missing: ["не помню"]
"""))
    d = h.data["departure_date"]
    assert str(d.dtype).startswith("datetime64")
    assert d.iloc[0] == pd.Timestamp("2022-03-01") and d.iloc[2] == pd.Timestamp("2022-09-01")
    assert d.iloc[3:].isna().all()
    [issue] = [i for i in h.issues if i.kind == "unparsed"]
    assert issue.count == 1 and "вчера" in issue.values
    s = h.summary.set_index("variable").loc["departure_date"]
    assert (s.n, s.missing, s.unmapped) == (3, 3, 1)   # unmapped rows are not counted as missing too
    assert h.data["departure_cohort"].tolist()[:2] == ["2022-02-24_to_2022-09-20", "2022-09-21_to_2022-12-31"]


def test_year_month_transform():
    df = pd.DataFrame({"y": [2022, 2023, 2022, np.nan], "m": [9, 1, 98, 5]})
    meta = {"m": VariableMeta("m", missing_values=[98])}
    h = harmonise(make_wave(df, meta), cb("""
wave: w
variables:
  departure_date:
    transform: year_month
    source: [y, m]
"""))
    assert h.data["departure_date"].tolist()[:2] == [pd.Timestamp("2022-09-01"), pd.Timestamp("2023-01-01")]
    assert h.data["departure_date"].iloc[2:].isna().all()
    # September 2022 to the month: the mobilisation month (see schema.derive_departure_cohort)
    assert h.data["departure_cohort"].tolist()[:2] == ["2022-09-21_to_2022-12-31", "2023_or_later"]


@pytest.mark.parametrize("date, cohort", [
    ("2022-01-01", "before_2022-02-24"),
    ("2022-02-01", "2022-02-24_to_2022-09-20"),     # February 2022, month only: the war month
    ("2022-02-23", "before_2022-02-24"),            # a known day is placed by the day
    ("2022-02-24", "2022-02-24_to_2022-09-20"),
    ("2022-08-01", "2022-02-24_to_2022-09-20"),
    ("2022-09-01", "2022-09-21_to_2022-12-31"),     # September 2022, month only: mobilisation
    ("2022-09-20", "2022-02-24_to_2022-09-20"),
    ("2022-09-21", "2022-09-21_to_2022-12-31"),
    ("2022-12-31", "2022-09-21_to_2022-12-31"),
    ("2023-01-01", "2023_or_later"),
])
def test_departure_cohort_boundaries(date, cohort):
    from diaspora_survey.harmonise.schema import derive_departure_cohort

    out = derive_departure_cohort(pd.Series(pd.to_datetime([date, None])))
    assert out.iloc[0] == cohort and pd.isna(out.iloc[1])


def test_date_transform_floors_to_month():
    df = pd.DataFrame({"d": pd.to_datetime(["2022-09-25", "2021-05-03"])})
    h = harmonise(make_wave(df), cb("wave: w\nvariables:\n  departure_date: {source: d, transform: date}\n"))
    assert h.data["departure_date"].tolist() == [pd.Timestamp("2022-09-01"), pd.Timestamp("2021-05-01")]


def test_numeric_age_with_decimal_comma_text_and_valid_range():
    df = pd.DataFrame({"a": ["34", "17", "", "250", "abc", "40,0"]})
    h = harmonise(make_wave(df), cb("wave: w\nvariables:\n  age: {source: a, valid_range: [14, 100]}\n"))
    assert h.data["age"].tolist() == [34, 17, pd.NA, pd.NA, pd.NA, 40]
    kinds = {i.kind: i for i in h.issues}
    assert kinds["out_of_range"].count == 1 and kinds["unparsed"].count == 1


def test_country_via_value_labels_and_crosswalk():
    df = pd.DataFrame({"c": [1.0, 2.0, 3.0, 99.0, 4.0]})
    meta = {"c": VariableMeta("c", value_labels={1: "Грузия", 2: "Кыргызстан", 3: "Турецкая Республика",
                                                  4: "Атлантида", 99: "Отказ"}, missing_values=[99])}
    h = harmonise(make_wave(df, meta), cb("wave: w\nvariables:\n  country: {source: c, crosswalk: country}\n"))
    assert h.data["country"].astype(object).tolist()[:3] == ["GE", "KG", "TR"]
    assert h.data["country"].isna().tolist() == [False, False, False, True, True]
    s = h.summary.set_index("variable").loc["country"]
    assert (s.n, s.missing, s.unmapped) == (3, 1, 1)   # 99 is user-missing in the file, 4 unmapped
    [issue] = [i for i in h.issues if i.kind == "unmapped"]
    assert issue.count == 1 and "4 «Атлантида»" in issue.values


def test_country_names_typed_in_russian():
    df = pd.DataFrame({"c": ["Грузия", " грузия ", "ГРУЗИЯ.", "Объединенные Арабские Эмираты", "ОАЭ", "Киргизия",
                             "Кыргызстан", "Турция", "Турецкая Республика", "Сербия"]})
    h = harmonise(make_wave(df), cb("wave: w\nvariables:\n  country: {source: c, crosswalk: country}\n"))
    assert h.data["country"].astype(str).tolist() == ["GE", "GE", "GE", "AE", "AE", "KG", "KG", "TR", "TR", "RS"]
    assert not h.issues


# ---- value maps and missing codes --------------------------------------------------------------

EDU_CB = """
wave: w
variables:
  education:
    source: e
    map: {1: master, 2: bachelor, 3: secondary_general}
    missing: [98]
"""


def test_unmapped_codes_are_reported_not_silently_missing():
    df = pd.DataFrame({"e": [1, 2, 3, 98, 7, 7, np.nan]})
    meta = {"e": VariableMeta("e", value_labels={7: "Другое"})}
    h = harmonise(make_wave(df, meta), cb(EDU_CB))
    assert h.data["education"].isna().sum() == 4
    [issue] = h.issues
    assert issue.kind == "unmapped" and issue.count == 2 and issue.values == {"7 «Другое»": 2}
    assert issue.where == "cb.yaml:4"
    s = h.summary.set_index("variable").loc["education"]
    assert (s.n, s.missing, s.unmapped) == (3, 2, 2)   # n + missing + unmapped = rows
    assert h.unmapped == 2


def test_strict_makes_unmapped_an_error():
    df = pd.DataFrame({"e": [1, 7]})
    with pytest.raises(HarmonisationError) as ei:
        harmonise(make_wave(df), cb(EDU_CB), strict=True)
    assert ei.value.code == "harmonise.unmapped" and "not mapped" in ei.value.message
    assert ei.value.where.startswith("cb.yaml:")


def test_file_user_missing_codes_become_missing_but_explicit_map_wins():
    df = pd.DataFrame({"e": [1, 97, 99]})
    meta = {"e": VariableMeta("e", missing_values=[97], missing_ranges=[(99, 99)])}
    h = harmonise(make_wave(df, meta), cb(EDU_CB))
    assert h.data["education"].isna().tolist() == [False, True, True] and not h.issues
    text = EDU_CB.replace("3: secondary_general", "3: secondary_general, 97: basic_general")
    h2 = harmonise(make_wave(df, meta), cb(text))
    assert h2.data["education"].astype(str).tolist()[:2] == ["master", "basic_general"]
    h3 = harmonise(make_wave(df, meta), cb(EDU_CB + "    file_missing: false\n"))
    assert h3.unmapped == 2


def test_labels_and_ranges_maps():
    df = pd.DataFrame({"e": [1, 2], "g": [15, 40], "s": ["М", "ж"]})
    meta = {"e": VariableMeta("e", value_labels={1: "ВЫСШЕЕ (магистратура)", 2: "Среднее"})}
    h = harmonise(make_wave(df, meta), cb("""
wave: w
variables:
  education:
    source: e
    labels: {"Высшее — магистратура": master, "среднее": secondary_general}
  sex:
    source: s
    crosswalk: sex
  band:
    custom: true
    type: ordered
    source: g
    ranges:
      - {max: 17, to: minor}
      - {min: 18, to: adult}
"""))
    assert h.data["education"].astype(str).tolist() == ["master", "secondary_general"]
    assert h.data["sex"].astype(str).tolist() == ["male", "female"]
    assert h.data["band"].astype(str).tolist() == ["minor", "adult"]
    assert h.data["band"].cat.ordered


def test_output_dtypes_follow_the_schema():
    df = pd.DataFrame({"id": [1.0, 2.0], "e": [1, 2], "j": [1, 2], "a": [30, 40], "w": [1.5, 0.5]})
    h = harmonise(make_wave(df), cb("""
wave: w
id: id
design: {weight: w}
variables:
  education: {source: e, map: {1: master, 2: bachelor}}
  employment_status: {source: j, map: {1: employer, 2: student}}
  age: {source: a}
"""))
    d = h.data
    assert d["resp_id"].dtype == "string" and d["resp_id"].tolist() == ["1", "2"]
    assert list(d["education"].cat.categories) == schema.SCHEMA["education"].categories
    assert d["education"].cat.ordered
    assert not d["employment_status"].cat.ordered
    assert str(d["age"].dtype) == "Int64"
    assert str(d["higher_education"].dtype) == "boolean" and d["higher_education"].tolist() == [True, True]
    assert d["entrepreneur"].tolist() == [True, False]
    assert d["age_group"].astype(str).tolist() == ["30-34", "40-44"]
    assert d["weight_base"].tolist() == [1.5, 0.5]


# ---- eligibility, exclusions, nothing lost -------------------------------------------------------

def test_eligibility_exclusions_with_reason():
    df = pd.DataFrame({"id": ["a", "b", "c", "d"], "a": [17, 18, np.nan, 40]})
    text = """
wave: w
id: id
eligibility: ["age >= 18"]
variables:
  age: {source: a}
"""
    h = harmonise(make_wave(df), cb(text))
    assert h.data["resp_id"].tolist() == ["b", "c", "d"]
    assert h.exclusions[["resp_id", "reason", "detail"]].values.tolist() == [["a", "eligibility: age >= 18", "age=17"]]
    assert h.exclusions["row"].tolist() == [0]
    assert [i.kind for i in h.issues] == ["eligibility_unknown"]
    h2 = harmonise(make_wave(df), cb(text.replace('["age >= 18"]', '[{rule: "age >= 18", missing: exclude}]')))
    assert h2.data["resp_id"].tolist() == ["b", "d"] and h2.exclusions["detail"].tolist() == ["age=17", "age=NA"]


def test_eligibility_in_rule_and_duplicate_ids():
    df = pd.DataFrame({"id": ["a", "b", "b", "c"], "c": ["Грузия", "Армения", "Армения", "Германия"]})
    h = harmonise(make_wave(df), cb("""
wave: w
id: id
eligibility: ["country in [GE, AM]"]
variables:
  country: {source: c, crosswalk: country}
"""))
    assert h.data["resp_id"].tolist() == ["a", "b"]
    assert sorted(h.exclusions["reason"].tolist()) == ["duplicate resp_id", "eligibility: country in [GE, AM]"]


@settings(max_examples=60, deadline=None)
@given(codes=st.lists(st.sampled_from([1, 2, 3, 4, 98, None]), min_size=0, max_size=60),
       ages=st.data())
def test_property_every_row_exactly_once_and_unmapped_counted(codes, ages):
    n = len(codes)
    age = ages.draw(st.lists(st.one_of(st.none(), st.integers(10, 90)), min_size=n, max_size=n))
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)],
                       "e": pd.Series(codes, dtype="float64"),
                       "a": pd.Series(age, dtype="float64")})
    h = harmonise(make_wave(df), cb("""
wave: w
id: id
eligibility: ["age >= 18"]
variables:
  education: {source: e, map: {1: master, 2: bachelor}, missing: [98]}
  age: {source: a}
"""))
    ids = h.data["resp_id"].tolist() + h.exclusions["resp_id"].tolist()
    assert sorted(ids) == sorted(df["id"])                       # every row exactly once
    assert set(h.data.index) | set(h.exclusions["row"].astype(int)) == set(range(n))
    expected_unmapped = sum(c in (3, 4) for c in codes)
    assert h.unmapped == expected_unmapped                       # unmapped never silent
    assert (h.data["age"].dropna() >= 18).all()


def test_stack_unions_categories_and_wave_order():
    w1 = harmonise(make_wave(pd.DataFrame({"c": ["Грузия"]})), cb("wave: a\nvariables:\n  country: {source: c, crosswalk: country}\n"))
    w2 = harmonise(make_wave(pd.DataFrame({"c": ["Армения", "Германия"]})), cb("wave: b\nvariables:\n  country: {source: c, crosswalk: country}\n"))
    data, excl = stack([w1, w2], ["a", "b"])
    assert list(data["wave"].cat.categories) == ["a", "b"]
    assert list(data["country"].cat.categories) == ["AM", "DE", "GE"]
    assert data["country"].astype(str).tolist() == ["GE", "AM", "DE"]
    assert len(excl) == 0


def test_unknown_column_is_reported_against_the_file():
    with pytest.raises(CodebookError) as ei:
        harmonise(make_wave(pd.DataFrame({"E": [1], "x": [2]})), cb(EDU_CB))
    assert ei.value.code == "codebook.unknown_column" and ei.value.where == "cb.yaml:5"
    assert "'e' is not in test.sav" in ei.value.message
    assert "did you mean 'E'" in ei.value.hint and "the file has: E, x" in ei.value.hint


# ---- the example project -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def example(repo_dir):
    from diaspora_survey.project import Project

    return Project.load(repo_dir).harmonise_all()


def test_example_project_harmonises_with_zero_unmapped(example):
    assert example.unmapped == 0
    assert not [i for i in example.issues if i.kind in ("unmapped", "unparsed", "out_of_range")]
    d = example.data
    assert list(d["wave"].cat.categories) == ["2022-03", "2022-11", "2024-05"]
    assert d.groupby("wave", observed=True).size().between(1400, 5100).all()
    assert str(d["age"].dtype) == "Int64" and d["age"].min() >= 18
    assert str(d["departure_date"].dtype).startswith("datetime64")
    assert d["education"].cat.ordered and str(d["higher_education"].dtype) == "boolean"
    assert d["resp_id"].dtype == "string"
    # nothing lost: raw rows = harmonised + excluded
    assert len(d) + len(example.exclusions) == 2000 + 5000 + 1500
    assert (example.exclusions["reason"] == "eligibility: age >= 18").all() and len(example.exclusions) > 0
    # weight only in wave 3
    assert d.loc[d["wave"] == "2024-05", "weight_base"].notna().all()
    assert d.loc[d["wave"] != "2024-05", "weight_base"].isna().all()
    # plausibility of the synthetic data
    assert 31 <= d["age"].median() <= 36
    assert 0.72 <= d["higher_education"].mean() <= 0.88
    assert 0.18 <= d["entrepreneur"].mean() <= 0.32
    assert (d["sex"] == "female").mean() > 0.5
    assert d.loc[d["wave"] != "2024-05", "country"].isin(["GE", "AM"]).mean() > 0.4


def test_harmonise_command_writes_parquet(repo_dir, tmp_path, capsys):
    pytest.importorskip("diaspora_survey.io")
    from diaspora_survey.cli import main

    out = tmp_path / "h.parquet"
    assert main(["harmonise", "--project", str(repo_dir), "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Harmonisation summary" in text and "unmapped" in text and "SYNTHETIC" in text
    d = pd.read_parquet(out)
    assert len(d) > 8000 and isinstance(d["wave"].dtype, pd.CategoricalDtype)
    e = pd.read_parquet(tmp_path / "exclusions.parquet")
    assert set(e.columns) >= {"wave", "row", "resp_id", "reason"}
    assert not list(tmp_path.glob(".*tmp"))


def test_public_api_harmonise_stays_callable_in_any_import_order():
    import subprocess
    import sys

    code = ("import diaspora_survey as ds, diaspora_survey.project, diaspora_survey.harmonise.apply; "
            "print(callable(ds.harmonise), ds.Harmonised.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "Harmonised"]


def test_harmonise_command_strict_fails_on_unmapped(repo_dir, tmp_path, monkeypatch, capsys):
    import shutil

    from diaspora_survey.cli import main

    shutil.copytree(repo_dir / "raw", tmp_path / "raw")
    shutil.copytree(repo_dir / "codebooks", tmp_path / "codebooks")
    shutil.copy(repo_dir / "diaspora-survey.toml", tmp_path)
    cbp = tmp_path / "codebooks" / "2024-05_wave3.yaml"
    cbp.write_text(cbp.read_text(encoding="utf-8").replace("map: {1: male, 2: female, 3: other}",
                                                           "map: {1: male, 2: female}"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["harmonise"]) == 0                      # reported, not an error
    out = capsys.readouterr().out
    assert "not mapped" in out and "3 «Other / prefer to self-describe»" in out
    assert (tmp_path / "build" / "harmonised.parquet").exists()
    before = (tmp_path / "build" / "harmonised.parquet").read_bytes()
    assert main(["harmonise", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "harmonise.unmapped" in err and "2024-05_wave3.yaml:" in err
    assert (tmp_path / "build" / "harmonised.parquet").read_bytes() == before   # nothing half-written


# ---- dates given as text, bool and string variables -------------------------------------------------

def test_age_from_birth_year_with_interview_dates_as_text_day_first():
    df = pd.DataFrame({"by": [1990, 1990, 1990, 1990, 1990, 2030],
                       "d": ["05.03.2022", "2022-08-01", "15/09/2022 10:31", "вчера", None, "01.06.2022"]})
    h = harmonise(make_wave(df), cb("wave: w\nvariables:\n  age:\n    transform: age_from_birth_year\n"
                                    "    source: [by, d]\n"))
    # 05.03.2022 is 5 March (day first), not 3 May: before July, so one year less (midyear rule)
    assert h.data["age"].tolist() == [31, 32, 32, pd.NA, pd.NA, pd.NA]
    kinds = {i.kind: i for i in h.issues}
    assert kinds["unparsed"].count == 1 and kinds["unparsed"].values == {"вчера": 1}
    assert kinds["out_of_range"].count == 1 and "after the interview date" in kinds["out_of_range"].message
    s = h.summary.set_index("variable").loc["age"]
    assert (s.n, s.missing, s.unmapped, s.out_of_range) == (3, 1, 1, 1)
    with pytest.raises(HarmonisationError):
        harmonise(make_wave(df), cb("wave: w\nvariables:\n  age:\n    transform: age_from_birth_year\n"
                                    "    source: [by, d]\n"), strict=True)


def test_date_transform_on_text_reports_what_it_cannot_read():
    df = pd.DataFrame({"d": ["25.09.2022", "2021-05-03", "не помню", "весной", "", "01.01.1812"]})
    h = harmonise(make_wave(df), cb("wave: w\nvariables:\n  departure_date:\n    source: d\n    transform: date\n"
                                    "    missing: [не помню]\n"))
    assert h.data["departure_date"].tolist()[:2] == [pd.Timestamp("2022-09-01"), pd.Timestamp("2021-05-01")]
    assert h.data["departure_date"].iloc[2:].isna().all()
    kinds = {i.kind: i for i in h.issues}
    assert kinds["unparsed"].values == {"весной": 1} and kinds["out_of_range"].count == 1
    s = h.summary.set_index("variable").loc["departure_date"]
    assert (s.n, s.missing, s.unmapped, s.out_of_range) == (2, 2, 1, 1)


def test_datetime_column_out_of_bounds_is_reported_not_a_crash():
    d = pd.Series(pd.to_datetime(["2022-03-10", "0001-01-03"], format="ISO8601"), dtype="datetime64[s]")
    h = harmonise(make_wave(pd.DataFrame({"d": d})),
                  cb("wave: w\nvariables:\n  departure_date: {source: d, transform: date}\n"))
    assert h.data["departure_date"].tolist()[0] == pd.Timestamp("2022-03-01")
    assert h.data["departure_date"].isna().tolist() == [False, True]
    assert [i.kind for i in h.issues] == ["out_of_range"]


def test_custom_bool_and_string_variables():
    df = pd.DataFrame({"m": [1, 2, 3, 9, None, 4], "t": ["Тбилиси", " ", "нет ответа", "Ереван", None, "x"]})
    h = harmonise(make_wave(df), cb("""
wave: w
variables:
  member:
    custom: true
    type: bool
    source: m
    map: {1: true, 2: нет, 3: 'yes'}
    missing: [9]
  city:
    custom: true
    type: string
    source: t
    missing: ["Нет ответа"]
"""))
    assert str(h.data["member"].dtype) == "boolean"
    assert h.data["member"].tolist() == [True, False, True, pd.NA, pd.NA, pd.NA]
    [issue] = [i for i in h.issues if i.kind == "unmapped"]
    assert issue.values == {"4": 1}
    assert h.data["city"].tolist() == ["Тбилиси", pd.NA, pd.NA, "Ереван", pd.NA, "x"]


# ---- eligibility rules are checked against the variable's type ------------------------------------

ELIG = """
wave: w
eligibility: ["{rule}"]
variables:
  sex: {{source: s, map: {{1: male, 2: female}}}}
  age: {{source: a}}
  country: {{source: c, crosswalk: country}}
  education: {{source: e, map: {{1: master, 2: secondary_general}}}}
  departure_date: {{source: d, transform: month}}
"""
ELIG_DF = pd.DataFrame({"s": [1, 2, 2], "a": [30, 40, 17], "c": ["Грузия", "Армения", "Турция"], "e": [1, 2, 1],
                        "d": ["01.2022", "10.2022", "2023-04"]})


@pytest.mark.parametrize("rule, message", [
    ("sex >= 18", "sex is a category, it cannot be compared with '>='"),
    ("sex == woman", "'woman' is not a category of sex"),
    ("country in [Georgia, AM]", "'Georgia' is not an ISO 3166-1 alpha-2 code"),
    ("higher_education == perhaps", "higher_education is true/false"),
    ("age == old", "age is a number"),
    ("departure_date >= 2022", "departure_date is a date"),
    ("age_group == 18-25", "'18-25' is not a category of age_group"),
])
def test_eligibility_rule_that_cannot_mean_anything_is_an_error(rule, message):
    with pytest.raises(CodebookError) as ei:
        harmonise(make_wave(ELIG_DF), cb(ELIG.format(rule=rule)))
    assert ei.value.code == "codebook.bad_eligibility" and message in ei.value.message
    assert ei.value.where == "cb.yaml:3" and ei.value.hint


@pytest.mark.parametrize("rule, kept", [
    ("sex == female", ["2", "3"]),
    ("higher_education == true", ["1", "3"]),
    ("departure_date >= 2022-02-24", ["2", "3"]),
    ("departure_cohort != before_2022-02-24", ["2", "3"]),
    ("age_group in [30-34]", ["1", "3"]),        # row 3 (17) has no age group: kept, reported
    ("country not in [TR]", ["1", "2"]),
])
def test_eligibility_rules_on_every_kind_of_variable(rule, kept):
    h = harmonise(make_wave(ELIG_DF), cb(ELIG.format(rule=rule)))
    assert h.data["resp_id"].tolist() == kept
    assert len(h.data) + len(h.exclusions) == 3
    assert h.exclusions["detail"].notna().all()


def test_exclusion_detail_shows_dates_and_categories():
    h = harmonise(make_wave(ELIG_DF), cb(ELIG.format(rule="departure_date >= 2022-02-24")))
    assert h.exclusions["detail"].tolist() == ["departure_date=2022-01-01"]


# ---- the summary adds up --------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(codes=st.lists(st.sampled_from([1, 2, 3, 98, None]), min_size=1, max_size=40), data=st.data())
def test_property_summary_adds_up_to_the_rows_kept(codes, data):
    n = len(codes)
    ages = data.draw(st.lists(st.one_of(st.none(), st.integers(10, 120), st.just("?")), min_size=n, max_size=n))
    df = pd.DataFrame({"e": pd.Series(codes, dtype="float64"), "a": pd.Series(ages, dtype=object)})
    h = harmonise(make_wave(df), cb("""
wave: w
eligibility: ["age >= 18"]
variables:
  education: {source: e, map: {1: master, 2: bachelor}, missing: [98]}
  age: {source: a, valid_range: [14, 100]}
"""))
    s = h.summary.set_index("variable")
    assert ((s.n + s.missing + s.unmapped + s.out_of_range) == len(h.data)).all()
    assert (s.n == h.data[["education", "age"]].notna().sum()).all()
    kept = h.data.index
    assert s.loc["education", "unmapped"] == sum(codes[i] == 3 for i in kept)
    assert s.loc["age", "out_of_range"] == sum(isinstance(ages[i], int) and not 14 <= ages[i] <= 100 for i in kept)


def test_example_project_summary_adds_up(example):
    s = example.summary
    kept = example.data.groupby("wave", observed=True).size()
    assert ((s.n + s.missing + s.unmapped + s.out_of_range) == s.wave.map(kept)).all()
    assert (s.unmapped == 0).all() and (s.out_of_range == 0).all()


def test_number_labelled_as_no_answer_is_never_used_as_a_number():
    """haven #588: a labelled 99 «Отказ» that the file does not declare missing would be
    averaged in as an age of 99. Here it becomes NA and is reported; listing it fixes it."""
    df = pd.DataFrame({"a": [30.0, 99.0, 45.0, 99.0]})
    meta = {"a": VariableMeta("a", value_labels={99: "Отказ от ответа"})}
    h = harmonise(make_wave(df, meta), cb("wave: w\nvariables:\n  age: {source: a}\n"))
    assert h.data["age"].tolist() == [30, pd.NA, 45, pd.NA]
    [issue] = h.issues
    assert issue.kind == "unmapped" and issue.values == {"99 «Отказ от ответа»": 2} and "missing:" in issue.message
    with pytest.raises(HarmonisationError):
        harmonise(make_wave(df, meta), cb("wave: w\nvariables:\n  age: {source: a}\n"), strict=True)
    ok = harmonise(make_wave(df, meta), cb("wave: w\nvariables:\n  age: {source: a, missing: [99]}\n"))
    assert not ok.issues and ok.summary.set_index("variable").loc["age", "missing"] == 2


def test_stack_waves_that_lack_a_variable_keeps_the_dtypes():
    w1 = harmonise(make_wave(pd.DataFrame({"e": [1, 2], "d": ["03.2022", "10.2022"], "a": [30, 40]})),
                   cb("wave: a\nvariables:\n  education: {source: e, map: {1: master, 2: bachelor}}\n"
                      "  departure_date: {source: d, transform: month}\n  age: {source: a}\n"))
    w2 = harmonise(make_wave(pd.DataFrame({"a": [50]})), cb("wave: b\nvariables:\n  age: {source: a}\n"))
    data, _ = stack([w1, w2], ["a", "b"])
    assert data["education"].cat.ordered and list(data["education"].cat.categories) == \
        schema.SCHEMA["education"].categories
    assert str(data["higher_education"].dtype) == "boolean" and data["higher_education"].isna().tolist() == \
        [False, False, True]
    assert str(data["departure_date"].dtype).startswith("datetime64") and data["departure_date"].isna().sum() == 1
    assert data["departure_cohort"].cat.ordered and str(data["age"].dtype) == "Int64"
