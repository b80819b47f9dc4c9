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


COLUMNS = [("indicator", "indicator", "left"), ("category", "category", "left"),
           ("adjustment", "adjustment", "left"), ("estimate", "estimate (95% CI)", "right"),
           ("population", "population", "right"), ("difference", "difference (95% CI)", "right"),
           ("ratio", "ratio (95% CI)", "right"), ("p", "p", "right"), ("n", "n", "right"),
           ("reference", "reference (year)", "left"), ("confidence", "source quality", "left"),
           ("caveat", "caveat", "left")]


def comparison_cells(part, missing: dict, marks: dict | None = None) -> list[dict]:
    """The comparison rows as display strings: shares in %, their differences in percentage
    points, ages in years (1 decimal); an empty category is marked, not shown as 0 ± 0; the
    reference table and year, and a mark (†1 …, from ``marks``: caveat text -> mark) for a caveat."""
    marks = {} if marks is None else marks
    from ._console import fmt_num, fmt_p

    rows = []
    for rec in part.to_dict("records"):
        years = rec["indicator"] in ("mean_age", "median_age")
        k = 1.0 if years else 100.0

        def est_ci(v, lo, hi, scale=k, d=1):
            s = fmt_num(None if v is None else v * scale, d)
            a, b = fmt_num(None if lo is None else lo * scale, d), fmt_num(None if hi is None else hi * scale, d)
            return f"{s} [{a}, {b}]" if s and a and b else s

        cells = {"indicator": rec["indicator"], "category": rec["category"],
                 "adjustment": rec["adjustment"], "n": fmt_num(rec["n"], 0),
                 "confidence": rec.get("confidence") or "", "p": fmt_p(rec.get("p_value")),
                 "reference": (f"{rec['reference_table']} ({int(rec['year'])})"
                               if rec.get("reference_table") and rec.get("year") == rec.get("year") else ""),
                 "caveat": (marks.setdefault(rec["caveat"], f"†{len(marks) + 1}")
                            if rec.get("caveat") else "")}
        if rec["adjustment"] == "rao-scott":
            cells["estimate"] = f"X² = {fmt_num(rec.get('statistic'), 1)}"
        elif rec["estimate"] == 0 and rec.get("se") == 0:
            cells["estimate"] = "— (no respondents)"
            cells["population"] = fmt_num(rec["population"] * k, 1)
        else:
            cells["estimate"] = est_ci(rec["estimate"], rec["ci_low"], rec["ci_high"])
            cells["population"] = fmt_num(rec["population"] * k, 1) if rec["population"] == rec["population"] else ""
            cells["difference"] = est_ci(rec.get("difference"), rec.get("difference_ci_low"),
                                         rec.get("difference_ci_high"))
            cells["ratio"] = est_ci(rec.get("ratio"), rec.get("ratio_ci_low"), rec.get("ratio_ci_high"),
                                    scale=1.0, d=2)
        if rec["adjustment"] != "rao-scott" and rec["population"] != rec["population"]:
            cells["population"] = "n/a *"      # a gap: no number is invented
            missing.setdefault((rec["indicator"], rec["adjustment"]), rec["note"])
        if rec.get("suppressed") and not (rec["estimate"] == 0 and rec.get("se") == 0):
            # disclosure control: fewer than the minimum (an empty level stays marked as such)
            cells.update({c: "—" for c in ("estimate", "difference", "ratio", "p", "n")})
        rows.append(cells)
    return rows


