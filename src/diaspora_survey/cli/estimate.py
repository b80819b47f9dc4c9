"""``diaspora-survey estimate``: design-based means, totals and proportions from the command line.

    diaspora-survey estimate data.parquet --mean age --proportion education --by wave \\
        --weights weight --strata region --psu cluster --json

Without DATA the project's ``build/weighted.parquet`` is used, else its harmonised data
(``[harmonise] output``, else the waves harmonised on the fly). Parquet files are read as
they are; CSV, SPSS and Stata files through ``read_wave``: declared user-missing codes
become missing values (never averaged in) and the ``--proportion``/``--by`` variables show
their value labels.
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


def _read_parquet(path: Path):
    import pandas as pd

    from ..errors import InputFileError

    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds
        raise InputFileError(f"cannot read parquet: {e}", code="input.unreadable", where=str(path),
                             hint="is it a complete parquet file?") from None


def _project_data(project: Path):
    """The project's data: build/weighted.parquet, else the harmonised parquet ([harmonise]
    output), else the waves harmonised now (as ``diaspora-survey weight`` does)."""
    from ..errors import InputFileError
    from ..project import FILENAME, Project

    root = project if project.is_dir() else project.parent
    if not (project / FILENAME).exists() and not (project.suffix == ".toml" and project.exists()):
        for name in ("build/weighted.parquet", "build/harmonised.parquet"):
            if (root / name).exists():
                return _read_parquet(root / name), root / name
        raise InputFileError("no data file given, and no project here (no diaspora-survey.toml, "
                             "build/weighted.parquet or build/harmonised.parquet)",
                             code="estimate.no_data", where=str(project),
                             hint="pass a data file: diaspora-survey estimate data.parquet --mean age, "
                                  "or run inside a project (--project DIR) after `diaspora-survey harmonise`")
    proj = Project.load(project)
    for p in (proj.path("build/weighted.parquet"), proj.path(proj.harmonise_config.output)):
        if p.exists():
            return _read_parquet(p), p
    return proj.harmonised(), Path(str(proj.root)) / "(waves harmonised now)"


def _from_wave(wave, categorical: set[str]):
    """A raw wave as analysis data: user-missing codes become NA (they must never be
    averaged in), and the variables used as categories (--proportion, --by) show their
    value labels instead of raw codes."""
    import pandas as pd

    df = wave.data.copy(deep=False)
    for col, meta in (wave.meta or {}).items():
        if col not in df.columns:
            continue
        if meta.missing_values or meta.missing_ranges:
            miss = meta.is_user_missing(df[col])
            if miss.any():
                df[col] = df[col].mask(miss)
        if col in categorical and meta.value_labels:
            s = df[col]
            codes = sorted(meta.value_labels, key=lambda k: (str(type(k)), k))
            labels = [str(meta.value_labels[k]) for k in codes]
            if len(set(labels)) == len(labels):
                # unlabelled codes keep their value as label
                extra = sorted(set(s.dropna().unique()) - set(codes), key=lambda k: (str(type(k)), k))
                mapping = {k: str(meta.value_labels[k]) for k in codes}
                mapping.update({k: str(k) for k in extra})
                cats = list(dict.fromkeys(list(mapping.values())))
                df[col] = pd.Categorical(s.map(mapping), categories=cats)
    return df


def _read(data: Optional[Path], project: Path, categorical: set[str]):
    from ..errors import InputFileError

    if data is None:
        return _project_data(project)
    if not data.exists():
        raise InputFileError("file not found", code="input.not_found", where=str(data),
                             hint="check the path")
    suffix = data.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(data), data
    from ..io import read_wave

    return _from_wave(read_wave(data), categorical), data


def register(app: typer.Typer) -> None:
    @app.command("estimate")
    def estimate_cmd(
        data: Optional[Path] = typer.Argument(None, help="Data file (.parquet, .csv, .sav). Default: the "
                                                         "project's build/weighted.parquet or harmonised.parquet."),
        mean: Optional[List[str]] = typer.Option(None, "--mean", help="Variable(s) for weighted means."),
        total: Optional[List[str]] = typer.Option(None, "--total", help="Variable(s) for estimated totals."),
        proportion: Optional[List[str]] = typer.Option(None, "--proportion",
                                                       help="Categorical variable(s): share of every level."),
        by: Optional[List[str]] = typer.Option(None, "--by", help="Categorical grouping variable(s) (repeat or "
                                                         "comma-separate); not identifiers, at most 60 distinct values."),
        weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Weight column."),
        strata: Optional[str] = typer.Option(None, "--strata", help="Strata column."),
        psu: Optional[List[str]] = typer.Option(None, "--psu", help="Cluster column(s), one per stage."),
        fpc: Optional[List[str]] = typer.Option(None, "--fpc", help="FPC column(s): population sizes or fractions."),
        nest: bool = typer.Option(False, "--nest", help="PSU ids are unique only within strata."),
        lonely_psu: str = typer.Option("fail", "--lonely-psu",
                                       help="Single-PSU strata: fail, remove, adjust, average, certainty."),
        deff: bool = typer.Option(False, "--deff", help="Add design effects (vs SRS without replacement, "
                                                         "as R's deff=TRUE; needs weights scaled to the population)."),
        deff_replace: bool = typer.Option(False, "--deff-replace",
                                          help="Add design effects vs SRS with replacement (R's deff='replace'; "
                                               "for weights scaled to the sample size)."),
        level: float = typer.Option(0.95, "--level", help="Confidence level."),
        normal: bool = typer.Option(False, "--normal", help="Normal (not t) intervals."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON records."),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
        project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder (when DATA is omitted)."),
    ) -> None:
        """Design-based estimates with SEs and confidence intervals (Taylor linearisation, as R survey)."""
        import numpy as np
        import pandas as pd

        from ..survey.design import SurveyDesign
        from ..errors import EstimationError

        if as_json and as_csv:
            raise EstimationError("choose one of --json and --csv", code="cli.conflicting_options")
        means, totals, props = _split(mean), _split(total), _split(proportion)
        if not (means or totals or props):
            raise EstimationError("nothing to estimate", code="cli.nothing_to_do",
                                  hint="add --mean VAR, --total VAR or --proportion VAR")
        byv = _split(by) or None
        df, source = _read(data, project, set(props) | set(byv or []))
        from ..report.disclosure import (MIN_CELL_SIZE_FLOOR, check_estimand, check_grouping,
                                         proportion_cell_counts, suppress_estimates)

        check_grouping(df, byv, str(source))
        check_estimand(df, means + totals + props, str(source))
        k = MIN_CELL_SIZE_FLOOR
        if data is None:
            try:
                from ..project import Project

                k = max(k, Project.load(project).report.min_cell_size)
            except Exception:  # noqa: BLE001 - no project: the default minimum
                pass
        note = None
        if weights is None and data is None and "weight" in df.columns:
            weights, note = "weight", "using weights column 'weight' of the project data"
        design = SurveyDesign(df, weights=weights, strata=strata, psu=_split(psu) or None,
                              fpc=_split(fpc) or None, nest=nest, lonely_psu=lonely_psu)
        if deff and deff_replace:
            raise EstimationError("choose one of --deff and --deff-replace", code="cli.conflicting_options")
        kw = dict(level=level, df=float("inf") if normal else None,
                  deff="replace" if deff_replace else bool(deff))
        parts = []
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for v in means:
                parts.append(design.mean(v, by=byv, **kw).assign(statistic="mean"))
            for v in totals:
                parts.append(design.total(v, by=byv, **kw).assign(statistic="total"))
            for v in props:
                parts.append(design.proportion(v, by=byv, **kw).assign(statistic="proportion"))
        notes = list(dict.fromkeys(str(w.message) for w in caught))
        if weights is None:
            notes.insert(0, "no --weights given: every row has weight 1 (unweighted estimates)"
                            + ("; `diaspora-survey weight` makes the project's weights" if data is None else ""))
        res = pd.concat(parts, ignore_index=True)
        lead = ["statistic"] + (byv or []) + ["variable"] + (["level"] if "level" in res.columns else [])
        res = res[lead + [c for c in res.columns if c not in lead]]
        # disclosure control: the report's minimum cell size on every output (table, csv, json)
        res = res.assign(n_cell=proportion_cell_counts(df, res, byv))
        res = suppress_estimates(res, min_cell_size=k, cell_col="n_cell",
                                 group_cols=["statistic", "variable"] + (byv or []))
        if res["suppressed"].any():
            notes.append(f"{int(res['suppressed'].sum())} row(s) suppressed (—): fewer than {k} "
                         "unweighted respondents in the cell, or a complement of one "
                         "(disclosure control)")
        res = res.drop(columns=["n_cell"])
        if notes and (as_json or as_csv):
            from rich.console import Console as _C

            for msg in notes:
                _C(stderr=True, highlight=False).print(f"note: {msg}", markup=False)
        if as_json:
            typer.echo(res.to_json(orient="records", force_ascii=False, double_precision=15))
            return
        if as_csv:
            typer.echo(res.to_csv(index=False), nl=False)
            return
        from ._console import console as make_console
        from rich.table import Table

        console = make_console(soft_wrap=False)
        title = (f"Estimates from {source} ({design.n:,} rows, design df {design.degf}"
                 + ("" if weights else ", unweighted") + ")")
        table = Table(title=title)
        shown = [c for c in res.columns if (c != "df" or res["df"].nunique() > 1)
                 and c != "suppressed" and (c != "suppression" or res["suppressed"].any())]
        for c in shown:
            table.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(res[c]) else "left",
                             no_wrap=True)

        from ..report.disclosure import strip_control

        def fmt(x):
            if x is None or (isinstance(x, float) and np.isnan(x)):
                return ""
            if isinstance(x, (float, np.floating)):
                return f"{x:,.6g}"
            return strip_control(str(x))

        for row, hidden in zip(res[shown].itertuples(index=False), res["suppressed"]):
            table.add_row(*[("—" if hidden and c not in lead and c != "suppression" else fmt(x))
                            for c, x in zip(shown, row)])
        console.print(table)
        for msg in ([note] if note else []) + notes:
            console.print(msg, markup=False)
