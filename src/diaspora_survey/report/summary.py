"""The report's opening pages: the answers first.

:func:`summary_section` turns the comparison rows and the claim verdicts into one
section that every format puts first (PDF pages 1–2, the first sheet of the xlsx, the
top of the markdown):

* a lead sentence naming the sample, its size and the population it is compared with;
* **headline comparisons** — the whole sample against the population for the headline
  indicators (mean and median age, share aged 18–34, higher education,
  entrepreneurship): sample with its 95 % interval, population, ratio and difference
  with their intervals;
* **claims and verdicts** — one row per claim, one column per group (all respondents,
  then each wave): the verdict and the decisive interval;
* a **forest plot** (:func:`diaspora_survey.report.charts.forest`): for each claim the
  value of its metric (ratio or difference) with its interval, by wave, against the
  claim's threshold; without claims, the headline ratios against 1.

Everything here is built from the same aggregates as the later sections and passes the
same disclosure control (:func:`~.document.disclose_report`).
"""
from __future__ import annotations

import re

from .document import Chart, Section, Text
from .tables import Column, ReportTable

SUMMARY_ROLE = "summary"

#: the headline indicators, in the order they are shown (crude rows, whole sample)
HEADLINES = ("mean_age", "median_age", "share_aged_18_34", "higher_education",
             "entrepreneurs_all", "entrepreneurs_employed")

VERDICT_MARK = {"supported": "✓", "not supported": "✗", "inconclusive": "?",
                "not evaluable": "–"}
VERDICT_LEGEND = "✓ supported, ✗ not supported, ? inconclusive, – not evaluable"

_TEST = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>)\s*(-?[\d.eE+-]+)\s*$")


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def _fmt(v: float, digits: int) -> str:
    import math

    if not math.isfinite(v):
        return ""
    s = f"{v:.{digits}f}"
    if s.startswith("-") and float(s) == 0:
        s = s[1:]
    return s.replace("-", "−")


def parse_test(test: str) -> tuple[str, str, float] | None:
    """``"ratio >= 3"`` → ("ratio", ">=", 3.0); None if it is not of that form."""
    m = _TEST.match(str(test or ""))
    if not m:
        return None
    return m.group(1), m.group(2), float(m.group(3))


#: indicators in years (not shares); the same as content.YEAR_INDICATORS (content imports
#: this module, so it is not imported from there)
YEAR_INDICATORS = frozenset({"mean_age", "median_age"})


def _is_share(indicator: str) -> bool:
    return bool(indicator) and indicator not in YEAR_INDICATORS


def _scale(indicator: str, metric: str) -> float:
    """Display factor: shares and their differences in percent / percentage points."""
    return 100.0 if metric in ("difference", "estimate") and _is_share(indicator) else 1.0


def _group_label(group: str) -> str:
    g = str(group or "")
    return "All" if g in ("", "all") else g


