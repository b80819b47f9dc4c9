"""Design-based estimators (called through :class:`~diaspora_survey.survey.design.SurveyDesign`).

Every estimator returns a tidy DataFrame: the ``by`` columns (if any), ``variable``
(and ``level`` for categorical variables, ``quantile`` for quantiles), then
``estimate, se, ci_low, ci_high, df, n, cv`` (+ ``deff`` on request).

* ``n`` is the unweighted number of rows used (in the domain, not missing);
* ``df`` the degrees of freedom of the interval (t intervals): by default R's
  ``degf()`` of the design - for a domain (``subset``, each group of ``by=``) that of
  the subset, the PSUs and strata that keep a nonzero weight (R's
  ``degf(subset(design, ...))``); ``df="full"`` for the full design's #PSU - #strata;
  ``float("inf")`` for normal (Wald) intervals as R's ``confint()`` default;
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
from ._roots import _zeroin

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


#: a categorical variable with more distinct values is an identifier or free text, not a category
MAX_LEVELS = 500


def _check_not_identifier(s: pd.Series, var) -> None:
    """Refuse a category-like column with more than :data:`MAX_LEVELS` distinct values (a
    respondent id, free text): one proportion per value would be meaningless, identifying and
    of quadratic cost."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        k = len(s.cat.categories)
        if k <= MAX_LEVELS:
            return
    k = int(s.nunique(dropna=True))
    if k > MAX_LEVELS:
        raise EstimationError(f"variable {var!r} has {k:,} distinct values: an identifier or free "
                              "text, not a category (or a number)",
                              code="estimate.identifier", where=f"variable {var!r}",
                              hint=f"estimate numeric variables or categories with at most "
                                   f"{MAX_LEVELS} values")


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


def _qcrit(level: float, df):
    """Critical value of the interval: qt(a, df) or qnorm(a), a = 1 - (1-level)/2; df a number
    or an array. scipy.special's stdtrit/ndtri are what scipy.stats' t.ppf/norm.ppf evaluate
    (the same numbers) without importing scipy.stats (about 1 s, the bulk of a first estimate)."""
    from scipy import special

    if not 0 < level < 1:
        raise EstimationError(f"level must be in (0, 1), got {level}", code="estimate.bad_level")
    a = 1 - (1 - level) / 2
    if isinstance(df, np.ndarray):
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(df), special.ndtri(a),
                            special.stdtrit(np.where(np.isinf(df), 1, df), a))
    return float(special.ndtri(a)) if (df is None or np.isinf(df)) else float(special.stdtrit(df, a))


def _df(design, df):
    """The df of a whole-design statistic: the design's (a subset's own, R's degf()),
    ``"full"`` for the full design's, or the number given."""
    if df is None:
        return float(design.degf)
    if isinstance(df, str):
        if df == "full":
            return float(design.full_degf)
        raise EstimationError(f"df={df!r} is not a number", code="estimate.bad_df",
                              hint="df=None (the domain's degrees of freedom, R's degf() of the "
                                   "subset), df='full' (the full design's), or a number (inf: normal)")
    try:
        return float(df)
    except (TypeError, ValueError):
        raise EstimationError(f"df={df!r} is not a number", code="estimate.bad_df",
                              hint="df=None, df='full' or a number") from None


def _group_df(design, df, g, G, k: int = 1):
    """Degrees of freedom per result row (G groups x k terms, group-major): by default
    R's ``degf()`` of each group's subset design (svyby subsets the design per group;
    the domain's PSUs and strata with a nonzero weight), ``df="full"`` the full
    design's, or the number given. Returns a float or a (G*k,) array."""
    if df is not None:
        return _df(design, df)
    if G == 1 and not (np.asarray(g) < 0).any():
        return float(design.degf)
    return np.repeat(design.domain_degf(g, G), k)


def _frame(design, labels: pd.DataFrame, est, se, n, level, df, extra: dict | None = None,
           deff=None, vcov=None) -> pd.DataFrame:
    est = np.asarray(est, dtype=float)
    se = np.asarray(se, dtype=float)
    dfv = df if isinstance(df, np.ndarray) else _df(design, df)
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
            _check_not_identifier(s, v)
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
    return _frame(design, lab, theta, se, n, level, _group_df(design, df, g, G, k), deff=dval, vcov=V)


def warn_deff_scaling(nnz: np.ndarray, Nhat: np.ndarray, replace: bool) -> None:
    """Warn when the weights of a group sum to about n or less (nnz: respondents with a
    nonzero weight, Nhat: the weight total): the SRS-without-replacement deff (R's
    ``deff=TRUE``) needs weights scaled to the population."""
    import warnings

    if not replace and np.any(nnz > 0.99 * Nhat):
        warnings.warn("deff: the weights sum to less than (or about) the number of respondents - "
                      "are they scaled to the population? The SRS-without-replacement design "
                      "effect is NaN where they sum to less, and meaningless where they sum to "
                      "about n. Use deff='replace' (CLI: --deff-replace) for weights scaled to "
                      "the sample size.", RuntimeWarning, stacklevel=5)


