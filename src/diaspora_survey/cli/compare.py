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
        path = data if data is not None else proj.path("build/weighted.parquet")
        if not path.exists():
            raise InputFileError("no weighted data", code="compare.no_data", where=str(path),
                                 hint="run `diaspora-survey weight` first (it writes build/weighted.parquet)")
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several kinds
            raise InputFileError(f"cannot read parquet: {e}", code="input.unreadable", where=str(path),
                                 hint="re-run `diaspora-survey weight`") from None
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
            min_age=rc.min_age if min_age is None else min_age,
            max_age=(rc.max_age if max_age is None else max_age) or None,
            standardise=None if standardise == "none" else standardise, level=level)
        res = _disclose(res, df, proj, rc.min_age if min_age is None else min_age,
                        (rc.max_age if max_age is None else max_age) or None)
        cpath = claims if claims is not None else (proj.path(proj.compare.claims) if proj.compare.claims else None)
        verdicts = None
        if cpath is not None and (claims is not None or cpath.exists()):
            verdicts = evaluate_claims(res, load_claims(cpath))
        notes = res.attrs.get("notes", [])
        if as_csv:
            typer.echo(res.to_csv(index=False), nl=False)
            return
        if as_json:
            import json
            out = {"reference": res.attrs.get("reference"), "frame": res.attrs.get("frame"),
                   "notes": notes,
                   "rows": json.loads(res.to_json(orient="records", force_ascii=False, double_precision=15)),
                   "claims": None if verdicts is None else
                   json.loads(verdicts.to_json(orient="records", force_ascii=False, double_precision=15))}
            typer.echo(json.dumps(out, ensure_ascii=False, indent=1))
            return
        from ._console import console as make_console
        from rich.markup import escape
        from rich.table import Table

        from ..report.disclosure import strip_control

        console = make_console(soft_wrap=False)
        show = ["group", "indicator", "category", "adjustment", "estimate", "ci_low", "ci_high",
                "population", "difference", "ratio", "ratio_ci_low", "ratio_ci_high", "p_value",
                "n", "confidence"]
        missing: dict[tuple, str] = {}    # (indicator, adjustment) -> why no population value
        for (gb, g), part in res.groupby(["by", "group"], sort=False):
            t = Table(title=f"{'All respondents' if not gb else f'{gb} = {g}'} vs {res.attrs.get('reference')} "
                            f"({res.attrs.get('frame', {}).get('text', '')})")
            for c in show[1:]:
                t.add_column(c.replace("_", " "), justify="right" if c not in
                             ("indicator", "category", "adjustment", "confidence") else "left")
            for rec in part[show[1:] + ["statistic", "note", "suppressed"]].to_dict("records"):
                cells = {c: _fmt(rec[c]) for c in show[1:]}
                if rec["suppressed"]:
                    cells.update({c: "—" for c in ("estimate", "ci_low", "ci_high", "difference",
                                                   "ratio", "ratio_ci_low", "ratio_ci_high",
                                                   "p_value", "n")})
                if rec["adjustment"] == "rao-scott":
                    cells["estimate"] = f"X²={_fmt(rec['statistic'])}"
                elif rec["population"] != rec["population"]:      # NaN: a gap, no number
                    cells["population"] = "n/a *"
                    missing.setdefault((rec["indicator"], rec["adjustment"]), rec["note"])
                t.add_row(*[escape(strip_control(cells[c])) for c in show[1:]])
            console.print(t)
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
            for c in ("claim", "group", "test", "value", "ci_low", "ci_high", "verdict"):
                t.add_column(c.replace("_", " "))
            for r in verdicts.itertuples(index=False):
                t.add_row(*[escape(strip_control(str(x))) for x in (
                    r.claim, r.group, r.test, _fmt(r.value), _fmt(r.ci_low), _fmt(r.ci_high), r.verdict)])
            console.print(t)
            console.print("Claims are tested, not endorsed: see the attribution caveats in the claims file.")
