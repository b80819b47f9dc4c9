"""Reports: PDF (reportlab), xlsx, csv, markdown and LaTeX, with disclosure control.

The flow is one-way::

    pipeline results ──content.build_report──▶ Report (sections of text, tables, charts)
                      ──disclose_report──────▶ DisclosedReport  (small cells suppressed, once)
                      ──formats.render───────▶ {file: bytes}    (pdf / xlsx / csv / md / tex)
                      ──write_report─────────▶ files, each written atomically

Disclosure control lives in :mod:`.tables` only; renderers receive disclosed tables.
Heavy libraries (pandas, matplotlib, seaborn, reportlab, openpyxl) are imported lazily.
"""
from __future__ import annotations

import os
from pathlib import Path

from .document import (SYNTHETIC_BANNER, Chart, DisclosedChart, DisclosedReport, Report,
                       Section, Text, disclose_report)
from .formats import FORMATS
from .tables import (DEFAULT_CV_MAX, DEFAULT_MIN_CELL_SIZE, SUPPRESSED, Column,
                     DisclosedTable, ReportTable, disclose, flag_cells)

__all__ = [
    "Chart", "Column", "DisclosedChart", "DisclosedReport", "DisclosedTable", "FORMATS",
    "Report", "ReportTable", "Section", "SUPPRESSED", "SYNTHETIC_BANNER", "Text",
    "DEFAULT_CV_MAX", "DEFAULT_MIN_CELL_SIZE", "disclose", "disclose_report", "flag_cells",
    "render_files", "write_report", "write_reports",
]


def render_files(report: Report | DisclosedReport, fmt: str, stem: str) -> dict[str, bytes]:
    """Disclose (if needed) and render ``report``; returns ``{relative path: bytes}``."""
    from .formats import render

    disclosed = report if isinstance(report, DisclosedReport) else disclose_report(report)
    return render(disclosed, fmt, stem)


def write_report(report: Report | DisclosedReport, fmt: str,
                 output: str | os.PathLike) -> list[Path]:
    """Render ``report`` as ``fmt`` at ``output``; see :func:`write_reports`."""
    return write_reports(report, {fmt: output})


def write_reports(report: Report | DisclosedReport,
                  targets: dict[str, str | os.PathLike]) -> list[Path]:
    """Render ``report`` in each format ``{fmt: output path}`` (charts beside each output).

    Everything is rendered in memory first; then all files are published as one unit
    (:func:`~diaspora_survey._files.publish`: temporary files, a journal, the renames), so a
    failing render, a full disk or a kill never leaves a partial or mixed report, and no
    output may replace an input of the project. Returns the written paths, the main output first.
    """
    from .._files import publish

    disclosed = report if isinstance(report, DisclosedReport) else disclose_report(report)
    rendered: list[tuple[Path, bytes]] = []
    for fmt, output in targets.items():
        out = Path(output)
        files = render_files(disclosed, fmt, out.stem)
        main = f"{out.stem}.{fmt}"
        # the main file keeps the name asked for (e.g. -o report.markdown)
        rendered += [(out if rel == main else out.parent / rel, files[rel])
                     for rel in sorted(files, key=lambda r: (r != main, r))]
    return publish(dict(rendered), code="report.cannot_write")   # all files as one unit