def _deff(design, blocks, k, gv, G, V, kind, replace=False):
    """R deff=TRUE: v_design / v_srswor with v_srswor = svyvar(y) (Nhat - n)/(Nhat n) for
    means (times Nhat^2 for totals); svyvar = weighted variance * n/(n-1), n = rows with
    nonzero weight, Nhat = sum of weights (within the domain/group). deff="replace":
    v_srswr = svyvar(y) / n (times Nhat^2 for totals). As R, the SRSWOR reference needs
    weights scaled to the population: where Nhat < n the deff is NaN (with a warning);
    weights scaled to the sample size (Nhat ~ n) give meaningless values - use
    deff="replace" for them."""
    w = design.weights  # zero outside the domain
    ok = gv >= 0
    wv = np.where(ok, w, 0.0)
    gg = np.where(ok, gv, 0)
    Nhat = np.bincount(gg, weights=wv, minlength=G)
    nnz = np.bincount(gg, weights=(wv != 0).astype(float), minlength=G)
    warn_deff_scaling(nnz, Nhat, replace)
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
    zero = np.flatnonzero(np.asarray(D) == 0)
    if zero.size:   # N / 0 would be inf (or NaN) with a meaningless SE of 0
        i, j = pairs[zero[0] % k]
        raise EstimationError(f"the weighted total of the denominator {dens[j]!r} is 0"
                              + (f" in {zero.size} of {G * k} group(s)" if G * k > 1 else ""),
                              code="estimate.zero_denominator", where=f"ratio {nums[i]}/{dens[j]}",
                              hint="a ratio is undefined there; choose another denominator or "
                                   "leave those groups out (subset)")
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    terms = [(f"{nums[i]}/{dens[j]}", None, None) for i, j in pairs]
    lab = _labels(glab, G, terms, False)
    n = np.repeat(_counts(design, g, valid, G), k)
    return _frame(design, lab, theta, se, n, level, _group_df(design, df, g, G, k), vcov=V)


def var(design, var, by=None, *, level=0.95, df=None, na_rm=True, covariance: bool = False) -> pd.DataFrame:
    """Population variance estimate (R ``svyvar``): sum w (y - ybar)^2 / sum w * n/(n-1),
    n = rows with nonzero weight in the (group's) design (R counts them before dropping
    missing values); SE from the linearisation of the mean of u = (y - ybar)^2 n/(n-1)
    with ybar held fixed (as R).

    covariance=True (several variables): R's ``svyvar(~a+b+c)`` matrix - one row per
    pair (``variable``, ``variable2``; all p x p, row-major) with the covariance
    sum w (a - abar)(b - bbar) / sum w * n/(n-1) and its SE; rows with a missing value
    in any of the variables are dropped jointly (R's na.rm). ``attrs["matrix"]`` holds
    the estimates as a p x p DataFrame (per group: a dict group -> matrix)."""
    vars_ = _as_list(var)
    if covariance:
        return _covariance(design, vars_, by, level=level, df=df, na_rm=na_rm)
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
        nnz = _nonzero_rows(design, g, G)
        u = (yy - ybar[gg]) ** 2 * (nnz / (nnz - 1))[gg]
        theta, V, _, _ = design._linear(G, [(u, gv)], [(np.ones(design.n), gv)], G, np.arange(G))
        lab = _labels(glab, G, [(v, None, None)], False)
        out.append(_frame(design, lab, theta, np.sqrt(np.clip(np.diag(V), 0, None)),
                          _counts(design, g, valid, G), level, _group_df(design, df, g, G), vcov=V))
    res = pd.concat(out, ignore_index=True) if len(out) > 1 else out[0]
    return res


def _nonzero_rows(design, g, G):
    """R's n of svyvar: rows with a nonzero weight in each group's (sub)design."""
    w = design.weights
    ok = (g >= 0) & (w != 0)
    return np.bincount(g[ok], minlength=G).astype(float)


