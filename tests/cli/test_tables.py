"""CLI tables readable anywhere (issue 15, item 11): rounding, no cut column names when
piped or narrow (long layout), the same flags on every command, logit intervals for
proportions, empty levels marked."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from diaspora_survey.cli import main
from diaspora_survey.cli._console import decimals_for, fmt_num, print_table
from diaspora_survey.survey.design import SurveyDesign

ROWS = [{"indicator": "entrepreneurs_employed", "category": "", "estimate": "5.3 [4.2, 6.3]",
         "population": "4.7", "ratio": "1.13 [0.93, 1.37]"}]
COLS = [("indicator", "indicator", "left"), ("category", "category", "left"),
        ("estimate", "estimate (95% CI)", "right"), ("population", "population", "right"),
        ("ratio", "ratio (95% CI)", "right")]


def _render(width, layout="auto"):
    c = Console(width=width, record=True, file=open("/dev/null", "w"))
    print_table(c, ROWS, COLS, title="t", layout=layout)
    return c.export_text()


def test_wide_when_it_fits_long_when_not_and_nothing_is_cut():
    wide = _render(120)
    assert "estimate (95% CI)" in wide and "1.13 [0.93, 1.37]" in wide
    assert "entrepreneurs_employed" in wide and "…" not in wide
    narrow = _render(40)
    assert "…" not in narrow
    lines = narrow.splitlines()
    assert any(ln.strip().startswith("entrepreneurs_employed") for ln in lines)
    assert any("ratio (95% CI)" in ln and "1.13 [0.93, 1.37]" in ln for ln in lines)
    assert all(len(ln) <= 40 for ln in lines)
    long = _render(200, layout="long").splitlines()
    assert long[1].strip() == "entrepreneurs_employed" and long[3].split() == ["population", "4.7"]


def test_rounding_follows_the_column():
    assert decimals_for([44.91, 48.4]) == 1
    assert decimals_for([0.142, 0.102]) == 3
    assert decimals_for([2530.0, 1928.0]) == 0
    assert fmt_num(-0.00001, 2) == "0.00" and fmt_num(-1.25, 1) == "−1.2"
    assert fmt_num(float("nan"), 2) == ""


@pytest.fixture
def data_file(tmp_path):
    rng = np.random.default_rng(2)
    n = 400
    df = pd.DataFrame({"edu": pd.Categorical(rng.choice(["low", "high"], n, p=[0.97, 0.03]),
                                             categories=["low", "mid", "high"]),
                       "age": rng.integers(18, 80, n).astype(float),
                       "w": rng.uniform(0.5, 2, n)})
    p = tmp_path / "d.parquet"
    df.to_parquet(p)
    return p, df


def test_estimate_logit_intervals_and_empty_levels(data_file, capsys):
    """The CLI's proportion intervals equal the library's svyciprop(method="logit")
    (R: svyciprop(~I(edu == "high"), svydesign(ids=~1, weights=~w, data=d), method="logit"))."""
    import json

    path, df = data_file
    assert main(["estimate", str(path), "--proportion", "edu", "-w", "w", "--json"]) == 0
    rows = {r["level"]: r for r in json.loads(capsys.readouterr().out)}
    ref = SurveyDesign(df, weights="w").ciprop("edu", method="logit", level_of="high")
    assert rows["high"]["ci_low"] == pytest.approx(float(ref["ci_low"].iloc[0]), rel=1e-9)
    assert rows["high"]["ci_high"] == pytest.approx(float(ref["ci_high"].iloc[0]), rel=1e-9)
    assert rows["high"]["ci_low"] > 0 and rows["high"]["ci_method"] == "logit"
    assert rows["mid"]["empty"] and rows["mid"]["ci_low"] is None
    # Wald (R confint(svymean(~edu, d))) on request: the lower bound may be negative
    assert main(["estimate", str(path), "--proportion", "edu", "-w", "w", "--json",
                 "--prop-ci", "mean"]) == 0
    wald = {r["level"]: r for r in json.loads(capsys.readouterr().out)}
    p, se = wald["high"]["estimate"], wald["high"]["se"]
    assert wald["high"]["ci_low"] == pytest.approx(p - wald["high"]["ci_high"] + p)
    assert math.isclose(wald["high"]["ci_high"] - p, p - wald["high"]["ci_low"])
    assert main(["estimate", str(path), "--proportion", "edu", "-w", "w"]) == 0
    out = capsys.readouterr().out
    assert "— (no respondents)" in out and "logit intervals" in out
    mid = next(ln for ln in out.splitlines() if " mid " in f" {ln} ")
    assert "0.000" not in mid


@pytest.mark.parametrize("command", ["harmonise", "weight", "compare", "estimate", "report",
                                     "run"])
def test_the_same_flags_on_every_command(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "--project" in text
    assert "--quiet" in text and "-q" in text
    if command in ("harmonise", "weight", "compare", "estimate", "run"):
        assert "--layout" in text
    if command in ("weight", "compare", "report"):
        assert "--no-rebuild" in text
