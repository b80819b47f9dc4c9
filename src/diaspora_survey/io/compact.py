"""Compact dtypes without changing a single value.

* integral numeric columns → the smallest integer type that holds them (``int8`` … ``int64``),
  nullable (``Int8`` …) where they have missing values;
* everything else stays: floats stay ``float64`` (weights need the precision), strings stay
  strings — never turned into ``category``, which would hide the raw spelling of answers
  (and allow no new value) in later edits.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

_INT_TYPES = (np.int8, np.int16, np.int32, np.int64)
_NULLABLE = {np.int8: "Int8", np.int16: "Int16", np.int32: "Int32", np.int64: "Int64"}


_LIMITS = tuple((t, int(np.iinfo(t).min), int(np.iinfo(t).max)) for t in _INT_TYPES)   # np.iinfo is slow


def smallest_int(lo: float, hi: float):
    """The smallest numpy integer type holding every value in [lo, hi], or None."""
    for t, tmin, tmax in _LIMITS:
        if tmin <= lo and hi <= tmax:
            return t
    return None


def compact_float_array(a: np.ndarray):
    """Return an integer (or nullable integer) array equal to ``a``, or ``a`` itself."""
    if a.dtype.kind != "f" or a.size == 0:
        return a
    nan = np.isnan(a)
    has_nan = bool(nan.any())
    vals = a[~nan] if has_nan else a
    if vals.size == 0:
        return a
    lo = vals.min()
    hi = vals.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return a
    t = smallest_int(lo, hi)
    if t is None or t is np.int64 and (abs(lo) > 2**53 or abs(hi) > 2**53):
        return a
    ints = (np.where(nan, 0.0, a) if has_nan else a).astype(t)
    if not np.array_equal(ints, np.where(nan, 0.0, a) if has_nan else a):
        return a
    if has_nan:
        return pd.arrays.IntegerArray(ints, nan)
    return ints


def compact_numeric(arr: np.ndarray):
    """The smallest exact representation of a numeric column (integral floats as int8 …
    or nullable Int8 …, ints narrowed), or None when ``arr`` is already the smallest."""
    if arr.dtype == np.float64:
        out = compact_float_array(arr)
        return None if isinstance(out, np.ndarray) and out.dtype == np.float64 else out
    if arr.dtype.kind == "i" and arr.size:
        t = smallest_int(arr.min(), arr.max())
        if t is not None and np.dtype(t) != arr.dtype:
            return arr.astype(t)
    return None


def _float_blocks(df: pd.DataFrame):
    """(names, 2-D values shaped (columns, rows)) of df's float64 blocks; fallback: one column each."""
    try:
        mgr = df._mgr
        out = []
        for blk in mgr.blocks:
            if blk.dtype == np.float64 and blk.values.ndim == 2:
                out.append((list(df.columns[blk.mgr_locs.indexer]), blk.values))
        return out
    except Exception:  # pragma: no cover - pandas internals changed: slower public path
        return [([c], s.to_numpy()[None, :]) for c, s in df.items() if s.dtype == np.float64]


def integer_dtypes(df: pd.DataFrame, max_cells: int = 4_000_000, skip: set | frozenset = frozenset()) -> dict:
    """``{column: dtype}`` for the float64 columns of ``df`` whose values are all integral.

    Decided on pandas' 2-D float block in a few vectorised numpy calls (in slices of at most
    ``max_cells`` values, so temporaries stay small): ``int8`` … ``int64`` where a column has
    no missing value, nullable ``Int8`` … otherwise.
    """
    out: dict = {}
    for names, block in _float_blocks(df):
        k, n = block.shape
        step = max(1, max_cells // max(n, 1))
        for i in range(0, k, step):
            x = block[i:i + step]
            if x.size == 0:
                continue
            nan = np.isnan(x)
            with np.errstate(invalid="ignore"):
                lo = np.fmin.reduce(x, axis=1)
                hi = np.fmax.reduce(x, axis=1)
                whole = x == np.trunc(x)  # NaN compares unequal: or-ed with the NaN mask below
            ok = (whole | nan).all(axis=1)
            has_nan = nan.any(axis=1)
            del whole, nan
            for j in np.flatnonzero(ok):
                a, b = lo[j], hi[j]
                if not (np.isfinite(a) and np.isfinite(b)):
                    continue
                t = smallest_int(a, b)
                if t is None or (t is np.int64 and max(abs(a), abs(b)) > 2**53) or names[i + j] in skip:
                    continue
                out[names[i + j]] = _NULLABLE[t] if has_nan[j] else np.dtype(t)
    return out


def to_int(values: np.ndarray, dtype):
    """Convert integral float64 values to ``dtype`` (numpy int, or a nullable 'Int8' … name)."""
    if isinstance(dtype, np.dtype):
        return values.astype(dtype)
    nan = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(nan, 0.0, values).astype(dtype.lower()), nan)
