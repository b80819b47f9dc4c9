"""Other output formats: xlsx, csv, markdown and LaTeX, plus the charts as PNG and SVG.

Every renderer takes a :class:`~.document.DisclosedReport` (disclosure control already
applied in one place) and returns ``{relative path: bytes}``; nothing is written here.
:func:`diaspora_survey.report.write_report` renders everything in memory first and then
writes each file atomically, so a failure leaves no partial report.

Layout beside the main output ``<stem>.<ext>``: charts in ``<stem>_charts/<id>.png|svg``;
csv writes a folder ``<stem>_csv/`` with one CSV per table and ``tables.csv`` (index
with titles and notes).
"""
from __future__ import annotations

import csv
import io
import zipfile

from ..errors import ReportError
from .document import SYNTHETIC_BANNER, DisclosedChart, DisclosedReport, Text
from .disclosure import markdown_text, spreadsheet_text, strip_control
from .tables import DisclosedTable, export_rows

FORMATS = ("pdf", "xlsx", "csv", "md", "tex")
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def chart_files(report: DisclosedReport, folder: str) -> dict[str, bytes]:
    """Every chart as ``<folder>/<id>.png`` and ``.svg``."""
    from . import charts

    out: dict[str, bytes] = {}
    for c in report.charts():
        fig = charts.draw(c)
        out[f"{folder}/{c.id}.png"] = charts.figure_bytes(fig, "png")
        out[f"{folder}/{c.id}.svg"] = charts.figure_bytes(fig, "svg")
    return out


def _sheet_name(table_id: str, used: set[str]) -> str:
    bad = set('[]:*?/\\')
    base = "".join("_" if ch in bad else ch for ch in table_id)[:31] or "table"
    name, i = base, 2
    while name.lower() in used:
        suffix = f"~{i}"
        name, i = base[: 31 - len(suffix)] + suffix, i + 1
    used.add(name.lower())
    return name


def _normalise_zip(data: bytes, stamp: str | None = None) -> bytes:
    """Re-pack a zip (xlsx) with fixed timestamps, for byte-identical output.

    openpyxl stamps ``dcterms:modified`` with the wall clock on save; it is replaced by
    ``stamp`` (the report's data date) so the workbook depends only on its content.
    """
    import re

    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                              rb"\g<1>" + (stamp or "2000-01-01T00:00:00Z").encode() + rb"\g<2>",
                              body)
            dst.writestr(zi, body)
    return buf.getvalue()


def _append(ws, row) -> None:
    """A worksheet row with control characters removed (openpyxl refuses them; terminals
    and spreadsheets should never see escape sequences)."""
    ws.append([strip_control(v) if isinstance(v, str) else v for v in row])


