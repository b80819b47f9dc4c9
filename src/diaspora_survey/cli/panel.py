"""``diaspora-survey panel``: link the panel waves of the project, report what linking found
(matched, unmatched and duplicated keys, conflicting fixed attributes, returned against the
country — with counts and example ids), retention, the attrition weights and the shares who
stayed, moved on and returned; write the linked panel to build/panel.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _pct(x) -> str:
    import math

    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _ci(lo, hi) -> str:
    import math

    if any(x is None or (isinstance(x, float) and math.isnan(x)) for x in (lo, hi)):
        return "–"
    return f"{_pct(lo)}–{_pct(hi)}"


def print_link(link, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="Panel linking")
    for c, j in (("wave", "left"), ("check", "left"), ("count", "right")):
        t.add_column(c, justify=j)
    last = None
    for r in link.report.itertuples(index=False):
        t.add_row(r.wave if r.wave != last else "", r.check, f"{r.count:,}")
        last = r.wave
    console.print(t)
    if link.issues:
        console.print("[bold]Linking issues[/bold] (examples are respondent ids; reports show counts only)")
        for i in link.issues:
            ex = f"  e.g. {', '.join(map(str, i.examples))}" if i.examples else ""
            console.print(f"  [yellow]{i.kind}[/yellow] " + escape(i.message + ex), highlight=False)
        console.print("  use --strict to make these errors")


def print_analysis(a, console, *, details: bool = False) -> None:
    from rich.table import Table

    att = a.attrition
    d = att.diagnostics
    from rich.markup import escape

    if getattr(a, "baseline_weights", None):
        console.print("Baseline weights: " + escape(a.baseline_weights))
    console.print(f"[bold]Retention[/bold] {a.link.baseline} → {a.followup}: {att.n_retained:,} of "
                  f"{att.n_baseline:,} baseline respondents re-interviewed (weighted {_pct(att.response_rate)} %)")
    t = Table(title="Retention by baseline characteristics: Rao–Scott test of no difference")
    for c in ("variable", "F", "ndf", "ddf", "p"):
        t.add_column(c, justify="left" if c == "variable" else "right")
    notes = []
    for r in a.retention_tests.to_dict("records"):
        if r["statistic"] != r["statistic"]:       # NaN: not testable (e.g. no attrition)
            t.add_row(r["variable"], "–", "–", "–", "–")
            notes.append(f"{r['variable']}: {r.get('note') or 'not testable'}")
        else:
            t.add_row(r["variable"], f"{r['statistic']:.2f}", f"{r['ndf']:.2f}", f"{r['ddf']:.1f}",
                      f"{r['p_value']:.3g}")
    console.print(t)
    for n in notes:
        console.print("  " + escape(n))
    if details:
        t = Table(title="Retention (weighted %, 95 % CI)")
        for c in ("variable", "category", "n", "retained", "%", "CI"):
            t.add_column(c, justify="left" if c in ("variable", "category") else "right")
        for r in a.retention.itertuples(index=False):
            t.add_row(r.variable, r.category, f"{r.n:,}", f"{r.n_retained:,}", _pct(r.estimate),
                      _ci(r.ci_low, r.ci_high))
        console.print(t)
    m = att.margins
    gap = float((m["retained_adjusted"] - m["baseline"]).abs().max())
    gap0 = float((m["retained_base"] - m["baseline"]).abs().max())
    console.print(f"[bold]Attrition weights[/bold] ({att.method}; covariates {', '.join(a.covariates)}): "
                  f"n {int(d['n']):,}, n_eff {d['n_eff']:.0f}, Kish deff {d['kish_deff']:.2f}, "
                  f"min {d['min']:.3g}, max {d['max']:.3g}, cv {d['cv']:.2f}; largest gap to the baseline "
                  f"weighted margins {100 * gap0:.1f} points before, {100 * gap:.2f} after")
    from ..report.disclosure import mask_small_counts

    for dec in att.decisions:
        console.print(f"  {mask_small_counts(dec)}", markup=False)
    t = Table(title=f"Status at {a.followup} (weighted %, 95 % CI; respondent = PSU)")
    for c in ("group", "n", "stayed", "moved on", "returned", "returned CI"):
        t.add_column(c, justify="left" if c == "group" else "right")

    def add(label, frame):
        s = frame.set_index("status")
        t.add_row(label, f"{int(s['n'].iloc[0]):,}", _pct(s.loc["stayed", "estimate"]),
                  _pct(s.loc["moved_on", "estimate"]), _pct(s.loc["returned", "estimate"]),
                  _ci(s.loc["returned", "ci_low"], s.loc["returned", "ci_high"]))

    if int(a.shares["n"].iloc[0]) == 0:
        console.print("[yellow]No re-interviewed respondent has a status[/yellow]: the status needs a known "
                      "country at both waves and a baseline abroad (see 'living in Russia at the baseline').")
    add("all", a.shares)
    for var, frame in a.shares_by.items():
        for g, sub in frame.groupby(var, observed=True, sort=False):
            add(f"{var}: {g}", sub)
    console.print(t)
    if a.region_test is not None:
        r = a.region_test
        console.print(f"Rao–Scott test of equal status distributions across host regions: F = "
                      f"{r['statistic']:.2f} on ({r['ndf']:.2f}, {r['ddf']:.1f}) df, p = {r['p_value']:.3g}")
    if a.cumulative is not None:
        c = a.cumulative
        parts = []
        for m in (3, 6, 12):
            upto = c[c["month"] <= m]
            if len(upto):
                r = upto.iloc[-1]
                parts.append(f"{m} months {_pct(r.estimate)} ({_pct(r.ci_low)}–{_pct(r.ci_high)})")
        if parts:
            console.print("Cumulative return since departure (Kaplan–Meier, %, 95 % CI): " + "; ".join(parts))
        console.print(f"  {a.assumptions}", soft_wrap=True)
    if details and a.transitions is not None:
        t = Table(title="Transitions: baseline country → follow-up country (respondents)")
        for c in ("from", "to", "n", "%"):
            t.add_column(c, justify="left" if c in ("from", "to") else "right")
        for r in a.transitions.itertuples(index=False):
            t.add_row(str(r.country), str(r.country_fu), f"{r.n_cell:,}", _pct(r.estimate))
        console.print(t)


def register(app: typer.Typer) -> None:
    @app.command("panel")
    def panel_cmd(
        project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder (with diaspora-survey.toml)."),
        strict: Optional[bool] = typer.Option(None, "--strict/--no-strict",
                                              help="Duplicated or unmatched keys, conflicting sex or birth year "
                                                   "and 'returned' against the country are errors (default: "
                                                   "strict in the panel section of the project file)."),
        followup: Optional[str] = typer.Option(None, "--followup", help="Follow-up wave to analyse (default: the last)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o",
                                              help="Parquet file for the linked panel, one row per baseline "
                                                   "respondent with the attrition weights (default: build/panel.parquet)."),
        details: bool = typer.Option(False, "--details", help="Also print retention by category and transitions."),
    ) -> None:
        """Link the waves of the project's panel; print linking problems (with example ids), retention, attrition weights and the shares who stayed, moved on and returned."""
        from ._console import console as make_console

        from ..pipeline import write_parquet
        from ..project import Project

        console = make_console(soft_wrap=False)
        proj = Project.load(project)
        if proj.synthetic:
            console.print("[bold yellow]SYNTHETIC example data[/bold yellow]")
        lk = proj.panel(strict=strict, weights=proj.panel_weights())
        print_link(lk, console)          # first: a failing analysis still shows what linking found
        a = proj.panel_analysis(followup=followup, link=lk)
        print_analysis(a, console, details=details)
        out = Path(output) if output else proj.path("build/panel.parquet")
        if not out.is_absolute():
            out = Path.cwd() / out
        frame = a.pairs.copy()
        for c in frame.columns:   # parquet: plain strings for object columns
            if frame[c].dtype == object:
                frame[c] = frame[c].astype("string")
        write_parquet(frame, out)
        console.print(f"wrote {out} ({len(frame):,} baseline respondents, {int(frame['retained'].sum()):,} retained)")
