"""The ``diaspora-survey`` command line: a thin typer app over the library.

Each sub-command lives in its own module of ``diaspora_survey.cli`` and exposes
``register(app)``; modules import the library (pandas, statsmodels, reportlab …) inside
their command functions only, so that ``diaspora-survey --help`` stays fast.
Errors derived from :class:`DiasporaSurveyError` are printed as one message and exit 2.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from .. import __version__
from ..errors import DiasporaSurveyError
from ._console import render_error

app = typer.Typer(
    name="diaspora-survey",
    help="Survey toolkit for emigrant communities: import → harmonise → weight → estimate → "
         "compare with the population → report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,   # help texts quote "[section] key" of the project file: no markup
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"diaspora-survey {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          no_isolate: bool = typer.Option(
              False, "--no-isolate",
              help="Run the command in this process, not in a forked child (for profilers "
                   "and debuggers: python -m cProfile -m diaspora_survey.cli --no-isolate "
                   "run; same as DIASPORA_SURVEY_NO_FORK=1).")) -> None:
    """Survey toolkit for emigrant communities."""


def _register_commands() -> None:
    package = __name__.rpartition(".")[0]
    for mod in sorted(pkgutil.iter_modules(sys.modules[package].__path__), key=lambda m: m.name):
        if mod.name.startswith("_") or mod.name == "app":
            continue
        module = importlib.import_module(f"{package}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def _run(argv: list[str] | None) -> int:
    """Run one command in this process; returns the exit status (0 ok, 2 bad input or usage)."""
    try:
        # with standalone_mode=False click returns typer.Exit(code)'s code instead of raising it
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc:
            return rc
    except DiasporaSurveyError as err:
        render_error(err)
        return 2
    except typer.Exit as ex:  # --version, --help
        return ex.exit_code
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except OSError as ex:   # the system refused a file operation (name too long, I/O error …)
        render_error(DiasporaSurveyError(
            f"{ex.strerror or type(ex).__name__}", code="os.error",
            where=str(ex.filename)[:200] if ex.filename else None,
            hint="check the path, the permissions and the disk"))
        return 2
    except Exception as ex:  # click's usage errors (typer vendors click, so duck-type them)
        if hasattr(ex, "show") and hasattr(ex, "exit_code"):
            ex.show()
            return int(ex.exit_code) or 2
        raise
    return 0


BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _limit_blas_threads() -> None:
    """One BLAS thread for the command unless the user set one of ``BLAS_ENV`` or
    ``DIASPORA_SURVEY_BLAS_THREADS`` (must happen before numpy is imported).

    The toolkit's linear algebra is on tall, narrow matrices (n x k score and design
    matrices, k small): a second BLAS thread gains little, and on a machine whose other
    core is busy OpenBLAS threads wait on each other — measured here, a 500,000 x 30 Gram
    matrix took 15.4 s with two threads and 0.87 s with one while another process ran."""
    if "numpy" in sys.modules or any(k in os.environ for k in BLAS_ENV):
        return
    n = os.environ.get("DIASPORA_SURVEY_BLAS_THREADS", "1")
    for k in BLAS_ENV:
        os.environ[k] = n


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 2 bad input or usage).

    The command runs in a forked child where that is possible (see :mod:`._guard`): a
    corrupt SPSS file that crashes ReadStat (SIGSEGV) during ``run``, ``harmonise`` or any
    other command then still ends in one message and exit status 2, not a dead interpreter.
    ``--no-isolate`` (first argument) or ``DIASPORA_SURVEY_NO_FORK=1`` run it in this
    process instead, so that ``python -m cProfile -m diaspora_survey.cli --no-isolate run``
    profiles the command itself (in the child, the parent's profiler sees only waitpid).
    """
    from .._guard import CommandStopped, command_crash_error, run_isolated

    _limit_blas_threads()
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("--help", "--version", "init", "reference"):
        return _run(args)                 # reads no data files
    if args[0] == "--no-isolate" or os.environ.get("DIASPORA_SURVEY_NO_FORK"):
        # in-process, e.g. under cProfile (a forked child's work is invisible to it)
        return _run(args)
    status = {"rc": 0}

    def work() -> None:
        status["rc"] = _run(args)
        if status["rc"]:
            raise _ChildExit(status["rc"])

    command = f"diaspora-survey {args[0]}"
    try:
        rc = run_isolated(work, path=command, on_error=_child_status,
                          crash=lambda sig: command_crash_error(command, sig))
    except _ChildExit as ex:              # no fork: the command ran in this process
        return ex.code
    except CommandStopped as err:         # stopped by a signal (forwarded), or killed (OOM)
        render_error(err)
        return err.exit_status
    except DiasporaSurveyError as err:    # the child crashed (SIGSEGV in ReadStat …)
        render_error(err)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    return rc or status["rc"]


class _ChildExit(Exception):
    """Carries a non-zero exit status out of the isolated command."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _child_status(err: BaseException) -> int:
    if isinstance(err, _ChildExit):
        return err.code
    if isinstance(err, SystemExit):      # e.g. rich on a closed pipe (`... | head`)
        return err.code if isinstance(err.code, int) else 1
    import traceback

    traceback.print_exception(err)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