def render_xlsx(report: DisclosedReport) -> bytes:
    """One sheet per table (title, header, rows, then notes and sources) and an index sheet."""
    import datetime as dt

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook()
    from .summary import xlsx_summary_sheet

    first = wb.active
    if xlsx_summary_sheet(first, report):       # the answers first: sheet 1 "Summary"
        index = wb.create_sheet("Contents")
    else:
        index = first
        index.title = "Contents"
    bold = Font(bold=True)
    _append(index, [report.title])
    index["A1"].font = Font(bold=True, size=14)
    if report.synthetic:
        _append(index, [SYNTHETIC_BANNER])
        index["A2"].font = Font(bold=True, color="FFFFFF")
        index["A2"].fill = PatternFill("solid", fgColor="B00020")
    _append(index, [f"Data as of {report.date}"])
    for k, v in report.facts:
        _append(index, [k, v])
    _append(index, [])
    _append(index, ["Sheet", "Table"])
    for cell in index[index.max_row]:
        cell.font = bold
    used = {"contents", "summary"}
    for t in report.tables():
        name = _sheet_name(t.id, used)
        _append(index, [name, t.title])
        ws = wb.create_sheet(name)
        _append(ws, [t.title])
        ws["A1"].font = Font(bold=True, size=12)
        if report.synthetic:
            _append(ws, [SYNTHETIC_BANNER])
            ws.cell(ws.max_row, 1).font = Font(bold=True, color="B00020")
        header, rows = export_rows(t)
        _append(ws, header)
        hrow = ws.max_row
        for cell in ws[hrow]:
            cell.font = bold
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for r in rows:
            _append(ws, r)
        for r in ws.iter_rows(min_row=hrow + 1, max_row=ws.max_row):
            for cell in r:
                if cell.value == "—":
                    cell.alignment = Alignment(horizontal="right")
        _append(ws, [])
        for note in t.notes:
            _append(ws, [note])
        for j in range(1, len(header) + 1):
            letter = ws.cell(hrow, j).column_letter
            width = max([len(str(header[j - 1]))] + [len(str(r[j - 1])) for r in rows[:200]])
            ws.column_dimensions[letter].width = min(max(8, width + 2), 50)
        ws.freeze_panes = ws.cell(hrow + 1, 1)
    try:
        stamp = dt.datetime.fromisoformat(report.date[:10])
    except ValueError:
        stamp = dt.datetime(2000, 1, 1)
    wb.properties.created = stamp
    wb.properties.modified = stamp
    for sheet in wb.worksheets:       # text is text: never a formula (OWASP)
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    cell.value = strip_control(cell.value)
                    cell.data_type = "s"
    wb.properties.creator = "diaspora-survey"
    wb.properties.title = strip_control(report.title)
    buf = io.BytesIO()
    wb.save(buf)
    return _normalise_zip(buf.getvalue(), stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _csv_bytes(header: list[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([spreadsheet_text(strip_control(h)) for h in header])
    for r in rows:   # text cells that a spreadsheet would run as formulas get a ' (OWASP)
        w.writerow(["" if v is None else spreadsheet_text(strip_control(v))
                    if isinstance(v, str) else v for v in r])
    return buf.getvalue().encode("utf-8")


def render_csv(report: DisclosedReport, folder: str) -> dict[str, bytes]:
    """``<folder>/<table id>.csv`` per table plus ``<folder>/tables.csv`` (titles, notes)."""
    out: dict[str, bytes] = {}
    index_rows = []
    for t in report.tables():
        header, rows = export_rows(t)
        out[f"{folder}/{t.id}.csv"] = _csv_bytes(header, rows)
        index_rows.append([f"{t.id}.csv", t.title, " | ".join(t.notes)])
    head = [["report", report.title], ["date", report.date],
            ["synthetic", "yes — " + SYNTHETIC_BANNER if report.synthetic else "no"]]
    body = _csv_bytes(["file", "title", "notes"], index_rows).decode("utf-8")
    pre = _csv_bytes(["key", "value"], head).decode("utf-8")
    out[f"{folder}/tables.csv"] = body.encode("utf-8")
    out[f"{folder}/about.csv"] = pre.encode("utf-8")
    return out


# ---- markdown ------------------------------------------------------------------------

def _md_cell(s: str) -> str:
    """Text for markdown: markup escaped, so no link, image, HTML or table break gets in."""
    return markdown_text(s)


def _md_heading(s: str) -> str:
    """A heading's text: escaped as any cell, but a leading "1." starts no list after "## "."""
    import re

    return re.sub(r"^(\d+)\\\.", r"\1.", _md_cell(s))


def _md_table(t: DisclosedTable) -> str:
    lines = [f"### {_md_cell(t.title)}", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in t.header) + " |")
    lines.append("|" + "|".join("---:" if num else ":---" for num in t.numeric_columns) + "|")
    for r in t.cells:
        lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
    lines.append("")
    for n in t.notes:
        lines.append(f"- {_md_cell(n)}")
    lines.append("")
    return "\n".join(lines)


def render_markdown(report: DisclosedReport, charts_folder: str) -> bytes:
    parts = [f"# {_md_cell(report.title)}", ""]
    if report.subtitle:
        parts += [f"*{_md_cell(report.subtitle)}*", ""]
    if report.synthetic:
        parts += [f"> **{SYNTHETIC_BANNER}**", ""]
    parts += [f"Data as of {_md_cell(report.date)}.", ""]
    for k, v in report.facts:
        parts.append(f"- **{_md_cell(k)}:** {_md_cell(v)}")
    parts.append("")
    for sec in report.sections:
        parts += [f"## {_md_heading(sec.title)}", ""]
        for b in sec.blocks:
            if isinstance(b, Text):
                parts += [("> " if b.style == "warning" else "") + _md_cell(b.text), ""]
            elif isinstance(b, DisclosedTable):
                parts.append(_md_table(b))
            elif isinstance(b, DisclosedChart):
                parts += [f"### {_md_cell(b.title)}", "",
                          f"![{_md_cell(b.title)}]({charts_folder}/{b.id}.png)", ""]
                if b.caption:
                    parts += [_md_cell(b.caption), ""]
                parts += [f"- {_md_cell(n)}" for n in b.table.notes] + [""]
    return ("\n".join(parts).rstrip() + "\n").encode("utf-8")


# ---- LaTeX ---------------------------------------------------------------------------

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "†": r"\textdagger{}", "<": r"\textless{}", ">": r"\textgreater{}",
}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in s)


