"""Weighting at scale: rake / post-stratify where the data live (DuckDB, Dask), rows never in pandas.

Raking and post-stratification give every row of one combination of target-variable levels
(a *cell*) the same adjustment factor g, so they only need the **cell table**: per cell the
base-weight sum Σb, Σb², the number of respondents and min/max b.  The engine computes it
(``GROUP BY`` the margin variables — and the wave), the in-memory code paths fit it
(:func:`~.raking.fit_cells`, :func:`~.poststratification.fit_cells`, the same target
validation of :func:`~._setup.prepare`), and the engine writes the source with the new
weight columns ``b × factor[cell]`` to ``out`` (one parquet file; temporary file, then
rename).  The weights equal the in-memory :func:`~.raking.rake` / :func:`~.poststratification.poststratify`
to rounding (measured: max relative difference below 1e-13; tests require 1e-10).

* DuckDB: ``SELECT s.* , b * list_extract($factors, cell index) ...`` — a projection, so the
  rows keep their order — streamed as Arrow batches into a pyarrow ``ParquetWriter``;
* Dask: ``map_partitions`` with the same cell index (pandas, vectorised), ``to_parquet`` into a
  temporary folder by the workers, then its parts are streamed into the one output file.

The output keeps the input file's schema (categories of the harmonised data, nullable
integers) and adds ``weight_base``, the step column (``weight_raked`` /
``weight_poststratified``, ``weight_trimmed``) and the final weight (``weight_name``; the
project's weight step also ``weight_pooled``), as the in-memory functions.

Diagnostics are the in-memory ones computed from the cell table: n, Kish n_eff and deff, CV,
min, max exactly; the weight percentiles exactly from the cells when the base weights are
constant within cells (e.g. no base weights), else by DuckDB's ``quantile_cont`` (type 7,
numpy's default) on the written file.  Standardised mean differences of other covariates are
not computed (``diagnostics.smd`` is empty).  Trimming (the project's ``trim_upper`` /
``trim_lower``) runs on the distinct weights of the cells, so it needs base weights that are
constant within cells; otherwise it is refused (never skipped).

R: ``rake()`` / ``postStratify()`` on a DBI-backed ``svydesign(data="table", dbtype=...)``.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import EngineError, WeightingError
from ._result import check_choice
from ._setup import EMPTY, UNMATCHED, margin_rows, prepare
from .diagnostics import SUMMARY_FIELDS, Diagnostics, margin_table

_SUMS = ("_wsum", "_wsum2", "_n", "_bmin", "_bmax")
#: largest dense cell-index space handed to the engine as one list of factors
_MAX_INDEX = 1 << 22


# ---- diagnostics from the cell table ------------------------------------------------------------

class CellDiagnostics(Diagnostics):
    """:class:`~.diagnostics.Diagnostics` whose weight summaries come from the cell table (the
    rows stay in the engine); ``smd`` is empty."""

    def __init__(self, method, summary: pd.Series, summary_before: pd.Series, **kwargs):
        super().__init__(method, np.empty(0), np.empty(0), **kwargs)
        self.n = int(summary["n"])
        self.__dict__["summary"] = summary
        self.__dict__["summary_before"] = summary_before


def _quantiles_counted(values: np.ndarray, counts: np.ndarray, probs) -> list[float]:
    """numpy's default (linear, R type 7) quantiles of ``values`` each repeated ``counts`` times."""
    order = np.argsort(values, kind="mergesort")
    v, c = values[order], counts[order]
    cum = np.cumsum(c)
    n = int(cum[-1])
    out = []
    for p in probs:
        h = (n - 1) * p
        lo = int(np.floor(h))
        hi = min(lo + 1, n - 1)
        a = v[np.searchsorted(cum, lo, side="right")]
        b = v[np.searchsorted(cum, hi, side="right")]
        t = h - lo
        out.append(float(a + t * (b - a)) if t < 0.5 else float(b - (b - a) * (1 - t)))
    return out


