"""``diaspora-survey panel`` on a copy of the example project: counts and example ids printed,
build/panel.parquet written, --strict, a panel wave without the link key, no [panel]."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from diaspora_survey.cli import main


def _copy(repo: Path, dest: Path) -> Path:
    for name in ("raw", "codebooks"):
        shutil.copytree(repo / name, dest / name)
    shutil.copy(repo / "diaspora-survey.toml", dest / "diaspora-survey.toml")
    return dest


@pytest.fixture(scope="module")
def project(repo_dir, tmp_path_factory):
    return _copy(repo_dir, tmp_path_factory.mktemp("panel") / "proj")


@pytest.fixture(scope="module")
def run(project):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["panel", "--project", str(project), "--details"])
    return rc, out.getvalue(), err.getvalue()


def test_panel_command_reports_linking_with_counts_and_example_ids(run, project):
    rc, out, err = run
    assert rc == 0, err
    assert "SYNTHETIC" in out
    for text in ("matched to baseline", "719", "no key (new respondents)", "400", "conflicting sex",
                 "conflicting birth_year", "returned inconsistent with country", "duplicate_key",
                 "e.g. ", "use --strict"):
        assert text in out, text
    # the seeded wave-1 numbers that do not exist are listed as examples (ids only here, in the CLI)
    assert "2501" in out and "2602" in out
    assert "Attrition weights" in out and "Kish" in out and "Rao–Scott" in out
    assert "Cumulative return since departure" in out
    p = pd.read_parquet(project / "build" / "panel.parquet")
    assert len(p) == 1987 and int(p["retained"].sum()) == 719
    assert p.loc[p["retained"], "attrition_weight"].notna().all()
    assert p.loc[~p["retained"], "attrition_weight"].isna().all()


def test_strict_makes_linking_problems_errors(project, capsys):
    assert main(["panel", "--project", str(project), "--strict", "-o", str(project / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "panel.duplicate_key" in err and "codebooks/2023-03_wave4_panel.yaml" in err and "hint" in err
    assert "Traceback" not in err and not (project / "x.parquet").exists()


def test_a_panel_wave_without_the_link_key_is_a_clear_error(repo_dir, tmp_path, capsys):
    proj = _copy(repo_dir, tmp_path / "p")
    cb = proj / "codebooks" / "2023-03_wave4_panel.yaml"
    text = cb.read_text(encoding="utf-8")
    cb.write_text(text.replace("  panel_id:\n    source: id_w1", "  # no link key"), encoding="utf-8")
    assert main(["panel", "--project", str(proj)]) == 2
    err = capsys.readouterr().err
    assert "panel.no_key" in err and "wave 2023-03 has no link key 'panel_id'" in err
    assert "2023-03_wave4_panel.yaml" in err and "Traceback" not in err


def test_a_project_without_a_panel(repo_dir, tmp_path, capsys):
    proj = _copy(repo_dir, tmp_path / "p")
    toml = proj / "diaspora-survey.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text[:text.index("# The panel:")], encoding="utf-8")
    assert main(["panel", "--project", str(proj)]) == 2
    assert "panel.not_declared" in capsys.readouterr().err


def test_an_unknown_panel_wave(repo_dir, tmp_path, capsys):
    proj = _copy(repo_dir, tmp_path / "p")
    toml = proj / "diaspora-survey.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('waves = ["2022-03", "2023-03"]',
                                                             'waves = ["2022-03", "2023-04"]'), encoding="utf-8")
    assert main(["panel", "--project", str(proj)]) == 2
    err = capsys.readouterr().err
    assert "project.unknown_wave" in err and "2023-03" in err


def test_a_panel_wave_without_matches_shows_the_linking_table_then_one_error(repo_dir, tmp_path, capsys):
    proj = _copy(repo_dir, tmp_path / "p")
    cb = proj / "codebooks" / "2022-03_wave1.yaml"
    cb.write_text(cb.read_text(encoding="utf-8").replace("  panel_id:                  # link key of the panel "
                                                         "(wave 4 re-interviews this wave)\n    source: id",
                                                         "  panel_id:\n    source: q6_mes_vyezda"), encoding="utf-8")
    assert main(["panel", "--project", str(proj)]) == 2
    cap = capsys.readouterr()
    assert "no_match" in cap.out and "matched to baseline" in cap.out
    assert "no baseline respondent was re-interviewed" in cap.err and "Traceback" not in cap.err
