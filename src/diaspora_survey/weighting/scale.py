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
#: largest table of distinct (cell, base weight) pairs brought back for trimming
_MAX_FINE = 2_000_000


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
    ``_wsum`` (Σ base weight), ``_wsum2`` (Σ base²), ``_n`` (rows), ``_bmin``, ``_bmax`` and
    ``_nnull`` (rows without a base weight, counted as 1 in the sums); sorted by the keys
    (NULL last)."""
    src.check_columns(keys, "target")
    agg = {"_wsum": "sum", "_wsum2": "sum", "_n": "sum", "_bmin": "min", "_bmax": "max", "_nnull": "sum"}
    if src.engine == "duckdb":
        from ..io.engine import _q

        raw = f"CAST({_q(base_weight)} AS DOUBLE)" if base_weight else "1.0"
        b = f"COALESCE({raw}, 1.0)"
        k = ", ".join(_q(c) for c in keys)
        sql = (f"SELECT {k + ', ' if keys else ''}SUM({b}) AS _wsum, SUM({b} * {b}) AS _wsum2, "
               f"COUNT(*) AS _n, MIN({b}) AS _bmin, MAX({b}) AS _bmax, "
               f"COUNT(*) FILTER (WHERE {raw} IS NULL) AS _nnull FROM src"
               + (f" GROUP BY {k}" if keys else ""))
        out = src._run(sql)
    else:
        def part(df):
            b = (pd.to_numeric(df[base_weight], errors="coerce").astype("float64") if base_weight
                 else pd.Series(1.0, index=df.index))
            null = b.isna().astype(np.int64)
            b = b.fillna(1.0)
            f = pd.DataFrame({**{c: df[c] for c in keys}, "_wsum": b, "_wsum2": b * b,
                              "_n": np.ones(len(df), dtype=np.int64), "_bmin": b, "_bmax": b,
                              "_nnull": null})
            if not keys:
                return f.agg(agg).to_frame().T
            return f.groupby(keys, dropna=False, observed=True, sort=False).agg(agg).reset_index()

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
    out["_nnull"] = out["_nnull"].astype(np.int64)
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
    from .._guard import raise_if_stopped

    out = Path(out)
    guard_output(out, code="output.cannot_write")
    if out.suffix.lower() != ".parquet":
        raise EngineError("the weighted output is written as parquet", code="engine.failed", where=str(out),
                          hint="name it *.parquet")
    values, strides, size, idx = _index_spec(cells, keys)
    lookup = {}
    for name, f in factors.items():
        parts = []
        for arr in (f if isinstance(f, tuple) else (f,)):
            full = np.full(size, np.nan)
            full[idx] = arr
            parts.append(full)
        lookup[name] = tuple(parts) + (None,) * (4 - len(parts))
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
            b = (pd.to_numeric(src.df[base_weight]).fillna(1.0).to_numpy(dtype=np.float64)
                 if base_weight else np.ones(rows))
            cell = np.zeros(rows, dtype=np.int64)
            for c, v, st in zip(keys, values, strides):
                cell += _codes(src.df[c], v) * st
            for name, spec in lookup.items():
                df[name] = _apply(b, cell, spec)
            df.to_parquet(tmp, index=False)
        raise_if_stopped()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def _apply(b, cell, spec):
    """``b × mult[cell]``, or ``clip(b × mult[cell], lo[cell], hi[cell]) × post[cell]``."""
    mult, lo, hi, post = spec
    v = b * mult[cell]
    if lo is not None:
        v = np.minimum(np.maximum(v, lo[cell]), hi[cell]) * post[cell]
    return v


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
    b = f"COALESCE(CAST({_q(base_weight)} AS DOUBLE), 1.0)" if base_weight else "1.0"
    cols = [_q(c) for c in keep]
    for name, (mult, lo, hi, post) in lookup.items():
        params.append(mult.tolist())
        e = f"({b} * list_extract(${len(params)}::DOUBLE[], {cell} + 1))"
        if lo is not None:
            params += [lo.tolist(), hi.tolist(), post.tolist()]
            n = len(params)
            e = (f"(LEAST(GREATEST({e}, list_extract(${n - 2}::DOUBLE[], {cell} + 1)), "
                 f"list_extract(${n - 1}::DOUBLE[], {cell} + 1)) * list_extract(${n}::DOUBLE[], {cell} + 1))")
        cols.append(f"{e} AS {_q(name)}")
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
        b = (pd.to_numeric(df[base_weight]).fillna(1.0).to_numpy(dtype=np.float64) if base_weight
             else np.ones(len(df)))
        cell = np.zeros(len(df), dtype=np.int64)
        for c, v, st in zip(keys, values, strides):
            cell += _codes(df[c], v) * st
        for name, spec in lookup.items():
            out[name] = _apply(b, cell, spec)
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
    g: np.ndarray          # per row of the cell table given to _fit
    setup: object          # its _setup.Setup (cells regrouped by the target variables)
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
        return _Fit(s.cells.to_rows(g), s, iters, conv, {"criterion": criterion, "max_gap": gap, "bounds": bounds},
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
    return _Fit(s.cells.to_rows(g), s, 1, True, {"collapsed": [[":".join(margin.categories[j]) for j in grp] for grp in collapsed],
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
                           margins=_margins(s, fit.g * cells["_wsum"].to_numpy()),
                           decisions=fit.decisions, extra={**fit.extra, "engine": src.engine})
    return EngineWeightingResult(Path(out), rows, diag, method, cells, src.engine)


def _margins(s, t_rows):
    """The margin table of the weight totals ``t_rows`` of the rows of the fitted cell table."""
    t_cells = np.bincount(s.cells.row_cells(), weights=t_rows, minlength=s.cells.n_cells)
    return margin_table(*margin_rows(s, t_cells))


def _check_positive(cells, base_weight, label):
    if base_weight is not None and (cells["_bmin"] <= 0).any():
        k = int((cells["_bmin"] <= 0).sum())
        raise WeightingError(f"the base weight column {base_weight!r} has zero weights (in {k} "
                             f"weighting cell{'s' if k != 1 else ''})",
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
    from .poststratification import EMPTY_PS, check_cell_options

    check_choice("unmatched", unmatched, UNMATCHED)
    check_choice("empty", empty, EMPTY_PS)
    check_cell_options(strict, min_cell_size)
    return _weight_source("poststratify", source, targets, base_weight, out=out, engine=engine,
                          weight_name=weight_name, client=client, label=label, kind=kind,
                          unmatched=unmatched, empty=empty, tol=None, max_iter=1, bounds=None,
                          criterion="targets", on_nonconvergence="error",
                          min_cell_size=min_cell_size, strict=strict)


__all__ = ["rake_source", "poststratify_source", "EngineWeightingResult", "CellDiagnostics",
           "cell_table", "write_weighted"]


# ---- the project's weight step: every wave, trimming, pooling ----------------------------------

def _trim_cells(values, counts, lower, upper, relative, label):
    """Strict trimming with proportional redistribution (``trim(..., strict=True)``, the
    project's rule) of the distinct weights ``values`` held by ``counts`` respondents."""
    from .trimming import _strict

    n = int(counts.sum())
    total = float(np.dot(values, counts))
    mean = total / n
    lo = -np.inf if lower is None else float(lower) * (mean if relative else 1.0)
    hi = np.inf if upper is None else float(upper) * (mean if relative else 1.0)
    if lo > hi:
        raise WeightingError(f"lower bound {lo:g} is above upper bound {hi:g}", code="weighting.bad_option")
    if n * hi < total * (1 - 1e-12) or n * lo > total * (1 + 1e-12):
        raise WeightingError(f"the bounds [{lo:g}, {hi:g}] cannot hold the weight total {total:,.6g} of "
                             f"{n} weights (mean {mean:.6g})", code="weighting.infeasible_bounds",
                             where=label, hint="the mean weight must lie within the bounds; relax them")
    out, _, c = _strict(values, lo, hi, total, "proportional", 1000, counts=counts, return_c=True)
    changed = out != values
    n_trimmed = int(counts[((out <= lo) | (out >= hi)) & changed].sum())
    note = (f"trimmed {n_trimmed} weight(s) to [{lo:.6g}, {hi:.6g}], proportional redistribution, "
            "total kept")
    return out, note, float(c), float(lo), float(hi)


def _summary_values(values, counts) -> pd.Series:
    """The :func:`~.diagnostics.diagnostics` Series of ``values`` held by ``counts`` respondents."""
    frame = pd.DataFrame({"_n": counts, "_wsum": values * counts, "_wsum2": values * values * counts,
                          "_bmin": values, "_bmax": values})
    return _summary(np.ones(len(values)), frame)


def weight_waves_source(source, targets, *, out, engine: str = "duckdb", client=None, wave: str = "wave",
                        method: str = "rake", base_weight: str | None = None,
                        pooling: str = "proportional", trim_upper=None, trim_lower=None,
                        trim_relative: bool = True, max_iter: int = 100, tol: float = 1e-8,
                        unmatched: str | None = None, empty: str | None = None, bounds=None,
                        calibration: str | None = None):
    """:func:`~.waves.weight_waves` in an engine: every wave raked or post-stratified to its
    targets on the cell table (``GROUP BY wave, margin variables``), trimmed, pooled, and the
    source written with ``weight_base``, the step columns, ``weight`` and ``weight_pooled`` to
    ``out``.  Returns a :class:`~.waves.WavesResult` whose ``data`` is None (the rows are in
    ``out``) and whose ``results[wave]`` carry the diagnostics.

    ``method = "calibrate"`` and ``"none"`` are refused (they are in-memory steps here), as is
    trimming when the base weights vary within cells.
    """
    from .waves import METHODS, POOLING, WavesResult, _targets_for, check_target_waves

    check_choice("method", method, METHODS)
    check_choice("pooling", pooling, POOLING)
    if method in ("calibrate", "none"):
        raise EngineError(f"[weighting] method = {method!r} runs in memory only; the {engine} engine "
                          "rakes or post-stratifies", code="engine.unsupported",
                          hint="use method \"rake\" or \"poststratify\", or engine \"pandas\"")
    if calibration is not None:
        raise WeightingError(f"calibration={calibration!r} applies only to method='calibrate'",
                             code="weighting.bad_option")
    if bounds is not None and method == "poststratify":
        raise WeightingError("bounds= do not apply to post-stratification (it meets every cell exactly)",
                             code="weighting.bad_option")
    unmatched = unmatched or "keep_base"
    empty = empty or ("collapse" if method == "poststratify" else "error")
    check_choice("unmatched", unmatched, UNMATCHED)
    check_choice("empty", empty, ("collapse", "error", "drop") if method == "poststratify" else EMPTY)
    src = _open(source, engine, client)
    src.check_design_column(wave, "wave", notnull=True)
    if base_weight is None and "weight_base" in src.columns:
        base_weight = "weight_base"
    if base_weight is not None:   # a wave without any base weight gets 1 (as weight_waves)
        src.check_design_column(base_weight, "base weight", numeric=True, nonnegative=True)
    # the variables of every wave's targets
    order = [str(w) for w in src.distinct(wave)]
    _, dicts = _input_schema(src)
    if wave in dicts:     # a categorical wave column: its categories' order (as weight_waves)
        listed = [str(x) for x in dicts[wave][1].to_pylist()]
        order = [w for w in listed if w in order] + [w for w in order if w not in listed]
    check_target_waves(targets, order)
    per_wave = {}
    variables: list[str] = []
    for wv in order:
        t, _numeric, notes = _targets_for(targets, wv, order, method)
        per_wave[wv] = (t, notes)
        variables += [v for v in t.variables if v not in variables]
    keys = [wave] + variables
    cells = cell_table(src, keys, base_weight)
    if not len(cells):
        raise WeightingError("no respondents to weight (the data have 0 rows)", code="weighting.empty",
                             where=src.label)
    _check_positive(cells, base_weight, src.label)
    wave_of = cells[wave].astype(str).to_numpy()
    step = "weight_raked" if method == "rake" else "weight_poststratified"
    trimmed = trim_upper is not None or trim_lower is not None
    C = len(cells)
    mult = {k: np.ones(C) for k in ["weight_base", step, "weight", "weight_pooled"]}
    lo_c, hi_c, post = np.full(C, -np.inf), np.full(C, np.inf), np.ones(C)
    constant = bool(np.all(cells["_bmin"].to_numpy() == cells["_bmax"].to_numpy()))
    fine = None
    if trimmed and not constant:
        # trimming needs the distribution of the raked weights b·g: the distinct base weights of
        # every cell (one more GROUP BY, with the base weight as a key)
        fine = cell_table(src, keys + [base_weight], base_weight)
        if len(fine) > _MAX_FINE:
            raise EngineError(f"trimming needs the distinct base weights of every cell, and there are "
                              f"{len(fine):,} of them", code="engine.unsupported",
                              where=f"{src.label}, column {base_weight}",
                              hint="unset trim_upper / trim_lower in [weighting], or use engine \"pandas\"")
        fine["_cell"] = pd.Index(pd.MultiIndex.from_frame(cells[keys])).get_indexer(
            pd.MultiIndex.from_frame(fine[keys]))
    results, decisions, margin_names, fits = {}, [], [], {}
    for wv in order:
        pos = np.flatnonzero(wave_of == wv)
        sub = cells.iloc[pos].reset_index(drop=True)
        t, notes = per_wave[wv]
        label = f"wave {wv}"
        nnull, n_w = int(sub["_nnull"].sum()), int(sub["_n"].sum())
        if base_weight and nnull == n_w:
            notes = list(notes) + [f"{label}: no base weights in column {base_weight}; equal base weights used"]
        elif base_weight and nnull:
            raise EngineError(f"the base weight column {base_weight!r} has {nnull} missing (NULL) "
                              f"value(s) in {label}", code="engine.null",
                              where=f"{src.label}, column {base_weight}",
                              hint="base weights must be finite and > 0; drop those rows or fix the "
                                   "weights before weighting")
        else:
            notes = list(notes) + ([f"{label}: base weights from column {base_weight}"] if base_weight else [])
        for m in t.margins:
            if m.name not in margin_names:
                margin_names.append(m.name)
        fit = _fit(method, sub, list(t.variables), t, label=label, kind="auto", unmatched=unmatched,
                   empty=empty, tol=tol, max_iter=max_iter, bounds=None if bounds is None else tuple(bounds),
                   criterion="targets", on_nonconvergence="error", min_cell_size=1, strict=False)
        g = fit.g
        mult[step][pos] = g
        mult["weight"][pos] = g
        dec = notes + fit.decisions
        # the distribution of this wave's weights: (values, counts) where known exactly
        if fine is not None:
            fw = fine[fine["_cell"].isin(pos)]
            gmap = np.zeros(C)
            gmap[pos] = g
            b_v, n_v = fw["_bmin"].to_numpy(), fw["_n"].to_numpy()
            raked_v = b_v * gmap[fw["_cell"].to_numpy()]
        elif constant:
            b_v, n_v = sub["_bmin"].to_numpy(), sub["_n"].to_numpy()
            raked_v = b_v * g
        else:
            b_v = n_v = raked_v = None
        final_v = raked_v
        if trimmed:
            final_v, note, c, lo, hi = _trim_cells(raked_v, n_v, trim_lower, trim_upper, trim_relative, label)
            mult["weight"][pos] = g * c
            lo_c[pos], hi_c[pos] = lo, hi
            dec.append(note)
            total_final = float(np.dot(final_v, n_v))
        else:
            total_final = float(np.dot(g, sub["_wsum"].to_numpy()))
        share = n_w if pooling == "proportional" else int(cells["_n"].sum()) / len(order)
        post[pos] = share / total_final
        fits[wv] = (fit, sub, dec, pos, b_v, n_v, final_v, total_final)
    factors = {"weight_base": mult["weight_base"], step: mult[step]}
    if trimmed:
        factors["weight_trimmed"] = (mult["weight"], lo_c, hi_c, np.ones(C))
        factors["weight"] = (mult["weight"], lo_c, hi_c, np.ones(C))
        factors["weight_pooled"] = (mult["weight"], lo_c, hi_c, post)
    else:
        factors["weight"] = mult["weight"]
        factors["weight_pooled"] = mult["weight"] * post
    rows = write_weighted(src, keys, cells, factors, base_weight, out)
    exact = constant or fine is not None
    q_after = _file_quantiles(Path(out), "weight", wave) if not exact else {}
    q_before = _file_quantiles(Path(out), "weight_base", wave) if not exact else {}
    for wv in order:
        fit, sub, dec, pos, b_v, n_v, final_v, total_final = fits[wv]
        s = fit.setup
        name = method + ("+trim" if trimmed else "")
        if exact:
            after, before = _summary_values(final_v, n_v), _summary_values(b_v, n_v)
        else:
            after = _summary(mult["weight"][pos], sub, q_after.get(wv))
            before = _summary(np.ones(len(sub)), sub, q_before.get(wv))
        if trimmed:   # the weighted margins of the trimmed weights, per cell
            if fine is not None:
                fw = fine[fine["_cell"].isin(pos)]
                local = pd.Series(np.arange(len(pos)), index=pos)[fw["_cell"].to_numpy()].to_numpy()
                t_after = np.bincount(local, weights=final_v * n_v, minlength=len(pos))
            else:
                t_after = final_v * n_v
        else:
            t_after = fit.g * sub["_wsum"].to_numpy()
        diag = CellDiagnostics(name, after, before, iterations=fit.iterations, converged=fit.converged,
                               tolerance=tol if method == "rake" else None,
                               margins=_margins(s, t_after),
                               decisions=dec, extra={**fit.extra, "engine": src.engine})
        results[wv] = EngineWeightingResult(Path(out), int(sub["_n"].sum()), diag, name, sub, src.engine)
        decisions += [d if d.startswith("wave") else f"wave {wv}: {d}" for d in dec]
    decisions.append(f"pooled weights: {pooling} — "
                     + ("each wave's share of the pooled total equals its share of respondents"
                        if pooling == "proportional" else "every wave has the same share of the pooled total")
                     + "; pooled weights sum to the number of respondents")
    res = WavesResult(None, results, method, pooling, margin_names, decisions)
    res.path, res.rows, res.engine = Path(out), rows, src.engine
    return res
