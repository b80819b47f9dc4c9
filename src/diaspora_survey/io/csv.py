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
from .compact import compact_numeric
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
    limit = _csv.field_size_limit()
    if len(line) >= limit:   # a very long record must not hide the separator (csv's field limit)
        _csv.field_size_limit(len(line) + 1)
    try:
        return next(_csv.reader([line], delimiter=sep, quotechar='"', doublequote=True))
    finally:
        _csv.field_size_limit(limit)


def _records(text: str, limit: int) -> list[str]:
    """First ``limit`` logical records of ``text`` (quoted newlines kept inside a record)."""
    head = text[:1 << 20]
    if len(text) > len(head):  # split only the first megabyte unless the records are that long
        got = _records(head[:head.rfind("\n") + 1], limit)
        if len(got) >= limit:
            return got
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


#: bytes per block of the vectorised scan (temporaries are a few times this)
SCAN_BLOCK = 4 << 20


def _byte_safe(enc: str) -> bool:
    """True for ASCII-compatible encodings in which bytes < 0x80 are always ASCII characters
    (UTF-8 and the single-byte code pages): separators, quotes and newlines can then be found
    in the raw bytes. Not for UTF-16/32, EBCDIC or Shift_JIS/GBK/Big5 (whose second bytes may be
    ``|`` or ``\\``)."""
    import codecs

    name = codecs.lookup(enc).name
    if name in ("utf-8", "utf-8-sig"):
        return True
    try:
        if bytes(range(128)).decode(enc) != "".join(map(chr, range(128))):
            return False
    except UnicodeDecodeError:
        return False
    return len(bytes(range(128, 256)).decode(enc, errors="replace")) == 128


def _undefined_bytes(enc: str):
    """The byte values a single-byte code page cannot decode (e.g. 0x98 in Windows-1251); None for UTF-8."""
    import codecs

    if codecs.lookup(enc).name in ("utf-8", "utf-8-sig"):
        return None
    return [b for b in range(256) if _undecodable(bytes([b]), enc)]


def _undecodable(b: bytes, enc: str) -> bool:
    try:
        b.decode(enc)
        return False
    except UnicodeDecodeError:
        return True


def _encoding_error(path: Path, enc: str, block: bytes, ex: UnicodeDecodeError, line_base: int):
    line_start = block.rfind(b"\n", 0, ex.start) + 1
    lineno = line_base + block.count(b"\n", 0, ex.start) + 1
    bad = block[ex.start:ex.end + 3][:8]
    return InputFileError(
        f"line {lineno} cannot be decoded as {enc}: bytes {bad!r} at column {ex.start - line_start + 1}",
        code="input.encoding", where=f"{path}:{lineno}",
        hint="the file mixes encodings or is not in " + enc + "; pass encoding= (e.g. 'cp1251', "
             "'koi8-r', 'cp866', 'utf-8') or re-export it as UTF-8")


def _scan(path: Path, enc: str, sep: str, n_header: int, progress) -> int:
    """Check every line decodes and every record has ``n_header`` fields; return the record count.

    Vectorised over the raw bytes, in blocks of :data:`SCAN_BLOCK` cut at line ends: each
    block is checked for undecodable bytes (UTF-8: decoded once in C; single-byte code pages:
    a look-up of the few bytes they lack), and an undecodable byte is reported with its line
    and column; with numpy, a quote-parity mask (``"`` toggles, ``""`` toggles twice) finds the
    separators and line ends outside quoted fields, and ``reduceat`` gives the fields per
    record. Blank records are skipped, as pandas does. No Python loop over rows.
    Other encodings (UTF-16/32, Shift_JIS …) are decoded whole and scanned as UTF-8.
    """
    if _byte_safe(enc):
        with open(path, "rb") as fh:
            return _scan_chunks(iter(lambda: fh.read(SCAN_BLOCK), b""), path, enc, sep, n_header, progress)
    data = path.read_bytes()
    try:
        text = data.decode(enc)
    except UnicodeDecodeError as ex:
        lineno = data[:ex.start].decode(enc, errors="replace").count("\n") + 1
        raise InputFileError(f"line {lineno} cannot be decoded as {enc} (byte {ex.start} of the file)",
                             code="input.encoding", where=f"{path}:{lineno}",
                             hint="pass encoding= (e.g. 'utf-8', 'cp1251') or re-export the file as UTF-8") from None
    if progress is not None:
        progress(len(data))
    utf8 = text.lstrip("\ufeff").encode("utf-8")
    del data, text
    blocks = (utf8[i:i + SCAN_BLOCK] for i in range(0, len(utf8), SCAN_BLOCK))
    return _scan_chunks(blocks, path, "utf-8", sep, n_header, None)