def _summary(fac: np.ndarray, cells: pd.DataFrame, quantiles=None) -> pd.Series:
    """The :func:`~.diagnostics.diagnostics` Series of the weights ``b × fac[cell]``."""
    n = int(cells["_n"].sum())
    s = float(np.dot(fac, cells["_wsum"].to_numpy()))
    s2 = float(np.dot(fac * fac, cells["_wsum2"].to_numpy()))
    lo = float(np.min(fac * cells["_bmin"].to_numpy()))
    hi = float(np.max(fac * cells["_bmax"].to_numpy()))
    if quantiles is None:
        quantiles = _quantiles_counted(fac * cells["_bmin"].to_numpy(), cells["_n"].to_numpy(),
                                       (0.01, 0.5, 0.99))
    mean = s / n
    sd = float(np.sqrt(max(s2 / n - mean ** 2, 0.0)))
    return pd.Series({"n": n, "sum": s, "mean": mean, "n_eff": s * s / s2, "kish_deff": n * s2 / (s * s),
                      "cv": sd / mean, "min": lo, "p1": quantiles[0], "median": quantiles[1],
                      "p99": quantiles[2], "max": hi, "max_min_ratio": hi / lo if lo > 0 else float("inf")},
                     name="weights", dtype="float64")[list(SUMMARY_FIELDS)]


# ---- the engine's two passes: the cell table, the weighted copy ---------------------------------

def _open(source, engine, client):
    from ..io.engine import ENGINES, open_source, require_engine

    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}", code="engine.unknown",
                          hint=f"use one of: {', '.join(ENGINES)}")
    require_engine(engine)
    return open_source(source, engine, client=client)


def _check_base(src, base_weight):
    if base_weight is None:
        return
    src.check_design_column(base_weight, "base weight", numeric=True, nonnegative=True, notnull=True)


def cell_table(src, keys: list[str], base_weight: str | None) -> pd.DataFrame:
    """One engine pass: per observed combination of ``keys`` (NULL is a level), the columns
    ``_wsum`` (Σ base weight), ``_wsum2`` (Σ base²), ``_n`` (rows), ``_bmin``, ``_bmax``; sorted
    by the keys (NULL last)."""
    src.check_columns(keys, "target")
    if src.engine == "duckdb":
        from ..io.engine import _q

        b = f"CAST({_q(base_weight)} AS DOUBLE)" if base_weight else "1.0"
        k = ", ".join(_q(c) for c in keys)
        sql = (f"SELECT {k + ', ' if keys else ''}SUM({b}) AS _wsum, SUM({b} * {b}) AS _wsum2, "
               f"COUNT(*) AS _n, MIN({b}) AS _bmin, MAX({b}) AS _bmax FROM src"
               + (f" GROUP BY {k}" if keys else ""))
        out = src._run(sql)
    else:
        def part(df):
            b = (pd.to_numeric(df[base_weight], errors="coerce").astype("float64") if base_weight
                 else pd.Series(1.0, index=df.index))
            f = pd.DataFrame({**{c: df[c] for c in keys}, "_wsum": b, "_wsum2": b * b,
                              "_n": np.ones(len(df), dtype=np.int64), "_bmin": b, "_bmax": b})
            if not keys:
                return f.agg({"_wsum": "sum", "_wsum2": "sum", "_n": "sum", "_bmin": "min",
                              "_bmax": "max"}).to_frame().T
            return f.groupby(keys, dropna=False, observed=True, sort=False).agg(
                {"_wsum": "sum", "_wsum2": "sum", "_n": "sum", "_bmin": "min", "_bmax": "max"}).reset_index()

        agg = {"_wsum": "sum", "_wsum2": "sum", "_n": "sum", "_bmin": "min", "_bmax": "max"}
        if src.engine == "pandas":
            out = part(src.df)
        else:
            parts = src.ddf.map_partitions(part, meta=part(src.ddf._meta))
            if keys:
                (out,) = src._compute(parts.groupby(keys, dropna=False, observed=True, sort=False)
                                      .agg(agg))
                out = out.reset_index()
            else:
                (out,) = src._compute(parts)
                out = out.agg(agg).to_frame().T
    out["_n"] = out["_n"].astype(np.int64)
    for c in ("_wsum", "_wsum2", "_bmin", "_bmax"):
        out[c] = out[c].astype("float64")
    if keys and len(out):
        out = out.sort_values(keys, na_position="last", kind="mergesort").reset_index(drop=True)
    for c in keys:   # categoricals of a pandas / Dask source: observed levels as strings
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object)
    return out