def _tex_text(s: str) -> str:
    """Escaped text that may break after a slash (paths, URLs) when a line is full."""
    return tex_escape(s).replace("/", r"/\allowbreak{}")


def _longest_token(texts) -> int:
    import re

    return max((len(w) for x in texts for w in re.split(r"[\s/]+", x)), default=1)


# characters of DejaVu Sans per A4 line with 2 cm margins, by font size; \tabcolsep = 4pt
_TEX_SIZES = ((r"\footnotesize", 100), (r"\scriptsize", 114), (r"\tiny", 142))
_TEX_COL_PAD = 2        # \tabcolsep on both sides, in characters


def _tex_layout(t: DisclosedTable) -> tuple[str, str, list[str]]:
    """(font size, column spec, header cells) so that the table fits the line: numeric
    columns right-aligned, their headers stacked word by word when wider than the numbers;
    text columns left-aligned, or ragged-right paragraph columns narrowed in proportion
    (never below their longest word) when the table is too wide; a smaller font when even
    that does not fit."""
    ncol = len(t.header)
    cell_w = [max([len(r[i]) for r in t.cells] or [1]) for i in range(ncol)]
    head, nat, least = [], [], []
    for i, (h, num) in enumerate(zip(t.header, t.numeric_columns)):
        words = h.split() or [""]
        stack = num and len(words) > 1 and len(h) > cell_w[i]
        head.append(r"\shortstack[r]{" + r"\\".join(r"\textbf{" + tex_escape(w) + "}" for w in words) + "}"
                    if stack else r"\textbf{" + tex_escape(h) + "}")
        nat.append(max(cell_w[i], max(map(len, words)) if stack else len(h)))
        least.append(nat[-1] if num else _longest_token([r[i] for r in t.cells] + [h]) + 1)
    pad = _TEX_COL_PAD * ncol
    for size, line in _TEX_SIZES:
        if sum(nat) + pad <= line:
            return size, "".join("r" if num else "l" for num in t.numeric_columns), head
        if sum(least) + pad <= line:
            break
    # share the room left by the numeric columns among the text columns in proportion to
    # their natural width; a column held at its longest word gives up its share (water-filling)
    room = line - pad - sum(n for n, num in zip(nat, t.numeric_columns) if num)
    width = {i: float(n) for i, (n, num) in enumerate(zip(nat, t.numeric_columns)) if not num}
    held: set[int] = set()
    while True:
        free = [i for i in width if i not in held]
        left = room - sum(least[i] for i in held)
        scale = min(1.0, max(left, 0) / max(sum(nat[i] for i in free), 1))
        newly = {i for i in free if nat[i] * scale < least[i]}
        if not newly:
            break
        held |= newly
    for i in width:
        width[i] = least[i] if i in held else nat[i] * scale
    spec = "".join("r" if num else
                   r">{\raggedright\arraybackslash}p{" + f"{width[i] / line:.3f}" + r"\linewidth}"
                   for i, num in enumerate(t.numeric_columns))
    return size, spec, head


