"""Panel linking (harmonise/panel.py) on hand-built waves: matches, attrition, duplicated keys,
conflicting fixed attributes, unmatched keys, returned against the country; strict mode; a wave
without the link key."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import panel_helpers as ph
from diaspora_survey.errors import PanelError
from diaspora_survey.harmonise.panel import link


@pytest.fixture()
def waves():
    b = ph.baseline()
    return b.drop(columns=["weight"]), ph.followup(b), b["weight"]


def _count(link_, wave, check):
    r = link_.report
    return int(r[(r["wave"] == wave) & (r["check"] == check)]["count"].iloc[0])


def test_clean_panel(waves):
    b, f, w = waves
    L = link({"w1": b, "w2": f}, weights=w)
    assert L.issues == []
    assert _count(L, "w2", "matched to baseline") == len(f) == 36
    assert _count(L, "w2", "baseline respondents not re-interviewed") == len(b) - len(f)
    # one row per respondent per wave, nothing dropped
    assert len(L.data) == len(b) + len(f)
    assert L.data.groupby("wave", observed=True).size().to_dict() == {"w1": 60, "w2": 36}
    assert not L.data.duplicated(["wave", "panel_id"]).any()
    p = L.pairs()
    assert len(p) == len(b) and p["retained"].sum() == len(f)
    assert (p["weight"].to_numpy() == w.to_numpy()).all()
    # status from the follow-up country / returned
    r = p[p["retained"]]
    assert ((r["status"] == "returned") == (r["country_fu"] == "RU")).all()
    moved = (r["country_fu"] != r["country"]) & (r["country_fu"] != "RU")
    assert ((r["status"] == "moved_on") == moved).all()
    assert (r["status"].isin(["stayed", "moved_on", "returned"])).all()
    assert p.loc[~p["retained"], "status"].isna().all()
    tr = L.transitions()
    assert tr["n"].sum() == len(f)


def test_problems_are_counted_with_examples_and_nothing_is_dropped(waves):
    b, f, w = waves
    f = f.copy()
    f.loc[0, "birth_year"] = f.loc[0, "birth_year"] + 3                    # conflicting birth year
    f.loc[1, "sex"] = "male" if f.loc[1, "sex"] == "female" else "female"   # conflicting sex
    f.loc[2, "panel_id"] = "P999"                                          # not in the baseline
    f.loc[3, "returned"] = not bool(f.loc[3, "returned"])                  # against the country
    extra = f.iloc[[4]].assign(resp_id="2000")                            # key entered twice
    new = f.iloc[[5]].assign(resp_id="2001", panel_id=pd.NA)               # a new respondent
    f = pd.concat([f, extra, new], ignore_index=True)
    L = link({"w1": b, "w2": f})
    kinds = {i.kind: i for i in L.issues}
    assert set(kinds) == {"conflict_birth_year", "conflict_sex", "unmatched", "duplicate_key",
                          "returned_inconsistent"}
    assert kinds["conflict_birth_year"].count == 1 and kinds["conflict_birth_year"].examples == [f.loc[0, "panel_id"]]
    assert kinds["conflict_sex"].examples == [f.loc[1, "panel_id"]]
    assert kinds["unmatched"].examples == ["P999"]
    assert kinds["duplicate_key"].count == 2 and kinds["duplicate_key"].examples == [f.loc[4, "panel_id"]]
    assert kinds["returned_inconsistent"].examples == [f.loc[3, "resp_id"]]
    assert _count(L, "w2", "no key (new respondents)") == 1
    assert _count(L, "w2", "matched to baseline") == 36 - 1 - 1   # P999 and the duplicated key
    st = L.data[L.data["wave"] == "w2"]["link_status"].value_counts()
    assert st["duplicate_key"] == 2 and st["unmatched"] == 1 and st["no_key"] == 1 and st["retained"] == 34
    assert len(L.data) == len(b) + len(f)                         # nothing dropped
    # conflicts stay linked and are flagged
    conf = L.data[(L.data["wave"] == "w2") & L.data["conflict"].notna()]
    assert sorted(conf["conflict"]) == ["birth_year", "sex"]
    p = L.pairs()
    assert p["retained"].sum() == 34


@pytest.mark.parametrize("kind", ["duplicate_key", "conflict_sex", "unmatched", "returned_inconsistent"])
def test_strict_makes_every_problem_an_error(waves, kind):
    b, f, _ = waves
    f = f.copy()
    if kind == "duplicate_key":
        f = pd.concat([f, f.iloc[[0]]], ignore_index=True)
    elif kind == "conflict_sex":
        f.loc[0, "sex"] = "male" if f.loc[0, "sex"] == "female" else "female"
    elif kind == "unmatched":
        f.loc[0, "panel_id"] = "X1"
    else:
        f.loc[0, "returned"] = not bool(f.loc[0, "returned"])
    assert link({"w1": b, "w2": f}).issues        # reported without strict
    with pytest.raises(PanelError) as e:
        link({"w1": b, "w2": f}, strict=True, where={"w2": "codebooks/w2.yaml"})
    assert e.value.code == f"panel.{kind}" and e.value.where == "codebooks/w2.yaml"


def test_a_wave_without_matches_is_reported(waves):
    b, f, _ = waves
    f = f.assign(panel_id=[f"Z{i}" for i in range(len(f))])
    L = link({"w1": b, "w2": f})
    assert "no_match" in {i.kind for i in L.issues}
    assert _count(L, "w2", "matched to baseline") == 0
    with pytest.raises(PanelError, match="no key matches"):
        link({"w1": b, "w2": f}, strict=True)


def test_a_wave_without_the_link_key_is_a_clear_error(waves):
    b, f, _ = waves
    with pytest.raises(PanelError) as e:
        link({"w1": b, "w2": f.drop(columns=["panel_id"])}, where={"w2": "codebooks/w2.yaml"})
    assert e.value.code == "panel.no_key" and e.value.where == "codebooks/w2.yaml"
    assert "panel_id" in e.value.message and "codebook" in e.value.hint
    with pytest.raises(PanelError, match="empty in every row"):
        link({"w1": b, "w2": f.assign(panel_id=pd.NA)})
    with pytest.raises(PanelError, match="at least two waves"):
        link({"w1": b})


def test_weights_from_the_weight_step_frame(waves):
    b, f, w = waves
    frame = pd.DataFrame({"wave": "w1", "resp_id": b["resp_id"], "weight": w})
    p = link({"w1": b, "w2": f}, weights=frame).pairs()
    assert np.allclose(p["weight"], w)
    with pytest.raises(PanelError, match="without a weight"):
        link({"w1": b, "w2": f}, weights=frame.iloc[1:])


def test_baseline_respondents_in_russia_get_no_status(waves):
    b, f, _ = waves
    b = b.copy()
    b["country"] = b["country"].cat.add_categories(["RU"])
    b.loc[0, "country"] = "RU"
    L = link({"w1": b, "w2": f})
    assert _count(L, "w1", "living in Russia at the baseline (no status)") == 1
    assert [i.kind for i in L.issues] == ["baseline_in_russia"]
    p = L.pairs()
    assert p.loc[0, "retained"] and pd.isna(p.loc[0, "status"])
