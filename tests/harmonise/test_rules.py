"""Rule-based derivations over several raw columns (``rules:``/``default:`` in a codebook):
parsing, validation (schema, columns, file labels and types), evaluation order, missing codes,
unmapped reporting, and the hand-counted result on a small ESS-like file."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import CodebookError
from diaspora_survey.harmonise.apply import harmonise
from diaspora_survey.harmonise.rules import parse_condition
from diaspora_survey.io.base import VariableMeta

from harmonise_helpers import cb, make_wave





# an ESS-like file: main activity, employment relation, number of employees, with the ESS
# user-missing declarations (ranges) and value labels
ESS_META = {
    "mnactic": VariableMeta("mnactic", value_labels={1: "Paid work", 2: "Education", 3: "Unemployed, looking",
                                                     4: "Unemployed, not looking",
                                                     6: "Retired", 8: "Housework", 9: "Other", 88: "Don't know"},
                            missing_ranges=[(66, 99)]),
    "emplrel": VariableMeta("emplrel", value_labels={1: "Employee", 2: "Self-employed",
                                                     3: "Working for own family business",
                                                     6: "Not applicable", 8: "Don't know"},
                            missing_ranges=[(6, 9)]),
    "emplno": VariableMeta("emplno", value_labels={66666: "Not applicable", 88888: "Don't know"},
                           missing_ranges=[(66666, 99999)]),
}
# row:           0  1  2  3  4  5  6     7  8  9     10
ESS = pd.DataFrame({
    "mnactic": [1, 1, 1, 1, 1, 2, 6, 3, 9, 88, 1],
    "emplrel": [1, 2, 2, 2, 3, 6, 2, 1, 1, 6, 8],
    "emplno": [66666, 0, 4, 88888, 66666, 66666, 3, 66666, 66666, 66666, 66666],
})
ESS_CB = """\
wave: w
variables:
  employment_status:
    source: [mnactic, emplrel, emplno]
    rules:
      - when: {mnactic: missing}
        to: missing
      - when: {mnactic: 1, emplrel: Employee}
        to: employee
      - when: {mnactic: 1, emplrel: 2, emplno: 0}
        to: own_account
      - when: {mnactic: 1, emplrel: 2, emplno: ">= 1"}
        to: employer
      - when: {mnactic: 1, emplrel: 3}
        to: other
      - when: {mnactic: 1}
        to: missing
      - when: {mnactic: 2}
        to: student
      - when: {mnactic: "in [3, 4]"}
        to: unemployed
      - when: {mnactic: 6}
        to: retired
    default: other
"""


def test_rules_hand_counted_ess_like():
    """Each row by hand: 0 employee; 1 own account (0 employees); 2 employer (4); 3 self-employed,
    employees unknown (88888 is user-missing, so '>= 1' does not hold) → missing; 4 family
    business → other; 5 student; 6 retired (a retired former employer is not an employer: the
    main activity decides first); 7 unemployed; 8 other (default); 9 main activity 88 → missing;
    10 paid work, relation unknown → missing."""
    h = harmonise(make_wave(ESS, ESS_META), cb(ESS_CB))
    got = h.data["employment_status"].astype(object).where(h.data["employment_status"].notna(), None).tolist()
    assert got == ["employee", "own_account", "employer", None, "other", "student", "retired",
                   "unemployed", "other", None, None]
    assert h.data["entrepreneur"].tolist()[:3] == [False, True, True]
    assert h.data["entrepreneur"].isna().sum() == 3
    row = h.summary.set_index("variable").loc["employment_status"]
    assert (row.n, row.missing, row.unmapped) == (8, 3, 0)
    assert not h.issues
    assert list(h.rules["employment_status"].values()) == [1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert list(h.rules["employment_status"])[3] == "4. mnactic == 1 and emplrel == 2 and emplno >= 1 → employer"
    assert list(h.data["employment_status"].cat.categories) == [
        "employee", "employer", "own_account", "unemployed", "student", "retired", "homemaker", "other"]


def test_rules_first_match_wins_and_order_matters():
    text = ESS_CB.replace("""      - when: {mnactic: missing}
        to: missing
""", """      - when: {mnactic: missing}
        to: missing
      - when: {mnactic: 1}
        to: employee
