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
    """The PDF's text, read in pure Python (no poppler needed; see report_helpers)."""
    return h.pdf_text(data)


def _poppler_text(data: bytes, tmp_path: Path) -> str:
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


def _mongolia_row(fmt, files) -> list[str]:
    """The cells of Mongolia's row (3 respondents) in the entrepreneurship-by-country
    table, as that format shows them."""
    import csv as _csv

    if fmt == "csv":
        rows = _csv.reader(io.StringIO(
            files["rep_csv/compare_entrepreneurship_country.csv"].decode()))
        return next(r for r in rows if r and r[0] == "MN")
    if fmt == "xlsx":
        from openpyxl import load_workbook

        ws = load_workbook(io.BytesIO(files["rep.xlsx"]))["compare_entrepreneurship_countr"]
        return next(["" if v is None else str(v) for v in r]
                    for r in ws.iter_rows(values_only=True) if r[0] == "MN")
    if fmt == "md":
        line = next(ln for ln in files["rep.md"].decode().splitlines() if ln.startswith("| MN |"))
        return [c.strip() for c in line.strip("|").split("|")]
    if fmt == "tex":
        line = next(ln for ln in files["rep.tex"].decode().splitlines() if ln.startswith("MN &"))
        return [c.strip() for c in line.removesuffix(r"\\").split("&")]
    page = next(p for p in h.pdf_pages_text(files["rep.pdf"])
                if "Entrepreneurship: by country of residence" in p)
    lines = page.splitlines()
    i = lines.index("MN")       # one line per cell; the row ends before the next country
    return lines[i:i + 8]


@pytest.mark.parametrize("fmt", ["pdf", "xlsx", "csv", "md", "tex"])
def test_suppression_in_every_format(fmt, outputs, tmp_path):
    text = _text(fmt, outputs[fmt], tmp_path)
    row = _mongolia_row(fmt, outputs[fmt])
    # the suppressed cell itself shows "—": estimate (and its CI), difference, ratio, p, n
    assert row[0] == "MN" and row.count("—") >= 5, row
    assert not {"3", "3.0"} & set(row), row          # nor its count
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


def test_pure_python_pdf_reader_agrees_with_poppler(outputs, tmp_path):
    """The pure-Python reader used above sees what pdftotext sees (when poppler exists)."""
    data = outputs["pdf"]["rep.pdf"]
    ours = _pdf_text(data, tmp_path).split()
    theirs = _poppler_text(data, tmp_path).split()
    assert len(theirs) > 500
    assert sorted(ours) == sorted(theirs)


def test_small_exclusions_are_suppressed_wherever_they_could_be_read(report):
    """w2 excluded 5 respondents: hidden in the exclusions table, and in the waves table
    both "Excluded" and "Rows read" (read − kept would give it away)."""
    t = {t.id: t for t in report.tables()}
    waves = dict(zip([r[0] for r in t["waves"].cells], t["waves"].cells))
    head = t["waves"].header
    w2 = dict(zip(head, waves["w2"]))
    assert w2["Rows read"] == w2["Excluded"] == "—" and w2["Kept"] == "240"
    w1 = dict(zip(head, waves["w1"]))
    assert (w1["Rows read"], w1["Excluded"], w1["Kept"]) == ("370", "10", "360")
    excl = {r[0]: r[-1] for r in t["exclusions"].cells}
    assert excl == {"w1": "10", "w2": "—"}


def test_waves_with_no_exclusions_show_their_counts():
    inp = h.inputs()
    inp.waves[1].n_excluded, inp.waves[1].n_read = 0, 240
    t = {t.id: t for t in disclose_report(build_report(inp)).tables()}["waves"]
    assert t.cells[1][-3:] == ["240", "0", "240"]


