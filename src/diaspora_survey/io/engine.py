"""Data sources computed where the data live: pandas (in memory), DuckDB (out of core), Dask.

``open_source(source, engine)`` wraps a parquet file, a folder of parquet files, a glob, a
DuckDB relation, a Dask DataFrame or a pandas DataFrame in a :class:`Source`. A Source
answers a few small questions in one engine pass each — which columns exist, whether a
design column is numeric / non-negative / free of NULLs, and above all **grouped sums of
products** (:meth:`Source.group_sums`). Everything heavy in the out-of-core estimators
(``survey/scan.py``) is such a grouped sum; only the small grouped table (one row per
stratum × PSU × group) comes back to pandas/numpy. This is the division of labour of
R's DBI-backed designs (``svydesign(..., data="table", dbtype="DuckDB")``) and sqlsurvey.

Term mini-language (:data:`Term`)
---------------------------------
A *term* is a product of *factors*; ``group_sums`` returns ``SUM(product)`` per group.
A factor is one of

* ``"col"``                 — the numeric column (cast to double; NULL/NaN → the row adds 0),
* ``("eq", col, value)``    — 1 where ``col == value`` else 0 (NULL → 0),
* ``("isin", col, values)`` — 1 where ``col`` is one of ``values`` else 0 (NULL → 0),
* ``("notnull", col)``      — 1 where ``col`` is not NULL (nor NaN) else 0,
* ``("ne", col, value)``    — 1 where ``col`` is not NULL and ``col != value`` else 0,
* ``("shift", col, s)``     — the numeric column minus the number ``s`` (NULL/NaN → the row adds 0),
* a number                  — a constant.

A term is a factor or a tuple/list of factors: ``("w", "y", "y")`` is Σ w·y², ``1`` is the
row count, ``("w", ("eq", "sex", 2))`` is the weight total of ``sex == 2``. A row where any
numeric factor is NULL/NaN contributes 0, in every engine; an empty sum is 0.

``group_sums(..., scatter={name: (term_a, term_b)})`` adds centred cross-products
Σ (a - ā)(b - b̄) over the rows of each group (a, b the terms' row values, NULL → 0, ā, b̄
their means over the group's rows), computed without the cancellation of Σab - Σa·Σb/n:
DuckDB's one-pass ``covar_pop`` (Welford/Chan updates), two passes in pandas, and per Dask
partition with the partitions combined by Chan's formula.

Engines are imported lazily (:func:`require_engine`); a missing one is an
:class:`~diaspora_survey.errors.EngineError` with a pip hint.
"""
from __future__ import annotations

import glob as _glob
import hashlib
import importlib
import numbers
from pathlib import Path
from typing import Any, Union

from ..errors import EngineError

ENGINES = ("pandas", "duckdb", "dask")

_PIP = {"duckdb": "pip install duckdb", "dask": "pip install 'diaspora-survey[dask]'"}
_MODULES = {"duckdb": "duckdb", "dask": "dask.dataframe", "pandas": "pandas"}

Factor = Union[str, tuple, numbers.Number]
Term = Union[Factor, tuple, list]


def require_engine(name: str):
    """The engine's module (``pandas``, ``duckdb`` or ``dask.dataframe``), imported on demand.

    Unknown names raise ``engine.unknown``; an engine that is not installed raises
    ``engine.not_installed`` with the pip command.
    """
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}", code="engine.unknown",
                          hint=f"use one of: {', '.join(ENGINES)}")
    try:
        module = importlib.import_module(_MODULES[name])
        if name == "dask":
            importlib.import_module("distributed")
        return module
    except ImportError as exc:
        raise EngineError(f"the {name} engine is not installed ({exc})", code="engine.not_installed",
                          hint=_PIP.get(name, f"pip install {name}")) from None


# ---------------------------------------------------------------------------------------------
# Term normalisation (shared by all engines)

def _factors(term: Term) -> list:
    if isinstance(term, (list, tuple)) and term and isinstance(term[0], str) \
            and term[0] in ("eq", "ne", "isin", "notnull", "shift") \
            and (_is_indicator(tuple(term)) or _is_shift(tuple(term))):
        return [tuple(term)]
    if isinstance(term, (list, tuple)):
        return [f if not isinstance(f, list) else tuple(f) for f in term]
    return [term]


def _is_indicator(f) -> bool:
    if not isinstance(f, tuple) or not f:
        return False
    if f[0] == "notnull":
        return len(f) == 2
    if f[0] in ("eq", "ne", "isin"):
        return len(f) == 3
    return False


