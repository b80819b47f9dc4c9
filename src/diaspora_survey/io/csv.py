"""CSV / TSV / TXT waves: encoding, separator, quoting and decimal comma, detected and said.

Steps (each decision is written to ``source.notes``):

1. **encoding** — ``encoding=`` or :func:`encoding.detect_encoding` on a sample (the whole
   file up to 8 MB, else its first 4 MB and last 1 MB);
2. **separator** — ``sep=`` or the candidate among ``, ; TAB |`` that splits the first lines
   (quote-aware) into the same number (> 1) of fields most consistently;
3. **one pass over the raw lines** that checks every line decodes under the encoding
   (else: error naming the line and the offending bytes, hint ``encoding=``) and every
   record has as many fields as the header (else: error naming the line — a ragged file
   is never silently padded or cut);
4. pandas' C parser reads the values: only empty cells and the usual NA spellings
   (``NA``, ``N/A``, ``#N/A``, ``NULL``, ``NaN``, SPSS's ``#NULL!``) are missing; other
   text is kept as written;
5. **decimal comma** — ``decimal=`` or detected: text columns whose every value is a number
   written with a decimal comma (``1250,50``, ``1 250,50``) become float64;
6. ISO dates (``2022-03-15``), ISO date-times and Russian dates (``15.03.2022``) become
   datetime64 when a whole column parses; integral columns get the smallest integer dtype
   (nullable ``Int8`` … where cells are empty); other floats stay float64.
"""
from __future__ import annotations

import csv as _csv
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputFileError
from .base import VariableMeta
from .compact import compact_float_array, smallest_int
from .encoding import check_encoding, detect_encoding

