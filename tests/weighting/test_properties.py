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


# ---------------------------------------------------------------- audit additions (issue 5)
@st.composite
def cross_problems(draw):
    """Three variables a, b, c; margins a:b (cross-classified) and c; consistent targets
    from one random joint distribution; every combination occurs in the sample."""
    ka, kb, kc = draw(st.integers(2, 3)), draw(st.integers(2, 3)), draw(st.integers(2, 4))
    n = draw(st.integers(40, 250))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31 - 1)))
    grid = np.array(np.meshgrid(np.arange(ka), np.arange(kb), np.arange(kc), indexing="ij")).reshape(3, -1)
    idx = np.concatenate([grid, np.stack([rng.integers(0, k, n) for k in (ka, kb, kc)])], axis=1)
    df = pd.DataFrame({"a": [f"a{i}" for i in idx[0]], "b": [f"b{i}" for i in idx[1]],
                       "c": pd.Categorical([f"c{i}" for i in idx[2]]),
                       "x": rng.normal(40, 10, idx.shape[1]), "w": rng.uniform(0.3, 4.0, idx.shape[1])})
    ab = rng.dirichlet(np.ones(ka * kb) * 2).reshape(ka, kb)
    tc = rng.dirichlet(np.ones(kc) * 2)
    targets = {"a:b": {f"a{i}:b{j}": float(ab[i, j]) for i in range(ka) for j in range(kb)},
               "c": {f"c{k}": float(v) for k, v in enumerate(tc)}}
    for m in targets.values():
        last = list(m)[-1]
        m[last] = 1.0 - sum(v for k, v in m.items() if k != last)
    return df, targets


def _shares(w, df, margin):
    key = df[margin.split(":")].astype(str).agg(":".join, axis=1)
    return w.groupby(key).sum() / w.sum()


@SETTINGS
@given(cross_problems(), st.integers(0, 2 ** 31 - 1), st.floats(1e-2, 1e2))
def test_cross_classified_raking_properties(p, seed, c):
    df, targets = p
    r = rake(df, targets, base_weight="w", tol=1e-11, max_iter=5000)
    assert r.diagnostics.converged
    for margin, t in targets.items():
        got = _shares(r.weights, df, margin)
        for k, x in t.items():
            assert abs(got[k] - x) <= 1e-10
    perm = np.random.default_rng(seed).permutation(len(df))
    r2 = rake(df.iloc[perm], targets, base_weight="w", tol=1e-11, max_iter=5000)
    np.testing.assert_allclose(r2.weights.loc[df.index], r.weights, rtol=1e-8)
    r3 = rake(df.assign(w=df["w"] * c), targets, base_weight="w", tol=1e-11, max_iter=5000)
    np.testing.assert_allclose(r3.weights, r.weights * c, rtol=1e-8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.floats(0.05, 0.6), st.floats(1.5, 4.0))
def test_capped_raking_keeps_g_within_bounds(p, lo, hi):
    """Capped raking either converges with every g = w / (base x T/sum base) in [lo, hi]
    and the margins met, or reports non-convergence as an error — never silently."""
    from diaspora_survey.errors import WeightingError

    df, targets, _ = p
    try:
        r = rake(df, targets, base_weight="w", bounds=(lo, hi), tol=1e-9, max_iter=600)
    except WeightingError as e:
        assert e.code == "weighting.not_converged" and "worst margin" in str(e)
        return
    g = r.weights / df["w"]          # shares: the total is kept, T / sum(base) = 1
    assert g.min() >= lo * (1 - 1e-9) and g.max() <= hi * (1 + 1e-9)
    for v, t in targets.items():
        got = r.weights.groupby(df[v]).sum() / r.weights.sum()
        for k, x in t.items():
            assert abs(got[k] - x) <= 1e-8


@SETTINGS
@given(cross_problems(), st.sampled_from(["linear", "raking", "logit"]))
def test_calibration_meets_categorical_and_numeric_totals(p, method):
    from diaspora_survey.errors import WeightingError

    df, targets = p
    N = 1000.0
    xbar = float(np.average(df["x"], weights=df["w"])) + 0.5      # a reachable mean
    totals = {"c": {k: v * N for k, v in targets["c"].items()}, "x": xbar * N}
    kw = {"bounds": (0.05, 20.0)} if method == "logit" else {}
    try:
        r = calibrate(df, totals, base_weight="w", method=method, tol=1e-11, max_iter=200, **kw)
    except WeightingError as e:       # e.g. linear calibration giving negative weights
        assert e.code in ("weighting.negative_weights", "weighting.not_converged")
        return
    w = r.weights
    assert w.sum() == pytest.approx(N, rel=1e-9)
    assert (w * df["x"]).sum() == pytest.approx(xbar * N, rel=1e-9)
    got = w.groupby(df["c"].astype(str)).sum()
    for k, v in totals["c"].items():
        assert got[k] == pytest.approx(v, rel=1e-8)
    if method == "logit":
        g = w / df["w"]
        assert g.min() > 0.05 and g.max() < 20.0


@SETTINGS
@given(cross_problems())
def test_poststratify_meets_every_cell(p):
    df, targets = p
    t = {"a:b": {k: v * 5000 for k, v in targets["a:b"].items()}}
    r = poststratify(df, t, base_weight="w")
    key = df["a"] + ":" + df["b"]
    got = r.weights.groupby(key).sum()
    for k, v in t["a:b"].items():
        assert got[k] == pytest.approx(v, rel=1e-12)
    ratio = (r.weights / df["w"]).groupby(key).nunique()
    assert (ratio == 1).all() or np.allclose((r.weights / df["w"]).groupby(key).std().fillna(0), 0)


@SETTINGS
@given(st.lists(st.floats(0.01, 100), min_size=5, max_size=80), st.floats(1.05, 3.0),
       st.floats(0.1, 0.95))
def test_strict_trim_is_stable(ws, up, lo):
    """Trimming until stable: a second pass changes nothing."""
    w = pd.Series(ws)
    t = trim(w, lower=lo, upper=up, relative=True)
    t2 = trim(t, lower=lo * w.mean(), upper=up * w.mean())
    np.testing.assert_allclose(t2, t, rtol=1e-12)
    assert t.attrs["trim"]["within_bounds"]
