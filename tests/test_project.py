"""Project file (diaspora-survey.toml): loading, accessors, errors, init scaffolding."""
from __future__ import annotations

import shutil

import pytest

from diaspora_survey.cli import main
from diaspora_survey.commands.init import scaffold
from diaspora_survey.errors import CodebookError, ProjectError
from diaspora_survey.project import FILENAME, Project


def test_example_project_loads(repo_dir):
    p = Project.load(repo_dir)
    assert p.root == repo_dir.resolve()
    assert p.synthetic is True and "SYNTHETIC" in p.title
    assert p.wave_ids == ["2022-03", "2022-11", "2024-05"]
    assert p.waves[1].file == "raw/2022-11_wave2.csv"
    assert p.weighting.method == "rake" and p.weighting.trim_upper == 5.0 and p.weighting.tolerance == 1e-8
    assert p.reference.population == "russia" and p.reference.min_age == 18 and p.reference.max_age == 0
    assert p.compare.by == ["wave", "country"]
    assert p.report.min_cell_size == 10 and p.report.formats == ["pdf"]
    assert p.path("raw/x.sav") == repo_dir.resolve() / "raw" / "x.sav"
    assert set(p.codebooks()) == set(p.wave_ids)
    assert Project.load(repo_dir / FILENAME).wave_ids == p.wave_ids


def test_raw_waves_and_harmonised(repo_dir):
    p = Project.load(repo_dir)
    raws = p.raw_waves()
    assert list(raws) == p.wave_ids and len(raws["2022-11"].data) == 5000
    data = p.harmonised()
    assert list(data["wave"].cat.categories) == p.wave_ids
    res = p.harmonise_all()
    assert res.data is data and len(res.exclusions) > 0 and res.unmapped == 0
    assert set(res.summary["wave"]) == set(p.wave_ids)


def write(tmp_path, text):
    (tmp_path / FILENAME).write_text(text, encoding="utf-8")
    return tmp_path


def test_unknown_key_is_an_error_with_line(tmp_path):
    write(tmp_path, '[project]\ntitle = "x"\n\n[weighting]\nmethod = "rake"\ntrim_uper = 5\n')
    with pytest.raises(ProjectError) as ei:
        Project.load(tmp_path)
    assert ei.value.code == "project.unknown_key" and ei.value.where.endswith(f"{FILENAME}:6")
    assert "trim_uper" in ei.value.message


def test_bad_value_and_bad_toml(tmp_path):
    write(tmp_path, '[weighting]\nmethod = "magic"\n')
    with pytest.raises(ProjectError) as ei:
        Project.load(tmp_path)
    assert ei.value.code == "project.invalid" and ei.value.where.endswith(":2")
    write(tmp_path, '[project]\ntitle = "x\n')
    with pytest.raises(ProjectError) as ei:
        Project.load(tmp_path)
    assert ei.value.code == "project.toml_syntax" and ":2" in ei.value.where


def test_duplicate_wave_ids(tmp_path):
    write(tmp_path, '[[waves]]\nid = "a"\nfile = "raw/a.sav"\ncodebook = "c.yaml"\n\n'
                    '[[waves]]\nid = "a"\nfile = "raw/b.sav"\ncodebook = "d.yaml"\n')
    with pytest.raises(ProjectError) as ei:
        Project.load(tmp_path)
    assert ei.value.code == "project.duplicate_wave" and ei.value.where.endswith(":7")


def test_bad_age_bands(tmp_path):
    write(tmp_path, '[harmonise]\nage_bands = [[18, 29], [25, 40]]\n')
    with pytest.raises(ProjectError) as ei:
        Project.load(tmp_path)
    assert "overlaps" in ei.value.message


def test_no_project_file(tmp_path):
    with pytest.raises(ProjectError) as ei:
        Project.load(tmp_path)
    assert ei.value.code == "project.not_found" and "init" in ei.value.hint


def test_missing_targets_only_an_error_when_needed(repo_dir):
    p = Project.load(repo_dir)   # loads although targets/claims may not exist yet
    with pytest.raises(ProjectError) as ei:
        p.require("codebooks/no-such-targets.yaml", "weighting targets")
    assert ei.value.code == "project.missing_file"


def test_codebook_wave_mismatch(repo_dir, tmp_path):
    shutil.copytree(repo_dir / "raw", tmp_path / "raw")
    shutil.copytree(repo_dir / "codebooks", tmp_path / "codebooks")
    text = (repo_dir / FILENAME).read_text(encoding="utf-8").replace('id = "2022-11"', 'id = "2022-12"')
    write(tmp_path, text)
    with pytest.raises(CodebookError) as ei:
        Project.load(tmp_path).codebooks()
    assert ei.value.code == "codebook.wave_mismatch" and "2022-11_wave2.yaml:" in ei.value.where


def test_custom_age_bands_and_project_crosswalks(repo_dir, tmp_path):
    shutil.copytree(repo_dir / "raw", tmp_path / "raw")
    shutil.copytree(repo_dir / "codebooks", tmp_path / "codebooks")
    (tmp_path / "codebooks" / "country_mine.csv").write_text("label,code\nГрузия,AM\n", encoding="utf-8")
    text = (repo_dir / FILENAME).read_text(encoding="utf-8").replace(
        "crosswalks = []", 'crosswalks = ["codebooks/country_mine.csv"]\nage_bands = [[18, 34], [35, 54], [55]]')
    write(tmp_path, text)
    d = Project.load(tmp_path).harmonised()
    assert list(d["age_group"].cat.categories) == ["18-34", "35-54", "55+"]
    w2 = d[d["wave"] == "2022-11"]
    assert not (w2["country"] == "GE").any()   # the project crosswalk overrode Грузия → AM (a test!)


# ---- init ------------------------------------------------------------------------------------------

def test_init_scaffolds_a_loadable_project(tmp_path):
    toml = scaffold(tmp_path / "new-study", title="My study")
    root = tmp_path / "new-study"
    assert toml == root / FILENAME
    for sub in ("raw", "codebooks", "reports"):
        assert (root / sub).is_dir()
    text = toml.read_text(encoding="utf-8")
    assert text.count("#") > 10          # commented
    p = Project.load(root)
    assert p.title == "My study" and p.waves == [] and p.synthetic is False
    assert p.harmonised().empty


def test_init_cli(tmp_path, capsys):
    assert main(["init", str(tmp_path / "s")]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["init", str(tmp_path / "s")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "s"), "--force"]) == 0
