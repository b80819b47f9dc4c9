"""``diaspora-survey harmonise``: harmonise all waves of the project into build/harmonised.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def print_summary(result, console, *, layout: str = "auto") -> None:
    """Table per wave and variable: n, missing, unmapped (and out of range), then the issues."""
    from rich.markup import escape

    from ._console import print_table

    rows = [{"wave": str(r.wave), "variable": r.variable, "n": f"{r.n:,}", "missing": f"{r.missing:,}",
             "unmapped": f"{r.unmapped:,}", "out_of_range": f"{r.out_of_range:,}"}
            for r in result.summary.itertuples(index=False)]
    print_table(console, rows, [("wave", "wave", "left"), ("variable", "variable", "left"),
                                ("n", "n", "right"), ("missing", "missing", "right"),
                                ("unmapped", "unmapped", "right"),
                                ("out_of_range", "out of range", "right")],
                title="Harmonisation summary", layout=layout, keys=2)
    for wid, h in result.waves.items():
        console.print(f"wave {wid}: {h.rows:,} harmonised, {len(h.exclusions):,} excluded"
                      + escape(f" ({', '.join(f'{k}: {v}' for k, v in h.exclusions['reason'].value_counts().items())})"
                               if len(h.exclusions) else ""))
    for note in getattr(result, "notes", None) or []:
        console.print(escape(note))
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
        chunk_rows: Optional[int] = typer.Option(
            None, "--chunk-rows", min=1, metavar="N",
            help="Harmonise N rows at a time, each chunk written as a parquet row group (waves larger "
                 "than memory; default: [data] chunk_rows of the project file, else the whole wave)."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="Do not print the summary table and the issues."),
        layout: str = typer.Option("auto", "--layout",
                                   help="auto (a table when it fits, else one block per row), wide or long."),
    ) -> None:
        """Harmonise every wave with its codebook; write build/harmonised.parquet and build/exclusions.parquet and print n, missing and unmapped per wave and variable.

        With --chunk-rows N (or [data] chunk_rows) the waves are read and harmonised N rows at a
        time and written chunk by chunk: the same files, for waves larger than memory."""
        from ._console import console as make_console

        from ..pipeline import write_harmonised
        from ..project import Project

        console = make_console(soft_wrap=False)
        from .._files import guard_output

        proj = Project.load(project)
        out = Path(output) if output else proj.path(proj.harmonise_config.output)
        if not out.is_absolute():
            out = Path.cwd() / out
        excl_path = out.with_name("exclusions.parquet") if out.name != "exclusions.parquet" else \
            out.with_name("exclusions_table.parquet")
        from ..pipeline import check_parquet_name

        for p in (out, excl_path):   # refused before any work: inputs, raw/, devices
            guard_output(p, code="harmonise.cannot_write")
        check_parquet_name(out)
        proj.require_waves()
        result = write_harmonised(proj, out, excl_path, strict=strict, chunk_rows=chunk_rows)
        from ..pipeline import _is_default, record_step

        if _is_default(proj, out, proj.harmonise_config.output):
            record_step(proj, "harmonise", [out, excl_path])
        if proj.synthetic:
            console.print("[bold yellow]SYNTHETIC example data[/bold yellow]")
        if not quiet:
            print_summary(result, console, layout=layout)
        console.print(f"wrote {_rel(out)} ({result.n_rows:,} rows × {result.n_columns} columns) "
                      f"and {_rel(excl_path)} ({len(result.exclusions):,} rows)")
        n_unmapped = result.unmapped
        if n_unmapped:
            console.print(f"[red]{n_unmapped:,} value(s) not mapped[/red] — kept as NA and listed above; "
                          "use --strict to make this an error")
