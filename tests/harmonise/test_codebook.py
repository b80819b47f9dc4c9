"""Codebook model: loading, line-numbered errors (every kind), drafting, and the CLI."""
from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from diaspora_survey.harmonise.codebook import Codebook, draft_yaml
from diaspora_survey.errors import CodebookError
from diaspora_survey.harmonise.apply import harmonise
from diaspora_survey.io.base import RawWave, SourceInfo, VariableMeta

GOOD = """\
wave: "2022-03"
file: raw/x.sav
id: id
eligibility:
  - age >= 18
variables:
  sex:
    source: q1
    map: {1: male, 2: female}
    missing: [99]
  education:
    source: q3
    map:
      1: master
      2: bachelor
    missing: [98, 99]
  age:
    transform: age_from_birth_year
    source: [by, d]
"""


def load(text: str) -> Codebook:
    return Codebook.from_yaml(textwrap.dedent(text), source="codebooks/x.yaml")


def error(text: str) -> CodebookError:
    with pytest.raises(CodebookError) as ei:
        load(text)
    return ei.value


def test_good_codebook_loads_with_line_numbers():
    cb = load(GOOD)
    assert cb.wave == "2022-03" and set(cb.variables) == {"sex", "education", "age"}
    assert cb.where("variables", "education", "map", 2) == "codebooks/x.yaml:15"
    assert cb.variables["age"].sources == ["by", "d"]
    assert cb.eligibility_rules()[0].rule == "age >= 18"


@pytest.mark.parametrize("name", ["2022-03_wave1", "2022-11_wave2", "2024-05_wave3"])
def test_example_codebooks_load(repo_dir, name):
    cb = Codebook.load(repo_dir / "codebooks" / f"{name}.yaml")
    assert cb.wave == name.split("_")[0]
    assert {"sex", "age", "education", "employment_status", "country", "departure_date"} <= set(cb.variables)


def test_yaml_12_booleans_norway_stays_text():
    cb = load("wave: w\nvariables:\n  country:\n    source: c\n    map: {Норвегия: NO, no: NO}\n")
    assert cb.variables["country"].map == {"Норвегия": "NO", "no": "NO"}


# ---- the error kinds (each with its code, file:line and message) ----------------------------------

