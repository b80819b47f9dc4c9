"""A wave read in chunks of rows: the values and dtypes of :func:`~diaspora_survey.io.read_wave`,
one chunk at a time (for waves too large for memory; docs/scale.md).

``open_chunked(path, chunk_rows, columns=[...], distinct=[...])`` makes a **first pass** over the
file and returns a :class:`ChunkedWave`; :meth:`ChunkedWave.chunks` reads the file again, chunk
by chunk. The first pass exists because :func:`read_wave` decides the dtype of a column on the
whole column, which no chunk sees:

* SPSS (.sav/.zsav, pyreadstat with ``row_offset``/``row_limit``; the dictionary — labels, value
  labels, user-missing values and ranges — is read once, with ``user_missing=True`` as the
  whole-file reader): whether a numeric column holds only whole numbers (then ``int8`` …,
  nullable ``Int8`` … where it has missing values, exactly as :func:`~diaspora_survey.io.compact.integer_dtypes`
  decides on the whole column) and whether a date column stays within the range of dates
  (else it is kept as raw numbers, with the whole-file reader's warning);
* CSV (pandas' C parser, ``chunksize``): encoding, separator and decimal mark are decided as
  :func:`~diaspora_survey.io.csv.read_csv_file` decides them, the file is checked line by line
  (:func:`~diaspora_survey.io.csv._scan`); then the parser's type per chunk is combined into the
  type the parser gives the whole column (a column numeric in the first chunks and text later
  is text in every chunk, read as written), and the decimal-comma and date decisions are made
  on every value of the column (the date formats on its first 5,000 distinct values, as the
  whole-file reader does).

The first pass also records, for the columns in ``distinct``, their distinct values (in the
order of first appearance), and for every float column whether all its values are whole numbers
(:meth:`ChunkedWave.integral`): the facts harmonisation needs about the whole wave
(:mod:`diaspora_survey.harmonise.chunked`). Only the columns in ``columns`` are read.

Errors: a file that cannot be read in some rows (a truncated .sav) is one
:class:`~diaspora_survey.errors.InputFileError` naming the file and the row range; a file that
changes between the passes is refused. Formats other than .sav, .zsav and CSV are not read in
chunks (:data:`CHUNKED_FORMATS`): :func:`from_raw` wraps a wave read whole.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from .._util import sha256_file, trim_memory
from ..errors import InputFileError
from .base import RawWave, SourceInfo, VariableMeta
from .compact import _NULLABLE, smallest_int, to_int

#: formats read chunk by chunk (others are read whole, see :func:`from_raw`)
CHUNKED_FORMATS = ("sav", "zsav", "csv")


def check_chunk_rows(chunk_rows, *, where: str | None = None) -> int:
    """``chunk_rows`` as an int if it is a positive whole number of rows; else one InputFileError."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or int(chunk_rows) < 1:
        raise InputFileError(f"chunk_rows must be a positive whole number of rows, not {chunk_rows!r}",
                             code="input.bad_option", where=where,
                             hint="e.g. chunk_rows = 200000 (rows harmonised and written at a time)")
    return int(chunk_rows)


# ---- statistics of a column over all chunks --------------------------------------------------

