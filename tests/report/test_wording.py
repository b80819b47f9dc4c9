"""Neutral wording from the project (issue 15, item 7) and the report's date."""
from __future__ import annotations

import pandas as pd

import report_helpers as h
from diaspora_survey.project import Project
from diaspora_survey.report import disclose_report
from diaspora_survey.report.collect import _methods, data_date, wording
from diaspora_survey.report.content import build_report


class _Pipe:
    weighting_info = {"method": "none"}


def _project(tmp_path, extra=""):
    (tmp_path / "diaspora-survey.toml").write_text(
        '[project]\ntitle = "ESS"\n' + extra + '\n[[waves]]\nid = "ESS5-RU"\nfile = "raw/x.sav"\n'
        'codebook = "codebooks/x.yaml"\n', encoding="utf-8")
    return Project.load(tmp_path)


def test_defaults_are_neutral(tmp_path):
    proj = _project(tmp_path)
    sample, population = wording(proj)
    assert sample == "Sample" and population == "Russian Federation, general population"
    text = " ".join(t for _, t in _methods(proj, _Pipe()))
    assert "non-probability" not in text and "emigrant" not in text.lower()
    assert "Method: none — the design (base) weights of the file are used as they are" in text


def test_project_wording_reaches_titles_legends_and_methods(tmp_path):
    proj = _project(tmp_path, 'sample = "Emigrant sample"\nsample_design = "online '
                              'non-probability sample"\n[reference]\nlabel = "Russian population"\n')
    sample, population = wording(proj)
    assert (sample, population) == ("Emigrant sample", "Russian population")
    assert "The sample is an online non-probability sample" in " ".join(
        t for _, t in _methods(proj, _Pipe()))
    rep = disclose_report(build_report(h.inputs(sample_label=sample, population_label=population)))
    titles = [c.title for c in rep.charts()]
    assert "Age structure: Emigrant sample vs Russian population" in titles
    edu = next(c for c in rep.charts() if c.id == "education")
    assert edu.options["sample_label"] == "Emigrant sample (weighted)"
    neutral = disclose_report(build_report(h.inputs()))
    assert all("mmigrant" not in c.title for c in neutral.charts())


def test_data_as_of_uses_interview_dates_when_wave_ids_are_not_dates(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    proj = _project(tmp_path)
    d = pd.DataFrame({"interview_date": pd.to_datetime(["2011-02-07", "2011-06-30", None])})
    assert data_date(proj, d) == "2011-06-30"
    other = pd.DataFrame({"interview_start": pd.to_datetime(["2011-03-01", "2011-04-02"])})
    assert data_date(proj, other) == "2011-04-02"
    assert data_date(proj, pd.DataFrame({"x": [1]})) == "undated"


def test_weighting_section_says_method_none():
    rep = build_report(h.inputs(weighting_method="none"))
    sec = next(s for s in rep.sections if s.title == "2. Weighting")
    assert sec.blocks[0].text.startswith("The design weights of the file are used as they are")
