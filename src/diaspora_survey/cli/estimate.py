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
    from .._files import read_parquet_input

    return read_parquet_input(path, hint="is it a complete parquet file?")


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
    from ..pipeline import read_manifest, stale_reason

    recorded = read_manifest(proj).get("steps", {})
    for step, p in (("weight", proj.path("build/weighted.parquet")),
                    ("harmonise", proj.path(proj.harmonise_config.output))):
        if p.exists():
            why = stale_reason(proj, step) if step in recorded else None
            if why:     # said, not silently used (compare and report would make it again)
                from ._console import console as _c

                _c(stderr=True).print(f"note: {p.name} may be out of date ({why}); "
                                      "`diaspora-survey compare` or `weight` makes it again",
                                      markup=False)
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


def _proportion_intervals(res, method: str, level: float):
    """Logit intervals for the proportion rows (``ci_method`` column says which):
    expit(logit(p) ± t·se / (p(1 − p))), t with the row's df — R's
    ``svyciprop(method = "logit")``; a level without respondents (p = 0, se = 0) gets no
    interval. ``method="mean"`` keeps the Wald interval of svymean."""
    import numpy as np
    from scipy import stats

    res = res.copy()
    prop = (res["statistic"] == "proportion").to_numpy()
    res["ci_method"] = np.where(prop, method if method == "logit" else "mean", "mean")
    p = res["estimate"].to_numpy(dtype=float)
    se = res["se"].to_numpy(dtype=float)
    empty = prop & (p == 0) & (se == 0)
    if method == "logit" and prop.any():
        dfv = res["df"].to_numpy(dtype=float) if "df" in res.columns else np.full(len(res), np.inf)
        t = stats.t.ppf(1 - (1 - level) / 2, dfv)
        with np.errstate(divide="ignore", invalid="ignore"):
            mid = np.log(p / (1 - p))
            half = t * se / (p * (1 - p))
            lo = 1 / (1 + np.exp(-(mid - half)))
            hi = 1 / (1 + np.exp(-(mid + half)))
        ok = prop & (p > 0) & (p < 1)
        res.loc[ok, "ci_low"] = lo[ok]
        res.loc[ok, "ci_high"] = hi[ok]
    res.loc[empty, ["ci_low", "ci_high"]] = np.nan
    res["empty"] = empty
    return res


def print_estimates(console, res, lead: list[str], *, title: str, layout: str = "auto") -> None:
    """The estimates as a table (see :func:`._console.print_table`): per statistic and
    variable the estimate's digits, the CI as "low to high", empty levels marked."""
    from ._console import decimals_for, fmt_num, print_table

    rows = []
    groups = res.groupby(["statistic", "variable"], sort=False).groups
    dec = {}
    for key, idx in groups.items():
        d = decimals_for(res.loc[idx, "estimate"].tolist())
        dec[key] = 3 if key[0] == "proportion" else d
    extra = [c for c in ("deff", "df") if c in res.columns and (c != "df" or res["df"].nunique() > 1)]
    for rec in res.to_dict("records"):
        d = dec[(rec["statistic"], rec["variable"])]
        r = {c: "" if rec.get(c) is None or rec.get(c) != rec.get(c) else str(rec[c]) for c in lead}
        if rec.get("empty"):
            r.update(estimate="— (no respondents)", se="", ci="", n=fmt_num(rec.get("n"), 0),
                     cv="")
        else:
            lo, hi = fmt_num(rec.get("ci_low"), d), fmt_num(rec.get("ci_high"), d)
            r.update(estimate=fmt_num(rec.get("estimate"), d), se=fmt_num(rec.get("se"), d + 1),
                     ci=f"{lo} to {hi}" if lo and hi else "", n=fmt_num(rec.get("n"), 0),
                     cv=fmt_num(rec.get("cv"), 3))
        for c in extra:
            r[c] = fmt_num(rec.get(c), 2 if c == "deff" else 0)
        if rec.get("suppressed"):          # disclosure control: fewer than the minimum
            r.update({c: "—" for c in ("estimate", "se", "ci", "n", "cv", *extra)})
            r["suppression"] = str(rec.get("suppression") or "")
        rows.append(r)
    level = "95%"
    cols = [(c, c.replace("_", " "), "left") for c in lead]
    cols += [("estimate", "estimate", "right"), ("se", "SE", "right"),
             ("ci", f"{level} CI", "right"), ("n", "n", "right"), ("cv", "CV", "right")]
    cols += [(c, c, "right") for c in extra]
    cols += [("suppression", "suppressed", "left")]
    print_table(console, rows, cols, title=title, layout=layout, keys=len(lead))


