"""PDF rendering with reportlab (platypus): title page, sections, tables, charts.

* Cyrillic: DejaVu Sans is embedded (the TTF shipped with matplotlib, registered from
  there at run time).
* Long tables break across pages with the header row repeated (``LongTable`` with
  ``repeatRows=1``) and the current group's labels printed again on the new page;
  numbers are right-aligned and formatted by :mod:`.tables`; hashes are monospaced.
* Reproducible: the document is written with reportlab's ``invariant`` mode (fixed
  creation date and document id) and charts are PNGs without metadata, so the same
  report gives a byte-identical PDF.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import re
from pathlib import Path

from ..errors import ReportError
from .document import SYNTHETIC_BANNER, DisclosedChart, DisclosedReport, Text
from .tables import DisclosedTable

FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
FONT_ITALIC = "DejaVuSans-Oblique"
FONT_MONO = "DejaVuSansMono"
MONO_SIZE = 6.5

_registered = False


def font_dir() -> Path:
    """matplotlib's bundled TTF folder, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ReportError("matplotlib is not installed; its DejaVu fonts are needed for the PDF",
                          code="report.font", hint="pip install matplotlib")
    return Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf"


def register_fonts() -> None:
    """Register DejaVu Sans (regular, bold, oblique) with reportlab, once."""
    global _registered
    if _registered:
        return
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    d = font_dir()
    files = {FONT: "DejaVuSans.ttf", FONT_BOLD: "DejaVuSans-Bold.ttf",
             FONT_ITALIC: "DejaVuSans-Oblique.ttf", FONT_MONO: "DejaVuSansMono.ttf"}
    for name, fname in files.items():
        path = d / fname
        if not path.exists():
            raise ReportError(f"font file not found: {path}", code="report.font",
                              hint="reinstall matplotlib (it ships DejaVu Sans)")
        pdfmetrics.registerFont(TTFont(name, str(path)))
    addMapping(FONT, 0, 0, FONT)
    addMapping(FONT, 1, 0, FONT_BOLD)
    addMapping(FONT, 0, 1, FONT_ITALIC)
    addMapping(FONT, 1, 1, FONT_BOLD)
    _registered = True


def _styles():
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5, spaceAfter=5)
    return {
        "body": base,
        "note": ParagraphStyle("note", parent=base, fontSize=7.5, leading=9.5, spaceAfter=2,
                               textColor=colors.HexColor("#333333")),
        "warning": ParagraphStyle("warning", parent=base, backColor=colors.HexColor("#fff3cd"),
                                  borderPadding=4, spaceBefore=4, spaceAfter=8),
        "h1": ParagraphStyle("h1", parent=base, fontName=FONT_BOLD, fontSize=15, leading=19,
                             spaceBefore=2, spaceAfter=8, keepWithNext=1),
        # no keepWithNext: with a long table it would push heading and table to a new
        # page; a CondPageBreak before the heading keeps it with the first rows instead
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=10.5, leading=13,
                             spaceBefore=10, spaceAfter=4),
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=22,
                                leading=27, alignment=TA_CENTER, spaceAfter=10),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=12, leading=15,
                                   alignment=TA_CENTER, spaceAfter=14),
        "banner": ParagraphStyle("banner", parent=base, fontName=FONT_BOLD, fontSize=14,
                                 leading=18, alignment=TA_CENTER, textColor=colors.white),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9, spaceAfter=0),
        "mono": ParagraphStyle("mono", parent=base, fontName=FONT_MONO, fontSize=MONO_SIZE,
                               leading=9, spaceAfter=0),
        "head": ParagraphStyle("head", parent=base, fontName=FONT_BOLD, fontSize=7.5,
                               leading=9, spaceAfter=0),
        "headr": ParagraphStyle("headr", parent=base, fontName=FONT_BOLD, fontSize=7.5,
                                leading=9, spaceAfter=0, alignment=2),
        "title_compact": ParagraphStyle("title_compact", parent=base, fontName=FONT_BOLD,
                                        fontSize=17, leading=21, alignment=TA_CENTER,
                                        spaceAfter=4),
        "toc_title": ParagraphStyle("toc_title", parent=base, fontName=FONT_BOLD, fontSize=15,
                                    leading=19, spaceAfter=8),
        "caption": ParagraphStyle("caption", parent=base, fontSize=8, leading=10,
                                  spaceBefore=2, spaceAfter=2,
                                  textColor=colors.HexColor("#333333")),
    }


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_BREAK_AFTER = re.compile(r"(?<=[/_\\])(?=[^/_\\])")


