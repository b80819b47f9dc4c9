"""``diaspora-survey run``: the whole project in one command — harmonise → weight →
compare → report — with a progress display; prints where the outputs are."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        project: Path = typer.Option(Path("."), "--project", "-p",
                                     help="Project folder (with diaspora-survey.toml)."),
        fmt: Optional[List[str]] = typer.Option(
            None, "--format", "-f", metavar="FORMAT",
            help="pdf, xlsx, csv, md or tex; repeat for several (default: [report] formats)."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="Only the steps and the report's path (no summary tables)."),
        layout: str = typer.Option("auto", "--layout",
                                   help="auto (a table when it fits, else one block per row), wide or long."),
    ) -> None:
        """Run every step of the project file end to end.

        Prints the harmonisation summary (n, missing, unmapped per wave and variable) and
        the weighting diagnostics per wave. A failing step stops the run with its message
        (exit status 2) before any report file is written.
        """
        import time

        from ._console import console as make_console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from ..errors import DiasporaSurveyError
        from ..pipeline import Pipeline
        from .harmonise import print_summary
        from .weight import print_diagnostics

        console = make_console()
        t0 = time.perf_counter()
        pipe = Pipeline(project, command="diaspora-survey run" + "".join(
            f" --format {f}" for f in (fmt or [])))
        fmts = pipe.formats(list(fmt) if fmt else None)     # reject bad formats up front
        pipe.report_targets(fmts)                           # and outputs over inputs
        if pipe.project.synthetic:
            console.print("[bold yellow]SYNTHETIC example data[/bold yellow] — "
                          f"{pipe.project.title}")
        steps = [
            ("harmonise", "Harmonising waves", pipe.harmonise),
            ("weight", "Weighting", pipe.weight),
            ("panel", "Linking the panel", pipe.panel),
            ("compare", "Comparing with the population", pipe.compare),
            ("report", "Writing the report",
             lambda: pipe.report(fmts)),
        ]
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            for name, label, fn in steps:
                task = progress.add_task(label, total=None)
                try:
                    res = pipe.run_step(name, fn)
                except DiasporaSurveyError:
                    progress.stop()
                    console.print(f"[red]✗ {name}[/red] failed; nothing was reported "
                                  "(the previous report, if any, is unchanged).")
                    raise
                progress.remove_task(task)
                outs = ", ".join(_rel(p) for p in res.outputs[:3])
                more = f" (+{len(res.outputs) - 3} more)" if len(res.outputs) > 3 else ""
                console.print(f"[green]✓[/green] {name:<10} {res.seconds:5.1f} s"
                              + (f"  → {outs}{more}" if outs else ""))
                if quiet:
                    continue
                if name == "harmonise":
                    print_summary(pipe.harmonised, console, layout=layout)
                elif name == "weight":
                    print_diagnostics(pipe.weighted, console, layout=layout)
        reports = next((r.outputs for r in pipe.results if r.name == "report"), [])
        console.print(f"Done in {time.perf_counter() - t0:.1f} s.")
        if reports:
            console.print("Report: " + _rel(reports[0]))


def _rel(p) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
