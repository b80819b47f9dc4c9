"""Disclosure control and formatting (diaspora_survey.report.tables)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import ReportError
from diaspora_survey.report.tables import Column, ReportTable, disclose, export_rows, flag_cells, format_value


def _dist():
    return pd.DataFrame({
        "group": ["a", "a", "a", "b", "b", "b"],
        "category": ["x", "y", "z", "x", "y", "z"],
        "estimate": [0.5, 0.3, 0.2, 0.6, 0.37, 0.03],
        "n": [50, 30, 20, 60, 37, 3],
        "cv": [0.05, 0.5, 0.1, 0.04, 0.06, 0.9],
    })


def test_flag_cells_primary_secondary_and_low_precision():
    f = flag_cells(_dist(), min_cell_size=10, complement_by=["group"])
    assert f["suppression"].tolist() == ["", "", "", "", "secondary", "primary"]
    assert f["suppressed"].tolist() == [False, False, False, False, True, True]
    # low precision only for shown cells (row 1: cv .5); the suppressed cv .9 is not flagged
    assert f["low_precision"].tolist() == [False, True, False, False, False, False]


def test_flag_cells_threshold_is_configurable_and_strict():
    f = flag_cells(_dist(), min_cell_size=30)
    assert f["suppressed"].tolist() == [False, False, True, False, False, True]
    f = flag_cells(_dist(), min_cell_size=3)       # n == k is shown
    assert not f["suppressed"].any()


def test_flag_cells_two_suppressed_need_no_secondary_when_together_large():
    d = _dist()
    d.loc[4, "n"], d.loc[5, "n"] = 8, 7        # total − visible reveals 15 in {y, z}: fine
    f = flag_cells(d, min_cell_size=10, complement_by=["group"])
    assert f["suppression"].tolist() == ["", "", "", "", "primary", "primary"]


def test_flag_cells_suppressed_cells_small_together_get_a_complement():
    """2 + 3 hidden: the group total minus the visible cell says "5 in y or z" (a small
    group), so the smallest other cell is hidden too (issue 11 item 6)."""
    d = _dist()
    d.loc[4, "n"] = 2
    f = flag_cells(d, min_cell_size=10, complement_by=["group"])
    assert f["suppression"].tolist() == ["", "", "", "secondary", "primary", "primary"]


def test_flag_cells_empty_cells_protect_nothing_and_headline_is_spared():
    """An empty suppressed cell is known to be empty; the complement is the smallest
    non-headline cell (issue 15 item 10)."""
    d = pd.DataFrame({"group": ["a"] * 4, "n": [0, 4, 30, 12],
                      "_headline": [False, False, False, True]})
    f = flag_cells(d, min_cell_size=10, complement_by=["group"])
    assert f["suppression"].tolist() == ["primary", "primary", "secondary", ""]


def test_missing_count_is_not_suppressed_and_bad_threshold_rejected():
    d = pd.DataFrame({"estimate": [1.0, 2.0], "n": [np.nan, 5]})
    assert flag_cells(d)["suppressed"].tolist() == [False, True]
    with pytest.raises(ReportError):
        flag_cells(d, min_cell_size=0)


def _table(**kw):
    cols = [Column("group", "Group", "text"), Column("category", "Category", "text"),
            Column("estimate", "Share", "pct", mark_low_precision=True),
            Column("n", "n", "int")]
    return ReportTable(id="t", title="T", data=_dist(), columns=cols,
                       complement_by=["group"], notes=["Source: test."], **kw)


def test_disclose_blanks_values_and_explains():
    t = disclose(_table(), min_cell_size=10)
    assert t.cells[5] == ["b", "z", "—", "—"]
    assert t.cells[4] == ["b", "y", "—", "—"]
    assert t.cells[1][2] == "30.0†"
    assert t.values["estimate"].isna().tolist() == [False] * 4 + [True, True]
    assert t.values["n"].isna().tolist() == [False] * 4 + [True, True]   # counts hidden too
    notes = " ".join(t.notes)
    assert "fewer than 10 unweighted respondents" in notes
    assert "secondary suppression" in notes and "Low precision" in notes
    assert t.notes[-1] == "Source: test."
    # no trace of the hidden numbers anywhere in the displayed or exported cells
    header, rows = export_rows(t)
    flat = [str(v) for r in rows for v in r] + [c for r in t.cells for c in r]
    assert not {"37", "37.0", "3", "3.0"} & set(flat), flat
    assert rows[5][2] == "—" and rows[0][2] == 50.0 and header[-1] == "Low precision"


def test_disclose_per_column_counts_in_wide_tables():
    d = pd.DataFrame({"variable": ["sex", "sex"], "category": ["f", "m"],
                      "n_w1": [5, 100], "p_w1": [4.8, 95.2], "n_w2": [50, 60], "p_w2": [45.5, 54.5]})
    cols = [Column("variable", "Var", "text"), Column("category", "Cat", "text"),
            Column("n_w1", "w1 n", "int", n_key="n_w1"), Column("p_w1", "w1 %", n_key="n_w1"),
            Column("n_w2", "w2 n", "int", n_key="n_w2"), Column("p_w2", "w2 %", n_key="n_w2")]
    t = disclose(ReportTable("wide", "W", d, cols, n_col="n_w1", cv_col=None,
                             complement_by=["variable"]), min_cell_size=10)
    # w1: f primary, m secondary (100 − 4.8 would reveal it); w2 untouched
    assert t.cells == [["sex", "f", "—", "—", "50", "45.5"], ["sex", "m", "—", "—", "60", "54.5"]]
    assert "1 cell based on fewer than 10" in " ".join(t.footnotes)


def test_respondent_level_and_uncounted_tables_are_refused():
    with pytest.raises(ReportError, match="respondent-level"):
        ReportTable("r", "R", pd.DataFrame({"resp_id": ["1"], "n": [1]}),
                    [Column("n", "n", "int")])
    with pytest.raises(ReportError, match="no unweighted count"):
        ReportTable("r", "R", pd.DataFrame({"x": [1.0]}), [Column("x", "x")], n_col=None)
    ok = ReportTable("r", "R", pd.DataFrame({"x": [1.0]}), [Column("x", "x")], n_col=None,
                     no_disclosure_reason="published figures")
    assert disclose(ok).cells == [["1.0"]]


@pytest.mark.parametrize("value,col,expected", [
    (0.1234, Column("p", "p", "pct"), "12.3"),
    (-0.0004, Column("d", "d", "num", digits=1), "0.0"),
    (-3.25, Column("d", "d", "num", digits=2), "−3.25"),
    (8512, Column("n", "n", "int"), "8,512"),
    (0.0004, Column("p", "p", "pvalue"), "<0.001"),
    (0.04567, Column("p", "p", "pvalue"), "0.046"),
    (None, Column("x", "x"), ""),
    (float("nan"), Column("x", "x"), ""),
])
def test_format_value(value, col, expected):
    assert format_value(value, col) == expected


def test_empty_complement_by_makes_the_whole_table_one_group():
    d = pd.DataFrame({"category": ["a", "b", "c"], "n": [4, 30, 200]})
    assert flag_cells(d, complement_by=[])["suppression"].tolist() == ["primary", "secondary", ""]
    assert flag_cells(d)["suppression"].tolist() == ["primary", "", ""]      # None: no groups