def _disclose(res, df, proj, min_age, max_age):
    """The report's disclosure control on the comparison rows (every output format)."""
    from types import SimpleNamespace

    from ..report.collect import cell_counts
    from ..report.disclosure import MIN_CELL_SIZE_FLOOR, suppress_estimates

    rc = proj.reference
    shim = SimpleNamespace(reference=SimpleNamespace(
        min_age=min_age, max_age=max_age or 0, population=rc.population))
    c = res.rename(columns={"by": "group_by"}).copy()
    c["group_by"] = c["group_by"].fillna("").astype(str)
    c["group"] = c["group"].fillna("").astype(str)
    c["category"] = c["category"].fillna("").astype(str)
    try:
        n_cell = cell_counts(c, df, shim)
    except Exception:  # noqa: BLE001 - without cell counts the domain n governs
        n_cell = res["n"]
    k = max(MIN_CELL_SIZE_FLOOR, proj.report.min_cell_size)
    out = suppress_estimates(res.assign(n_cell=n_cell), min_cell_size=k, cell_col="n_cell",
                             group_cols=["by", "group", "indicator", "adjustment"])
    out = out.drop(columns=["n_cell"])
    out.attrs = dict(res.attrs)
    if out["suppressed"].any():
        out.attrs["notes"] = list(out.attrs.get("notes", [])) + [
            f"{int(out['suppressed'].sum())} row(s) suppressed: fewer than {k} unweighted "
            "respondents in the cell, or a complement of one (disclosure control)"]
    return out


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
        no_rebuild: bool = typer.Option(False, "--no-rebuild",
                                        help="Use build/weighted.parquet as it is; do not run the "
                                             "harmonise and weight steps when build/ is missing or "
                                             "out of date."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="Only the claims and their verdicts (no comparison tables)."),
        layout: str = typer.Option("auto", "--layout",
                                   help="auto (a table when it fits, else one block per row), wide or long."),
    ) -> None:
        """Differences, ratios, age-standardised comparisons, goodness-of-fit tests and claims
        against the general population (design-based, as R survey)."""
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
        build_notes: list[str] = []
        if data is not None:
            path = data
            if not path.exists():
                raise InputFileError("file not found", code="compare.no_data", where=str(path),
                                     hint="check the path, or leave out --data to use the project's "
                                          "build/weighted.parquet")
            from .._files import read_parquet_input

            df = read_parquet_input(path, hint="is it a complete parquet file?")
        else:
            from ..pipeline import ensure_weighted

            path = proj.path("build/weighted.parquet")
            df, build_notes = ensure_weighted(proj, rebuild=not no_rebuild,
                                              command="diaspora-survey compare")
            for n in build_notes:      # on stderr: --json / --csv output stays clean
                from ._console import console as _c

                _c(stderr=True).print(f"note: {n}", markup=False)
        byv = [x.strip() for v in (by if by is not None else proj.compare.by) for x in v.split(",") if x.strip()]
        for b in byv:
            if b not in BY_ALLOWED:      # only what --by's help names
                raise EstimationError(f"cannot compare by {b!r}", code="compare.bad_by",
                                      where="--by" if by is not None else f"{proj.file} [compare] by",
                                      hint="use one of: " + ", ".join(BY_ALLOWED))
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
        res = _disclose(res, df, proj, rc.min_age if min_age is None else min_age,
                        (rc.max_age if max_age is None else max_age) or None)
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
        from ._console import console as make_console, fmt_num, print_table
        from rich.markup import escape

        console = make_console(soft_wrap=False)
        missing: dict[tuple, str] = {}    # (indicator, adjustment) -> why no population value
        marks: dict[str, str] = {}        # caveat text -> its mark (†1, †2 ...) in the tables
        from ..report.collect import wording

        population = wording(proj)[1] if reference is None else reference
        if not quiet:
            for (gb, g), part in res.groupby(["by", "group"], sort=False):
                title = (f"{'All respondents' if not gb else f'{gb} = {g}'} vs {population} "
                         f"({res.attrs.get('frame', {}).get('text', '')})")
                rows = comparison_cells(part, missing, marks)
                print_table(console, rows, COLUMNS, title=title, layout=layout, keys=3)
            console.print("Shares in %, their differences in percentage points, ages in years; "
                          "95% confidence intervals (shares: logit intervals).", markup=False)
        if marks and not quiet:
            console.print("[bold]Caveats[/bold] (beside every figure they concern; claims resting on a "
                          "comparison beyond the year gap or the universe are inconclusive)")
            for text, mk in marks.items():
                console.print(f"  {mk} {escape(text)}")
        printed = set(marks.values()) if not quiet else set()
        if missing and not quiet:
            console.print("[bold]* Not available[/bold] (no population figure; nothing is invented)")
            for (ind, adj), why in missing.items():
                console.print(f"  - {ind} ({adj}): {escape(why or 'no population figure')}")
        srcs = res[res["source"] != ""][["reference_table", "source", "confidence"]].drop_duplicates()
        if not quiet:
            console.print("[bold]Population sources[/bold]")
            for r in srcs.itertuples(index=False):
                console.print(f"  {r.reference_table} \\[{r.confidence}]: {escape(r.source)}")
            console.print("[bold]Notes[/bold]")
            for n in notes:
                console.print(f"  - {escape(n)}")
        if verdicts is not None and len(verdicts):
            rows = []
            for r in verdicts.to_dict("records"):
                d = 2 if r["metric"] == "ratio" else 1 if r["indicator"] in ("mean_age", "median_age") else 3
                lo, hi = fmt_num(r["ci_low"], d), fmt_num(r["ci_high"], d)
                ref = (f"{r['reference_table']} ({int(r['year'])})"
                       if r.get("reference_table") and r.get("year") == r.get("year") else "")
                uni = r.get("frame") or ""
                if r.get("universe") and "restricted to" not in r["universe"]:
                    uni = f"{uni}; population: {r['universe']}"
                rows.append({"claim": r["claim"], "group": str(r["group"] or "all"), "test": r["test"],
                             "value": fmt_num(r["value"], d),
                             "ci": f"{lo} to {hi}" if lo and hi else "", "verdict": r["verdict"],
                             "reference": ref, "universe": uni, "standard": r.get("standard") or "",
                             "caveat": marks.setdefault(r["caveat"], f"†{len(marks) + 1}")
                             if r.get("caveat") else ""})
            print_table(console, rows, [("claim", "claim", "left"), ("group", "group", "left"),
                                        ("test", "test", "left"), ("value", "value", "right"),
                                        ("ci", "95% CI", "right"), ("verdict", "verdict", "left"),
                                        ("reference", "reference", "left"), ("universe", "universe", "left"),
                                        ("standard", "standard", "left"), ("caveat", "caveat", "left")],
                        title="Claims", layout=layout, keys=2)
            console.print("Claims are tested, not endorsed: see the attribution caveats in the claims file.")
            for text, mk in marks.items():
                if mk not in printed:
                    console.print(f"  {mk} {escape(text)}")
