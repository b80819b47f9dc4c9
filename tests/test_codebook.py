"""Codebook model: loading, line-numbered errors (every kind), drafting, and the CLI."""
from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from diaspora_survey.codebook import Codebook, draft_yaml
from diaspora_survey.errors import CodebookError
from diaspora_survey.harmonise import harmonise
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
    for f in (repo_dir / "codebooks").glob("20*.yaml"):
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
