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
        no_rebuild: bool = typer.Option(False, "--no-rebuild",
                                        help="Leave build/ as it is (the steps still run in memory)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the files written."),
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
        # the steps run in memory (the report needs their diagnostics); where build/ is
        # missing or out of date it is written again too, so that `compare` agrees
        from ..pipeline import stale_reason

        why_h = None if no_rebuild else stale_reason(pipe.project, "harmonise")
        why_w = None if no_rebuild else (why_h or stale_reason(pipe.project, "weight"))
        pipe.run_step("harmonise", lambda: pipe.harmonise(write=bool(why_h)))
        pipe.run_step("weight", lambda: pipe.weight(write=bool(why_w)))
        pipe.run_step("compare", pipe.compare)
        written = pipe.report(fmts, str(output) if output else None)
        if pipe.project.synthetic:
            console.print("[bold yellow]SYNTHETIC example data[/bold yellow]")
        if not quiet:
            for step, why in (("harmonise", why_h), ("weight", why_w)):
                if why:
                    console.print(f"build/: ran {step} again ({why})", markup=False)
        for p in written:
            console.print(f"wrote {p}")
