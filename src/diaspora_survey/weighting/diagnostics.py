"""Weight diagnostics: Kish effective sample size, design effect due to weighting,
weight summary, margin fit before/after and standardised mean differences.

Formulas (Kish 1965; Lumley 2010 §7; as the oracle's ``strat_kish_pw`` case):

* ``n_eff = (Σw)² / Σw²`` (Kish effective sample size);
* ``kish_deff = n Σw² / (Σw)² = 1 + CV²`` with CV = SD/mean computed with the
  **population** SD (divisor n);
* weight summary: min, 1st percentile, median, 99th percentile, max, max/min
  (percentiles with numpy's default linear interpolation, R's type 7).
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import WeightingError

SUMMARY_FIELDS = ("n", "sum", "mean", "n_eff", "kish_deff", "cv", "min", "p1", "median", "p99",
                  "max", "max_min_ratio")


def diagnostics(weights) -> pd.Series:
    """Summary of a weight vector (Series, NA-free, all weights >= 0).

    Returns a Series with ``n`` (rows), ``sum``, ``mean``, ``n_eff`` (Kish),
    ``kish_deff`` (1 + CV², population SD), ``cv``, ``min``, ``p1``, ``median``, ``p99``,
    ``max`` and ``max_min_ratio`` (inf when the minimum is 0).
    """
    try:
        w = np.asarray(weights.to_numpy() if hasattr(weights, "to_numpy") else weights,
                       dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise WeightingError(f"weights must be numbers, not {type(weights).__name__}",
                             code="weighting.bad_weights", hint="pass a Series or array of weights") from None
    if w.size == 0:
        raise WeightingError("no weights to describe", code="weighting.empty")
    if np.isnan(w).any() or (w < 0).any() or np.isinf(w).any():
        raise WeightingError("weights contain missing, infinite or negative values",
                             code="weighting.bad_weights")
    n = w.size
    s = float(w.sum())
    if s <= 0:
        raise WeightingError("weights are all zero", code="weighting.bad_weights")
    if not np.isfinite(s):
        raise WeightingError("the weights' sum overflows (weights near 1e308)", code="weighting.bad_weights",
                             hint="rescale the weights")
    # the ratios below are scale-invariant: where w·w would overflow (huge weights), they are
    # computed on w / max(w) (otherwise on w itself, bit for bit as before)
    scale = 1.0 if float(w.max()) < 1e150 else float(w.max())
    u = w if scale == 1.0 else w / scale
    su, su2 = (s, float(np.dot(u, u))) if scale == 1.0 else (float(u.sum()), float(np.dot(u, u)))
    mean = s / n
    n_eff = su * su / su2 if su2 > 0 else float("nan")
    deff = n * su2 / (su * su) if su > 0 else float("nan")
    sd = float(np.sqrt(max(su2 / n - (su / n) ** 2, 0.0))) * scale
    q = np.quantile(w, [0.01, 0.5, 0.99])
    lo, hi = float(w.min()), float(w.max())
    return pd.Series({
        "n": n, "sum": s, "mean": mean, "n_eff": n_eff, "kish_deff": deff,
        "cv": sd / mean if mean > 0 else float("nan"), "min": lo, "p1": float(q[0]),
        "median": float(q[1]), "p99": float(q[2]), "max": hi,
        "max_min_ratio": hi / lo if lo > 0 else float("inf"),
    }, name="weights", dtype="float64")


class Diagnostics:
    """Diagnostics of one weighting step (``WeightingResult.diagnostics``).

    Attributes: ``method``, ``n``, ``iterations``, ``converged``, ``tolerance``,
    ``margins`` (DataFrame: margin, category, n, sample_share, base_share,
    weighted_share, target_share, difference, target, weighted), ``decisions``
    (list of the explicit decisions taken, e.g. collapsed cells or restricted
    targets), ``summary`` (Series of :func:`diagnostics` for the new weights),
    ``summary_before`` (same for the base weights) and ``smd`` (standardised mean
    differences of other covariates, base vs new weights).  The weight summaries and
    the SMDs are computed on first access.  ``d["n_eff"]`` and ``d.n_eff`` read the
    summary; ``d.to_frame()`` gives everything scalar as one table.
    """

    def __init__(self, method: str, weights: np.ndarray, base: np.ndarray, *, iterations: int = 0,
                 converged: bool = True, tolerance: float | None = None,
                 margins: pd.DataFrame | None = None, decisions=None, df: pd.DataFrame | None = None,
                 covariates=None, exclude=(), extra: dict | None = None, margin_fn=None):
        self.method = method
        self._w = weights
        self._base = base
        self.n = int(weights.size)
        self.iterations = int(iterations)
        self.converged = bool(converged)
        self.tolerance = tolerance
        self.margins = margins if margins is not None else pd.DataFrame()
        self.decisions = list(decisions or [])
        self._df = df
        self._covariates = covariates
        self._exclude = set(exclude)
        self.extra = dict(extra or {})
        self._margin_fn = margin_fn   # new row weights -> margin table (for later steps)

    @cached_property
    def summary(self) -> pd.Series:
        return diagnostics(self._w)

    @cached_property
    def summary_before(self) -> pd.Series:
        return diagnostics(self._base)

    @cached_property
    def smd(self) -> pd.DataFrame:
        if self._df is None:
            return pd.DataFrame(columns=["covariate", "level", "mean_before", "mean_after", "smd"])
        return smd_table(self._df, self._base, self._w, self._covariates, exclude=self._exclude)

    def __getattr__(self, name):
        if name.startswith("_") or name not in SUMMARY_FIELDS:
            raise AttributeError(name)
        return float(self.summary[name])

    def __getitem__(self, key):
        if key in SUMMARY_FIELDS:
            return float(self.summary[key])
        if key in ("iterations", "converged", "method", "margins", "decisions", "smd", "tolerance"):
            return getattr(self, key)
        if key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def to_frame(self) -> pd.DataFrame:
        """Scalar diagnostics before (base weights) and after, one row per statistic."""
        out = pd.DataFrame({"before": self.summary_before, "after": self.summary})
        extra = pd.DataFrame({"before": [np.nan, np.nan], "after": [float(self.iterations),
                                                                  float(self.converged)]},
                             index=["iterations", "converged"])
        return pd.concat([out, extra])

    def __repr__(self) -> str:
        s = self.summary
        return (f"<Diagnostics {self.method}: n={self.n}, n_eff={s['n_eff']:.1f}, "
                f"deff={s['kish_deff']:.3f}, weights {s['min']:.4g}..{s['max']:.4g}, "
                f"iterations={self.iterations}, converged={self.converged}"
                + (f", {len(self.decisions)} decision(s)" if self.decisions else "") + ">")


def margin_table(names, categories, n, base, after, target) -> pd.DataFrame:
    """Margin fit table.  All inputs are per (margin, category) arrays; shares are
    relative to each margin's own sum (of counts, base weights, new weights, targets)."""
    names = np.asarray(names, dtype=object)
    _, grp = np.unique(names, return_inverse=True)
    cols = {k: np.asarray(v, float) for k, v in (("n", n), ("base", base), ("weighted", after),
                                                 ("target", target))}

    def share(x):
        return x / np.bincount(grp, weights=x)[grp]

    ws, ts = share(cols["weighted"]), share(cols["target"])
    return pd.DataFrame({"margin": names, "category": categories, "n": cols["n"].astype(np.int64),
                         "sample_share": share(cols["n"]), "base_share": share(cols["base"]),
                         "weighted_share": ws, "target_share": ts, "difference": ws - ts,
                         "target": cols["target"], "weighted": cols["weighted"]})