def _scan_chunks(chunks, path: Path, enc: str, sep: str, n_header: int, progress) -> int:
    """The vectorised scan of :func:`_scan` over an iterator of byte blocks in ``enc`` (byte-safe)."""
    name = path.name
    sep_b = sep.encode("utf-8" if enc.startswith("utf-8") else enc, errors="replace")
    if len(sep_b) != 1:
        raise InputFileError(f"the separator {sep!r} is not a single byte in {enc}", code="input.bad_option",
                             where=str(path), hint="use an ASCII separator such as ',' ';' '\\t' or '|'")
    sep_code = sep_b[0]
    undefined = _undefined_bytes(enc)
    records = 0
    line_base = 0          # raw lines before the current block
    parity = 0             # inside a quoted field at the block start?
    part_seps = 0          # separators, non-blank bytes and first line of the record open at the block end
    part_nonws = 0
    part_line = 1
    pending: list[bytes] = []   # bytes after the last line end, until the next one arrives
    chunks = iter(chunks)
    while True:
        chunk = next(chunks, b"")
        if progress is not None and chunk:
            progress(len(chunk))
        if chunk:
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:          # no line end yet: read on (joined once, not copied per block)
                pending.append(chunk)
                continue
            block = b"".join([*pending, chunk[:cut]]) if pending else chunk[:cut]
            pending = [chunk[cut:]] if cut < len(chunk) else []
        else:
            block = b"".join(pending)
            pending = []
            if not block:
                break
        if undefined is None:
            try:
                block.decode(enc)
            except UnicodeDecodeError as ex:
                raise _encoding_error(path, enc, block, ex, line_base) from None
        arr = np.frombuffer(block, dtype=np.uint8)
        if undefined is not None and any((arr == b).any() for b in undefined):  # single-byte code page
            try:
                block.decode(enc)
            except UnicodeDecodeError as ex:
                raise _encoding_error(path, enc, block, ex, line_base) from None
        nl_all = np.flatnonzero(arr == 10)
        is_sep = arr == sep_code
        if (arr == 34).any():
            inq = np.bitwise_xor.accumulate((arr == 34).view(np.uint8))
            if parity:
                inq ^= 1
            nl = nl_all[inq[nl_all] == 0]                  # record ends: line ends outside quotes
            is_sep &= inq == 0
            end_parity = int(inq[-1])
            del inq
        elif parity:                                       # the whole block is inside a quoted field
            nl = nl_all[:0]
            is_sep[:] = False
            end_parity = 1
        else:
            nl = nl_all
            end_parity = 0
        k = nl.size
        # record j is the byte range [starts[j], starts[j + 1]); the last one (k) may be empty
        starts = np.concatenate(([0], nl + 1))
        seg = starts[starts < arr.size]
        seps = np.zeros(k + 1, dtype=np.int64)
        nonws = np.zeros(k + 1, dtype=np.int64)
        if seg.size:
            seps[:seg.size] = np.add.reduceat(is_sep.view(np.uint8), seg, dtype=np.int64)
            # not whitespace (TAB, LF, VT, FF, CR, space): > 32, or a control byte outside 9–13
            solid = (arr > 32) | (arr < 9) | ((arr > 13) & (arr < 32))
            nonws[:seg.size] = np.maximum.reduceat(solid.view(np.uint8), seg)
            del solid
        del is_sep
        # first line of each record: 1 + line ends before its first byte
        if k == nl_all.size:
            starts_line = line_base + np.arange(2, k + 2)
        else:
            starts_line = line_base + np.searchsorted(nl_all, nl + 1) + 1
        seps[0] += part_seps
        nonws[0] += part_nonws
        lines = np.concatenate(([part_line], starts_line))
        keep = nonws[:k] > 0
        fields = seps[:k][keep] + 1
        wrong = np.flatnonzero(fields != n_header)
        if wrong.size:
            n = int(fields[wrong[0]])
            raise _ragged(path, name, int(lines[:k][keep][wrong[0]]), n, n_header, sep)
        records += int(keep.sum())
        part_seps, part_nonws, part_line = int(seps[k]), int(nonws[k]), int(lines[k])
        parity = end_parity
        line_base += nl_all.size
        if not chunk:
            break
    if parity:
        raise InputFileError(f"a quoted field opened on line {part_line} never closes (unterminated quote)",
                             code="input.csv_ragged", where=f"{path}:{part_line}",
                             hint=f"fix the quote on line {part_line} of {name}")
    if part_nonws > 0:       # last record without a line end
        if part_seps + 1 != n_header:
            raise _ragged(path, name, part_line, part_seps + 1, n_header, sep)
        records += 1
    return records - 1


