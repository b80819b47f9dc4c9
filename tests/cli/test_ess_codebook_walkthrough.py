"""The ESS round 5 Russia walk-through, as a new user does it (issue 15): ``init`` →
``inspect --variable`` → ``codebook draft`` → ``codebook check`` → the shipped codebook of
docs/examples/ess5-russia → ``harmonise``, on the real file from ../shared/testdata (skipped
without it). The raw file is linked into the temporary project, never copied into the
repository.

Expected figures are hand counts from the file (see tests/harmonise/test_ess_example.py):
72 entrepreneurs (47 employers, 25 own-account workers) among 2,577 respondents with a status,
700 of 2,595 with higher education.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tomllib

import pandas as pd
import pytest

from diaspora_survey.cli import main

from conftest import REPO, SHARED

ESS = SHARED / "testdata" / "spss" / "Bor_Littvay_TIER_Protocol__ESS5RU.sav"
EXAMPLE = REPO / "docs" / "examples" / "ess5-russia"
pytestmark = pytest.mark.skipif(not ESS.exists(), reason="../shared/testdata/spss/…ESS5RU.sav not found")


@pytest.fixture()
def project(tmp_path, capsys):
    proj = tmp_path / "ess"
    assert main(["init", str(proj), "--title", "ESS round 5 Russia"]) == 0
    shutil.copyfile(ESS, proj / "raw" / "ESS5RU.sav")   # a copy: links out of the project are refused
    capsys.readouterr()
    return proj


def add_wave(proj, codebook="codebooks/ess5-ru.yaml"):
    toml = proj / "diaspora-survey.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + f'''
[[waves]]
id = "ESS5-RU"
file = "raw/ESS5RU.sav"
codebook = "{codebook}"
''', encoding="utf-8")


def test_ess_walkthrough_init_draft_codebook_harmonise(project, capsys, monkeypatch):
    proj = project
    raw = proj / "raw" / "ESS5RU.sav"

    # 1. what is in emplrel and emplno (value labels, missing codes)
    assert main(["inspect", str(raw), "--json", "-v", "emplrel", "-v", "emplno"]) == 0
    rep = json.loads(capsys.readouterr().out)
    emplrel = {v["value"]: v for v in rep["variables"][0]["values"]}
    assert emplrel[2]["label"] == "Self-employed" and emplrel[2]["n"] == 117
    assert emplrel[6]["missing"] == "not_applicable"

    # 2. the draft: columns by meaning, employment by rules, loads and reports its choices
    add_wave(proj)
    out = proj / "codebooks" / "ess5-ru.yaml"
    monkeypatch.chdir(proj)
    assert main(["codebook", "draft", "raw/ESS5RU.sav", "-o", "codebooks/ess5-ru.yaml"]) == 0
    cap = capsys.readouterr()
    assert "wrote codebooks/ess5-ru.yaml" in cap.out
    for line in ("id                 ← idno", "sex                ← gndr", "age                ← agea",
                 "education          ← edulvlb", "employment_status  ← mnactic", "country            ← cntry",
                 "employment_status by rules over mnactic, emplrel, emplno"):
        assert line in cap.err, line
    text = out.read_text(encoding="utf-8")
    assert 'wave: "ESS5-RU"\n' in text and 'file: "raw/ESS5RU.sav"' in text   # from the project file

    # 3. codebook check on the draft: it loads; only «Working for own family business» is left
    assert main(["codebook", "check"]) == 1
    cap = capsys.readouterr().out
    assert "unmapped" in cap and "emplrel=3 «Working for own family business»" in cap and "×7" in cap

    # 4. the shipped, checked codebook (its file: line points at the shared copy; here raw/)
    shipped = (EXAMPLE / "codebooks" / "ess5-ru.yaml").read_text(encoding="utf-8")
    out.write_text(re.sub(r"(?m)^file: .*$", "file: raw/ESS5RU.sav", shipped), encoding="utf-8")
    assert main(["codebook", "check"]) == 0
    cap = capsys.readouterr().out
    assert "every value mapped" in cap and "employment_status: rows per rule" in cap
    counts = dict((m.group(2), int(m.group(1).replace(",", ""))) for m in
                  re.finditer(r"^\s+([\d,]+)  (\d+\.|default)", cap, re.M))
    assert (counts["3."], counts["4."], counts["default"]) == (25, 47, 33)

    # 5. harmonise: the entrepreneur share and education as counted by hand
    assert main(["harmonise"]) == 0
    d = pd.read_parquet(proj / "build" / "harmonised.parquet")
    assert len(d) == 2595 and set(d["wave"]) == {"ESS5-RU"}
    vc = d["employment_status"].value_counts()
    assert (vc["employer"], vc["own_account"]) == (47, 25)
    assert d["entrepreneur"].sum() == 72 and d["entrepreneur"].notna().sum() == 2577
    assert 100 * d["entrepreneur"].mean() == pytest.approx(2.794, abs=5e-4)
    ed = d["education"].value_counts()
    assert (ed["specialist"], ed["master"], ed["bachelor"], ed["doctorate"]) == (672, 2, 16, 10)
    assert d["higher_education"].sum() == 700
    assert d["weight_base"].notna().all() and d["weight_base"].sum() == pytest.approx(2595, rel=0.01)


def test_shipped_ess_project_file_points_at_the_shared_data_and_its_codebook():
    """The example's diaspora-survey.toml (relative paths from its folder) resolves to the shared
    ESS file and to the codebook; the codebook's `file:` agrees with it."""
    cfg = tomllib.loads((EXAMPLE / "diaspora-survey.toml").read_text(encoding="utf-8"))
    (w,) = cfg["waves"]
    assert (EXAMPLE / w["file"]).resolve() == ESS.resolve()
    assert (EXAMPLE / w["codebook"]).exists() and (EXAMPLE / cfg["compare"]["claims"]).exists()
    assert cfg["weighting"]["method"] == "none"
    from diaspora_survey.harmonise.codebook import Codebook

    cb = Codebook.load(EXAMPLE / w["codebook"])
    assert cb.wave == w["id"] and (EXAMPLE / cb.file).resolve() == ESS.resolve()


def test_shipped_ess_project_loads_when_weighting_none_is_known():
    """`[weighting] method = "none"` and `[project] sample` are issue 15 items 5 and 7 (another
    branch); until they are merged the project cannot load, and this test says so (skip)."""
    from diaspora_survey.project import Project, ProjectInfo, WeightingConfig

    if "sample" not in ProjectInfo.model_fields or \
            "none" not in str(WeightingConfig.model_fields["method"].annotation):
        pytest.skip('[weighting] method = "none" / [project] sample not in this branch yet')
    proj = Project.load(EXAMPLE)
    h = proj.harmonise_all()
    assert h.data["entrepreneur"].sum() == 72 and h.unmapped == 0
