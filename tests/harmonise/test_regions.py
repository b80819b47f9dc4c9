"""Host regions: the packaged crosswalk, project regrouping, derivation in harmonise, returned."""
from __future__ import annotations

import pandas as pd
import pytest

from diaspora_survey.errors import CodebookError
from diaspora_survey.harmonise import regions
from diaspora_survey.harmonise.crosswalks import load as load_crosswalks
from diaspora_survey.harmonise.schema import REGION_LEVELS


def test_packaged_table_covers_every_country_of_the_country_crosswalk():
    t = regions.load()
    iso = set(load_crosswalks()["country"].codes)
    assert iso <= set(t.table), sorted(iso - set(t.table))
    assert t.levels == [lv.code for lv in REGION_LEVELS]
    assert t.table["GE"] == t.table["AM"] == t.table["AZ"] == "south_caucasus"
    assert {t.table[c] for c in ("KZ", "KG", "UZ", "TJ", "TM")} == {"central_asia"}
    assert (t.table["TR"], t.table["IL"], t.table["RU"]) == ("turkey", "israel", "russia")
    assert t.table["DE"] == "eu_eea" and t.table["NO"] == "eu_eea"
    assert t.table["RS"] == t.table["ME"] == t.table["GB"] == "other_europe"
    assert t.table["AE"] == "middle_east_gulf" and t.table["TH"] == "south_east_asia"
    assert t.table["US"] == t.table["AR"] == "americas" and t.table["MN"] == "other"


def test_derive_marks_unknown_countries_na():
    t = regions.load()
    s, unknown = t.derive(pd.Series(["GE", "DE", None, "QQ"]))
    assert s.tolist()[:2] == ["south_caucasus", "eu_eea"] and s.isna().tolist() == [False, False, True, True]
    assert unknown == ["QQ"]


def test_project_regrouping(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("# comment\ncountry,host_region,note\nDE,europe,\nRS,europe,\nGE,cis,\nAM,cis,\nAZ,cis,\n",
                 encoding="utf-8")
    t = regions.load([p])
    assert t.table["DE"] == "europe" and t.table["FR"] == "eu_eea" and t.table["GE"] == "cis"
    assert "south_caucasus" not in t.levels                # all its countries moved
    assert t.levels.index("europe") < t.levels.index("eu_eea") < t.levels.index("cis")


@pytest.mark.parametrize("text,match", [
    ("country,region\nDE,europe\n", "columns"),
    ("country,host_region\nDEU,europe\n", "alpha-2"),
    ("country,host_region\nDE,Europe!\n", "region code"),
    ("country,host_region\nDE,europe\nDE,eu\n", "listed twice"),
])
def test_bad_region_csv(tmp_path, text, match):
    p = tmp_path / "r.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(CodebookError, match=match) as e:
        regions.load([p])
    assert str(p) in e.value.where
    with pytest.raises(CodebookError, match="not found"):
        regions.load([tmp_path / "nope.csv"])


def test_harmonised_example_has_host_region_and_returned(repo_dir):
    import diaspora_survey as ds

    proj = ds.Project.load(repo_dir)
    h = proj.harmonise_wave("2023-03")
    d = h.data
    assert "host_region" in d and "returned" in d and "return_date" in d and "panel_id" in d
    assert (d.loc[d["country"] == "RU", "host_region"] == "russia").all()
    assert (d["host_region"] == "europe").any()             # the project's regrouping
    # returned as answered; the two seeded contradictions are reported
    bad = [i for i in h.issues if i.variable == "returned" and i.kind == "inconsistent"]
    assert len(bad) == 1 and bad[0].count == 2
    rd = d["return_date"].dropna()
    assert len(rd) > 100 and rd.dt.day.eq(1).all()
    # respondents living in Russia are kept
    assert int((d["country"] == "RU").sum()) > 100
    # cross-sectional waves: returned derived from the country (nobody lives in Russia)
    w1 = proj.harmonised()
    assert w1["returned"].fillna(False).sum() == 0 and w1["host_region"].notna().mean() > 0.99
