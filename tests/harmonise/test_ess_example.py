"""The ESS round 5 Russia worked example (docs/examples/ess5-russia): its codebook on the real
file from ../shared/testdata (skipped without it; the data are never copied into the repository).

Hand counts from the file (pyreadstat, user_missing=True): mnactic == 1 & emplrel == 2 & emplno
== 0 → 25 own-account workers; emplno in 1..172 → 47 employers; 18 rows without a status
(mnactic 88/99: 2; paid work with emplrel 8: 4; self-employed with emplno 88888: 12), so the
entrepreneur share is 72 / 2,577 = 2.794 %.
"""
from __future__ import annotations

import pytest

import diaspora_survey as ds

from conftest import REPO, SHARED

EXAMPLE = REPO / "docs" / "examples" / "ess5-russia"
ESS = SHARED / "testdata" / "spss" / "Bor_Littvay_TIER_Protocol__ESS5RU.sav"
needs_ess = pytest.mark.skipif(not ESS.exists(), reason="../shared/testdata/spss/…ESS5RU.sav not found")


def test_example_files_exist_and_codebook_loads_without_the_data():
    cb = ds.Codebook.load(EXAMPLE / "codebooks" / "ess5-ru.yaml")
    assert cb.wave == "ESS5-RU" and cb.id == "idno" and cb.design.weight == "dweight"
    assert cb.variables["employment_status"].sources == ["mnactic", "emplrel", "emplno"]
    assert (EXAMPLE / "README.md").exists() and (EXAMPLE / "diaspora-survey.toml").exists()
    assert not list(EXAMPLE.rglob("*.sav")), "never copy the ESS data into the repository"


@pytest.fixture(scope="module")
def harmonised():
    if not ESS.exists():
        pytest.skip("ESS5RU.sav not found in ../shared/testdata")
    return ds.harmonise(ds.read_wave(ESS), ds.Codebook.load(EXAMPLE / "codebooks" / "ess5-ru.yaml"))


@needs_ess
def test_ess_codebook_maps_every_value(harmonised):
    h = harmonised
    assert not [i for i in h.issues if i.kind in ("unmapped", "unparsed")]
    assert len(h.data) == 2595 and h.exclusions.empty
    s = h.summary.set_index("variable")
    assert s.loc["employment_status", "n"] == 2577 and s.loc["employment_status", "missing"] == 18
    assert s.loc["age", "missing"] == 1            # agea 999 «Not available», user-missing


@needs_ess
def test_ess_employment_status_from_three_columns(harmonised):
    d = harmonised.data
    vc = d["employment_status"].value_counts()
    assert (vc["employer"], vc["own_account"], vc["employee"], vc["retired"], vc["student"]) == (47, 25, 1240, 738, 210)
    assert d["entrepreneur"].sum() == 72 and d["entrepreneur"].notna().sum() == 2577
    assert d["entrepreneur"].mean() == pytest.approx(72 / 2577, rel=1e-12)
    # emplrel alone would count every self-employed (117, i.e. 5 % of those answering): the
    # rules keep only those whose main activity is paid work
    raw = ds.read_wave(ESS).data
    assert (raw["emplrel"] == 2).sum() == 117


@needs_ess
def test_ess_entrepreneur_share_with_design_weight(harmonised):
    """R 4.2, survey 4.1.1, on the harmonised rows with a status (written to CSV: e, weight_base):
    des <- svydesign(ids=~1, weights=~weight_base, data=d); r <- svyciprop(~e, des, method="logit")
    c(coef(r), confint(r)) * 100  →  2.63614 2.03164 3.41423; with weights=~one (unweighted)
    →  2.79395 2.22304 3.50621."""
    d = harmonised.data
    d = d[d["entrepreneur"].notna()].assign(e=lambda x: x["entrepreneur"].astype(float))
    for weights, want in (("one", (2.79395, 2.22304, 3.50621)), ("weight_base", (2.63614, 2.03164, 3.41423))):
        r = ds.SurveyDesign(d.assign(one=1.0), weights=weights).ciprop("e", method="logit").iloc[0]
        got = (100 * r.estimate, 100 * r.ci_low, 100 * r.ci_high)
        assert got == pytest.approx(want, rel=2e-6), weights


@needs_ess
def test_ess_education_and_age(harmonised):
    d = harmonised.data
    vc = d["education"].value_counts()
    assert (vc["specialist"], vc["master"], vc["bachelor"], vc["doctorate"]) == (672, 2, 16, 10)
    assert (vc["secondary_vocational"], vc["secondary_general"], vc["basic_general"], vc["primary_or_less"]) == (920, 653, 206, 116)
    assert d["higher_education"].sum() == 700 and d["higher_education"].notna().all()
    assert d["age"].min() == 15 and d["age"].max() == 94 and d["age"].isna().sum() == 1
    assert set(d["country"].dropna()) == {"RU"} and d["sex"].value_counts()["female"] == 1531


@needs_ess
def test_ess_interview_month(harmonised):
    """inwyye/inwmme: fieldwork from December 2010 (58 interviews) to May 2011 (22)."""
    d = harmonised.data["interview_date"]
    assert str(d.dtype) == "datetime64[ns]" and d.notna().all()
    vc = d.dt.strftime("%Y-%m").value_counts().sort_index()
    assert vc.to_dict() == {"2010-12": 58, "2011-01": 869, "2011-02": 652, "2011-03": 382, "2011-04": 612,
                            "2011-05": 22}