CASES = {
    "yaml_syntax": ("wave: w\nvariables:\n  sex:\n    source: [q1\n    map: {1: male}\n",
                    "codebook.yaml_syntax", 5, "not valid YAML"),
    "not_a_mapping": ("- just\n- a list\n", "codebook.not_a_mapping", 1, "must be a YAML mapping"),
    "missing_key": ("wave: w\n", "codebook.missing_key", None, "'variables' is missing"),
    "unknown_key_top": ("wave: w\nvaraibles: {}\nvariables: {}\n", "codebook.unknown_key", 2, "unknown key 'varaibles'"),
    "unknown_key_var": ("wave: w\nvariables:\n  sex:\n    source: q1\n    mapp: {1: male}\n",
                        "codebook.unknown_key", 5, "unknown key 'mapp'"),
    "unknown_variable": ("wave: w\nvariables:\n  educaton:\n    source: q3\n    map: {1: master}\n",
                         "codebook.unknown_variable", 3, "unknown harmonised variable 'educaton'"),
    "derived_variable": ("wave: w\nvariables:\n  higher_education:\n    source: q3\n    map: {1: x}\n",
                         "codebook.derived_variable", 3, "derived by a fixed rule"),
    "unknown_category": ("wave: w\nvariables:\n  education:\n    source: q3\n    map:\n      1: masters\n",
                         "codebook.unknown_category", 6, "'masters' is not a category of 'education'"),
    "bad_country_code": ("wave: w\nvariables:\n  country:\n    source: c\n    map: {1: Georgia}\n",
                         "codebook.unknown_category", 5, "not an ISO 3166-1 alpha-2"),
    "duplicate_code_yaml": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map:\n      1: male\n      1: female\n",
                            "codebook.duplicate_code", 7, "code 1 appears twice"),
    "duplicate_code_float": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map:\n      1: male\n      1.0: female\n",
                             "codebook.duplicate_code", 7, "appears twice"),
    "duplicate_label": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map:\n      Мужчина: male\n      'мужчина ': male\n",
                        "codebook.duplicate_code", 7, "appears twice"),
    "missing_and_mapped": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map: {1: male, 99: female}\n    missing: [98, 99]\n",
                           "codebook.missing_and_mapped", 6, "code 99 is declared missing and also mapped"),
    "bad_range_order": ("wave: w\nvariables:\n  age:\n    source: a\n    valid_range: [100, 14]\n",
                        "codebook.bad_range", 5, "min <= max"),
    "bad_range_overlap": ("wave: w\nvariables:\n  g:\n    custom: true\n    type: category\n    source: a\n    ranges:\n"
                          "      - {min: 0, max: 20, to: young}\n      - {min: 18, max: 99, to: old}\n",
                          "codebook.bad_range", 9, "ranges overlap"),
    "transform_needs_date": ("wave: w\nvariables:\n  age:\n    transform: age_from_birth_year\n    source: by\n",
                             "codebook.bad_transform", 4, "needs the interview date"),
    "transform_wrong_type": ("wave: w\nvariables:\n  education:\n    source: e\n    transform: month\n",
                             "codebook.bad_transform", 5, "makes a date"),
    "transform_unknown": ("wave: w\nvariables:\n  age:\n    source: a\n    transform: age_from_birthday\n",
                          "codebook.bad_transform", 5, "transform"),
    "year_month_two_sources": ("wave: w\nvariables:\n  departure_date:\n    source: y\n    transform: year_month\n",
                               "codebook.bad_transform", 4, "needs 2 source"),
    "no_source": ("wave: w\nvariables:\n  sex:\n    map: {1: male}\n", "codebook.bad_transform", 3, "no source column"),
    "no_map": ("wave: w\nvariables:\n  sex:\n    source: q1\n", "codebook.bad_transform", 3, "has no value map"),
    "bad_eligibility": ("wave: w\neligibility: ['age is adult']\nvariables:\n  age: {source: a}\n",
                        "codebook.bad_eligibility", 2, "cannot read the eligibility rule"),
    "eligibility_unknown_var": ("wave: w\neligibility: ['agee >= 18']\nvariables:\n  age: {source: a}\n",
                                "codebook.bad_eligibility", 2, "unknown variable 'agee'"),
    "invalid_field": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map: {1: male}\n    file_missing: perhaps\n",
                      "codebook.invalid_field", 6, "file_missing"),
    "custom_without_type": ("wave: w\nvariables:\n  income:\n    custom: true\n    source: x\n",
                            "codebook.invalid_field", 3, "needs a type"),
    "reserved": ("wave: w\nvariables:\n  resp_id:\n    source: x\n", "codebook.reserved_variable", 3, "set by the program"),
    "duplicate_variable": ("wave: w\nvariables:\n  sex: {source: a, map: {1: male}}\n  sex: {source: b, map: {1: male}}\n",
                           "codebook.duplicate_key", 4, "key 'sex' appears twice"),
    "empty_code": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map: {~: male, 2: female}\n",
                   "codebook.invalid_field", 5, "an empty code in the map of 'sex'"),
    "code_in_map_and_range": ("wave: w\nvariables:\n  g:\n    custom: true\n    type: category\n    source: a\n"
                              "    map: {5: five}\n    ranges: [{min: 0, max: 9, to: low}]\n",
                              "codebook.duplicate_code", 7, "code 5 is mapped twice"),
    "missing_code_in_range": ("wave: w\nvariables:\n  g:\n    custom: true\n    type: category\n    source: a\n"
                              "    ranges: [{min: 0, max: 99, to: any}]\n    missing: [99]\n",
                              "codebook.missing_and_mapped", 8, "missing code 99 falls into the range"),
    "age_rule_without_transform": ("wave: w\nvariables:\n  age:\n    source: a\n    age_rule: midyear\n",
                                   "codebook.bad_transform", 5, "age_rule is only used by"),
    "levels_on_schema_variable": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map: {1: male}\n    levels: [male]\n",
                                  "codebook.invalid_field", 6, "'levels' is for custom categorical variables"),
    "ranges_on_a_number": ("wave: w\nvariables:\n  age:\n    source: a\n    ranges: [{min: 0, max: 17, to: minor}]\n",
                           "codebook.bad_transform", 3, "value maps, ranges and crosswalks are for categories"),
    "bool_not_true_false": ("wave: w\nvariables:\n  member:\n    custom: true\n    type: bool\n    source: m\n"
                            "    map: {1: true, 2: maybe}\n", "codebook.unknown_category", 7, "'maybe' is neither true nor false"),
    "source_not_a_name": ("wave: w\nvariables:\n  sex:\n    source: {q: 1}\n    map: {1: male}\n",
                          "codebook.invalid_field", 4, "should be a column name or a list of column names"),
    "missing_not_a_list_of_codes": ("wave: w\nvariables:\n  sex:\n    source: q1\n    map: {1: male}\n    missing: {a: b}\n",
                                    "codebook.invalid_field", 6, "should be a list of codes"),
    "variables_not_a_mapping": ("wave: w\nvariables:\n  - sex\n", "codebook.invalid_field", 2,
                                "variables: should be a mapping"),
    "eligibility_needs_number": ("wave: w\neligibility: ['age >= adult']\nvariables:\n  age: {source: a}\n",
                                 "codebook.bad_eligibility", 2, "'>=' needs a number or a date"),
    "interview_date_without_transform": ("wave: w\nvariables:\n  age:\n    source: a\n    interview_date: 2022-03-01\n",
                                         "codebook.bad_transform", 5, "interview_date is only used by"),
    "numeric_with_map": ("wave: w\nvariables:\n  age:\n    source: a\n    map: {1: young}\n",
                         "codebook.bad_transform", 3, "value maps, ranges and crosswalks are for categories"),
    "schema_type_conflict": ("wave: w\nvariables:\n  age:\n    source: a\n    type: category\n",
                             "codebook.invalid_field", 5, "has type int in the schema"),
    "wrong_crosswalk": ("wave: w\nvariables:\n  sex:\n    source: s\n    crosswalk: country\n",
                        "codebook.bad_transform", 5, "does not give 'sex' categories"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_codebook_error_kinds(case):
    text, code, line, message = CASES[case]
    err = error(text)
    assert err.code == code, err
    assert message in err.message, err.message
    if line is not None:
        assert err.where == f"codebooks/x.yaml:{line}", err.where
    assert err.hint  # every error says what to do
    assert "codebooks/x.yaml" in err.render()


def test_error_kinds_cover_at_least_ten_codes():
    assert len({c for _, c, _, _ in CASES.values()}) >= 10


def test_the_five_errors_the_issue_names_have_specific_hints(repo_dir):
    """Unknown harmonised variable, source column missing from the file, category not in the
    schema, a code mapped twice, a missing code that is also mapped: file:line and how to fix."""
    assert "did you mean 'education'" in error(CASES["unknown_variable"][0]).hint
    assert "categories: " in error(CASES["unknown_category"][0]).hint and \
        "did you mean 'master'" in error(CASES["unknown_category"][0]).hint
    dup = error(CASES["duplicate_code_yaml"][0])
    assert "first given at line 6" in dup.hint
    both = error(CASES["missing_and_mapped"][0])
    assert "remove it from 'map' or 'missing'" in both.hint
    # the missing column is checked against the raw file (see test_unknown_column_against_the_file)


def test_empty_or_whitespace_label_in_labels_is_an_error():
    err = error("wave: w\nvariables:\n  sex:\n    source: q1\n    labels: {'  ': male}\n")
    assert err.code == "codebook.invalid_field" and "empty code in the labels" in err.message


def test_bool_custom_variable_accepts_true_false_words():
    cb = load("wave: w\nvariables:\n  member:\n    custom: true\n    type: bool\n    source: m\n"
              "    map: {1: true, 2: нет, 3: 'yes'}\n")
    assert cb.variables["member"].map == {1: True, 2: "нет", 3: "yes"}


def test_age_rule_default_is_midyear():
    cb = load("wave: w\nvariables:\n  age:\n    transform: age_from_birth_year\n    source: [by, d]\n")
    assert cb.variables["age"].age_rule == "midyear"


def test_codebook_not_found(tmp_path):
    with pytest.raises(CodebookError) as ei:
        Codebook.load(tmp_path / "nope.yaml")
    assert ei.value.code == "codebook.not_found" and "codebook draft" in ei.value.hint


def test_unknown_variable_hint_suggests_the_close_name():
    err = error(CASES["unknown_variable"][0])
    assert "did you mean 'education'" in err.hint


def test_unknown_column_against_the_file():
    cb = load(GOOD)
    df = pd.DataFrame({"id": [1], "q1": [1], "q3x": [1], "by": [1990], "d": pd.to_datetime(["2022-03-01"])})
    wave = RawWave(df, {c: VariableMeta(c) for c in df}, SourceInfo("raw/x.sav", "sav", None, "", 1, 5))
    with pytest.raises(CodebookError) as ei:
        cb.validate_against(wave)
    assert ei.value.code == "codebook.unknown_column" and ei.value.where == "codebooks/x.yaml:12"
    assert "'q3' is not in x.sav" in ei.value.message and "did you mean 'q3x'" in ei.value.hint


# ---- drafting ------------------------------------------------------------------------------------

def _wave(df, meta=None, path="raw/new.sav"):
    meta = dict(meta or {})
    for c in df:
        meta.setdefault(c, VariableMeta(c))
    return RawWave(df, meta, SourceInfo(path, "sav", None, "", len(df), df.shape[1]))


def test_draft_prefills_from_crosswalks_and_marks_todo():
    df = pd.DataFrame({"resp_id": [1, 2, 3, 4], "edu": [1, 2, 3, 98], "gender": [1, 2, 1, 2],
                       "strana": ["Грузия", "Армения", "Атлантида", "Грузия"],
                       "vozrast": [30, 40, 50, 60], "vyezd": ["03.2022", "март 2022", "2022-09", "10.2022"]})
    meta = {"edu": VariableMeta("edu", "Образование", {1: "Высшее — магистратура", 2: "Неоконченное высшее",
                                                       3: "Курсы кройки и шитья", 98: "Затрудняюсь ответить"},
                                missing_values=[98]),
            "gender": VariableMeta("gender", "Пол", {1: "Мужской", 2: "Женский"})}
    text = draft_yaml(_wave(df, meta), wave_id="2025-01")
    assert "TODO" in text and "Курсы кройки и шитья" in text and "Атлантида" in text
    cb = Codebook.from_yaml(text, source="draft.yaml")
    assert cb.variables["education"].map == {1: "master", 2: "incomplete_higher"}
    assert cb.variables["education"].missing == [98]
    assert cb.variables["country"].crosswalk == "country"
    assert cb.variables["departure_date"].transform == "month"
    h = harmonise(_wave(df, meta), cb)
    assert h.unmapped == 2  # the TODO code 3 and «Атлантида» are reported, not lost


@pytest.mark.parametrize("name, file", [("2022-03_wave1", "raw/2022-03_wave1.sav"),
                                        ("2022-11_wave2", "raw/2022-11_wave2.csv"),
                                        ("2024-05_wave3", "raw/2024-05_wave3.zsav")])
def test_draft_of_example_waves_maps_everything(repo_dir, name, file):
    from diaspora_survey.io import read_wave

    raw = read_wave(repo_dir / file)
    text = draft_yaml(raw, file=file)
    cb = Codebook.from_yaml(text, source=f"{name}.yaml")
    h = harmonise(raw, cb)
    assert h.unmapped == 0, [str(i) for i in h.issues]
    assert {"sex", "age", "education", "employment_status", "country", "departure_date"} <= set(cb.variables)


# ---- CLI -------------------------------------------------------------------------------------------

def test_cli_codebook_draft_and_check(repo_dir, tmp_path, monkeypatch, capsys):
    from diaspora_survey.cli import main

    out = tmp_path / "cb.yaml"
    assert main(["codebook", "draft", str(repo_dir / "raw" / "2022-03_wave1.sav"), "-o", str(out)]) == 0
    assert out.exists() and "wrote" in capsys.readouterr().out
    assert main(["codebook", "draft", str(repo_dir / "raw" / "2022-03_wave1.sav"), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    Codebook.load(out)

    assert main(["codebook", "check", "--project", str(repo_dir)]) == 0
    text = capsys.readouterr().out
    assert "every value mapped" in text and "missing %" in text


def test_cli_codebook_check_reports_unmapped_with_counts(repo_dir, tmp_path, capsys):
    import shutil

    from diaspora_survey.cli import main

    proj = tmp_path / "p"
    (proj / "codebooks").mkdir(parents=True)
    shutil.copytree(repo_dir / "raw", proj / "raw")
    shutil.copy(repo_dir / "diaspora-survey.toml", proj)
    for f in [*(repo_dir / "codebooks").glob("20*.yaml"), *(repo_dir / "codebooks").glob("*.csv")]:
        shutil.copy(f, proj / "codebooks")
    cbp = proj / "codebooks" / "2022-03_wave1.yaml"
    cbp.write_text(cbp.read_text(encoding="utf-8").replace("      4: own_account", "      # 4 dropped"),
                   encoding="utf-8")
    assert main(["codebook", "check", "--project", str(proj)]) == 1
    text = capsys.readouterr().out
    assert "unmapped" in text and "4 «Фрилансер»" in text
    cbp.write_text(cbp.read_text(encoding="utf-8").replace("source: q3_obraz", "source: q3_obrazovanie"),
                   encoding="utf-8")
    assert main(["codebook", "check", "--project", str(proj)]) == 2
    assert "q3_obrazovanie" in capsys.readouterr().out


def _copy_project(repo_dir, dest):
    import shutil

    (dest / "codebooks").mkdir(parents=True)
    shutil.copytree(repo_dir / "raw", dest / "raw")
    shutil.copy(repo_dir / "diaspora-survey.toml", dest)
    for f in [*(repo_dir / "codebooks").glob("20*.yaml"), *(repo_dir / "codebooks").glob("*.csv")]:
        shutil.copy(f, dest / "codebooks")
    return dest


def test_cli_codebook_check_reports_out_of_range_and_share_missing(repo_dir, tmp_path, capsys):
    from diaspora_survey.cli import main

    proj = _copy_project(repo_dir, tmp_path / "p")
    cbp = proj / "codebooks" / "2022-11_wave2.yaml"
    cbp.write_text(cbp.read_text(encoding="utf-8").replace("valid_range: [14, 100]", "valid_range: [14, 60]"),
                   encoding="utf-8")
    assert main(["codebook", "check", "--project", str(proj)]) == 1
    out = capsys.readouterr().out
    assert "out_of_range age (codebooks/2022-11_wave2.yaml:" in out
    assert "missing %" in out and "✓ wave 2024-05: every value mapped" in out


def test_cli_codebook_check_catches_a_codebook_for_another_file(repo_dir, tmp_path, capsys):
    from diaspora_survey.cli import main

    proj = _copy_project(repo_dir, tmp_path / "p")
    cbp = proj / "codebooks" / "2024-05_wave3.yaml"
    cbp.write_text(cbp.read_text(encoding="utf-8").replace("file: raw/2024-05_wave3.zsav", "file: raw/other.zsav"),
                   encoding="utf-8")
    assert main(["codebook", "check", "--project", str(proj)]) == 2
    out = capsys.readouterr().out
    assert "2024-05_wave3.yaml:3" in out and "the project uses" in out


def test_cli_codebook_draft_output_errors(repo_dir, tmp_path, capsys):
    from diaspora_survey.cli import main

    raw = str(repo_dir / "raw" / "2024-05_wave3.zsav")
    assert main(["codebook", "draft", raw, "-o", str(tmp_path)]) == 2
    assert "codebook.cannot_write" in capsys.readouterr().err
    assert main(["codebook", "draft", str(tmp_path / "nope.sav")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["codebook", "draft", raw]) == 0            # no -o: the draft goes to the terminal
    text = capsys.readouterr().out
    assert text.startswith("# Codebook DRAFT") and Codebook.from_yaml(text).wave == "2024-05"


@pytest.mark.parametrize("edit", [
    ("map: {1: male, 2: female}", "map: [male, female]"),
    ("source: q1_pol", "source: 5"),
    ("  sex:\n", "\tsex:\n"),
    ("eligibility:\n  - age >= 18", "eligibility: age >= 18"),
    ("  - age >= 18 ", "  - sex >= 18 "),
    ("  - age >= 18 ", "  - country in [Georgia] "),
    ("source: [q2_god_rozhd, data_intervyu]", "source: [q2_god_rozhd, q6_mes_vyezda]"),
])
def test_cli_broken_codebooks_end_in_one_message_never_a_traceback(repo_dir, tmp_path, capsys, edit):
    from diaspora_survey.cli import main

    proj = _copy_project(repo_dir, tmp_path / "p")
    cbp = proj / "codebooks" / "2022-03_wave1.yaml"
    text = cbp.read_text(encoding="utf-8")
    assert edit[0] in text
    cbp.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    rc = main(["harmonise", "--strict", "--project", str(proj), "-o", str(tmp_path / "h.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "codebooks/2022-03_wave1.yaml:" in err and "hint:" in err
    assert not (tmp_path / "h.parquet").exists()


def test_cli_draft_uses_the_project_crosswalks(repo_dir, tmp_path, capsys):
    from diaspora_survey.cli import main

    proj = _copy_project(repo_dir, tmp_path / "p")
    (proj / "codebooks" / "employment_mine.csv").write_text("label,code\nФрилансер,employee\n", encoding="utf-8")
    toml = proj / "diaspora-survey.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "crosswalks = []", 'crosswalks = ["codebooks/employment_mine.csv"]'), encoding="utf-8")
    out = proj / "codebooks" / "new.yaml"
    assert main(["codebook", "draft", str(proj / "raw" / "2022-03_wave1.sav"), "-o", str(out)]) == 0
    cb = Codebook.load(out)
    assert cb.file == "raw/2022-03_wave1.sav"                         # relative to the project
    assert cb.variables["employment_status"].map[4] == "employee"     # «Фрилансер» via the project CSV