def _covariance(design, vars_, by, *, level, df, na_rm):
    if len(vars_) < 1:
        raise EstimationError("no variable given", code="estimate.no_variable")
    ys = [_numeric(design, v) for v in vars_]
    valid = np.ones(design.n, dtype=bool)
    for y in ys:
        valid &= ~np.isnan(y)
    g, glab, G, gv = _valid_groups(design, valid, vars_, by, na_rm)
    w = design.weights
    ok = gv >= 0
    gg = np.where(ok, gv, 0)
    wv = np.where(ok, w, 0.0)
    Nh = np.bincount(gg, weights=wv, minlength=G)
    cen = []
    for y in ys:
        yy = np.where(valid, y, 0.0)
        ybar = np.bincount(gg, weights=wv * yy, minlength=G) / Nh
        cen.append(yy - ybar[gg])
    nnz = _nonzero_rows(design, g, G)
    fac = (nnz / (nnz - 1))[gg]
    p = len(vars_)
    k = p * p
    pairs = [(a, b) for a in range(p) for b in range(p)]
    num = [(cen[a] * cen[b] * fac, np.where(gv >= 0, gv * k + t, -1)) for t, (a, b) in enumerate(pairs)]
    theta, V, _, _ = design._linear(G * k, num, [(np.ones(design.n), gv)], G, np.arange(G * k) // k)
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    lab = _labels(glab, G, [(vars_[a], None, None) for a, _ in pairs], False)
    lab.insert(lab.columns.get_loc("variable") + 1, "variable2", [vars_[b] for _, b in pairs] * G)
    n = np.repeat(_counts(design, g, valid, G), k)
    fr = _frame(design, lab, theta, se, n, level, _group_df(design, df, g, G, k), vcov=V)
    mats = [pd.DataFrame(theta[gi * k:(gi + 1) * k].reshape(p, p), index=vars_, columns=vars_)
            for gi in range(G)]
    fr.attrs["matrix"] = mats[0] if G == 1 and not len(glab.columns) else \
        {tuple(glab.iloc[gi]) if len(glab.columns) > 1 else glab.iloc[gi, 0]: mats[gi] for gi in range(G)}
    return fr


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


QUANTILE_INTERVALS = ("mean", "xlogit", "beta", "asin", "score")


def _r_iqr(x):
    """R's IQR(x): quantile type 7."""
    q75, q25 = np.quantile(x, [0.75, 0.25])
    return float(q75 - q25)


def quantile(design, var, q=0.5, by=None, *, qrule="math", level=0.95, df=None, na_rm=True,
             interval_type: str = "mean") -> pd.DataFrame:
    """Quantiles (R ``svyquantile``, survey >= 4.1): qrule "math" (default: inverse of the
    weighted ECDF), "school" or "hf7" (Hyndman–Fan 7), with R's ``interval.type``:

    * "mean" (Woodruff, default): CI for the CDF at the estimate, F_hat +- t se(F_hat),
      mapped back through the same rule (NaN when it leaves [0, 1]);
    * "xlogit": the CDF interval on the logit scale, expit(logit F +- t se/(F(1-F)));
    * "asin": sin^2(asin sqrt F +- t se/(2 sqrt(F(1-F))));
    * "beta": Clopper–Pearson for F with the Korn–Graubard effective n (as ciprop);
    * "score": Francisco & Fuller's test inversion: the roots of
      mean(U)/se(U) = -+t with U = [x > theta] - (1-p) (R's ffullerCI, uniroot step for
      step), mapped back through the rule at the unweighted share of x <= root.

    se = (ci_high - ci_low) / (2 t). df: None = R's degf() of the (group's) design
    after dropping rows with a missing value (R: design[nas == 0, ], then degf);
    "full" = the full design's; or a number. For a domain, "beta" and "score" use
    the domain's rows (R's nrow() of the subset)."""
    from scipy import stats

    if qrule not in ("math", "school", "hf7", "hf1", "hf2"):
        raise EstimationError(f"unknown qrule {qrule!r}", code="estimate.bad_qrule",
                              hint="one of 'math' (R default), 'school', 'hf7'")
    if interval_type not in QUANTILE_INTERVALS:
        raise EstimationError(f"unknown interval_type {interval_type!r}", code="estimate.bad_interval",
                              hint="one of " + ", ".join(QUANTILE_INTERVALS) + " (R's interval.type)")
    try:
        qs = [float(x) for x in _as_list(q)]
    except (TypeError, ValueError):
        raise EstimationError(f"quantiles are numbers in [0, 1], not {q!r}", code="estimate.bad_quantile",
                              hint="e.g. q=0.5 for the median, q=[0.25, 0.75]") from None
    if not qs:
        raise EstimationError("no quantile given", code="estimate.bad_quantile", hint="e.g. q=0.5")
    if any(not 0 <= x <= 1 for x in qs):
        raise EstimationError("quantiles must be in [0, 1]", code="estimate.bad_quantile")
    out = []
    alpha = 1 - level
    for v in _as_list(var):
        y = _numeric(design, v)
        valid = ~np.isnan(y)
        g, glab, G, gv = _valid_groups(design, valid, [v], by, na_rm)
        w = design.weights
        Q = len(qs)
        dfg = _group_df(design, df, gv, G)
        dfg = np.broadcast_to(np.asarray(dfg, dtype=float), (G,)).copy()
        design_dfg = np.broadcast_to(np.asarray(_group_df(design, None, gv, G), dtype=float), (G,))
        crit_g = _qcrit(level, dfg)
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
        dom = design.domain_mask
        for gi in range(G):
            if sorted_groups[gi] is None:
                continue
            xs, ws = sorted_groups[gi]
            crit = float(crit_g[gi])
            rows_g = np.flatnonzero((gv == gi) & dom)   # R: the rows of the group's subset
            for qi in range(Q):
                t = gi * Q + qi
                Ft, st = F[t], seF[t]
                with np.errstate(divide="ignore", invalid="ignore"):
                    if interval_type == "mean":
                        pl, pu = Ft - crit * st, Ft + crit * st
                    elif interval_type == "xlogit":
                        eta, s = np.log(Ft / (1 - Ft)), st / (Ft * (1 - Ft))
                        pl, pu = 1 / (1 + np.exp(-(eta - crit * s))), 1 / (1 + np.exp(-(eta + crit * s)))
                    elif interval_type == "asin":
                        a0, s = np.arcsin(np.sqrt(Ft)), st / (2 * np.sqrt(Ft * (1 - Ft)))
                        pl, pu = np.sin(a0 - crit * s) ** 2, np.sin(a0 + crit * s) ** 2
                    elif interval_type == "beta":   # R: degf(design) whatever df= says
                        n_rows = rows_g.size
                        neff = Ft * (1 - Ft) / st ** 2
                        neff = neff * (stats.t.ppf(alpha / 2, n_rows - 1)
                                       / stats.t.ppf(alpha / 2, design_dfg[gi])) ** 2
                        pl = stats.beta.ppf(alpha / 2, neff * Ft, neff * (1 - Ft) + 1)
                        pu = stats.beta.ppf(1 - alpha / 2, neff * Ft + 1, neff * (1 - Ft))
                    else:
                        pl, pu = _score_limits(design, y, rows_g, gv, gi, qs[qi], crit, alpha, dfg[gi])
                lo[t] = np.nan if (np.isnan(pl) or pl < 0) else _qrule(xs, ws, pl, qrule)
                hi[t] = np.nan if (np.isnan(pu) or pu > 1) else _qrule(xs, ws, pu, qrule)
        est = qhat.reshape(-1)
        crit_rows = np.repeat(crit_g, Q)
        se = (hi - lo) / (2 * crit_rows)
        lab = glab.loc[np.repeat(np.arange(G), Q)].reset_index(drop=True) if len(glab.columns) \
            else pd.DataFrame(index=range(G * Q))
        lab["variable"] = v
        lab["quantile"] = qs * G
        n = np.repeat(_counts(design, g, valid, G), Q)
        fr = _frame(design, lab, est, se, n, level, np.repeat(dfg, Q))
        fr["ci_low"] = lo
        fr["ci_high"] = hi
        fr.attrs["interval_type"] = interval_type
        # Covariances between quantiles (of different groups or levels) are not estimated:
        # only a single quantile carries a (1 x 1) vcov, so that contrast() refuses to
        # combine quantiles instead of silently assuming independence.
        if len(fr) == 1:
            fr.attrs["vcov"] = Matrix(np.diag(se ** 2), fr.index, est)
        else:
            fr.attrs.pop("vcov", None)
        out.append(fr)
    return pd.concat(out, ignore_index=True) if len(out) > 1 else out[0]


def _score_limits(design, y, rows_g, gv, gi, p, crit, alpha, dfv):
    """R's ffullerCI: the shares of x <= the roots of the score test, (lower, upper)."""
    from scipy import stats

    x = y[rows_g]
    keep = np.where(gv == gi, 0, -1)
    ones = np.ones(design.n)
    qlim_lo = float(stats.norm.isf(alpha / 2) if np.isinf(dfv) else stats.t.isf(alpha / 2, dfv))

    def score(theta, qlimit):
        u = (y > theta).astype(float) - (1 - p)
        m, V, _, _ = design._linear(1, [(np.nan_to_num(u), keep)], [(ones, keep)], 1, np.zeros(1, int))
        return float(m[0] / np.sqrt(V[0, 0])) - qlimit

    iqr = _r_iqr(x)
    lowerT, upperT = float(x.min()) + iqr / 100, float(x.max()) - iqr / 100
    tol = 1 / (100 * np.sqrt(rows_g.size))
    qlow = _zeroin(lambda th: score(th, qlim_lo), lowerT, upperT, tol)
    qup = _zeroin(lambda th: score(th, -qlim_lo), lowerT, upperT, tol)
    return float(np.mean(x <= qlow)), float(np.mean(x <= qup))


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
    * "likelihood": R's profile of the quasibinomial deviance over the svyglm
      dispersion, scaled by design/model variance (see ``_ciprop_likelihood``; on a
      replicate design, where R returns NA, the replicate variance of the logit is used);
    * on a replicate design "logit" uses the replicate variance of logit(p) (R refits
      the svyglm intercept per replicate) rather than the delta method;
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
    # R: df = degf(design) of the (group's) subset design, missing values included
    dfv = _group_df(design, df, g, G)
    design_df = _group_df(design, None, g, G)   # beta always uses degf(design), as R
    dfv = np.broadcast_to(np.asarray(dfv, dtype=float), (G,)).copy()
    design_df = np.broadcast_to(np.asarray(design_df, dtype=float), (G,)).copy()
    alpha = 1 - level
    t = _qcrit(level, dfv)
    lo = np.full(G, np.nan)
    hi = np.full(G, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method in ("logit", "xlogit"):
            eta = np.log(p / (1 - p))
            s = se / (p * (1 - p))
            if method == "logit" and design.is_replicate:
                # R: the svyglm intercept's replicate variance (refits per replicate), not
                # the delta method
                s = np.sqrt(_rep_logit_var(design, y, gv, G, eta))
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
            neff = neff * (stats.t.ppf(alpha / 2, n_all - 1) / stats.t.ppf(alpha / 2, design_df)) ** 2
            lo = stats.beta.ppf(alpha / 2, neff * p, neff * (1 - p) + 1)
            hi = stats.beta.ppf(1 - alpha / 2, neff * p + 1, neff * (1 - p))
        elif method == "wilson":
            neff = p * (1 - p) / se ** 2
            z2 = t * t
            centre = (p + z2 / (2 * neff)) / (1 + z2 / neff)
            half = t * np.sqrt(p * (1 - p) / neff + z2 / (4 * neff ** 2)) / (1 + z2 / neff)
            lo, hi = centre - half, centre + half
        elif method == "likelihood":
            lo, hi = _ciprop_likelihood(design, y, g, gv, G, level, dfv)
    n = _counts(design, g, valid, G)
    lab = _labels(glab, G, [(var, None, None)], False)
    fr = _frame(design, lab, p, se, n, level, design_df if method == "beta" else dfv, vcov=V)
    fr["ci_low"] = lo
    fr["ci_high"] = hi
    fr.attrs["method"] = method
    return fr


def _rep_logit_var(design, y, gv, G, eta):
    """Replicate variance of logit(p) per group (R's svyglm(y ~ 1, quasibinomial) on a
    replicate design: the intercept refitted with every replicate's weights)."""
    R = design.replicate_info["repw"] * design.domain_mask[:, None]
    ok = (gv >= 0) & ~np.isnan(y)
    yy = np.where(ok, np.nan_to_num(y), 0.0)
    gg = np.where(ok, gv, 0)
    from scipy import sparse

    M = sparse.csr_matrix((ok.astype(float), (gg, np.arange(design.n))), shape=(G, design.n))
    num = np.asarray(M @ (R * yy[:, None])).T      # (R, G)
    den = np.asarray(M @ R).T
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = num / den
        er = np.log(pr / (1 - pr))
    out = np.full(G, np.nan)
    for gi in range(G):
        if np.isfinite(eta[gi]) if gi < len(eta) else False:
            out[gi] = float(design._rep_vcov(er[:, [gi]], eta[[gi]])[0, 0])
    return out


def _fmm_spline(x, y):
    """R's spline_coef(method="fmm") (Forsythe, Malcolm & Moler): (b, c, d)."""
    n = x.size
    b, c, d = np.zeros(n), np.zeros(n), np.zeros(n)
    if n < 3:
        t = (y[1] - y[0]) / (x[1] - x[0])
        b[:] = t
        return b, c, d
    nm1 = n - 1
    d[0] = x[1] - x[0]
    c[1] = (y[1] - y[0]) / d[0]
    for i in range(1, nm1):
        d[i] = x[i + 1] - x[i]
        b[i] = 2.0 * (d[i - 1] + d[i])
        c[i + 1] = (y[i + 1] - y[i]) / d[i]
        c[i] = c[i + 1] - c[i]
    b[0] = -d[0]
    b[nm1] = -d[n - 2]
    c[0] = c[nm1] = 0.0
    if n > 3:
        c[0] = c[2] / (x[3] - x[1]) - c[1] / (x[2] - x[0])
        c[nm1] = c[n - 2] / (x[nm1] - x[n - 3]) - c[n - 3] / (x[n - 2] - x[n - 4])
        c[0] = c[0] * d[0] * d[0] / (x[3] - x[0])
        c[nm1] = -c[nm1] * d[n - 2] * d[n - 2] / (x[nm1] - x[n - 4])
    for i in range(1, n):
        t = d[i - 1] / b[i - 1]
        b[i] = b[i] - t * d[i - 1]
        c[i] = c[i] - t * c[i - 1]
    c[nm1] = c[nm1] / b[nm1]
    for i in range(n - 2, -1, -1):
        c[i] = (c[i] - d[i] * c[i + 1]) / b[i]
    b[nm1] = (y[nm1] - y[n - 2]) / d[n - 2] + d[n - 2] * (c[n - 2] + 2.0 * c[nm1])
    for i in range(nm1):
        b[i] = (y[i + 1] - y[i]) / d[i] - d[i] * (c[i + 1] + 2.0 * c[i])
        d[i] = (c[i + 1] - c[i]) / d[i]
        c[i] = 3.0 * c[i]
    c[nm1] = 3.0 * c[nm1]
    d[nm1] = d[n - 2]
    return b, c, d


def _r_spline(x, y):
    """R's spline(x, y) (fmm, n = 3 length(x) points from min(x) to max(x))."""
    o = np.argsort(x, kind="stable")
    x, y = x[o], y[o]
    b, c, d = _fmm_spline(x, y)
    m = 3 * x.size
    by = (x[-1] - x[0]) / (m - 1)
    u = x[0] + np.arange(m) * by
    u[-1] = x[-1]
    i = np.clip(np.searchsorted(x, u, side="right") - 1, 0, x.size - 1)
    dx = u - x[i]
    return u, y[i] + dx * (b[i] + dx * (c[i] + dx * d[i]))


def _r_approx(x, y, v):
    """R's approx(x, y, xout=v) (linear, rule=1, ties=mean) at one point."""
    o = np.argsort(x, kind="stable")
    x, y = x[o], y[o]
    if v < x[0] or v > x[-1]:
        return np.nan
    i, j = 0, x.size - 1
    while i < j - 1:
        ij = (i + j) // 2
        if v < x[ij]:
            j = ij
        else:
            i = ij
    if v == x[j]:
        return y[j]
    if v == x[i]:
        return y[i]
    return y[i] + (y[j] - y[i]) * ((v - x[i]) / (x[j] - x[i]))


def _ciprop_likelihood(design, y, g, gv, G, level, dfv):
    """R's svyciprop(method="likelihood"): the intercept of
    ``svyglm(y ~ 1, family=quasibinomial)`` on the group's subset design, profiled as
    confint.svyglm(method="likelihood") does (MASS's profile): z(b) =
    sign sqrt((D(b) - D(b_hat)) / dispersion) on a grid of up to 9 steps of
    zmax/5 SEs each way (dispersion = svyvar of the Pearson residuals, zmax =
    sqrt(qf(alpha, 1, n-1, lower=FALSE)), alpha = pnorm(qt((1-level)/2, df) sqrt(lambda))/2,
    lambda = design variance / model variance), an fmm spline through it, and the
    limits at z = -+qt((1-level)/2, df) sqrt(lambda) by linear interpolation (R's
    spline() and approx())."""
    from scipy import stats

    from ._irls import _irls_r

    w = design.weights
    dom = design.domain_mask
    lo = np.full(G, np.nan)
    hi = np.full(G, np.nan)
    for gi in range(G):  # loop over groups: one profile each
        sub = (g == gi) & dom
        rows = np.flatnonzero(sub & ~np.isnan(y) & (w > 0))
        n_rows = int(np.sum(sub & ~np.isnan(y)))
        if rows.size < 2:
            continue
        W = w[rows] / w[sub].mean()         # R: .survey.prob.weights, mean over the subset
        yy = y[rows]
        if not 0 < np.sum(W * yy) / np.sum(W) < 1:
            continue
        X = np.ones((rows.size, 1))
        beta, mu, eta, w_work, _, _ = _irls_r(X, yy, W, "quasibinomial")
        b0 = float(beta[0])
        A = float(np.sum(w_work))
        dmu = mu * (1 - mu)
        Z = np.zeros((design.n, 1))
        Z[rows, 0] = w_work * (yy - mu) / dmu / A
        var_design = (float(design._vcov_rows(Z)[0, 0]) if not design.is_replicate
                      else float(_rep_logit_var(design, y, gv, G, np.array([np.nan] * gi + [b0]))[gi]))
        se_b = np.sqrt(var_design)
        lam = var_design * A                 # cov.unscaled / naive.cov

        def dev(m):
            with np.errstate(divide="ignore", invalid="ignore"):
                a = np.where(yy > 0, yy * np.log(yy / m), 0.0)
                b = np.where(yy < 1, (1 - yy) * np.log((1 - yy) / (1 - m)), 0.0)
            return float(np.sum(2 * W * (a + b)))

        d0 = dev(mu)
        r = (yy - mu) / np.sqrt(dmu)   # residuals.svyglm 'pearson': sqrt(prior/design weights) = 1
        ww = w[rows]
        rbar = np.sum(ww * r) / np.sum(ww)
        nn = int(np.sum(ww != 0))
        disp = float(np.sum(ww * (r - rbar) ** 2) / np.sum(ww) * nn / (nn - 1))
        ddf = float(dfv[gi])
        qa = stats.norm.ppf((1 - level) / 2) if np.isinf(ddf) else stats.t.ppf((1 - level) / 2, ddf)
        alpha = stats.norm.cdf(qa * np.sqrt(lam)) / 2
        zmax = np.sqrt(stats.f.isf(alpha, 1, n_rows - 1))
        step_b = zmax / 5 * se_b
        zs, bs = [0.0], [b0]
        for sgn in (-1, 1):
            step, z = 0, 0.0
            while True:
                step += 1
                if not (step < 10 and abs(z) < zmax):
                    break
                bi = b0 + sgn * step * step_b
                zz = (dev(np.full_like(yy, 1 / (1 + np.exp(-bi)))) - d0) / disp
                zz = max(zz, 0.0)
                z = sgn * np.sqrt(zz)
                zs.append(z)
                bs.append(bi)
        zs, bs = np.asarray(zs), np.asarray(bs)
        o = np.argsort(zs, kind="stable")
        sx, sy = _r_spline(bs[o], zs[o])
        cut = stats.norm.ppf(2 * alpha)
        lo[gi] = 1 / (1 + np.exp(-_r_approx(sy, sx, cut)))
        hi[gi] = 1 / (1 + np.exp(-_r_approx(sy, sx, -cut)))
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
    row position; or an expression in the row labels, e.g. ``"E / M"`` or
    ``"log(w2 / w1)"`` (a nonlinear contrast by the delta method with exact
    derivatives, R's ``svycontrast(stat, quote(E/M))``; labels that are not names in
    backticks); or a dict {name: such a dict or expression} for several contrasts.
    Bad specifications raise ``EstimationError`` (code ``estimate.bad_contrast``).
    df: the rows' df (the smallest of the rows used when they differ, e.g. domains).

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
    theta = result["estimate"].to_numpy(dtype=float)

    def vec(spec):
        if isinstance(spec, dict):
            L = np.zeros(k)
            for key, c in spec.items():
                if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and str(key) not in labels:
                    i = int(key)
                    if not -k <= i < k:
                        raise EstimationError(f"row position {i} is outside the result's {k} rows",
                                              code="estimate.bad_contrast",
                                              hint="row labels: " + ", ".join(labels))
                else:
                    if str(key) not in labels:
                        raise EstimationError(f"no row labelled {key!r} in the result",
                                              code="estimate.bad_contrast",
                                              hint="row labels: " + ", ".join(labels))
                    i = labels.index(str(key))
                L[i] += _coef(c, key)
            return L
        try:
            L = np.asarray(spec, dtype=float)
        except (TypeError, ValueError):
            raise EstimationError(f"contrast {spec!r} is not a list of numbers, a dict or an expression",
                                  code="estimate.bad_contrast",
                                  hint="e.g. {'w2': 1, 'w1': -1}, [1, -1, 0] or 'w2 / w1'; row labels: "
                                       + ", ".join(labels)) from None
        if L.shape != (k,):
            raise EstimationError(f"contrast has {L.size} coefficients for {k} rows",
                                  code="estimate.bad_contrast")
        return L

    def lin_or_expr(spec):
        """(estimate, gradient) of one contrast: linear, or an expression (delta method)."""
        if isinstance(spec, str):
            return _nonlinear(spec, labels, theta)
        L = vec(spec)
        return float(L @ theta), L

    if weights is None or (isinstance(weights, (dict, list, tuple)) and len(weights) == 0):
        raise EstimationError("no contrast given", code="estimate.bad_contrast",
                              hint="e.g. {'w2': 1, 'w1': -1} or 'w2 / w1'")
    if isinstance(weights, dict) and weights and all(isinstance(v, (dict, str)) for v in weights.values()):
        names = [str(nm) for nm in weights]
        parts = [lin_or_expr(weights[nm]) for nm in weights]
    else:
        parts = [lin_or_expr(weights)]
        names = ["contrast"]
    est = np.array([p_[0] for p_ in parts])
    Lm = np.vstack([p_[1] for p_ in parts])
    Vc = Lm @ V @ Lm.T
    se = np.sqrt(np.clip(np.diag(Vc), 0, None))
    if df is None:
        # the rows' df (several domains: the smallest of the rows the contrast uses)
        dfs = result["df"].to_numpy(dtype=float)
        used = np.any(Lm != 0, axis=0)
        dfv = float(np.min(dfs[used])) if used.any() else float(dfs[0])
    else:
        dfv = float(df)
    q = _qcrit(level, dfv)
    out = pd.DataFrame({"contrast": names, "estimate": est, "se": se, "ci_low": est - q * se,
                        "ci_high": est + q * se, "df": dfv})
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cv"] = se / np.abs(est)
    out.attrs["vcov"] = Matrix(Vc, out.index, est)
    return out


def _coef(c, key) -> float:
    try:
        return float(c)
    except (TypeError, ValueError):
        raise EstimationError(f"coefficient {c!r} of row {key!r} is not a number",
                              code="estimate.bad_contrast", hint="coefficients are numbers, e.g. {'w2': 1}") from None


_NL_FUNCS = {"log": (np.log, lambda x: 1 / x), "exp": (np.exp, np.exp),
             "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x)), "log1p": (np.log1p, lambda x: 1 / (1 + x)),
             "expm1": (np.expm1, np.exp), "log10": (np.log10, lambda x: 1 / (x * np.log(10))),
             "log2": (np.log2, lambda x: 1 / (x * np.log(2))),
             "asin": (np.arcsin, lambda x: 1 / np.sqrt(1 - x * x)),
             "abs": (np.abs, np.sign)}


def _nonlinear(expr: str, labels: list[str], theta: np.ndarray):
    """Value and gradient of an expression in the result's rows (R ``svycontrast`` with
    ``quote(expr)``, the delta method): row labels as names (``E / M``; labels that are
    not identifiers in backticks, ```w2:female` - `w1:female```), numbers, ``+ - * / **``
    and log, exp, sqrt, log1p, expm1, log10, log2, asin, abs (also as ``np.log``...).
    Derivatives are exact (forward-mode differentiation), so se = sqrt(g V g')."""
    import ast
    import re

    k = len(labels)
    quoted: dict[str, str] = {}

    def repl(m):
        key = f"_q{len(quoted)}_"
        quoted[key] = m.group(1)
        return key

    code = re.sub(r"`([^`]*)`", repl, expr)
    where = f"contrast {expr!r}"

    def bad(what):
        return EstimationError(f"contrast {expr!r}: {what}", code="estimate.bad_contrast", where=where,
                               hint="an expression in the row labels (" + ", ".join(labels[:12])
                                    + ("…" if k > 12 else "") + "), numbers, + - * / ** and log, exp, "
                                    "sqrt; quote other labels in backticks")

    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError:
        raise bad("cannot read the expression") from None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return float(node.value), np.zeros(k)
        if isinstance(node, ast.Name):
            name = quoted.get(node.id, node.id)
            if name not in labels:
                raise bad(f"no row labelled {name!r}")
            i = labels.index(name)
            g = np.zeros(k)
            g[i] = 1.0
            return float(theta[i]), g
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v, g = ev(node.operand)
            return (-v, -g) if isinstance(node.op, ast.USub) else (v, g)
        if isinstance(node, ast.BinOp):
            a, ga = ev(node.left)
            b, gb = ev(node.right)
            with np.errstate(divide="ignore", invalid="ignore"):
                if isinstance(node.op, ast.Add):
                    return a + b, ga + gb
                if isinstance(node.op, ast.Sub):
                    return a - b, ga - gb
                if isinstance(node.op, ast.Mult):
                    return a * b, ga * b + a * gb
                if isinstance(node.op, ast.Div):
                    return a / b, (ga * b - a * gb) / (b * b)
                if isinstance(node.op, ast.Pow):
                    v = a ** b
                    g = b * a ** (b - 1) * ga
                    if np.any(gb != 0):
                        g = g + v * np.log(a) * gb
                    return v, g
            raise bad(f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.Call) and not node.keywords and len(node.args) == 1:
            f = node.func
            name = f.id if isinstance(f, ast.Name) else (
                f.attr if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and f.value.id in ("np", "numpy") else None)
            if name == "arcsin":
                name = "asin"
            if name in _NL_FUNCS:
                fn, d = _NL_FUNCS[name]
                v, g = ev(node.args[0])
                with np.errstate(divide="ignore", invalid="ignore"):
                    return float(fn(v)), d(v) * g
            raise bad(f"the function {ast.unparse(f)!r}")
        raise bad(f"{ast.unparse(node)!r} (only row labels, numbers, arithmetic and log/exp/sqrt)")

    v, g = ev(tree)
    return v, g


# ----------------------------------------------------------------------------- chisq


CHISQ_STATISTICS = ("F", "Chisq", "Wald", "adjWald", "saddlepoint", "lincom")


def chisq(design, a: str, b: str, *, statistic: str = "F", na_rm: bool = True) -> pd.Series:
    """Test of association in the two-way table a x b (R ``svychisq``, na.rm=TRUE).

    X2 = Pearson statistic of the weighted table rescaled to N = rows of the design (of the
    domain for a subset, as R's nrow(); rows with a missing a or b count in N), over the
    levels present (R tabulates ``factor()`` of the values, so unused levels drop out);
    Delta = Rao–Scott design-effect matrix of the interaction contrasts (Rao & Scott 1984).
    statistic="F": F = X2/tr(Delta) on (d0, d0 nu) df, d0 = tr(Delta)^2/tr(Delta^2),
    nu = design df; "Chisq": reports X2, p from X2/mean(diag Delta) on (r-1)(c-1) df;
    "Wald": Wald test of the interaction contrasts N_ij - N_i. N_.j / N, F = W/ndf on
    (ndf, nu); "adjWald": F (nu - ndf + 1)/nu on (ndf, nu - ndf + 1); "saddlepoint"
    and "lincom" (Rao–Scott second order, R's pFsum): X2 against sum_j a_j chi2_1 with
    a_j the eigenvalues of Delta and d0 nu denominator df - the saddlepoint
    approximation as R, or the exact probability (R's CompQuadForm::davies; here by
    Imhof's formula).
    Returns a Series: statistic_name, statistic, ndf, ddf (or df), p_value, X2,
    X2_first_order, trace_delta, mean_delta, d0, nu, N; the weighted table in
    ``attrs["table"]``."""
    from scipy import stats

    if statistic not in CHISQ_STATISTICS:
        raise EstimationError(f"unknown statistic {statistic!r}", code="estimate.bad_statistic",
                              hint="one of " + ", ".join(CHISQ_STATISTICS))
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
    ones = np.ones(design.n)   # scores over all rows of the design (a subset keeps them)
    num = [(ones, cell)]
    mean2, V, tot, _ = design._linear(K, num, [(ones, np.where(valid, 0, -1))], 1, np.zeros(K, int))
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
    if statistic in ("saddlepoint", "lincom"):
        from ._chisqsum import pfsum_integration, pfsum_saddlepoint

        eig = np.real(np.linalg.eigvals(Delta))
        fn = pfsum_saddlepoint if statistic == "saddlepoint" else pfsum_integration
        res.update(statistic_name="X-squared", statistic=X2, ddf=d0 * nu,
                   p_value=float(fn(X2, eig, d0 * nu)))
    elif statistic == "F":
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
