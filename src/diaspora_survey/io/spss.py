"""SPSS (.sav, .zsav, .por) and Stata (.dta) through pyreadstat.

How a file is read:

1. metadata once (``metadataonly=True``, ``user_missing=True``): variables, labels,
   user-missing values and ranges, formats, row count. Columns are selected here
   (``usecols``), before any row is read.
2. data with ``user_missing=True`` (user-missing codes stay as values and are declared in
   ``meta``), ``apply_value_formats=False`` (codes, not labels) and
   ``disable_datetime_conversion=True``: dates are converted here, vectorised, column by
   column, so that one date beyond Python's range (``haven__datetime.sav``: year 201,800)
   leaves that column as raw SPSS seconds with a warning instead of failing the wave.
3. large files are read by two processes, each a row range: this process reads the first
   half while a helper reads the rest straight into shared memory, so the numeric data are
   neither pickled nor copied and peak memory stays near one copy of the data. The helper
   is forked (``os.fork``: it starts at once, so files from ``PARALLEL_CELLS_FORK`` cells
   gain) where that is safe — POSIX and no other thread running; else it is a fresh
   interpreter running ``_sav_worker.py`` (``PARALLEL_CELLS``, as it needs ~0.5 s to start).
   A helper that fails is replaced by reading its rows here; one that crashes (SIGSEGV in
   ReadStat) ends in one ``input.crash`` error. Metadata always come from step 1
   (pyreadstat's own multiprocessing reader loses ``missing_ranges``, pyreadstat #146).
4. with a progress bar (terminal, or ``progress=True``) rows are read in chunks; as
   pyreadstat re-parses the dictionary for every chunk (#285), chunks grow so that this
   stays under ~5 % of the time (see ``_sav_worker.read_range``).
5. integral numeric columns are stored in the smallest integer dtype (``compact=False``
   keeps pyreadstat's float64).
"""
from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import InputFileError
from .base import VariableMeta
from .compact import integer_dtypes, to_int
from .encoding import check_encoding, cyrillic_score, iconv_name, normalise_encoding
from .missing import classify_missing

#: rows × columns from which a .sav/.zsav is read by two processes (if the machine has 2+ cores):
#: a forked helper starts at once; a fresh interpreter (no fork: Windows, other threads) takes ~0.5 s
PARALLEL_CELLS_FORK = 2_000_000
PARALLEL_CELLS = 8_000_000
#: files smaller than this are read in one pyreadstat call, without a separate metadata read
SMALL_FILE_BYTES = 24 << 20
#: share of the rows given to the helper process (it starts ~0.5 s later: give it a little less)
HELPER_SHARE = 0.46

SPSS_EPOCH_S = np.datetime64("1582-10-14T00:00:00", "s")
STATA_EPOCH_D = np.datetime64("1960-01-01", "D")
SPSS_DATE = {"DATE", "ADATE", "EDATE", "JDATE", "SDATE", "QYR", "MOYR", "WKYR"}
SPSS_DATETIME = {"DATETIME", "YMDHMS"}
SPSS_TIME = {"TIME", "DTIME", "MTIME"}
# Python's datetime range, in seconds from the SPSS epoch: outside it a "date" is not a date
_MIN_S = (np.datetime64("0001-01-01T00:00:00", "s") - SPSS_EPOCH_S).astype(np.int64)
_MAX_S = (np.datetime64("9999-12-31T23:59:59", "s") - SPSS_EPOCH_S).astype(np.int64)


def _pyreadstat():
    import pyreadstat

    return pyreadstat


def _errors():
    from pyreadstat._readstat_parser import PyreadstatError, ReadstatError

    return (PyreadstatError, ReadstatError)


def _fail(path: Path, fmt: str, ex: Exception, encoding: str | None) -> InputFileError:
    """Turn a pyreadstat exception into one InputFileError naming the file and the cause."""
    msg = str(ex)
    kind = {"sav": "SPSS system file", "zsav": "SPSS system file", "por": "SPSS portable file",
            "dta": "Stata file"}[fmt]
    if "encoding" in msg.lower() or "convert string" in msg.lower() or isinstance(ex, UnicodeDecodeError):
        return InputFileError(
            f"text in the {kind} cannot be decoded with {encoding or 'the encoding it declares'} ({msg})",
            code="input.encoding", where=str(path),
            hint="pass the right code page, e.g. encoding='WINDOWS-1251' for old Russian files "
                 "(`diaspora-survey inspect FILE --encoding WINDOWS-1251`)"
                 + (" — .por files accept no encoding" if fmt == "por" else ""))
    if "unsupported character set" in msg.lower():
        return InputFileError(
            (f"ReadStat (iconv) cannot decode text from the encoding {encoding!r}" if encoding else
             f"the {kind} declares a character set that ReadStat cannot decode") + f" ({msg})",
            code="input.encoding", where=str(path),
            hint="pass an encoding ReadStat (iconv) knows, e.g. encoding='WINDOWS-1251', 'UTF-8' or 'LATIN1'")
    if "unable to read from file" in msg.lower():
        return InputFileError(f"cannot read the {kind}: it is empty or cut short ({msg})",
                              code="input.corrupt", where=str(path),
                              hint="export the data from the original source again")
    if "memory" in msg.lower():
        return InputFileError(f"not enough memory to read the {kind} ({msg})", code="input.memory",
                              where=str(path), hint="select fewer variables with columns=[...]")
    return InputFileError(
        f"cannot read the {kind}: it is corrupt, truncated or password-protected (encrypted) ({msg})",
        code="input.corrupt", where=str(path),
        hint="export the data from the original source again; an encrypted file must be saved "
             "unencrypted in SPSS first")