def _tex_table(t: DisclosedTable) -> str:
    size, spec, cells = _tex_layout(t)
    head = " & ".join(cells) + r" \\"
    lines = [r"\subsection*{" + tex_escape(t.title) + "}", "{" + size + r"\setlength{\tabcolsep}{4pt}",
             r"\begin{longtable}{@{}" + spec + "@{}}", r"\toprule", head, r"\midrule", r"\endfirsthead",
             r"\toprule", head, r"\midrule", r"\endhead", r"\bottomrule", r"\endlastfoot"]
    for r in t.cells:
        lines.append(" & ".join(_tex_text(c) for c in r) + r" \\")
    lines.append(r"\end{longtable}}")
    for n in t.notes:
        lines.append(r"{\scriptsize " + _tex_text(n) + r"\par}")
    lines.append("")
    return "\n".join(lines)


def render_tex(report: DisclosedReport, charts_folder: str) -> bytes:
    """A complete LaTeX document (compile with lualatex or xelatex: Cyrillic via fontspec)."""
    out = [
        "% Generated by diaspora-survey. Compile with lualatex or xelatex (Unicode, Cyrillic).",
        r"\documentclass[a4paper,10pt]{article}",
        r"\usepackage{fontspec}",
        r"\setmainfont{DejaVu Sans}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{array,booktabs,longtable,graphicx}",
        r"\title{" + tex_escape(report.title) + "}",
        r"\date{" + tex_escape(report.date) + "}",
        r"\author{}",
        r"\begin{document}",
        r"\maketitle",
    ]
    if report.synthetic:
        out.append(r"\begin{center}\fbox{\textbf{" + tex_escape(SYNTHETIC_BANNER)
                   + r"}}\end{center}")
    if report.facts:
        out.append(r"\begin{itemize}")
        out += [r"\item \textbf{" + tex_escape(k) + ":} " + tex_escape(v) for k, v in report.facts]
        out.append(r"\end{itemize}")
    for sec in report.sections:
        out.append(r"\section*{" + tex_escape(sec.title) + "}")
        for b in sec.blocks:
            if isinstance(b, Text):
                out += [tex_escape(b.text), ""]
            elif isinstance(b, DisclosedTable):
                out.append(_tex_table(b))
            elif isinstance(b, DisclosedChart):
                out += [r"\subsection*{" + tex_escape(b.title) + "}",
                        r"\begin{center}\includegraphics[width=\linewidth]{"
                        + f"{charts_folder}/{b.id}.png" + r"}\end{center}"]
                if b.caption:
                    out.append(r"{\small " + tex_escape(b.caption) + r"\par}")
                out += [r"{\scriptsize " + tex_escape(n) + r"\par}" for n in b.table.notes]
                out.append("")
    out.append(r"\end{document}")
    return ("\n".join(out) + "\n").encode("utf-8")


def render(report: DisclosedReport, fmt: str, stem: str) -> dict[str, bytes]:
    """Render ``report`` as ``fmt``; returns ``{path relative to the output folder: bytes}``.

    ``stem`` is the output file name without extension (e.g. ``diaspora-report``).
    """
    from .pdf import render_pdf

    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r}", code="report.format",
                          hint=f"use one of: {', '.join(FORMATS)}")
    charts_folder = f"{stem}_charts"
    if fmt == "pdf":
        return {f"{stem}.pdf": render_pdf(report)}
    out = chart_files(report, charts_folder)
    if fmt == "xlsx":
        out[f"{stem}.xlsx"] = render_xlsx(report)
    elif fmt == "csv":
        out.update(render_csv(report, f"{stem}_csv"))
    elif fmt == "md":
        out[f"{stem}.md"] = render_markdown(report, charts_folder)
    elif fmt == "tex":
        out[f"{stem}.tex"] = render_tex(report, charts_folder)
    return out
