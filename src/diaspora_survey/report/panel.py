"""The report's panel section: linking, retention, attrition weights, returns and onward moves,
transitions between host regions, cumulative return — aggregates only.

Every table carries its unweighted respondent counts for the report's disclosure control
(:func:`diaspora_survey.report.tables.disclose`): a share rests on the respondents *with that
status* in the group (``n_cell``), so a region with three returnees shows "—"; statuses of one
group, categories of one variable and the checks that partition a wave are complement groups
(a single suppressed cell is never recoverable by subtraction). Respondent ids never appear:
the linking problems are counts (the ``panel`` command lists example ids).
"""
from __future__ import annotations

from .disclosure import mask_small_counts
from .document import Chart, Section, Text
from .tables import Column, ReportTable

PCT = dict(kind="num", digits=1)


def _label(var, code) -> str:
    """English label of a schema category (as the report's other tables); a project's own host
    region (e.g. ``europe``) as its code, capitalised."""
    from ..harmonise.schema import SCHEMA

    v = SCHEMA.get(var)
    if v is not None:
        for lv in v.levels:
            if lv.code == str(code):
                return lv.label_en
        if var == "host_region":
            return str(code).replace("_", " ").capitalize()
    return str(code)


def linking_table(a) -> ReportTable:
    """Rows of each panel wave split into a partition (complement group per wave)."""
    import pandas as pd

    r = a.link.report
    get = (lambda w, c: int(r[(r["wave"] == w) & (r["check"] == c)]["count"].sum()))
    rows = []
    b = a.link.baseline
    n_base = get(b, "keys usable (baseline)")
    for w in [a.followup]:
        matched = get(w, "matched to baseline")
        rows += [
            {"wave": w, "check": "re-interviewed (key found in the baseline)", "n": matched},
            {"wave": w, "check": "not linked: new respondents (no key), keys not in the baseline or "
                                 "repeated in the wave",
             "n": get(w, "no key (new respondents)") + get(w, "key not in baseline") + get(w, "duplicated key rows")},
        ]
        rows += [{"wave": b, "check": "baseline respondents re-interviewed", "n": matched},
                 {"wave": b, "check": "baseline respondents not re-interviewed", "n": n_base - matched}]
    d = pd.DataFrame(rows)
    d["n_cell"] = d["n"].where(d["n"] > 0)     # zero reveals nobody and is shown
    d["part"] = [f"{x['wave']}:{'base' if x['wave'] == b else 'fu'}" for x in rows]
    return ReportTable(
        id="panel_linking", title=f"Panel: linking wave {a.followup} to the baseline wave {b}", data=d,
        columns=[Column("wave", "Wave", "text"), Column("check", "Respondents", "text"),
                 Column("n", "n", "int", n_key="n_cell")],
        n_col="n_cell", cv_col=None, complement_by=["part"], group_col="wave",
        notes=[f"Respondents are linked by the key {a.link.key!r}. Rows of a wave add up to its "
               "respondents; nothing is dropped."])


def checks_table(a) -> ReportTable:
    import pandas as pd

    r = a.link.report
    keep = r["check"].str.startswith(("conflicting", "returned inconsistent"))
    d = r[keep & ~r["check"].str.contains("not in both")].rename(columns={"count": "n"}).reset_index(drop=True)
    d["n_cell"] = d["n"].where(d["n"] > 0)
    d["check"] = d["check"].str.replace("conflicting birth_year", "birth year differs from the baseline") \
        .str.replace("conflicting sex", "sex differs from the baseline") \
        .str.replace("returned inconsistent with country", "'returned' contradicts the country")
    return ReportTable(
        id="panel_checks", title="Panel: consistency checks (respondents)", data=d,
        columns=[Column("wave", "Wave", "text"), Column("check", "Check", "text"),
                 Column("n", "n", "int", n_key="n_cell")],
        n_col="n_cell", cv_col=None,
        notes=["Differing fixed attributes keep the link and are flagged; 'returned' is taken as "
               "answered. `diaspora-survey panel` lists the respondents concerned; this report shows "
               "counts only."])


