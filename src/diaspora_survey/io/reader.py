"""``read_wave``: one entry point for every raw file format."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from .._util import sha256_file
from ..errors import InputFileError
from .base import RawWave, SourceInfo
from .detect import resolve_format

#: files at least this large get a progress bar on a terminal (progress=None)
PROGRESS_BYTES = 16 << 20

_KNOWN_OPTIONS = {"format", "sheet", "compact", "processes"}


class _Hasher(threading.Thread):
    """SHA-256 of the file in a background thread (hashlib releases the GIL on large blocks)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.digest, self.error = path, None, None

    def run(self):
        try:
            self.digest = sha256_file(self.path, 4 << 20)
        except OSError as ex:  # pragma: no cover - read errors surface in the reader too
            self.error = ex


def check_readable(path: Path) -> None:
    """Raise InputFileError unless ``path`` is an existing, readable, non-empty regular file."""
    where = str(path)
    try:
        os.stat(path)
    except OSError as ex:
        if ex.errno == __import__("errno").ELOOP:
            raise InputFileError("the file is a symbolic link loop", code="input.not_regular",
                                 where=where, hint="remove the loop; name the real file") from None
    if not path.exists():
        if path.is_symlink():
            raise InputFileError(f"a symbolic link to {os.readlink(path)}, which does not exist",
                                 code="input.not_found", where=where,
                                 hint="the link is broken: point it at the data file, or name the file itself")
        parent = path.parent if str(path.parent) else Path(".")
        hint = "check the path"
        if parent.is_dir():
            import difflib

            try:
                names = [p.name for p in parent.iterdir() if p.name != path.name]
            except OSError:
                names = []
            close = difflib.get_close_matches(path.name, names, n=3)
            if close:
                hint = f"did you mean {', '.join(close)}?"
        else:
            hint = f"the folder {parent} does not exist either"
        raise InputFileError("no such file", code="input.not_found", where=where, hint=hint)
    if path.is_dir():
        raise InputFileError("this is a folder, not a data file", code="input.not_a_file", where=where,
                             hint="name one file, e.g. raw/2022-03_wave1.sav")
    from .._files import check_input

    check_input(path, what="file")     # a regular file (never a FIFO or device), readable
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise InputFileError("permission denied: the file cannot be opened for reading", code="input.permission",
                             where=where, hint=f"give yourself read access (chmod u+r '{path}')") from None
    except OSError as ex:
        raise InputFileError(f"cannot open the file: {ex.strerror or ex}", code="input.unreadable",
                             where=where, hint="check the path and the disk") from None
    if path.stat().st_size == 0:
        raise InputFileError("the file is empty (0 bytes)", code="input.empty", where=where,
                             hint="the download or export did not complete; export the data again")


