"""Hypothesis properties of raking, post-stratification, calibration and trimming."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diaspora_survey.weighting import calibrate, poststratify, rake, trim

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    """A sample where every level of a, b occurs, positive base weights, and share targets."""
    n = draw(st.integers(30, 200))
    ka = draw(st.integers(2, 4))
    kb = draw(st.integers(2, 3))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    # the full grid first: every combination occurs, so any positive margins are reachable
    grid_a, grid_b = np.meshgrid(np.arange(ka), np.arange(kb), indexing="ij")
    a = np.concatenate([grid_a.ravel(), rng.integers(0, ka, n)])
    b = np.concatenate([grid_b.ravel(), rng.integers(0, kb, n)])
    n = a.size
    w = rng.uniform(0.2, 5.0, n)
    ta = rng.dirichlet(np.ones(ka) * 3)
    tb = rng.dirichlet(np.ones(kb) * 3)
    df = pd.DataFrame({"a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b], "w": w})
    targets = {"a": {f"a{i}": float(x) for i, x in enumerate(ta)},
               "b": {f"b{i}": float(x) for i, x in enumerate(tb)}}
    # shares must sum to 1 within 1e-6: fix rounding on the last category
    for m in targets.values():
        k = list(m)[-1]
        m[k] = 1.0 - sum(v for kk, v in m.items() if kk != k)
    return df, targets, seed


@SETTINGS
@given(problems())
def test_raked_margins_hit_targets(p):
    df, targets, _ = p
    r = rake(df, targets, base_weight="w", tol=1e-10, max_iter=5000)
    w = r.weights
    assert w.sum() == pytest.approx(df["w"].sum(), rel=1e-9)
    for v, t in targets.items():
        shares = w.groupby(df[v]).sum() / w.sum()
        for k, x in t.items():
            assert abs(shares[k] - x) <= 1e-9
    assert r.diagnostics.margins["difference"].abs().max() <= 1e-9


@SETTINGS
@given(problems(), st.integers(0, 2 ** 31 - 1))
def test_row_order_does_not_matter(p, seed):
    df, targets, _ = p
    perm = np.random.default_rng(seed).permutation(len(df))
    shuffled = df.iloc[perm]
    w1 = rake(df, targets, base_weight="w", tol=1e-12, max_iter=5000).weights
    w2 = rake(shuffled, targets, base_weight="w", tol=1e-12, max_iter=5000).weights
    assert list(w2.index) == list(shuffled.index)             # aligned with the input
    np.testing.assert_allclose(w2.loc[df.index].to_numpy(), w1.to_numpy(), rtol=1e-9)


@SETTINGS
@given(problems(), st.floats(1e-3, 1e3))
def test_rescaling_base_weights(p, c):
    """Shares targets: weights scale with the base weights; counts targets: unchanged."""
    df, targets, _ = p
    d2 = df.assign(w=df["w"] * c)
    w1 = rake(df, targets, base_weight="w", tol=1e-12, max_iter=5000).weights
    w2 = rake(d2, targets, base_weight="w", tol=1e-12, max_iter=5000).weights
    np.testing.assert_allclose(w2.to_numpy(), c * w1.to_numpy(), rtol=1e-8)
    counts = {v: {k: x * 1000 for k, x in t.items()} for v, t in targets.items()}
    w3 = rake(df, counts, base_weight="w", tol=1e-12, max_iter=5000).weights
    w4 = rake(d2, counts, base_weight="w", tol=1e-12, max_iter=5000).weights
    np.testing.assert_allclose(w3.to_numpy(), w4.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(w3.to_numpy(), w1.to_numpy() * 1000 / df["w"].sum(), rtol=1e-8)


@SETTINGS
@given(problems())
def test_rake_equals_calibrate_raking(p):
    """Raking to margins is calibration with the exponential distance (Deville & Särndal 1992)."""
    df, targets, _ = p
    w1 = rake(df, targets, base_weight="w", tol=1e-13, max_iter=20000).weights
    w2 = calibrate(df, targets, base_weight="w", method="raking", tol=1e-13, max_iter=200).weights
    np.testing.assert_allclose(w1.to_numpy(), w2.to_numpy(), rtol=1e-7)


@SETTINGS
@given(problems())
def test_poststratify_one_margin_equals_rake_and_linear(p):
    df, targets, _ = p
    t = {"a": targets["a"]}
    w1 = poststratify(df, t, base_weight="w").weights
    w2 = rake(df, t, base_weight="w").weights
    w3 = calibrate(df, t, base_weight="w").weights
    np.testing.assert_allclose(w1, w2, rtol=1e-12)
    np.testing.assert_allclose(w1, w3, rtol=1e-9)


@SETTINGS
@given(st.lists(st.floats(0.01, 100), min_size=5, max_size=80), st.floats(1.05, 3.0),
       st.floats(0.1, 0.95), st.sampled_from(["proportional", "equal"]))
def test_trim_keeps_total_and_bounds(ws, up, lo, how):
    w = pd.Series(ws)
    mean = w.mean()
    t = trim(w, lower=lo, upper=up, relative=True, redistribute=how) if how == "proportional" else \
        trim(w, upper=up, relative=True, redistribute=how)
    assert t.sum() == pytest.approx(w.sum(), rel=1e-10)
    assert t.max() <= up * mean * (1 + 1e-9)
    if how == "proportional":
        assert t.min() >= lo * mean * (1 - 1e-9)
    # untrimmed weights keep their order
    assert (np.diff(t.to_numpy()[np.argsort(w.to_numpy(), kind="stable")]) >= -1e-9 * mean).all()
