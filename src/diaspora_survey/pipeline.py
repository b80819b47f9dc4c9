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

STEPS = ("harmonise", "weight", "panel", "compare", "report")
PANEL_OUTPUT = "build/panel.parquet"
WEIGHTED_OUTPUT = "build/weighted.parquet"


@dataclass
class StepResult:
    name: str
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)


# ---- atomic writers of the steps' outputs ------------------------------------------------------

def write_parquet(df, path: Path, *more) -> None:
    """Write ``df`` to ``path`` as parquet; further ``(df, path)`` pairs in ``more`` too, all
    published as one unit (:func:`~diaspora_survey._files.publish`: temporary files, a
    journal, then the renames; never over an input of the project or into raw/)."""
    from ._files import publish

    pairs = [(df, Path(path))] + [(d, Path(p)) for d, p in more]
    check_parquet_name(pairs[0][1])
    publish({p: _parquet_writer(d) for d, p in pairs}, code="harmonise.cannot_write")


def check_parquet_name(path: Path, code: str = "harmonise.cannot_write") -> None:
    """A parquet output must be named ``*.parquet`` (never parquet bytes in ``x.csv``)."""
    from .errors import OutputError

    from ._files import guard_output

    guard_output(path, code=code)      # an input or raw/ first: that is the graver mistake
    if Path(path).suffix.lower() != ".parquet":
        raise OutputError(f"this output is written as parquet, but its name ends in "
                          f"{Path(path).suffix or '(no extension)'!r}", code=code, where=str(path),
                          hint="name it *.parquet (e.g. build/harmonised.parquet)")


def _parquet_writer(df):
    return lambda tmp: df.to_parquet(tmp, index=False)


def write_outputs(project, res, output: str | Path | None = None) -> list[Path]:
    """Write the weighted data (atomically, see :func:`write_parquet`); returns the paths written."""
    from ._files import publish

    out = Path(output) if output is not None else Path(project.root) / WEIGHTED_OUTPUT
    check_parquet_name(out, code="output.cannot_write")
    return publish({out: _parquet_writer(res.data)})


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
        self.panel_analysis = None    # survey.longitudinal.PanelAnalysis when [panel] is declared
        self._panel_done = False
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
        self.project.require_waves()
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

    def panel(self, *, write: bool = True) -> list[Path]:
        """Link the panel of ``[panel]`` (if any) with the weight step's baseline weights and run
        the panel analysis; writes build/panel.parquet (one row per baseline respondent)."""
        self._panel_done = True
        if self.project.panel_config is None:
            return []
        self._need_data("panel")
        weights = self.data if self.weighted is not None else None
        self.panel_analysis = self.project.panel_analysis(weights=weights)
        if not write:
            return []
        frame = self.panel_analysis.pairs.copy()
        for c in frame.columns:
            if frame[c].dtype == object:
                frame[c] = frame[c].astype("string")
        out = self.project.path(PANEL_OUTPUT)
        write_parquet(frame, out)
        return [out]

    def compare(self) -> list[Path]:
        self._need_data("compare")
        from .report.collect import compare_project

        self.project.claims_file()      # a claims file named in the project file must exist
        if not self._panel_done:
            self.panel(write=False)
        self.comparison = compare_project(self.project, self.data, panel=self.panel_analysis)
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
        targets = self.report_targets(fmts, output)
        try:
            report = build_report(self.report_inputs())
            return write_reports(report, targets)
        except DiasporaSurveyError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug or resource limit: one message, no file
            raise ReportError(f"the report step failed: {type(e).__name__}: {e}",
                              code="report.failed", where=str(next(iter(targets.values()))),
                              hint="the previous report (if any) is unchanged; run with "
                                   "DIASPORA_SURVEY_NO_FORK=1 python -X faulthandler -m "
                                   "diaspora_survey.cli ... for the traceback, and report it") from e

    def report_targets(self, formats: list[str], output: str | None = None) -> dict[str, Path]:
        """``{format: main output file}``, each checked by
        :func:`~diaspora_survey._files.guard_output` (so a refused output fails before any work)."""
        from ._files import guard_output

        base = Path(output) if output else self.project.path(self.project.report.output)
        if not output and (base.is_dir() or not base.suffix):
            raise ReportError(f"[report] output {self.project.report.output!r} names a folder, not a file",
                              code="report.output", where=str(self.project.file),
                              hint="give a file name, e.g. output = \"reports/diaspora-report.pdf\" "
                                   "(each format gets its extension)")
        targets = {fmt: (base if (len(formats) == 1 and output) else base.with_suffix(f".{fmt}"))
                   for fmt in formats}
        for t in targets.values():
            guard_output(t)
        return targets