""")
    h = harmonise(make_wave(ESS, ESS_META), cb(text))
    assert (h.data["employment_status"].iloc[[0, 1, 2, 3, 4, 10]] == "employee").all()


def test_rules_without_default_report_unmatched_combinations():
    text = ESS_CB.replace("    default: other\n", "")
    h = harmonise(make_wave(ESS, ESS_META), cb(text))
    (issue,) = h.issues
    assert issue.kind == "unmapped" and issue.count == 1 and issue.variable == "employment_status"
    assert issue.values == {"mnactic=9 «Other», emplrel=1 «Employee», emplno=66666 «Not applicable»": 1}
    assert issue.where == "cb.yaml:5"
    row = h.summary.set_index("variable").loc["employment_status"]
    assert (row.n, row.missing, row.unmapped) == (7, 3, 1)
    with pytest.raises(Exception) as ei:
        harmonise(make_wave(ESS, ESS_META), cb(text), strict=True)
    assert "match no rule" in str(ei.value)


def test_explicit_code_matches_a_user_missing_code_and_comparisons_never_do():
    df = pd.DataFrame({"a": [1, 1, 2], "b": [6, 88888, 3]})
    meta = {"b": VariableMeta("b", missing_values=[6], missing_ranges=[(66666, 99999)])}
    text = """\
wave: w
variables:
  employment_status:
    source: [a, b]
    rules:
      - when: {a: 1, b: 6}          # explicit code: matches although 6 is user-missing
        to: other
      - when: {a: 1, b: "> 0"}      # 88888 is user-missing: no match
        to: employer
      - when: {b: "!= 6"}           # present and not 6
        to: employee
    default: missing
"""
    h = harmonise(make_wave(df, meta), cb(text))
    got = h.data["employment_status"].astype(object).where(h.data["employment_status"].notna(), None).tolist()
    assert got == ["other", None, "employee"]


def test_not_missing_and_system_missing():
    df = pd.DataFrame({"a": [1.0, np.nan, 2.0], "b": [" x", "", None]})
    text = """\
wave: w
variables:
  sex:
    source: [a, b]
    rules:
      - when: {a: missing, b: missing}
        to: other
      - when: {a: not missing, b: X}
        to: female
    default: male
"""
    h = harmonise(make_wave(df), cb(text))
    assert h.data["sex"].tolist() == ["female", "other", "male"]


def test_rules_on_a_custom_bool_and_custom_category():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0, 5, 0]})
    text = """\
wave: w
variables:
  hires:
    custom: true
    type: bool
    source: [a, b]
    rules:
      - when: {b: "> 0"}
        to: true
      - when: {a: [1, 2]}
        to: no
    default: missing
  kind:
    custom: true
    type: category
    source: [a]
    rules:
      - when: {a: 1}
        to: first
    default: rest