def retention_table(a) -> ReportTable:
    d = a.retention.copy()
    d["n_lost"] = d["n"] - d["n_retained"]
    d["n_min"] = d[["n_retained", "n_lost"]].min(axis=1)
    d["category"] = [_label(v, c) if v != "all" else "all" for v, c in zip(d["variable"], d["category"])]
    d["variable"] = d["variable"].str.replace("_", " ")
    d["cv"] = d["se"] / d["estimate"]
    t = a.retention_tests.set_index("variable") if len(a.retention_tests) else None
    notes = [f"Weighted share of the baseline wave {a.link.baseline} re-interviewed in {a.followup} "
             "(baseline weights; logit intervals, R svyciprop). A row is shown only when at least "
             "the minimum number of respondents were and were not re-interviewed."]
    if t is not None:
        notes.append("Rao–Scott tests of no difference in retention: " + "; ".join(
            f"{v.replace('_', ' ')} F = {r['statistic']:.2f}, p = {r['p_value']:.3g}"
            for v, r in t.iterrows()) + ".")
    return ReportTable(
        id="panel_retention", title="Panel: retention by baseline characteristics", data=d,
        columns=[Column("variable", "Variable", "text"), Column("category", "Category", "text"),
                 Column("n", "Baseline n", "int"),
                 Column("estimate", "Re-interviewed % (95% CI)", "est_ci", digits=1, scale=100,
                        low="ci_low", high="ci_high", mark_low_precision=True)],
        n_col="n_min", cv_col="cv", complement_by=["variable"], group_col="variable", notes=notes)


def attrition_tables(a) -> list[ReportTable]:
    import pandas as pd

    att = a.attrition
    dg = att.diagnostics
    d = pd.DataFrame([{"method": att.method, "n": int(dg["n"]), "n_eff": dg["n_eff"], "kish_deff": dg["kish_deff"],
                       "min": dg["min"], "max": dg["max"], "cv": dg["cv"],
                       "rate": 100 * att.response_rate}])
    diag = ReportTable(
        id="panel_attrition_weights", title="Panel: attrition weights", data=d,
        columns=[Column("method", "Method", "text"), Column("n", "Retained n", "int"),
                 Column("rate", "Weighted retention %", **PCT),
                 Column("n_eff", "Effective n", "int"), Column("kish_deff", "Kish deff", "num", digits=2),
                 Column("min", "Min weight", "num", digits=2), Column("max", "Max weight", "num", digits=2),
                 Column("cv", "CV of weights", "num", digits=2, stat=True)],
        cv_col=None,
        notes=[f"Covariates: {', '.join(a.covariates)}. "
               + {"propensity": "Baseline weight / estimated response propensity (weighted logistic model).",
                  "rake": "Retained respondents raked to the baseline's weighted margins.",
                  "propensity+rake": "Baseline weight / estimated response propensity (weighted "
                                     "logistic model), then raked to the baseline's weighted margins."}[att.method]]
        + [mask_small_counts(x) for x in att.decisions])
    m = att.margins.copy()
    m["n_lost"] = m["n"] - m["n_retained"]
    m["n_min"] = m[["n_retained", "n_lost"]].min(axis=1)
    m["category"] = [_label(v, c) for v, c in zip(m["variable"], m["category"])]
    m["variable"] = m["variable"].str.replace("_", " ")
    for k in ("baseline", "retained_base", "retained_adjusted"):
        m[k] = m[k] * 100
    marg = ReportTable(
        id="panel_attrition_margins", title="Panel: baseline margins reproduced by the attrition weights (%)",
        data=m, columns=[Column("variable", "Variable", "text"), Column("category", "Category", "text"),
                         Column("baseline", "Baseline (weighted) %", **PCT),
                         Column("retained_base", "Retained, baseline weights %", **PCT),
                         Column("retained_adjusted", "Retained, attrition weights %", **PCT)],
        n_col="n_min", cv_col=None, complement_by=["variable"], group_col="variable",
        notes=["Before adjustment the retained panel over-represents the groups that answer again; "
               "raking (alternating with trimming) makes it reproduce the baseline's weighted margins."])
    return [diag, marg]


