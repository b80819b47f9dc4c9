"""``diaspora-survey reference list`` and ``reference show NAME``: the packaged (and the
project's own) general-population tables with their sources, years and confidence."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _project_tables(project: Path, name: str):
    """The project's extra tables when NAME is its [reference] population (else none)."""
    toml = project / "diaspora-survey.toml"
    if not toml.exists():
        return None
    from ..project import Project

    proj = Project.load(project)
    if proj.reference.population != name or not proj.reference.tables:
        return None
    return [str(proj.path(t)) for t in proj.reference.tables]


def register(app: typer.Typer) -> None:
    ref_app = typer.Typer(name="reference", no_args_is_help=True, add_completion=False,
                          help="General-population reference tables (with sources).")
    app.add_typer(ref_app, name="reference")

    @ref_app.command("list")
    def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the packaged reference populations."""
        from ..compare import reference

        pops = [reference.load(n) for n in reference.list()]
        if as_json:
            import json
            typer.echo(json.dumps([{"name": p.name, "title": p.title, "geo": p.geo,
                                    "tables": [t.id for t in p.tables],
                                    "years": sorted({t.year for t in p.tables})} for p in pops],
                                  ensure_ascii=False, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title="Reference populations")
        for c in ("name", "title", "tables", "years"):
            t.add_column(c)
        for p in pops:
            t.add_row(p.name, p.title, str(len(p.tables)),
                      ", ".join(str(y) for y in sorted({x.year for x in p.tables})))
        Console(highlight=False).print(t)

    @ref_app.command("show")
    def show_cmd(
        name: str = typer.Argument(..., help="Population name (see `reference list`) or a population .yaml file."),
        table: Optional[str] = typer.Option(None, "--table", "-t", help="Show the rows of one table."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (tables with rows)."),
        project: Path = typer.Option(Path("."), "--project", "-p",
                                     help="Project folder: its [reference] tables are included."),
    ) -> None:
        """Show a population's tables: kind, year, universe, confidence and source."""
        from ..compare import reference

        pop = reference.load(name, tables=_project_tables(project, name))
        if as_json:
            import json
            d = pop.to_dict()
            if table:
                d["tables"] = [x for x in d["tables"] if x["id"] == pop.get(table).id]
            typer.echo(json.dumps(d, ensure_ascii=False, indent=2, default=str))
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = Console(highlight=False)
        if table:
            tb = pop.get(table)
            console.print(f"[bold]{tb.id}[/bold] ({tb.kind}, {tb.year}, confidence {tb.confidence})")
            console.print(f"{tb.title}\nuniverse: {tb.universe or '-'}; unit: {tb.unit}")
            console.print(f"source: {tb.source}")
            if tb.note:
                console.print(f"note: {tb.note}")
            rt = Table()
            df = tb.to_frame()
            for c in df.columns:
                rt.add_column(c)
            for rec in df.itertuples(index=False):
                rt.add_row(*["" if v is None or (isinstance(v, float) and v != v) else f"{v:g}"
                             if isinstance(v, float) else str(v) for v in rec])
            console.print(rt)
            return
        console.print(f"[bold]{pop.name}[/bold]: {pop.title}")
        if pop.description:
            console.print(pop.description)
        t = Table(title="Tables")
        for c in ("id", "kind", "year", "universe", "confidence", "origin"):
            t.add_column(c, overflow="fold")
        for x in pop.tables:
            t.add_row(x.id, x.kind, str(x.year), x.universe, x.confidence, x.origin)
        console.print(t)
        console.print("[bold]Sources[/bold]")
        for x in pop.tables:
            console.print(f"  {x.id}: {escape(x.source)}")
            if x.caveat:
                console.print(f"    [bold]caveat[/bold]: {escape(x.caveat)}")
        console.print("Several tables of a kind are vintages: `compare` uses the one nearest each "
                      "wave's fieldwork year (\\[reference] max_year_gap, see docs/indicators.md).")
        if pop.gaps:
            console.print("[bold]Gaps[/bold] (not available; nothing is invented — add the official "
                          "table, with rows by age band where it has them, to the project with "
                          "\\[reference] tables = \\[...]; same fields as `reference show russia --json`):")
            for g in pop.gaps:
                console.print(f"  - {g.get('indicator')}: {' '.join(str(g.get('text', '')).split())}")
