"""The report as a format-neutral document: sections of paragraphs, tables and charts.

A :class:`Report` is built once from the pipeline's results (:mod:`.content`), passed
through :func:`disclose_report` (disclosure control on every table and on the data behind
every chart), and the resulting :class:`DisclosedReport` is what every renderer — PDF,
xlsx, csv, markdown, LaTeX — receives. Renderers never see undisclosed numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import ReportError
from .tables import (DEFAULT_CV_MAX, DEFAULT_MIN_CELL_SIZE, DisclosedTable, ReportTable,
                     disclose)


@dataclass(frozen=True)
class Text:
    """A paragraph. ``style``: ``body``, ``note`` (small) or ``warning`` (highlighted)."""

    text: str
    style: str = "body"


@dataclass
class Chart:
    """A chart drawn from one table's (disclosed) data. ``kind`` selects the drawing
    function in :mod:`.charts`; ``options`` are passed to it."""

    id: str
    title: str
    kind: str
    table: ReportTable
    caption: str = ""
    options: dict = field(default_factory=dict)


@dataclass
class DisclosedChart:
    id: str
    title: str
    kind: str
    table: DisclosedTable
    caption: str
    options: dict


Block = Union[Text, ReportTable, Chart]


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    new_page: bool = True
    role: str = ""             # "summary": the opening pages (report/summary.py)


@dataclass
class Report:
    """Everything a report says. ``date`` is the date *of the data* (reproducible), not
    the wall clock. ``facts`` are (label, value) pairs for the title page."""

    title: str
    date: str
    synthetic: bool = False
    subtitle: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    min_cell_size: int = DEFAULT_MIN_CELL_SIZE
    cv_max: float = DEFAULT_CV_MAX
    author: str = "diaspora-survey"


@dataclass
class DisclosedReport:
    title: str
    date: str
    synthetic: bool
    subtitle: str
    facts: list[tuple[str, str]]
    sections: list[Section]        # blocks are Text, DisclosedTable or DisclosedChart
    min_cell_size: int
    cv_max: float
    author: str
    #: the attack on the published cells after suppression (:class:`.disclosure.AuditResult`)
    audit: object = None

    def tables(self) -> list[DisclosedTable]:
        """Every table in document order (chart data excluded), ids unique."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, DisclosedTable)]

    def charts(self) -> list[DisclosedChart]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, DisclosedChart)]


SYNTHETIC_BANNER = "SYNTHETIC DATA — for demonstration only; not a real survey"


def disclose_report(report: Report) -> DisclosedReport:
    """Apply disclosure control to every table and every chart's data (one place, once).

    Secondary suppression is decided for the whole report at once (:func:`.disclosure.protect`):
    a cell hidden in one table must not be recoverable from any other table or chart.
    """
    from .disclosure import protect

    every = [b if isinstance(b, ReportTable) else b.table for sec in report.sections
             for b in sec.blocks if isinstance(b, (ReportTable, Chart))]
    forced, audit = protect(every, report.min_cell_size)
    seen: set[str] = set()
    sections = []
    for sec in report.sections:
        blocks = []
        for b in sec.blocks:
            if isinstance(b, ReportTable):
                if b.id in seen:
                    raise ReportError(f"duplicate table id {b.id!r}", code="report.duplicate_id")
                seen.add(b.id)
                blocks.append(disclose(b, min_cell_size=report.min_cell_size,
                                       cv_max=report.cv_max, secondary=forced.get(b.id)))
            elif isinstance(b, Chart):
                if b.id in seen:
                    raise ReportError(f"duplicate chart id {b.id!r}", code="report.duplicate_id")
                seen.add(b.id)
                blocks.append(DisclosedChart(
                    id=b.id, title=b.title, kind=b.kind, caption=b.caption, options=b.options,
                    table=disclose(b.table, min_cell_size=report.min_cell_size,
                                   cv_max=report.cv_max, secondary=forced.get(b.table.id))))
            elif isinstance(b, Text):
                blocks.append(b)
            else:
                raise ReportError(f"unknown report block {type(b).__name__}",
                                  code="report.block")
        sections.append(Section(title=sec.title, blocks=blocks, new_page=sec.new_page,
                                role=sec.role))
    return DisclosedReport(title=report.title, date=report.date, synthetic=report.synthetic,
                           subtitle=report.subtitle, facts=list(report.facts),
                           sections=sections, min_cell_size=report.min_cell_size,
                           cv_max=report.cv_max, author=report.author, audit=audit)
