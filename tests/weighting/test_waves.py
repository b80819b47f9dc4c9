"""Per-wave and pooled weighting (waves.py) and the ``diaspora-survey weight`` command."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.cli import main
from diaspora_survey.errors import WeightingError
from diaspora_survey.weighting import load_targets, weight_waves

COUNTRY = {"GE": 0.4, "AM": 0.3, "DE": 0.2, "CY": 0.1}
SEX = {"female": 0.45, "male": 0.55}


@pytest.fixture
def waves_df():
    rng = np.random.default_rng(7)
    parts = []
    for wave, n, countries in (("w1", 300, ["GE", "AM", "DE", "CY"]), ("w2", 120, ["DE", "CY"])):
        parts.append(pd.DataFrame({
            "wave": wave, "sex": rng.choice(["female", "male"], n, p=[0.6, 0.4]),
            "country": rng.choice(countries, n), "age": rng.integers(18, 70, n)}))
    df = pd.concat(parts, ignore_index=True)
    df["wave"] = pd.Categorical(df["wave"], categories=["w1", "w2"])
    return df


def test_wave_outside_frame_is_an_error_naming_the_wave(waves_df):
    with pytest.raises(WeightingError) as e:
        weight_waves(waves_df, {"country": COUNTRY, "sex": SEX})
    assert "country=GE has no respondents in wave w2: drop it or merge it" in str(e.value)


def test_restricted_targets_and_pooling(tmp_path, waves_df):
    (tmp_path / "t.yaml").write_text(
        "margins:\n  country: {GE: 0.4, AM: 0.3, DE: 0.2, CY: 0.1}\n  sex: {female: 0.45, male: 0.55}\n"
        "waves:\n  w2:\n    restrict: {country: [DE, CY]}\n", encoding="utf-8")
    tf = load_targets(tmp_path / "t.yaml")
    for pooling in ("proportional", "equal"):
        res = weight_waves(waves_df, tf, pooling=pooling)
        d = res.data
        assert {"weight_base", "weight_raked", "weight", "weight_pooled"} <= set(d.columns)
        w2 = d[d["wave"] == "w2"]
        shares = w2.groupby("country", observed=True)["weight"].sum() / w2["weight"].sum()
        assert shares["DE"] == pytest.approx(2 / 3, abs=1e-8)      # renormalised 0.2 / 0.3
        for wave, n in (("w1", 300), ("w2", 120)):
            sub = d[d["wave"] == wave]
            assert sub["weight"].sum() == pytest.approx(n, rel=1e-9)   # shares: wave total kept
            expect = n if pooling == "proportional" else len(d) / 2
            assert sub["weight_pooled"].sum() == pytest.approx(expect, rel=1e-9)
        assert d["weight_pooled"].sum() == pytest.approx(len(d), rel=1e-12)
        assert any("w2" in x and "restricted" in x for x in res.decisions)
        assert set(res.diagnostics) == {"w1", "w2"}
    # trimming per wave, relative to the wave's mean weight, keeps each wave's total
    res = weight_waves(waves_df, tf, trim_upper=1.5, trim_lower=0.5)
    for wave in ("w1", "w2"):
        sub = res.data[res.data["wave"] == wave]
        assert sub["weight_trimmed"].max() <= 1.5 * sub["weight_raked"].mean() * (1 + 1e-9)
        assert sub["weight"].sum() == pytest.approx(sub["weight_raked"].sum(), rel=1e-12)
    summ = res.summary()
    assert list(summ["wave"]) == ["w1", "w2"] and summ["converged"].all()


def test_per_wave_targets_dict(waves_df):
    t = {"w1": {"country": COUNTRY}, "w2": {"country": {"DE": 0.5, "CY": 0.5}}}
    res = weight_waves(waves_df, t, method="poststratify")
    w2 = res.data[res.data["wave"] == "w2"]
    assert (w2.groupby("country", observed=True)["weight"].sum() / w2["weight"].sum())["CY"] == \
        pytest.approx(0.5, abs=1e-12)


def test_example_targets_file_is_illustrative(repo_dir):
    tf = load_targets(repo_dir / "codebooks" / "targets.yaml")
    assert tf.illustrative
    assert "ILLUSTRATIVE" in (repo_dir / "codebooks" / "targets.yaml").read_text(encoding="utf-8")
    assert {m.name for m in tf.targets} == {"country", "sex:age_group"}
    assert set(tf.waves) == {"2022-03", "2022-11", "2024-05"}


@pytest.fixture(scope="module")
def harmonised(repo_dir, tmp_path_factory):
    from diaspora_survey.project import Project

    if not (repo_dir / "diaspora-survey.toml").exists():
        pytest.skip("example project file not present")
    data = Project.load(repo_dir).harmonised()
    p = tmp_path_factory.mktemp("h") / "harmonised.parquet"
    data.to_parquet(p, index=False)
    return p


def test_cli_weight_example_project(repo_dir, harmonised, tmp_path, capsys):
    out = tmp_path / "weighted.parquet"
    rc = main(["weight", "--project", str(repo_dir), "--input", str(harmonised), "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "2024-05" in captured.out and "n_eff" in captured.out and "ILLUSTRATIVE" in captured.out
    d = pd.read_parquet(out)
    assert len(d) == len(pd.read_parquet(harmonised))
    for col in ("weight_base", "weight_raked", "weight_trimmed", "weight", "weight_pooled"):
        assert d[col].notna().all() and (d[col] > 0).all()
    assert d["weight_pooled"].sum() == pytest.approx(len(d), rel=1e-9)
    # wave 2024-05 is weighted to EU countries only
    eu = d[d["wave"] == "2024-05"]
    assert set(eu["country"].dropna().astype(str)) <= {"DE", "CY", "PL", "FR", "NL", "ES", "PT", "CZ",
                                                       "FI", "LV", "LT", "EE", "BG", "IT", "AT", "SE",
                                                       "BE", "IE", "GR"}


def test_cli_weight_bad_targets(repo_dir, harmonised, tmp_path, capsys):
    bad = tmp_path / "t.yaml"
    bad.write_text("margins:\n  country: {GE: 0.5, AM: 0.4}\n", encoding="utf-8")
    out = tmp_path / "weighted.parquet"
    rc = main(["weight", "--project", str(repo_dir), "--input", str(harmonised), "--targets", str(bad),
               "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "sum to 0.9, not 1" in err and "Traceback" not in err
    assert not out.exists()          # nothing half-written


# ---------------------------------------------------------------- audit additions (issue 5)
def test_options_that_do_not_apply_are_rejected(waves_df):
    t = {"sex": SEX}
    with pytest.raises(WeightingError, match="bounds= do not apply"):
        weight_waves(waves_df, t, method="poststratify", bounds=(0.5, 2))
    with pytest.raises(WeightingError, match="applies only to method='calibrate'"):
        weight_waves(waves_df, t, calibration="raking")
    with pytest.raises(WeightingError, match="not available with method='calibrate'"):
        weight_waves(waves_df, t, method="calibrate", unmatched="keep_base")
    with pytest.raises(WeightingError, match="need method='calibrate'"):
        weight_waves(waves_df, {"sex": SEX, "age": 1000.0})
    with pytest.raises(WeightingError, match="unknown empty 'collapse'"):
        weight_waves(waves_df, t, empty="collapse")
    with pytest.raises(WeightingError, match="base weight column 'bw' not in the data"):
        weight_waves(waves_df, t, base_weight="bw")


def test_waves_calibrate_with_numeric_totals_and_bounds(waves_df):
    d = waves_df.assign(age=waves_df["age"].astype(float))
    t = {"w1": {"sex": {"female": 450, "male": 550}, "age": 1000 * 40.0},
         "w2": {"sex": {"female": 45, "male": 55}, "age": 100 * 40.0}}
    res = weight_waves(d, t, method="calibrate", calibration="logit", bounds=(0.5, 8))
    for wave, n_pop in (("w1", 1000), ("w2", 100)):
        sub = res.data[res.data["wave"] == wave]
        assert sub["weight"].sum() == pytest.approx(n_pop, rel=1e-9)
        assert (sub["weight"] * sub["age"]).sum() / n_pop == pytest.approx(40.0, rel=1e-9)
        assert (sub["weight_calibrated"] / sub["weight_base"]).between(0.5, 8).all()
    assert res.results["w1"].diagnostics.extra["method"] == "logit"


def test_waves_poststratify_empty_default_collapses_or_errors(waves_df):
    t = {"w1": {"country": COUNTRY}, "w2": {"country": {"DE": 0.5, "CY": 0.4, "NO": 0.1}}}
    res = weight_waves(waves_df, t, method="poststratify")
    assert res.results["w2"].diagnostics.extra["collapsed"] == [["CY", "NO"]]
    assert any("collapsed" in x and "w2" in x for x in res.decisions)
    with pytest.raises(WeightingError, match="country=NO has no respondents in wave w2"):
        weight_waves(waves_df, t, method="poststratify", empty="error")


def _project(tmp_path, weighting: str):
    from diaspora_survey.project import Project

    (tmp_path / "diaspora-survey.toml").write_text("[weighting]\n" + weighting, encoding="utf-8")
    return Project.load(tmp_path)


def test_project_inline_margins_and_options(tmp_path, waves_df):
    from diaspora_survey.weighting import weight_project

    d = waves_df.assign(bw=np.where(waves_df["sex"] == "female", 1.0, 2.0))
    proj = _project(tmp_path, 'method = "rake"\nbase_weight = "bw"\nbounds = [0.5, 2.0]\n'
                              'pooling = "equal"\ntrim_upper = 3.0\n'
                              '[weighting.margins]\nsex = {female = 0.45, male = 0.55}\n')
    res = weight_project(proj, d)
    assert res.pooling == "equal"
    for wave in ("w1", "w2"):
        r = res.results[wave]
        assert r.diagnostics.extra["bounds"] == (0.5, 2.0)
        base = r.steps["weight_base"]
        np.testing.assert_array_equal(base.to_numpy(), d.loc[base.index, "bw"].to_numpy())
        sub = res.data[res.data["wave"] == wave]
        assert sub["weight_pooled"].sum() == pytest.approx(len(d) / 2, rel=1e-12)
    assert any("base weights from column bw" in x for x in res.decisions)
    proj = _project(tmp_path, 'targets = "t.yaml"\n[weighting.margins]\nsex = {female = 0.45, male = 0.55}\n')
    with pytest.raises(WeightingError, match="not both"):
        weight_project(proj, d)
    proj = _project(tmp_path, 'method = "poststratify"\nbounds = [0.5, 2.0]\n'
                              '[weighting.margins]\nsex = {female = 0.45, male = 0.55}\n')
    with pytest.raises(WeightingError, match="do not apply"):
        weight_project(proj, d)
    proj = _project(tmp_path, 'method = "calibrate"\ncalibration = "raking"\n'
                              '[weighting.margins]\nsex = {female = 0.45, male = 0.55}\n')
    res = weight_project(proj, d.assign(sex=d["sex"].astype(str)))
    assert res.results["w1"].diagnostics.extra["method"] == "raking"


def test_cli_weight_errors_exit_2_without_traceback(repo_dir, harmonised, tmp_path, capsys):
    out = tmp_path / "weighted.parquet"
    base = ["weight", "--project", str(repo_dir), "--input", str(harmonised), "--output", str(out)]
    cases = [
        (["--targets", str(tmp_path / "missing.yaml")], "targets file not found"),
        (["--quiet", "--details"], "contradict"),
    ]
    tgt = tmp_path / "t.yaml"
    tgt.write_text("margins:\n  country: {GE: 0.5, AM: 0.3, NO: 0.2}\n", encoding="utf-8")
    cases.append((["--targets", str(tgt)], "has no respondents in wave 2022-03: drop it or merge it"))
    for extra, text in cases:
        rc = main(base + extra)
        err = capsys.readouterr().err
        assert rc == 2, (extra, err)
        assert text in err and "Traceback" not in err
        assert not out.exists()


def test_cli_weight_details(repo_dir, harmonised, tmp_path, capsys):
    out = tmp_path / "weighted.parquet"
    rc = main(["weight", "--project", str(repo_dir), "--input", str(harmonised), "--output", str(out),
               "--details"])
    text = capsys.readouterr().out
    assert rc == 0
    for s in ("p1", "p99", "max/min", "Margins, wave 2022-11", "Other covariates, wave 2024-05",
              "standardised mean difference", "sex:age_group"):
        assert s in text, s


def test_numeric_calibration_targets_from_targets_file_and_project(tmp_path, waves_df):
    """targets.yaml `totals:` (a population mean or total, common or per wave) and the
    project's [weighting.totals] reach calibrate; with rake they are an error."""
    from diaspora_survey.weighting import load_targets, weight_project

    d = waves_df.assign(age=waves_df["age"].astype(float), sex=waves_df["sex"].astype(str))
    f = tmp_path / "t.yaml"
    f.write_text("margins:\n  sex: {female: 0.5, male: 0.5}\ntotals:\n  age: {mean: 40}\n"
                 "waves:\n  w2:\n    totals: {age: 5040.0}\n", encoding="utf-8")
    tf = load_targets(f)
    res = weight_waves(d, tf, method="calibrate")
    for wave, mean in (("w1", 40.0), ("w2", 5040.0 / 120)):
        sub = res.data[res.data["wave"] == wave]
        w = sub["weight"]
        assert (w * sub["age"]).sum() / w.sum() == pytest.approx(mean, rel=1e-9)
        assert w[sub["sex"] == "female"].sum() / w.sum() == pytest.approx(0.5, rel=1e-9)
    assert any("mean of age (40)" in x for x in res.decisions)
    with pytest.raises(WeightingError, match="need method"):
        weight_waves(d, tf, method="rake")
    f.write_text("margins:\n  sex: {female: 0.5, male: 0.5}\ntotals:\n  age: {median: 40}\n", encoding="utf-8")
    with pytest.raises(WeightingError, match="mean: value"):
        load_targets(f)

    proj = _project(tmp_path, 'method = "calibrate"\n[weighting.margins]\nsex = {female = 0.5, male = 0.5}\n'
                              '[weighting.totals]\nage = {mean = 38.0}\n')
    res = weight_project(proj, d)
    sub = res.data[res.data["wave"] == "w1"]
    assert (sub["weight"] * sub["age"]).sum() / sub["weight"].sum() == pytest.approx(38.0, rel=1e-9)