def _engine(option: Optional[str], project: Path) -> str:
    """--engine, else the project's [data] engine, else pandas; unknown / not installed: an error."""
    from ..io.engine import require_engine
    from ..project import FILENAME

    if option is not None:
        require_engine(option)
        return option
    if (project / FILENAME).exists() or (project.suffix == ".toml" and project.is_file()):
        from ..project import Project

        eng = Project.load(project).engine
        if eng != "pandas":
            require_engine(eng)
        return eng
    return "pandas"


def _engine_source(data: Optional[Path], project: Path) -> Path:
    """The parquet file an engine reads: DATA, else the project's weighted (or harmonised) parquet."""
    from ..errors import EngineError, InputFileError

    if data is not None:
        if data.suffix.lower() not in (".parquet", ".pq") and not data.is_dir():
            raise EngineError("the duckdb and dask engines read parquet files", code="engine.unsupported",
                              where=str(data),
                              hint="convert the file to parquet (`diaspora-survey harmonise`), or use "
                                   "--engine pandas")
        return data
    root = project if project.is_dir() else project.parent
    for name in ("build/weighted.parquet", "build/harmonised.parquet"):
        if (root / name).exists():
            return root / name
    raise InputFileError("no data file given and no build/weighted.parquet or build/harmonised.parquet",
                         code="estimate.no_data", where=str(root),
                         hint="run `diaspora-survey weight` first, or pass a parquet file")


def _engine_checks(src, by, variables, where: str) -> None:
    """The disclosure checks of the in-memory path, in the engine: no identifier estimated or
    grouped by, no grouping with more than MAX_GROUPS levels."""
    from ..errors import EstimationError
    from ..report.disclosure import IDENTIFIER_NAMES, MAX_GROUPS

    src.check_columns(list(by or []) + list(variables), "estimate")
    for v in list(variables) + list(by or []):
        if IDENTIFIER_NAMES.match(str(v)):
            raise EstimationError(f"{v!r} identifies respondents; it cannot be estimated or grouped by",
                                  code="disclosure.identifier", where=where,
                                  hint="use a survey variable (age, education …)")
    for b in by or []:
        k = len(src.group_sums([b], {"n": 1}))
        if k > MAX_GROUPS:
            raise EstimationError(f"cannot group by {b!r}: {k} distinct values", code="disclosure.bad_by",
                                  where=where, hint=f"group by a variable with at most {MAX_GROUPS} values")