def _call(path, fmt, encoding, fn, /, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except _errors() as ex:
        raise _fail(path, fmt, ex, encoding) from None
    except UnicodeDecodeError as ex:
        raise _fail(path, fmt, ex, encoding) from None


def _num_key(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _format_name(fmt: str | None) -> str:
    if not fmt:
        return ""
    m = re.match(r"%?-?(t[a-zA-Z]|[A-Za-z]+)", fmt)
    return m.group(1).upper() if m else ""


def _storage_type(fmt_code: str, var_format: str | None, readstat_type: str) -> str:
    if readstat_type == "string":
        return "string"
    name = _format_name(var_format)
    if fmt_code == "dta":
        f = (var_format or "").lower()
        if re.match(r"%-?t[dc]|%-?d", f):
            return "datetime" if re.match(r"%-?tc", f) else "date"
        if re.match(r"%-?t[mq]", f):
            return "date"
        return "numeric"
    if name in SPSS_DATE:
        return "date"
    if name in SPSS_DATETIME:
        return "datetime"
    if name in SPSS_TIME:
        return "time"
    return "numeric"


def build_meta(m, columns: list[str], fmt_code: str) -> dict[str, VariableMeta]:
    """VariableMeta per column from a pyreadstat metadata object."""
    labels = dict(zip(m.column_names, m.column_labels or [None] * len(m.column_names)))
    vvl = getattr(m, "variable_value_labels", {}) or {}
    ranges = getattr(m, "missing_ranges", {}) or {}
    user_vals = getattr(m, "missing_user_values", {}) or {}
    measures = getattr(m, "variable_measure", {}) or {}
    formats = getattr(m, "original_variable_types", {}) or {}
    rtypes = getattr(m, "readstat_variable_types", {}) or {}
    sets = getattr(m, "variable_to_label", {}) or {}
    out: dict[str, VariableMeta] = {}
    for col in columns:
        value_labels = {_num_key(k): v for k, v in (vvl.get(col) or {}).items()}
        if fmt_code == "dta":
            value_labels = {(f".{k}" if isinstance(k, str) and len(k) == 1 and k.isalpha() else k): v
                            for k, v in value_labels.items()}
        discrete: list[Any] = []
        rngs: list[tuple[Any, Any]] = []
        for r in ranges.get(col) or []:
            lo, hi = _num_key(r["lo"]), _num_key(r["hi"])
            if lo == hi:
                if lo not in discrete:
                    discrete.append(lo)
            else:
                rngs.append((lo, hi))
        for tag in sorted(user_vals.get(col) or []):  # Stata/SAS tagged missing (.a …)
            t = f".{tag}" if fmt_code == "dta" else tag
            if t not in discrete:
                discrete.append(t)
        label = labels.get(col)
        out[col] = VariableMeta(
            name=col,
            label=label if label else None,
            value_labels=value_labels,
            missing_values=discrete,
            missing_ranges=rngs,
            missing_kinds=classify_missing(value_labels, discrete, rngs),
            measure=measures.get(col) or "unknown",
            type=_storage_type(fmt_code, formats.get(col), rtypes.get(col, "double")),
            format=formats.get(col),
            label_set=sets.get(col) if value_labels else None,
        )
    return out


# ---------------------------------------------------------------- dates

def _spss_seconds_to(values: np.ndarray, kind: str):
    """Convert SPSS seconds (since 1582-10-14) to datetime64/timedelta64; None if out of range."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if kind == "time":
        us = np.zeros(v.shape, dtype=np.int64)
        if ok.any():
            if np.abs(v[ok]).max() > 9.2e12:
                return None
            us[ok] = np.round(v[ok] * 1e6).astype(np.int64)
        out = us.astype("timedelta64[us]")
        out[~ok] = np.timedelta64("NaT")
        return out
    if ok.any():
        lo, hi = v[ok].min(), v[ok].max()
        if lo < _MIN_S or hi > _MAX_S:
            return None
    if kind == "date":
        secs = np.zeros(v.shape, dtype=np.int64)
        secs[ok] = np.round(v[ok]).astype(np.int64)
        out = SPSS_EPOCH_S + secs.astype("timedelta64[s]")
    else:
        us = np.zeros(v.shape, dtype=np.int64)
        us[ok] = np.round(v[ok] * 1e6).astype(np.int64)
        out = SPSS_EPOCH_S.astype("datetime64[us]") + us.astype("timedelta64[us]")
    out[~ok] = np.datetime64("NaT")
    return out


def _stata_to(values: np.ndarray, fmt: str):
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    f = fmt.lower().lstrip("%-")
    if f.startswith("tc"):
        ms = np.zeros(v.shape, dtype=np.int64)
        if ok.any() and np.abs(v[ok]).max() > 2.5e14:
            return None
        ms[ok] = np.round(v[ok]).astype(np.int64)
        out = STATA_EPOCH_D.astype("datetime64[ms]") + ms.astype("timedelta64[ms]")
    elif f.startswith(("td", "d")):
        days = np.zeros(v.shape, dtype=np.int64)
        if ok.any() and (v[ok].min() < -2_900_000 or v[ok].max() > 2_900_000):
            return None
        days[ok] = np.round(v[ok]).astype(np.int64)
        out = (STATA_EPOCH_D + days.astype("timedelta64[D]")).astype("datetime64[s]")
    elif f.startswith(("tm", "tq")):
        step = 1 if f.startswith("tm") else 3
        months = np.zeros(v.shape, dtype=np.int64)
        if ok.any() and np.abs(v[ok]).max() > 90_000:
            return None
        months[ok] = np.round(v[ok]).astype(np.int64) * step
        out = (np.datetime64("1960-01", "M") + months.astype("timedelta64[M]")).astype("datetime64[s]")
    else:
        return v
    out[~ok] = np.datetime64("NaT")
    return out


def _convert_date_column(raw: pd.Series, vm: VariableMeta, fmt_code: str, warnings: list[str]):
    """The converted column, or None (not numeric, or out of range: then a warning and type numeric)."""
    if raw.dtype.kind not in "fiu":
        return None
    values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    conv = _stata_to(values, vm.format or "") if fmt_code == "dta" else _spss_seconds_to(values, vm.type)
    if conv is None:
        origin = "seconds since 1582-10-14 (the SPSS epoch)" if fmt_code != "dta" else "Stata units since 1960-01-01"
        warnings.append(f"column {vm.name!r} ({vm.format}): a value lies outside the range of dates "
                        f"(years 1–9999); the column is kept as raw numbers — {origin}")
        vm.type = "numeric"
    return conv


def convert_dates(df: pd.DataFrame, meta: dict[str, VariableMeta], fmt_code: str, warnings: list[str],
                  notes: list[str]) -> None:
    """Replace raw date numbers by datetime64/timedelta64 columns, in place; warn per failure."""
    for col in df.columns:
        vm = meta.get(col)
        if vm is None or vm.type not in ("date", "datetime", "time"):
            continue
        conv = _convert_date_column(df[col], vm, fmt_code, warnings)
        if conv is not None:
            df[col] = conv


# ---------------------------------------------------------------- encoding sanity

def mojibake_warning(texts: list[str], used: str | None) -> str | None:
    """Warn when labels read as Windows-1252/Latin-1 look like Windows-1251 Russian text."""
    if used not in ("cp1252", "iso8859-1"):
        return None
    sample = " ".join(t for t in texts if t)[:20000]
    high = [c for c in sample if ord(c) > 127 and c.isalpha()]
    if len(high) < 8:
        return None
    try:
        recoded = sample.encode(used, errors="strict").decode("cp1251", errors="strict")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    score, share = cyrillic_score(recoded)
    if share > 0.8 and score > 0.2:
        return (f"labels declared as {used} look like Russian text in Windows-1251 "
                f"(e.g. {recoded[:40]!r}); re-read with encoding='WINDOWS-1251' if so")
    return None


# ---------------------------------------------------------------- reading rows

class _Progress:
    """Rows-based progress on stderr (rich), or nothing."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled = enabled and total > 0
        self._lock = threading.Lock()
        self._p = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("rows"), TimeRemainingColumn(),
                               console=Console(stderr=True), transient=True)
            self._task = self._p.add_task(label, total=total)
            self._started = False   # started on the first step: its refresh thread must not exist
                                    # yet when the reader forks its helper (see _read_rows_parallel)

    def advance(self, n: int) -> None:
        if self._p is not None:
            with self._lock:
                if not self._started:
                    self._p.start()
                    self._started = True
                self._p.advance(self._task, n)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


class _SharedColumns:
    """The shared mapping the two readers write numeric columns into, one slot per column.

    Columns that :func:`_finish` converts (integral → int8 …, dates) no longer need their
    float64 slot: :meth:`release` gives those pages back to the system (``MADV_REMOVE``), so
    that the mapping kept alive by the remaining float columns holds only what they use.
    """

    def __init__(self, mm, slots: list[tuple[str, int]], n_rows: int):
        self.mm, self.slot, self.n_rows = mm, dict(slots), n_rows

    def release(self, names) -> None:
        import mmap

        advice = getattr(mmap, "MADV_REMOVE", None)
        if advice is None or self.n_rows <= 0:
            return
        page = mmap.PAGESIZE
        for name in names:
            i = self.slot.get(name)
            if i is None:
                continue
            start, stop = i * self.n_rows * 8, (i + 1) * self.n_rows * 8
            start = -(-start // page) * page          # whole pages inside the slot only
            stop = stop // page * page
            if stop > start:
                try:
                    self.mm.madvise(advice, start, stop - start)
                except (OSError, ValueError):  # pragma: no cover - not supported here: keep the pages
                    return


def _shm_file(nbytes: int) -> str | None:
    """A fresh file in /dev/shm of ``nbytes``, or None when shared memory is missing or too small."""
    d = "/dev/shm"
    if nbytes <= 0 or not os.path.isdir(d) or not os.access(d, os.W_OK):
        return None
    try:
        st = os.statvfs(d)
        if st.f_bavail * st.f_frsize < nbytes * 1.25 + (64 << 20):
            return None
        fd, name = tempfile.mkstemp(prefix="diaspora-survey-", suffix=".shm", dir=d)
        try:
            os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
        return name
    except OSError:
        return None


def _read_rows_parallel(path: Path, reader_name: str, kwargs: dict, n_rows: int, columns: list[str],
                        numeric: list[str], chunk: int, progress: _Progress, notes: list[str],
                        on_started: Callable[[], None] = lambda: None, meta_s: float = 0.0,
                        shared: list | None = None):
    """Two processes: this one reads rows [0, k), a helper reads [k, n). Returns {col: array}.

    If the numeric columns are views of a shared mapping, a :class:`_SharedColumns` for it
    is appended to ``shared``.
    """
    import mmap

    from . import _sav_worker

    pyreadstat = _pyreadstat()
    reader = getattr(pyreadstat, reader_name)
    if _can_fork():
        return _read_rows_forked(path, reader, kwargs, n_rows, columns, numeric, chunk, progress, notes,
                                 on_started, meta_s, shared)
    k = int(n_rows * (1 - HELPER_SHARE))
    slots = [(name, i) for i, name in enumerate(numeric)]
    nbytes = len(numeric) * n_rows * 8
    shm = _shm_file(nbytes) if numeric else None
    mm = None
    if shm:
        with open(shm, "r+b") as fh:
            mm = mmap.mmap(fh.fileno(), nbytes)
        arrays = _sav_worker.map_columns(mm, slots, n_rows)
        if shared is not None:
            shared.append(_SharedColumns(mm, slots, n_rows))
    else:
        arrays = {name: np.empty(n_rows, dtype=np.float64) for name in numeric}
    job = {"reader": reader_name, "path": str(path), "kwargs": kwargs, "start": k, "stop": n_rows,
           "chunk": chunk, "n_total": n_rows, "numeric": slots, "shm": shm, "meta_seconds": meta_s}
    helper_err: list[str] = []
    proc = None
    try:
        try:
            proc = subprocess.Popen([sys.executable, "-P", _sav_worker.__file__], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except OSError as ex:
            proc = None
            notes.append(f"helper process could not start ({ex}); read in one process")
        on_started()

        def pump():
            for line in proc.stderr:
                if line.startswith(b"P "):
                    progress.advance(int(line[2:]))
                elif line == b"M\n" and shm:
                    # both processes have mapped it: remove the name now, so that nothing is
                    # left in /dev/shm even if this process is killed before it finishes
                    try:
                        os.unlink(shm)
                    except OSError:
                        pass
                else:
                    helper_err.append(line.decode("utf-8", "replace"))

        pump_thread = None
        if proc is not None:
            pump_thread = threading.Thread(target=pump, daemon=True)
            pump_thread.start()
        others_head: dict[str, list] = {}
        stop_own = k if proc is not None else n_rows
        got_own = _call(path, "sav", kwargs.get("encoding"), _sav_worker.read_range, reader, str(path), kwargs,
                        0, stop_own, chunk, arrays, {}, others_head, progress.advance, meta_s)
        others_tail: dict[str, list] = {}
        if got_own < stop_own:  # the file has fewer rows than its header says: nothing for the helper
            notes.append(f"header declares {n_rows} rows, the file has {got_own}")
            return {name: (arrays[name][:got_own] if name in arrays else _concat(others_head.get(name, [])))
                    for name in columns}
        if proc is not None:
            payload = proc.stdout.read()
            rc = proc.wait()
            pump_thread.join(timeout=5)
            result = None
            if rc == 0:
                try:
                    result = pickle.loads(payload)
                except Exception as ex:  # pragma: no cover - defensive
                    helper_err.append(f"unreadable result: {ex}")
            if result is not None and result["rows"] < n_rows - k:  # fewer rows than declared
                notes.append(f"header declares {n_rows} rows, the file has {k + result['rows']}")
                n_rows = k + result["rows"]
                arrays = {name: a[:n_rows] for name, a in arrays.items()}
            if result is None:
                # the helper failed: read its part here (the error, if any, will surface again)
                notes.append("helper process failed; its rows were read again in this process"
                             + (f" ({helper_err[-1].strip()})" if helper_err else ""))
                others_tail = {}
                _call(path, "sav", kwargs.get("encoding"), _sav_worker.read_range, reader, str(path), kwargs,
                      k, n_rows, chunk, arrays, {}, others_tail, None)
            else:
                others_tail = result["others"]
                for name, parts in result["numeric"].items():  # no shared memory: pickled
                    if parts:
                        arrays[name][k:] = np.concatenate(parts)
            if result is not None:
                notes.append(f"read with 2 processes (rows 1–{k} here, {k + 1}–{n_rows} in a helper"
                             + (", numeric columns via shared memory)" if shm else ")"))
        out: dict[str, Any] = {}
        for name in columns:
            if name in arrays:
                out[name] = arrays[name]
            else:
                parts = others_head.get(name, []) + others_tail.get(name, [])
                out[name] = _concat(parts)
        return out
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if shm:
            try:
                os.unlink(shm)
            except OSError:
                pass


def _can_fork() -> bool:
    """Fork the helper (instant, inherits the imported pyreadstat) only where that is safe:
    Linux (macOS system libraries are not fork-safe; Windows has no fork), and no other thread
    running (a fork copies only the calling thread; locks other threads hold would stay
    locked in the child). Else the helper is a fresh interpreter. ``DIASPORA_SURVEY_NO_FORK=1``
    turns forking off."""
    if not sys.platform.startswith("linux") or os.environ.get("DIASPORA_SURVEY_NO_FORK"):
        return False
    return threading.active_count() == 1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_rows_forked(path: Path, reader, kwargs: dict, n_rows: int, columns: list[str], numeric: list[str],
                      chunk: int, progress: _Progress, notes: list[str],
                      on_started: Callable[[], None] = lambda: None, meta_s: float = 0.0,
                      shared: list | None = None):
    """Two processes by ``os.fork``: this one reads rows [0, k), a forked child [k, n).

    Numeric columns live in one anonymous shared mapping (``MAP_SHARED``, made before the
    fork): both processes write their rows straight into the final arrays, nothing is pickled
    or copied, and no file is left anywhere. The child's string columns come back pickled
    through a pipe; its progress comes as ``P <rows>`` lines through another.
    """
    import mmap

    from . import _sav_worker

    k = n_rows // 2          # a forked child starts at once: an even split
    slots = [(name, i) for i, name in enumerate(numeric)]
    nbytes = max(len(numeric) * n_rows * 8, 1)
    mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    arrays = _sav_worker.map_columns(mm, slots, n_rows)
    if shared is not None:
        shared.append(_SharedColumns(mm, slots, n_rows))
    r_res, w_res = os.pipe()
    r_prog, w_prog = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the helper: read rows [k, n), then leave without running any cleanup
        code = 1
        try:
            import faulthandler

            faulthandler.disable()   # a crash here is reported once, by the parent
            os.close(r_res)
            os.close(r_prog)
            others: dict[str, list] = {}

            def on_rows(n: int) -> None:
                _write_all(w_prog, f"P {n}\n".encode())

            rows = _sav_worker.read_range(reader, str(path), kwargs, k, n_rows, chunk, arrays, {}, others,
                                          on_rows if progress.enabled else None, meta_s)
            _write_all(w_res, pickle.dumps({"rows": rows, "others": others}, protocol=5))
            code = 0
        except BaseException as ex:  # noqa: BLE001 - reported to the parent, which reads the rows itself
            try:
                _write_all(w_prog, f"E {type(ex).__name__}: {ex}".replace("\n", " ").encode()[:2000] + b"\n")
            except BaseException:  # noqa: BLE001
                pass
        finally:
            os._exit(code)
    os.close(w_res)
    os.close(w_prog)
    on_started()
    helper_err: list[str] = []
    reaped = False

    def pump():
        with os.fdopen(r_prog, "rb") as fh:
            for line in fh:
                if line.startswith(b"P "):
                    progress.advance(int(line[2:]))
                else:
                    helper_err.append(line.decode("utf-8", "replace").strip())

    pump_thread = threading.Thread(target=pump, daemon=True)
    pump_thread.start()
    res_fh = os.fdopen(r_res, "rb")
    try:
        others_head: dict[str, list] = {}
        got_own = _call(path, "sav", kwargs.get("encoding"), _sav_worker.read_range, reader, str(path), kwargs,
                        0, k, chunk, arrays, {}, others_head, progress.advance, meta_s)
        if got_own < k:  # the file has fewer rows than its header says: nothing for the helper
            notes.append(f"header declares {n_rows} rows, the file has {got_own}")
            return {name: (np.array(arrays[name][:got_own]) if name in arrays
                           else _concat(others_head.get(name, []))) for name in columns}
        payload = res_fh.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
        pump_thread.join(timeout=5)
        result = None
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            try:
                result = pickle.loads(payload)
            except Exception as ex:  # pragma: no cover - defensive
                helper_err.append(f"unreadable result: {ex}")
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT):
                from .._guard import crash_error

                raise crash_error(path, sig)   # ReadStat crashed on the helper's rows: do not retry here
            helper_err.append(f"killed by signal {sig}")
        others_tail: dict[str, list] = {}
        if result is None:
            # the helper failed: read its rows here (the error, if any, surfaces again)
            notes.append("helper process failed; its rows were read again in this process"
                         + (f" ({helper_err[-1]})" if helper_err else ""))
            _call(path, "sav", kwargs.get("encoding"), _sav_worker.read_range, reader, str(path), kwargs,
                  k, n_rows, chunk, arrays, {}, others_tail, None)
        else:
            others_tail = result["others"]
            if result["rows"] < n_rows - k:  # fewer rows than declared
                notes.append(f"header declares {n_rows} rows, the file has {k + result['rows']}")
                n_rows = k + result["rows"]
            notes.append(f"read with 2 processes (rows 1–{k} here, {k + 1}–{n_rows} in a forked helper; "
                         "numeric columns in shared memory)")
        out: dict[str, Any] = {}
        for name in columns:
            if name in arrays:
                out[name] = arrays[name][:n_rows]
            else:
                out[name] = _concat(others_head.get(name, []) + others_tail.get(name, []))
        return out
    finally:
        res_fh.close()
        if not reaped:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def _concat(parts: list):
    if not parts:
        return np.array([], dtype=object)
    if len(parts) == 1:
        return parts[0]
    return pd.concat([pd.Series(p, copy=False) for p in parts], ignore_index=True).array


def _read_rows_chunked(path: Path, fmt: str, reader, kwargs: dict, n_rows: int, columns: list[str],
                       numeric: list[str], chunk: int, progress: _Progress, meta_s: float = 0.0):
    from . import _sav_worker

    arrays = {name: np.empty(n_rows, dtype=np.float64) for name in numeric}
    others: dict[str, list] = {}
    got = _call(path, fmt, kwargs.get("encoding"), _sav_worker.read_range, reader, str(path), kwargs, 0, n_rows,
                chunk, arrays, {}, others, progress.advance, meta_s)
    out = {}
    for name in columns:
        out[name] = arrays[name][:got] if name in arrays else _concat(others.get(name, []))
    return out


# ---------------------------------------------------------------- entry point

#: bytes of the data part per 8-byte value at the best compression (0: none, 1: bytecode,
#: 2: zlib over bytecode, whose ratio is at most ~1032:1)
_MIN_BYTES_PER_VALUE = {0: 8.0, 1: 1.0, 2: 1.0 / 1032}


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_declared_rows(path: Path, size: int, warnings: list[str], *, memory: bool = True) -> None:
    """Check an SPSS system file's declared row count (file header, offset 80) before reading.

    A count the file cannot hold (beyond 4x what its size allows at the best compression), or
    one whose values would not fit into the free memory, is one :class:`InputFileError`:
    ReadStat would otherwise allocate for the claimed rows (a 1.5 MB .zsav claiming 134 M
    rows took 28 s and 2.4 GB). A negative count other than -1 ("unknown") is a warning.
    ``memory=False`` (the chunked reader, which never holds all rows) skips the memory check.
    """
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(176)
    except OSError:
        return
    if len(head) < 176 or head[:4] not in (b"$FL2", b"$FL3"):
        return
    layout = struct.unpack("<i", head[64:68])[0]
    end = "<" if layout in (2, 3) else ">"
    case_size, compression, _, ncases = struct.unpack(end + "iiii", head[68:84])
    if ncases < -1:
        warnings.append(f"the file's header declares {ncases:,} rows (invalid): the rows were counted")
        return
    if ncases <= 0 or case_size <= 0:
        return
    per_value = _MIN_BYTES_PER_VALUE.get(compression, 1.0 / 1032)
    most = int(size / (case_size * per_value))
    if ncases > 4 * most + 1000:
        raise InputFileError(f"the header declares {ncases:,} rows, but a file of {size:,} bytes can "
                             f"hold at most about {most:,}: the file is corrupt or crafted",
                             code="input.corrupt", where=str(path),
                             hint="export the data from the original source again")
    need = ncases * case_size * 8 * 2      # the values, and one copy while building the frame
    free = _available_memory() if memory else None
    if free is not None and need > free:
        raise InputFileError(f"the header declares {ncases:,} rows × {case_size:,} values: about "
                             f"{need / 2**30:,.1f} GB to read, more than the {free / 2**30:,.1f} GB "
                             "of free memory", code="input.memory", where=str(path),
                             hint="read fewer variables with columns=[...], on a machine with "
                                  "more memory; or check that the file is what it claims")


def read_pyreadstat(path: Path, fmt: str, *, encoding: str | None, columns: list[str] | None,
                    chunksize: int | None, progress: bool | None, processes: int | None,
                    compact: bool, notes: list[str], warnings: list[str],
                    on_started: Callable[[], None] | None = None):
    """Read an SPSS or Stata file; returns (data, meta, encoding, file_label, n_rows_declared).

    ``on_started`` is called once the rows are being read (after a helper process, if any,
    has been forked): the caller's background work (hashing) may start then.
    """
    started = on_started or (lambda: None)
    pyreadstat = _pyreadstat()
    reader_name = {"sav": "read_sav", "zsav": "read_sav", "por": "read_por", "dta": "read_dta"}[fmt]
    reader: Callable = getattr(pyreadstat, reader_name)
    kw: dict[str, Any] = {"disable_datetime_conversion": True, "apply_value_formats": False}
    if fmt in ("sav", "zsav", "dta"):
        kw["user_missing"] = True
    if encoding is not None:
        if fmt == "por":
            raise InputFileError("SPSS portable (.por) files accept no encoding option "
                                 "(pyreadstat reads them as they are)", code="input.bad_option",
                                 where=str(path), hint="leave out encoding= for .por files")
        check_encoding(encoding, where=str(path))  # an unknown name is a bad option, not a corrupt file
        kw["encoding"] = iconv_name(encoding)
    if fmt == "por":
        notes.append("portable file: pyreadstat.read_por keeps no user-missing codes "
                     "(no user_missing option); declared missing values are read as system-missing")

    # Small files are read in one call (data and metadata together): a separate metadata read
    # pays only when it decides something — selected columns, chunks, or two processes.
    size = path.stat().st_size
    if fmt in ("sav", "zsav"):
        check_declared_rows(path, size, warnings)   # before ReadStat allocates for the claimed rows
    one_shot = (columns is None and not progress and not chunksize and processes != 2
                and size < SMALL_FILE_BYTES)
    data = None
    t_meta = 0.0
    shared = []
    if one_shot:
        started()
        data, m = _call(path, fmt, encoding, reader, str(path), **kw)
    else:
        t_meta = time.perf_counter()
        _, m = _call(path, fmt, encoding, reader, str(path), metadataonly=True, **kw)
        t_meta = time.perf_counter() - t_meta
    all_cols = list(m.column_names)
    if columns is not None:
        missing = [c for c in columns if c not in all_cols]
        if missing:
            import difflib

            close = {c: difflib.get_close_matches(c, all_cols, n=1) for c in missing}
            sugg = "; ".join(f"{c!r} → did you mean {v[0]!r}?" for c, v in close.items() if v)
            raise InputFileError(f"no such column(s): {', '.join(map(repr, missing))}", code="input.unknown_column",
                                 where=str(path), hint=sugg or f"the file has {len(all_cols)} columns; "
                                 "list them with `diaspora-survey inspect FILE`")
        if len(set(columns)) != len(columns):
            raise InputFileError("columns= lists a column twice", code="input.bad_option", where=str(path))
        kw["usecols"] = list(columns)
        wanted = list(columns)
    else:
        wanted = all_cols
    meta = build_meta(m, wanted, fmt)
    declared = normalise_encoding(getattr(m, "file_encoding", None))
    used = normalise_encoding(encoding) if encoding else declared
    if encoding:
        # with encoding= pyreadstat reports the override: ask the file what it declares itself
        own = {k: v for k, v in kw.items() if k not in ("encoding", "usecols")}
        try:
            _, m0 = reader(str(path), metadataonly=True, **own)
            declared = normalise_encoding(getattr(m0, "file_encoding", None))
        except (*_errors(), UnicodeDecodeError):
            declared = None
        notes.append(f"encoding {used} (given); the file declares "
                     + (f"{declared}" if declared else "an encoding that cannot be used"))
    elif fmt == "por":
        notes.append("portable files carry no encoding; text read as ReadStat decodes it (UTF-8/ASCII)")

    n_rows = m.number_rows
    if data is None:
        rtypes = getattr(m, "readstat_variable_types", {}) or {}
        numeric = [c for c in wanted if rtypes.get(c, "double") != "string"]
        cells = (n_rows or 0) * max(len(wanted), 1)
        use_progress = bool(progress) and bool(n_rows)
        threshold = PARALLEL_CELLS_FORK if _can_fork() else PARALLEL_CELLS
        nproc = processes if processes is not None else (
            2 if (os.cpu_count() or 1) >= 2 and cells >= threshold else 1)
        if fmt not in ("sav", "zsav") or not n_rows or n_rows < 1000:
            if processes and processes > 1 and fmt not in ("sav", "zsav"):
                notes.append(f"{fmt} files are read by one process")
            nproc = 1
        default_chunk = max(20_000, (n_rows or 0) // 40) if use_progress else max(n_rows or 1, 1)
        chunk = int(chunksize) if chunksize else default_chunk
        meta_s = 0.0 if chunksize else t_meta   # a chunksize given is honoured exactly
        prog = _Progress(use_progress, n_rows or 0, f"reading {path.name}")
        shared: list[_SharedColumns] = []
        try:
            if nproc == 2:
                cols = _read_rows_parallel(path, reader_name, kw, n_rows, wanted, numeric, chunk, prog, notes,
                                           started, meta_s, shared)
                data = pd.DataFrame(cols, copy=False)
            elif n_rows and (use_progress or (chunksize and chunksize < n_rows)):
                started()
                cols = _read_rows_chunked(path, fmt, reader, kw, n_rows, wanted, numeric, chunk, prog, meta_s)
                data = pd.DataFrame(cols, copy=False)
            else:
                started()
                data, _ = _call(path, fmt, encoding, reader, str(path), **kw)
        finally:
            prog.close()
    if list(data.columns) != wanted:
        data = data[wanted]
    if n_rows is not None and len(data) != n_rows:
        notes.append(f"header declares {n_rows} rows, {len(data)} read")
        if n_rows >= 0 or n_rows < -1:   # -1 = "unknown", which writers may legitimately declare
            warnings.append(f"the file's header declares {n_rows:,} rows but {len(data):,} were "
                            "read: the file may be truncated or damaged")
    data = _finish(data, meta, fmt, compact, warnings, notes)
    for mapping in shared:   # pages of converted columns back to the system
        mapping.release([c for c in mapping.slot if c in data.columns and data[c].dtype != np.float64])
    texts = [v.label or "" for v in meta.values()]
    texts += [lab for v in meta.values() for lab in v.value_labels.values() if isinstance(lab, str)]
    w = mojibake_warning(texts, used)
    if w:
        warnings.append(w)
    return data, meta, used, (getattr(m, "file_label", None) or None), n_rows


def _finish(data: pd.DataFrame, meta: dict[str, VariableMeta], fmt: str, compact: bool,
            warnings: list[str], notes: list[str]) -> pd.DataFrame:
    """Dates, Stata missing tags and compact dtypes; the frame is rebuilt once, not column by column."""
    if fmt == "dta":
        _stata_tags(data, meta)
    repl: dict[str, Any] = {}
    dated = [c for c in data.columns if meta[c].type in ("date", "datetime", "time")]
    for col in dated:
        conv = _convert_date_column(data[col], meta[col], fmt, warnings)
        if conv is not None:
            repl[col] = conv
    mapping = integer_dtypes(data, skip=set(repl)) if compact else {}
    if not repl and not mapping:
        return data
    cols: dict[str, Any] = {}
    for col, s in data.items():
        if col in repl:
            cols[col] = repl[col]
        elif col in mapping:
            cols[col] = to_int(s.to_numpy(), mapping[col])
        else:
            cols[col] = s.array
    return pd.DataFrame(cols, index=data.index, copy=False)


def _stata_tags(data: pd.DataFrame, meta: dict[str, VariableMeta]) -> None:
    """Stata extended missing values come from pyreadstat as 'a'…'z' in numeric columns: write '.a'."""
    for col in data.columns:
        s = data[col]
        vm = meta.get(str(col))
        if s.dtype == object and (vm is None or vm.type != "string"):
            mask = s.str.fullmatch("[a-z]").fillna(False).astype(bool)   # vectorised, no loop over rows
            if mask.any():
                s = s.copy()
                s[mask] = "." + s[mask].astype(str)
                data[col] = s
