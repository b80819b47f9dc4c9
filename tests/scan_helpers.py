"""Shared by tests/survey/test_scan*.py and tests/compare: generated stratified cluster data,
stratified element samples (psu=None) and the estimator calls compared across engines."""
from __future__ import annotations

import numpy as np
import pandas as pd

from diaspora_survey.survey.design import SurveyDesign


def generated(seed: int, n: int = 3000) -> pd.DataFrame:
    """Stratified cluster sample: 12 strata, 3-9 PSUs each (one stratum with a single PSU),
    PSU ids repeated across strata (nest=True), fpc, NA in y and in the by-variable."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 12, n)
    npsu = np.array([3, 4, 5, 6, 7, 8, 9, 3, 4, 5, 6, 1])
    psu = rng.integers(0, 1 << 20, n) % npsu[h]
    df = pd.DataFrame({"h": h, "psu": psu, "N": (npsu * 7)[h].astype(float),
                       "w": rng.gamma(2.0, 50.0, n), "y": rng.normal(50, 10, n) + h,
                       "x": rng.uniform(1, 5, n), "g": rng.choice(["a", "b", "c"], n),
                       "k": rng.integers(1, 5, n), "z": rng.choice(["p", "q"], n)})
    df.loc[rng.random(n) < 0.05, "y"] = np.nan
    df.loc[rng.random(n) < 0.03, "g"] = None
    df.loc[rng.random(n) < 0.02, "w"] = 0.0
    return df


def elements(seed: int, n: int = 1500, lonely: bool = False) -> pd.DataFrame:
    """Stratified element sample: 7 strata of unequal size (one with a single row when
    ``lonely``), weights with 3% zeros, NA in y and in the by-variable g, fpc N (population
    size of the stratum), f (sampling fraction) and Nall (one population, no strata)."""
    rng = np.random.default_rng(seed)
    h = rng.choice(np.arange(7), n, p=[.3, .2, .15, .15, .1, .05, .05])
    df = pd.DataFrame({"h": h, "w": rng.gamma(2.0, 50.0, n), "y": rng.normal(50, 10, n) + 3 * h,
                       "x": rng.uniform(1, 5, n), "g": rng.choice(["a", "b", "c"], n),
                       "k": rng.integers(1, 5, n), "z": rng.choice(["p", "q"], n)})
    df.loc[rng.random(n) < 0.05, "y"] = np.nan
    df.loc[rng.random(n) < 0.03, "g"] = None
    df.loc[rng.random(n) < 0.03, "w"] = 0.0
    if lonely:
        df.loc[len(df)] = dict(h=9, w=80.0, y=61.0, x=2.0, g="b", k=2, z="p")
    size = df.groupby("h")["h"].transform("size")
    df["N"] = size * 5.0 + 3
    df["f"] = size / df["N"]
    df["Nall"] = len(df) * 3.0
    return df


def _sub(d, where: dict):
    """ScanDesign.subset takes {column: values}; SurveyDesign the equivalent mask."""
    if isinstance(d, SurveyDesign):
        return d.subset(lambda df: np.logical_and.reduce([df[c].isin(v) for c, v in where.items()]))
    return d.subset(where)


CALLS = {
    "mean": lambda d: d.mean("y", deff=True),
    "mean_by": lambda d: d.mean(["y", "x"], by="g", deff=True),
    "mean_by2": lambda d: d.mean("y", by=["g", "z"], deff="replace"),
    "total_by": lambda d: d.total("x", by="z", deff=True),
    "total_cat": lambda d: d.total("g", deff=True),
    "prop": lambda d: d.proportion("k", by="g", deff=True),
    "prop_str": lambda d: d.proportion(["g", "z"]),
    "ratio": lambda d: d.ratio(["y", "x"], "x", by="z"),
    "domain": lambda d: d.subset("z == 'p' and k >= 2").mean("y", by="g", deff=True),
    "domain_dict": lambda d: _sub(d, {"g": ["a", "b"]}).proportion("z", deff=True),
    "domain_ne": lambda d: d.subset("g != 'a'").total("y", by="k"),
    "df_full": lambda d: d.mean("y", by="g", df="full", level=0.9),
}
