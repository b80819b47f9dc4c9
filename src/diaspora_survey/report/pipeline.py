"""The project pipeline behind ``diaspora-survey run`` and ``diaspora-survey report``.

:class:`Pipeline` runs the steps on a project — harmonise → weight → compare → report —
each by calling the library module that owns it (``Project.harmonise_all``,
``diaspora_survey.weighting``, ``diaspora_survey.compare``, :mod:`diaspora_survey.report`).
A step whose module is not installed is reported as *unavailable* (and named in the
report); a step that fails raises its :class:`~diaspora_survey.errors.DiasporaSurveyError`
and stops the pipeline before any report file is written.
"""
from __future__ import annotations

import importlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ReportError

STEPS = ("harmonise", "weight", "compare", "report")


class StepUnavailable(Exception):
    """A step's library module is not present in this installation."""


@dataclass
class StepResult:
    name: str
    status: str                 # "done" | "unavailable"
    message: str = ""
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)


def _require(module: str, *attrs: str):
    """Import ``module`` (and check ``attrs``) or raise :class:`StepUnavailable`."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as ex:
        if ex.name and (ex.name == module or module.startswith(ex.name + ".")
                        or ex.name.startswith("diaspora_survey")):
            raise StepUnavailable(f"{module} is not available yet") from ex
        raise
    for a in attrs:
        if not hasattr(mod, a):
            raise StepUnavailable(f"{module}.{a} is not available yet")
    return mod


def data_date(project, data=None) -> str:
    """The report's date: SOURCE_DATE_EPOCH if set, else the latest wave id that is a date
    (``YYYY-MM`` or ``YYYY-MM-DD``), else the latest interview date in the data.

    Never the wall clock: the same inputs must give the same report.
    """
    import datetime as dt

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).date().isoformat()
    ids = [w for w in project.wave_ids if re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", w)]
    if ids:
        return max(ids)
    if data is not None:
        for c in ("interview_date", "date"):
            if c in data.columns:
                import pandas as pd

                d = pd.to_datetime(data[c], errors="coerce").max()
                if pd.notna(d):
                    return d.date().isoformat()
    return "undated"


class Pipeline:
    """Runs a project's steps; results accumulate on the instance."""

    def __init__(self, root: str | os.PathLike = ".", *, command: str = ""):
        from ..project import Project

        self.project = Project.load(root)
        self.command = command
        self.harmonised = None        # ProjectHarmonised
        self.data = None              # respondent frame (harmonised, then weighted)
        self.weighting: dict = {}
        self.weighting_info: dict = {}
        self.comparison: dict = {}
        self.results: list[StepResult] = []

    # ---- steps ------------------------------------------------------------------------
    def run_step(self, name: str, fn: Callable[[], Any]) -> StepResult:
        t0 = time.perf_counter()
        try:
            outputs = fn() or []
            res = StepResult(name, "done", outputs=list(outputs))
        except StepUnavailable as ex:
            res = StepResult(name, "unavailable", message=str(ex))
        except ImportError as ex:     # a library module this step needs is not there yet
            if not (ex.name or "").startswith("diaspora_survey"):
                raise
            res = StepResult(name, "unavailable", message=f"{ex.name}: {ex}")
        res.seconds = time.perf_counter() - t0
        self.results.append(res)
        return res

    @property
    def missing_steps(self) -> list[str]:
        return [f"{r.name} ({r.message})" for r in self.results if r.status == "unavailable"]

    def harmonise(self, *, write: bool = True) -> list[Path]:
        h = self.project.harmonise_all()
        self.harmonised = h
        self.data = h.data
        if not write:
            return []
        # the same files as `diaspora-survey harmonise`, written with its (atomic) writer
        writer = getattr(_require("diaspora_survey.commands.harmonise"), "write_parquet", None)
        if writer is None:
            return []
        out = self.project.path(self.project.harmonise_config.output)
        excl_path = out.with_name("exclusions.parquet")
        writer(h.data, out)
        excl = h.exclusions.copy()
        excl["wave"] = excl["wave"].astype("string")
        writer(excl, excl_path)
        return [out, excl_path]

    def weight(self, *, write: bool = True) -> list[Path]:
        if self.data is None:
            raise StepUnavailable("needs the harmonised data")
        mod = _require("diaspora_survey.weighting")
        fn = getattr(mod, "weight_project", None)
        if fn is None:
            raise StepUnavailable("diaspora_survey.weighting.weight_project is not available yet")
        try:
            res = fn(self.project, self.data)
        except NotImplementedError as ex:
            raise StepUnavailable("diaspora_survey.weighting.weight_project is not "
                                  "implemented yet") from ex
        self.data = res.data
        self.weighting = dict(getattr(res, "diagnostics", {}) or {})
        self.weighting_info = {"method": getattr(res, "method", ""),
                               "targets": list(getattr(res, "targets", []) or [])}
        if not write:
            return []
        try:
            cmd = importlib.import_module("diaspora_survey.commands.weight")
        except ModuleNotFoundError:
            cmd = None
        writer = getattr(cmd, "write_outputs", None) if cmd else None
        if writer is not None:
            return list(writer(self.project, res) or [])
        # the file `diaspora-survey weight` writes, with the harmonise step's atomic writer
        write_parquet = getattr(_require("diaspora_survey.commands.harmonise"),
                                "write_parquet", None)
        if write_parquet is None:
            return []
        out = self.project.path(self.project.harmonise_config.output).with_name(
            "weighted.parquet")
        write_parquet(self.data, out)
        return [out]

    def compare(self) -> list[Path]:
        if self.data is None:
            raise StepUnavailable("needs the harmonised data")
        from .collect import compare_project

        self.comparison = compare_project(self.project, self.data)
        return []

    def report_inputs(self):
        from .collect import report_inputs

        return report_inputs(self)

    def formats(self, formats: list[str] | None = None) -> list[str]:
        """The formats asked for (or the project's [report] formats), validated."""
        from . import FORMATS

        fmts = list(formats or self.project.report.formats or ["pdf"])
        bad = [f for f in fmts if f not in FORMATS]
        if bad:
            raise ReportError(f"unknown report format {bad[0]!r}", code="report.format",
                              where=None if formats else str(self.project.file),
                              hint=f"use one of: {', '.join(FORMATS)}")
        return fmts

    def report(self, formats: list[str] | None = None, output: str | None = None) -> list[Path]:
        if self.data is None:
            raise StepUnavailable("needs the harmonised data")
        from . import write_reports
        from .content import build_report

        fmts = self.formats(formats)
        report = build_report(self.report_inputs())
        base = Path(output) if output else self.project.path(self.project.report.output)
        targets = {fmt: (base if (len(fmts) == 1 and output) else base.with_suffix(f".{fmt}"))
                   for fmt in fmts}
        return write_reports(report, targets)
