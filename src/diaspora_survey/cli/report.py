"""``diaspora-survey report``: render the project's report (PDF, xlsx, csv, md or tex)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        fmt: Optional[List[str]] = typer.Option(
            None, "--format", "-f", metavar="FORMAT",
            help="pdf, xlsx, csv, md or tex; repeat for several (default: [report] formats)."),
        output: Optional[Path] = typer.Option(
            None, "--output", "-o",
            help="Output file (default: [report] output, with the format's extension). "
                 "csv writes a folder <stem>_csv/ beside it; charts go to <stem>_charts/."),
        project: Path = typer.Option(Path("."), "--project", "-p",
                                     help="Project folder (with diaspora-survey.toml)."),
    ) -> None:
        """Harmonise, weight and compare in memory, then write the report.

        Every table passes disclosure control first ([report] min_cell_size, default 10
        unweighted respondents): smaller cells are shown as "—" with a footnote.
        """
        from ._console import console as make_console

        from ..pipeline import Pipeline

        console = make_console()
        pipe = Pipeline(project, command="diaspora-survey report " + " ".join(
            ([f"--format {f}" for f in fmt] if fmt else [])
            + ([f"-o {output}"] if output else [])).strip())
        if output is not None and fmt and len(fmt) > 1:
            from ..errors import ReportError

            raise ReportError("-o names one file, but several formats were asked for",
                              code="report.output", hint="give one --format with -o, or leave "
                              "-o out to use [report] output with each format's extension")
        fmts = pipe.formats(list(fmt) if fmt else None)
        pipe.report_targets(fmts, str(output) if output else None)   # refuse a bad -o before any work
        pipe.run_step("harmonise", lambda: pipe.harmonise(write=False))
        pipe.run_step("weight", lambda: pipe.weight(write=False))
        pipe.run_step("compare", pipe.compare)
        written = pipe.report(fmts, str(output) if output else None)
        if pipe.project.synthetic:
            console.print("[bold yellow]SYNTHETIC example data[/bold yellow]")
        for p in written:
            console.print(f"wrote {p}")
