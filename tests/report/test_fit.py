"""The PDF fits any size of input (issue 17): long category lists, many waves, huge
cells and tall charts give a valid PDF, never a reportlab LayoutError; a failure of the
report step is one ReportError and leaves the previous report as it was."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import report_helpers as h
from diaspora_survey.errors import ReportError
from diaspora_survey.report import charts, render_files
from diaspora_survey.report.content import build_report


def _pdf_pages(b: bytes) -> int:
    import re

    assert b.startswith(b"%PDF-") and b.rstrip().endswith(b"%%EOF")
    return len(re.findall(rb"/Type\s*/Page[^s]", b))


def test_many_countries_many_waves_and_a_huge_cell_fit():
    k = 120
    rng = np.random.default_rng(1)
    ent = pd.DataFrame(dict(country=[f"C{i:03d}" for i in range(k)],
                            estimate=rng.uniform(0.05, 0.4, k), n=rng.integers(20, 900, k)))
    ent["ci_low"], ent["ci_high"] = ent["estimate"] - 0.03, ent["estimate"] + 0.03
    inp = h.inputs(entrepreneurship_by_country=ent)
    inp.notes = list(inp.notes) + ["left out: " + ", ".join(f"country {i}" for i in range(3000))]
    inp.title = inp.title + " " + "very long title " * 200
    pdf = render_files(build_report(inp), "pdf", "r")["r.pdf"]
    assert _pdf_pages(pdf) >= 6


def test_country_chart_keeps_the_largest_and_stays_on_a_page():
    from diaspora_survey.report.document import Chart, disclose_report  # noqa: F401
    from diaspora_survey.report.tables import Column, ReportTable, disclose

    k = 80
    d = pd.DataFrame(dict(country=[f"C{i:02d}" for i in range(k)], estimate=np.linspace(.1, .3, k),
                          ci_low=np.linspace(.05, .25, k), ci_high=np.linspace(.15, .35, k),
                          n=np.arange(k) * 10 + 20))
    t = disclose(ReportTable(id="x", title="x", data=d, columns=[
        Column("country", "Country", "text"), Column("estimate", "Sample", "pct"),
        Column("ci_low", "95% CI", "pct_ci", high="ci_high"), Column("n", "n", "int")],
        n_col="n", cv_col=None))
    fig = charts.entrepreneurship_by_country(t)
    w, hgt = charts.figure_size_in(fig)
    assert hgt <= charts.MAX_HEIGHT_IN
    shown = [x.get_text() for x in fig.axes[0].get_yticklabels()]
    assert len(shown) == charts.MAX_ROWS
    assert set(shown) == {f"C{i:02d}" for i in range(k - charts.MAX_ROWS, k)}   # most respondents
    assert "50 more" in fig.axes[0].get_title(loc="left")


def test_layout_error_becomes_one_report_error(monkeypatch):
    from reportlab.platypus.doctemplate import LayoutError

    from diaspora_survey.report import pdf

    def boom(*a, **k):
        raise LayoutError("Flowable too large on page 3")

    monkeypatch.setattr("reportlab.platypus.SimpleDocTemplate.build", boom)
    with pytest.raises(ReportError) as e:
        render_files(build_report(h.inputs()), "pdf", "r")
    assert e.value.code == "report.layout" and "too large" in str(e.value)
    del pdf


def test_report_step_failure_is_one_error_and_keeps_the_previous_report(tmp_path, monkeypatch):
    """Any exception inside the report step: ReportError naming the step and the cause;
    the report written before is byte-identical afterwards (nothing half-written)."""
    from diaspora_survey import pipeline as pl

    class FakeProject:
        class report:
            output = "reports/r.pdf"
            formats = ["pdf"]

        def path(self, rel):
            return tmp_path / rel

    out = tmp_path / "reports" / "r.pdf"
    out.parent.mkdir()
    out.write_bytes(b"%PDF-previous")
    p = object.__new__(pl.Pipeline)
    p.project, p.data, p.command = FakeProject(), pd.DataFrame({"a": [1]}), ""
    p.harmonised, p.weighting, p.weighting_info, p.comparison = None, {}, {}, {}

    def broken(_):
        raise ValueError("cannot reshape array of size 0")

    monkeypatch.setattr(pl.Pipeline, "report_inputs", lambda self: None)
    monkeypatch.setattr("diaspora_survey.report.content.build_report", broken)
    with pytest.raises(ReportError) as e:
        p.report(["pdf"])
    assert e.value.code == "report.failed"
    assert "report step" in str(e.value) and "ValueError" in str(e.value)
    assert out.read_bytes() == b"%PDF-previous"
