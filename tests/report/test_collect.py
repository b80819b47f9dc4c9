"""Report inputs gathered from a project (report/collect.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from diaspora_survey.harmonise import schema
from diaspora_survey.project import Project
from diaspora_survey.report.collect import age_sex_cells


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
