"""Crash isolation for command-line reads of untrusted files.

ReadStat, the C library under pyreadstat, does not check every count and index in an SPSS
dictionary: a corrupt ``.sav`` (e.g. a value-label record that names variable 129 of a
one-variable file, or a huge label count) can crash the interpreter with SIGSEGV — no
Python exception, no message, exit status 139. The library cannot catch that in-process.

:func:`run_isolated` runs a piece of work in a forked child (Linux, a few milliseconds);
if the child is killed by a signal, the parent raises one :class:`InputFileError` naming
the file, so the command line still ends in one message and exit status 2. Where fork is
unavailable or unsafe (Windows, macOS, other threads running, stdout not a real file as under
pytest's ``capsys``, or ``DIASPORA_SURVEY_NO_FORK=1``) the work runs in-process.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from .errors import InputFileError


def can_fork() -> bool:
    """True where forking the current process is possible and safe."""
    if not sys.platform.startswith("linux") or os.environ.get("DIASPORA_SURVEY_NO_FORK"):
        return False   # Windows has no fork; macOS system libraries are not fork-safe
    if threading.active_count() > 1:
        return False
    try:
        sys.stdout.fileno()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):   # io.UnsupportedOperation is an OSError
        return False
    return True


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def command_crash_error(command: str, signum: int) -> InputFileError:
    """The message for a command (not a single file read) that died by a signal."""
    return InputFileError(
        f"the program crashed ({_signal_name(signum)}), most likely in ReadStat, the C library "
        "under pyreadstat, on a corrupt, truncated or password-protected SPSS/Stata file",
        code="input.crash", where=command,
        hint="run `diaspora-survey inspect FILE` on each raw file of the project: it names the "
             "file; export that file from its source again")


def crash_error(path: str | Path, signum: int) -> InputFileError:
    return InputFileError(
        f"the file reader crashed on this file ({_signal_name(signum)} in ReadStat, the C library under pyreadstat): "
        "the file is corrupt, truncated or password-protected (encrypted)",
        code="input.crash", where=str(path),
        hint="export the data from the original source again; if SPSS or PSPP can open the file, "
             "save it again as .sav")


def run_isolated(work: Callable[[], None], *, path: str | Path,
                 on_error: Callable[[BaseException], int],
                 crash: Callable[[int], BaseException] | None = None) -> int:
    """Run ``work()`` in a forked child and return its exit status (0 when it returned).

    In the child an exception goes to ``on_error`` (which prints it and returns the exit
    status). A child killed by a signal raises ``crash(signum)`` (default :func:`crash_error`
    naming ``path``) here, in the parent.
    Without fork, ``work()`` runs in-process and its exceptions propagate unchanged.
    """
    if not can_fork():
        work()
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 1
        try:
            import faulthandler

            faulthandler.disable()   # a crash is reported once, by the parent, as one message
            work()
            code = 0
        except BaseException as ex:  # noqa: BLE001 - the child reports everything, then exits
            try:
                code = int(on_error(ex))
            except BaseException:  # noqa: BLE001
                code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
            continue
        except KeyboardInterrupt:
            # the child got the same SIGINT and stops; reap it, then stop here too
            os.waitpid(pid, 0)
            raise
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGINT:
            raise KeyboardInterrupt
        raise (crash or (lambda n: crash_error(path, n)))(sig)
    return os.WEXITSTATUS(status)