def _engine_cell_counts(src, res, by):
    """:func:`~diaspora_survey.report.disclosure.proportion_cell_counts` with the counts from the
    engine (one GROUP BY per proportion variable)."""
    import numpy as np
    import pandas as pd

    out = pd.to_numeric(res["n"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if "level" not in res.columns:
        return out
    by = list(by or [])
    is_prop = (res["statistic"] == "proportion").to_numpy()
    for var in res.loc[is_prop, "variable"].dropna().unique():
        t = src.group_sums(by + [var], {"n": 1})
        counts = {tuple(str(x) for x in row[:-1]): float(row[-1]) for row in t.itertuples(index=False)}
        for i in np.flatnonzero(is_prop & (res["variable"] == var).to_numpy()):
            key = tuple(str(res.iloc[i][b]) for b in by) + (str(res.iloc[i]["level"]),)
            out[i] = counts.get(key, 0.0)
    return out


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
        prop_ci: str = typer.Option("logit", "--prop-ci",
                                    help="Intervals of proportions: logit (default, as the report; "
                                         "R svyciprop method='logit') or mean (Wald, R confint(svymean))."),
        layout: str = typer.Option("auto", "--layout",
                                   help="auto (a table when it fits, else one block per row), wide or long."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the table (no notes)."),
        engine: Optional[str] = typer.Option(None, "--engine",
                                             help="pandas (in memory), duckdb (out of core) or dask: where "
                                                  "the estimates are computed; default: [data] engine of "
                                                  "the project (docs/scale.md). duckdb/dask read a parquet "
                                                  "file without loading it (one stratum, PSU and fpc column)."),
    ) -> None:
        """Design-based estimates with SEs and confidence intervals (Taylor linearisation, as R survey)."""
        import pandas as pd

        from ..survey.design import SurveyDesign
        from ..errors import EstimationError

        if as_json and as_csv:
            raise EstimationError("choose one of --json and --csv", code="cli.conflicting_options")
        if prop_ci not in ("logit", "mean"):
            raise EstimationError(f"--prop-ci {prop_ci!r} is not logit or mean", code="cli.bad_option")
        means, totals, props = _split(mean), _split(total), _split(proportion)
        if not (means or totals or props):
            raise EstimationError("nothing to estimate", code="cli.nothing_to_do",
                                  hint="add --mean VAR, --total VAR or --proportion VAR")
        byv = _split(by) or None
        eng = _engine(engine, project)
        if eng != "pandas":
            df = None
            source = _engine_source(data, project)
        else:
            df, source = _read(data, project, set(props) | set(byv or []))
        from ..report.disclosure import (MIN_CELL_SIZE_FLOOR, check_estimand, check_grouping,
                                         proportion_cell_counts, suppress_estimates)

        if df is not None:
            check_grouping(df, byv, str(source))
            check_estimand(df, means + totals + props, str(source))
        else:
            from ..survey.scan import ScanDesign

            design = ScanDesign(source, weights=weights, strata=strata, psu=_split(psu) or None,
                                fpc=_split(fpc) or None, nest=nest, lonely_psu=lonely_psu, engine=eng)
            _engine_checks(design.source, byv, means + totals + props, str(source))
        k = MIN_CELL_SIZE_FLOOR
        if data is None:
            try:
                from ..project import Project

                k = max(k, Project.load(project).report.min_cell_size)
            except Exception:  # noqa: BLE001 - no project: the default minimum
                pass
        note = None
        columns = df.columns if df is not None else design.source.columns
        if weights is None and data is None and "weight" in columns:
            weights, note = "weight", "using weights column 'weight' of the project data"
        if df is not None:
            design = SurveyDesign(df, weights=weights, strata=strata, psu=_split(psu) or None,
                                  fpc=_split(fpc) or None, nest=nest, lonely_psu=lonely_psu)
        elif weights is not None and design.weights is None:
            design = ScanDesign(design.source, weights=weights, strata=strata, psu=_split(psu) or None,
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
        res = _proportion_intervals(res, prop_ci, level)
        lead = ["statistic"] + (byv or []) + ["variable"] + (["level"] if "level" in res.columns else [])
        res = res[lead + [c for c in res.columns if c not in lead]]
        # disclosure control: the report's minimum cell size on every output (table, csv, json)
        res = res.assign(n_cell=proportion_cell_counts(df, res, byv) if df is not None
                         else _engine_cell_counts(design.source, res, byv))
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

        console = make_console(soft_wrap=False)
        if df is not None:
            title = (f"Estimates from {source} ({design.n:,} rows, design df {design.degf}"
                     + ("" if weights else ", unweighted") + ")")
        else:
            title = (f"Estimates from {source} ({eng} engine" + ("" if weights else ", unweighted") + ")")
        print_estimates(console, res, lead, title=title, layout=layout)
        if (res["statistic"] == "proportion").any():
            notes.append("proportions: " + ("logit intervals (R svyciprop(method = \"logit\"))"
                                            if prop_ci == "logit" else
                                            "Wald intervals of the mean (R confint(svymean()))")
                         + "; —: a level without respondents")
        for msg in ([] if quiet else ([note] if note else []) + notes):
            console.print(msg, markup=False)
