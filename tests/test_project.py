"""Project file (diaspora-survey.toml): loading, accessors, errors, init scaffolding."""
from __future__ import annotations

import shutil

import pytest

from diaspora_survey.cli import main
from diaspora_survey.cli.init import scaffold
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


def test_init_title_with_quotes_and_backslashes_round_trips(tmp_path):
    scaffold(tmp_path / "p", title='Relokanti "2022" \\ pilot')
    assert Project.load(tmp_path / "p").title == 'Relokanti "2022" \\ pilot'


def test_init_into_an_unwritable_place_is_one_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["init", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "project.init_failed" in err and "Traceback" not in err


def test_codebook_of_one_wave_checks_the_file_too(repo_dir, tmp_path):
    shutil.copytree(repo_dir / "raw", tmp_path / "raw")
    shutil.copytree(repo_dir / "codebooks", tmp_path / "codebooks")
    write(tmp_path, (repo_dir / FILENAME).read_text(encoding="utf-8"))
    p = Project.load(tmp_path)
    assert p.codebook("2022-11").wave == "2022-11"
    cbp = tmp_path / "codebooks" / "2022-11_wave2.yaml"
    cbp.write_text(cbp.read_text(encoding="utf-8").replace("file: raw/2022-11_wave2.csv", "file: raw/x.csv"),
                   encoding="utf-8")
    with pytest.raises(CodebookError) as ei:
        Project.load(tmp_path).codebook("2022-11")
    assert ei.value.code == "codebook.file_mismatch" and ei.value.where.endswith("2022-11_wave2.yaml:4")
    with pytest.raises(ProjectError) as ei:
        p.codebook("2099-01")
    assert ei.value.code == "project.unknown_wave"


def test_harmonise_output_errors_are_one_message(repo_dir, tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    assert main(["harmonise", "--project", str(repo_dir), "-o", str(tmp_path / "dir")]) == 2
    assert "harmonise.cannot_write" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["harmonise", "--project", str(repo_dir), "-o", str(blocker / "h.parquet")]) == 2
    err = capsys.readouterr().err
    assert "harmonise.cannot_write" in err and "Traceback" not in err


def test_empty_project_check_and_harmonise(tmp_path, capsys):
    scaffold(tmp_path / "p")
    assert main(["codebook", "check", "--project", str(tmp_path / "p")]) == 0
    assert "no waves in diaspora-survey.toml yet: add a [[waves]] block" in capsys.readouterr().out


def test_strict_in_the_project_file_is_honoured_and_the_flag_overrides_it(repo_dir, tmp_path, capsys):
    shutil.copytree(repo_dir / "raw", tmp_path / "raw")
    shutil.copytree(repo_dir / "codebooks", tmp_path / "codebooks")
    write(tmp_path, (repo_dir / FILENAME).read_text(encoding="utf-8").replace("strict = false", "strict = true"))
    cbp = tmp_path / "codebooks" / "2022-03_wave1.yaml"
    cbp.write_text(cbp.read_text(encoding="utf-8").replace("      9: other\n", ""), encoding="utf-8")
    with pytest.raises(Exception) as ei:
        Project.load(tmp_path).harmonised()
    assert getattr(ei.value, "code", None) == "harmonise.unmapped"
    out = tmp_path / "h.parquet"
    assert main(["harmonise", "--project", str(tmp_path), "-o", str(out)]) == 2 and not out.exists()
    assert "9 «Другое»" in capsys.readouterr().err
    assert main(["harmonise", "--no-strict", "--project", str(tmp_path), "-o", str(out)]) == 0 and out.exists()
    assert Project.load(tmp_path).harmonise_all(strict=False).unmapped == 39