"""
    h = harmonise(make_wave(df), cb(text))
    assert h.data["hires"].tolist()[:2] == [False, True] and pd.isna(h.data["hires"].iloc[2])
    assert str(h.data["hires"].dtype) == "boolean"
    assert h.data["kind"].tolist() == ["first", "rest", "rest"]
    assert list(h.data["kind"].cat.categories) == ["first", "rest"]


# ---- validation at load: the line, the code, the hint --------------------------------------------

HEAD = "wave: w\nvariables:\n  employment_status:\n    source: [mnactic, emplrel]\n    rules:\n" \
       "      - when: {emplrel: 1}\n        to: employee\n"     # lines 1-7; the rule under test: 8-9
BAD = {
    "unknown_category": ("      - when: {mnactic: 2}\n        to: pupil\n", "codebook.unknown_category",
                         "'pupil' is not a category of 'employment_status'", 9),
    "column_not_in_source": ("      - when: {mnactc: 2}\n        to: student\n", "codebook.bad_rule",
                             "tests column 'mnactc', which is not in 'source'", 8),
    "empty_when": ("      - when: {}\n        to: student\n", "codebook.bad_rule", "at least one condition", 8),
    "bad_comparison": ("      - when: {mnactic: '>= x'}\n        to: student\n", "codebook.bad_rule",
                       "'>=' compares numbers", 8),
    "not_in_needs_list": ("      - when: {mnactic: 'not in 3'}\n        to: student\n", "codebook.bad_rule",
                          "needs a list", 8),
    "bool_code": ("      - when: {mnactic: true}\n        to: student\n", "codebook.bad_rule", "is not a code", 8),
    "unknown_key": ("      - when: {mnactic: 2}\n        to: student\n        notes: x\n", "codebook.unknown_key",
                    "unknown key 'notes'", 10),
    "missing_to": ("      - when: {mnactic: 2}\n", "codebook.missing_key", "'variables.employment_status.rules.1.to'", 8),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_rule_errors_name_line_and_code(case):
    rule, code, msg, line = BAD[case]
    with pytest.raises(CodebookError) as ei:
        cb(HEAD + rule)
    err = ei.value
    assert err.code == code, (err.code, err.message)
    assert msg in err.message, err.message
    assert err.where == f"cb.yaml:{line}"
    assert err.hint


@pytest.mark.parametrize("extra, msg", [
    ("    map: {1: employee}\n", "has 'rules' and 'map'"),
    ("    crosswalk: employment\n", "has 'rules' and 'crosswalk'"),
])
def test_rules_and_maps_do_not_mix(extra, msg):
    with pytest.raises(CodebookError) as ei:
        cb(HEAD.replace("source: [mnactic, emplrel]", "source: [emplrel]") + extra)
    assert msg in ei.value.message and ei.value.code == "codebook.bad_transform"


def test_default_without_rules_and_unused_source_are_errors():
    with pytest.raises(CodebookError) as ei:
        cb("wave: w\nvariables:\n  sex:\n    source: q1\n    map: {1: male}\n    default: female\n")
    assert "'default' is only used with 'rules'" in ei.value.message and ei.value.where == "cb.yaml:6"
    with pytest.raises(CodebookError) as ei:
        cb(HEAD)    # mnactic is in source but no rule tests it
    assert "used by no rule" in ei.value.message and ei.value.where == "cb.yaml:4"


def test_rules_need_a_categorical_or_bool_target():
    with pytest.raises(CodebookError) as ei:
        cb("wave: w\nvariables:\n  age:\n    source: [a]\n    rules:\n      - when: {a: 1}\n        to: 3\n")
    assert "rules give categories" in ei.value.message


def test_codes_checked_against_the_files_value_labels():
    """A code that is neither labelled nor present in a labelled column is an error naming the
    rule's line and listing the labels; a text code must be a label; comparisons need numbers."""
    text = ESS_CB.replace("{mnactic: 1, emplrel: 3}", "{mnactic: 1, emplrel: 4}")
    with pytest.raises(CodebookError) as ei:
        harmonise(make_wave(ESS, ESS_META), cb(text))
    err = ei.value
    assert err.code == "codebook.bad_rule" and "code 4 is neither a value label nor a value of 'emplrel'" in err.message
    assert err.where == "cb.yaml:14" and "2 «Self-employed»" in err.hint
    text = ESS_CB.replace("emplrel: Employee}", "emplrel: Employe}")
    with pytest.raises(CodebookError) as ei:
        harmonise(make_wave(ESS, ESS_META), cb(text))
    assert "'Employe' is neither a value label" in ei.value.message
    df = ESS.assign(emplno=ESS["emplno"].astype(str))
    with pytest.raises(CodebookError) as ei:
        harmonise(make_wave(df, ESS_META), cb(ESS_CB))
    assert "'emplno' is text" in ei.value.message and "'>='" in ei.value.message


@pytest.mark.parametrize("written, kind, detail", [
    (1, "in", (1,)), ([3, 4], "in", (3, 4)), ("Self-employed", "in", ("Self-employed",)),
    ("in education", "in", ("in education",)), (">= 1", "cmp", (">=", 1.0)), ("<18", "cmp", ("<", 18.0)),
    ("== 2", "in", (2,)), ("!= 2", "not_in", (2,)), ("not in [1, 2]", "not_in", (1, 2)),
    ("in [a, b]", "in", ("a", "b")), ("missing", "missing", ()), ("Not Missing", "present", ()),
])
def test_parse_condition(written, kind, detail):
    c = parse_condition(written)
    assert c.kind == kind
    assert (c.op, c.number) == detail if kind == "cmp" else c.codes == detail


def test_text_columns_match_insensitively_and_unknown_texts_are_errors():
    df = pd.DataFrame({"st": ["Работаю по найму", " работаю  по найму", "Учусь", "Пенсионер"]})
    text = """\
wave: w
variables:
  employment_status:
    source: [st]
    rules:
      - when: {st: "работаю по найму"}
        to: employee
      - when: {st: [Учусь, учусь]}
        to: student
    default: other
"""
    h = harmonise(make_wave(df), cb(text))
    assert h.data["employment_status"].tolist() == ["employee", "employee", "student", "other"]
    with pytest.raises(CodebookError) as ei:
        harmonise(make_wave(df), cb(text.replace("[Учусь, учусь]", "[Учусь, Студент]")))
    assert "'Студент' is not a value of 'st'" in ei.value.message and ei.value.where == "cb.yaml:8"