def read_wave(path: str | os.PathLike, *, encoding: str | None = None, sep: str | None = None,
              decimal: str | None = None, columns: list[str] | None = None, chunksize: int | None = None,
              progress: bool | None = None, **options: Any) -> RawWave:
    """Read one raw survey wave (.sav, .zsav, .por, .dta, .csv/.tsv/.txt, .xlsx) as a :class:`RawWave`.

    The format is recognised by content (magic bytes); a suffix that contradicts the content
    is an error, except within SPSS system files (``.sav``/``.zsav``), where the content wins.
    ``data`` holds raw codes (user-missing codes kept as values; value labels not applied);
    ``meta`` holds labels, value labels, user-missing values/ranges and their kinds;
    ``source`` says what was read and how (``notes``); ``warnings`` lists what needs a look.

    Parameters
    ----------
    encoding : override the encoding (SPSS/Stata: the declared code page — old Russian files
        often need ``"WINDOWS-1251"``; CSV: skip detection). Not allowed for .por and .xlsx.
    sep, decimal : CSV only: separator (``,`` ``;`` ``\\t`` ``|`` …) and decimal mark (``.``
        or ``,``); detected when not given.
    columns : read only these columns (selected before any row is read), in this order.
    chunksize : rows per chunk when reading in chunks (SPSS/Stata; the progress bar's step).
    progress : show a progress bar on stderr; default: only on a terminal, for files ≥ 16 MB.
    options : ``format=`` (read as this format, e.g. ``"csv"`` for a CSV misnamed ``.dat``),
        ``sheet=`` (.xlsx: name or 0-based index), ``compact=`` (default True: integral
        columns in the smallest integer dtype), ``processes=`` (1 or 2; default: 2 for
        large .sav/.zsav files on machines with 2+ cores).

    Every problem with the file raises one :class:`~diaspora_survey.errors.InputFileError`
    that names the file (and line, where known), the cause and what to do.
    """
    if isinstance(path, (bytes, bytearray)):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise InputFileError(f"read_wave needs a file path, not {type(path).__name__}",
                             code="input.bad_argument", hint="read_wave('raw/2022-03_wave1.sav')")
    p = Path(os.fspath(path))
    where = str(p)
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise InputFileError(f"unknown option(s) {', '.join(unknown)}", code="input.bad_option", where=where,
                             hint="read_wave takes encoding, sep, decimal, columns, chunksize, progress, "
                                  "format, sheet, compact and processes")
    fmt_opt = options.get("format")
    sheet = options.get("sheet")
    compact = bool(options.get("compact", True))
    processes = options.get("processes")
    if processes is not None and processes not in (1, 2):
        raise InputFileError(f"processes must be 1 or 2, not {processes!r}", code="input.bad_option", where=where)
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise InputFileError(f"chunksize must be a positive number of rows, not {chunksize!r}",
                             code="input.bad_option", where=where)
    if columns is not None:
        if isinstance(columns, str):
            columns = [columns]
        columns = list(columns)

    check_readable(p)
    fmt, notes = resolve_format(p, fmt_opt)
    if fmt != "csv" and (sep is not None or decimal is not None):
        raise InputFileError(f"sep= and decimal= apply to CSV files only, and this is a {fmt} file",
                             code="input.bad_option", where=where, hint="leave them out")
    if fmt != "xlsx" and sheet is not None:
        raise InputFileError(f"sheet= applies to .xlsx files only, and this is a {fmt} file",
                             code="input.bad_option", where=where, hint="leave it out")
    if fmt == "xlsx" and chunksize is not None:
        raise InputFileError(".xlsx files are read whole: chunksize= does not apply", code="input.bad_option",
                             where=where, hint="leave it out")
    if fmt == "xlsx" and encoding is not None:
        raise InputFileError(".xlsx files carry their own encoding (Unicode): encoding= does not apply",
                             code="input.bad_option", where=where, hint="leave it out")
    if fmt in ("csv", "xlsx", "por", "dta") and processes == 2:
        raise InputFileError(f"processes=2 applies to .sav/.zsav files only, and this is a {fmt} file",
                             code="input.bad_option", where=where, hint="leave it out")
    if progress is None:
        try:
            progress = sys.stderr.isatty() and p.stat().st_size >= PROGRESS_BYTES
        except (AttributeError, ValueError, OSError):
            progress = False

    hasher = _Hasher(p)
    small = p.stat().st_size < (8 << 20)
    started = False

    def start_hashing() -> None:
        """Hash a large file in a background thread, started once the reader has forked its
        helper process (if any): a fork must not copy a running thread."""
        nonlocal started
        if not started and not small:
            started = True
            hasher.start()

    if small:  # a thread costs more than hashing a small file
        hasher.run()
    warnings: list[str] = []
    label = None
    try:
        if fmt in ("sav", "zsav", "por", "dta"):
            from .spss import read_pyreadstat

            data, meta, enc, label, _ = read_pyreadstat(
                p, fmt, encoding=encoding, columns=columns, chunksize=chunksize, progress=progress,
                processes=processes, compact=compact, notes=notes, warnings=warnings,
                on_started=start_hashing)
        elif fmt == "csv":
            from .csv import read_csv_file

            start_hashing()
            data, meta, enc = read_csv_file(p, encoding=encoding, sep=sep, decimal=decimal, columns=columns,
                                            chunksize=chunksize, progress=progress, compact=compact,
                                            notes=notes, warnings=warnings)
        else:
            from .excel import read_xlsx_file

            start_hashing()
            data, meta = read_xlsx_file(p, sheet=sheet, columns=columns, compact=compact, notes=notes,
                                        warnings=warnings)
            enc = None
    except MemoryError:
        raise InputFileError("not enough memory to read the file", code="input.memory", where=where,
                             hint="read fewer variables with columns=[...]") from None
    except OverflowError:   # e.g. a number of hundreds of digits that a reader cannot hold
        raise InputFileError("a value in the file is a number too large to read", code="input.overflow",
                             where=where, hint="check the file for garbled numbers (hundreds of digits)") from None
    finally:
        if started:
            hasher.join()
    if not small and not started:  # the reader never signalled (e.g. it failed early)
        hasher.run()
    if hasher.digest is None:
        raise InputFileError(f"cannot read the file: {hasher.error}", code="input.unreadable", where=where)
    source = SourceInfo(path=where, format=fmt, encoding=enc, sha256=hasher.digest, n_rows=int(data.shape[0]),
                        n_columns=int(data.shape[1]), notes=notes, file_label=label)
    return RawWave(data=data, meta=meta, source=source, warnings=warnings)
