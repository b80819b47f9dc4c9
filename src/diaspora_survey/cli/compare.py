"""``diaspora-survey compare``: the weighted sample against the general population.

    diaspora-survey compare                 # rich tables; the project's build/weighted.parquet
    diaspora-survey compare --by wave --json
    diaspora-survey compare --csv > comparison.csv

Reads the project's ``build/weighted.parquet`` (written by ``diaspora-survey weight``),
the reference population and tables of ``[reference]`` and the claims file of
``[compare]`` in diaspora-survey.toml.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:,.{digits}f}".rstrip("0").rstrip(".") \
            if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        by: Optional[List[str]] = typer.Option(None, "--by", help="Also compare by wave, country or "
                                                                  "departure_cohort (repeatable). Default: [compare] by."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON: rows, claims, notes."),
        as_csv: bool = typer.Option(False, "--csv", help="Print the rows as CSV."),
        reference: Optional[str] = typer.Option(None, "--reference", "-r",
                                                help="Reference population (default: [reference] population)."),
        claims: Optional[Path] = typer.Option(None, "--claims", help="Claims YAML (default: [compare] claims)."),
        min_age: Optional[int] = typer.Option(None, "--min-age", help="Frame: youngest age (default [reference] min_age)."),
        max_age: Optional[int] = typer.Option(None, "--max-age", help="Frame: oldest age (default [reference] max_age; 0 = none)."),
        standardise: str = typer.Option("age_sex", "--standardise", help="Direct standardisation: age_sex, age or none."),
        level: float = typer.Option(0.95, "--level", help="Confidence level."),
        data: Optional[Path] = typer.Option(None, "--data", help="Weighted data (default build/weighted.parquet)."),
        indicator: Optional[List[str]] = typer.Option(None, "--indicator", "-i",
                                                      help="Only these indicators (repeatable; see --list-indicators)."),
        list_indicators: bool = typer.Option(False, "--list-indicators",
                                             help="List the indicators (built-in and the project's) and exit."),
        project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder."),
    ) -> None:
        """Differences, ratios, age-standardised comparisons, goodness-of-fit tests and claims
        against the general population (design-based, as R survey)."""
        import pandas as pd

        from ..compare.claims import evaluate_claims, load_claims
        from ..compare.comparison import BY_ALLOWED, compare_with_groups
        from ..errors import EstimationError, InputFileError
        from ..project import Project

        if as_json and as_csv:
            raise EstimationError("choose one of --json and --csv", code="cli.conflicting_options")
        if standardise not in ("age_sex", "age", "none"):
            raise EstimationError(f"--standardise {standardise!r} is not age_sex, age or none",
                                  code="cli.bad_option")
        proj = Project.load(project)
        rc = proj.reference
        extra = proj.indicators()
        if list_indicators:
            from ..compare.indicators import registry

            reg = registry(extra)
            if as_json:
                import json
                typer.echo(json.dumps([i.meta() for i in reg.values()], ensure_ascii=False, indent=1))
                return
            for i in reg.values():
                typer.echo(f"{i.name:24s} {i.variable:18s} {i.estimator:12s} standard={i.standard:10s} "
                           f"tables={','.join(i.table_kinds)}  {'' if i.builtin else '(project)'}")
            return
        path = data if data is not None else proj.path("build/weighted.parquet")
        if not path.exists():
            raise InputFileError("no weighted data", code="compare.no_data", where=str(path),
                                 hint="run `diaspora-survey weight` first (it writes build/weighted.parquet)")
        from .._files import read_parquet_input

        df = read_parquet_input(path, hint="re-run `diaspora-survey weight`")
        byv = [x.strip() for v in (by if by is not None else proj.compare.by) for x in v.split(",") if x.strip()]
        for b in byv:
            if b not in df.columns:
                raise EstimationError(f"no column {b!r} to compare by", code="compare.bad_by",
                                      where=str(path), hint="use one of: " + ", ".join(BY_ALLOWED))
        res = compare_with_groups(
            df, reference or rc.population, by=byv,
            tables=[str(proj.path(t)) for t in rc.tables] or None,
            **dict(rc.compare_options(),
                   min_age=rc.min_age if min_age is None else min_age,
                   max_age=(rc.max_age if max_age is None else max_age) or None),
            standardise=None if standardise == "none" else standardise, level=level,
            extra_indicators=extra, indicators=[x for v in indicator for x in v.split(",") if x]
            if indicator else None)
        cpath = claims if claims is not None else proj.claims_file()
        verdicts = None
        if cpath is not None and (claims is not None or cpath.exists()):
            verdicts = evaluate_claims(res, load_claims(cpath, extra), extra)
        notes = res.attrs.get("notes", [])
        if as_csv:
            typer.echo(res.to_csv(index=False), nl=False)
            return
        if as_json:
            import json
            out = {"reference": res.attrs.get("reference"), "frame": res.attrs.get("frame"),
                   "fieldwork": res.attrs.get("fieldwork"),
                   "max_year_gap": res.attrs.get("max_year_gap"), "accept": res.attrs.get("accept"),
                   "notes": notes,
                   "rows": json.loads(res.to_json(orient="records", force_ascii=False, double_precision=15)),
                   "claims": None if verdicts is None else
                   json.loads(verdicts.to_json(orient="records", force_ascii=False, double_precision=15))}
            typer.echo(json.dumps(out, ensure_ascii=False, indent=1))
            return
        from ._console import console as make_console
        from rich.markup import escape
        from rich.table import Table

        console = make_console(soft_wrap=False)
        show = ["group", "indicator", "category", "adjustment", "estimate", "ci",
                "population", "difference", "ratio", "ratio_ci", "p_value",
                "n", "reference", "caveat"]
        res = res.assign(
            ci=[f"{_fmt(a)}–{_fmt(b)}" if a == a else "" for a, b in zip(res["ci_low"], res["ci_high"])],
            ratio_ci=[f"{_fmt(a)}–{_fmt(b)}" if a == a else "" for a, b in
                      zip(res["ratio_ci_low"], res["ratio_ci_high"])])
        res = res.assign(reference=[f"{t} ({int(y)})" if t and y == y else "" for t, y in
                                    zip(res["reference_table"], res["year"])])
        missing: dict[tuple, str] = {}    # (indicator, adjustment) -> why no population value
        marks: dict[str, str] = {}        # caveat text -> its mark (†1, †2 ...) in the tables
        for (gb, g), part in res.groupby(["by", "group"], sort=False):
            t = Table(title=f"{'All respondents' if not gb else f'{gb} = {g}'} vs {res.attrs.get('reference')} "
                            f"({res.attrs.get('frame', {}).get('text', '')})")
            for c in show[1:]:
                t.add_column(c.replace("_", " "), justify="right" if c not in
                             ("indicator", "category", "adjustment", "reference", "caveat")
                             else "left", overflow="fold")
            for rec in part[show[1:] + ["statistic", "note"]].to_dict("records"):
                cells = {c: _fmt(rec[c]) for c in show[1:]}
                if rec["caveat"]:
                    cells["caveat"] = marks.setdefault(rec["caveat"], f"†{len(marks) + 1}")
                if rec["adjustment"] == "rao-scott":
                    cells["estimate"] = f"X²={_fmt(rec['statistic'])}"
                elif rec["population"] != rec["population"]:      # NaN: a gap, no number
                    cells["population"] = "n/a *"
                    missing.setdefault((rec["indicator"], rec["adjustment"]), rec["note"])
                t.add_row(*[escape(cells[c]) for c in show[1:]])
            console.print(t)
        if marks:
            console.print("[bold]Caveats[/bold] (beside every figure they concern; claims resting on a "
                          "comparison beyond the year gap or the universe are inconclusive)")
            for text, mk in marks.items():
                console.print(f"  {mk} {escape(text)}")
        printed = set(marks.values())
        if missing:
            console.print("[bold]* Not available[/bold] (no population figure; nothing is invented)")
            for (ind, adj), why in missing.items():
                console.print(f"  - {ind} ({adj}): {escape(why or 'no population figure')}")
        srcs = res[res["source"] != ""][["reference_table", "source", "confidence"]].drop_duplicates()
        console.print("[bold]Population sources[/bold]")
        for r in srcs.itertuples(index=False):
            console.print(f"  {r.reference_table} \\[{r.confidence}]: {escape(r.source)}")
        console.print("[bold]Notes[/bold]")
        for n in notes:
            console.print(f"  - {escape(n)}")
        if verdicts is not None and len(verdicts):
            t = Table(title="Claims")
            for c in ("claim", "group", "test", "value", "ci_low", "ci_high", "verdict", "reference",
                      "universe", "standard", "caveat"):
                t.add_column(c.replace("_", " "), overflow="fold")
            for r in verdicts.itertuples(index=False):
                ref = f"{r.reference_table} ({int(r.year)})" if r.reference_table and r.year == r.year else ""
                cav = marks.setdefault(r.caveat, f"†{len(marks) + 1}") if r.caveat else ""
                uni = r.frame if "restricted to" in r.universe or not r.universe else \
                    f"{r.frame}; population: {r.universe}"
                t.add_row(*[escape(str(x)) for x in (r.claim, r.group, r.test, _fmt(r.value), _fmt(r.ci_low),
                          _fmt(r.ci_high), r.verdict, ref, uni, r.standard, cav)])
            console.print(t)
            console.print("Claims are tested, not endorsed: see the attribution caveats in the claims file.")
            for text, mk in marks.items():
                if mk not in printed:
                    console.print(f"  {mk} {escape(text)}")
