"""Safe file handling: what may be read, what may be written, and writing several files as one unit.

* :func:`check_input` / :func:`read_text_input` — a file is read only if it is a regular file
  (never a FIFO, device or folder, which would hang or mislead), readable, and below a size
  limit; every file read is remembered as an *input* of this process.
* :func:`guard_output` — an output may not be a remembered input, lie inside a protected raw
  folder, nor be an existing non-regular file (``/dev/full``, a FIFO, a folder). No option
  overrides this: raw data are never destroyed.
* :func:`publish` — write several outputs as one unit: every file into a temporary file beside
  its target, then a journal (the commit point), then the renames. A run killed before the
  journal leaves the old outputs; killed during the renames, the next run (or
  :func:`recover`) completes them from the journal. Stale temporary files of dead runs are
  removed. A full disk is one :class:`~diaspora_survey.errors.OutputError`, old outputs intact.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

from ._guard import raise_if_stopped
from .errors import DiasporaSurveyError, InputFileError, OutputError

#: default size limit of a text input (codebook, targets, claims, crosswalk, reference table,
#: project file): far above any real one, far below what could exhaust memory
MAX_TEXT_BYTES = 20 << 20

TMP_SUFFIX = ".ds-tmp"
JOURNAL_PREFIX = ".ds-publish."
_OURS = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + r"$")
_JOURNAL = re.compile(r"^" + re.escape(JOURNAL_PREFIX) + r"(\d+)-[0-9a-f]{8}\.json$")
# temporary files of earlier versions (tempfile.mkstemp: ".NAME.XXXXXXXX.tmp"), removed when old
_LEGACY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_LEGACY_AGE = 3600.0

_INPUT_FILES: set[str] = set()
_PROTECTED_DIRS: set[str] = set()

#: test hook: called as ``hook(index, tmp, target)`` before each rename of :func:`publish`
before_rename: Callable[[int, Path, Path], None] | None = None


# ---- the registry of inputs ------------------------------------------------------------------

def _forms(path: str | os.PathLike) -> set[str]:
    p = os.path.abspath(os.fspath(path))
    return {p, os.path.realpath(p)}


def note_input(path: str | os.PathLike) -> None:
    """Remember ``path`` as a file this process reads: no output may replace it."""
    _INPUT_FILES.update(_forms(path))


def protect_dir(path: str | os.PathLike) -> None:
    """Remember ``path`` as a raw-data folder: nothing is ever written inside it."""
    _PROTECTED_DIRS.update(_forms(path))


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def guard_output(path: str | os.PathLike, *, code: str | None = None,
                 inputs: bool = True) -> Path:
    """The output ``path`` as a Path if it may be written; else one :class:`OutputError`.

    Refused: an existing target that is not a regular file (folder, device, FIFO, socket); with
    ``inputs`` (the default) also any existing file read by this process (:func:`note_input`: raw
    waves, codebooks, targets, claims, crosswalks, reference tables, the project file, the
    command's own input) and anything inside a raw-data folder (:func:`protect_dir`).
    """
    target = Path(os.fspath(path))
    where = str(target)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as ex:
        if ex.errno == errno.ELOOP:
            raise OutputError("the output is a symbolic link loop", code=code or "output.not_regular",
                              where=where, hint="remove the link or choose another output name") from None
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise OutputError("the output is a folder", code=code or "output.cannot_write", where=where,
                              hint="give a file name in a folder you can write to (e.g. with -o)")
        raise OutputError(f"the output is {_kind(st.st_mode)}, not a regular file; it is not replaced",
                          code="output.not_regular", where=where,
                          hint="give the name of a new or existing regular file (e.g. with -o)")
    if inputs:
        forms = _forms(target)
        # an input is never *over*written; a codebook the project names but that does not exist
        # yet may be written there (init -> codebook draft -o codebooks/wave.yaml)
        if st is not None and forms & _INPUT_FILES:
            raise OutputError("this file is an input (raw data, codebook, targets, claims, "
                              "crosswalk, reference table, project file, or this command's input): "
                              "it is never overwritten",
                              code="output.is_input", where=where,
                              hint="choose another output name, e.g. under build/ or reports/ "
                                   "(--force does not override this)")
        parents = {os.path.dirname(f) for f in forms} | {os.path.realpath(os.path.dirname(f)) for f in forms}
        for d in _PROTECTED_DIRS:
            if any(_inside(p, d) for p in parents):
                raise OutputError("the output lies inside the raw-data folder, which is never written to",
                                  code="output.in_raw", where=where,
                                  hint="write outputs under build/ or reports/ (--force does not "
                                       "override this)")
    return target


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# ---- inputs ----------------------------------------------------------------------------------

def check_input(path: str | os.PathLike, *, what: str = "input file",
                error: type[DiasporaSurveyError] = InputFileError, code: str | None = None,
                max_bytes: int | None = None, hint: str | None = None, protect: bool = True) -> Path:
    """``path`` if it is a readable regular file of at most ``max_bytes``; else one ``error``.

    Never opens a FIFO or device (that would hang or read forever). With ``protect`` the file
    is remembered as an input (:func:`note_input`) that no output of this process may replace.
    ``code`` prefixes the error codes (default ``input``).
    """
    p = Path(os.fspath(path))
    where = str(p)
    pre = code or "input"
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise error(f"the {what} is a broken symbolic link", code=f"{pre}.not_found", where=where,
                        hint=hint or "point the link at the file, or name the file itself") from None
        raise error(f"{what} not found", code=f"{pre}.not_found", where=where,
                    hint=hint or "check the path") from None
    except PermissionError:
        raise error(f"permission denied: the {what} cannot be read", code=f"{pre}.permission",
                    where=where, hint="give yourself read access to the file and its folders") from None
    except OSError as ex:
        if ex.errno == errno.ELOOP:
            raise error(f"the {what} is a symbolic link loop", code=f"{pre}.not_regular", where=where,
                        hint="remove the loop; name the real file") from None
        raise error(f"cannot read the {what}: {ex.strerror or ex}", code=f"{pre}.unreadable",
                    where=where, hint=hint or "check the path and the disk") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"the {what} is a folder, not a file", code=f"{pre}.not_a_file", where=where,
                    hint=hint or "name one file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"the {what} is {_kind(st.st_mode)}, not a regular file; it is not read",
                    code=f"{pre}.not_regular", where=where,
                    hint="copy the data into a regular file and name that file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"the {what} is too large ({st.st_size / 2**20:,.1f} MB; the limit is "
                    f"{max_bytes / 2**20:,.0f} MB)", code=f"{pre}.too_large", where=where,
                    hint="check that this is the right file")
    if not os.access(p, os.R_OK):
        raise error(f"permission denied: the {what} cannot be read", code=f"{pre}.permission",
                    where=where, hint=f"give yourself read access (chmod u+r '{p}')")
    if protect:
        note_input(p)
    return p


def read_text_input(path: str | os.PathLike, *, what: str = "file",
                    error: type[DiasporaSurveyError] = InputFileError, code: str | None = None,
                    max_bytes: int = MAX_TEXT_BYTES, encoding: str = "utf-8-sig",
                    hint: str | None = None) -> str:
    """The text of a small configuration file (codebook, targets, claims, crosswalk, reference
    table, project file) after :func:`check_input`; binary or non-UTF-8 content is one
    ``error`` naming the byte offset, never echoing the content."""
    p = check_input(path, what=what, error=error, code=code, max_bytes=max_bytes, hint=hint)
    pre = code or "input"
    try:
        data = p.read_bytes()
    except OSError as ex:
        raise error(f"cannot read the {what}: {ex.strerror or ex}", code=f"{pre}.unreadable",
                    where=str(p)) from None
    if b"\x00" in data[:65536]:
        raise error(f"the {what} is binary, not text", code=f"{pre}.binary", where=str(p),
                    hint=f"name the {what} (a UTF-8 text file) here, not a data file")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as ex:
        line = data.count(b"\n", 0, ex.start) + 1
        raise error(f"the {what} is not UTF-8 text (invalid byte at line {line})",
                    code=f"{pre}.encoding", where=f"{p}:{line}",
                    hint="save the file as UTF-8") from None


def read_parquet_input(path: str | os.PathLike, *, hint: str = "re-run the step that writes it",
                       protect: bool = False):
    """A parquet file of the project (build/…) as a DataFrame, after :func:`check_input`; any
    failure is one :class:`InputFileError` (never the reader's own exception).

    Build files are the steps' own outputs, made again when stale: by default reading one does
    not protect it (``protect=True``, or :func:`note_input`, for a command whose output must
    not replace what it read, e.g. ``weight -i X -o X``)."""
    import pandas as pd

    p = check_input(path, what="parquet file", hint=hint, protect=protect)
    try:
        return pd.read_parquet(p)
    except MemoryError:
        raise InputFileError("not enough memory to read the file", code="input.memory",
                             where=str(p), hint=hint) from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds
        raise InputFileError(f"cannot read parquet: {str(e)[:200]}", code="input.unreadable",
                             where=str(p), hint=hint) from None


# ---- writing as one unit --------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tmp_name(target: Path) -> Path:
    """A temporary file beside ``target``, named so that :func:`recover` knows it is ours."""
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")


def recover(dirs: Iterable[str | os.PathLike]) -> list[Path]:
    """Finish or clean up after runs that were killed: in each folder, a journal of a dead
    process is completed (its renames done: the unit it committed is published whole), then
    temporary files of dead processes are removed. Returns the targets completed."""
    done: list[Path] = []
    folders = []
    for d in dirs:
        d = Path(d)
        try:
            names = os.listdir(d)
        except OSError:
            continue
        folders.append((d, names))
    for d, names in folders:             # journals first: they may name temp files in other folders
        for name in names:
            m = _JOURNAL.match(name)
            if not m or _pid_alive(int(m.group(1))):
                continue
            jpath = d / name
            try:
                pairs = json.loads(jpath.read_text(encoding="utf-8"))["files"]
                for tmp, target in pairs:
                    if os.path.exists(tmp):
                        os.replace(tmp, target)
                        done.append(Path(target))
                jpath.unlink()
            except (OSError, ValueError, KeyError, TypeError):
                continue
    now = time.time()
    for d, names in folders:
        for name in names:
            m = _OURS.match(name)
            p = d / name
            try:
                if m and not _pid_alive(int(m.group(1))):
                    p.unlink()
                elif _LEGACY.match(name) and now - p.lstat().st_mtime > _LEGACY_AGE:
                    p.unlink()
            except OSError:
                continue
    return done


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _os_error(ex: OSError, where: Path, code: str | None) -> OutputError:
    if ex.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError("the disk is full (no space left on device); nothing was written and "
                           "the previous outputs are unchanged", code="output.disk_full",
                           where=str(where), hint="free some disk space and run the command again")
    return OutputError(f"cannot write the output: {ex.strerror or ex}; the previous outputs are "
                       "unchanged", code=code, where=str(where),
                       hint="give a file name in a folder you can write to (e.g. with -o)")


Writer = "bytes | Callable[[Path], None]"


def publish(files: Mapping[str | os.PathLike, "bytes | Callable[[Path], None]"], *,
            code: str | None = None, inputs: bool = True) -> list[Path]:
    """Write ``{target: bytes or writer(tmp_path)}`` as one unit; returns the targets in order.

    1. every target passes :func:`guard_output` (nothing is written if one fails);
    2. stale temporary files and journals of killed runs in the target folders are handled
       (:func:`recover`);
    3. every file is written to a temporary file beside its target and synced; any error
       (a full disk included) removes them all and raises one :class:`OutputError`;
    4. with several files, a journal naming every (temporary, target) pair is written
       atomically beside the first target: the commit point;
    5. the renames; then the journal is removed.
    """
    targets = [guard_output(p, code=code, inputs=inputs) for p in files]
    writers = list(files.values())
    if len({os.path.abspath(t) for t in targets}) != len(targets):
        raise OutputError("two outputs have the same name", code=code, where=str(targets[0]))
    for t in targets:
        try:
            t.parent.mkdir(parents=True, exist_ok=True)
        except OSError as ex:
            raise _os_error(ex, t, code) from None
        if not t.parent.is_dir():
            raise OutputError("the output's folder is not a folder", code=code, where=str(t))
    recover({t.parent for t in targets})
    tmps: list[Path] = []
    journal: Path | None = None
    try:
        mode = 0o666 & ~_umask()
        for t, w in zip(targets, writers):
            tmp = tmp_name(t)
            tmps.append(tmp)
            if isinstance(w, (bytes, bytearray, memoryview)):
                _write_bytes(tmp, bytes(w))
            else:
                w(tmp)
                if not tmp.exists():
                    raise OutputError("the writer produced no file", code=code, where=str(t))
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            os.chmod(tmp, mode)
        if len(targets) > 1:
            journal = targets[0].parent / f"{JOURNAL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.json"
            jtmp = tmp_name(journal)
            tmps.append(jtmp)
            _write_bytes(jtmp, json.dumps({"files": [[str(a.resolve()), str(b.resolve())]
                                                     for a, b in zip(tmps, targets)]}).encode())
            os.replace(jtmp, journal)
            tmps.pop()
    except OSError as ex:
        _remove(tmps)
        raise _os_error(ex, targets[len(tmps) - 1] if tmps else targets[0], code) from None
    except BaseException:
        _remove(tmps)
        raise
    try:
        raise_if_stopped()               # a stop that was swallowed: nothing is committed
    except BaseException:
        _remove(tmps + ([journal] if journal is not None else []))
        raise
    for i, (tmp, t) in enumerate(zip(tmps, targets)):
        if before_rename is not None:
            before_rename(i, tmp, t)
        try:
            os.replace(tmp, t)
        except OSError as ex:           # the journal stays: the next run completes the unit
            raise _os_error(ex, t, code) from None
    if journal is not None:
        journal.unlink(missing_ok=True)
    return targets


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


__all__ = ["MAX_TEXT_BYTES", "check_input", "guard_output", "note_input", "protect_dir",
           "publish", "read_parquet_input", "read_text_input", "recover", "tmp_name"]
