"""The example project's panel (wave 1 → the panel wave 4): realistic attrition, returns by
region, attrition weights, the report's panel section (disclosure control, no ids)."""
from __future__ import annotations

import pytest

from diaspora_survey.compare.claims import evaluate_claims, load_claims


@pytest.fixture(scope="module")
def pipe(repo_dir):
    from diaspora_survey.pipeline import Pipeline

    p = Pipeline(repo_dir)
    p.harmonise(write=False)
    p.weight(write=False)
    p.panel(write=False)
    return p


def test_attrition_depends_on_age_and_country(pipe):
    a = pipe.panel_analysis
    t = a.retention_tests.set_index("variable")
    assert t.loc["age_group", "p_value"] < 1e-4 and t.loc["host_region", "p_value"] < 0.05
    assert t.loc["sex", "p_value"] > 0.05
    age = a.retention[a.retention["variable"] == "age_group"].set_index("category")["estimate"]
    assert age["65+"] > age["35-39"] > age["18-24"]                  # older answer more often
    assert 0.3 < a.attrition.response_rate < 0.45


def test_attrition_weights_restore_the_wave1_margins(pipe):
    att = pipe.panel_analysis.attrition
    m = att.margins
    before = (m["retained_base"] - m["baseline"]).abs().max()
    after = (m["retained_adjusted"] - m["baseline"]).abs().max()
    assert before > 0.03 and after < 1e-8                             # re-raked after trimming
    # and exactly without trimming
    from diaspora_survey.weighting.attrition import attrition_weights

    exact = attrition_weights(pipe.panel_analysis.pairs, pipe.project.panel_config.covariates)
    assert (exact.margins["retained_adjusted"] - exact.margins["baseline"]).abs().max() < 1e-8
    d = att.diagnostics
    assert d["n"] == att.n_retained and 1 < d["kish_deff"] < 3 and d["max"] <= 5 * d["mean"] * (1 + 1e-8)


def test_returns_concern_the_cis_and_turkey_more_than_europe(pipe):
    a = pipe.panel_analysis
    s = a.shares_by["host_region"]
    r = s[s["status"] == "returned"].set_index("host_region")["estimate"]
    for region in ("south_caucasus", "central_asia", "turkey"):
        assert r[region] > r["europe"] + 0.1, region
    overall = a.shares.set_index("status")["estimate"]
    assert 0.15 < overall["returned"] < 0.3 and 0.04 < overall["moved_on"] < 0.15
    assert a.region_test["p_value"] < 0.001
    cl = evaluate_claims(pipe.comparison or __import__("pandas").DataFrame(
        columns=["indicator", "category", "adjustment", "group"]),
        [c for c in load_claims(pipe.project.path("codebooks/claims.yaml")) if c.is_panel],
        panel=a).set_index("claim")
    assert cl.loc["returns_cis_above_europe", "verdict"] == "supported"
    assert cl.loc["half_returned", "verdict"] == "not supported"
    # cumulative return: increasing, about a fifth within a year
    c = a.cumulative
    assert c["estimate"].is_monotonic_increasing
    assert 0.12 < c.loc[c["month"] <= 12, "estimate"].iloc[-1] < 0.3


def test_report_panel_section_is_disclosure_controlled_and_has_no_ids(pipe):
    from diaspora_survey.report.content import build_report
    from diaspora_survey.report.document import disclose_report

    rep = disclose_report(build_report(pipe.report_inputs()))
    sec = next(s for s in rep.sections if "Panel" in s.title)
    tables = {b.id: b for b in sec.blocks if hasattr(b, "cells")}
    charts = [b for b in sec.blocks if hasattr(b, "kind")]
    assert {"panel_linking", "panel_checks", "panel_retention", "panel_attrition_weights",
            "panel_attrition_margins", "panel_status", "panel_transitions",
            "panel_cumulative_return"} <= set(tables)
    assert [c.kind for c in charts] == ["returns_by_region"]
    k = pipe.project.report.min_cell_size
    status = tables["panel_status"].values
    shown = status["ret"].notna()
    raw = pipe.panel_analysis.shares_by["host_region"]
    small = set(raw[(raw["status"] == "returned") & (raw["n_cell"] < k)]["host_region"])
    assert "Europe" in set(status.loc[shown, "group"])               # 13 returnees: shown
    assert not any(g.lower().replace(" ", "_") in small for g in status.loc[shown, "group"])
    checks = tables["panel_checks"].values
    assert checks["n"].isna().sum() == 3                              # 2 sexes, 3 years, 2 answers: < 10
    # no respondent ids anywhere in the panel section (the CLI lists them, the report does not)
    examples = {str(e) for i in pipe.panel_analysis.link.issues for e in i.examples}
    text = " ".join(" ".join(r) for t in tables.values() for r in t.cells) + " ".join(
        " ".join(t.footnotes) for t in tables.values())
    for e in examples:
        assert f" {e} " not in f" {text} ".replace(",", " "), e


def test_panel_section_of_the_project_file_is_validated(repo_dir, tmp_path):
    from diaspora_survey.errors import ProjectError
    from diaspora_survey.project import Project

    text = (repo_dir / "diaspora-survey.toml").read_text(encoding="utf-8")
    for old, new, match in (('attrition = "propensity+rake"', 'attrition = "ipw"', "attrition"),
                            ('classes = 0 ', 'clases = 0 ', "unknown key")):
        p = tmp_path / "diaspora-survey.toml"
        p.write_text(text.replace(old, new), encoding="utf-8")
        with pytest.raises(ProjectError, match=match):
            Project.load(p)
    proj = Project.load(repo_dir)
    assert proj.panel_config.waves == ["2022-03", "2023-03"] and proj.wave("2023-03").file.endswith("panel.sav")
    assert "2023-03" not in proj.wave_ids          # a panel-only wave: not in the cross-sectional steps
