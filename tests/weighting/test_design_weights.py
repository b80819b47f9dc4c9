"""``method = "none"``: the base (design) weights are the final weights, with diagnostics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import WeightingError
from diaspora_survey.weighting import weight_waves


@pytest.fixture
def df():
    rng = np.random.default_rng(3)
    n = 200
    d = pd.DataFrame({"wave": pd.Categorical(rng.choice(["a", "b"], n), categories=["a", "b"]),
                      "sex": rng.choice(["female", "male"], n),
                      "weight_base": rng.uniform(0.5, 2.0, n)})
    return d


def test_none_keeps_the_base_weights_and_reports_kish(df):
    res = weight_waves(df, None, method="none")
    np.testing.assert_array_equal(res.data["weight"].to_numpy(), df["weight_base"].to_numpy())
    for wave, r in res.results.items():
        w = df.loc[df["wave"] == wave, "weight_base"].to_numpy()
        # Kish effective n by hand: (sum w)^2 / sum w^2
        assert r.diagnostics["n_eff"] == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-12)
        assert r.diagnostics.iterations == 0 and r.diagnostics.converged
    assert any("base weights are the final weights" in d for d in res.decisions)
    # pooled weights: proportional pooling rescales each wave to its respondent count
    for wave in ("a", "b"):
        m = (df["wave"] == wave).to_numpy()
        assert res.data["weight_pooled"][m].sum() == pytest.approx(m.sum())


def test_none_without_base_weight_is_equal_weights_and_says_so(df):
    res = weight_waves(df.drop(columns="weight_base"), None, method="none")
    assert (res.data["weight"] == 1).all()
    assert any("weight 1" in d for d in res.decisions)


def test_none_with_targets_shows_the_gap_but_fits_nothing(df):
    res = weight_waves(df, {"sex": {"female": 0.5, "male": 0.5}}, method="none")
    m = res.results["a"].diagnostics.margins
    a = df[df["wave"] == "a"]
    share = a.loc[a["sex"] == "female", "weight_base"].sum() / a["weight_base"].sum()
    row = m[m["category"] == "female"].iloc[0]
    assert row["weighted_share"] == pytest.approx(share, rel=1e-12)
    assert row["target_share"] == pytest.approx(0.5)
    np.testing.assert_array_equal(res.data["weight"].to_numpy(), df["weight_base"].to_numpy())


def test_none_rejects_options_it_would_ignore(df):
    with pytest.raises(WeightingError, match="bounds"):
        weight_waves(df, None, method="none", bounds=(0.5, 2))
    with pytest.raises(WeightingError, match="no targets"):
        weight_waves(df, None, method="rake")


def test_project_method_none_without_targets_file(tmp_path, df):
    from diaspora_survey.weighting import weight_project

    (tmp_path / "diaspora-survey.toml").write_text('[weighting]\nmethod = "none"\n', encoding="utf-8")
    from diaspora_survey.project import Project

    res = weight_project(Project.load(tmp_path), df)
    np.testing.assert_array_equal(res.data["weight"].to_numpy(), df["weight_base"].to_numpy())
    assert res.method == "none"
    # the default trim_upper = 5 does not apply: the design weights stay as they are
    assert not any("trim" in d for d in res.decisions)


def test_compare_accepts_weights_from_the_file(df):
    """Data with only the codebook's design weight (weight_base, no weighting step): the
    comparison designs use it as it is."""
    from diaspora_survey.compare.comparison import project_designs

    pooled, within = project_designs(df)
    np.testing.assert_array_equal(np.asarray(pooled.weights), df["weight_base"].to_numpy())
    with pytest.raises(Exception, match="design weight"):
        project_designs(df.drop(columns="weight_base"))