def test_chart_hides_the_complement_of_a_suppressed_category():
    """Education shares add up to 100 %: with one category suppressed, the chart must not
    draw the next smallest either (the table hides it too)."""
    inp = h.inputs()
    inp.education = inp.education.assign(n=[5, 35, 500])
    chart = {c.id: c for c in disclose_report(build_report(inp)).charts()}["education"]
    assert chart.table.values["estimate"].isna().tolist() == [True, True, False]
    fig = draw(chart)
    widths = sorted(round(p.get_width(), 6) for p in fig.axes[0].patches if p.get_width() > 0)
    assert 85.0 in widths and 8.0 not in widths and 7.0 not in widths


def test_goodness_of_fit_shows_the_tests_degrees_of_freedom(report):
    t = {t.id: t for t in report.tables()}["goodness_of_fit"]
    row = dict(zip(t.header, t.cells[0]))
    assert row["df"] == "2"                  # 3 education categories − 1 (not the design df)


def test_pdf_repeats_group_labels_and_keeps_hashes_whole():
    """A grouped table broken across pages names its group again on the new page; a
    SHA-256 is printed on one line (monospaced, never wrapped)."""
    import pandas as pd

    from diaspora_survey.report import Report, ReportTable, Section, Column

    rows = pd.DataFrame({"grp": ["first-group"] * 150 + ["second-group"] * 5,
                         "item": [f"item {i}" for i in range(155)], "n": [100] * 155})
    digest = "0123456789abcdef" * 4
    rep = Report(title="T", date="2024-01-01", sections=[Section("S", [
        ReportTable("long", "Long", rows, [Column("grp", "Group", "text"),
                                           Column("item", "Item", "text"),
                                           Column("n", "n", "int")], cv_col=None,
                    group_col="grp"),
        ReportTable("hash", "Hashes", pd.DataFrame({"role": ["raw"], "sha256": [digest]}),
                    [Column("role", "Role", "text"), Column("sha256", "SHA-256", "text",
                                                            mono=True)],
                    n_col=None, no_disclosure_reason="hashes")])])
    pages = h.pdf_pages_text(render_files(rep, "pdf", "x")["x.pdf"])
    starts = [p for p in pages if "item 0\n" in p or "\nitem" in p]
    assert len(starts) >= 3
    for p in starts:                           # every page of the table names its group
        first_item = p.index("\nitem")
        assert "-group" in p[:first_item], p[:300]
    assert any(digest in line for p in pages for line in p.splitlines())


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
            % str(Path(__file__).parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin",
                                  # this checkout's package, not whichever is installed
                                  "PYTHONPATH": str(Path(__file__).parents[2] / "src")}).stdout
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


def test_harmonisation_issues_reach_the_report_without_raw_values():
    """An issue's console message lists raw answers with counts (respondent-level, small);
    the report describes the kind of issue only, and its count is disclosure-controlled."""
    from diaspora_survey.harmonise.apply import Issue
    from diaspora_survey.report.collect import issue_text

    i = Issue("w1", "country", "unmapped", 2, "2 value(s) of 'q7' not mapped: «Марс» ×2")
    assert "Марс" not in issue_text(i) and "2" not in issue_text(i)
    assert issue_text(Issue("w1", "x", "something_new", 1, "secret ×1")) \
        == "see `diaspora-survey harmonise` for details"


def test_tex_compiles_with_xelatex_and_tables_fit_the_page(outputs, tmp_path):
    """The .tex output compiles (xelatex: Cyrillic through fontspec) and no table is wider
    than the text (an overfull box of more than 10 pt would stick into the margin)."""
    import re

    if shutil.which("xelatex") is None:
        pytest.skip("xelatex not installed")
    for name, data in outputs["tex"].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    r = subprocess.run(["xelatex", "-interaction=nonstopmode", "-halt-on-error", "rep.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    log = (tmp_path / "rep.log").read_text(encoding="utf-8", errors="replace")
    assert r.returncode == 0, log[-2000:]
    assert (tmp_path / "rep.pdf").stat().st_size > 0
    too_wide = [float(x) for x in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide\)", log)]
    assert not [x for x in too_wide if x > 10], sorted(too_wide)[-5:]
    assert "Missing character" not in log