class _Num:
    """What the whole-file reader's dtype decisions need of a numeric column, merged over chunks:
    min / max (NaN ignored), whether every value is whole (``x == trunc(x)``, as
    :func:`~diaspora_survey.io.compact.integer_dtypes`), missing values, ``x % 1 == 0`` for all
    non-missing values (harmonisation's test of integral ids), and the range of the finite values
    (the reader's date-range check)."""

    __slots__ = ("lo", "hi", "whole", "nan", "mod", "flo", "fhi", "fabs")

    def __init__(self):
        self.lo = self.hi = None
        self.whole, self.nan, self.mod = True, False, True
        self.flo = self.fhi = self.fabs = None

    def add(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        if x.dtype.kind in "iu":               # an integer chunk (CSV): exact bounds, nothing missing
            lo, hi = int(x.min()), int(x.max())
            self.lo = lo if self.lo is None else min(self.lo, lo)
            self.hi = hi if self.hi is None else max(self.hi, hi)
            self.flo = lo if self.flo is None else min(self.flo, lo)
            self.fhi = hi if self.fhi is None else max(self.fhi, hi)
            a = max(abs(lo), abs(hi))
            self.fabs = a if self.fabs is None else max(self.fabs, a)
            return
        x = np.asarray(x, dtype=np.float64)
        nan = np.isnan(x)
        if nan.any():
            self.nan = True
        vals = x[~nan] if self.nan else x
        if vals.size == 0:
            return
        with np.errstate(invalid="ignore"):
            self.whole = self.whole and bool((vals == np.trunc(vals)).all())
            self.mod = self.mod and bool((vals % 1 == 0).all())
        lo, hi = float(vals.min()), float(vals.max())
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)
        fin = vals[np.isfinite(vals)]
        if fin.size:
            flo, fhi = float(fin.min()), float(fin.max())
            self.flo = flo if self.flo is None else min(self.flo, flo)
            self.fhi = fhi if self.fhi is None else max(self.fhi, fhi)
            a = max(abs(flo), abs(fhi))
            self.fabs = a if self.fabs is None else max(self.fabs, a)

    def int_dtype(self):
        """The integer dtype the whole-file reader gives this float64 column, or None (stays float)."""
        if self.lo is None or not self.whole:
            return None
        lo, hi = float(self.lo), float(self.hi)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return None
        t = smallest_int(lo, hi)
        if t is None or (t is np.int64 and max(abs(lo), abs(hi)) > 2**53):
            return None
        return _NULLABLE[t] if self.nan else np.dtype(t)


class _Distinct:
    """Distinct non-missing values of a column in the order of first appearance, over chunks."""

    def __init__(self):
        self.parts: list[pd.Series] = []
        self.seen: pd.Index | None = None

    def add(self, s: pd.Series) -> None:
        u = s.dropna().drop_duplicates()
        if len(u) == 0:
            return
        if self.seen is not None:
            u = u[~u.isin(self.seen)]
            if len(u) == 0:
                return
        self.parts.append(u.reset_index(drop=True))
        idx = pd.Index(u.to_numpy(dtype=object))
        self.seen = idx if self.seen is None else self.seen.append(idx)

    def values(self) -> pd.Series:
        if not self.parts:
            return pd.Series([], dtype=object)
        if len(self.parts) == 1:
            return self.parts[0]
        return pd.concat(self.parts, ignore_index=True)


def _stamp(path: Path):
    st = path.stat()
    return (st.st_size, st.st_mtime_ns)


# ---- the common interface ---------------------------------------------------------------------

