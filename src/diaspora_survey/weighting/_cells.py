"""The cell table: rows grouped by their combination of target-variable levels (private).

Raking, post-stratification and categorical calibration give every row of the same
combination of levels the same adjustment factor g, so they are fitted on the table of
the combinations that occur (a few hundred cells for a million rows) and mapped back to
rows with one gather (``w = base * g[cell]``).  That is the fast path the benchmark
measures; it gives the same weights as unit-level iterations.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import WeightingError
from .targets import Margin

#: largest full cross-table used directly as a bincount index (else the key is factorised)
_DENSE_LIMIT = 1 << 21


def encode(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 = missing) and the level labels (as strings) of a column.

    Categoricals use their codes; Arrow-backed strings are dictionary-encoded by
    pyarrow; anything else goes through ``pd.factorize``.  Labels are normalised to
    strings (integral floats without ``.0``) so they match target categories.
    """
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        labels = [_label(c) for c in dtype.categories]
        return codes, labels
    arr = s.array
    if hasattr(arr, "__arrow_array__") and str(dtype) in ("str", "string"):
        try:
            import pyarrow as pa
            import pyarrow.compute as pc

            ch = arr.__arrow_array__()
            ch = ch.combine_chunks() if isinstance(ch, pa.ChunkedArray) else ch
            d = pc.dictionary_encode(ch)
            idx = d.indices
            if idx.null_count:
                idx = pc.fill_null(idx, -1)
            return idx.to_numpy(zero_copy_only=False), [str(x) for x in d.dictionary.to_pylist()]
        except Exception:  # pragma: no cover - fall back to pandas
            pass
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, [_label(u) for u in uniques]