def claim_points(claims) -> "object":
    """One row per claim × group, in display units: ``claim, statement, group, metric,
    op, threshold, value, ci_low, ci_high, verdict, unit`` (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for rec in claims.reset_index(drop=True).to_dict("records"):
        parsed = parse_test(rec.get("test", ""))
        metric = str(rec.get("metric") or (parsed[0] if parsed else ""))
        op = parsed[1] if parsed else ""
        thr = parsed[2] if parsed else float("nan")
        ind = str(rec.get("indicator") or "")
        k = _scale(ind, metric)
        unit = ("percentage points" if k == 100 and metric == "difference" else
                "%" if k == 100 else "years" if metric == "difference" and ind else "")
        rows.append({"claim": str(rec.get("claim", "")), "statement": str(rec.get("statement", "")),
                     "group": _group_label(rec.get("group", "")), "metric": metric, "op": op,
                     "threshold": thr * k, "value": _num(rec.get("value")) * k,
                     "ci_low": _num(rec.get("ci_low")) * k, "ci_high": _num(rec.get("ci_high")) * k,
                     "verdict": str(rec.get("verdict", "")), "unit": unit})
    return pd.DataFrame(rows, columns=["claim", "statement", "group", "metric", "op", "threshold",
                                       "value", "ci_low", "ci_high", "verdict", "unit"])


def _groups_in_order(groups) -> list[str]:
    seen = list(dict.fromkeys(groups))
    return (["All"] if "All" in seen else []) + [g for g in seen if g != "All"]


def claims_summary_table(points) -> ReportTable | None:
    """Claims as rows, groups (All, waves) as columns: "verdict: value (low to high)"."""
    import pandas as pd

    if points is None or len(points) == 0:
        return None
    groups = _groups_in_order(points["group"])
    rows = []
    for cid, part in points.groupby("claim", sort=False):
        first = part.iloc[0]
        digits = 2 if first["metric"] == "ratio" else 1
        test = (f"{first['metric']} {first['op']} {_fmt(first['threshold'], digits)}"
                + (f" {first['unit']}" if first["unit"] and first["unit"] != "%" else
                   "%" if first["unit"] == "%" else ""))
        rec = {"statement": first["statement"], "test": test}
        for j, g in enumerate(groups):
            r = part[part["group"] == g]
            if r.empty:
                rec[f"g{j}"] = ""
                continue
            r = r.iloc[0]
            val = _fmt(r["value"], digits)
            ci = (f" ({_fmt(r['ci_low'], digits)} to {_fmt(r['ci_high'], digits)})"
                  if val and _fmt(r["ci_low"], digits) else "")
            mark = VERDICT_MARK.get(r["verdict"], r["verdict"])
            rec[f"g{j}"] = f"{mark} {val}{ci}" if val else f"{mark} {r['verdict']}"
        rows.append(rec)
    d = pd.DataFrame(rows)
    cols = [Column("statement", "Claim", "text"), Column("test", "Test", "text")]
    cols += [Column(f"g{j}", g if g == "All" else f"Wave {g}", "text") for j, g in enumerate(groups)]
    return ReportTable(
        id="summary_claims", title="Claims and verdicts", data=d, columns=cols, n_col=None,
        cv_col=None, no_disclosure_reason="claims are evaluated for all respondents and whole "
        "waves only",
        notes=[f"{VERDICT_LEGEND}: the claim's metric with its 95% confidence interval; "
               "supported = the whole interval lies on the claimed side of the threshold, not "
               "supported = on the other side, inconclusive = it contains the threshold, not "
               "evaluable = no population figure. Shares in percent, their differences in "
               "percentage points. Attributions and caveats: section “Claims and verdicts”."])


def headline_table(rows, population_label: str) -> ReportTable | None:
    """The whole sample against the population for :data:`HEADLINES` (crude rows).
    ``rows``: the comparison rows in display units (``content.comparison_rows``)."""
    if rows is None or len(rows) == 0:
        return None
    d = rows
    d = d[(d["group_by"] == "") & (d["adjustment"] == "crude") & d["indicator"].isin(HEADLINES)
          & (d["category"].isin(["", "18-34"])) & d["estimate"].notna()]
    if d.empty:
        return None
    order = {k: i for i, k in enumerate(HEADLINES)}
    d = d.assign(_o=d["indicator"].map(order)).sort_values("_o", kind="stable").drop(columns="_o")
    d = d.drop_duplicates("indicator").reset_index(drop=True)
    for c in ("ratio_ci_low", "ratio_ci_high"):
        if c not in d.columns:
            d[c] = float("nan")
    return ReportTable(
        id="summary_headlines", title=f"Headline comparisons: all respondents vs {population_label}",
        data=d,
        columns=[Column("indicator_label", "Indicator", "text"),
                 Column("estimate", "Sample (95% CI)", "est_ci", digits=1, low="ci_low",
                        high="ci_high", mark_low_precision=True),
                 Column("population", "Population", digits=1, stat=False),
                 Column("ratio", "Ratio (95% CI)", "est_ci", digits=2, low="ratio_ci_low",
                        high="ratio_ci_high"),
                 Column("difference", "Difference (95% CI)", "est_ci", digits=1,
                        low="difference_ci_low", high="difference_ci_high"),
                 Column("n", "n", "int")],
        n_col="n_cell", cv_col="cv" if "cv" in d.columns else None,
        notes=["Weighted estimates (percent for shares, years for ages) against the population "
               "figure for the same age frame; ratio = sample / population, difference = sample "
               "− population (percentage points for shares). By wave, by country and "
               "age-standardised: section 3 and 4."])


def forest_points(points, comparison_rows) -> "object":
    """The forest plot's rows: ``panel, title, group, value, ci_low, ci_high, ref, verdict,
    xlabel, log`` — claims (each against its threshold) or, without claims, the headline
    ratios by wave against 1."""
    import pandas as pd

    rows = []
    if points is not None and len(points):
        for cid, part in points.groupby("claim", sort=False):
            first = part.iloc[0]
            digits = 2 if first["metric"] == "ratio" else 1
            title = (f"{first['statement']}\n{first['metric']} {first['op']} "
                     f"{_fmt(first['threshold'], digits)}"
                     + (f" {first['unit']}" if first["unit"] and first["unit"] != "%" else ""))
            xlabel = first["metric"] + (f" ({first['unit']})" if first["unit"] else "")
            for r in part.itertuples(index=False):
                rows.append({"panel": cid, "title": title, "group": r.group, "value": r.value,
                             "ci_low": r.ci_low, "ci_high": r.ci_high, "ref": r.threshold,
                             "verdict": r.verdict, "xlabel": xlabel})
    elif comparison_rows is not None and len(comparison_rows):
        d = comparison_rows
        scopes = ["", "wave"] if d.loc[d["group_by"] == "wave", "group"].nunique() > 1 else [""]
        d = d[d["group_by"].isin(scopes) & (d["adjustment"] == "crude")
              & d["indicator"].isin(HEADLINES) & d["category"].isin(["", "18-34"])
              & d["ratio"].notna()]
        for ind, part in d.groupby("indicator", sort=False):
            for r in part.to_dict("records"):
                rows.append({"panel": ind, "title": f"{r['indicator_label']}: sample / population",
                             "group": _group_label(r["group"]) if r["group_by"] else "All",
                             "value": r["ratio"], "ci_low": r.get("ratio_ci_low"),
                             "ci_high": r.get("ratio_ci_high"), "ref": 1.0, "verdict": "",
                             "xlabel": "ratio"})
    return pd.DataFrame(rows, columns=["panel", "title", "group", "value", "ci_low", "ci_high",
                                       "ref", "verdict", "xlabel"])


def _frame(comparisons) -> str:
    if comparisons is None or "frame" not in getattr(comparisons, "columns", ()):
        return ""
    f = comparisons["frame"].dropna().astype(str)
    f = f[f != ""]
    return f.iloc[0] if len(f) else ""


def summary_section(inp, rows=None, *, sample_label: str = "Sample",
                    population_label: str = "the population") -> Section | None:
    """The opening section (``role="summary"``), or None when nothing was compared.
    ``rows``: ``inp.comparisons`` in display units (``content.comparison_rows``)."""
    points = claim_points(inp.claims) if inp.claims is not None and len(inp.claims) else None
    if points is not None and len(inp.waves) == 1:
        # one wave: its rows repeat the "All" rows
        points = points[points["group"] == "All"] if (points["group"] == "All").any() else points
    head = headline_table(rows, population_label)
    claims = claims_summary_table(points)
    forest = forest_points(points, rows)
    if head is None and claims is None:
        return None
    waves = [w.id for w in inp.waves]
    n = len(inp.data)
    lead = (f"{sample_label}: {n:,d} respondents"
            + (f" in {len(waves)} waves ({', '.join(waves)})" if len(waves) > 1 else
               f" (wave {waves[0]})" if waves else "")
            + f", compared with {population_label}"
            + (f" ({_frame(inp.comparisons)})" if _frame(inp.comparisons) else "") + ". "
            + ("Weighted estimates with 95% design-based confidence intervals."
               if inp.weight_col else "Unweighted estimates (weighting did not run)."))
    blocks: list = [Text(lead)]
    if head is not None:
        blocks.append(head)
    if claims is not None:
        blocks.append(claims)
    if len(forest):
        what = ("each claim's metric with its 95% interval, by wave, against the claim's "
                "threshold (dashed line); colour: the verdict" if points is not None else
                "sample / population ratios with 95% intervals, by wave; dashed line: 1 "
                "(no difference)")
        blocks.append(Chart(
            id="summary_forest", title="Claims at a glance" if points is not None
            else "Headline ratios at a glance", kind="forest",
            caption=f"Forest plot: {what}.",
            table=ReportTable(
                id="chart_summary_forest", title="Forest plot data", data=forest,
                columns=[Column("panel", "Id", "text"), Column("title", "Panel", "text"),
                         Column("group", "Group", "text"),
                         Column("value", "Value", digits=2),
                         Column("ci_low", "95% CI", "ci", digits=2, high="ci_high"),
                         Column("ref", "Threshold", digits=2, stat=False),
                         Column("verdict", "Verdict", "text"),
                         Column("xlabel", "Metric", "text")],
                n_col=None, cv_col=None,
                no_disclosure_reason="claims and ratios for all respondents and whole waves")))
    return Section("Summary", blocks, role=SUMMARY_ROLE)


def xlsx_summary_sheet(ws, report) -> bool:
    """Fill the openpyxl worksheet ``ws`` with the summary section (title, facts, its
    tables and the chart's data); False (``ws`` untouched) when the report has none."""
    from openpyxl.styles import Alignment, Font, PatternFill

    from .document import SYNTHETIC_BANNER, DisclosedChart, Text
    from .tables import DisclosedTable, export_rows

    sec = next((s for s in report.sections if s.role == SUMMARY_ROLE), None)
    if sec is None:
        return False
    ws.title = "Summary"
    ws.append([report.title])
    ws.cell(ws.max_row, 1).font = Font(bold=True, size=14)
    if report.synthetic:
        ws.append([SYNTHETIC_BANNER])
        ws.cell(ws.max_row, 1).font = Font(bold=True, color="FFFFFF")
        ws.cell(ws.max_row, 1).fill = PatternFill("solid", fgColor="B00020")
    ws.append([f"Data as of {report.date}"])
    for k, v in report.facts:
        ws.append([k, v])
    widths: dict[int, int] = {}
    for b in sec.blocks:
        ws.append([])
        if isinstance(b, Text):
            ws.append([b.text])
            continue
        t = b.table if isinstance(b, DisclosedChart) else b
        if not isinstance(t, DisclosedTable):
            continue
        ws.append([b.title])
        ws.cell(ws.max_row, 1).font = Font(bold=True, size=12)
        header, rows = export_rows(t)
        ws.append(header)
        for cell in ws[ws.max_row]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for r in rows:
            ws.append(r)
            for j, v in enumerate(r, 1):
                widths[j] = max(widths.get(j, 8), min(len(str(v)) + 2, 60))
        for note in t.notes:
            ws.append([note])
        if isinstance(b, DisclosedChart) and b.caption:
            ws.append([b.caption + " (the chart: sheet data above; image beside the report)"])
    for j, w in widths.items():
        ws.column_dimensions[ws.cell(1, j).column_letter].width = w
    return True


__all__ = ["HEADLINES", "SUMMARY_ROLE", "claim_points", "claims_summary_table",
           "forest_points", "headline_table", "parse_test", "summary_section",
           "xlsx_summary_sheet"]
