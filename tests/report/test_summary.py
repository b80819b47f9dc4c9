"""The answers first (issue 15, item 9): the summary section on PDF pages 1–2, then the
table of contents and a PDF outline; the same summary opens the xlsx and markdown."""
from __future__ import annotations

import io
import re

import pandas as pd
import pytest

import report_helpers as h
from diaspora_survey.report import disclose_report, render_files
from diaspora_survey.report.content import build_report
from diaspora_survey.report.summary import claim_points, forest_points, parse_test


def _claims():
    """Two claims, all respondents and two waves (evaluate_claims columns)."""
    rows = []
    for cid, ind, metric, test, vals in (
            ("younger", "mean_age", "difference", "difference <= -8",
             {"": (-9.5, -10.2, -8.8, "supported"), "w1": (-7.0, -8.5, -5.5, "inconclusive"),
              "w2": (-11.0, -12.0, -10.0, "supported")}),
            ("educated", "higher_education", "ratio", "ratio >= 3",
             {"": (2.4, 2.2, 2.6, "not supported"), "w1": (3.4, 3.1, 3.7, "supported"),
              "w2": (2.0, 1.7, 2.3, "not supported")})):
        for g, (v, lo, hi, ver) in vals.items():
            rows.append(dict(claim=cid, statement=f"claim {cid}", attribution="", indicator=ind,
                             category="", adjustment="crude", metric=metric, test=test, group=g,
                             by="wave" if g else "", value=v, ci_low=lo, ci_high=hi, verdict=ver,
                             reason=""))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report():
    return disclose_report(build_report(h.inputs(claims=_claims(), sample_label="ESS respondents",
                                                 population_label="Russian adults")))


def test_summary_is_the_first_section(report):
    sec = report.sections[0]
    assert sec.role == "summary" and sec.title == "Summary"
    ids = [getattr(b, "id", None) for b in sec.blocks]
    assert ids[1:] == ["summary_headlines", "summary_claims", "summary_forest"]
    assert sec.blocks[0].text.startswith("ESS respondents: 600 respondents in 2 waves (w1, w2), "
                                         "compared with Russian adults")


def test_claims_by_wave_table(report):
    t = next(b for b in report.sections[0].blocks if getattr(b, "id", "") == "summary_claims")
    assert t.header == ["Claim", "Test", "All", "Wave w1", "Wave w2"]
    younger = t.cells[0]
    assert younger[1] == "difference <= −8.0 years"
    assert younger[2] == "✓ −9.5 (−10.2 to −8.8)"
    assert younger[3] == "? −7.0 (−8.5 to −5.5)"
    assert t.cells[1][2] == "✗ 2.40 (2.20 to 2.60)"
    assert t.notes[0].startswith("✓ supported, ✗ not supported, ? inconclusive")


def test_headlines_use_the_comparison_rows(report):
    t = next(b for b in report.sections[0].blocks if getattr(b, "id", "") == "summary_headlines")
    assert t.title == "Headline comparisons: all respondents vs Russian adults"
    labels = [r[0] for r in t.cells]
    assert labels[0] == "Mean age (years)"
    assert all(r[0] != "Age group (%)" for r in t.cells)       # distributions stay in section 3


def test_share_differences_in_percentage_points():
    c = _claims().assign(indicator="higher_education", metric="difference",
                         test="difference >= 0.1", value=0.12, ci_low=0.08, ci_high=0.16)
    p = claim_points(c)
    assert p["threshold"].iloc[0] == pytest.approx(10.0)
    assert list(p["value"]) == pytest.approx([12.0] * 6) and p["unit"].iloc[0] == "percentage points"
    assert parse_test("ratio >= 3") == ("ratio", ">=", 3.0)
    f = forest_points(p, None)
    assert set(f["ref"]) == {10.0} and list(f["group"][:3]) == ["All", "w1", "w2"]


def test_pdf_page_one_holds_the_verdicts_then_contents_and_outline(report):
    data = render_files(report, "pdf", "rep")["rep.pdf"]
    pages = h.pdf_pages_text(data)
    one = " ".join(pages[0].split())
    for s in ("Summary", "Headline comparisons", "Claims and verdicts", "✓ −9.5",
              "✗ 2.40", "✓ supported, ✗ not supported"):
        assert s in one, s
    assert "Claims at a glance" in " ".join(pages[0].split() + pages[1].split())
    toc = next(i for i, p in enumerate(pages) if p.splitlines()[3:4] == ["Contents"]
               or "\nContents\n" in p)
    assert toc in (1, 2)
    first_section = next(i for i, p in enumerate(pages) if "Each wave was read from its raw file" in p)
    assert first_section == toc + 1
    flat = " ".join(pages[toc].split())
    assert "1. Sample and harmonisation" in flat and f" {first_section + 1} " in flat
    # the PDF outline (bookmarks): one entry per section, table and chart
    assert b"/Outlines" in data and data.count(b"/Parent") >= 20


def test_xlsx_opens_with_the_summary(report):
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(render_files(report, "xlsx", "rep")["rep.xlsx"]))
    assert wb.sheetnames[:2] == ["Summary", "Contents"]
    values = [c for row in wb["Summary"].iter_rows(values_only=True) for c in row if c]
    assert "Claims and verdicts" in values and "✓ −9.5 (−10.2 to −8.8)" in values


def test_markdown_opens_with_the_summary(report):
    md = render_files(report, "md", "rep")["rep.md"].decode()
    assert md.index("## Summary") < md.index("### Claims and verdicts") < md.index("## 1. Sample")
    assert "rep_charts/summary_forest.png" in md


def test_forest_plot_one_panel_per_claim(report):
    from diaspora_survey.report import charts

    c = next(b for b in report.sections[0].blocks if getattr(b, "id", "") == "summary_forest")
    fig = charts.draw(c)
    assert len(fig.axes) == 2
    # the threshold of each claim is drawn as a vertical line at its value
    xs = sorted(float(ln.get_xdata()[0]) for ax in fig.axes for ln in ax.get_lines()
                if ln.get_linestyle() == "--")
    assert xs == [-8.0, 3.0]


def test_no_claims_forest_of_headline_ratios():
    rep = disclose_report(build_report(h.inputs(claims=None)))
    sec = rep.sections[0]
    chart = next(b for b in sec.blocks if getattr(b, "id", "") == "summary_forest")
    assert chart.title == "Headline ratios at a glance"
    assert set(chart.table.values["ref"]) == {1.0}


def test_nine_claims_by_three_waves_fit_pages_one_and_two():
    rows = []
    for k in range(9):
        for g in ("", "w1", "w2", "w3"):
            rows.append(dict(claim=f"c{k}", statement=f"A fairly long statement of claim number {k} "
                             "about the emigrants and the population they left",
                             indicator="higher_education", metric="ratio", test="ratio >= 3",
                             group=g, by="wave" if g else "", value=3.2, ci_low=3.0, ci_high=3.4,
                             verdict="inconclusive", attribution="", category="",
                             adjustment="crude", reason=""))
    rep = disclose_report(build_report(h.inputs(claims=pd.DataFrame(rows))))
    pages = h.pdf_pages_text(render_files(rep, "pdf", "rep")["rep.pdf"])
    glance = next(i for i, p in enumerate(pages) if "Claims at a glance" in p)
    contents = next(i for i, p in enumerate(pages) if "\nContents\n" in f"\n{p}\n")
    assert glance <= 1 and contents == 2
