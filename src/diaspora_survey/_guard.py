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

Stopping the command stops the work: SIGTERM, SIGHUP, SIGQUIT and SIGINT sent to the parent
(the visible PID) are forwarded to the child, and the child is asked to stop (SIGTERM, via
Linux's ``PR_SET_PDEATHSIG``) when the parent dies, even by SIGKILL. A stopped child unwinds:
its temporary files are removed, and outputs are never half-written (see :mod:`._files`).
A stop is also remembered: Python drops an exception raised by a signal handler that happens
to run inside a ``__del__`` or a garbage-collector callback ("Exception ignored in …") and goes
on, so every output commit (:mod:`._files`) and every step of ``run`` calls
:func:`raise_if_stopped` first — a stopped command never writes an output afterwards.
A child killed by SIGKILL that nobody asked to stop (most often the kernel's out-of-memory
killer) is reported as such, not as a corrupt input file.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from .errors import DiasporaSurveyError, InputFileError

FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT)


class CommandStopped(DiasporaSurveyError):
    """The command was stopped by a signal (sent by a user or the system), not by bad input.
    ``exit_status`` is the shell's convention, 128 + the signal number."""

    default_code = "command.stopped"

    def __init__(self, message: str, *, signum: int, **kw):
        super().__init__(message, **kw)
        self.signum = signum
        self.exit_status = 128 + signum


class _Stop(BaseException):
    """Raised in the child by a forwarded signal: unwinds (removing temporary files), then exits."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def killed_error(where: str, signum: int) -> CommandStopped:
    """A process killed by ``signum`` that nobody asked to stop (SIGKILL: usually out of memory)."""
    why = (" — most often by the system's out-of-memory killer: the data or the request need more "
           "memory than is free" if signum == signal.SIGKILL else "")
    return CommandStopped(f"the work was killed ({_signal_name(signum)}){why}; no output was "
                          "changed (outputs are never half-written)", signum=signum,
                          code="command.killed", where=where,
                          hint="free memory or read fewer variables; a file that is far larger "
                               "than it should be is worth checking with `diaspora-survey inspect`")


def stopped_error(where: str, signum: int) -> CommandStopped:
    return CommandStopped(f"stopped by {_signal_name(signum)}; outputs are either complete or "
                          "unchanged (never half-written)", signum=signum, code="command.stopped",
                          where=where)


_stop: dict[str, int] = {"signum": 0, "parent": 0}   # this (child) process: a stop asked for


def raise_if_stopped() -> None:
    """Raise the stop again if this worker was asked to stop (by a forwarded signal, or its
    parent died) and the first raise was swallowed; nothing to do in a process that is not a
    worker of :func:`run_isolated`."""
    signum = _stop["signum"]
    if not signum and _stop["parent"] and os.getppid() != _stop["parent"]:
        signum = _stop["signum"] = int(signal.SIGTERM)   # the parent is gone: as PDEATHSIG
    if not signum:
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise _Stop(signum)


def _quiet_unraisable(hook):
    """``sys.unraisablehook`` for a worker: a stop swallowed in a ``__del__`` is not printed
    (it is raised again at the next commit); anything else goes to the usual hook."""
    def quiet(unraisable):
        if _stop["signum"] and isinstance(unraisable.exc_value, (_Stop, KeyboardInterrupt)):
            return
        hook(unraisable)
    return quiet


def _set_parent_death_signal(parent: int) -> None:
    """Linux: SIGTERM to this (child) process when its parent dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)   # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):   # pragma: no cover - not Linux / no libc symbol
        pass
    if os.getppid() != parent:           # the parent died before prctl took effect
        os._exit(128 + signal.SIGTERM)


def _child_handler(signum, frame):
    _stop["signum"] = _stop["signum"] or signum
    for s in FORWARDED:                  # one stop; a second signal must not break the unwinding
        signal.signal(s, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise _Stop(signum)


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


def command_crash_error(command: str, signum: int) -> DiasporaSurveyError:
    """The message for a command (not a single file read) that died by a signal."""
    if signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
        return killed_error(command, signum)
    return InputFileError(
        f"the program crashed ({_signal_name(signum)}), most likely in ReadStat, the C library "
        "under pyreadstat, on a corrupt, truncated or password-protected SPSS/Stata file",
        code="input.crash", where=command,
        hint="run `diaspora-survey inspect FILE` on each raw file of the project: it names the "
             "file; export that file from its source again")


def crash_error(path: str | Path, signum: int) -> DiasporaSurveyError:
    if signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
        return killed_error(str(path), signum)
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
    parent = os.getpid()
    received: list[int] = []
    child = {"pid": 0}

    def forward(signum, frame):          # parent: pass the signal on; stop when the child has
        received.append(signum)
        if child["pid"]:
            try:
                os.kill(child["pid"], signum)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in FORWARDED}   # before fork: no gap
    try:
        pid = os.fork()
    except OSError:
        for s, h in previous.items():
            signal.signal(s, h)
        raise
    if pid == 0:  # child: never returns
        code = 1
        try:
            for s in FORWARDED:
                signal.signal(s, _child_handler)
            _stop["parent"] = parent
            sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
            _set_parent_death_signal(parent)
            if received:                 # a signal reached the parent between install and fork
                raise _Stop(received[0])
            import faulthandler

            faulthandler.disable()   # a crash is reported once, by the parent, as one message
            work()
            code = 0
        except _Stop as ex:
            code = 128 + ex.signum
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
    child["pid"] = pid
    for s in received:                   # arrived between install and fork
        forward(s, None)
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
                continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGINT:
            raise KeyboardInterrupt
        if received:
            raise stopped_error(str(path), received[0])
        raise (crash or (lambda n: crash_error(path, n)))(sig)
    rc = os.WEXITSTATUS(status)
    if received and received[0] != signal.SIGINT and rc == 128 + received[0]:
        raise stopped_error(str(path), received[0])
    return rc
