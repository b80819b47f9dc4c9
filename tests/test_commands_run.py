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


def _harmonise_available() -> bool:
    try:
        from diaspora_survey.io import read_wave  # noqa: F401
    except ImportError:
        return False
    return True


def test_run_writes_the_report(project, capsys):
    if not _harmonise_available():
        pytest.skip("the import step (diaspora_survey.io.read_wave) is not available yet")
    assert main(["run", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    pdf = project / REPORT
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")
    assert "diaspora-report.pdf" in out and "SYNTHETIC" in out
    assert (project / "build" / "harmonised.parquet").exists()
    assert not list((project / "reports").glob(".*.tmp"))     # no temporary leftovers


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
    if not _harmonise_available():
        pytest.skip("the import step (diaspora_survey.io.read_wave) is not available yet")
    out = project / "out" / "tables.md"
    assert main(["report", "--project", str(project), "--format", "md", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "SYNTHETIC DATA" in text and "| " in text
    assert (project / "out" / "tables_charts").is_dir()