class ChunkedWave:
    """A wave to be read in chunks (see the module docstring). Attributes: ``path``, ``format``,
    ``columns`` (every column of the file, in file order), ``read_columns`` (those read, in file
    order), ``meta`` (:class:`VariableMeta` of the columns read), ``source``
    (:class:`SourceInfo`: rows, SHA-256, notes), ``warnings``, ``chunk_rows``, ``n_rows``."""

    def __init__(self, path, fmt: str, chunk_rows: int):
        self.path = Path(path)
        self.format = fmt
        self.chunk_rows = chunk_rows
        self.columns: list[str] = []
        self.read_columns: list[str] = []
        self.meta: dict[str, VariableMeta] = {}
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.n_rows = 0
        self.source: SourceInfo | None = None
        self._distinct: dict[str, pd.Series] = {}
        self._integral: dict[str, bool] = {}
        self._stamp = None

    def distinct(self, column: str) -> pd.Series:
        """The distinct non-missing values of ``column`` over the whole wave (first appearance
        first), with the column's dtype; only for the columns named in ``distinct=``."""
        return self._distinct[column]

    def integral(self, column: str) -> bool:
        """For a float column: every non-missing value is a whole number (``x % 1 == 0``) over the
        whole wave; False for other columns."""
        return self._integral.get(column, False)

    def chunks(self) -> Iterator[pd.DataFrame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_unchanged(self) -> None:
        if self._stamp is not None and _stamp(self.path) != self._stamp:
            raise InputFileError("the file changed while it was being read in chunks", code="input.changed",
                                 where=str(self.path), hint="run the command again once the file is complete")

    def _range_error(self, ex: InputFileError, start: int, stop: int) -> InputFileError:
        total = f" of {self.n_rows:,}" if self.n_rows else ""
        return InputFileError(f"rows {start + 1:,}–{stop:,}{total} cannot be read: {ex.message}",
                              code=ex.code, where=str(self.path), hint=ex.hint)

    def __repr__(self) -> str:
        return (f"ChunkedWave({str(self.path)!r}, format={self.format}, rows={self.n_rows}, "
                f"chunk_rows={self.chunk_rows})")


def open_chunked(path: str | os.PathLike, chunk_rows: int, *, columns: Sequence[str] | None = None,
                 distinct: Sequence[str] = (), encoding: str | None = None, sep: str | None = None,
                 decimal: str | None = None) -> ChunkedWave:
    """Open ``path`` for reading in chunks of ``chunk_rows`` rows (first pass included).

    ``columns``: the columns to read (default all; names not in the file are left out — the
    caller reports them); ``distinct``: columns whose distinct values are recorded;
    ``encoding``, ``sep``, ``decimal``: as :func:`~diaspora_survey.io.read_wave`. The format is
    recognised by content as :func:`read_wave` does; it must be one of :data:`CHUNKED_FORMATS`.
    """
    from .detect import resolve_format
    from .reader import check_readable

    p = Path(os.fspath(path))
    chunk_rows = check_chunk_rows(chunk_rows, where=str(p))
    check_readable(p)
    fmt, notes = resolve_format(p, None)
    if fmt not in CHUNKED_FORMATS:
        raise InputFileError(f"{fmt} files are not read in chunks", code="input.bad_option", where=str(p),
                             hint="chunked reading supports .sav, .zsav and CSV files; read it whole "
                                  "(diaspora_survey.io.chunks.from_raw) or convert it")
    if fmt != "csv" and (sep is not None or decimal is not None):
        raise InputFileError(f"sep= and decimal= apply to CSV files only, and this is a {fmt} file",
                             code="input.bad_option", where=str(p), hint="leave them out")
    cw: ChunkedWave
    if fmt == "csv":
        cw = _CsvChunks(p, chunk_rows, encoding=encoding, sep=sep, decimal=decimal, notes=notes)
    else:
        cw = _SavChunks(p, fmt, chunk_rows, encoding=encoding, notes=notes)
    cw._open(list(columns) if columns is not None else None, list(distinct))
    return cw


# ---- SPSS --------------------------------------------------------------------------------------

class _SavChunks(ChunkedWave):
    def __init__(self, path: Path, fmt: str, chunk_rows: int, *, encoding: str | None, notes: list[str]):
        super().__init__(path, fmt, chunk_rows)
        self._encoding = encoding
        self.notes = notes

    def _read(self, start: int, limit: int) -> pd.DataFrame:
        from .spss import _call

        try:
            df, _ = _call(self.path, self.format, self._encoding, self._reader, str(self.path),
                          row_offset=start, row_limit=limit, **self._kw)
        except InputFileError as ex:
            raise self._range_error(ex, start, start + limit) from None
        except MemoryError:
            raise InputFileError(f"not enough memory to read rows {start + 1:,}–{start + limit:,}",
                                 code="input.memory", where=str(self.path),
                                 hint="use a smaller chunk_rows") from None
        return df

    def _open(self, columns: list[str] | None, distinct: list[str]) -> None:
        from .spss import (_call, _pyreadstat, build_meta, check_declared_rows, check_encoding, iconv_name,
                           mojibake_warning, normalise_encoding)

        path, fmt = self.path, self.format
        pyreadstat = _pyreadstat()
        self._reader = pyreadstat.read_sav
        kw: dict[str, Any] = {"disable_datetime_conversion": True, "apply_value_formats": False,
                              "user_missing": True}
        if self._encoding is not None:
            check_encoding(self._encoding, where=str(path))
            kw["encoding"] = iconv_name(self._encoding)
        check_declared_rows(path, path.stat().st_size, self.warnings, memory=False)
        self._stamp = _stamp(path)
        _, m = _call(path, fmt, self._encoding, self._reader, str(path), metadataonly=True, **kw)
        self.columns = list(m.column_names)
        wanted = set(self.columns if columns is None else columns)
        self.read_columns = [c for c in self.columns if c in wanted]
        meta = build_meta(m, self.columns, fmt)
        declared = normalise_encoding(getattr(m, "file_encoding", None))
        used = normalise_encoding(self._encoding) if self._encoding else declared
        if self._encoding:
            own = {k: v for k, v in kw.items() if k != "encoding"}
            try:
                _, m0 = self._reader(str(path), metadataonly=True, **own)
                declared = normalise_encoding(getattr(m0, "file_encoding", None))
            except Exception:   # noqa: BLE001 - as read_pyreadstat: the declared one cannot be used
                declared = None
            self.notes.append(f"encoding {used} (given); the file declares "
                              + (f"{declared}" if declared else "an encoding that cannot be used"))
        kw["usecols"] = list(self.read_columns)
        self._kw = kw
        n_decl = m.number_rows if m.number_rows is not None and m.number_rows >= 0 else None
        self.n_rows = n_decl or 0
        rtypes = getattr(m, "readstat_variable_types", {}) or {}
        numeric = [c for c in self.read_columns if rtypes.get(c, "double") != "string"]
        stats = {c: _Num() for c in numeric}
        dist = {c: _Distinct() for c in distinct if c in self.read_columns}
        pos = 0
        step = self.chunk_rows
        while n_decl is None or pos < n_decl:
            limit = step if n_decl is None else min(step, n_decl - pos)
            df = self._read(pos, limit)
            got = len(df)
            for c in numeric:
                stats[c].add(df[c].to_numpy(dtype=np.float64, na_value=np.nan))
            for c, d in dist.items():
                d.add(df[c])
            pos += got
            del df
            trim_memory()
            if got < limit:
                break
        n = pos
        if n_decl is not None and n != n_decl:
            self.notes.append(f"header declares {n_decl} rows, {n} read")
            self.warnings.append(f"the file's header declares {n_decl:,} rows but {n:,} were "
                                 "read: the file may be truncated or damaged")
        self.n_rows = n
        # the whole-file reader's decisions (spss._finish), from the statistics of every row
        self._dates: dict[str, str] = {}
        self._ints: dict[str, Any] = {}
        from .spss import _MAX_S, _MIN_S

        for c in self.read_columns:
            vm = meta[c]
            if c in stats and vm.type in ("date", "datetime", "time"):
                st = stats[c]
                if vm.type == "time":
                    ok = st.fabs is None or st.fabs <= 9.2e12
                else:
                    ok = st.flo is None or (st.flo >= _MIN_S and st.fhi <= _MAX_S)
                if ok:
                    self._dates[c] = vm.type
                    continue
                self.warnings.append(f"column {vm.name!r} ({vm.format}): a value lies outside the range of "
                                     "dates (years 1–9999); the column is kept as raw numbers — seconds "
                                     "since 1582-10-14 (the SPSS epoch)")
                vm.type = "numeric"
            if c in stats:
                t = stats[c].int_dtype()
                if t is not None:
                    self._ints[c] = t
                else:
                    self._integral[c] = stats[c].mod
        self.meta = {c: meta[c] for c in self.read_columns}
        texts = [v.label or "" for v in meta.values()]
        texts += [lab for v in meta.values() for lab in v.value_labels.values() if isinstance(lab, str)]
        w = mojibake_warning(texts, used)
        if w:
            self.warnings.append(w)
        for c, d in dist.items():
            vals = self._convert(c, d.values())
            self._distinct[c] = pd.Series(vals).drop_duplicates().reset_index(drop=True)
        self.source = SourceInfo(path=str(path), format=fmt, encoding=used, sha256=sha256_file(path, 4 << 20),
                                 n_rows=n, n_columns=len(self.columns), notes=self.notes,
                                 file_label=getattr(m, "file_label", None) or None)
        self._check_unchanged()

    def _convert(self, c: str, s: pd.Series):
        """One column as the whole-file reader leaves it (spss._finish): dates, compact integers."""
        from .spss import _spss_seconds_to

        if c in self._dates:
            if s.dtype.kind not in "fiu":
                return s.array
            return _spss_seconds_to(s.to_numpy(dtype=np.float64, na_value=np.nan), self._dates[c])
        if c in self._ints:
            return to_int(s.to_numpy(dtype=np.float64, na_value=np.nan), self._ints[c])
        return s.array

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The rows in chunks of ``chunk_rows`` (index: row positions in the file)."""
        self._check_unchanged()
        pos = 0
        while pos < self.n_rows:
            limit = min(self.chunk_rows, self.n_rows - pos)
            df = self._read(pos, limit)
            if len(df) != limit:
                raise self._range_error(InputFileError(f"{len(df):,} row(s) read instead of {limit:,}",
                                                       code="input.corrupt",
                                                       hint="the file changed or is damaged; export it again"),
                                        pos, pos + limit)
            cols = {c: self._convert(c, df[c]) for c in self.read_columns}
            yield pd.DataFrame(cols, index=pd.RangeIndex(pos, pos + limit), copy=False)
            pos += limit
        self._check_unchanged()


# ---- CSV ---------------------------------------------------------------------------------------

def _csv_kind(s: pd.Series) -> str:
    """The parser's type of one column in one chunk: int, uint, bigint (whole numbers beyond 64
    bits: object), float, na (float, all missing), bool, boolna (True/False with missing values:
    object) or text."""
    k = s.dtype.kind
    if k == "i":
        return "int"
    if k == "u":
        return "uint"
    if k == "f":
        return "float" if s.notna().any() else "na"
    if k == "b":
        return "bool"
    if s.dtype == object:
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred == "boolean":
            return "boolna"
        if inferred == "integer":
            return "bigint"
    return "text"


def _final_kind(kinds: set[str], negative: bool = False) -> str | None:
    """The type pandas' C parser gives the whole column, from the types it gave each chunk (it
    tries int64, uint64, float64, then bool, else keeps the text); None where the parser's
    handling of whole numbers beyond 64 bits makes the whole-column type depend on more than
    the chunks' types (``negative``: the int chunks hold a negative number)."""
    k = kinds - {"na"}
    big = k & {"uint", "bigint"}
    if big:
        rest = k - {"uint", "bigint", "int"}
        if "na" in kinds or "text" in kinds:
            return None
        if "bigint" in k:
            return "bigint" if not rest else None
        if rest == {"float"}:
            return "float"
        if rest:
            return None
        return "text" if ("int" in k and negative) else "uint"
    if not k:
        return "float"
    if "text" in k:
        return "text"
    if k & {"bool", "boolna"}:
        if k - {"bool", "boolna"}:
            return "text"
        return "boolna" if ("boolna" in k or "na" in kinds) else "bool"
    if "float" in k or "na" in kinds:
        return "float"
    return "int"


