"""``diaspora-survey harmonise``: harmonise all waves of the project into build/harmonised.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def print_summary(result, console) -> None:
    """Table per wave and variable: n, missing, unmapped (and out of range), then the issues."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Harmonisation summary", show_lines=False)
    for col, just in (("wave", "left"), ("variable", "left"), ("n", "right"), ("missing", "right"),
                      ("unmapped", "right"), ("out of range", "right")):
        table.add_column(col, justify=just)
    last = None
    for r in result.summary.itertuples(index=False):
        table.add_row(str(r.wave) if r.wave != last else "", r.variable, f"{r.n:,}", f"{r.missing:,}",
                      f"[red]{r.unmapped:,}[/red]" if r.unmapped else "0",
                      f"[yellow]{r.out_of_range:,}[/yellow]" if r.out_of_range else "0")
        last = r.wave
    console.print(table)
    for wid, h in result.waves.items():
        console.print(f"wave {wid}: {len(h.data):,} harmonised, {len(h.exclusions):,} excluded"
                      + escape(f" ({', '.join(f'{k}: {v}' for k, v in h.exclusions['reason'].value_counts().items())})"
                               if len(h.exclusions) else ""))
    if result.issues:
        console.print("[bold]Issues[/bold]")
        for i in result.issues:
            colour = "red" if i.kind in ("unmapped", "unparsed") else "yellow"
            from ..report.disclosure import strip_control

            text = escape(strip_control(f"[{i.wave}] {i.variable}: {i.message}"
                                        + (f"  ({i.where})" if i.where else "")))
            console.print(f"  [{colour}]{i.kind}[/{colour}] {text}", markup=True, highlight=False, soft_wrap=True)


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def register(app: typer.Typer) -> None:
    @app.command("harmonise")
    def harmonise_cmd(
        project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder (with diaspora-survey.toml)."),
        strict: Optional[bool] = typer.Option(None, "--strict/--no-strict",
                                              help="Unmapped codes are errors (default: strict in the "
                                                   "harmonise section of the project file)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o",
                                              help="Parquet file to write (default: build/harmonised.parquet; "
                                                   "exclusions.parquet is written beside it)."),
    ) -> None:
        """Harmonise every wave with its codebook; write build/harmonised.parquet and build/exclusions.parquet and print n, missing and unmapped per wave and variable."""
        from ._console import console as make_console

        from ..pipeline import write_parquet
        from ..project import Project

        console = make_console(soft_wrap=False)
        proj = Project.load(project)
        result = proj.harmonise_all(strict=strict)
        out = Path(output) if output else proj.path(proj.harmonise_config.output)
        if not out.is_absolute():
            out = Path.cwd() / out
        excl_path = out.with_name("exclusions.parquet") if out.name != "exclusions.parquet" else \
            out.with_name("exclusions_table.parquet")
        excl = result.exclusions.copy()
        excl["wave"] = excl["wave"].astype("string")
        write_parquet(result.data, out, (excl, excl_path))
        if proj.synthetic:
            console.print("[bold yellow]SYNTHETIC example data[/bold yellow]")
        print_summary(result, console)
        console.print(f"wrote {_rel(out)} ({len(result.data):,} rows × {result.data.shape[1]} columns) "
                      f"and {_rel(excl_path)} ({len(result.exclusions):,} rows)")
        n_unmapped = result.unmapped
        if n_unmapped:
            console.print(f"[red]{n_unmapped:,} value(s) not mapped[/red] — kept as NA and listed above; "
                          "use --strict to make this an error")