def _breakable(text: str, width: float, font: str = FONT, size: float = 7.5) -> str:
    """Escaped Paragraph markup of a cell ``width`` points wide in which a word too long
    for the column (a path, an identifier) is broken after "/", "\\" or "_" — never inside
    a file name's suffix ("ESS5RU.sav", not "ESS5RU.sa / v"). reportlab breaks lines only
    at spaces (and splits over-long words anywhere), so the breaks are placed here."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    out = []
    for word in text.split(" "):
        if stringWidth(word, font, size) <= width:
            out.append(_esc(word))
            continue
        lines, cur = [], ""
        for seg in _BREAK_AFTER.split(word):
            if cur and stringWidth(cur + seg, font, size) > width:
                lines.append(cur)
                cur = seg
            else:
                cur += seg
        lines.append(cur)
        out.append("<br/>".join(_esc(x) for x in lines))
    return " ".join(out)


def _segments(text: str) -> list[str]:
    """The pieces a cell may break into: words, and paths split after / \\ _."""
    return [seg for w in text.split() for seg in _BREAK_AFTER.split(w)]


def _col_widths(t: DisclosedTable, avail: float, font_size: float) -> list[float]:
    """Natural widths (widest cell, header words) shrunk to fit ``avail`` points.

    Numeric columns keep their natural width (numbers must not wrap); text columns share
    what is left, in proportion to their natural width, but at least the widest word.
    """
    from reportlab.pdfbase.pdfmetrics import stringWidth

    pad = 8.0
    ncol = len(t.header)
    natural, minimum = [], []
    for j in range(ncol):
        col = [row[j] for row in t.cells]
        if t.spec.columns[j].mono:          # never wrapped: a hash must stay one line
            w = max([stringWidth(c, FONT_MONO, MONO_SIZE) for c in col]
                    + [stringWidth(t.header[j], FONT_BOLD, font_size)]) + pad
            natural.append(w)
            minimum.append(w)
            continue
        cell_w = max((stringWidth(c, FONT, font_size) for c in col), default=0.0)
        head_words = max((stringWidth(w, FONT_BOLD, font_size) for w in t.header[j].split()),
                         default=0.0)
        head_w = stringWidth(t.header[j], FONT_BOLD, font_size)
        if t.numeric_columns[j]:
            w = max(cell_w, head_words) + pad
            natural.append(max(w, min(head_w + pad, 1.6 * w)))
            minimum.append(w)
        else:
            words = max((stringWidth(w, FONT, font_size) for c in col for w in _segments(c)),
                        default=0.0)
            natural.append(max(cell_w, head_w) + pad)
            minimum.append(max(words, head_words) + pad)
    total = sum(natural)
    if total <= avail:
        return natural
    widths = list(minimum)
    spare = avail - sum(minimum)
    if spare < 0:
        # hashes keep their width (never wrapped); the other columns share what is left
        mono = [bool(t.spec.columns[j].mono) for j in range(ncol)]
        fixed = sum(w for w, m in zip(minimum, mono) if m)
        rest = sum(w for w, m in zip(minimum, mono) if not m) or 1.0
        scale = max(avail - fixed, 0.0) / rest
        return [w if m else w * scale for w, m in zip(minimum, mono)]
    grow = [n - m for n, m in zip(natural, minimum)]
    g = sum(grow)
    return [w + (spare * x / g if g else 0.0) for w, x in zip(widths, grow)]


@functools.lru_cache(maxsize=None)
def _grouped_table_class():
    """A ``LongTable`` that, when it breaks across pages, prints the group labels of the
    first row on the new page again (the header row is repeated by ``repeatRows``)."""
    from reportlab.platypus import LongTable

    class GroupedTable(LongTable):
        group_labels: list = []        # per data row: {column: flowable} of its groups

        def split(self, availWidth, availHeight):
            parts = super().split(availWidth, availHeight)
            labels = self.group_labels
            if len(parts) == 2 and labels:
                head = self.repeatRows if isinstance(self.repeatRows, int) else 0
                first, rest = parts
                k = len(first._cellvalues) - head        # data rows kept on this page
                if head and 0 <= k < len(labels):
                    for j, cell in labels[k].items():
                        rest._cellvalues[head][j] = cell
                    rest._argH = list(rest._argH)
                    rest._argH[head] = None              # the label may need more lines
                rest.group_labels = labels[k:]
            return parts

    return GroupedTable


MAX_CELL_CHARS = 600      # a table row cannot break across pages: longer cells are cut


def _fit_cell(text: str) -> str:
    """A cell's text, cut to :data:`MAX_CELL_CHARS` (e.g. a long list of categories) so
    that its row fits a page; the cut says so (the other formats keep the full text)."""
    if len(text) <= MAX_CELL_CHARS:
        return text
    return text[:MAX_CELL_CHARS].rsplit(" ", 1)[0] + f" … (cut: {len(text):,} characters; " \
        "full text in the xlsx/csv/md formats)"


def _table_flowables(t: DisclosedTable, st, avail: float):
    from reportlab.lib import colors
    from reportlab.platypus import CondPageBreak, Paragraph, Spacer, TableStyle

    fs = 7.5
    # the heading starts a new page unless it and the first rows fit on this one
    out = [CondPageBreak(min(90, 30 + 11 * (len(t.cells) + 1))),
           Paragraph(_esc(t.title), st["h2"])]
    widths = _col_widths(t, avail, fs)
    header = [Paragraph(_esc(h), st["headr"] if num else st["head"])
              for h, num in zip(t.header, t.numeric_columns)]
    rows = [header]
    # grouping columns (outermost first): a label is printed only where it (or an outer
    # one) changes
    groups = t.spec.group_col
    groups = [groups] if isinstance(groups, str) else list(groups or [])
    keys = [c.key for c in t.spec.columns]
    group_idx = [keys.index(g) for g in groups if g in keys]
    prev: list | None = None
    labels = []
    cells = [[_fit_cell(c) for c in r] for r in t.cells]
    for r in cells:
        labels.append({j: Paragraph(_esc(r[j]), st["cell"]) for j in group_idx})
        row = []
        changed = prev is None
        for j, c in enumerate(r):
            if j in group_idx:
                changed = changed or prev[group_idx.index(j)] != c
                shown = c if changed else ""
            else:
                shown = c
            if t.spec.columns[j].mono:
                row.append(Paragraph(_esc(shown), st["mono"]))
            else:
                row.append(shown if t.numeric_columns[j] else
                           Paragraph(_breakable(shown, widths[j] - 6.5), st["cell"]))
        prev = [r[j] for j in group_idx]
        rows.append(row)
    if len(rows) == 1:
        rows.append([Paragraph("(no rows)", st["cell"])] + [""] * (len(header) - 1))
    style = [
        ("FONT", (0, 0), (-1, -1), FONT, fs),
        ("LEADING", (0, 0), (-1, -1), 9),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    for j, num in enumerate(t.numeric_columns):
        if num:
            style.append(("ALIGN", (j, 1), (j, -1), "RIGHT"))
    for i in range(2, len(rows), 2):
        style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#f6f7f9")))
    table = _grouped_table_class()(rows, colWidths=widths, repeatRows=1,
                                   style=TableStyle(style), hAlign="LEFT")
    table.group_labels = labels if group_idx else []
    out.append(table)
    out.append(Spacer(1, 2))
    for note in t.notes:
        out.append(Paragraph(_esc(note), st["note"]))
    out.append(Spacer(1, 6))
    return out


def _chart_flowables(c: DisclosedChart, st, avail: float, max_height: float | None = None):
    from reportlab.platypus import Image, KeepTogether, Paragraph, Spacer

    from . import charts

    fig = charts.draw(c)
    w_in, h_in = charts.figure_size_in(fig)
    png = charts.figure_bytes(fig, "png")
    width = min(avail, w_in * 72)
    height = width * h_in / w_in
    if max_height is not None and height > max_height:
        # never taller than the page's frame (with room for the title): scaled down whole
        width, height = width * max_height / height, max_height
    img = Image(io.BytesIO(png), width=width, height=height)
    items = [Paragraph(_esc(c.title), st["h2"]), img]
    if c.caption:
        items.append(Paragraph(_esc(c.caption), st["caption"]))
    for note in c.table.notes:
        items.append(Paragraph(_esc(note), st["note"]))
    items.append(Spacer(1, 8))
    return [KeepTogether(items)]


def render_pdf(report: DisclosedReport) -> bytes:
    """Render a disclosed report to PDF bytes (deterministic for the same report)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import (CondPageBreak, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table,
                                    TableStyle)

    if not isinstance(report, DisclosedReport):
        raise ReportError("render_pdf needs a disclosed report (disclose_report first)",
                          code="report.not_disclosed")
    register_fonts()
    st = _styles()
    buf = io.BytesIO()
    margin = 2 * cm
    doc = _doc_class()(
        buf, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
        bottomMargin=margin, title=report.title, author=report.author,
        subject="Survey report" + (" (SYNTHETIC DATA)" if report.synthetic else ""),
        creator="diaspora-survey", invariant=1, initialFontName=FONT, initialFontSize=9.5,
        initialLeading=12.5)
    avail = doc.width - 12          # the frame keeps 6 pt padding on each side

    def decorate(canvas, d):
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(margin, A4[1] - margin + 14, report.title[:110])
        canvas.drawRightString(A4[0] - margin, margin - 22, f"Page {d.page}")
        canvas.drawString(margin, margin - 22, f"Data as of {report.date}")
        if report.synthetic:
            canvas.setFillColor(colors.HexColor("#b00020"))
            canvas.setFont(FONT_BOLD, 7.5)
            canvas.drawCentredString(A4[0] / 2, margin - 22, "SYNTHETIC DATA")
        canvas.restoreState()

    has_summary = any(sec.role == "summary" for sec in report.sections)
    # with a summary the answers open page 1: a short title block, not a title page
    story = [Spacer(1, (0.2 if has_summary else 3) * cm),
             Paragraph(_esc(report.title), st["title_compact" if has_summary else "title"])]
    if report.subtitle:
        story.append(Paragraph(_esc(report.subtitle), st["subtitle"]))
    if report.synthetic:
        banner = Table([[Paragraph(_esc(SYNTHETIC_BANNER), st["banner"])]], colWidths=[avail],
                       style=TableStyle([("BACKGROUND", (0, 0), (-1, -1),
                                          colors.HexColor("#b00020")),
                                         ("TOPPADDING", (0, 0), (-1, -1), 10),
                                         ("BOTTOMPADDING", (0, 0), (-1, -1), 10)]))
        gap = (0.25 if has_summary else 0.6) * cm
        story += [Spacer(1, gap), banner, Spacer(1, gap)]
    facts = [[Paragraph(_esc(k), st["head"]), Paragraph(_esc(_fit_cell(v)), st["cell"])]
             for k, v in report.facts]
    if facts:
        story.append(Table(facts, colWidths=[avail * 0.3, avail * 0.7], hAlign="LEFT",
                           style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                             ("LINEBELOW", (0, 0), (-1, -1), 0.25,
                                              colors.HexColor("#cccccc")),
                                             ("TOPPADDING", (0, 0), (-1, -1), 3),
                                             ("BOTTOMPADDING", (0, 0), (-1, -1), 3)])))
    toc_done = False
    for k, sec in enumerate(report.sections):
        if sec.role != "summary" and not toc_done:
            # the table of contents follows the summary (or the title page)
            story += [PageBreak(), Paragraph("Contents", st["toc_title"]), _toc(st), PageBreak()]
            toc_done = True
        elif sec.role == "summary":
            story.append(Spacer(1, 4))
        elif sec.new_page:
            # later sections take the rest of a page that is still more than half empty
            # (no page holding only a table's last footnote)
            story.append(CondPageBreak(0.55 * doc.height))
        story.append(Paragraph(_esc(sec.title), st["h1"]))
        for b in sec.blocks:
            if isinstance(b, Text):
                story.append(Paragraph(_esc(b.text), st.get(b.style, st["body"])))
            elif isinstance(b, DisclosedTable):
                story.extend(_table_flowables(b, st, avail))
            elif isinstance(b, DisclosedChart):
                # the frame less the chart's title (and a line of caption) above/below it
                story.extend(_chart_flowables(b, st, avail, max_height=doc.height - 12 - 60))
            else:  # pragma: no cover - disclose_report guards this
                raise ReportError(f"unknown block {type(b).__name__}", code="report.block")
    if not toc_done:
        story += [PageBreak(), Paragraph("Contents", st["toc_title"]), _toc(st)]
    from reportlab.platypus.doctemplate import LayoutError

    try:
        doc.multiBuild(story, onFirstPage=decorate, onLaterPages=decorate)
    except LayoutError as e:   # a flowable that no page can hold: one message, no file
        raise ReportError(f"the PDF layout failed: {e}", code="report.layout",
                          hint="a table cell or chart is larger than a page; the other formats "
                               "(--format xlsx/csv/md) hold the same content") from None
    return buf.getvalue()