def _is_shift(f) -> bool:
    return (isinstance(f, tuple) and len(f) == 3 and f[0] == "shift" and isinstance(f[1], str)
            and isinstance(f[2], numbers.Real) and not isinstance(f[2], bool))


def _term_columns(term: Term) -> list[str]:
    cols = []
    for f in _factors(term):
        if isinstance(f, str):
            cols.append(f)
        elif _is_indicator(f) or _is_shift(f):
            cols.append(f[1])
        elif not isinstance(f, numbers.Number) or isinstance(f, bool):
            raise EngineError(f"bad term factor {f!r}", code="engine.bad_term",
                              hint="a factor is a column name, ('eq', col, v), ('isin', col, vs), "
                                   "('notnull', col), ('shift', col, number) or a number")
    return cols


# ---------------------------------------------------------------------------------------------
# Sources

def _resolve_files(source) -> tuple[list[Path], str, str]:
    """(files, duckdb path pattern, label) for a parquet file / folder / glob."""
    text = str(source)
    path = Path(text)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in _glob.glob(text, recursive=True) if Path(p).is_file())
        pattern = text
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        pattern = str(path / "**" / "*.parquet")
    elif path.is_file():
        files, pattern = [path], text
    else:
        raise EngineError("no such parquet file or folder", code="engine.source_missing", where=text,
                          hint="check the path; a folder must contain *.parquet files")
    if not files:
        raise EngineError("no parquet files found", code="engine.source_missing", where=text,
                          hint="a folder or glob must match at least one *.parquet file")
    return files, pattern, text