def smd_table(df: pd.DataFrame, before: np.ndarray, after: np.ndarray, covariates=None,
              exclude=(), max_levels: int = 30) -> pd.DataFrame:
    """Standardised mean differences of covariates between two weightings.

    For each numeric or boolean covariate, and each level of a categorical one (as a
    0/1 indicator): ``smd = (mean_after - mean_before) / sd_before`` with weighted
    means and the ``before``-weighted population SD; missing values are left out of
    both means.  ``covariates=None`` takes every column not in ``exclude`` that is
    numeric, boolean or categorical with at most ``max_levels`` levels.
    """
    if covariates is None:
        covariates = []
        for c in df.columns:
            if c in exclude or str(c).startswith("weight"):
                continue
            s = df[c]
            if s.nunique(dropna=True) <= 1:
                continue   # constant here (e.g. the wave column within a wave): nothing to compare
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                covariates.append(c)
            elif isinstance(s.dtype, pd.CategoricalDtype) and len(s.cat.categories) <= max_levels:
                covariates.append(c)
            elif s.dtype == object or pd.api.types.is_string_dtype(s):
                if s.nunique(dropna=True) <= max_levels:
                    covariates.append(c)
    rows = []
    b = np.asarray(before, float)
    a = np.asarray(after, float)
    for c in covariates:
        if c not in df.columns:
            raise WeightingError(f"covariate {c!r} not in the data", code="weighting.unknown_variable")
        s = df[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            x = pd.to_numeric(s.astype("Float64") if pd.api.types.is_bool_dtype(s) else s,
                              errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            rows.append((c, "", *_smd(x, b, a)))
        else:
            codes, labs = pd.factorize(s, sort=True)
            ok = codes >= 0
            for j, lab in enumerate(labs):
                x = np.where(ok, (codes == j).astype(float), np.nan)
                rows.append((c, str(lab), *_smd(x, b, a)))
    return pd.DataFrame(rows, columns=["covariate", "level", "mean_before", "mean_after", "smd"])


def _smd(x, b, a):
    ok = ~np.isnan(x)
    if not ok.any():
        return (np.nan, np.nan, np.nan)
    xb, bb, ab = x[ok], b[ok], a[ok]
    mb = float(np.dot(xb, bb) / bb.sum())
    ma = float(np.dot(xb, ab) / ab.sum())
    var = float(np.dot((xb - mb) ** 2, bb) / bb.sum())
    sd = np.sqrt(var)
    eps = 1e-12 * max(1.0, abs(mb))
    if sd > eps:
        return (mb, ma, (ma - mb) / sd)
    # no spread under the base weights: no SMD (0 if the mean did not move)
    return (mb, ma, 0.0 if abs(ma - mb) <= eps else np.nan)
