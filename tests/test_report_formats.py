"""Every output format: disclosure control, synthetic banner, reproducibility, atomicity."""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import report_helpers as h
from diaspora_survey.errors import ReportError
from diaspora_survey.report import disclose_report, render_files, write_report
from diaspora_survey.report.content import build_report
from diaspora_survey.report.charts import draw

FOOTNOTE = "fewer than 10 unweighted respondents"


@pytest.fixture(scope="module")
def report():
    return disclose_report(build_report(h.inputs()))


@pytest.fixture(scope="module")
def outputs(report):
    return {fmt: render_files(report, fmt, "rep") for fmt in ("pdf", "xlsx", "csv", "md", "tex")}


def _pdf_text(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    p = tmp_path / "r.pdf"
    p.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(p), "-"], capture_output=True,
                          text=True, check=True).stdout


def _xlsx_text(data: bytes) -> str:
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(data))
    return "\n".join(" | ".join("" if v is None else str(v) for v in row)
                     for ws in wb.worksheets for row in ws.iter_rows(values_only=True))


def _text(fmt, files, tmp_path) -> str:
    if fmt == "pdf":
        return _pdf_text(files["rep.pdf"], tmp_path)
    if fmt == "xlsx":
        return _xlsx_text(files["rep.xlsx"])
    return "\n".join(v.decode("utf-8") for k, v in sorted(files.items())
                     if k.endswith((".csv", ".md", ".tex")))


@pytest.mark.parametrize("fmt", ["pdf", "xlsx", "csv", "md", "tex"])
def test_suppression_in_every_format(fmt, outputs, tmp_path):
    text = _text(fmt, outputs[fmt], tmp_path)
    assert "—" in text
    assert FOOTNOTE in " ".join(text.split())     # layout may break lines
    # Mongolia's 3 respondents: the secret share (43.2 %) never appears
    assert h.SECRET_STR not in text
    assert "SYNTHETIC DATA" in text
    if fmt != "pdf":                               # charts come as PNG and SVG
        assert {"rep_charts/entrepreneurship_by_country.png",
                "rep_charts/entrepreneurship_by_country.svg"} <= set(outputs[fmt])


def test_cyrillic_reaches_the_pdf(outputs, tmp_path):
    text = _pdf_text(outputs["pdf"]["rep.pdf"], tmp_path)
    assert "Эмиграция 2022: пример отчёта" in text
    assert "«Марс»" in text


def test_charts_do_not_draw_suppressed_cells(report):
    chart = {c.id: c for c in report.charts()}["entrepreneurship_by_country"]
    fig = draw(chart)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "MN" not in labels and {"GE", "AM", "DE"} <= set(labels)
    pyr = {c.id: c for c in report.charts()}["age_pyramid"].table.values
    assert pyr["estimate"].isna().sum() == 2       # 65+ women (n=5) and its complement


def test_xlsx_one_sheet_per_table_with_notes(report, outputs):
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(outputs["xlsx"]["rep.xlsx"]))
    ids = [t.id[:31] for t in report.tables()]
    assert wb.sheetnames == ["Contents"] + ids
    ws = wb["compare_entrepreneurship_countr"]
    values = [c for row in ws.iter_rows(values_only=True) for c in row if c is not None]
    assert any("Rosstat census 2002" in str(v) for v in values)     # source note
    assert "Low precision" in values and "†" in values              # DE: cv 0.5
    assert "—" in values


def test_csv_index_lists_every_table(report, outputs):
    index = outputs["csv"]["rep_csv/tables.csv"].decode()
    for t in report.tables():
        assert f"{t.id}.csv" in index
        assert f"rep_csv/{t.id}.csv" in outputs["csv"]


def test_min_cell_size_is_configurable(tmp_path):
    r = disclose_report(build_report(h.inputs(min_cell_size=2)))
    md = render_files(r, "md", "x")["x.md"].decode()
    assert h.SECRET_STR in md                      # 3 respondents ≥ 2: shown
    assert "fewer than 2 unweighted" not in md or "—" in md


@pytest.mark.parametrize("fmt", ["pdf", "xlsx", "md"])
def test_same_inputs_give_identical_bytes(fmt):
    a = render_files(build_report(h.inputs()), fmt, "rep")
    b = render_files(build_report(h.inputs()), fmt, "rep")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k


def test_pdf_identical_across_processes(outputs, tmp_path):
    """A fresh interpreter (new font registration, new hash seeds) gives the same bytes."""
    code = ("import sys; sys.path.insert(0, %r); import report_helpers as h; "
            "from diaspora_survey.report import render_files; "
            "from diaspora_survey.report.content import build_report; "
            "sys.stdout.buffer.write(render_files(build_report(h.inputs()), 'pdf', 'rep')['rep.pdf'])"
            % str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}).stdout
    assert out == outputs["pdf"]["rep.pdf"]
    assert b"CreationDate" in out


def test_xlsx_is_a_valid_zip_with_fixed_times(outputs):
    z = zipfile.ZipFile(io.BytesIO(outputs["xlsx"]["rep.xlsx"]))
    assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_failed_render_leaves_no_partial_output(tmp_path, monkeypatch):
    import diaspora_survey.report.formats as formats

    def boom(*a, **k):
        raise ReportError("renderer broke")

    monkeypatch.setattr(formats, "render_markdown", boom)
    with pytest.raises(ReportError):
        write_report(build_report(h.inputs()), "md", tmp_path / "out.md")
    assert list(tmp_path.iterdir()) == []           # not even the charts


def test_write_report_writes_main_file_first(tmp_path):
    paths = write_report(build_report(h.inputs()), "tex", tmp_path / "r.tex")
    assert paths[0] == tmp_path / "r.tex"
    tex = paths[0].read_text()
    assert r"\begin{longtable}" in tex and r"\includegraphics" in tex
    assert (tmp_path / "r_charts" / "weights.svg").exists()


def test_unknown_format_is_rejected():
    with pytest.raises(ReportError, match="unknown report format"):
        render_files(build_report(h.inputs()), "docx", "x")