def _label(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return str(x)


@dataclass
class CellTable:
    """Rows grouped into cells.

    key: (n,) cell index of every row into the (dense or factorised) key space;
    cell_of_key: (K,) position of each key in the list of non-empty cells (-1 if empty);
    wsum, count: (C,) base-weight sum and number of rows per non-empty cell;
    cell_codes: {variable: (C,) level code of each cell, len(labels) for missing};
    labels: {variable: list of level labels}.
    """

    key: np.ndarray
    cell_of_key: np.ndarray
    wsum: np.ndarray
    count: np.ndarray
    cell_codes: dict
    labels: dict
    n: int

    @property
    def n_cells(self) -> int:
        return self.wsum.size

    def row_cells(self) -> np.ndarray:
        """(n,) cell position of every row."""
        return self.cell_of_key[self.key]

    def to_rows(self, cell_values: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        """Map a per-cell vector to rows (one gather through the key), optionally
        multiplied in place by ``times`` (row-level)."""
        full = np.zeros(self.cell_of_key.size, dtype=np.asarray(cell_values).dtype)
        nz = self.cell_of_key >= 0
        full[nz] = np.asarray(cell_values)[self.cell_of_key[nz]]
        out = full[self.key]
        if times is not None:
            out *= times
        return out


def build_cells(df: pd.DataFrame, variables: list[str], w0: np.ndarray, where: str | None = None,
                counts: np.ndarray | None = None) -> CellTable:
    """Group rows by their levels of ``variables`` (missing is a level of its own).

    ``counts``: the number of respondents each row stands for (default 1) — with a cell
    table computed elsewhere (one row per cell, ``w0`` its base-weight sum, ``counts`` its
    respondents; ``weighting.scale``) the cells are those rows."""
    missing = [v for v in variables if v not in df.columns]
    if missing:
        raise WeightingError(f"target variable(s) not in the data: {', '.join(map(repr, missing))}",
                             code="weighting.unknown_variable", where=where,
                             hint="available columns: " + ", ".join(map(str, df.columns[:30])))
    n = len(df)
    labels: dict[str, list[str]] = {}
    dims: list[int] = []
    key = None
    if n >= 200_000 and len(variables) > 1:
        # pyarrow's dictionary encoding and pandas' factorize release the GIL: encode the
        # columns concurrently (the rest is sequential numpy)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(variables), os.cpu_count() or 1)) as ex:
            encoded = list(ex.map(lambda v: encode(df[v]), variables))
    else:
        encoded = [encode(df[v]) for v in variables]
    for v, (codes, labs) in zip(variables, encoded):
        labels[v] = labs
        d = len(labs) + 1
        has_missing = bool(codes.size) and codes.min() < 0
        if key is None:
            key = codes.astype(np.intp)            # always a fresh array: it is updated in place
            if has_missing:
                key[key < 0] = d - 1
        else:
            key *= d
            if has_missing:
                c = codes.astype(np.intp)
                c[c < 0] = d - 1
                key += c
                del c
            else:
                key += codes                       # mixed-width add, no full temporary
        dims.append(d)
        del codes
    del encoded
    if key is None:
        key = np.zeros(n, dtype=np.intp)
    K = int(np.prod(dims, dtype=np.float64)) if dims else 1
    if K > _DENSE_LIMIT:
        # sparse key space: factorise the combined key (first-appearance order)
        fkey, uniq = pd.factorize(key)
        dense_of = np.asarray(uniq)
        key = fkey.astype(np.intp, copy=False)
        K = dense_of.size
    else:
        dense_of = None
    wsum_k = np.bincount(key, weights=w0, minlength=K)
    count_k = (np.bincount(key, minlength=K) if counts is None
               else np.rint(np.bincount(key, weights=np.asarray(counts, dtype=np.float64),
                                        minlength=K)).astype(np.int64))
    nz = np.flatnonzero(count_k)
    cell_of_key = np.full(K, -1, dtype=np.intp)
    cell_of_key[nz] = np.arange(nz.size)
    dense_keys = nz if dense_of is None else dense_of[nz]
    cc = np.unravel_index(dense_keys, dims) if dims else ()
    cell_codes = {v: np.asarray(c) for v, c in zip(variables, cc)}
    return CellTable(key, cell_of_key, wsum_k[nz], count_k[nz], cell_codes, labels, n)


def margin_index(cells: CellTable, margin: Margin) -> np.ndarray:
    """(C,) index of each cell's target category in ``margin`` (-1: not in the targets,
    including missing values)."""
    sub_dims = [len(cells.labels[v]) + 1 for v in margin.variables]
    lut = np.full(int(np.prod(sub_dims)), -1, dtype=np.intp)
    pos = [{lab: i for i, lab in enumerate(cells.labels[v])} for v in margin.variables]
    for j, cat in enumerate(margin.categories):
        idx = [p.get(lab) for p, lab in zip(pos, cat)]
        if any(i is None for i in idx):
            continue   # level absent from the data: found as an empty category later
        lut[np.ravel_multi_index(idx, sub_dims)] = j
    sub = np.ravel_multi_index([cells.cell_codes[v] for v in margin.variables], sub_dims)
    return lut[sub]


def describe_cell(cells: CellTable, c: int, variables) -> str:
    parts = []
    for v in variables:
        code = int(cells.cell_codes[v][c])
        labs = cells.labels[v]
        parts.append("<missing>" if code >= len(labs) else labs[code])
    return ":".join(parts)


def base_weights(df: pd.DataFrame, base_weight, where: str | None = None) -> np.ndarray:
    """The base weights as a float64 array: a column name, an array/Series, or None (=1).

    Zero, negative, missing and infinite base weights are errors naming how many rows
    and the first one (a zero-weight respondent cannot be adjusted by a ratio).
    """
    n = len(df)
    if base_weight is None:
        return np.ones(n)
    if isinstance(base_weight, str):
        if base_weight not in df.columns:
            raise WeightingError(f"base weight column {base_weight!r} not found", where=where,
                                 code="weighting.unknown_variable",
                                 hint="pass base_weight=None for equal base weights")
        name = base_weight
        w = pd.to_numeric(df[base_weight], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        name = "base_weight"
        if isinstance(base_weight, pd.Series) and not base_weight.index.equals(df.index):
            # a Series is matched by its index, never by position
            if (base_weight.index.has_duplicates or df.index.has_duplicates
                    or len(base_weight) != n or not base_weight.index.isin(df.index).all()):
                raise WeightingError("the base-weight Series is not indexed like the data",
                                     code="weighting.bad_weights", where=where,
                                     hint="pass a Series with the data's index, a column name, "
                                          "or a plain array in row order")
            base_weight = base_weight.reindex(df.index)
        try:
            w = np.asarray(base_weight.to_numpy() if hasattr(base_weight, "to_numpy") else base_weight,
                           dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise WeightingError("base weights are not numeric", code="weighting.bad_weights",
                                 where=where) from None
        if w.size != n:
            raise WeightingError(f"base weights have {w.size} values for {n} rows",
                                 code="weighting.bad_weights", where=where)
    check_weights(w, name, index=df.index, where=where)
    with np.errstate(over="ignore", divide="ignore"):
        spread = w.max() / w.min()
    if not np.isfinite(spread) or spread > MAX_BASE_SPREAD:
        # e.g. 1e-320 beside 1: every ratio adjustment loses all precision
        first = int(np.argmin(w))
        raise WeightingError(f"{name}: the largest base weight is {spread:.3g} times the smallest "
                             f"({w.min():.3g} at row {df.index[first]!r}); at most "
                             f"{MAX_BASE_SPREAD:.0e} is usable",
                             code="weighting.bad_weights", where=where,
                             hint="check the base-weight column (a unit or scaling error?)")
    return w


#: largest ratio of base weights accepted (beyond it the adjustments lose their precision)
MAX_BASE_SPREAD = 1e12


def number(name: str, value, *, positive: bool = False, integer: bool = False,
           where: str | None = None) -> float:
    """A numeric option as float (or int), or a WeightingError naming it."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        x = float(value)
        ok = np.isfinite(x) and (not positive or x > 0) and (not integer or x.is_integer())
    if not ok:
        what = ("a positive integer" if integer else "a positive number" if positive else "a finite number")
        raise WeightingError(f"{name} must be {what}, got {value!r}", code="weighting.bad_option",
                             where=where)
    return int(x) if integer else x


def check_weights(w: np.ndarray, name: str = "weights", *, index=None, where=None,
                  allow_zero: bool = False) -> None:
    """Raise a WeightingError for missing, infinite, negative (or zero) weights."""
    if w.size == 0:
        raise WeightingError("no rows to weight", code="weighting.empty", where=where)
    lo = w.min()
    if lo > 0 or (allow_zero and lo >= 0):
        if np.isfinite(w.sum()):
            return
    problems = []
    for mask, what in ((np.isnan(w), "missing"), (np.isinf(w), "infinite"),
                       (w < 0, "negative"), ((w == 0) if not allow_zero else np.zeros(w.size, bool), "zero")):
        k = int(mask.sum())
        if k:
            first = int(np.flatnonzero(mask)[0])
            lab = index[first] if index is not None else first
            problems.append(f"{k} {what} (first at {lab})" if isinstance(lab, str)
                            else f"{k} {what} (first at row {lab!r})")
    raise WeightingError(f"{name}: " + "; ".join(problems), code="weighting.bad_weights", where=where,
                         hint="base weights must be finite and > 0; drop those rows or fix the "
                              "weights before weighting")