def status_frame(a):
    """One row per group: n, returned and moved-on shares with their disclosure counts.

    ``n_ret`` = min(returned, not returned) and ``n_mov`` = min(moved on, stayed): a shown share
    and the share derived from it (100 − returned, or stayed = 100 − returned − moved on) both
    rest on at least the minimum number of respondents."""
    import pandas as pd

    parts = [("all", "all respondents", a.shares)]
    for var, f in a.shares_by.items():
        for g, sub in f.groupby(var, observed=True, sort=False):
            parts.append((var, g, sub))
    rows = []
    for var, g, sub in parts:
        t = sub.set_index("status")
        n = int(t["n"].iloc[0])
        nr, nm, ns = (int(t.loc[k, "n_cell"]) for k in ("returned", "moved_on", "stayed"))
        rec = {"by": var.replace("_", " "), "group": _label(var, g) if var != "all" else g, "n": n,
               "n_ret": min(nr, n - nr), "n_mov": min(nm, ns), "variable": var, "code": str(g)}
        for k, c in (("returned", "ret"), ("moved_on", "mov")):
            rec.update({c: t.loc[k, "estimate"], f"{c}_lo": t.loc[k, "ci_low"], f"{c}_hi": t.loc[k, "ci_high"],
                        f"{c}_cv": t.loc[k, "cv"]})
        rows.append(rec)
    return pd.DataFrame(rows)


def status_table(a) -> ReportTable:
    d = status_frame(a).drop(columns=["variable", "code"])
    d["cv"] = d["ret_cv"]
    return ReportTable(
        id="panel_status", title=f"Panel: returned and moved on by {a.followup}", data=d,
        columns=[Column("by", "By", "text"), Column("group", "Group", "text"),
                 Column("ret", "Returned % (95% CI)", "est_ci", digits=1, scale=100, low="ret_lo", high="ret_hi",
                        n_key="n_ret", mark_low_precision=True),
                 Column("mov", "Moved on % (95% CI)", "est_ci", digits=1, scale=100, low="mov_lo", high="mov_hi",
                        n_key="n_mov")],
        n_col="n_ret", cv_col="cv", group_col="by",
        notes=[f"Status at {a.followup} of the {int(a.shares['n'].iloc[0]):,} baseline respondents re-interviewed "
               "(with a known country), with attrition weights: returned = living in Russia again, moved on = "
               "living in a third country, the rest stayed. Groups are baseline characteristics. Design: each "
               "respondent is a PSU; logit intervals (R svyciprop); † marks a coefficient of variation of the "
               "returned share above the limit. A share is shown only when it and its complement rest on "
               "enough respondents."]
        + ([f"Rao–Scott test of equal status distributions (stayed / moved on / returned) across host "
            f"regions: F = {a.region_test['statistic']:.2f} on ({a.region_test['ndf']:.2f}, "
            f"{a.region_test['ddf']:.1f}) df, p = {a.region_test['p_value']:.3g}."]
           if a.region_test is not None else []))


def transitions_table(a) -> ReportTable | None:
    from ..survey.longitudinal import transition_table

    if "host_region_fu" not in a.design.data.columns:
        return None
    t = transition_table(a.design, "host_region", "host_region_fu")
    t["from"] = [_label("host_region", x) for x in t["host_region"]]
    t["to"] = [_label("host_region", x) for x in t["host_region_fu"]]
    return ReportTable(
        id="panel_transitions", title="Panel: host region at the baseline → at the follow-up", data=t,
        columns=[Column("from", "Baseline region", "text"), Column("to", "Follow-up region", "text"),
                 Column("estimate", "% of the baseline region (95% CI)", "est_ci", digits=1, scale=100,
                        low="ci_low", high="ci_high", mark_low_precision=True)],
        n_col="n_cell", cv_col="cv", complement_by=["from"], group_col="from",
        notes=["Weighted shares (attrition weights) of each baseline region's respondents by region at "
               "the follow-up; 'Russia (returned)' are the returnees. Moves within a region (e.g. Georgia → "
               "Armenia) stay in the region's row. Rows with too few respondents making the move are "
               "suppressed."])


