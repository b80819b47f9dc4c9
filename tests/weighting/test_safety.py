"""Weighting on hostile or degenerate input (issue 11, items 11-13): errors or reported
decisions, never a silent wrong result or a misleading message."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import WeightingError
from diaspora_survey.weighting import diagnostics, rake
from diaspora_survey.weighting.waves import weight_waves

TARGETS = {"sex": {"female": 0.5, "male": 0.5}}


def _data(n=40, **cols):
    df = pd.DataFrame({"wave": pd.Categorical(["w1"] * n), "sex": ["female", "male"] * (n // 2)})
    for k, v in cols.items():
        df[k] = v
    return df


def test_tiny_and_normal_base_weights_are_refused():
    """1e-320 beside 1: every ratio loses its precision (all weights became 2.5015 before)."""
    w = np.ones(40)
    w[3] = 1e-320
    with pytest.raises(WeightingError, match="times the smallest"):
        rake(_data(), TARGETS, w)


def test_non_numeric_base_weight_column_is_refused():
    with pytest.raises(WeightingError, match="not numeric"):
        weight_waves(_data(), TARGETS, base_weight="sex")


def test_no_rows_is_an_error():
    with pytest.raises(WeightingError, match="0 rows"):
        weight_waves(_data().iloc[:0], TARGETS)


def test_huge_weights_have_finite_diagnostics_and_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = diagnostics(pd.Series([1e300, 2e300, 1e300, 4e300]))
    ref = diagnostics(pd.Series([1.0, 2.0, 1.0, 4.0]))
    assert d["n_eff"] == pytest.approx(ref["n_eff"]) and d["kish_deff"] == pytest.approx(ref["kish_deff"])
    assert d["cv"] == pytest.approx(ref["cv"])
    # hand calculation: n_eff = (sum w)^2 / sum w^2 = 64 / 22
    assert ref["n_eff"] == pytest.approx(64 / 22)


def test_diagnostics_of_text_is_the_packages_error():
    with pytest.raises(WeightingError):
        diagnostics("abc")


def test_a_bad_weight_is_named_by_its_row_in_the_file(tmp_path):
    """Not by its position in the stacked data (CSV data row 3 was reported as 'row 1990')."""
    from diaspora_survey.harmonise.apply import stack

    class H:   # the attributes stack() reads
        def __init__(self, wave, data, excl):
            self.wave, self.data, self.exclusions = wave, data, excl
            self.rows_read = len(data) + len(excl)

    w1 = pd.DataFrame({"sex": ["female", "male"] * 5, "weight_base": 1.0})
    w2 = pd.DataFrame({"sex": ["female", "male"] * 5, "weight_base": 1.0}, index=range(1, 11))
    w2.loc[4, "weight_base"] = np.nan                        # data row 5 of wave w2's file
    def excl(wave, rows):
        return pd.DataFrame({"wave": pd.Series([wave] * len(rows), dtype="string"),
                             "row": pd.array(rows, dtype="Int64"),
                             "resp_id": pd.Series(["x"] * len(rows), dtype="string"),
                             "reason": pd.Series(["r"] * len(rows), dtype="string"),
                             "detail": pd.Series([""] * len(rows), dtype="string")})

    data, _ = stack([H("w1", w1, excl("w1", [])), H("w2", w2, excl("w2", [0]))])  # w2: row 1 excluded
    with pytest.raises(WeightingError, match="data row 5 of wave w2's file"):
        weight_waves(data, TARGETS)


def test_targets_for_an_absent_wave(tmp_path):
    from diaspora_survey.weighting import load_targets

    p = tmp_path / "t.yaml"
    p.write_text("margins:\n  sex: {female: 0.5, male: 0.5}\nwaves:\n  w9:\n    restrict: {sex: [female]}\n")
    with pytest.raises(WeightingError, match="'w9'"):
        weight_waves(_data(), load_targets(p))


def test_targets_matching_no_respondent_say_so():
    df = _data()
    with pytest.raises(WeightingError, match="no respondent in wave w1 matches"):
        weight_waves(df, {"sex": {"F": 0.5, "M": 0.5}}, unmatched="keep_base")
