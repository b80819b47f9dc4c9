"""Report inputs gathered from a project (report/collect.py): cell_counts, the unweighted
respondents behind each comparison row (disclosure control), counted for all groups in one
pass and checked against direct counts; the age pyramid's frame."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from diaspora_survey.harmonise import schema
from diaspora_survey.project import Project
from diaspora_survey.report.collect import age_sex_cells, cell_counts


def _data(n=4000, seed=3):
    rng = np.random.default_rng(seed)
    edu = ["basic", "secondary", "vocational", "bachelor", "specialist", "master", "doctorate"]
    emp = ["employee", "employer", "own_account", "unemployed", "student", "retired"]
    df = pd.DataFrame({
        "wave": pd.Categorical(rng.choice(["w1", "w2", "w3"], n)),
        "country": pd.Categorical(rng.choice(["GE", "AM", "DE", "TR", "MN"], n,
                                             p=[.4, .3, .2, .09, .01])),
        "age": pd.array(rng.integers(16, 80, n), dtype="Int64"),
        "education": pd.Categorical(rng.choice(edu + [None], n), categories=edu),
        "employment_status": pd.Categorical(rng.choice(emp, n)),
    })
    df.loc[rng.random(n) < .03, "age"] = pd.NA
    bands = [(18, 24), (25, 29), (30, 34), (35, 39), (40, 44), (45, 49), (50, 54), (55, 59),
             (60, 64), (65, 200)]
    labels = ["18-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55-59", "60-64", "65+"]
    a = df["age"].astype("float").to_numpy()
    ag = np.full(n, None, dtype=object)
    for (lo, hi), lab in zip(bands, labels):
        ag[(a >= lo) & (a <= hi)] = lab
    df["age_group"] = pd.Categorical(ag, categories=labels, ordered=True)
    df["higher_education"] = df["education"].isin(["bachelor", "specialist", "master", "doctorate"]) \
        .astype("boolean").where(df["education"].notna())
    df["entrepreneur"] = df["employment_status"].isin(["employer", "own_account"]).astype("boolean")
    return df


def test_cell_counts_equal_direct_counts():
    df = _data()
    project = SimpleNamespace(reference=SimpleNamespace(min_age=18, max_age=0, population="russia"))
    recs = []
    for gb, groups in (("", ["all"]), ("wave", ["w1", "w2", "w3"]), ("country", ["GE", "MN", "XX"])):
        for g in groups:
            recs += [dict(group_by=gb, group=g, indicator="age_distribution", category="25-29", n=7),
                     dict(group_by=gb, group=g, indicator="share_aged_18_34", category="18-34", n=7),
                     dict(group_by=gb, group=g, indicator="higher_education", category="", n=7),
                     dict(group_by=gb, group=g, indicator="higher_education_by_age",
                          category="25-34", n=7),
                     dict(group_by=gb, group=g, indicator="entrepreneurs_all", category="", n=7),
                     dict(group_by=gb, group=g, indicator="entrepreneurs_employed", category="", n=7),
                     dict(group_by=gb, group=g, indicator="mean_age", category="", n=123),
                     dict(group_by=gb, group=g, indicator="age_distribution",
                          category="goodness_of_fit", n=99)]
    comp = pd.DataFrame(recs)
    got = cell_counts(comp, df, project)
    age = df["age"].astype(float).to_numpy()
    frame = age >= 18
    hed = df["higher_education"]
    ent = df["entrepreneur"].to_numpy(dtype=bool)
    employed = df["employment_status"].isin(["employee", "employer", "own_account"]).to_numpy()

    def binary(yes, base):
        y = int((yes & base).sum())
        return min(y, int(base.sum()) - y)

    for i, r in comp.iterrows():
        dom = frame & ((df[r["group_by"]].astype(str) == r["group"]).to_numpy() if r["group_by"] else True)
        ind = r["indicator"]
        if r["category"] == "goodness_of_fit" or ind == "mean_age":
            want = r["n"]
        elif ind == "age_distribution":
            want = int((dom & (df["age_group"] == r["category"]).to_numpy()).sum())
        elif ind == "share_aged_18_34":
            want = binary((age >= 18) & (age <= 34), dom & ~np.isnan(age))
        elif ind.startswith("higher_education"):
            base = dom & hed.notna().to_numpy()
            if ind == "higher_education_by_age":
                base &= (age >= 25) & (age <= 34)
            want = binary(hed.fillna(False).to_numpy(dtype=bool), base)
        else:
            base = dom & (employed if ind == "entrepreneurs_employed" else True)
            want = binary(ent, base)
        assert got[i] == want, (r.to_dict(), got[i], want)
    assert (got[comp["group"].to_numpy() == "XX"][:6] == 0).all()     # a group without rows


def test_age_pyramid_applies_the_frame(tmp_path):
    """Issue 15, item 8: the pyramid's sample shares are of respondents in the frame."""
    (tmp_path / "diaspora-survey.toml").write_text("[reference]\nmin_age = 30\nmax_age = 54\n",
                                                   encoding="utf-8")
    proj = Project.load(tmp_path)
    rng = np.random.default_rng(5)
    age = rng.integers(18, 80, 2000)
    labels = schema.age_band_labels()
    bands = pd.cut(age, [17, 24, 29, 34, 39, 44, 49, 54, 59, 64, 200], labels=labels)
    df = pd.DataFrame({"age": age, "sex": rng.choice(["male", "female"], 2000),
                       "age_group": pd.Categorical(bands, categories=labels, ordered=True)})
    out = age_sex_cells(df, proj, None)
    assert set(out["age_group"]) == {"30-34", "35-39", "40-44", "45-49", "50-54"}
    assert abs(out["estimate"].sum() - 1) < 1e-12
    assert abs(out["population"].sum() - 1) < 1e-6      # the table's own rounding
    assert out["n"].sum() == int(((age >= 30) & (age <= 54)).sum())


