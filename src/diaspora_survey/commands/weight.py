"""``diaspora-survey weight``: weight every wave to the project's targets and pool them.

    diaspora-survey weight                       # targets from diaspora-survey.toml [weighting]
    diaspora-survey weight --targets codebooks/targets.yaml

Reads ``build/harmonised.parquet`` (or harmonises the project when it is absent),
writes ``build/weighted.parquet`` atomically with the columns ``weight_base``, the step
columns, ``weight`` (within wave) and ``weight_pooled``, and prints the diagnostics per
wave (effective n, Kish deff, weight range, iterations, the worst margin) and every
decision taken (restricted targets, rows kept at their base weight, trimming).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

OUTPUT = "build/weighted.parquet"
INPUT = "build/harmonised.parquet"


def write_outputs(project, res, output: str | Path | None = None) -> list[Path]:
    """Write the weighted data (atomically); returns the paths written."""
    from .._util import atomic_path

    out = Path(output) if output is not None else Path(project.root) / OUTPUT
    with atomic_path(out) as tmp:
        res.data.to_parquet(tmp, index=False)
    return [out]


def print_diagnostics(res, console) -> None:
    from rich.table import Table

    tab = Table(title=f"Weighting by wave ({res.method}; pooled: {res.pooling})", show_lines=False)
    for col, just in (("wave", "left"), ("n", "right"), ("n_eff", "right"), ("deff", "right"),
                      ("min", "right"), ("median", "right"), ("max", "right"), ("max/min", "right"),
                      ("iter", "right"), ("conv", "center")):
        tab.add_column(col, justify=just)
    worst = []
    for wave, r in res.results.items():
        d = r.diagnostics
        s = d.summary
        m = d.margins
        if len(m):
            j = m["difference"].abs().idxmax()
            worst.append(f"  {wave}: {m.at[j, 'margin']}={m.at[j, 'category']} weighted share "
                         f"{m.at[j, 'weighted_share']:.4f} vs target {m.at[j, 'target_share']:.4f}")
        tab.add_row(str(wave), f"{int(s['n'])}", f"{s['n_eff']:.0f}", f"{s['kish_deff']:.2f}",
                    f"{s['min']:.3g}", f"{s['median']:.3g}", f"{s['max']:.3g}", f"{s['max_min_ratio']:.1f}",
                    str(d.iterations), "yes" if d.converged else "[red]NO[/red]")
    console.print(tab)
    if worst:
        console.print("[bold]Largest margin difference per wave[/bold] (after trimming, if any)")
        for line in worst:
            console.print(line, markup=False)
    if res.decisions:
        console.print("[bold]Decisions[/bold]")
        for note in res.decisions:
            console.print(f"  • {note}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("weight")
    def weight_cmd(
        targets: Optional[Path] = typer.Option(None, "--targets", "-t",
                                               help="Targets YAML (default: [weighting] targets of the project)."),
        project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder (with diaspora-survey.toml)."),
        input: Optional[Path] = typer.Option(None, "--input", "-i",
                                             help=f"Harmonised data (default: {INPUT}; harmonised on the fly if absent)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help=f"Output parquet (default: {OUTPUT})."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the diagnostics."),
    ) -> None:
        """Weight each wave to the targets (rake / poststratify / calibrate), trim, pool."""
        import pandas as pd
        from rich.console import Console

        from ..errors import InputFileError
        from ..project import Project
        from ..weighting import weight_project

        proj = Project.load(project)
        src = input if input is not None else Path(proj.root) / INPUT
        if src.exists():
            try:
                data = pd.read_parquet(src)
            except Exception as e:  # pyarrow raises several kinds
                raise InputFileError(f"cannot read parquet: {e}", code="input.unreadable", where=str(src),
                                     hint="re-run `diaspora-survey harmonise`") from None
        elif input is not None:
            raise InputFileError("file not found", code="input.not_found", where=str(input))
        else:
            data = proj.harmonised()
        tp = None
        if targets is not None:
            tp = targets if targets.is_absolute() or targets.exists() else Path(proj.root) / targets
        res = weight_project(proj, data, targets=tp)
        paths = write_outputs(proj, res, output)
        console = Console(highlight=False, soft_wrap=True)
        if not quiet:
            if getattr(proj, "synthetic", False):
                console.print("[bold yellow]SYNTHETIC example data[/bold yellow]")
            print_diagnostics(res, console)
        console.print(f"wrote {paths[0]} ({len(res.data)} rows)")
