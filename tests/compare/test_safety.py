"""compare and claims on hostile input (issue 11, items 11-12)."""
from __future__ import annotations

import pandas as pd
import pytest

from diaspora_survey.compare.claims import load_claims, parse_claims
from diaspora_survey.compare.comparison import compare
from diaspora_survey.errors import DiasporaSurveyError


def _claim(**kw):
    c = {"id": "c", "statement": "s", "indicator": "mean_age", "metric": "difference", "op": "<=",
         "threshold": -8}
    c.update(kw)
    return {"claims": [c]}


@pytest.mark.parametrize("thr", [float("nan"), float("inf"), "x", True])
def test_claim_thresholds_must_be_finite_numbers(thr):
    with pytest.raises(DiasporaSurveyError, match="threshold"):
        parse_claims(_claim(threshold=thr))


def test_compare_needs_a_design():
    for bad in (pd.DataFrame({"age": [30]}), "abc", None):
        with pytest.raises(DiasporaSurveyError, match="SurveyDesign"):
            compare(bad, "russia")


def test_load_claims_wrong_type_and_duplicate_keys(tmp_path):
    with pytest.raises(DiasporaSurveyError):
        load_claims(None)
    p = tmp_path / "claims.yaml"
    p.write_text("claims: []\nclaims: [1]\n")
    with pytest.raises(DiasporaSurveyError, match="appears twice"):
        load_claims(p)


def test_reference_csv_with_a_huge_field(tmp_path):
    from diaspora_survey.compare.reference import read_csv_tables

    p = tmp_path / "t.csv"
    p.write_text("id,kind,category,value\nx," + "y" * 200_000 + ",a,1\n")
    with pytest.raises(DiasporaSurveyError):
        read_csv_tables(p)