def _direct_sets(df, r, edu_groups):
    """(domain, cell) boolean masks of a comparison row, from the definitions."""
    age = df["age"].astype(float).to_numpy()
    dom = (age >= 18) & ((df[r["group_by"]].astype(str) == r["group"]).to_numpy()
                         if r["group_by"] else True)
    ind, cat = r["indicator"], r["category"]
    hed, ent = df["higher_education"], df["entrepreneur"].astype("boolean")
    employed = df["employment_status"].astype(object).isin(["employee", "employer", "own_account"]).to_numpy()
    if ind == "mean_age":
        d = dom & ~np.isnan(age)
        return d, d
    if ind == "age_distribution":
        d = dom & df["age_group"].notna().to_numpy()
        return d, dom & (df["age_group"].astype(object) == cat).to_numpy()
    if ind == "education_distribution":
        known = df["education"].astype(object).isin(set().union(*edu_groups.values())).to_numpy()
        return dom & df["education"].notna().to_numpy() & known, \
            dom & df["education"].astype(object).isin(edu_groups[cat]).to_numpy()
    if ind == "share_aged_18_34":
        base = dom & ~np.isnan(age)
        return base, base & (age >= 18) & (age <= 34)
    if ind.startswith("higher_education"):
        base = dom & hed.notna().to_numpy()
        if ind == "higher_education_by_age":
            base &= (age >= 25) & (age <= 34)
        return base, base & hed.fillna(False).to_numpy(dtype=bool)
    base = dom & ent.notna().to_numpy() & (employed if ind == "entrepreneurs_employed" else True)
    return base, base & ent.fillna(False).to_numpy(dtype=bool)


def test_cell_members_equal_direct_sets():
    """members=True: per row the positions behind the domain and the cell equal the
    respondent-level definitions, for categorical and plain text groupings; a row whose n does
    not match its domain gets none."""
    from diaspora_survey.report.collect import _education_groups

    edu_groups = _education_groups("russia")
    assert edu_groups
    project = SimpleNamespace(reference=SimpleNamespace(min_age=18, max_age=0, population="russia"))
    for text_groups in (False, True):
        df = _data(seed=11)
        if text_groups:     # object columns take the non-categorical paths
            for c in ("wave", "country", "employment_status", "education", "age_group"):
                df[c] = df[c].astype(object)
        recs = []
        for gb, groups in (("", [""]), ("wave", ["w1", "w3"]), ("country", ["MN", "XX"])):
            for g in groups:
                for ind, cat in (("age_distribution", "25-29"), ("age_distribution", "65+"),
                                 ("share_aged_18_34", "18-34"), ("higher_education", ""),
                                 ("higher_education_by_age", "25-34"), ("entrepreneurs_all", ""),
                                 ("entrepreneurs_employed", ""), ("mean_age", ""),
                                 *(("education_distribution", c) for c in edu_groups)):
                    recs.append(dict(group_by=gb, group=g, indicator=ind, category=cat))
        comp = pd.DataFrame(recs)
        sets = [_direct_sets(df, r, edu_groups) for _, r in comp.iterrows()]
        comp["n"] = [int(d.sum()) for d, _ in sets]
        comp.loc[3, "n"] += 1                       # n not matched: no positions
        counts, doms, cells = cell_counts(comp, df, project, members=True)
        for i, (d, c) in enumerate(sets):
            if i == 3:
                assert doms[i] is None and cells[i] is None
                continue
            assert np.array_equal(doms[i], np.flatnonzero(d)), comp.iloc[i].to_dict()
            assert doms[i].dtype == np.int64
            assert np.array_equal(cells[i], np.flatnonzero(c)), comp.iloc[i].to_dict()
            ind = comp.loc[i, "indicator"]
            if ind in ("age_distribution", "education_distribution"):
                assert counts[i] == c.sum()
            elif ind != "mean_age":
                assert counts[i] == min(c.sum(), d.sum() - c.sum())
        assert len(doms[comp.index[comp["group"] == "XX"][0]]) == 0      # a group without rows