def _index_spec(cells: pd.DataFrame, keys: list[str]):
    """Per key the list of its non-NULL values (code = position + 1, NULL = 0), the strides of
    the dense cell index and each cell's index."""
    values, dims = [], []
    for c in keys:
        v = pd.unique(cells[c].dropna())
        values.append([x.item() if hasattr(x, "item") else x for x in v])
        dims.append(len(v) + 1)
    size = int(np.prod(dims, dtype=np.float64)) if dims else 1
    if size > _MAX_INDEX:
        raise EngineError(f"the cell index of {' × '.join(map(str, dims))} level combinations is too "
                          f"large for the engine's lookup", code="engine.failed",
                          hint="merge categories of the target variables")
    strides = [int(np.prod(dims[i + 1:], dtype=np.int64)) for i in range(len(dims))]
    idx = np.zeros(len(cells), dtype=np.int64)
    for c, v, st in zip(keys, values, strides):
        idx += _codes(cells[c], v) * st
    return values, strides, size, idx


def _codes(col: pd.Series, values: list) -> np.ndarray:
    pos = pd.Index(values).get_indexer(col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype)
                                       else col)
    return (pos + 1).astype(np.int64)     # -1 (NULL) -> 0


def _input_schema(src, fallback=None):
    """The arrow schema of the source's first parquet file (else of ``fallback``, a file the
    engine wrote) and its dictionaries (categories)."""
    first = src.files[0] if src.files else fallback
    if first is None:
        return None, {}
    import pyarrow.parquet as pq

    schema = pq.read_schema(first)
    dicts = {}
    for f in schema:
        if str(f.type).startswith("dictionary"):
            try:
                pf = pq.ParquetFile(first)
                col = pf.read_row_group(0, columns=[f.name]).column(0) if pf.num_row_groups else None
            except Exception:   # noqa: BLE001 - then the column is written as the engine gives it
                col = None
            if col is not None and col.num_chunks:
                dicts[f.name] = (f.type, col.chunk(0).dictionary)
    return schema, dicts


def _fix_batch(batch, target, dicts):
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for f in target:
        a = batch.column(batch.schema.get_field_index(f.name))
        if f.name in dicts:
            typ, dictionary = dicts[f.name]
            if pa.types.is_dictionary(a.type):
                a = a.dictionary_decode()
            idx = pc.index_in(a.cast(dictionary.type), value_set=dictionary).cast(typ.index_type)
            a = pa.DictionaryArray.from_arrays(idx, dictionary, ordered=typ.ordered)
        elif a.type != f.type:
            a = a.cast(f.type)
        arrays.append(a)
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _target_schema(first_schema, in_schema, dicts, new_cols):
    """The output schema: the input file's types (categories, pandas metadata) for its columns,
    float64 for the new weight columns."""
    import pyarrow as pa

    fields = []
    for f in first_schema:
        if f.name in dicts:
            fields.append(pa.field(f.name, dicts[f.name][0]))
        elif f.name in new_cols:
            fields.append(pa.field(f.name, pa.float64()))
        elif in_schema is not None and f.name in in_schema.names:
            fields.append(in_schema.field(f.name))
        else:
            fields.append(f)
    meta = None
    if in_schema is not None and in_schema.metadata and b"pandas" in in_schema.metadata:
        pm = json.loads(in_schema.metadata[b"pandas"])
        names = [f.name for f in fields]
        keep = {c["name"]: c for c in pm.get("columns", []) if c.get("name") in names and c["name"] not in new_cols}
        pm["columns"] = [keep.get(n, {"name": n, "field_name": n, "pandas_type": "float64",
                                       "numpy_type": "float64", "metadata": None}) for n in names]
        pm["index_columns"] = []
        meta = {b"pandas": json.dumps(pm).encode()}
    return pa.schema(fields, metadata=meta)