_UNITS = {"s": 0, "ms": 1, "us": 2, "ns": 3}


class _Text:
    """The decimal-comma and date decisions of csv.read_csv_file for one text column, merged over
    chunks (decimal comma: every value a comma number; dates: the first 5,000 distinct values
    match a format and every value parses with it)."""

    def __init__(self, check_decimal: bool):
        from .csv import _ISO_DATE, _ISO_DT, _RU_DATE

        self.check_decimal = check_decimal
        self.dec_ok, self.dec_any, self.dec_comma = check_decimal, False, False
        self.conv = _Num()
        self.first: list = []
        self.formats = [(_ISO_DATE, "%Y-%m-%d", "date"), (_RU_DATE, "%d.%m.%Y", "date"),
                        (_ISO_DT, "ISO8601", "datetime")]
        self.alive = [True] * 3
        self.unit: str | None = None

    def add(self, s: pd.Series) -> None:
        from .csv import _decimal_comma_ok, _to_float_comma

        if not s.notna().any():
            return
        if self.dec_ok:
            ok, comma = _decimal_comma_ok(s)
            if ok:
                self.dec_any = True
                self.dec_comma = self.dec_comma or comma
                self.conv.add(_to_float_comma(s))
            else:
                self.dec_ok = False
        if any(self.alive):
            new = pd.Series([], dtype=object)
            if len(self.first) < 5000:      # the column's first 5,000 distinct values, as read_csv_file
                u = pd.unique(s.dropna().astype(str).to_numpy(dtype=object))
                if self.first:
                    u = u[~pd.Index(u).isin(self.first)]
                new = pd.Series(u[:5000 - len(self.first)], dtype=object)
                self.first.extend(new.tolist())
            for i, (rx, fmt, kind) in enumerate(self.formats):
                if not self.alive[i]:
                    continue
                if len(new) and not new.str.match(rx.pattern).all():   # the earlier ones matched
                    self.alive[i] = False
                    continue
                conv = pd.to_datetime(s, format=fmt, errors="coerce")
                if conv.notna().sum() != s.notna().sum():
                    self.alive[i] = False
                elif kind == "datetime":
                    unit = np.datetime_data(conv.dtype)[0]
                    if self.unit is None or _UNITS.get(unit, 3) > _UNITS.get(self.unit, 3):
                        self.unit = unit

    def decision(self, decimal: str | None):
        """("comma", None) | ("date"/"datetime", (format, dtype)) | (None, None)."""
        if self.check_decimal and self.dec_ok and self.dec_any and (self.dec_comma or decimal == ","):
            return "comma", None
        for i, (_, fmt, kind) in enumerate(self.formats):
            if self.alive[i] and self.first:
                return kind, (fmt, "datetime64[s]" if kind == "date" else f"datetime64[{self.unit or 'ns'}]")
        return None, None


