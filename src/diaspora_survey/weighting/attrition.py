"""Attrition weights for the retained part of a panel.

A panel's follow-up wave re-interviews only part of the baseline sample, and who answers
again is not random (age, country, education …). The retained respondents are reweighted so
that they represent the whole baseline sample (Lepkowski 1989; Kalton & Flores-Cervantes
2003; Lumley 2010, §9 for the nonresponse-adjustment view):

* ``propensity`` — a logistic model of retention on harmonised baseline variables, fitted
  with the baseline weights (the point estimates of R's ``svyglm(retained ~ ..., family =
  quasibinomial())``); the attrition weight of a retained respondent is ``w / p̂``. With
  ``classes=k`` the estimated propensities are cut at the weighted quantiles into ``k``
  classes and every retained respondent of a class gets ``w · W_c / W_c,retained``
  (weighting-class adjustment, less sensitive to a misspecified model); a class with fewer
  than ``min_cell`` retained respondents is merged with its neighbour (cell collapsing,
  reported);
* ``rake`` — rakes the retained respondents (starting from the baseline weights, or from the
  propensity weights with ``propensity+rake``) to the baseline's **weighted** margins of the
  covariates, so that the retained panel reproduces the baseline sample's distributions;
* ``trim_upper`` (relative to the mean weight) trims as :func:`diaspora_survey.weighting.trim`;
  with raking, raking and trimming alternate until the margins hold and no weight exceeds the
  bound (at most 50 rounds; reported in ``decisions``).

Missing covariate values form a category of their own (``(missing)``), so no respondent is
dropped from the model. The result carries the diagnostics of the other weighting steps
(:func:`diaspora_survey.weighting.diagnostics`: n, n_eff, Kish deff, cv, min/max …), the
model's coefficients and a margin table: baseline weighted share, retained share with the
baseline weights, retained share with the attrition weights.

Standard errors of later estimates treat the attrition weights as fixed design weights
(as the weighting steps elsewhere in the toolkit, DESIGN.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import WeightingError

METHODS = ("propensity", "rake", "propensity+rake")
MISSING = "(missing)"


@dataclass
class AttritionResult:
    """``weights`` (Series over the retained rows, index of the input), ``propensity``
    (Series over all baseline rows), ``coefficients`` (DataFrame), ``margins`` (DataFrame:
    variable, category, baseline, retained_base, retained_adjusted, shares), ``diagnostics``
    (Series as :func:`diagnostics`), ``classes`` (DataFrame or None), ``decisions``."""

    weights: pd.Series
    propensity: pd.Series | None
    coefficients: pd.DataFrame | None
    margins: pd.DataFrame
    diagnostics: pd.Series
    method: str
    classes: pd.DataFrame | None = None
    decisions: list = field(default_factory=list)
    response_rate: float = float("nan")       # weighted share retained
    n_baseline: int = 0
    n_retained: int = 0


def _categorical(df: pd.DataFrame, covariates) -> pd.DataFrame:
    out = {}
    for v in covariates:
        if v not in df.columns:
            raise WeightingError(f"attrition covariate {v!r} is not a baseline variable",
                                 code="weighting.unknown_variable", where=f"variable {v!r}",
                                 hint="use harmonised baseline variables, e.g. age_group, sex, host_region")
        s = df[v]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) \
                and not isinstance(s.dtype, pd.CategoricalDtype):
            raise WeightingError(f"attrition covariate {v!r} is numeric", code="weighting.bad_option",
                                 where=f"variable {v!r}", hint="use a grouped version (age_group, not age)")
        s = s.astype("object").where(s.notna(), MISSING).astype(str)
        if isinstance(df[v].dtype, pd.CategoricalDtype):
            cats = [str(c) for c in df[v].cat.categories if (s == str(c)).any()]
        else:
            cats = sorted(set(s.unique()) - {MISSING})
        if (s == MISSING).any():
            cats.append(MISSING)
        out[v] = pd.Categorical(s, categories=cats)
    return pd.DataFrame(out, index=df.index)


def _design_matrix(cats: pd.DataFrame):
    cols, names = [np.ones(len(cats))], ["(Intercept)"]
    for v in cats.columns:
        c = cats[v].cat.codes.to_numpy()
        for k, lev in enumerate(cats[v].cat.categories[1:], start=1):   # first level = reference
            cols.append((c == k).astype(float))
            names.append(f"{v}[{lev}]")
    return np.column_stack(cols), names


def logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, *, tol: float = 1e-10, max_iter: int = 100):
    """Weighted logistic regression by IRLS: coefficients and fitted probabilities.

    The point estimates of R's ``glm(y ~ X, family=quasibinomial(), weights=w)`` (equal to
    ``svyglm``'s). Raises on separation (a fitted probability reaching 0 or 1)."""
    beta = np.zeros(X.shape[1])
    p0 = np.clip(np.average(y, weights=w), 1e-6, 1 - 1e-6)
    beta[0] = np.log(p0 / (1 - p0))
    for it in range(max_iter):
        eta = X @ beta
        p = 1 / (1 + np.exp(-eta))
        W = w * p * (1 - p)
        z = eta + (y - p) / np.maximum(p * (1 - p), 1e-300)
        A = X.T @ (W[:, None] * X)
        try:
            new = np.linalg.solve(A, X.T @ (W * z))
        except np.linalg.LinAlgError:
            raise WeightingError("the retention model cannot be fitted (collinear or empty categories)",
                                 code="weighting.attrition_singular",
                                 hint="use fewer or coarser covariates") from None
        if np.max(np.abs(new - beta)) < tol * (1 + np.max(np.abs(beta))):
            beta = new
            break
        beta = new
    p = 1 / (1 + np.exp(-(X @ beta)))
    if np.any(p < 1e-8) or np.any(p > 1 - 1e-8) or not np.all(np.isfinite(beta)):
        raise WeightingError("the retention model separates the data (a category where all or none "
                             "were re-interviewed)", code="weighting.attrition_separation",
                             hint="merge sparse categories, drop that covariate, or use method='rake'")
    return beta, p