def _stream(batches, src, new_cols, tmp: Path, fallback=None) -> int:
    """Write Arrow record batches into one parquet file (row group per batch); returns rows."""
    import pyarrow.parquet as pq

    in_schema, dicts = _input_schema(src, fallback)
    writer = None
    rows = 0
    try:
        for b in batches:
            if writer is None:
                target = _target_schema(b.schema, in_schema, dicts, new_cols)
                writer = pq.ParquetWriter(str(tmp), target)
            if b.num_rows:
                writer.write_batch(_fix_batch(b, target, dicts))
                rows += b.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def write_weighted(src, keys: list[str], cells: pd.DataFrame, factors: dict[str, np.ndarray],
                   base_weight: str | None, out, *, batch_rows: int = 262_144) -> int:
    """The engine's second pass: the source with one column ``b × factors[name][cell]`` per
    name (existing columns of those names are replaced), written to ``out`` (temporary file,
    then rename).  Returns the number of rows written."""
    from .._files import guard_output, tmp_name

    out = Path(out)
    guard_output(out, code="output.cannot_write")
    if out.suffix.lower() != ".parquet":
        raise EngineError("the weighted output is written as parquet", code="engine.failed", where=str(out),
                          hint="name it *.parquet")
    values, strides, size, idx = _index_spec(cells, keys)
    lookup = {}
    for name, f in factors.items():
        full = np.full(size, np.nan)
        full[idx] = f
        lookup[name] = full
    new_cols = list(factors)
    keep = [c for c in src.columns if c not in new_cols]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(out)
    try:
        if src.engine == "duckdb":
            rows = _write_duckdb(src, keys, values, strides, lookup, base_weight, keep, tmp, batch_rows)
        elif src.engine == "dask":
            rows = _write_dask(src, keys, values, strides, lookup, base_weight, keep, tmp)
        else:
            df = src.df[keep].copy()
            rows = len(df)
            b = (pd.to_numeric(src.df[base_weight]).to_numpy(dtype=np.float64) if base_weight
                 else np.ones(rows))
            cell = np.zeros(rows, dtype=np.int64)
            for c, v, st in zip(keys, values, strides):
                cell += _codes(src.df[c], v) * st
            for name, full in lookup.items():
                df[name] = b * full[cell]
            df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def _write_duckdb(src, keys, values, strides, lookup, base_weight, keep, tmp, batch_rows):
    import duckdb

    from ..io.engine import _q

    con = src.con
    view = f"_ds_weight_src_{os.getpid()}_{id(src)}"
    src.rel.create_view(view, replace=True)
    params = []
    terms = []
    for c, v, st in zip(keys, values, strides):
        params.append(v)
        terms.append(f"COALESCE(list_position(${len(params)}, {_q(c)}), 0) * {st}")
    cell = " + ".join(terms) if terms else "0"
    b = f"CAST({_q(base_weight)} AS DOUBLE)" if base_weight else "1.0"
    cols = [_q(c) for c in keep]
    for name, full in lookup.items():
        params.append(full.tolist())
        cols.append(f"{b} * list_extract(${len(params)}::DOUBLE[], {cell} + 1) AS {_q(name)}")
    sql = f"SELECT {', '.join(cols)} FROM {_q(view)}"
    try:
        reader = con.sql(sql, params=params).to_arrow_reader(batch_rows)
        return _stream(reader, src, list(lookup), tmp)
    except duckdb.Error as exc:
        raise EngineError(f"the DuckDB query failed ({str(exc).splitlines()[0][:300]})",
                          code="engine.failed", where=src.label) from None
    finally:
        try:
            con.execute(f"DROP VIEW IF EXISTS {_q(view)}")
        except duckdb.Error:   # pragma: no cover
            pass


def _write_dask(src, keys, values, strides, lookup, base_weight, keep, tmp):
    import pyarrow.parquet as pq

    def part(df):
        out = df[keep].copy()
        b = (pd.to_numeric(df[base_weight]).to_numpy(dtype=np.float64) if base_weight
             else np.ones(len(df)))
        cell = np.zeros(len(df), dtype=np.int64)
        for c, v, st in zip(keys, values, strides):
            cell += _codes(df[c], v) * st
        for name, full in lookup.items():
            out[name] = b * full[cell]
        return out

    folder = tmp.with_name(tmp.name + ".parts")
    try:
        ddf = src.ddf.map_partitions(part, meta=part(src.ddf._meta))
        try:
            fut = ddf.to_parquet(str(folder), write_index=False, compute=False)
            src._compute(fut)
        except EngineError:
            raise
        files = sorted(folder.glob("*.parquet"), key=lambda p: _part_number(p.name))

        def batches():
            for f in files:
                yield from pq.ParquetFile(f).iter_batches(batch_size=262_144)
        return _stream(batches(), src, list(lookup), tmp, fallback=files[0] if files else None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _part_number(name: str):
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else -1, name)


def _file_quantiles(out: Path, column: str, by: str | None):
    """Type-7 percentiles (1, 50, 99) of ``column`` in the written file, per ``by`` (DuckDB)."""
    import duckdb

    from ..io.engine import _q

    con = duckdb.connect()
    try:
        g = f"{_q(by)}, " if by else ""
        rows = con.execute(f"SELECT {g}quantile_cont({_q(column)}, [0.01, 0.5, 0.99]) AS q "
                           f"FROM read_parquet(?)" + (f" GROUP BY {_q(by)}" if by else ""),
                           [str(out)]).fetchall()
    finally:
        con.close()
    return {(str(r[0]) if by else None): [float(x) for x in r[-1]] for r in rows}


