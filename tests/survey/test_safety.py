"""Estimators on hostile input (issue 11, items 9, 11, 12): identifiers refused quickly, a
zero denominator is an error (not inf with SE 0), wrong argument types are the package's errors."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import DiasporaSurveyError, EstimationError
from diaspora_survey.survey import SurveyDesign


@pytest.fixture
def design():
    n = 5000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"resp_id": [f"R{i:05d}" for i in range(n)], "age": rng.integers(18, 80, n),
                       "sex": rng.choice(["female", "male"], n), "zero": 0.0, "w": 1.0})
    return SurveyDesign(df, weights="w")


def test_mean_of_an_identifier_is_refused_quickly(design):
    t0 = time.perf_counter()
    with pytest.raises(EstimationError) as e:
        design.mean("resp_id")
    assert e.value.code == "estimate.identifier" and time.perf_counter() - t0 < 2
    with pytest.raises(EstimationError):
        design.proportion("resp_id")


def test_categories_below_the_limit_still_work(design):
    res = design.proportion("sex")
    assert res["estimate"].sum() == pytest.approx(1.0)


def test_ratio_with_a_zero_denominator_is_an_error(design):
    with pytest.raises(EstimationError) as e:
        design.ratio("age", "zero")
    assert e.value.code == "estimate.zero_denominator"


def test_ratio_still_matches_the_hand_calculation(design):
    """R: svyratio(~age, ~w, design) = sum(w * age) / sum(w * w) with w = 1: the mean age."""
    r = design.ratio("age", "w")
    assert r["estimate"].iloc[0] == pytest.approx(design._data["age"].mean())


@pytest.mark.parametrize("call", [
    lambda d: d.quantile("age", "median"), lambda d: d.quantile("age", None),
    lambda d: d.mean(123), lambda d: d.mean("age", by=5),
])
def test_wrong_argument_types_are_the_packages_errors(design, call):
    with pytest.raises(DiasporaSurveyError):
        call(design)