class _CsvChunks(ChunkedWave):
    def __init__(self, path: Path, chunk_rows: int, *, encoding, sep, decimal, notes: list[str]):
        super().__init__(path, "csv", chunk_rows)
        self._opts = {"encoding": encoding, "sep": sep, "decimal": decimal}
        self.notes = notes

    def _reader(self, dtype=None, usecols=None):
        kwargs = dict(self._kwargs)
        if usecols is not None:
            kwargs["usecols"] = usecols
        elif self._usecols is not None:
            kwargs["usecols"] = self._usecols
        if dtype:
            kwargs["dtype"] = dtype
        return pd.read_csv(self.path, chunksize=self.chunk_rows, **kwargs)

    def _iter(self, dtype=None, usecols=None):
        """(start row, chunk) pairs; a parser error names the rows."""
        pos = 0
        it = self._reader(dtype, usecols)
        try:
            while True:
                try:
                    df = next(it)
                except StopIteration:
                    return
                except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as ex:
                    raise self._range_error(InputFileError(f"cannot parse the CSV file: {str(ex).strip()}",
                                                           code="input.csv_parse",
                                                           hint="check the separator (sep=) and quoting"),
                                            pos, pos + self.chunk_rows) from None
                yield pos, df
                pos += len(df)
        finally:
            it.close()

    def _open(self, columns: list[str] | None, distinct: list[str]) -> None:
        import re

        from .csv import NA_VALUES, _scan, csv_options

        path = self.path
        enc, sep, header, kwargs = csv_options(path, notes=self.notes, **self._opts)
        self._stamp = _stamp(path)
        n_records = _scan(path, enc, sep, len(header), None)
        self._kwargs = kwargs
        try:
            names = [str(c) for c in pd.read_csv(path, nrows=0, **kwargs).columns]
        except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as ex:
            raise InputFileError(f"cannot parse the CSV file: {str(ex).strip()}", code="input.csv_parse",
                                 where=str(path), hint="check the separator (sep=) and quoting") from None
        self.columns = names
        wanted = set(names if columns is None else columns)
        self.read_columns = [c for c in names if c in wanted]
        # pandas renames repeated header names (a, a.1): then read every column and select
        self._usecols = list(self.read_columns) if names == [str(h) for h in header] else None
        decimal = self._opts["decimal"]
        cols = self.read_columns
        kinds: dict[str, set] = {c: set() for c in cols}
        nums = {c: _Num() for c in cols}
        texts = {c: _Text(decimal != ".") for c in cols}
        dist = {c: _Distinct() for c in distinct if c in cols}
        quirk: set[str] = set()
        na_tokens = [t for t in NA_VALUES]
        n = 0
        for _, df in self._iter():
            for c in cols:
                s = df[c]
                k = _csv_kind(s)
                kinds[c].add(k)
                if k in ("int", "uint", "float", "na"):
                    nums[c].add(s.to_numpy())
                elif k == "text":
                    texts[c].add(s)
                    if s.isin(na_tokens).any():   # the parser kept missing-value tokens as text:
                        quirk.add(c)              # it does so beside numbers beyond 64 bits
                if c in dist:
                    dist[c].add(s)
            n += len(df)
            del df
            trim_memory()
        final = {}
        for c in cols:
            fk = _final_kind(kinds[c], negative=nums[c].lo is not None and nums[c].lo < 0)
            if fk is None or c in quirk:
                raise InputFileError(f"column {c!r} holds whole numbers beyond the 64-bit range together "
                                     "with other values: it cannot be read in chunks exactly as the "
                                     "whole file is read", code="input.chunked_unsupported", where=str(path),
                                     hint="harmonise this wave without chunk_rows, or quote that column's "
                                          "values in the file (then they are text)")
            final[c] = fk
        # text columns that were not text in every chunk: read them again as text
        again = [c for c in cols if final[c] == "text" and kinds[c] - {"text", "na"}]
        if again:
            for c in again:
                texts[c] = _Text(decimal != ".")
                if c in dist:
                    dist[c] = _Distinct()
            usecols = again if self._usecols is not None else None
            for _, df in self._iter(dtype={c: "str" for c in again}, usecols=usecols):
                for c in again:
                    texts[c].add(df[c])
                    if c in dist:
                        dist[c].add(df[c])
        self._final = final
        self._text_dtype = {c: "str" for c in cols if final[c] == "text"}
        self._plan: dict[str, tuple] = {}
        converted, meta = [], {}
        for c in cols:
            fk = final[c]
            vtype = "numeric"
            if fk == "text":
                what, how = texts[c].decision(decimal)
                if what == "comma":
                    self._plan[c] = ("comma", texts[c].conv.int_dtype())
                    converted.append(c)
                elif what in ("date", "datetime"):
                    self._plan[c] = (what, how)
                    self.notes.append(f"column {c!r}: {what}s parsed")
                    vtype = what
                else:
                    vtype = "string"
            elif fk == "boolna":
                vtype = "string"
            elif fk == "bigint":
                if decimal == ",":
                    raise InputFileError(f"column {c!r} holds whole numbers beyond the 64-bit range: with "
                                         "decimal=',' it cannot be read in chunks exactly as the whole "
                                         "file is read", code="input.chunked_unsupported", where=str(path),
                                         hint="harmonise this wave without chunk_rows")
                vtype = "string"
            elif fk == "float":
                self._plan[c] = ("float", nums[c].int_dtype())
                if nums[c].int_dtype() is None:
                    self._integral[c] = nums[c].mod
            elif fk == "int":
                t = smallest_int(nums[c].lo, nums[c].hi) if nums[c].lo is not None else None
                self._plan[c] = ("int", np.dtype(t) if t is not None and np.dtype(t) != np.int64 else None)
            if c in self._plan and self._plan[c][0] == "comma" and self._plan[c][1] is None:
                self._integral[c] = texts[c].conv.mod
            meta[c] = VariableMeta(name=c, type=vtype, measure="unknown")
        if converted:
            self.notes.append(("decimal comma (given)" if decimal == "," else "decimal comma detected")
                              + f" in: {', '.join(converted[:20])}" + (" …" if len(converted) > 20 else ""))
        if n != n_records:
            self.notes.append(f"{n_records} records in the file, {n} rows parsed")
        dupes = [c for c in names if re.search(r"\.\d+$", c) and c not in header]
        if dupes:
            self.warnings.append(f"duplicate column names were renamed: {', '.join(dupes)}")
        unnamed = [c for c in names if c.startswith("Unnamed: ")]
        if unnamed:
            self.warnings.append(f"columns without a name in the header: {', '.join(unnamed)}")
        self.meta = meta
        self.n_rows = n
        for c, d in dist.items():
            vals = self._convert(c, d.values())
            self._distinct[c] = pd.Series(vals).drop_duplicates().reset_index(drop=True)
        self.source = SourceInfo(path=str(path), format="csv", encoding=enc, sha256=sha256_file(path, 4 << 20), n_rows=n,
                                 n_columns=len(names), notes=self.notes)
        self._check_unchanged()

    def _convert(self, c: str, s: pd.Series):
        """One column of a chunk as the whole-file reader leaves it (csv.read_csv_file)."""
        from .csv import _to_float_comma

        fk = self._final[c]
        plan = self._plan.get(c)
        if fk == "text":
            if plan is None:
                return s.astype("str").array if s.dtype != "str" else s.array
            what, how = plan
            if what == "comma":
                x = _to_float_comma(s)
                return to_int(x, how) if how is not None else x
            fmt, dtype = how
            return pd.to_datetime(s, format=fmt, errors="coerce").astype(dtype).array
        if fk == "float":
            x = s.to_numpy(dtype=np.float64, na_value=np.nan)
            return to_int(x, plan[1]) if plan[1] is not None else x
        if fk == "int":
            x = s.to_numpy()
            return x.astype(plan[1]) if plan[1] is not None else x
        if fk in ("boolna", "bigint"):
            return s.astype(object).to_numpy()
        return s.to_numpy()

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The rows in chunks of ``chunk_rows`` (index: row positions in the data)."""
        self._check_unchanged()
        got = 0
        for pos, df in self._iter(dtype=self._text_dtype or None):
            cols = {c: self._convert(c, df[c]) for c in self.read_columns}
            yield pd.DataFrame(cols, index=pd.RangeIndex(pos, pos + len(df)), copy=False)
            got = pos + len(df)
        if got != self.n_rows:
            raise InputFileError(f"{got:,} rows read, {self.n_rows:,} in the first pass",
                                 code="input.changed", where=str(self.path),
                                 hint="the file changed while it was read; run the command again")
        self._check_unchanged()


# ---- a wave read whole -------------------------------------------------------------------------

class _FrameChunks(ChunkedWave):
    """A :class:`RawWave` in memory, cut into chunks (formats without chunked reading, tests)."""

    def __init__(self, wave: RawWave, chunk_rows: int, columns, distinct):
        super().__init__(wave.source.path, wave.source.format, chunk_rows)
        data = wave.data
        self.columns = [str(c) for c in data.columns]
        wanted = set(self.columns if columns is None else columns)
        self.read_columns = [c for c in self.columns if c in wanted]
        self.meta = {c: wave.meta[c] for c in self.read_columns if c in wave.meta}
        self.warnings = list(wave.warnings)
        self.source = wave.source
        self.n_rows = len(data)
        self._data = data[self.read_columns]
        for c in self.read_columns:
            s = data[c]
            if pd.api.types.is_float_dtype(s.dtype):
                self._integral[c] = bool((s.dropna() % 1 == 0).all())
        for c in distinct:
            if c in self.read_columns:
                self._distinct[c] = data[c].dropna().drop_duplicates().reset_index(drop=True)

    def chunks(self) -> Iterator[pd.DataFrame]:
        for pos in range(0, self.n_rows, self.chunk_rows):
            yield self._data.iloc[pos:pos + self.chunk_rows]


def from_raw(wave: RawWave, chunk_rows: int, *, columns: Sequence[str] | None = None,
             distinct: Sequence[str] = ()) -> ChunkedWave:
    """A wave already read whole (:func:`read_wave`) as a :class:`ChunkedWave` of ``chunk_rows`` rows."""
    return _FrameChunks(wave, check_chunk_rows(chunk_rows, where=wave.source.path), columns, list(distinct))


__all__ = ["CHUNKED_FORMATS", "ChunkedWave", "check_chunk_rows", "from_raw", "open_chunked"]