NA_VALUES = ["", "NA", "N/A", "#N/A", "NULL", "NaN", "nan", "#NULL!"]
SEPARATORS = [",", ";", "\t", "|"]
SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_DEC_COMMA = re.compile(r"^\s*[+-]?(?:\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)(?:,\d+)?\s*$")
_DEC_POINT = re.compile(r"^\s*[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?\s*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_RU_DATE = re.compile(r"^\d{2}\.\d{2}\.\d{4}$")


def _sample(path: Path) -> bytes:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size <= 8 << 20:
            return fh.read()
        head = fh.read(4 << 20)
        fh.seek(size - (1 << 20))
        tail = fh.read()
    nl = tail.find(b"\n")
    return head + b"\n" + (tail[nl + 1:] if nl >= 0 else b"")


def _split(line: str, sep: str) -> list[str]:
    return next(_csv.reader([line], delimiter=sep, quotechar='"', doublequote=True))


def _records(text: str, limit: int) -> list[str]:
    """First ``limit`` logical records of ``text`` (quoted newlines kept inside a record)."""
    out, buf, inq = [], [], False
    for line in text.splitlines():
        buf.append(line)
        if line.count('"') % 2:
            inq = not inq
        if not inq:
            rec = "\n".join(buf)
            buf = []
            if rec.strip():
                out.append(rec)
            if len(out) >= limit:
                break
    return out


def detect_sep(text: str, suffix: str) -> tuple[str, str]:
    recs = _records(text, 200)
    if not recs:
        return ("\t" if suffix in (".tsv", ".tab") else ","), "no data lines; default"
    best = None
    for sep in SEPARATORS:
        try:
            counts = [len(_split(r, sep)) for r in recs]
        except _csv.Error:
            continue
        header = counts[0]
        if header < 2:
            continue
        agree = sum(1 for c in counts if c == header) / len(counts)
        key = (agree, header if agree > 0.9 else 0, sep == ("\t" if suffix in (".tsv", ".tab") else ","))
        if best is None or key > best[0]:
            best = (key, sep, header, agree)
    if best is None:
        return ("\t" if suffix in (".tsv", ".tab") else ","), "no separator splits the header; one column"
    _, sep, header, agree = best
    return sep, f"{SEP_NAMES[sep]} ({header} fields in {agree:.0%} of the first {len(recs)} records)"


def _scan(path: Path, enc: str, sep: str, n_header: int, progress) -> int:
    """Check every line decodes and every record has ``n_header`` fields; return the record count."""
    name = path.name
    if enc.startswith(("utf-16", "utf-32")):
        return _scan_text(path, enc, sep, n_header)
    records = 0
    rec_start = 0
    buf: list[str] = []
    inq = False
    first = True
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if progress is not None:
                progress(len(raw))
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError as ex:
                bad = raw[max(ex.start - 0, 0):ex.end + 3][:8]
                raise InputFileError(
                    f"line {lineno} cannot be decoded as {enc}: bytes {bad!r} at column {ex.start + 1}",
                    code="input.encoding", where=f"{path}:{lineno}",
                    hint="the file mixes encodings or is not in " + enc + "; pass encoding= (e.g. 'cp1251', "
                         "'koi8-r', 'cp866', 'utf-8') or re-export it as UTF-8") from None
            if first and text.startswith("\ufeff"):
                text = text[1:]
            first = False
            if not buf:
                rec_start = lineno
                if not inq and not text.strip():
                    continue  # blank line: skipped, as pandas does
            buf.append(text)
            if raw.count(b'"') % 2:
                inq = not inq
            if inq:
                continue
            record = "".join(buf) if len(buf) > 1 else text
            buf = []
            if '"' in record:
                try:
                    n = len(_split(record.rstrip("\r\n"), sep))
                except _csv.Error as ex:
                    raise InputFileError(f"line {rec_start}: malformed quoting ({ex})", code="input.csv_ragged",
                                         where=f"{path}:{rec_start}",
                                         hint="a quote character opens a field that never closes") from None
            else:
                n = record.count(sep) + 1
            if n != n_header:
                more = "more" if n > n_header else "fewer"
                raise InputFileError(
                    f"line {rec_start} has {n} fields, the header has {n_header} ({more} fields than columns)",
                    code="input.csv_ragged", where=f"{path}:{rec_start}",
                    hint=f"a ragged file is not read by guessing: fix line {rec_start} of {name} (an unquoted "
                         f"{SEP_NAMES.get(sep, repr(sep))} inside a value? a broken line?), or pass sep= if the "
                         "separator was misdetected")
            records += 1
    if inq:
        raise InputFileError(f"a quoted field opened on line {rec_start} never closes (unterminated quote)",
                             code="input.csv_ragged", where=f"{path}:{rec_start}",
                             hint=f"fix the quote on line {rec_start} of {name}")
    return records - 1


def _scan_text(path: Path, enc: str, sep: str, n_header: int) -> int:
    try:
        text = path.read_text(encoding=enc)
    except UnicodeDecodeError as ex:
        raise InputFileError(f"the file cannot be decoded as {enc} at byte {ex.start}", code="input.encoding",
                             where=str(path), hint="pass encoding=") from None
    rows = list(_csv.reader(io.StringIO(text), delimiter=sep))
    rows = [r for r in rows if r]
    for i, r in enumerate(rows[1:], 2):
        if len(r) != n_header:
            raise InputFileError(f"record {i} has {len(r)} fields, the header has {n_header}",
                                 code="input.csv_ragged", where=f"{path}:{i}", hint="fix the record or pass sep=")
    return len(rows) - 1


class _Counting(io.RawIOBase):
    """Binary file wrapper that reports bytes read (for the progress bar)."""

    def __init__(self, fh, cb):
        self._fh, self._cb = fh, cb

    def readable(self):
        return True

    def readinto(self, b):
        n = self._fh.readinto(b)
        if n:
            self._cb(n)
        return n


def _decimal_comma_ok(values: pd.Series) -> tuple[bool, bool]:
    """(all values are comma-decimal numbers, at least one has a comma)."""
    s = values.dropna().astype(str)
    if s.empty:
        return False, False
    u = pd.Series(s.unique())
    ok = u.str.match(_DEC_COMMA.pattern).all()
    return bool(ok), bool(ok and u.str.contains(",", regex=False).any())


def _to_float_comma(values: pd.Series) -> np.ndarray:
    s = values.astype("object")
    out = np.full(len(s), np.nan)
    mask = s.notna().to_numpy()
    cleaned = (s[mask].astype(str).str.replace(r"[\s\u00a0\u202f]", "", regex=True)
               .str.replace(",", ".", regex=False))
    out[mask] = cleaned.astype(np.float64).to_numpy()
    return out


def _try_dates(s: pd.Series):
    v = s.dropna().astype(str)
    if v.empty:
        return None, None
    u = pd.Series(v.unique()[:5000])
    for rx, fmt, kind in ((_ISO_DATE, "%Y-%m-%d", "date"), (_RU_DATE, "%d.%m.%Y", "date"),
                          (_ISO_DT, "ISO8601", "datetime")):
        if u.str.match(rx.pattern).all():
            conv = pd.to_datetime(s, format=fmt, errors="coerce")
            if conv.notna().sum() == s.notna().sum():
                if kind == "date":
                    conv = conv.astype("datetime64[s]")
                return conv, kind
    return None, None


def read_csv_file(path: Path, *, encoding: str | None, sep: str | None, decimal: str | None,
                  columns: list[str] | None, chunksize: int | None, progress: bool,
                  compact: bool, notes: list[str], warnings: list[str]):
    """Read a delimited text file; returns (data, meta, encoding)."""
    where = str(path)
    sample = _sample(path)
    if encoding:
        enc = check_encoding(encoding, where=where)
        if enc == "utf-8" and sample.startswith(b"\xef\xbb\xbf"):
            enc = "utf-8-sig"
        notes.append(f"encoding {enc} (given)")
    else:
        enc, why = detect_encoding(sample)
        notes.append(f"encoding {enc} detected: {why}")
    try:
        text = sample.decode(enc, errors="replace")
    except LookupError:  # pragma: no cover
        raise InputFileError(f"unknown encoding {enc!r}", code="input.bad_option", where=where) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if sep is not None:
        if not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n':
            raise InputFileError(f"sep must be one character such as ',' ';' '\\t' '|', not {sep!r}",
                                 code="input.bad_option", where=where)
        notes.append(f"separator {SEP_NAMES.get(sep, repr(sep))} (given)")
    else:
        sep, why = detect_sep(text, path.suffix.lower())
        notes.append(f"separator {why}")
    if decimal not in (None, ".", ","):
        raise InputFileError(f"decimal must be '.' or ',', not {decimal!r}", code="input.bad_option", where=where)
    first = _records(text, 1)
    if not first:
        raise InputFileError("the file has no header line (only blank lines)", code="input.empty", where=where,
                             hint="export the data again with a header row of variable names")
    header = _split(first[0], sep)
    n_header = len(header)

    size = path.stat().st_size
    prog = None
    if progress:
        from .spss import _Progress  # rich bar, shared

        prog = _Progress(True, size * 2, f"reading {path.name}")
    try:
        n_records = _scan(path, enc, sep, n_header, prog.advance if prog else None)
        kwargs: dict[str, Any] = dict(sep=sep, encoding=enc, na_values=NA_VALUES, keep_default_na=False,
                                      quotechar='"', doublequote=True, low_memory=False, engine="c",
                                      skip_blank_lines=True)
        if columns is not None:
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputFileError(f"no such column(s): {', '.join(map(repr, missing))}",
                                     code="input.unknown_column", where=where,
                                     hint=f"the header has: {', '.join(header[:30])}")
            kwargs["usecols"] = list(columns)
        if decimal == "," and sep != ",":
            kwargs["decimal"] = ","
        try:
            with open(path, "rb") as raw:
                src = io.BufferedReader(_Counting(raw, prog.advance)) if prog else raw
                if chunksize:
                    parts = list(pd.read_csv(src, chunksize=chunksize, **kwargs))
                    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=header)
                    notes.append(f"read in {len(parts)} chunk(s) of {chunksize} rows")
                else:
                    data = pd.read_csv(src, **kwargs)
        except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as ex:
            m = re.search(r"line (\d+)", str(ex))
            line = f":{m.group(1)}" if m else ""
            raise InputFileError(f"cannot parse the CSV file: {str(ex).strip()}", code="input.csv_parse",
                                 where=f"{path}{line}", hint="check the separator (sep=) and quoting") from None
    finally:
        if prog:
            prog.close()
    if columns is not None:
        data = data[list(columns)]
    if len(data) != n_records:
        notes.append(f"{n_records} records in the file, {len(data)} rows parsed")
    dupes = [c for c in data.columns if re.search(r"\.\d+$", str(c)) and str(c) not in header]
    if dupes:
        warnings.append(f"duplicate column names were renamed: {', '.join(dupes)}")
    unnamed = [c for c in data.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        warnings.append(f"columns without a name in the header: {', '.join(unnamed)}")

    # decimal comma
    converted = []
    if decimal != ".":
        for col in data.columns:
            s = data[col]
            if s.dtype.kind in "OSU" or isinstance(s.dtype, pd.StringDtype):
                ok, has_comma = _decimal_comma_ok(s)
                if ok and (has_comma or decimal == ","):
                    data[col] = _to_float_comma(s)
                    converted.append(str(col))
    if converted:
        notes.append(("decimal comma (given)" if decimal == "," else "decimal comma detected")
                     + f" in: {', '.join(converted[:20])}" + (" …" if len(converted) > 20 else ""))

    meta: dict[str, VariableMeta] = {}
    for col in data.columns:
        s = data[col]
        vtype = "numeric"
        if s.dtype.kind in "OSU" or isinstance(s.dtype, pd.StringDtype):
            conv, kind = _try_dates(s)
            if conv is not None:
                data[col] = conv
                vtype = kind
                notes.append(f"column {col!r}: {kind}s parsed")
            else:
                vtype = "string"
        elif s.dtype.kind == "M":
            vtype = "datetime"
        elif s.dtype.kind == "b":
            vtype = "numeric"
        if compact and vtype == "numeric":
            arr = data[col].to_numpy()
            if arr.dtype == np.float64:
                out = compact_float_array(arr)
                if not (isinstance(out, np.ndarray) and out.dtype == np.float64):
                    data[col] = out
            elif arr.dtype.kind == "i" and arr.size:
                t = smallest_int(arr.min(), arr.max())
                if t is not None and np.dtype(t) != arr.dtype:
                    data[col] = arr.astype(t)
        meta[str(col)] = VariableMeta(name=str(col), type=vtype, measure="unknown")
    return data, meta, enc