def _toc(st):
    """The table of contents: sections (bold) and their tables and charts, with pages."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus.tableofcontents import TableOfContents

    toc = TableOfContents(dotsMinLevel=0)
    toc.levelStyles = [
        ParagraphStyle("toc0", parent=st["body"], fontName=FONT_BOLD, fontSize=9.5, leading=12,
                       leftIndent=0, firstLineIndent=0, spaceBefore=4, spaceAfter=0),
        ParagraphStyle("toc1", parent=st["body"], fontSize=8, leading=10, leftIndent=14,
                       firstLineIndent=0, spaceAfter=0),
    ]
    return toc


@functools.lru_cache(maxsize=None)
def _doc_class():
    """A SimpleDocTemplate that records every h1 (section) and h2 (table, chart) heading
    for the table of contents and as a PDF outline entry (bookmarks)."""
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    class Doc(SimpleDocTemplate):
        def beforeDocument(self):
            self._heading_no = 0

        def afterFlowable(self, flowable):
            if not isinstance(flowable, Paragraph):
                return
            name = flowable.style.name
            if name not in ("h1", "h2"):
                return
            level = 0 if name == "h1" else 1
            text = flowable.getPlainText()
            self._heading_no += 1
            key = f"h{self._heading_no}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(text, key, level=level, closed=level == 0 and None)
            self.notify("TOCEntry", (level, text, self.page, key))

    return Doc