# ---- public API ---------------------------------------------------------------------------------

@dataclass
class EngineWeightingResult:
    """What an engine weighting returns: ``path`` (the weighted parquet), ``rows``,
    ``diagnostics`` (:class:`CellDiagnostics`, as ``WeightingResult.diagnostics``), ``method``,
    ``cells`` (the cell table with the factor of each weight column), ``engine``."""

    path: Path
    rows: int
    diagnostics: CellDiagnostics
    method: str
    cells: pd.DataFrame
    engine: str

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged


@dataclass
class _Fit:
    g: np.ndarray
    setup: object
    iterations: int = 1
    converged: bool = True
    extra: dict = field(default_factory=dict)
    decisions: list = field(default_factory=list)


def _fit(method, cells, variables, targets, *, label, kind, unmatched, empty, tol, max_iter, bounds,
         criterion, on_nonconvergence, min_cell_size, strict):
    """Fit one group's cell table with the in-memory code paths."""
    from . import poststratification, raking

    frame = cells[variables].copy()
    w0 = cells["_wsum"].to_numpy(dtype=np.float64)
    counts = cells["_n"].to_numpy()
    if method == "rake":
        s = prepare(frame, targets, w0, kind=kind, unmatched=unmatched, empty=empty, label=label,
                    where=label, counts=counts)
        g, iters, conv, gap, _ = raking.fit_cells(s, float(w0.sum()), tol=tol, max_iter=max_iter,
                                                  bounds=bounds, criterion=criterion,
                                                  on_nonconvergence=on_nonconvergence, where=label)
        return _Fit(g, s, iters, conv, {"criterion": criterion, "max_gap": gap, "bounds": bounds},
                    list(s.decisions))
    from .targets import parse_targets

    t = parse_targets(targets, kind=kind)
    if len(t) != 1:
        raise WeightingError(f"poststratify needs one joint table of cells, got {len(t)} margins "
                             f"({', '.join(m.name for m in t)})", code="weighting.bad_option", where=label,
                             hint="cross-classify them (e.g. 'sex:age_group'), or rake")
    s = prepare(frame, t, w0, kind=kind, unmatched=unmatched,
                empty="keep" if empty in ("collapse", "partial") else empty, label=label, where=label,
                counts=counts)
    g, decisions, collapsed, *_ = poststratification.fit_cells(s, min_cell_size=min_cell_size, strict=strict,
                                                               empty=empty, label=label, where=label)
    margin = s.targets.margins[0]
    s.decisions = decisions
    return _Fit(g, s, 1, True, {"collapsed": [[":".join(margin.categories[j]) for j in grp] for grp in collapsed],
                                "min_cell_size": min_cell_size, "empty": empty, "strict": strict},
                list(decisions))


def _weight_source(method, source, targets, base_weight, *, out, engine, weight_name, client, label,
                   **opts) -> EngineWeightingResult:
    from .targets import parse_targets

    src = _open(source, engine, client)
    _check_base(src, base_weight)
    t = parse_targets(targets, kind=opts.get("kind", "auto"))
    variables = list(t.variables)
    src.check_columns(variables, "target")
    cells = cell_table(src, variables, base_weight)
    if not len(cells) or int(cells["_n"].sum()) == 0:
        raise WeightingError("no rows to weight", code="weighting.empty", where=src.label)
    _check_positive(cells, base_weight, src.label)
    fit = _fit(method, cells, variables, t, label=label, **opts)
    step = "weight_raked" if method == "rake" else "weight_poststratified"
    factors = {"weight_base": np.ones(len(cells)), step: fit.g, weight_name: fit.g}
    rows = write_weighted(src, variables, cells, factors, base_weight, out)
    cells = cells.assign(**{f"g_{k}": v for k, v in factors.items()})
    constant = bool(np.all(cells["_bmin"].to_numpy() == cells["_bmax"].to_numpy()))
    q_after = q_before = None
    if not constant:
        q_after = _file_quantiles(Path(out), weight_name, None)[None]
        q_before = _file_quantiles(Path(out), "weight_base", None)[None]
    s = fit.setup
    diag = CellDiagnostics(method, _summary(fit.g, cells, q_after), _summary(np.ones(len(cells)), cells, q_before),
                           iterations=fit.iterations, converged=fit.converged,
                           tolerance=opts.get("tol") if method == "rake" else None,
                           margins=margin_table(*margin_rows(s, s.cells.wsum * fit.g)),
                           decisions=fit.decisions, extra={**fit.extra, "engine": src.engine})
    return EngineWeightingResult(Path(out), rows, diag, method, cells, src.engine)


