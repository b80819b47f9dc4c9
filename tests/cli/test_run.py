"""``diaspora-survey run`` and ``report`` on a copy of the example project."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diaspora_survey.cli import main

REPORT = Path("reports/diaspora-report.pdf")


def _copy_project(repo: Path, dest: Path) -> Path:
    for name in ("raw", "codebooks"):
        shutil.copytree(repo / name, dest / name)
    shutil.copy(repo / "diaspora-survey.toml", dest / "diaspora-survey.toml")
    return dest


@pytest.fixture
def project(repo_dir, tmp_path):
    if not (repo_dir / "diaspora-survey.toml").exists():
        pytest.skip("example project file not present")
    return _copy_project(repo_dir, tmp_path / "proj")


def test_run_writes_the_report(project, capsys):
    assert main(["run", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    pdf = project / REPORT
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")
    assert "diaspora-report.pdf" in out and "SYNTHETIC" in out
    assert (project / "build" / "harmonised.parquet").exists()
    assert not list((project / "reports").glob(".*.tmp"))     # no temporary leftovers
    _check_example_report(project, pdf.read_bytes())
    _check_example_vintages(project, pdf.read_bytes(), capsys)


def _check_example_vintages(project: Path, data: bytes, capsys) -> None:
    """Issue 13: the pooled example (waves 2022-03 .. 2024-05, fieldwork midpoint 2023)
    uses the 2021 census for education (18+) and the 2023 LFS for entrepreneurship, in
    `compare --json` and in the report; no standardised entrepreneurship row rests on the
    whole population's age structure; the claims table names what each verdict rests on."""
    import json

    import report_helpers as h

    assert main(["compare", "--project", str(project), "--json", "--by", "wave"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fieldwork"]["all"] == {"year": 2023, "basis": "wave ids"}
    rows = [r for r in out["rows"] if r["group"] == "all"]
    he = next(r for r in rows if r["indicator"] == "higher_education" and r["adjustment"] == "crude")
    assert he["reference_table"] == "education_2021" and he["year"] == 2021
    assert abs(he["population"] - 0.27781) < 1e-5 and "restricted to ages 18+" in he["universe"]
    ent = [r for r in rows if r["indicator"] == "entrepreneurs_employed"]
    assert {r["reference_table"] for r in ent if r["reference_table"]} == {"employment_status_lfs_2023"}
    std = [r for r in out["rows"] if r["indicator"] == "entrepreneurs_employed"
           and r["adjustment"].startswith("direct")]
    assert std and all(r["estimate"] is None and "not available" in r["standard"] for r in std)
    assert all(r["caveat"] for r in ent if r["reference_table"])   # the LFS's 15+ universe, beside the number
    claims = {c["claim"]: c for c in out["claims"] if c["group"] == "all"}
    assert claims["three_times_educated"]["reference_table"] == "education_2021"
    assert claims["more_entrepreneurial_employed"]["verdict"].startswith("inconclusive (population ages 15+")
    flat = " ".join("\n".join(h.pdf_pages_text(data)).split())
    for text in ("education_2021 (2021)", "employment_status_lfs_2023 (2023)", "Table (year)",
                 "Standard", "Caveat"):
        assert text in flat, text


def _check_example_report(project: Path, data: bytes) -> None:
    """What issue 7 asks of the example report, read from the PDF itself (pure Python)."""
    import hashlib
    import re

    import report_helpers as h

    pages = h.pdf_pages_text(data)
    text = "\n".join(pages)
    flat = " ".join(text.split())
    assert len(pages) >= 15
    assert "SYNTHETIC DATA — for demonstration only" in pages[0]
    assert all("SYNTHETIC DATA" in p for p in pages)                 # footer on every page
    assert re.search(r"\d,\d{3} in total; 2022-03: ", pages[0]) and "Data as of" in pages[0]
    for title in ("Waves: files read and respondents kept", "Sample composition by wave",
                  "Weighting diagnostics by wave", "Weighting targets and achieved margins",
                  "Age: all respondents", "Age: by wave", "Age: by country of residence",
                  "Education: all respondents", "Education: by wave",
                  "Education: by country of residence", "Entrepreneurship: all respondents",
                  "Entrepreneurship: by wave", "Entrepreneurship: by country of residence",
                  "Age-standardised comparisons", "Goodness of fit", "Claims and verdicts",
                  "Age structure: Emigrant sample vs Russian population",
                  "Education: Emigrant sample vs Russian population",
                  "Distribution of the weights", "Methods", "Reference sources",
                  "Provenance"):
        assert title in text, title
    assert "fewer than 10 unweighted respondents" in flat and "—" in text
    assert "Динамика уровня образования" in flat                     # Cyrillic source title
    for rel in ("raw/2022-03_wave1.sav", "raw/2022-11_wave2.csv", "raw/2024-05_wave3.zsav",
                "codebooks/2022-03_wave1.yaml", "codebooks/2022-11_wave2.yaml",
                "codebooks/2024-05_wave3.yaml"):
        digest = hashlib.sha256((project / rel).read_bytes()).hexdigest()
        assert digest in text.split("\n"), rel                       # whole, on one line
    assert "diaspora-survey run" in text


def test_failing_step_stops_run_without_a_report(project, capsys):
    cb = project / "codebooks" / "2022-03_wave1.yaml"
    cb.write_text(cb.read_text(encoding="utf-8").replace("wave: \"2022-03\"", "wave: [oops"),
                  encoding="utf-8")
    old = project / REPORT
    old.parent.mkdir(parents=True)
    old.write_bytes(b"%PDF previous report")
    assert main(["run", "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "2022-03_wave1.yaml" in err and "Traceback" not in err
    assert old.read_bytes() == b"%PDF previous report"          # untouched
    assert sorted(p.name for p in old.parent.iterdir()) == ["diaspora-report.pdf"]


def test_report_rejects_unknown_format(project, capsys):
    assert main(["report", "--project", str(project), "--format", "docx"]) == 2
    assert "docx" in capsys.readouterr().err


def test_report_command_other_format(project, capsys):
    toml = project / "diaspora-survey.toml"      # [report] min_cell_size is honoured
    toml.write_text(toml.read_text(encoding="utf-8").replace("min_cell_size = 10",
                                                             "min_cell_size = 25"),
                    encoding="utf-8")
    out = project / "out" / "tables.md"
    assert main(["report", "--project", str(project), "--format", "md", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "SYNTHETIC DATA" in text and "| " in text
    assert "fewer than 25 unweighted respondents" in text
    assert "fewer than 10 unweighted" not in text
    assert (project / "out" / "tables_charts").is_dir()


def test_run_survives_a_reader_crash_with_one_message(project):
    """A corrupt .sav that kills ReadStat (SIGSEGV) mid-run: one message, exit 2, no report."""
    import subprocess
    import sys

    from cli.test_inspect import _crashing_sav

    _crashing_sav(project / "raw" / "2022-03_wave1.sav")
    probe = subprocess.run([sys.executable, "-c", "import pyreadstat, sys; pyreadstat.read_sav(sys.argv[1])",
                            str(project / "raw" / "2022-03_wave1.sav")], capture_output=True)
    if probe.returncode >= 0:
        pytest.skip("this pyreadstat does not crash on the file (ReadStat fixed?)")
    r = subprocess.run([sys.executable, "-m", "diaspora_survey.cli", "run", "--project", str(project)],
                       capture_output=True, text=True)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "input.crash" in r.stderr and "diaspora-survey inspect" in r.stderr
    assert "Traceback" not in r.stderr and "Fatal Python error" not in r.stderr
    assert not (project / REPORT).exists()


@pytest.mark.parametrize("args", [["report", "-o", "{dir}"], ["weight", "--output", "{dir}"]])
def test_output_that_is_a_folder_is_one_message(project, tmp_path, capsys, args):
    folder = tmp_path / "a folder"
    folder.mkdir()
    argv = [a.format(dir=folder) for a in args] + ["--project", str(project)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "output.cannot_write" in err and "the output is a folder" in err and "Traceback" not in err
    assert list(folder.iterdir()) == []


def test_report_rejects_an_unknown_compare_by(project, capsys):
    toml = project / "diaspora-survey.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('by = ["wave", "country"]', 'by = ["nonexist"]'),
                    encoding="utf-8")
    assert 'by = ["nonexist"]' in toml.read_text(encoding="utf-8")
    assert main(["report", "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "compare.bad_by" in err and "nonexist" in err and "[compare] by" in err
    assert not (project / REPORT).exists()
