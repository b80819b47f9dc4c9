"""PDF layout (issue 15, item 12): hashes on one line, file names broken after a separator
and never inside their suffix, the education legend outside the bars."""
from __future__ import annotations

import pandas as pd

import report_helpers as h
from diaspora_survey.report import disclose_report, render_files
from diaspora_survey.report.content import build_report

LONG = "raw/Bor_Littvay_TIER_Protocol__ESS5RU.sav"
HASHES = [f"{i:x}" * 64 for i in range(1, 5)]


def _report():
    prov = [("project", "diaspora-survey.toml", HASHES[0]),
            ("raw ESS5-RU", LONG, HASHES[1]),
            ("codebook ESS5-RU", "codebooks/ess5ru.yaml", HASHES[2]),
            ("reference table", "reference/a_rather_long_reference_table_name_2021.csv", HASHES[3])]
    return disclose_report(build_report(h.inputs(provenance=prov)))


def test_breakable_never_splits_a_suffix():
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from diaspora_survey.report.pdf import FONT, _breakable, register_fonts

    register_fonts()
    for width in (60, 90, 120):
        lines = _breakable(LONG, width).split("<br/>")
        assert "".join(lines) == LONG
        assert lines[-1].endswith("ESS5RU.sav")          # the suffix stays with its name
        assert all(stringWidth(x, FONT, 7.5) <= width for x in lines[:-1])
    assert _breakable("short words stay", 200) == "short words stay"
    assert _breakable("a<b & c", 200) == "a&lt;b &amp; c"


def test_hashes_stay_on_one_line_and_file_names_break_after_a_separator():
    data = render_files(_report(), "pdf", "rep")["rep.pdf"]
    page = next(p for p in h.pdf_pages_text(data) if "Input files (SHA-256)" in p
                and HASHES[0] in p)
    lines = page.splitlines()
    for x in HASHES:                                      # each hash drawn as one string
        assert x in lines, x
    assert "ESS5RU.sav" in " ".join(lines)
    assert not any(ln.endswith("ESS5RU.sa") for ln in lines)


def test_mono_columns_keep_their_width_when_the_table_is_too_wide():
    from diaspora_survey.report.pdf import FONT_MONO, MONO_SIZE, _col_widths, register_fonts
    from reportlab.pdfbase.pdfmetrics import stringWidth

    register_fonts()
    t = next(t for t in _report().tables() if t.id == "provenance")
    widths = _col_widths(t, 330.0, 7.5)                   # far too narrow for everything
    assert widths[2] >= stringWidth(HASHES[0], FONT_MONO, MONO_SIZE) + 6


def test_education_legend_is_outside_the_axes():
    from diaspora_survey.report import charts

    c = next(b for b in _report().charts() if b.id == "education")
    fig = charts.draw(c)
    ax = fig.axes[0]
    assert ax.get_legend() is None and len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["Sample (weighted)", "the population"]


def test_age_pyramid_legend_is_outside_the_axes():
    from diaspora_survey.report import charts

    c = next(b for b in _report().charts() if b.id == "age_pyramid")
    fig = charts.draw(c)
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
