"""The project pipeline behind ``diaspora-survey run`` and ``diaspora-survey report``.

:class:`Pipeline` runs the steps on a project — harmonise → weight → compare → report —
each by calling the library module that owns it (``Project.harmonise_all``,
``diaspora_survey.weighting``, ``diaspora_survey.compare.comparison``, :mod:`diaspora_survey.report`).
A step that fails raises its :class:`~diaspora_survey.errors.DiasporaSurveyError` and
stops the pipeline before any report file is written.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ReportError

STEPS = ("harmonise", "weight", "compare", "report")
WEIGHTED_OUTPUT = "build/weighted.parquet"


@dataclass
class StepResult:
    name: str
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)


# ---- atomic writers of the steps' outputs ------------------------------------------------------

def write_parquet(df, path: Path, *more) -> None:
    """Write ``df`` to ``path`` as parquet, atomically (temporary file, then rename); further
    ``(df, path)`` pairs in ``more`` are written the same way and renamed only when all are written."""
    import contextlib

    from ._util import atomic_path

    pairs = [(df, Path(path))] + [(d, Path(p)) for d, p in more]
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(p, code="harmonise.cannot_write")) for _, p in pairs]
        for (d, _), tmp in zip(pairs, tmps):
            d.to_parquet(tmp, index=False)


def write_outputs(project, res, output: str | Path | None = None) -> list[Path]:
    """Write the weighted data (atomically); returns the paths written."""
    from ._util import atomic_path

    out = Path(output) if output is not None else Path(project.root) / WEIGHTED_OUTPUT
    with atomic_path(out) as tmp:
        res.data.to_parquet(tmp, index=False)
    return [out]


class Pipeline:
    """Runs a project's steps; results accumulate on the instance."""

    def __init__(self, root: str | os.PathLike = ".", *, command: str = ""):
        from .project import Project

        self.project = Project.load(root)
        self.command = command
        self.harmonised = None        # ProjectHarmonised
        self.data = None              # respondent frame (harmonised, then weighted)
        self.weighted = None          # WavesResult of the weight step
        self.weighting: dict = {}
        self.weighting_info: dict = {}
        self.comparison: dict = {}
        self.results: list[StepResult] = []

    # ---- steps ------------------------------------------------------------------------
    def run_step(self, name: str, fn: Callable[[], Any]) -> StepResult:
        t0 = time.perf_counter()
        outputs = fn() or []
        res = StepResult(name, time.perf_counter() - t0, list(outputs))
        self.results.append(res)
        return res

    def _need_data(self, step: str) -> None:
        if self.data is None:
            raise ReportError(f"the {step} step needs the harmonised data", code="report.order",
                              hint="run the harmonise step first")

    def harmonise(self, *, write: bool = True) -> list[Path]:
        h = self.project.harmonise_all()
        self.harmonised = h
        self.data = h.data
        if not write:
            return []
        # the same files as `diaspora-survey harmonise`
        out = self.project.path(self.project.harmonise_config.output)
        excl_path = out.with_name("exclusions.parquet")
        excl = h.exclusions.copy()
        excl["wave"] = excl["wave"].astype("string")
        write_parquet(h.data, out, (excl, excl_path))   # both renamed once both are written
        return [out, excl_path]

    def weight(self, *, write: bool = True) -> list[Path]:
        from .weighting import weight_project

        self._need_data("weight")
        res = weight_project(self.project, self.data)
        self.weighted = res
        self.data = res.data
        self.weighting = dict(res.diagnostics)
        self.weighting_info = {"method": res.method, "targets": list(res.targets)}
        if not write:
            return []
        return list(write_outputs(self.project, res))

    def compare(self) -> list[Path]:
        self._need_data("compare")
        from .report.collect import compare_project

        self.comparison = compare_project(self.project, self.data)
        return []

    def report_inputs(self):
        from .report.collect import report_inputs

        return report_inputs(self)

    def formats(self, formats: list[str] | None = None) -> list[str]:
        """The formats asked for (or the project's [report] formats), validated."""
        from .report import FORMATS

        fmts = list(formats or self.project.report.formats or ["pdf"])
        bad = [f for f in fmts if f not in FORMATS]
        if bad:
            raise ReportError(f"unknown report format {bad[0]!r}", code="report.format",
                              where=None if formats else str(self.project.file),
                              hint=f"use one of: {', '.join(FORMATS)}")
        return fmts

    def report(self, formats: list[str] | None = None, output: str | None = None) -> list[Path]:
        """Build and write the report. Any failure is one :class:`ReportError` naming the
        step and the cause (nothing is written unless every format rendered, so the
        previous report stays as it was)."""
        self._need_data("report")
        from .errors import DiasporaSurveyError
        from .report import write_reports
        from .report.content import build_report

        fmts = self.formats(formats)
        base = Path(output) if output else self.project.path(self.project.report.output)
        targets = {fmt: (base if (len(fmts) == 1 and output) else base.with_suffix(f".{fmt}"))
                   for fmt in fmts}
        try:
            report = build_report(self.report_inputs())
            return write_reports(report, targets)
        except DiasporaSurveyError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug or resource limit: one message, no file
            raise ReportError(f"the report step failed: {type(e).__name__}: {e}",
                              code="report.failed", where=str(base),
                              hint="the previous report (if any) is unchanged; run with "
                                   "DIASPORA_SURVEY_NO_FORK=1 python -X faulthandler -m "
                                   "diaspora_survey.cli ... for the traceback, and report it") from e
