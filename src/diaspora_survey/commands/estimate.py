"""``diaspora-survey estimate``: design-based means, totals and proportions from the command line.

    diaspora-survey estimate data.parquet --mean age --proportion education --by wave \\
        --weights weight --strata region --psu cluster --json

Without DATA the project's ``build/weighted.parquet`` (else ``build/harmonised.parquet``)
is used. Parquet, CSV and SPSS (.sav/.zsav) files are read; SPSS files give raw codes.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _split(values: Optional[List[str]]) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _read(data: Optional[Path], project: Path):
    import pandas as pd

    from ..errors import InputFileError

    if data is None:
        for name in ("build/weighted.parquet", "build/harmonised.parquet"):
            p = project / name
            if p.exists():
                return pd.read_parquet(p), p
        raise InputFileError("no data file given and the project has no build/weighted.parquet or "
                             "build/harmonised.parquet", code="estimate.no_data", where=str(project),
                             hint="run `diaspora-survey harmonise` (and `diaspora-survey weight`) first, "
                                  "or pass a data file: diaspora-survey estimate data.parquet --mean age")
    if not data.exists():
        raise InputFileError("file not found", code="input.not_found", where=str(data),
                             hint="check the path")
    suffix = data.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(data), data
        except Exception as e:  # pyarrow raises several kinds
            raise InputFileError(f"cannot read parquet: {e}", code="input.unreadable", where=str(data),
                                 hint="is it a complete parquet file?") from None
    try:
        from ..io import read_wave
    except ImportError:  # pragma: no cover - io package absent
        read_wave = None
    if read_wave is not None:
        return read_wave(data).data, data
    if suffix == ".csv":  # pragma: no cover
        return pd.read_csv(data), data
    raise InputFileError(f"unsupported file type {suffix!r}", code="input.unsupported", where=str(data),
                         hint="use .parquet, .csv or .sav")


def register(app: typer.Typer) -> None:
    @app.command("estimate")
    def estimate_cmd(
        data: Optional[Path] = typer.Argument(None, help="Data file (.parquet, .csv, .sav). Default: the "
                                                         "project's build/weighted.parquet or harmonised.parquet."),
        mean: Optional[List[str]] = typer.Option(None, "--mean", help="Variable(s) for weighted means."),
        total: Optional[List[str]] = typer.Option(None, "--total", help="Variable(s) for estimated totals."),
        proportion: Optional[List[str]] = typer.Option(None, "--proportion",
                                                       help="Categorical variable(s): share of every level."),
        by: Optional[List[str]] = typer.Option(None, "--by", help="Grouping variable(s) (repeat or comma-separate)."),
        weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Weight column."),
        strata: Optional[str] = typer.Option(None, "--strata", help="Strata column."),
        psu: Optional[List[str]] = typer.Option(None, "--psu", help="Cluster column(s), one per stage."),
        fpc: Optional[List[str]] = typer.Option(None, "--fpc", help="FPC column(s): population sizes or fractions."),
        nest: bool = typer.Option(False, "--nest", help="PSU ids are unique only within strata."),
        lonely_psu: str = typer.Option("fail", "--lonely-psu",
                                       help="Single-PSU strata: fail, remove, adjust, average, certainty."),
        deff: bool = typer.Option(False, "--deff", help="Add design effects."),
        level: float = typer.Option(0.95, "--level", help="Confidence level."),
        normal: bool = typer.Option(False, "--normal", help="Normal (not t) intervals."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON records."),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
        project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder (when DATA is omitted)."),
    ) -> None:
        """Design-based estimates with SEs and confidence intervals (Taylor linearisation, as R survey)."""
        import pandas as pd

        from ..design import SurveyDesign
        from ..errors import EstimationError

        if as_json and as_csv:
            raise EstimationError("choose one of --json and --csv", code="cli.conflicting_options")
        means, totals, props = _split(mean), _split(total), _split(proportion)
        if not (means or totals or props):
            raise EstimationError("nothing to estimate", code="cli.nothing_to_do",
                                  hint="add --mean VAR, --total VAR or --proportion VAR")
        df, source = _read(data, project)
        note = None
        if weights is None and data is None and "weight" in df.columns:
            weights, note = "weight", "using weights column 'weight' of the project data"
        design = SurveyDesign(df, weights=weights, strata=strata, psu=_split(psu) or None,
                              fpc=_split(fpc) or None, nest=nest, lonely_psu=lonely_psu)
        byv = _split(by) or None
        kw = dict(level=level, df=float("inf") if normal else None)
        parts = []
        for v in means:
            parts.append(design.mean(v, by=byv, deff=deff, **kw).assign(statistic="mean"))
        for v in totals:
            parts.append(design.total(v, by=byv, deff=deff, **kw).assign(statistic="total"))
        for v in props:
            parts.append(design.proportion(v, by=byv, deff=deff, **kw).assign(statistic="proportion"))
        res = pd.concat(parts, ignore_index=True)
        lead = ["statistic"] + (byv or []) + ["variable"] + (["level"] if "level" in res.columns else [])
        res = res[lead + [c for c in res.columns if c not in lead]]
        if as_json:
            typer.echo(res.to_json(orient="records", force_ascii=False, double_precision=15))
            return
        if as_csv:
            typer.echo(res.to_csv(index=False), nl=False)
            return
        from rich.console import Console
        from rich.table import Table

        console = Console(highlight=False)
        table = Table(title=f"Estimates from {source} ({design.n:,} rows, df {design.degf})")
        for c in res.columns:
            table.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(res[c]) else "left")
        for row in res.itertuples(index=False):
            table.add_row(*[(f"{x:,.4g}" if isinstance(x, float) else ("" if x is None else str(x)))
                            for x in row])
        console.print(table)
        if note:
            console.print(note)
