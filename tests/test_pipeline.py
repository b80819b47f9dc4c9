"""The build manifest: ``compare`` and ``report`` run the earlier steps when build/ is
missing or stale (by content hash); ``--no-rebuild`` keeps build/ as it is."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from diaspora_survey.cli import main
from diaspora_survey.pipeline import MANIFEST, ensure_weighted, stale_reason
from diaspora_survey.project import Project


@pytest.fixture
def project(repo_dir, tmp_path):
    dest = tmp_path / "proj"
    for name in ("raw", "codebooks"):
        shutil.copytree(repo_dir / name, dest / name)
    shutil.copy(repo_dir / "diaspora-survey.toml", dest / "diaspora-survey.toml")
    return dest


def test_compare_without_build_runs_harmonise_and_weight(project, capsys):
    assert main(["compare", "--project", str(project), "--json"]) == 0
    cap = capsys.readouterr()
    json.loads(cap.out)                                   # stdout stays clean JSON
    assert "ran harmonise: build/harmonised.parquet is missing" in cap.err
    assert (project / "build" / "weighted.parquet").exists()
    doc = json.loads((project / MANIFEST).read_text())
    assert set(doc["steps"]) == {"harmonise", "weight"}
    assert doc["steps"]["harmonise"]["inputs"]["codebooks/2022-03_wave1.yaml"]
    # fresh now: nothing runs
    assert main(["compare", "--project", str(project), "--json"]) == 0
    assert "ran " not in capsys.readouterr().err


def test_content_change_not_mtime_makes_build_stale(project, capsys):
    proj = Project.load(project)
    data, notes = ensure_weighted(proj)
    assert len(notes) == 2 and stale_reason(proj, "weight") is None
    cb = project / "codebooks" / "2022-11_wave2.yaml"
    os.utime(cb, None)                                    # touched, same content: fresh
    assert stale_reason(Project.load(project), "harmonise") is None
    cb.write_text(cb.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert stale_reason(Project.load(project), "harmonise") == \
        "codebooks/2022-11_wave2.yaml changed since the harmonise step"
    capsys.readouterr()
    assert main(["estimate", "--project", str(project), "--mean", "age", "-q"]) == 0
    assert "weighted.parquet may be out of date (codebooks/2022-11_wave2.yaml changed" in \
        capsys.readouterr().err                     # estimate says so, does not rebuild
    _, notes = ensure_weighted(Project.load(project))
    assert notes[0].startswith("ran harmonise: codebooks/2022-11_wave2.yaml changed")
    assert stale_reason(Project.load(project), "weight") is None
    t = project / "codebooks" / "targets.yaml"
    t.write_text(t.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert stale_reason(Project.load(project), "harmonise") is None
    assert stale_reason(Project.load(project), "weight") == \
        "codebooks/targets.yaml changed since the weight step"


def test_no_rebuild_keeps_todays_behaviour(project, capsys):
    assert main(["compare", "--project", str(project), "--no-rebuild"]) == 2
    assert "no weighted data" in capsys.readouterr().err
    assert not (project / "build" / "weighted.parquet").exists()
    assert main(["compare", "--project", str(project), "--json"]) == 0
    capsys.readouterr()
    toml = project / "diaspora-survey.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    before = (project / "build" / "weighted.parquet").read_bytes()
    assert main(["compare", "--project", str(project), "--no-rebuild", "--json"]) == 0
    err = capsys.readouterr().err
    assert "out of date (diaspora-survey.toml changed since the weight step)" in err
    assert (project / "build" / "weighted.parquet").read_bytes() == before


def test_replaced_output_is_stale(project, capsys):
    proj = Project.load(project)
    ensure_weighted(proj)
    w = project / "build" / "weighted.parquet"
    shutil.copy(project / "build" / "harmonised.parquet", w)      # someone overwrote it
    assert stale_reason(proj, "weight") == "build/weighted.parquet was changed or removed after the weight step"


def test_weight_reharmonises_a_stale_harmonised_file(project, capsys):
    assert main(["harmonise", "--project", str(project), "-q"]) == 0
    out = capsys.readouterr().out
    assert "Harmonisation summary" not in out and "wrote" in out        # -q on harmonise
    cb = project / "codebooks" / "2022-03_wave1.yaml"
    cb.write_text(cb.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert main(["weight", "--project", str(project), "-q"]) == 0
    assert "harmonising again: codebooks/2022-03_wave1.yaml changed" in capsys.readouterr().out
    assert stale_reason(Project.load(project), "weight") is None


def test_report_brings_a_stale_build_up_to_date(project, capsys):
    proj = Project.load(project)
    ensure_weighted(proj)
    cb = project / "codebooks" / "2024-05_wave3.yaml"
    cb.write_text(cb.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert main(["report", "--project", str(project), "--no-rebuild", "-q"]) == 0
    assert "ran harmonise" not in capsys.readouterr().out
    assert stale_reason(Project.load(project), "harmonise") is not None     # left as it was
    assert main(["report", "--project", str(project)]) == 0
    assert "build/: ran harmonise again (codebooks/2024-05_wave3.yaml changed" in capsys.readouterr().out
    assert stale_reason(Project.load(project), "weight") is None