def open_source(source, engine: str | None = None, *, client=None) -> "Source":
    """Wrap ``source`` for ``engine`` (``pandas``, ``duckdb`` or ``dask``).

    ``source``: a parquet file, a folder of parquet files (read recursively), a glob
    (str or Path), a ``duckdb.DuckDBPyRelation``, a Dask DataFrame or a pandas DataFrame.
    ``engine=None`` takes it from the source: DuckDB for files and relations, Dask for Dask
    frames, pandas for pandas frames. A pandas frame can be used with any engine; a DuckDB
    relation only with DuckDB and a Dask frame only with Dask (``engine.mismatch``).
    ``client``: for DuckDB an existing connection, for Dask a ``distributed.Client`` (else
    the default scheduler / current client).
    Missing or unreadable files raise :class:`EngineError` naming the file.
    """
    import pandas as pd

    kind = _kind(source)
    if engine is None:
        engine = {"pandas": "pandas", "relation": "duckdb", "dask": "dask", "files": "duckdb"}[kind]
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}", code="engine.unknown",
                          hint=f"use one of: {', '.join(ENGINES)}")
    if kind == "relation" and engine != "duckdb" or kind == "dask" and engine != "dask":
        raise EngineError(f"a {'DuckDB relation' if kind == 'relation' else 'Dask DataFrame'} "
                          f"cannot be computed by the {engine} engine", code="engine.mismatch",
                          hint="pass a parquet path or a pandas DataFrame to switch engines")
    files: list[Path] = []
    if kind == "files":
        files, pattern, label = _resolve_files(source)
        from .._files import note_input, protect_dir

        if Path(str(source)).is_dir():
            protect_dir(source)          # nothing is written into a source folder
        for f in files:
            note_input(f)                # no output (e.g. the weighted file) may replace it
            try:
                with open(f, "rb"):
                    pass
            except OSError as exc:
                raise EngineError(f"cannot read the file ({exc.strerror})", code="engine.unreadable",
                                  where=str(f)) from None
    else:
        label = {"pandas": "<DataFrame>", "relation": "<relation>", "dask": "<dask DataFrame>"}[kind]

    if engine == "pandas":
        if kind == "pandas":
            return _PandasSource(source, label, files)
        try:
            df = pd.read_parquet([str(f) for f in files] if len(files) > 1 else str(files[0]))
        except Exception as exc:
            raise EngineError(f"cannot read parquet ({exc})", code="engine.unreadable", where=label) from None
        return _PandasSource(df, label, files)
    if engine == "duckdb":
        duckdb = require_engine("duckdb")
        con = client if client is not None else (source.con if kind == "relation" and hasattr(source, "con")
                                                  else duckdb.connect())
        if kind == "relation":
            rel = source
        elif kind == "pandas":
            rel = con.from_df(source)
        else:
            try:
                rel = con.read_parquet([str(f) for f in files], union_by_name=True)
            except duckdb.Error as exc:
                raise EngineError(f"cannot read parquet ({_short(exc)})", code="engine.unreadable",
                                  where=label) from None
        return _DuckDBSource(rel, label, files, con)
    dd = require_engine("dask")
    if kind == "dask":
        ddf = source
    elif kind == "pandas":
        ddf = dd.from_pandas(source, npartitions=max(1, min(8, len(source) // 50_000 + 1)))
    else:
        try:
            ddf = dd.read_parquet([str(f) for f in files])
        except Exception as exc:
            raise EngineError(f"cannot read parquet ({_short(exc)})", code="engine.unreadable",
                              where=label) from None
    return _DaskSource(ddf, label, files, client)


def _kind(source) -> str:
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return "pandas"
    if isinstance(source, (str, Path)):
        return "files"
    mod = type(source).__module__ or ""
    if mod.startswith("duckdb") or mod.startswith("_duckdb"):
        return "relation"
    if mod.startswith("dask"):
        return "dask"
    raise EngineError(f"cannot use a {type(source).__name__} as a data source", code="engine.unknown_source",
                      hint="pass a parquet path, a DuckDB relation, a Dask or a pandas DataFrame")


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300]


class Source:
    """A table in an engine. Subclasses implement the engine-specific passes.

    Attributes: ``engine`` (name), ``label`` (file name or ``<relation>`` for messages),
    ``files`` (parquet files, for provenance), ``columns`` (list of names).
    """

    engine: str = "?"
    _sorts = False          # True: the engine returns group_sums sorted by the keys (NULLs last)

    def __init__(self, label: str, files: list[Path]):
        self.label = label
        self.files = list(files)

    # -- metadata ------------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        raise NotImplementedError

    def is_numeric(self, col: str) -> bool:
        """True if the column's storage type is a number (booleans and strings are not)."""
        raise NotImplementedError

    def sha256(self) -> str | None:
        """SHA-256 of the file (or of the sorted files' hashes for several); None for in-memory data."""
        if not self.files:
            return None
        from .._util import sha256_file

        digests = [sha256_file(f) for f in self.files]
        if len(digests) == 1:
            return digests[0]
        return hashlib.sha256("\n".join(digests).encode()).hexdigest()

    # -- checks --------------------------------------------------------------------------------
    def check_columns(self, cols, role: str) -> None:
        """Raise ``engine.unknown_column`` naming the source and the first unknown column."""
        have = set(self.columns)
        for c in [c for c in ([cols] if isinstance(cols, str) else cols) if c is not None]:
            if c not in have:
                raise EngineError(f"the {role} column {c!r} does not exist", code="engine.unknown_column",
                                  where=f"{self.label}, column {c}",
                                  hint=f"columns are: {', '.join(map(str, self.columns[:20]))}"
                                       + (" ..." if len(self.columns) > 20 else ""))

    def check_design_column(self, col: str, role: str, *, numeric: bool = False,
                            nonnegative: bool = False, notnull: bool = False) -> None:
        """Check one design column in one engine pass; the error names file, column and row count.

        ``numeric``: storage type is a number (``engine.not_numeric``); ``nonnegative``: no
        value < 0 (``engine.negative``); ``notnull``: no NULL/NaN (``engine.null``).
        """
        self.check_columns([col], role)
        where = f"{self.label}, column {col}"
        if (numeric or nonnegative) and not self.is_numeric(col):
            raise EngineError(f"the {role} column {col!r} is not numeric", code="engine.not_numeric",
                              where=where, hint=f"{role} must be stored as numbers")
        if not (nonnegative or notnull):
            return
        n_null, n_neg = self._null_negative(col, nonnegative)
        if notnull and n_null:
            raise EngineError(f"the {role} column {col!r} has {n_null} missing (NULL) value(s)",
                              code="engine.null", where=where,
                              hint=f"every row needs a {role}; filter those rows out or fill them")
        if nonnegative and n_neg:
            raise EngineError(f"the {role} column {col!r} has {n_neg} negative value(s)",
                              code="engine.negative", where=where, hint=f"{role} must be >= 0")

    def _null_negative(self, col: str, negative: bool) -> tuple[int, int]:
        raise NotImplementedError

    # -- passes --------------------------------------------------------------------------------
    def group_sums(self, keys: list[str], sums: dict[str, Term], scatter: dict | None = None):
        """One pass: ``SUM(term)`` for each named term, per observed combination of ``keys``.

        Returns a pandas DataFrame with the key columns (NULL keys kept as NA, sorted by the
        keys with NA last) and one float column per term. ``keys=[]`` gives one row.
        ``scatter``: name -> ``(term_a, term_b)``, one more float column per name with the
        centred cross-product Σ (a - ā)(b - b̄) over the group's rows (see the module doc).
        """
        keys = list(keys)
        scatter = dict(scatter or {})
        self.check_columns(keys, "group")
        for t in list(sums.values()) + [t for pair in scatter.values() for t in pair]:
            self.check_columns(_term_columns(t), "summed")
        clash = (set(keys) & set(sums)) | (set(scatter) & (set(keys) | set(sums)))
        if clash:
            raise EngineError(f"sum names clash with key columns: {sorted(clash)}", code="engine.bad_term")
        fsums = {k: _factors(v) for k, v in sums.items()}
        if scatter:
            out = self._group_scatter(keys, fsums, {k: (_factors(a), _factors(b))
                                                    for k, (a, b) in scatter.items()})
        else:
            out = self._group_sums(keys, fsums)
        if keys and len(out) and not self._sorts:
            out = out.sort_values(keys, na_position="last", kind="mergesort").reset_index(drop=True)
        for k in list(sums) + list(scatter):
            out[k] = out[k].astype("float64")
        return out[keys + list(sums) + list(scatter)]

    def _group_sums(self, keys, sums):
        raise NotImplementedError

    def _group_scatter(self, keys, sums, scatter):
        raise NotImplementedError

    def category_dtype(self, col: str):
        """The ``pandas.CategoricalDtype`` of ``col`` when the data store it as categories
        (pandas Categorical, Dask categorical, DuckDB ENUM, a parquet dictionary column
        written from a pandas Categorical), else None: the level order of the in-memory
        path (:func:`diaspora_survey.survey.estimators._levels`) for cell tables."""
        self.check_columns([col], "group")
        cache = self.__dict__.setdefault("_cat_cache", {})
        if col not in cache:
            cache[col] = self._category_dtype(col)
        return cache[col]

    def _category_dtype(self, col):
        return None

    def head_values(self, col: str, n: int = 1000):
        """Up to ``n`` non-missing values of the numeric column ``col`` from the first rows
        (float array; cheap: the engines stop reading early). E.g. a shift near the data
        for centred sums."""
        self.check_columns([col], "summed")
        import numpy as np

        v = np.asarray(self._head_values(col, int(n)), dtype="float64")
        return v[~np.isnan(v)][:n]

    def with_row_id(self, name: str) -> "Source":
        """A source with a unique integer row identifier ``name`` (e.g. as the PSU of a design
        without clusters, R's ``id=~1``); computed lazily like :meth:`with_flags`."""
        if name in self.columns:
            raise EngineError(f"column {name!r} exists already", code="engine.bad_term")
        return self._with_row_id(name)

    def with_flags(self, flags: dict) -> "Source":
        """A source with extra boolean columns (no pass over the data: the engines compute
        them lazily within the next pass). ``flags``: name -> ``(sql, func)`` with ``sql`` a
        DuckDB boolean expression (NULL is taken as FALSE) and ``func(frame) -> bool array``
        the same condition on a pandas frame (used by pandas and per Dask partition)."""
        if not flags:
            return self
        clash = set(flags) & set(self.columns)
        if clash:
            raise EngineError(f"flag names clash with columns: {sorted(clash)}", code="engine.bad_term")
        return self._with_flags(flags)

    def distinct(self, col: str) -> list:
        """The distinct values of ``col`` (sorted where comparable; NULL last, as None)."""
        self.check_columns([col], "group")
        values = self._distinct(col)
        nulls = [v for v in values if _isna(v)]
        rest = [v for v in values if not _isna(v)]
        try:
            rest = sorted(rest)
        except TypeError:
            pass
        return rest + ([None] if nulls else [])

    def count(self) -> int:
        """Number of rows."""
        raise NotImplementedError


def _isna(v) -> bool:
    try:
        return v is None or v != v
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# pandas (and the per-partition kernel of Dask)

def _pandas_products(df, keys, sums):
    """A frame with the key columns and one product column per term (vectorised)."""
    import numpy as np
    import pandas as pd

    n = len(df)
    out = {k: df[k] for k in keys}
    for name, factors in sums.items():
        prod = np.ones(n, dtype="float64")
        for f in factors:
            if isinstance(f, str):
                prod = prod * pd.to_numeric(df[f], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            elif _is_shift(f):
                prod = prod * (pd.to_numeric(df[f[1]], errors="coerce").to_numpy(dtype="float64",
                                                                                  na_value=np.nan)
                               - float(f[2]))
            elif _is_indicator(f):
                col = df[f[1]]
                if f[0] == "eq":
                    ind = (col == f[2]).fillna(False)
                elif f[0] == "ne":
                    ind = (col != f[2]).fillna(False) & col.notna()
                elif f[0] == "isin":
                    ind = col.isin(list(f[2]))
                else:
                    ind = col.notna()
                prod = prod * ind.to_numpy(dtype="float64", na_value=0.0)
            else:
                prod = prod * float(f)
        prod = np.where(np.isnan(prod), 0.0, prod)
        out[name] = prod
    return pd.DataFrame(out, index=df.index)


def _operands(scatter) -> list:
    """The distinct operand terms (factor lists) of a scatter spec, in order."""
    ops = []
    for a, b in scatter.values():
        for t in (a, b):
            if t not in ops:
                ops.append(t)
    return ops


def _group_codes(frame, keys):
    """Group codes of ``frame``'s rows by ``keys`` (NA a group), the number of groups and a
    frame of the groups' keys in code order; one group without keys."""
    import numpy as np
    import pandas as pd

    if not keys:
        return np.zeros(len(frame), dtype=np.int64), 1, pd.DataFrame(index=range(1))
    codes = frame.groupby(keys, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    G = int(codes.max()) + 1 if codes.size else 0
    _, first = np.unique(codes, return_index=True)
    return codes, G, frame[keys].iloc[first].reset_index(drop=True)


def _pandas_moments(df, keys, sums, scatter):
    """Per group of ``keys``: the sums, the row count ``__cnt``, the operand sums
    ``__osum{i}`` and the centred cross-products of the scatter spec (two passes: group
    means, then sums of products of deviations)."""
    import numpy as np

    ops = _operands(scatter)
    onames = [f"__op{i}" for i in range(len(ops))]
    prods = _pandas_products(df, keys, {**sums, **dict(zip(onames, ops))})
    codes, G, out = _group_codes(prods, keys)
    cnt = np.bincount(codes, minlength=G).astype("float64")
    out["__cnt"] = cnt
    for name in sums:
        out[name] = np.bincount(codes, weights=prods[name].to_numpy(), minlength=G)
    dev = []
    for i, name in enumerate(onames):
        x = prods[name].to_numpy()
        tot = np.bincount(codes, weights=x, minlength=G)
        out[f"__osum{i}"] = tot
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, tot / cnt, 0.0)
        dev.append(x - mean[codes])
    for name, (a, b) in scatter.items():
        ia, ib = ops.index(a), ops.index(b)
        out[name] = np.bincount(codes, weights=dev[ia] * dev[ib], minlength=G)
    return out


def _combine_moments(parts, keys, sums, scatter):
    """Partial :func:`_pandas_moments` tables (e.g. one per Dask partition) -> one row per
    group: sums added, cross-products by Chan's formula S = Σ_p S_p + Σ_p n_p (ā_p - ā)(b̄_p - b̄)."""
    import numpy as np

    ops = _operands(scatter)
    codes, G, out = _group_codes(parts, keys)
    cnt_p = parts["__cnt"].to_numpy(dtype="float64")
    cnt = np.bincount(codes, weights=cnt_p, minlength=G)
    for name in sums:
        out[name] = np.bincount(codes, weights=parts[name].to_numpy(dtype="float64"), minlength=G)
    dm = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(len(ops)):
            s_p = parts[f"__osum{i}"].to_numpy(dtype="float64")
            mean = np.where(cnt > 0, np.bincount(codes, weights=s_p, minlength=G) / cnt, 0.0)
            dm.append(np.where(cnt_p > 0, s_p / cnt_p, 0.0) - mean[codes])
    for name, (a, b) in scatter.items():
        ia, ib = ops.index(a), ops.index(b)
        out[name] = np.bincount(codes, weights=parts[name].to_numpy(dtype="float64")
                                + cnt_p * dm[ia] * dm[ib], minlength=G)
    return out


def _pandas_grouped(frame, keys, names):
    if not keys:
        import pandas as pd
        return pd.DataFrame({k: [float(frame[k].sum())] for k in names})
    return frame.groupby(keys, dropna=False, sort=False, observed=True)[list(names)].sum().reset_index()


def _apply_flags(df, flags):
    import numpy as np

    new = {}
    for name, (_, func) in flags.items():
        m = func(df)
        m = m.fillna(False).to_numpy(dtype=bool) if hasattr(m, "fillna") else np.asarray(m, dtype=bool)
        new[name] = np.broadcast_to(m, (len(df),)).copy() if m.ndim == 0 else m
    return df.assign(**new)


def _add_row_id(df, name, partition_info=None):
    import numpy as np
    part = (partition_info or {}).get("number", 0)
    return df.assign(**{name: np.int64(part) * (1 << 40) + np.arange(len(df), dtype="int64")})


class _PandasSource(Source):
    engine = "pandas"

    def __init__(self, df, label, files):
        super().__init__(label, files)
        self.df = df

    @property
    def columns(self):
        return list(self.df.columns)

    def is_numeric(self, col):
        from pandas.api import types
        s = self.df[col]
        return types.is_numeric_dtype(s) and not types.is_bool_dtype(s)

    def _null_negative(self, col, negative):
        s = self.df[col]
        n_neg = int((s < 0).sum()) if negative else 0
        return int(s.isna().sum()), n_neg

    def _group_sums(self, keys, sums):
        return _pandas_grouped(_pandas_products(self.df, keys, sums), keys, list(sums))

    def _group_scatter(self, keys, sums, scatter):
        return _pandas_moments(self.df, keys, sums, scatter)

    def _category_dtype(self, col):
        import pandas as pd
        dt = self.df[col].dtype
        return dt if isinstance(dt, pd.CategoricalDtype) else None

    def _head_values(self, col, n):
        import pandas as pd
        s = self.df[col]
        for m in (10 * n, len(s)):             # [scale] the first rows usually suffice
            v = pd.to_numeric(s.iloc[:m], errors="coerce").dropna()
            if len(v) >= n or m >= len(s):
                return v.to_numpy(dtype="float64")[:n]
        return []

    def _distinct(self, col):
        return list(self.df[col].drop_duplicates())

    def _with_row_id(self, name):
        import numpy as np
        return _PandasSource(self.df.assign(**{name: np.arange(len(self.df), dtype="int64")}),
                             self.label, self.files)

    def _with_flags(self, flags):
        return _PandasSource(_apply_flags(self.df, flags), self.label, self.files)

    def count(self):
        return len(self.df)


# ---------------------------------------------------------------------------------------------
# DuckDB

_DUCK_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _lit(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return "'" + str(value).replace("'", "''") + "'"


class _DuckDBSource(Source):
    engine = "duckdb"
    _sorts = True

    def __init__(self, rel, label, files, con):
        super().__init__(label, files)
        self.rel = rel
        self.con = con
        self._types = {c: str(t).upper() for c, t in zip(rel.columns, rel.types)}

    @property
    def columns(self):
        return list(self.rel.columns)

    def is_numeric(self, col):
        return self._types[col].startswith(_DUCK_NUMERIC)

    def _is_float(self, col):
        return self._types[col].startswith(("FLOAT", "DOUBLE", "REAL"))

    def _run(self, sql: str):
        duckdb = require_engine("duckdb")
        try:
            return self.rel.query("src", sql).df()
        except duckdb.Error as exc:
            raise EngineError(f"the DuckDB query failed ({_short(exc)})", code="engine.failed",
                              where=self.label) from None

    def _null_sql(self, col):
        c = _q(col)
        return f"({c} IS NULL OR isnan({c}))" if self._is_float(col) else f"({c} IS NULL)"

    def _null_negative(self, col, negative):
        neg = f"COUNT(*) FILTER (WHERE {_q(col)} < 0)" if negative else "0"
        row = self._run(f"SELECT COUNT(*) FILTER (WHERE {self._null_sql(col)}) AS n_null, {neg} AS n_neg "
                        f"FROM src").iloc[0]
        return int(row["n_null"]), int(row["n_neg"])

    def _factor_sql(self, f) -> str:
        if isinstance(f, str):
            c = f"CAST({_q(f)} AS DOUBLE)"
            return f"NULLIF({c}, 'NaN'::DOUBLE)" if self._is_float(f) else c
        if _is_shift(f):
            return f"({self._factor_sql(f[1])} - {float(f[2])!r})"
        if _is_indicator(f):
            if f[0] == "eq":
                return f"(CASE WHEN {_q(f[1])} = {_lit(f[2])} THEN 1.0 ELSE 0.0 END)"
            if f[0] == "ne":
                return (f"(CASE WHEN {self._null_sql(f[1])} THEN 0.0 WHEN {_q(f[1])} <> {_lit(f[2])} "
                        f"THEN 1.0 ELSE 0.0 END)")
            if f[0] == "isin":
                vals = ", ".join(_lit(v) for v in f[2]) or "NULL"
                return f"(CASE WHEN {_q(f[1])} IN ({vals}) THEN 1.0 ELSE 0.0 END)"
            return f"(CASE WHEN {self._null_sql(f[1])} THEN 0.0 ELSE 1.0 END)"
        return repr(float(f))

    def sum_sql(self, factors) -> str:
        """The SQL ``COALESCE(SUM(...), 0)`` of one term (for callers composing their own SQL)."""
        return f"COALESCE(SUM({' * '.join(self._factor_sql(f) for f in factors)}), 0.0)"

    def _group_sums(self, keys, sums, scatter=None):
        # positional aliases: DuckDB names are case-insensitive ("sw" and "SW" would clash)
        names = list(sums) + list(scatter or {})
        sel = [_q(k) for k in keys] + [f"{self.sum_sql(fs)} AS __agg{i}" for i, fs in enumerate(sums.values())]
        for i, (a, b) in enumerate((scatter or {}).values(), start=len(sums)):
            sa, sb = (f"COALESCE({' * '.join(self._factor_sql(f) for f in t)}, 0.0)" for t in (a, b))
            # covar_pop: one-pass co-moment updates, merged by Chan's formula (no cancellation)
            sel.append(f"COALESCE(covar_pop({sa}, {sb}) * COUNT(*), 0.0) AS __agg{i}")
        group = (f" GROUP BY {', '.join(_q(k) for k in keys)} "
                 f"ORDER BY {', '.join(_q(k) + ' ASC NULLS LAST' for k in keys)}") if keys else ""
        out = self._run(f"SELECT {', '.join(sel)} FROM src{group}")
        out.columns = list(keys) + names
        return out

    def _group_scatter(self, keys, sums, scatter):
        return self._group_sums(keys, sums, scatter)

    def _category_dtype(self, col):
        import pandas as pd

        typ = dict(zip(self.rel.columns, self.rel.types))[col]
        if self._types[col].startswith("ENUM"):
            values = dict(typ.children)["values"]
            return pd.CategoricalDtype(list(values), ordered=False)
        if self._types[col] == "VARCHAR" and self.files:
            return _parquet_category_dtype(self.files, col)
        return None

    def _head_values(self, col, n):
        v = f"CAST({_q(col)} AS DOUBLE)"
        return self._run(f"SELECT {v} AS v FROM src WHERE {v} IS NOT NULL AND NOT isnan({v}) "
                         f"LIMIT {int(n)}")["v"].to_numpy()

    def _distinct(self, col):
        return list(self._run(f"SELECT DISTINCT {_q(col)} AS v FROM src")["v"])

    def _with_row_id(self, name):
        rel = self.rel.project(f"*, (row_number() OVER ()) AS {_q(name)}")
        return _DuckDBSource(rel, self.label, self.files, self.con)

    def _with_flags(self, flags):
        extra = ", ".join(f"COALESCE(CAST(({sql}) AS BOOLEAN), FALSE) AS {_q(name)}"
                          for name, (sql, _) in flags.items())
        duckdb = require_engine("duckdb")
        try:
            rel = self.rel.project(f"*, {extra}")
        except duckdb.Error as exc:
            raise EngineError(f"cannot evaluate the condition ({_short(exc)})", code="engine.bad_condition",
                              where=self.label) from None
        return _DuckDBSource(rel, self.label, self.files, self.con)

    def count(self):
        return int(self._run("SELECT COUNT(*) AS n FROM src")["n"].iloc[0])


# ---------------------------------------------------------------------------------------------
# Dask

class _DaskSource(Source):
    engine = "dask"

    def __init__(self, ddf, label, files, client):
        super().__init__(label, files)
        self.ddf = ddf
        self.client = client

    @property
    def columns(self):
        return list(self.ddf.columns)

    def is_numeric(self, col):
        from pandas.api import types
        dt = self.ddf.dtypes[col]
        return types.is_numeric_dtype(dt) and not types.is_bool_dtype(dt)

    def _compute(self, *objs):
        import dask
        try:
            if self.client is not None:
                return tuple(self.client.compute(list(objs), sync=True))
            return dask.compute(*objs)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"the Dask computation failed ({_short(exc)})", code="engine.failed",
                              where=self.label) from None

    def _null_negative(self, col, negative):
        s = self.ddf[col]
        n_null, n_neg = self._compute(s.isna().sum(), (s < 0).sum() if negative else s.isna().sum() * 0)
        return int(n_null), int(n_neg)

    def _group_sums(self, keys, sums):
        import pandas as pd

        names = list(sums)
        meta = _pandas_products(self.ddf._meta, keys, sums)

        def partial(part):
            return _pandas_grouped(_pandas_products(part, keys, sums), keys, names)

        meta_partial = _pandas_grouped(meta, keys, names)
        parts = self.ddf.map_partitions(partial, meta=meta_partial)
        if not keys:
            (res,) = self._compute(parts[names].sum())
            return pd.DataFrame({k: [float(res[k])] for k in names})
        (res,) = self._compute(parts.groupby(keys, dropna=False, sort=False, observed=True)[names]
                             .sum(split_out=1))
        return res.reset_index()

    def _group_scatter(self, keys, sums, scatter):
        meta = _pandas_moments(self.ddf._meta, keys, sums, scatter)
        parts = self.ddf.map_partitions(_pandas_moments, keys, sums, scatter, meta=meta)
        # partial tables (partitions x groups, small) combined here by Chan's formula: a sum
        # of the raw co-moments would bring the cancellation back
        (res,) = self._compute(parts)
        return _combine_moments(res.reset_index(drop=True), keys, sums, scatter)

    def _category_dtype(self, col):
        import pandas as pd

        dt = self.ddf.dtypes[col]
        if isinstance(dt, pd.CategoricalDtype):
            known = getattr(self.ddf[col].cat, "known", True)
            if known:
                return dt
        if self.files and (isinstance(dt, pd.CategoricalDtype) or not self.is_numeric(col)):
            return _parquet_category_dtype(self.files, col)
        return None

    def _head_values(self, col, n):
        import pandas as pd
        (part,) = self._compute(self.ddf[col].partitions[0])
        return pd.to_numeric(part, errors="coerce").dropna().to_numpy(dtype="float64")[:n]

    def _distinct(self, col):
        (res,) = self._compute(self.ddf[col].drop_duplicates())
        return list(res)

    def _with_row_id(self, name):
        meta = self.ddf._meta.assign(**{name: __import__("numpy").zeros(0, dtype="int64")})
        ddf = self.ddf.map_partitions(_add_row_id, name, meta=meta, partition_info=None)
        return _DaskSource(ddf, self.label, self.files, self.client)

    def _with_flags(self, flags):
        meta = _apply_flags(self.ddf._meta, flags)
        ddf = self.ddf.map_partitions(_apply_flags, flags, meta=meta)
        return _DaskSource(ddf, self.label, self.files, self.client)

    def count(self):
        (n,) = self._compute(self.ddf.map_partitions(len).sum())
        return int(n)


def _parquet_category_dtype(files, col):
    """The categories of a parquet dictionary column (written from a pandas Categorical) as
    pandas reads them: the dictionaries of the row groups of the files in order, merged in
    order of first appearance (pyarrow's unification), ``ordered`` from the arrow type.
    Reads one value per row group. None if any file stores the column otherwise."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    levels, ordered = {}, False
    for f in files:
        try:
            field = pq.read_schema(str(f)).field(col)      # as stored (not as read_dictionary reads)
        except Exception:  # noqa: BLE001 - unreadable or no such column: not categorical
            return None
        if not pa.types.is_dictionary(field.type):
            return None
        pf = pq.ParquetFile(str(f), read_dictionary=[col])
        ordered = ordered or bool(field.type.ordered)
        for rg in range(pf.metadata.num_row_groups):
            for batch in pf.iter_batches(batch_size=1, row_groups=[rg], columns=[col]):
                arr = batch.column(0)
                if pa.types.is_dictionary(arr.type):
                    for v in arr.dictionary.to_pylist():
                        levels.setdefault(v, None)
                break
    return pd.CategoricalDtype([v for v in levels if v is not None], ordered=ordered)


def describe_term(term: Term) -> str:
    """A readable form of a term, e.g. ``w*y*[sex=2]`` (for messages and docs)."""
    parts = []
    for f in _factors(term):
        if isinstance(f, str):
            parts.append(f)
        elif _is_shift(f):
            parts.append(f"({f[1]}-{f[2]!r})")
        elif _is_indicator(f):
            parts.append(f"[{f[1]} notnull]" if f[0] == "notnull" else f"[{f[1]} {f[0]} {f[2]!r}]")
        else:
            parts.append(repr(f))
    return "*".join(parts)


__all__: list[Any] = ["ENGINES", "EngineError", "require_engine", "open_source", "Source", "Term",
                      "describe_term"]
