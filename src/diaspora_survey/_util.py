"""Small helpers shared across modules: atomic writes and file hashes."""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator

from ._guard import raise_if_stopped


_LIBC: list = []


def trim_memory() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim(0)``; nothing elsewhere).

    Between the chunks of a wave harmonised in chunks: the parser's and numpy's freed buffers
    otherwise stay in the process's heap, and its size grows chunk by chunk (a 2M-row CSV wave
    in chunks of 200,000 rows: 441 MB resident without, 270 MB with)."""
    if not _LIBC:
        try:
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            _LIBC.append(lib.malloc_trim)
        except (OSError, AttributeError):
            _LIBC.append(None)
    if _LIBC[0] is not None:
        _LIBC[0](0)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, code: str | None = None,
                inputs: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Nothing half-written is ever left at ``path``: on error the temporary file is removed (and
    a killed run's temporary file is removed by the next write into that folder). ``path``
    must pass :func:`~diaspora_survey._files.guard_output` (never an input of the project, a
    raw folder, a device or a folder; ``inputs=False`` skips only the input check, for the
    example generator that writes raw/). A place that cannot be written or a full disk
    raises one :class:`~diaspora_survey.errors.OutputError` naming it (``code`` overrides
    ``output.cannot_write``).
    """
    from ._files import _os_error, guard_output, recover, tmp_name
    from .errors import OutputError

    target = guard_output(path, code=code, inputs=inputs)
    hint = "give a file name in a folder you can write to (e.g. with -o)"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        recover([target.parent])
        tmp_path = tmp_name(target)
        tmp_path.touch(mode=0o600)
    except OSError as ex:
        raise OutputError(f"cannot write the output: {ex.strerror or ex}", code=code,
                          where=str(target), hint=hint) from None
    try:
        try:
            yield tmp_path
        except OSError as ex:
            raise _os_error(ex, target, code) from None
        if tmp_path.exists():  # created 0600; give the file the usual umask permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        raise_if_stopped()               # a swallowed stop: the output is not committed
        try:
            os.replace(tmp_path, target)
        except OSError as ex:
            raise _os_error(ex, target, code) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, code: str | None = None,
                       inputs: bool = True) -> None:
    from ._files import publish

    publish({path: data}, code=code, inputs=inputs)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8", *,
                      code: str | None = None) -> None:
    atomic_write_bytes(path, text.encode(encoding), code=code)


#: A raw text value seen at least this often is an answer many respondents gave (a
#: category): shown; rarer values may be free text that identifies someone: masked.
FREE_TEXT_MIN_COUNT = 10


def mask_value(value, count: int | None = None, *, min_count: int = FREE_TEXT_MIN_COUNT,
               max_len: int = 30) -> str:
    """A raw value as messages may show it (issue 11 item 7: free text is never echoed).

    Numbers and codes with their file label (``7 «Другое»``) are shown as they are; text
    seen at least ``min_count`` times and at most ``max_len`` characters long is shown (a
    common answer such as a city); anything else is masked to its first two characters,
    digits as ``#``, and its length: ``'Тб…' (41 chars)``. Control characters are removed.
    """
    import re as _re

    s = _re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", str(value))
    if _re.fullmatch(r"-?\d+([.,]\d+)?([eE][-+]?\d+)?", s.strip()) or \
            _re.fullmatch(r"-?\d+(\.\d+)? «.*»", s, flags=_re.S):
        return s if len(s) <= 80 else s[:77] + "…"
    if count is not None and count >= min_count and len(s) <= max_len:
        return s
    # a combination of coded answers (multi-column rules): ``mnactic=1 «Paid work», emplrel=NA``
    parts = [_re.fullmatch(r"([A-Za-z_][\w.]*)=(.*)", x, flags=_re.S) for x in s.split(", ")]
    if len(parts) > 1 and all(parts) and all(
            m.group(2) == "NA" or _re.fullmatch(r"'.{0,2}…' \(\d+ chars\)", m.group(2))
            or mask_value(m.group(2)) == m.group(2) for m in parts):
        return s
    head = _re.sub(r"\d", "#", s.strip()[:2])
    return f"'{head}…' ({len(s)} chars)"


def lazy_callable_package(name: str, lazy: dict, *, call: str):
    """Make package ``name`` callable as its function ``call`` (``ds.harmonise(wave, cb)``,
    ``ds.compare(design, "russia")``: Python binds the package attribute of the parent to the
    subpackage on import, shadowing the lazily exported function), and return its module
    ``__getattr__`` resolving ``lazy`` = {attribute: submodule} on first use."""
    import importlib
    import sys
    import types

    def __getattr__(attr: str):
        if attr in lazy:
            value = getattr(importlib.import_module(f"{name}.{lazy[attr]}"), attr)
            setattr(sys.modules[name], attr, value)
            return value
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return __getattr__(call)(*args, **kwargs)

    sys.modules[name].__class__ = _CallableModule
    return __getattr__