def _ragged(path: Path, name: str, line: int, n: int, n_header: int, sep: str) -> InputFileError:
    more = "more" if n > n_header else "fewer"
    return InputFileError(
        f"line {line} has {n} fields, the header has {n_header} ({more} fields than columns)",
        code="input.csv_ragged", where=f"{path}:{line}",
        hint=f"a ragged file is not read by guessing: fix line {line} of {name} (an unquoted "
             f"{SEP_NAMES.get(sep, repr(sep))} inside a value? a broken line?), or pass sep= if the "
             "separator was misdetected")


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


# The same number pattern in RE2 syntax (pyarrow's regex engine: no \\s, \\d or \\u escapes), so that
# a million values are matched in C++ rather than by Python's re one by one.
_SPACES = " \t\u00a0\u202f"
_DEC_COMMA_RE2 = (f"^[{_SPACES}]*[+-]?(?:[0-9]{{1,3}}(?:[ \u00a0\u202f][0-9]{{3}})+|[0-9]+)(?:,[0-9]+)?"
                  f"[{_SPACES}]*$")


def _arrow_strings(values: pd.Series):
    """The non-missing values of a text column as a pyarrow string array, or None (no pyarrow)."""
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pandas' str dtype normally brings pyarrow
        return None
    try:
        arr = pa.array(values, from_pandas=True)
        if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
            arr = arr.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None    # OverflowError: an integer of hundreds of digits among the values
    return arr


def _decimal_comma_ok(values: pd.Series) -> tuple[bool, bool]:
    """(all values are comma-decimal numbers, at least one has a comma); vectorised (pyarrow)."""
    arr = _arrow_strings(values)
    if arr is not None:
        import pyarrow.compute as pc

        arr = pc.unique(arr.drop_null())
        if len(arr) == 0:
            return False, False
        ok = bool(pc.all(pc.match_substring_regex(arr, _DEC_COMMA_RE2)).as_py())
        return ok, bool(ok and pc.any(pc.match_substring(arr, ",")).as_py())
    s = values.dropna().astype(str)  # pragma: no cover - without pyarrow
    if s.empty:
        return False, False
    u = pd.Series(s.unique())
    ok = u.str.match(_DEC_COMMA.pattern).all()
    return bool(ok), bool(ok and u.str.contains(",", regex=False).any())


def _to_float_comma(values: pd.Series) -> np.ndarray:
    """float64 of comma-decimal text (``1 250,50`` → 1250.5); missing → NaN. Vectorised (pyarrow)."""
    arr = _arrow_strings(values)
    if arr is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pc.any(pc.match_substring_regex(arr, f"[{_SPACES}]")).as_py():   # thousands separators, padding
            arr = pc.replace_substring_regex(arr, f"[{_SPACES}]", "")
        clean = pc.replace_substring(arr, ",", ".")
        return np.asarray(pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    s = values.astype("object")  # pragma: no cover - without pyarrow
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


def csv_options(path: Path, *, encoding: str | None, sep: str | None, decimal: str | None,
                notes: list[str]) -> tuple[str, str, list[str], dict[str, Any]]:
    """The decisions made before any value is parsed: (encoding, separator, header fields,
    ``pandas.read_csv`` keyword arguments); each decision is written to ``notes``. Shared by
    :func:`read_csv_file` and the chunked reader (:mod:`diaspora_survey.io.chunks`), so that both
    parse a file the same way."""
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
    kwargs: dict[str, Any] = dict(sep=sep, encoding=enc, na_values=NA_VALUES, keep_default_na=False,
                                  quotechar='"', doublequote=True, low_memory=False, engine="c",
                                  skip_blank_lines=True)
    if decimal == "," and sep != ",":
        kwargs["decimal"] = ","
    return enc, sep, header, kwargs


def read_csv_file(path: Path, *, encoding: str | None, sep: str | None, decimal: str | None,
                  columns: list[str] | None, chunksize: int | None, progress: bool,
                  compact: bool, notes: list[str], warnings: list[str]):
    """Read a delimited text file; returns (data, meta, encoding)."""
    where = str(path)
    enc, sep, header, kwargs = csv_options(path, encoding=encoding, sep=sep, decimal=decimal, notes=notes)
    n_header = len(header)

    size = path.stat().st_size
    prog = None
    if progress:
        from .spss import _Progress  # rich bar, shared

        prog = _Progress(True, size * 2, f"reading {path.name}")
    try:
        n_records = _scan(path, enc, sep, n_header, prog.advance if prog else None)
        if columns is not None:
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputFileError(f"no such column(s): {', '.join(map(repr, missing))}",
                                     code="input.unknown_column", where=where,
                                     hint=f"the header has: {', '.join(header[:30])}")
            kwargs["usecols"] = list(columns)
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
            out = compact_numeric(data[col].to_numpy())
            if out is not None:
                data[col] = out
        meta[str(col)] = VariableMeta(name=str(col), type=vtype, measure="unknown")
    return data, meta, enc