def _check_positive(cells, base_weight, label):
    if base_weight is not None and (cells["_bmin"] <= 0).any():
        k = int(cells.loc[cells["_bmin"] <= 0, "_n"].sum()) if (cells["_bmax"] <= 0).any() else None
        raise WeightingError(f"the base weight column {base_weight!r} has zero weights"
                             + (f" (in cells of {k} respondents)" if k else ""),
                             code="weighting.bad_weights", where=f"{label}, column {base_weight}",
                             hint="base weights must be finite and > 0; drop those rows or fix the "
                                  "weights before weighting")


def rake_source(source, targets, base_weight: str | None = None, *, out, engine: str = "duckdb",
                weight_name: str = "weight", client=None, tol: float = 1e-8, max_iter: int = 1000,
                bounds=None, criterion: str = "targets", on_nonconvergence: str = "error",
                unmatched: str = "error", empty: str = "error", kind: str = "auto",
                label: str | None = None) -> EngineWeightingResult:
    """Rake a parquet file / folder / glob, DuckDB relation or Dask DataFrame to ``targets``
    in ``engine`` and write it with the weight columns to ``out`` (parquet).

    The options are those of :func:`~.raking.rake` (same validation, same messages, same
    weights to rounding); ``base_weight`` is a column name (None: 1).  Returns an
    :class:`EngineWeightingResult` (``.path``, ``.diagnostics``, ``.cells``).
    R: ``rake(svydesign(..., data="table", dbtype="DuckDB"), list(~a, ~b), list(pop_a, pop_b))``.
    """
    from ._cells import number
    from .raking import CRITERIA, ON_NONCONVERGENCE, _check_bounds

    check_choice("criterion", criterion, CRITERIA)
    check_choice("on_nonconvergence", on_nonconvergence, ON_NONCONVERGENCE)
    check_choice("unmatched", unmatched, UNMATCHED)
    check_choice("empty", empty, EMPTY)
    if not (isinstance(max_iter, (int, np.integer)) and not isinstance(max_iter, bool) and max_iter >= 1):
        raise WeightingError(f"max_iter must be a positive integer, got {max_iter!r}",
                             code="weighting.bad_option")
    tol = number("tol", tol, positive=True)
    _check_bounds(bounds)
    return _weight_source("rake", source, targets, base_weight, out=out, engine=engine,
                          weight_name=weight_name, client=client, label=label, kind=kind,
                          unmatched=unmatched, empty=empty, tol=tol, max_iter=max_iter, bounds=bounds,
                          criterion=criterion, on_nonconvergence=on_nonconvergence,
                          min_cell_size=1, strict=False)


def poststratify_source(source, targets, base_weight: str | None = None, *, out, engine: str = "duckdb",
                        weight_name: str = "weight", client=None, min_cell_size: int = 1,
                        strict: bool = False, unmatched: str = "error", empty: str = "collapse",
                        kind: str = "auto", label: str | None = None) -> EngineWeightingResult:
    """Post-stratify a source to one joint table of cells in ``engine`` and write it with the
    weight columns to ``out``; options as :func:`~.poststratification.poststratify`.
    R: ``postStratify(design, ~a+b, population_table)`` on a DBI-backed design."""
    from .poststratification import EMPTY_PS

    check_choice("unmatched", unmatched, UNMATCHED)
    check_choice("empty", empty, EMPTY_PS)
    if not isinstance(strict, (bool, np.bool_)):
        raise WeightingError(f"strict must be True or False, got {strict!r}", code="weighting.bad_option")
    if not (isinstance(min_cell_size, (int, np.integer)) and not isinstance(min_cell_size, bool)
            and min_cell_size >= 1):
        raise WeightingError(f"min_cell_size must be an integer >= 1, got {min_cell_size!r}",
                             code="weighting.bad_option")
    return _weight_source("poststratify", source, targets, base_weight, out=out, engine=engine,
                          weight_name=weight_name, client=client, label=label, kind=kind,
                          unmatched=unmatched, empty=empty, tol=None, max_iter=1, bounds=None,
                          criterion="targets", on_nonconvergence="error",
                          min_cell_size=min_cell_size, strict=strict)


__all__ = ["rake_source", "poststratify_source", "EngineWeightingResult", "CellDiagnostics",
           "cell_table", "write_weighted"]
