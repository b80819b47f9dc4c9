"""Design-based estimators (called through :class:`~diaspora_survey.survey.design.SurveyDesign`).

Every estimator returns a tidy DataFrame: the ``by`` columns (if any), ``variable``
(and ``level`` for categorical variables, ``quantile`` for quantiles), then
``estimate, se, ci_low, ci_high, df, n, cv`` (+ ``deff`` on request).

* ``n`` is the unweighted number of rows used (in the domain, not missing);
* ``df`` the degrees of freedom of the interval: ``design.degf`` by default (t
  intervals, #PSU - #strata of the full design, also for domains), ``float("inf")``
  for normal (Wald) intervals as R's ``confint()`` default;
* ``cv = se / |estimate|``;
* ``deff`` as R's ``deff=TRUE``: design variance over the variance under simple random
  sampling *without* replacement of n from N_hat (Lumley 2010, §2.4); ``deff="replace"``
  against sampling with replacement (R's ``deff="replace"``), the one to use when the
  weights are scaled to the sample size rather than the population.

The covariance matrix of the estimates is attached as ``result.attrs["vcov"]`` so
that :func:`contrast` (R ``svycontrast``) can combine rows, e.g. the difference
between two waves.

Missing values are dropped per estimate as R's ``na.rm=TRUE`` does: the rows stay in
the design with zero weight, so all PSUs and strata remain in the variance and df.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import EstimationError

# ----------------------------------------------------------------------------- helpers


class Matrix:
    """A read-only matrix kept in ``DataFrame.attrs`` (e.g. ``attrs["vcov"]``).

    Behaves as an array through ``np.asarray(m)`` / ``m.values``; compares by identity so
    that pandas can concatenate frames carrying different matrices."""

    __slots__ = ("values", "index", "estimates")

    def __init__(self, values, index=None, estimates=None):
        self.values = np.asarray(values, dtype=float)
        self.values.flags.writeable = False
        # the row labels and estimates of the result the matrix belongs to, so that a
        # sorted or filtered result is matched to its covariances (and a re-indexed one
        # is recognised)
        self.index = None if index is None else tuple(index)
        self.estimates = None if estimates is None else np.asarray(estimates, dtype=float)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def __eq__(self, other):
        return self is other

    __hash__ = object.__hash__

    def __deepcopy__(self, memo):
        return self

    @property
    def shape(self):
        return self.values.shape

    def __repr__(self):
        return f"Matrix({self.values!r})"



def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _column(design, var) -> pd.Series:
    data = design._data
    if not isinstance(var, str) or var not in data.columns:
        cols = ", ".join(map(str, list(data.columns)[:30]))
        raise EstimationError("not found in the data", code="estimate.unknown_variable",
                              where=f"variable {var!r}", hint=f"available columns: {cols}")
    return data[var]


def _is_categorical(s: pd.Series) -> bool:
    return (isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(s.dtype)
            or pd.api.types.is_string_dtype(s.dtype) or s.dtype == object)


def _numeric(design, var) -> np.ndarray:
    s = _column(design, var)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if not pd.api.types.is_numeric_dtype(s.dtype):
        raise EstimationError(f"variable {var!r} is not numeric (dtype {s.dtype})",
                              code="estimate.not_numeric", where=f"variable {var!r}",
                              hint="use proportion() for categorical variables")
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _levels(s: pd.Series):
    """Integer codes (-1 = missing) and level labels of a categorical-like column:
    category order for Categorical, False/True for booleans, sorted values otherwise."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy().astype(np.int64), list(s.cat.categories)
    codes, uniques = pd.factorize(s, sort=True, use_na_sentinel=True)
    if pd.api.types.is_bool_dtype(s.dtype):
        # always both levels, False first
        vals = list(uniques)
        lut = np.array([[False, True].index(bool(v)) for v in vals], dtype=np.int64)
        codes = np.where(codes >= 0, lut[np.maximum(codes, 0)] if len(lut) else -1, -1)
        return codes.astype(np.int64), [False, True]
    return codes.astype(np.int64), list(uniques)