def cumulative_table(a, min_cell_size: int) -> ReportTable | None:
    import numpy as np

    c = a.cumulative
    if c is None or not len(c):
        return None
    d = c.copy()
    d["cum_events"] = np.cumsum(d["n_event"].to_numpy())
    d["n_min"] = np.minimum(d["n_risk"].to_numpy(), d["cum_events"].to_numpy())
    d = d[d["n_risk"] >= min_cell_size].reset_index(drop=True)
    if d.empty:
        return None
    d["cv"] = d["se"] / d["estimate"]
    att = c.attrs
    return ReportTable(
        id="panel_cumulative_return", title="Panel: cumulative return by months since departure", data=d,
        columns=[Column("month", "Months since departure", "int", stat=False),
                 Column("n_risk", "Still abroad and observed (n)", "int"),
                 Column("estimate", "Returned % (95% CI)", "est_ci", digits=1, scale=100, low="ci_low",
                        high="ci_high", mark_low_precision=True)],
        n_col="n_min", cv_col="cv",
        notes=[a.assumptions,
               f"Months with returns only; {att.get('n_no_date', 0)} returnee(s) without a month of return "
               "left out." if att.get("n_no_date", 0) >= min_cell_size or att.get("n_no_date", 0) == 0 else
               "Months with returns only; a few returnees without a month of return are left out.",
               "Intervals: R svykm's linearisation variance of the cumulative hazard, exp(log S ± 1.96 √varlog)."])


def returns_chart(a) -> Chart | None:
    if "host_region" not in a.shares_by:
        return None
    f = status_frame(a)
    f = f[f["variable"] == "host_region"]
    d = f.rename(columns={"group": "region", "ret": "estimate", "ret_lo": "ci_low", "ret_hi": "ci_high",
                          "ret_cv": "cv"})[["region", "estimate", "ci_low", "ci_high", "cv", "n_ret"]]
    d = d.reset_index(drop=True)
    overall = a.shares.set_index("status").loc["returned", "estimate"]
    return Chart(
        id="panel_returns_by_region", title="Returned to Russia by host region at the baseline",
        kind="returns_by_region",
        caption=f"Weighted share of the re-interviewed who live in Russia again at {a.followup}, with 95% "
                "confidence intervals (attrition weights); dashed line: all respondents. Regions with too few "
                "returnees are not drawn.",
        options={"overall": float(overall)},
        table=ReportTable(id="chart_panel_returns", title="Returns by region chart data", data=d,
                          columns=[Column("region", "Host region", "text"),
                                   Column("estimate", "Returned", "pct"),
                                   Column("ci_low", "95% CI", "pct_ci", high="ci_high")],
                          n_col="n_ret", cv_col="cv"))


def panel_section(inp, title: str) -> Section:
    a = inp.panel
    s = Section(title)
    s.blocks.append(Text(
        f"The panel wave {a.followup} re-interviews respondents of the baseline wave {a.link.baseline}. "
        "The tables show how the waves were linked, who answered again, how the attrition weights "
        "restore the baseline's composition, and where the re-interviewed live now: in the same country, "
        "in a third country (moved on), or in Russia (returned)."))
    for t in (linking_table(a), checks_table(a), retention_table(a), *attrition_tables(a), status_table(a)):
        s.blocks.append(t)
    ch = returns_chart(a)
    if ch is not None:
        s.blocks.append(ch)
    for t in (transitions_table(a), cumulative_table(a, inp.min_cell_size)):
        if t is not None:
            s.blocks.append(t)
    return s


__all__ = ["panel_section"]