def test_the_rules_example_of_docs_codebook_md_loads_and_runs(repo_dir):
    """The YAML of docs/codebook.md, 'Rules over several columns', is a valid variable entry and
    gives the ESS-like rows the documented categories."""
    import re as _re

    doc = (repo_dir / "docs" / "codebook.md").read_text(encoding="utf-8")
    section = doc.split("### Rules over several columns", 1)[1]
    block = _re.search(r"```yaml\n(.*?)```", section, _re.S).group(1)
    codebook = cb("wave: w\nvariables:\n" + block)
    h = harmonise(make_wave(ESS, ESS_META), codebook)
    got = h.data["employment_status"].astype(object).where(h.data["employment_status"].notna(), None).tolist()
    assert got == ["employee", "own_account", "employer", None, None, "student", "retired",
                   "unemployed", "other", None, None]


# ---- property: the vectorised evaluation equals a row-by-row reading of the rules ----------------

from hypothesis import given, settings, strategies as st  # noqa: E402

CATS = ["employee", "employer", "own_account", "student", "other"]
_cond = st.one_of(st.integers(0, 4), st.lists(st.integers(0, 4), min_size=1, max_size=3),
                  st.sampled_from([">= 2", "> 0", "< 3", "<= 1", "!= 2", "not in [0, 1]", "missing", "not missing"]))


def _holds(value, cond, missing_codes):
    """One condition on one raw value, read literally from docs/codebook.md."""
    is_missing = value is None or value in missing_codes
    if cond == "missing":
        return is_missing
    if cond == "not missing":
        return not is_missing
    if isinstance(cond, int):
        return value == cond
    if isinstance(cond, list):
        return value in cond
    if cond.startswith("not in"):
        return not is_missing and value not in (0, 1)
    op, num = cond.split()
    if is_missing:
        return False
    return {">=": value >= int(num), ">": value > int(num), "<": value < int(num), "<=": value <= int(num),
            "!=": value != int(num)}[op]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4), st.just(9)),
                               st.one_of(st.none(), st.integers(0, 4))), min_size=1, max_size=40),
       rules=st.lists(st.tuples(st.dictionaries(st.sampled_from(["a", "b"]), _cond, min_size=1),
                                st.sampled_from(CATS + ["missing"])), min_size=1, max_size=5),
       default=st.one_of(st.none(), st.sampled_from(CATS + ["missing"])))
def test_property_rules_match_a_row_by_row_reading(rows, rules, default):
    import yaml

    df = pd.DataFrame({"a": [r[0] for r in rows], "b": [r[1] for r in rows]}, dtype="Float64")
    meta = {"a": VariableMeta("a", value_labels={k: f"a{k}" for k in range(5)} | {9: "No answer"},
                              missing_values=[9]),
            "b": VariableMeta("b", value_labels={k: f"b{k}" for k in range(5)})}
    spec = {"source": ["a", "b"], "rules": [{"when": w, "to": t} for w, t in rules]}
    used_cols = {c for w, _ in rules for c in w}
    spec["source"] = [c for c in ("a", "b") if c in used_cols]
    if default is not None:
        spec["default"] = default
    text = yaml.safe_dump({"wave": "w", "variables": {"employment_status": spec}}, allow_unicode=True)
    h = harmonise(make_wave(df.astype(object).where(df.notna(), None).astype("float64"), meta), cb(text))
    got = h.data["employment_status"].astype(object).where(h.data["employment_status"].notna(), None).tolist()
    want, unmatched = [], 0
    for a, b in rows:
        vals = {"a": a, "b": b}
        cat = next((t for w, t in rules if all(_holds(vals[c], cond, {9} if c == "a" else set())
                                                for c, cond in w.items())), None)
        if cat is None:
            cat = default
            unmatched += default is None
        want.append(None if cat in (None, "missing") else cat)
    assert got == want
    unm = sum(i.count for i in h.issues if i.kind == "unmapped")
    assert unm == unmatched
    assert sum(h.rules["employment_status"].values()) + unmatched == len(rows)