def _groups(design, by):
    """Group codes (n,) (-1 = missing by-value) and a DataFrame of group labels (G rows).
    Only groups with rows in the design's domain are kept (as R's svyby)."""
    cols = _as_list(by)
    n = design.n
    if not cols:
        return np.zeros(n, dtype=np.int64), pd.DataFrame(index=range(1))
    codes_list, levels_list = [], []
    for c in cols:
        s = _column(design, c)
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes, levels = s.cat.codes.to_numpy().astype(np.int64), list(s.cat.categories)
        else:
            codes, uniques = pd.factorize(s, sort=True, use_na_sentinel=True)
            codes, levels = codes.astype(np.int64), list(uniques)
        codes_list.append(codes)
        levels_list.append(levels)
    if len(cols) == 1:
        g = codes_list[0]
        sizes = [len(levels_list[0])]
    else:
        sizes = [len(l) for l in levels_list]
        g = np.zeros(n, dtype=np.int64)
        bad = np.zeros(n, dtype=bool)
        for c, k in zip(codes_list, sizes):
            g = g * k + c
            bad |= c < 0
        g = np.where(bad, -1, g)
    dom = design._domain
    total = int(np.prod(sizes)) if sizes else 1
    if dom is None and g.size and g.min() >= 0:      # [scale] no missing, no domain: one pass
        present = np.flatnonzero(np.bincount(g, minlength=total) > 0)
    else:
        ok = g >= 0 if dom is None else (g >= 0) & dom
        present = np.flatnonzero(np.bincount(g[ok], minlength=total) > 0)
    if present.size < total:
        remap = np.full(total, -1, dtype=np.int64)
        remap[present] = np.arange(present.size)
        g = np.where(g >= 0, remap[np.maximum(g, 0)], -1)
    # labels of the present groups (mixed radix decode)
    labels = {}
    rest = present.copy()
    for c, k, levels in reversed(list(zip(cols, sizes, levels_list))):
        idx = rest % k
        rest = rest // k
        labels[c] = [levels[i] for i in idx]
    lab = pd.DataFrame({c: labels[c] for c in cols})
    for c in cols:
        s = design._data[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            lab[c] = pd.Categorical(lab[c], categories=s.cat.categories, ordered=s.cat.ordered)
    return g, lab


def _qcrit(level: float, df) -> float:
    """Critical value of the interval: qt(a, df) or qnorm(a), a = 1 - (1-level)/2.
    scipy.special's stdtrit/ndtri are what scipy.stats' t.ppf/norm.ppf evaluate (the same
    numbers) without importing scipy.stats (about 1 s, the bulk of a first estimate)."""
    from scipy import special

    if not 0 < level < 1:
        raise EstimationError(f"level must be in (0, 1), got {level}", code="estimate.bad_level")
    a = 1 - (1 - level) / 2
    return float(special.ndtri(a)) if (df is None or np.isinf(df)) else float(special.stdtrit(df, a))


def _df(design, df):
    return float(design.degf) if df is None else float(df)


def _frame(design, labels: pd.DataFrame, est, se, n, level, df, extra: dict | None = None,
           deff=None, vcov=None) -> pd.DataFrame:
    est = np.asarray(est, dtype=float)
    se = np.asarray(se, dtype=float)
    dfv = _df(design, df)
    q = _qcrit(level, dfv)
    out = labels.reset_index(drop=True).copy()
    out["estimate"] = est
    out["se"] = se
    out["ci_low"] = est - q * se
    out["ci_high"] = est + q * se
    out["df"] = dfv
    out["n"] = np.asarray(n, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cv"] = se / np.abs(est)
    if deff is not None:
        out["deff"] = np.asarray(deff, dtype=float)
    if extra:
        for k, v in extra.items():
            out[k] = v
    if vcov is not None:
        out.attrs["vcov"] = Matrix(vcov, out.index, est)
    out.attrs["level"] = level
    return out


def _blocks(design, vars_, categorical: bool | None):
    """Variables as blocks of terms: (variable, levels, data) with data the integer codes
    (-1 = missing) of a categorical variable (one term per level) or the values of a
    numeric one (NaN replaced by 0; one term); and valid (n,), the rows where every
    variable is present (R's joint na.rm over the formula's variables)."""
    n = design.n
    valid = np.ones(n, dtype=bool)
    blocks = []
    for v in vars_:
        s = _column(design, v)
        cat = _is_categorical(s) if categorical is None else categorical
        if cat:
            codes, levels = _levels(s)
            valid &= codes >= 0
            blocks.append((v, levels, codes))
        else:
            y = _numeric(design, v)
            nan = np.isnan(y)
            if nan.any():
                valid &= ~nan
                y = np.where(nan, 0.0, y)
            blocks.append((v, None, y))
    return blocks, valid


def _expand(blocks):
    """Label tuples (variable, level-or-None) of the terms of the blocks, in order."""
    terms = []
    for v, levels, _ in blocks:
        if levels is None:
            terms.append((v, None))
        else:
            terms.extend((v, lev) for lev in levels)
    return terms


def _term_values(blocks):
    """The numeric column of every term (indicators for the levels), one at a time."""
    for _, levels, data in blocks:
        if levels is None:
            yield data
        else:
            for j in range(len(levels)):
                yield (data == j).astype(np.float64)


def _check_na(design, valid, vars_, na_rm):
    if na_rm:
        return
    dom = design.domain_mask
    bad = dom & ~valid
    if bad.any():
        raise EstimationError(f"{int(bad.sum())} row(s) have missing values in {', '.join(map(str, vars_))}",
                              code="estimate.missing_values",
                              hint="pass na_rm=True to drop them per estimate (R's na.rm=TRUE)")


def _valid_groups(design, valid, vars_, by, na_rm):
    """The grouping of rows with valid values: (g, group labels, G, gv) with gv = g where
    the row is valid, -1 elsewhere (after the na_rm check)."""
    _check_na(design, valid, vars_, na_rm)
    g, glab = _groups(design, by)
    return g, glab, len(glab), (g if valid.all() else np.where(valid, g, -1))


def _labels(glab: pd.DataFrame, G: int, terms, with_level: bool) -> pd.DataFrame:
    k = len(terms)
    rows = glab.loc[np.repeat(np.arange(G), k)].reset_index(drop=True) if len(glab.columns) else \
        pd.DataFrame(index=range(G * k))
    rows["variable"] = [t[0] for t in terms] * G
    if with_level:
        rows["level"] = pd.Series([t[1] for t in terms] * G, dtype=object)
    return rows


def _counts(design, g, valid, G):
    ok = valid & (g >= 0)
    if design._domain is not None:
        ok &= design._domain
    return np.bincount(g if ok.all() else g[ok], minlength=G)


# ----------------------------------------------------------------------------- mean/total


def _mean_total(design, var, by, *, kind, deff, level, df, na_rm, categorical=None):
    vars_ = _as_list(var)
    if not vars_:
        raise EstimationError("no variable given", code="estimate.no_variable")
    blocks, valid = _blocks(design, vars_, categorical)
    terms = _expand(blocks)
    g, glab, G, gv = _valid_groups(design, valid, vars_, by, na_rm)
    k = len(terms)
    ones = np.ones(design.n)
    num, j0 = [], 0
    for _, levels, data in blocks:
        if levels is None:   # numeric: one term
            num.append((data, np.where(gv >= 0, gv * k + j0, -1)))
            j0 += 1
        else:                # categorical: the row's level picks the term (one pass)
            num.append((ones, np.where(gv >= 0, gv * k + j0 + data, -1)))
            j0 += len(levels)
    if kind == "mean":
        den = [(ones, gv)]
        dmap = np.arange(G * k) // k
        theta, V, N, D = design._linear(G * k, num, den, G, dmap)
    else:
        theta, V, N, D = design._linear(G * k, num, None)
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    counts = _counts(design, g, valid, G)
    n = np.repeat(counts, k)
    dval = None
    if isinstance(deff, (bool, np.bool_)):
        deff = bool(deff)
    if deff is not False and deff is not None:
        if deff is not True and deff != "replace":
            raise EstimationError(f"deff={deff!r} is not a design-effect type",
                                  code="estimate.bad_deff",
                                  hint="deff=True (against SRS without replacement, R's deff=TRUE) "
                                       "or deff='replace' (with replacement)")
        dval = _deff(design, blocks, k, gv, G, V, kind, replace=(deff == "replace"))
    with_level = any(t[1] is not None for t in terms)
    lab = _labels(glab, G, terms, with_level)
    return _frame(design, lab, theta, se, n, level, df, deff=dval, vcov=V)


def _deff(design, blocks, k, gv, G, V, kind, replace=False):
    """R deff=TRUE: v_design / v_srswor with v_srswor = svyvar(y) (Nhat - n)/(Nhat n) for
    means (times Nhat^2 for totals); svyvar = weighted variance * n/(n-1), n = rows with
    nonzero weight, Nhat = sum of weights (within the domain/group). deff="replace":
    v_srswr = svyvar(y) / n (times Nhat^2 for totals). As R, the SRSWOR reference needs
    weights scaled to the population: where Nhat < n the deff is NaN (with a warning);
    weights scaled to the sample size (Nhat ~ n) give meaningless values - use
    deff="replace" for them."""
    import warnings

    w = design.weights  # zero outside the domain
    ok = gv >= 0
    wv = np.where(ok, w, 0.0)
    gg = np.where(ok, gv, 0)
    Nhat = np.bincount(gg, weights=wv, minlength=G)
    nnz = np.bincount(gg, weights=(wv != 0).astype(float), minlength=G)
    if not replace and np.any(nnz > 0.99 * Nhat):
        warnings.warn("deff: the weights sum to less than (or about) the number of respondents - "
                      "are they scaled to the population? The SRS-without-replacement design "
                      "effect is NaN where they sum to less, and meaningless where they sum to "
                      "about n. Use deff='replace' (CLI: --deff-replace) for weights scaled to "
                      "the sample size.", RuntimeWarning, stacklevel=4)
    out = np.empty(G * k)
    for j, y in enumerate(_term_values(blocks)):
        sw_y = np.bincount(gg, weights=wv * y, minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            ybar = sw_y / Nhat
            ss = np.bincount(gg, weights=wv * (y - ybar[gg]) ** 2, minlength=G)
            s2 = ss / Nhat * nnz / (nnz - 1)
            if replace:
                vsrs = s2 / nnz
            else:
                vsrs = np.where(Nhat < nnz, np.nan, s2 * (Nhat - nnz) / (Nhat * nnz))
            if kind == "total":
                vsrs = vsrs * Nhat ** 2
            out[np.arange(G) * k + j] = np.diag(V)[np.arange(G) * k + j] / vsrs
    return out


def mean(design, var, by=None, *, deff=False, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Weighted mean of numeric variable(s) (R ``svymean``); a categorical variable gives
    the share of each level. Linearisation scores z_i = w_i (y_i - ybar) / sum(w)."""
    return _mean_total(design, var, by, kind="mean", deff=deff, level=level, df=df, na_rm=na_rm)


def total(design, var, by=None, *, deff=False, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Estimated population total sum_i w_i y_i (R ``svytotal``); per level for categorical
    variables."""
    return _mean_total(design, var, by, kind="total", deff=deff, level=level, df=df, na_rm=na_rm)


def proportion(design, var, by=None, *, deff=False, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Share of every level of categorical variable(s) (R ``svymean(~factor)``); numeric
    variables are treated as categorical (one row per distinct value)."""
    return _mean_total(design, var, by, kind="mean", deff=deff, level=level, df=df, na_rm=na_rm,
                       categorical=True)


# ----------------------------------------------------------------------------- ratio / var


def ratio(design, numerator, denominator, by=None, *, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Ratio of totals R = sum w y / sum w x (R ``svyratio``) for every numerator x
    denominator pair; scores z_i = w_i (y_i - R x_i) / X_hat."""
    nums, dens = _as_list(numerator), _as_list(denominator)
    ys = [_numeric(design, v) for v in nums]
    xs = [_numeric(design, v) for v in dens]
    valid = np.ones(design.n, dtype=bool)
    for a in ys + xs:
        valid &= ~np.isnan(a)
    g, glab, G, gv = _valid_groups(design, valid, nums + dens, by, na_rm)
    pairs = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    k = len(pairs)
    num, den = [], []
    for t, (i, j) in enumerate(pairs):
        key = np.where(gv >= 0, gv * k + t, -1)
        num.append((np.nan_to_num(ys[i]), key))
        den.append((np.nan_to_num(xs[j]), key))
    theta, V, N, D = design._linear(G * k, num, den, G * k, np.arange(G * k))
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    terms = [(f"{nums[i]}/{dens[j]}", None, None) for i, j in pairs]
    lab = _labels(glab, G, terms, False)
    n = np.repeat(_counts(design, g, valid, G), k)
    return _frame(design, lab, theta, se, n, level, df, vcov=V)


def var(design, var, by=None, *, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Population variance estimate (R ``svyvar``): sum w (y - ybar)^2 / sum w * n/(n-1),
    n = rows with nonzero weight; SE from the linearisation of the mean of
    u = (y - ybar)^2 n/(n-1) with ybar held fixed (as R)."""
    vars_ = _as_list(var)
    out = []
    for v in vars_:
        y = _numeric(design, v)
        valid = ~np.isnan(y)
        g, glab, G, gv = _valid_groups(design, valid, [v], by, na_rm)
        w = design.weights
        ok = gv >= 0
        gg = np.where(ok, gv, 0)
        wv = np.where(ok, w, 0.0)
        yy = np.where(valid, y, 0.0)
        Nh = np.bincount(gg, weights=wv, minlength=G)
        ybar = np.bincount(gg, weights=wv * yy, minlength=G) / Nh
        nnz = np.bincount(gg, weights=(wv != 0).astype(float), minlength=G)
        u = (yy - ybar[gg]) ** 2 * (nnz / (nnz - 1))[gg]
        theta, V, _, _ = design._linear(G, [(u, gv)], [(np.ones(design.n), gv)], G, np.arange(G))
        lab = _labels(glab, G, [(v, None, None)], False)
        out.append(_frame(design, lab, theta, np.sqrt(np.clip(np.diag(V), 0, None)),
                          _counts(design, g, valid, G), level, df, vcov=V))
    res = pd.concat(out, ignore_index=True) if len(out) > 1 else out[0]
    return res


# ----------------------------------------------------------------------------- quantiles


def _qs(x, w, p):
    """R survey:::qs on data sorted by x (zero weights removed): cumulative weights in
    long double as R's cumsum/sum."""
    cumw = np.cumsum(w.astype(np.longdouble)).astype(np.float64)
    tot = float(np.sum(w.astype(np.longdouble)))
    le = np.flatnonzero(cumw <= p * tot)
    pos = int(le[-1]) if le.size else 0
    posnext = pos if pos == x.size - 1 else pos + 1
    wlow = p - cumw[pos] / tot
    return x[pos], x[posnext], wlow


def _qrule(x, w, p, rule):
    """Weighted quantile rules of R survey (qrule_math, qrule_school, qrule_hf7).
    x, w already sorted by x with zero weights removed."""
    if rule in ("math", "hf1"):
        lo, up, wlow = _qs(x, w, p)
        return lo if wlow == 0 else up
    if rule in ("school", "hf2"):
        lo, up, wlow = _qs(x, w, p)
        return (lo + up) / 2 if wlow == 0 else up
    if rule == "hf7":
        n = x.size
        if n == 1:
            return float(x[0])
        cumw = np.cumsum(w.astype(np.longdouble)).astype(np.float64)
        pk = np.concatenate(([0.0], cumw[:-1])) / cumw[n - 2]
        return float(_approx_linear(pk, x, p))
    raise EstimationError(f"unknown qrule {rule!r}", code="estimate.bad_qrule",
                          hint="one of 'math' (R default), 'school', 'hf7'")


def _approx_linear(xp, yp, x):
    """R approx(xp, yp, x, method='linear', rule=2, ties=mean)."""
    ux, inv = np.unique(xp, return_inverse=True)
    if ux.size < xp.size:
        yp = np.bincount(inv, weights=yp) / np.bincount(inv)
        xp = ux
    return np.interp(x, xp, yp)


def quantile(design, var, q=0.5, by=None, *, qrule="math", level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Quantiles (R ``svyquantile``, survey >= 4.1): qrule "math" (default: inverse of the
    weighted ECDF), "school" or "hf7" (Hyndman–Fan 7); Woodruff interval (interval.type
    "mean"): CI for the CDF at the estimate, F_hat +- t se(F_hat), mapped back through the
    same rule (NaN when it leaves [0, 1]); se = (ci_high - ci_low) / (2 t)."""
    if qrule not in ("math", "school", "hf7", "hf1", "hf2"):
        raise EstimationError(f"unknown qrule {qrule!r}", code="estimate.bad_qrule",
                              hint="one of 'math' (R default), 'school', 'hf7'")
    qs = [float(x) for x in _as_list(q)]
    if any(not 0 <= x <= 1 for x in qs):
        raise EstimationError("quantiles must be in [0, 1]", code="estimate.bad_quantile")
    out = []
    dfv = _df(design, df)
    crit = _qcrit(level, dfv)
    for v in _as_list(var):
        y = _numeric(design, v)
        valid = ~np.isnan(y)
        g, glab, G, gv = _valid_groups(design, valid, [v], by, na_rm)
        w = design.weights
        Q = len(qs)
        qhat = np.full((G, Q), np.nan)
        sorted_groups = []
        for gi in range(G):  # loop over groups (few), vectorised within
            idx = np.flatnonzero((gv == gi) & (w > 0))
            if idx.size == 0:
                sorted_groups.append(None)
                continue
            o = np.argsort(y[idx], kind="stable")
            xs, ws = y[idx][o], w[idx][o]
            sorted_groups.append((xs, ws))
            for qi, p in enumerate(qs):
                qhat[gi, qi] = _qrule(xs, ws, p, qrule)
        yy = np.where(valid, y, 0.0)
        gg = np.maximum(gv, 0)
        num = [((yy <= qhat[gg, qi]).astype(float), np.where(gv >= 0, gv * Q + qi, -1))
               for qi in range(Q)]
        F, V, _, _ = design._linear(G * Q, num, [(np.ones(design.n), gv)], G, np.arange(G * Q) // Q)
        seF = np.sqrt(np.clip(np.diag(V), 0, None))
        lo = np.full(G * Q, np.nan)
        hi = np.full(G * Q, np.nan)
        for gi in range(G):
            if sorted_groups[gi] is None:
                continue
            xs, ws = sorted_groups[gi]
            for qi in range(Q):
                t = gi * Q + qi
                pl, pu = F[t] - crit * seF[t], F[t] + crit * seF[t]
                lo[t] = np.nan if (np.isnan(pl) or pl < 0) else _qrule(xs, ws, pl, qrule)
                hi[t] = np.nan if (np.isnan(pu) or pu > 1) else _qrule(xs, ws, pu, qrule)
        est = qhat.reshape(-1)
        se = (hi - lo) / (2 * crit)
        lab = glab.loc[np.repeat(np.arange(G), Q)].reset_index(drop=True) if len(glab.columns) \
            else pd.DataFrame(index=range(G * Q))
        lab["variable"] = v
        lab["quantile"] = qs * G
        n = np.repeat(_counts(design, g, valid, G), Q)
        fr = _frame(design, lab, est, se, n, level, dfv)
        fr["ci_low"] = lo
        fr["ci_high"] = hi
        # Covariances between quantiles (of different groups or levels) are not estimated:
        # only a single quantile carries a (1 x 1) vcov, so that contrast() refuses to
        # combine quantiles instead of silently assuming independence.
        if len(fr) == 1:
            fr.attrs["vcov"] = Matrix(np.diag(se ** 2), fr.index, est)
        else:
            fr.attrs.pop("vcov", None)
        out.append(fr)
    return pd.concat(out, ignore_index=True) if len(out) > 1 else out[0]


# ----------------------------------------------------------------------------- ciprop


def _indicator(design, var, level_of):
    s = _column(design, var)
    if pd.api.types.is_bool_dtype(s.dtype):
        y = s.to_numpy(dtype=np.float64, na_value=np.nan)
    elif level_of is not None:
        na = s.isna().to_numpy()
        y = np.where(na, np.nan, (s == level_of).to_numpy(dtype=bool, na_value=False).astype(float))
    elif pd.api.types.is_numeric_dtype(s.dtype):
        y = s.to_numpy(dtype=np.float64, na_value=np.nan)
        vals = np.unique(y[~np.isnan(y)])
        if not np.all(np.isin(vals, [0.0, 1.0])):
            raise EstimationError(f"{var!r} is not a 0/1 variable", code="estimate.not_binary",
                                  where=f"variable {var!r}",
                                  hint="pass level_of= to choose the level counted as 'yes'")
    else:
        raise EstimationError(f"{var!r} is categorical; which level is the share of?",
                              code="estimate.not_binary", where=f"variable {var!r}",
                              hint="pass level_of='<level>'")
    return y


def ciprop(design, var, by=None, *, method="logit", level=0.95, df=None, level_of=None,
           na_rm=True) -> pd.DataFrame:
    """Confidence interval for a proportion (R ``svyciprop``), t quantiles on ``df``
    (default the design df, as svyciprop). Methods:

    * "logit" (= "xlogit"): expit(logit(p) +- t se/(p(1-p))) (the svyglm intercept of a
      quasibinomial model, computed from the exact weighted share rather than an IRLS fit);
    * "likelihood": profile of the design-scaled binomial deviance (Rao–Scott scaling);
    * "asin": sin^2(asin(sqrt p) +- t se / (2 sqrt(p(1-p))));
    * "beta": Clopper–Pearson with Korn–Graubard effective n
      n_eff = p(1-p)/var * (qt(a/2, n-1)/qt(a/2, df))^2, n = rows of the design (of the
      domain/group: R's nrow() of the subset svyby passes);
    * "mean": p +- t se;
    * "wilson": Wilson score interval with the effective sample size p(1-p)/var.
    ``se`` is the linearisation SE of the proportion for every method."""
    from scipy import stats

    methods = ("logit", "xlogit", "likelihood", "asin", "beta", "mean", "wilson")
    if method not in methods:
        raise EstimationError(f"unknown ciprop method {method!r}", code="estimate.bad_method",
                              hint="one of " + ", ".join(methods))
    y = _indicator(design, var, level_of)
    valid = ~np.isnan(y)
    g, glab, G, gv = _valid_groups(design, valid, [var], by, na_rm)
    p, V, _, _ = design._linear(G, [(np.nan_to_num(y), gv)], [(np.ones(design.n), gv)], G, np.arange(G))
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    dfv = _df(design, df)
    alpha = 1 - level
    t = _qcrit(level, dfv)
    lo = np.full(G, np.nan)
    hi = np.full(G, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method in ("logit", "xlogit"):
            eta = np.log(p / (1 - p))
            s = se / (p * (1 - p))
            lo, hi = 1 / (1 + np.exp(-(eta - t * s))), 1 / (1 + np.exp(-(eta + t * s)))
        elif method == "mean":
            lo, hi = p - t * se, p + t * se
        elif method == "asin":
            a = np.arcsin(np.sqrt(p))
            s = se / (2 * np.sqrt(p * (1 - p)))
            lo, hi = np.sin(a - t * s) ** 2, np.sin(a + t * s) ** 2
        elif method == "beta":
            # R: nrow(design) - the rows of the (sub)design, here of each domain/group,
            # missing values of var included (svyby hands svyciprop one subset per group)
            n_all = _counts(design, g, np.ones(design.n, dtype=bool), G).astype(float)
            neff = p * (1 - p) / se ** 2
            neff = neff * (stats.t.ppf(alpha / 2, n_all - 1) / stats.t.ppf(alpha / 2, dfv)) ** 2 \
                if np.isfinite(dfv) else neff * (stats.t.ppf(alpha / 2, n_all - 1) / stats.norm.ppf(alpha / 2)) ** 2
            lo = stats.beta.ppf(alpha / 2, neff * p, neff * (1 - p) + 1)
            hi = stats.beta.ppf(1 - alpha / 2, neff * p + 1, neff * (1 - p))
        elif method == "wilson":
            neff = p * (1 - p) / se ** 2
            z2 = t * t
            centre = (p + z2 / (2 * neff)) / (1 + z2 / neff)
            half = t * np.sqrt(p * (1 - p) / neff + z2 / (4 * neff ** 2)) / (1 + z2 / neff)
            lo, hi = centre - half, centre + half
        elif method == "likelihood":
            lo, hi = _ciprop_likelihood(design, y, gv, G, p, se, t)
    n = _counts(design, g, valid, G)
    lab = _labels(glab, G, [(var, None, None)], False)
    fr = _frame(design, lab, p, se, n, level, dfv, vcov=V)
    fr["ci_low"] = lo
    fr["ci_high"] = hi
    fr.attrs["method"] = method
    return fr


def _ciprop_likelihood(design, y, gv, G, p, se, t):
    """Profile-likelihood interval of the intercept of a quasibinomial svyglm with the
    deviance rescaled by design variance / model variance (R confint.svyglm
    method="likelihood"): solve (D(b) - D(b_hat)) / s = t^2, s = var_design/var_model."""
    from scipy import optimize

    w = design.weights
    lo = np.full(G, np.nan)
    hi = np.full(G, np.nan)
    for gi in range(G):  # loop over groups
        m = (gv == gi) & (w > 0)
        ww = w[m] / w[m].mean()
        yy = y[m]
        ph = p[gi]
        if not 0 < ph < 1:
            continue
        bh = np.log(ph / (1 - ph))

        def dev(b):
            mu = 1 / (1 + np.exp(-b))
            return -2 * np.sum(ww * (yy * np.log(mu) + (1 - yy) * np.log(1 - mu)))

        info = np.sum(ww) * ph * (1 - ph)            # model information of the intercept
        var_design = (se[gi] / (ph * (1 - ph))) ** 2
        s = var_design * info
        d0 = dev(bh)
        f = lambda b: (dev(b) - d0) / s - t * t
        step = np.sqrt(var_design) * t
        a, b = bh - step, bh
        while f(a) < 0:
            a -= step
        lo[gi] = 1 / (1 + np.exp(-optimize.brentq(f, a, bh, xtol=1e-14, rtol=1e-15)))
        b = bh + step
        while f(b) < 0:
            b += step
        hi[gi] = 1 / (1 + np.exp(-optimize.brentq(f, bh, b, xtol=1e-14, rtol=1e-15)))
    return lo, hi


# ----------------------------------------------------------------------------- contrasts


def _row_labels(result: pd.DataFrame) -> list[str]:
    skip = {"estimate", "se", "ci_low", "ci_high", "df", "n", "cv", "deff", "t_value", "p_value"}
    cols = [c for c in result.columns if c not in skip]
    keep = [c for c in cols if result[c].nunique(dropna=False) > 1] or cols[:1]
    return [":".join(str(result[c].iloc[i]) for c in keep) for i in range(len(result))]


def contrast(result: pd.DataFrame, weights, *, level=0.95, df=None) -> pd.DataFrame:
    """Linear contrasts of the rows of an estimate, with SE (R ``svycontrast``):
    estimate = L theta, se = sqrt(L V L') using ``result.attrs["vcov"]``.

    weights: a sequence aligned with the rows, or a dict {row label: coefficient}
    where a row label is the value of the columns that vary between rows (e.g. the
    by-group ``"w2"``, the variable ``"api00"``, or ``"w2:female"`` for several), or a
    row position; or a dict {name: such a dict} for several contrasts.

    >>> m = design.mean("age", by="wave")                 # doctest: +SKIP
    >>> design.contrast(m, {"w2": 1, "w1": -1})           # wave 2 - wave 1  # doctest: +SKIP
    """
    M = result.attrs.get("vcov")
    V = None if M is None else np.asarray(M)
    M_est = None
    idx = getattr(M, "index", None)
    if V is not None and idx is not None and tuple(result.index) != idx:
        # rows were sorted or filtered after estimation: pick the matching covariances
        pos = {k: i for i, k in enumerate(idx)}
        if result.index.has_duplicates or not all(k in pos for k in result.index):
            V = None
        else:
            sel = np.array([pos[k] for k in result.index], dtype=np.int64)
            V = V[np.ix_(sel, sel)]
            if getattr(M, "estimates", None) is not None:
                M_est = M.estimates[sel]
    elif V is not None:
        M_est = getattr(M, "estimates", None)
    if V is not None and M_est is not None and (
            len(M_est) != len(result)
            or not np.array_equal(M_est, result["estimate"].to_numpy(dtype=float), equal_nan=True)):
        V = None  # rows re-ordered and re-indexed, or estimates changed: no safe match
    if V is None or V.shape != (len(result), len(result)):
        raise EstimationError("this result carries no covariance matrix for its rows",
                              code="estimate.no_vcov",
                              hint="use the DataFrame returned by mean/total/proportion/ratio/ciprop "
                                   "(rows may be sorted or filtered, not re-indexed or concatenated); "
                                   "quantiles of several groups carry no covariances")
    labels = _row_labels(result)
    k = len(result)

    def vec(spec):
        if isinstance(spec, dict):
            L = np.zeros(k)
            for key, c in spec.items():
                if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and str(key) not in labels:
                    i = int(key)
                else:
                    if str(key) not in labels:
                        raise EstimationError(f"no row labelled {key!r} in the result",
                                              code="estimate.bad_contrast",
                                              hint="row labels: " + ", ".join(labels))
                    i = labels.index(str(key))
                L[i] += float(c)
            return L
        L = np.asarray(spec, dtype=float)
        if L.shape != (k,):
            raise EstimationError(f"contrast has {L.size} coefficients for {k} rows",
                                  code="estimate.bad_contrast")
        return L

    if isinstance(weights, dict) and weights and all(isinstance(v, dict) for v in weights.values()):
        names = list(weights)
        Ls = [vec(weights[nm]) for nm in names]
    else:
        Ls = [vec(weights)]
        names = ["contrast"]
    Lm = np.vstack(Ls)
    est = Lm @ result["estimate"].to_numpy(dtype=float)
    Vc = Lm @ V @ Lm.T
    se = np.sqrt(np.clip(np.diag(Vc), 0, None))
    dfv = float(result["df"].iloc[0]) if df is None else float(df)
    q = _qcrit(level, dfv)
    out = pd.DataFrame({"contrast": names, "estimate": est, "se": se, "ci_low": est - q * se,
                        "ci_high": est + q * se, "df": dfv})
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cv"] = se / np.abs(est)
    out.attrs["vcov"] = Matrix(Vc, out.index, est)
    return out


# ----------------------------------------------------------------------------- chisq


def chisq(design, a: str, b: str, *, statistic: str = "F", na_rm: bool = True) -> pd.Series:
    """Test of association in the two-way table a x b (R ``svychisq``, na.rm=TRUE).

    X2 = Pearson statistic of the weighted table rescaled to N = rows of the design (of the
    domain for a subset, as R's nrow(); rows with a missing a or b count in N), over the
    levels present (R tabulates ``factor()`` of the values, so unused levels drop out);
    Delta = Rao–Scott design-effect matrix of the interaction contrasts (Rao & Scott 1984).
    statistic="F": F = X2/tr(Delta) on (d0, d0 nu) df, d0 = tr(Delta)^2/tr(Delta^2),
    nu = design df; "Chisq": reports X2, p from X2/mean(diag Delta) on (r-1)(c-1) df;
    "Wald": Wald test of the interaction contrasts N_ij - N_i. N_.j / N, F = W/ndf on
    (ndf, nu); "adjWald": F (nu - ndf + 1)/nu on (ndf, nu - ndf + 1).
    Returns a Series: statistic_name, statistic, ndf, ddf (or df), p_value, X2,
    X2_first_order, trace_delta, mean_delta, d0, nu, N; the weighted table in
    ``attrs["table"]``."""
    from scipy import stats

    if statistic not in ("F", "Chisq", "Wald", "adjWald"):
        raise EstimationError(f"unknown statistic {statistic!r}", code="estimate.bad_statistic",
                              hint="one of F, Chisq, Wald, adjWald")
    dom = design.domain_mask
    ca, la = _levels(_column(design, a))
    cb, lb = _levels(_column(design, b))
    valid = (ca >= 0) & (cb >= 0)
    _check_na(design, valid, [a, b], na_rm)
    # keep the levels present in the (domain's) data
    codes = []
    for c, lev in ((ca, la), (cb, lb)):
        used = np.flatnonzero(np.bincount(c[(c >= 0) & dom], minlength=len(lev)) > 0)
        remap = np.full(len(lev), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        codes.append((np.where(c >= 0, remap[np.maximum(c, 0)], -1), [lev[i] for i in used]))
    (ca, la), (cb, lb) = codes
    nr, nc = len(la), len(lb)
    for v, k in ((a, nr), (b, nc)):
        if k < 2:
            raise EstimationError(f"{v!r} has {k} level(s) in the data; a test of association needs "
                                  "at least two", code="estimate.bad_table", where=f"variable {v!r}")
    valid = (ca >= 0) & (cb >= 0)
    N = int(dom.sum())
    nu = design.degf
    cell = np.where(valid, ca + nr * cb, -1)          # rows vary fastest (R interaction order)
    K = nr * nc
    num = [(np.ones(N), cell)]
    mean2, V, tot, _ = design._linear(K, num, [(np.ones(N), np.where(valid, 0, -1))], 1, np.zeros(K, int))
    w = design.weights
    table = np.bincount(cell[valid], weights=w[valid], minlength=K).reshape(nc, nr).T
    # Pearson X2 of the table rescaled to N rows
    obs = table * N / table.sum()
    exp_ = np.outer(obs.sum(1), obs.sum(0)) / obs.sum()
    X2 = float(np.sum((obs - exp_) ** 2 / exp_))
    # Rao–Scott Delta
    rows = np.tile(np.arange(nr), nc)
    cols = np.repeat(np.arange(nc), nr)
    X1 = np.column_stack([np.ones(K)] + [(rows == i).astype(float) for i in range(1, nr)]
                         + [(cols == j).astype(float) for j in range(1, nc)])
    X12 = np.column_stack([((rows == i) & (cols == j)).astype(float)
                           for j in range(1, nc) for i in range(1, nr)])
    Q1 = np.linalg.qr(X1)[0]
    Cmat = X12 - Q1 @ (Q1.T @ X12)
    with np.errstate(divide="ignore"):
        iD = np.diag(np.where(mean2 == 0, 0.0, 1.0 / mean2))
    denom = Cmat.T @ (iD / N) @ Cmat
    numr = Cmat.T @ iD @ V @ iD @ Cmat
    Delta = np.linalg.solve(denom, numr)
    tr = float(np.trace(Delta))
    tr2 = float(np.trace(Delta @ Delta))
    d0 = tr * tr / tr2
    res = dict(statistic_name=statistic, X2=X2, X2_first_order=X2 / (tr / Delta.shape[0]),
               trace_delta=tr, mean_delta=tr / Delta.shape[0], d0=d0, nu=float(nu), N=float(N))
    dfree = (nr - 1) * (nc - 1)
    if statistic == "F":
        F = X2 / tr
        res.update(statistic=F, ndf=d0, ddf=d0 * nu, p_value=float(stats.f.sf(F, d0, d0 * nu)))
    elif statistic == "Chisq":
        res.update(statistic_name="X-squared", statistic=X2, df=float(dfree),
                   p_value=float(stats.chi2.sf(X2 / res["mean_delta"], dfree)))
    else:
        # Wald test on the totals of cells, row margins, column margins and count
        Y = np.column_stack([(cell == t).astype(float) for t in range(K)]
                            + [((ca == i) & valid).astype(float) for i in range(nr)]
                            + [((cb == j) & valid).astype(float) for j in range(nc)]
                            + [valid.astype(float)])
        cells, Vt = design.total_vcov(Y)
        Nr = cells[K:K + nr]
        Nc = cells[K + nr:K + nr + nc]
        Nt = cells[-1]
        Jcb = np.zeros((K, Y.shape[1]))
        Jcb[:, :K] = np.eye(K)
        for t in range(K):
            i, j = rows[t], cols[t]
            Jcb[t, K + i] = -Nc[j] / Nt
            Jcb[t, K + nr + j] = -Nr[i] / Nt
            Jcb[t, -1] = Nr[i] * Nc[j] / Nt ** 2
        Yc = cells[:K] - np.outer(Nr, Nc).T.reshape(-1) / Nt if False else \
            cells[:K] - (Nr[rows] * Nc[cols]) / Nt
        Vc = Jcb @ Vt @ Jcb.T
        use = np.flatnonzero((rows > 0) & (cols > 0))
        W = float(Yc[use] @ np.linalg.solve(Vc[np.ix_(use, use)], Yc[use]))
        F = W / dfree
        if statistic == "Wald":
            res.update(statistic_name="F", statistic=F, ndf=float(dfree), ddf=float(nu),
                       p_value=float(stats.f.sf(F, dfree, nu)))
        else:
            Fa = F * (nu - dfree + 1) / nu
            res.update(statistic_name="F", statistic=Fa, ndf=float(dfree), ddf=float(nu - dfree + 1),
                       p_value=float(stats.f.sf(Fa, dfree, nu - dfree + 1)))
    out = pd.Series(res, dtype=object)
    out.attrs["table"] = pd.DataFrame(table, index=pd.Index(la, name=a), columns=pd.Index(lb, name=b))
    return out