def _classes(p, w, retained, k, min_cell):
    """Propensity classes at weighted quantiles; classes with < min_cell retained merged."""
    order = np.argsort(p, kind="stable")
    cw = np.cumsum(w[order]) / w.sum()
    cls = np.empty(len(p), dtype=np.int64)
    cls[order] = np.minimum((cw * k - 1e-12).astype(np.int64), k - 1)
    decisions = []
    while True:
        ids = np.unique(cls)
        n_ret = np.array([int(retained[cls == c].sum()) for c in ids])   # k classes, not respondents
        small = np.flatnonzero(n_ret < min_cell)
        if small.size == 0 or ids.size == 1:
            break
        j = small[0]
        nb = j + 1 if j + 1 < ids.size else j - 1
        decisions.append(f"propensity class {j + 1} ({n_ret[j]} retained) merged with class {nb + 1}")
        cls[cls == ids[j]] = ids[nb]
    _, cls = np.unique(cls, return_inverse=True)
    return cls, decisions


def attrition_weights(pairs: pd.DataFrame, covariates, *, weight: str | None = "weight",
                      retained: str = "retained", method: str = "propensity+rake", classes: int = 0,
                      min_cell: int = 20, trim_upper: float | None = None, tol: float = 1e-10,
                      max_iter: int = 1000) -> AttritionResult:
    """Attrition weights for the retained rows of ``pairs`` (one row per baseline respondent,
    e.g. :meth:`diaspora_survey.harmonise.panel.PanelLink.pairs`).

    weight : the baseline weight column (None: all 1). retained : boolean column.
    method : ``propensity``, ``rake`` or ``propensity+rake`` (see the module docstring).
    classes : 0 = ``w / p̂`` per respondent; k >= 2 = k propensity classes (weighting-class
        adjustment), classes with fewer than ``min_cell`` retained merged.
    trim_upper : trim the final weights at this multiple of their mean (None: no trimming).
    """
    from .diagnostics import diagnostics
    from .raking import rake
    from .trimming import trim

    if method not in METHODS:
        raise WeightingError(f"unknown attrition method {method!r}", code="weighting.bad_option",
                             hint="one of: " + ", ".join(METHODS))
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    if not covariates:
        raise WeightingError("attrition weights need covariates", code="weighting.bad_option",
                             hint="e.g. covariates=['age_group', 'sex', 'host_region']")
    if not (isinstance(classes, (int, np.integer)) and classes >= 0 and classes != 1):
        raise WeightingError(f"classes must be 0 or an integer >= 2, got {classes!r}",
                             code="weighting.bad_option")
    if retained not in pairs.columns:
        raise WeightingError(f"no column {retained!r}", code="weighting.unknown_variable",
                             hint="pass the PanelLink.pairs() frame")
    r = pairs[retained].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if not r.any():
        raise WeightingError("no baseline respondent was re-interviewed", code="weighting.attrition_empty",
                             hint="check the panel link (diaspora-survey panel)")
    w = np.ones(len(pairs)) if weight is None else pd.to_numeric(pairs[weight]).to_numpy(dtype=float)
    if np.isnan(w).any() or (w <= 0).any():
        raise WeightingError(f"baseline weights {weight!r} must be positive and not missing",
                             code="weighting.bad_weights")
    cats = _categorical(pairs, covariates)
    decisions: list[str] = []
    if r.all():   # nobody lost: nothing to model; the baseline weights carry over (said so)
        out = pd.Series(w, index=pairs.index, name="attrition_weight")
        if trim_upper is not None:
            out = trim(out, upper=trim_upper, relative=True).rename("attrition_weight")
        margins = []
        for v in covariates:
            c = cats[v].cat.codes.to_numpy()
            K = len(cats[v].cat.categories)
            n_c = np.bincount(c, minlength=K)
            base = np.bincount(c, weights=w, minlength=K) / w.sum()
            adj_m = np.bincount(c, weights=out.to_numpy(), minlength=K) / out.sum()
            for k, lev in enumerate(cats[v].cat.categories):
                margins.append({"variable": v, "category": str(lev), "n": int(n_c[k]), "n_retained": int(n_c[k]),
                                "baseline": base[k], "retained_base": base[k], "retained_adjusted": adj_m[k]})
        return AttritionResult(weights=out, propensity=None, coefficients=None, margins=pd.DataFrame(margins),
                               diagnostics=diagnostics(out), method=method, decisions=[
                                   "no attrition: every baseline respondent was re-interviewed; the attrition "
                                   "weights are the baseline weights"], response_rate=1.0,
                               n_baseline=len(pairs), n_retained=len(pairs))
    prop = None
    coef = None
    cls_table = None
    adj = w.copy()
    for v in covariates:   # a category where nobody (or everybody) answered again cannot be modelled
        c = cats[v].cat.codes.to_numpy()
        n_c = np.bincount(c, minlength=len(cats[v].cat.categories))
        r_c = np.bincount(c, weights=r, minlength=len(cats[v].cat.categories))
        bad = [str(cats[v].cat.categories[i]) for i in range(n_c.size)
               if r_c[i] == 0 or (r_c[i] == n_c[i] and method.startswith("propensity"))]
        if bad:
            raise WeightingError(f"attrition covariate {v!r}: category {bad[0]!r} has "
                                 + ("no re-interviewed respondent" if r_c[list(map(str, cats[v].cat.categories)).index(bad[0])] == 0
                                    else "only re-interviewed respondents"),
                                 code="weighting.attrition_empty_cell", where=f"variable {v!r}",
                                 hint="merge that category with a neighbour (e.g. a project host-region "
                                      "crosswalk), or drop the covariate")
    if method.startswith("propensity"):
        X, names = _design_matrix(cats)
        beta, p = logistic(X, r.astype(float), w)
        prop = pd.Series(p, index=pairs.index, name="propensity")
        coef = pd.DataFrame({"term": names, "estimate": beta})
        if classes:
            cls, dec = _classes(p, w, r, int(classes), int(min_cell))
            decisions += dec
            W_c = np.bincount(cls, weights=w)
            W_r = np.bincount(cls, weights=w * r)
            adj = w * (W_c / W_r)[cls]
            cls_table = pd.DataFrame({"class": np.arange(1, W_c.size + 1),
                                      "n": np.bincount(cls), "n_retained": np.bincount(cls, weights=r).astype(int),
                                      "propensity_min": [p[cls == c].min() for c in range(W_c.size)],
                                      "propensity_max": [p[cls == c].max() for c in range(W_c.size)],
                                      "response_rate": W_r / W_c, "adjustment": W_c / W_r})
        else:
            adj = w / p
    ret_df = cats[r]
    if method.endswith("rake"):
        targets = {}
        for v in covariates:
            tot = pd.Series(w).groupby(cats[v].to_numpy(), observed=False).sum()
            targets[v] = {str(k): float(x) for k, x in tot.items() if x > 0}
        res = rake(ret_df, targets, base_weight=adj[r], kind="counts", tol=tol, max_iter=max_iter,
                   label="retained panel")
        adj_r = res.weights.to_numpy()
    else:
        adj_r = adj[r]
    out = pd.Series(adj_r, index=pairs.index[r], name="attrition_weight")
    if trim_upper is not None:
        t = trim(out, upper=trim_upper, relative=True)
        k = int((t.to_numpy() < out.to_numpy() - 1e-12).sum())
        decisions.append(f"{k} weight(s) trimmed at {trim_upper:g} × the mean weight ({float(t.max()):.4g}); "
                         "the excess spread proportionally over the others, total kept")
        out = t.rename("attrition_weight")
        if method.endswith("rake") and k:
            # trimming moves the margins: alternate raking and trimming until both hold
            # (at most 50 rounds; otherwise the last trimmed weights are kept and that is said)
            for rounds in range(1, 51):
                again = rake(ret_df, targets, base_weight=out.to_numpy(), kind="counts", tol=tol,
                             max_iter=max_iter, label="retained panel").weights.to_numpy()
                mean = again.mean()
                if again.max() <= trim_upper * mean * (1 + 1e-9):
                    out = pd.Series(again, index=out.index, name="attrition_weight")
                    decisions.append(f"re-raked after trimming ({rounds} round(s)): the baseline margins hold "
                                     f"and no weight exceeds {trim_upper:g} × the mean")
                    break
                out = trim(pd.Series(again, index=out.index), upper=trim_upper,
                           relative=True).rename("attrition_weight")
            else:
                decisions.append("raking and trimming did not both hold within 50 rounds: the weights are "
                                 "trimmed and the margins may differ slightly from the baseline's")
    margins = []
    wa = np.zeros(len(pairs))
    wa[r] = out.to_numpy()
    for v in covariates:
        c = cats[v].cat.codes.to_numpy()
        K = len(cats[v].cat.categories)
        n_all, n_ret = np.bincount(c, minlength=K), np.bincount(c[r], minlength=K)
        base, rb, ra = (np.bincount(c, weights=x, minlength=K) for x in (w, w * r, wa))
        for k, lev in enumerate(cats[v].cat.categories):
            margins.append({"variable": v, "category": str(lev), "n": int(n_all[k]), "n_retained": int(n_ret[k]),
                            "baseline": base[k] / w.sum(), "retained_base": rb[k] / rb.sum(),
                            "retained_adjusted": ra[k] / ra.sum()})
    return AttritionResult(weights=out, propensity=prop, coefficients=coef, margins=pd.DataFrame(margins),
                           diagnostics=diagnostics(out), method=method, classes=cls_table,
                           decisions=decisions, response_rate=float(w[r].sum() / w.sum()),
                           n_baseline=len(pairs), n_retained=int(r.sum()))


__all__ = ["attrition_weights", "AttritionResult", "logistic", "METHODS"]
