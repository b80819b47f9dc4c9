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

OUTPUT = "build/weighted.parquet"   # pipeline.WEIGHTED_OUTPUT (not imported: --help stays light)
INPUT = "build/harmonised.parquet"


def print_diagnostics(res, console, *, details: bool = False, layout: str = "auto") -> None:
    """Per wave: n, Kish n_eff, deff (1 + CV²), weight quantiles, iterations, convergence;
    the worst margin and the largest standardised mean difference; with ``details`` the
    full margin table (before / after / target) and the SMDs of the other covariates."""
    from rich.table import Table

    from ._console import print_table

    diag_rows = []
    worst, smds = [], []
    for wave, r in res.results.items():
        d = r.diagnostics
        s = d.summary
        m = d.margins
        if len(m):
            j = m["difference"].abs().idxmax()
            worst.append(f"  {wave}: {m.at[j, 'margin']}={m.at[j, 'category']} weighted share "
                         f"{m.at[j, 'weighted_share']:.4f} vs target {m.at[j, 'target_share']:.4f} "
                         f"(sample {m.at[j, 'sample_share']:.4f})")
        sm = d.smd
        if len(sm) and sm["smd"].notna().any():
            k = sm["smd"].abs().idxmax()
            lev = f"={sm.at[k, 'level']}" if sm.at[k, "level"] else ""
            smds.append(f"  {wave}: {sm.at[k, 'covariate']}{lev} {sm.at[k, 'mean_before']:.4g} -> "
                        f"{sm.at[k, 'mean_after']:.4g} (SMD {sm.at[k, 'smd']:+.3f})")
        diag_rows.append({"wave": str(wave), "n": f"{int(s['n']):,}", "n_eff": f"{s['n_eff']:,.0f}",
                          "deff": f"{s['kish_deff']:.2f}", "min": f"{s['min']:.3g}",
                          "p1": f"{s['p1']:.3g}", "median": f"{s['median']:.3g}",
                          "p99": f"{s['p99']:.3g}", "max": f"{s['max']:.3g}",
                          "max/min": f"{s['max_min_ratio']:.1f}", "iter": str(d.iterations),
                          "conv": "yes" if d.converged else "NO"})
    print_table(console, diag_rows,
                [(c, c, "left" if c == "wave" else "right") for c in
                 ("wave", "n", "n_eff", "deff", "min", "p1", "median", "p99", "max", "max/min",
                  "iter", "conv")],
                title=f"Weighting by wave ({res.method}; pooled: {res.pooling})", layout=layout)
    if worst:
        console.print("[bold]Largest margin difference per wave[/bold] (final weights, after trimming if any)")
        for line in worst:
            console.print(line, markup=False)
    if smds:
        console.print("[bold]Largest change of another covariate per wave[/bold] (weighted mean before -> "
                      "after, standardised mean difference)")
        for line in smds:
            console.print(line, markup=False)
    if details:
        for wave, r in res.results.items():
            d = r.diagnostics
            if len(d.margins):
                mt = Table(title=f"Margins, wave {wave}: shares before (sample, base weights) and after")
                for col in ("margin", "category", "n", "sample", "base", "weighted", "target", "diff"):
                    mt.add_column(col, justify="left" if col in ("margin", "category") else "right")
                for row in d.margins.itertuples(index=False):
                    mt.add_row(str(row.margin), str(row.category), str(row.n), f"{row.sample_share:.4f}",
                               f"{row.base_share:.4f}", f"{row.weighted_share:.4f}",
                               f"{row.target_share:.4f}", f"{row.difference:+.4f}")
                console.print(mt)
            if len(d.smd):
                st = Table(title=f"Other covariates, wave {wave}: weighted means before and after")
                for col in ("covariate", "level", "before", "after", "SMD"):
                    st.add_column(col, justify="left" if col in ("covariate", "level") else "right")
                for row in d.smd.itertuples(index=False):
                    st.add_row(str(row.covariate), str(row.level), f"{row.mean_before:.4g}",
                               f"{row.mean_after:.4g}", f"{row.smd:+.3f}")
                console.print(st)
    if res.decisions:
        from ..report.disclosure import mask_small_counts

        console.print("[bold]Decisions[/bold]")
        for note in res.decisions:
            console.print(f"  • {mask_small_counts(note)}", markup=False)


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
        no_rebuild: bool = typer.Option(False, "--no-rebuild",
                                        help="Use build/harmonised.parquet as it is, even when the raw "
                                             "files, codebooks or project file changed since."),
        layout: str = typer.Option("auto", "--layout",
                                   help="auto (a table when it fits, else one block per row), wide or long."),
        details: bool = typer.Option(False, "--details", "-d",
                                     help="Also print every margin (before/after/target) and the "
                                          "standardised mean differences of the other covariates."),
        engine: Optional[str] = typer.Option(None, "--engine",
                                             help="pandas (in memory), duckdb (out of core) or dask "
                                                  "(distributed); default: [data] engine of the project "
                                                  "file. duckdb/dask rake or post-stratify the harmonised "
                                                  "parquet without loading it (docs/scale.md)."),
    ) -> None:
        """Weight each wave to the targets (rake / poststratify / calibrate), trim, pool."""
        from ._console import console as make_console

        from ..errors import InputFileError
        from ..project import Project
        from ..weighting import weight_project

        if quiet and details:
            from ..errors import WeightingError

            raise WeightingError("--quiet and --details contradict each other", code="weighting.bad_option")
        proj = Project.load(project)
        if engine is not None:
            from ..io.engine import require_engine

            require_engine(engine)            # unknown or not installed: one message, exit 2
        engine = engine or proj.engine
        src = input if input is not None else proj.path(proj.harmonise_config.output)
        if output is not None:           # refused before any work: an input, raw/, a device
            from .._files import guard_output, note_input

            note_input(src)
            if targets is not None:
                note_input(targets)
            guard_output(output)
            from ..pipeline import check_parquet_name

            check_parquet_name(output, code="output.cannot_write")
        console = make_console()
        harmonised_from = "" if input is None else str(input)
        if input is None and not no_rebuild:
            from ..pipeline import stale_reason

            why = stale_reason(proj, "harmonise")
            if why and src.exists():
                console.print(f"harmonising again: {why}", markup=False)
            if why:
                src = Path("/nonexistent")       # harmonised now, below
        tp = None
        if targets is not None:
            tp = targets if targets.is_absolute() or targets.exists() else Path(proj.root) / targets
        if engine != "pandas":
            if not src.exists() and input is not None:
                raise InputFileError("file not found", code="input.not_found", where=str(input))
            if not src.exists():
                from ..pipeline import Pipeline

                pipe = Pipeline(proj.root)
                pipe.harmonise(write=True)
                src = proj.path(proj.harmonise_config.output)
                harmonised_from = proj.harmonise_config.output
            elif input is None:
                harmonised_from = proj.harmonise_config.output
            from ..pipeline import weight_in_engine

            res = weight_in_engine(proj, src, output, engine=engine, targets=tp,
                                   harmonised_from=harmonised_from,
                                   targets_from=None if tp is None else str(tp))
            if not quiet:
                _show(proj, res, console, details, layout)
            console.print(f"wrote {res.path} ({res.rows} rows; {engine} engine)")
            return
        if src.exists():
            from .._files import read_parquet_input

            data = read_parquet_input(src, hint="re-run `diaspora-survey harmonise`")
        elif input is not None:
            raise InputFileError("file not found", code="input.not_found", where=str(input))
        else:
            from ..pipeline import Pipeline

            pipe = Pipeline(proj.root)
            pipe.harmonise(write=True)       # written and recorded, as `diaspora-survey harmonise`
            data = pipe.data
        res = weight_project(proj, data, targets=tp)
        from ..pipeline import write_outputs

        paths = write_outputs(proj, res, output, harmonised_from=harmonised_from,
                              targets_from=None if tp is None else str(tp))
        if not quiet:
            _show(proj, res, console, details, layout)
        console.print(f"wrote {paths[0]} ({len(res.data)} rows)")


def _show(proj, res, console, details, layout) -> None:
    """The weighting diagnostics, after the synthetic-data banner of the example project."""
    if getattr(proj, "synthetic", False):
        console.print("[bold yellow]SYNTHETIC example data[/bold yellow]")
    print_diagnostics(res, console, details=details, layout=layout)
