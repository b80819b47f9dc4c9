"""Design-based generalised linear models (R ``svyglm``), fitted with statsmodels.

Point estimates: the weighted (pseudo-)likelihood fit, weights = design weights scaled to
mean 1 (statsmodels ``GLM(var_weights=...)``). Variance: the sandwich
``A^-1 B A^-1`` with A = X' W X (IRLS working weights) and B the design-based
covariance of the totals of the score contributions x_i w_i (y_i - mu_i) mu'_i / V(mu_i),
computed like any total (PSU totals within strata, fpc, lonely PSUs, calibration records;
Binder 1983, Lumley 2010 §5.2). Replicate designs refit the model per replicate.
Degrees of freedom of the t statistics: df_residual = degf of the rows in the model
(R's ``degf(design[-nas, ])``: a domain's or complete cases' PSUs and strata) + 1 - p
(as svyglm). Formulas are parsed without running code (``survey._formula``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import EstimationError
from ._irls import _irls_r  # noqa: F401  (R glm.fit; used by svyglm and ciprop)

FAMILIES = ("gaussian", "binomial", "quasibinomial", "poisson", "quasipoisson", "Gamma")


def _family(name, link):
    """The statsmodels family (for the ``fit`` attribute) of an R family and link."""
    import statsmodels.api as sm

    L = sm.families.links
    sm_link = {"logit": L.Logit, "log": L.Log, "identity": L.Identity, "inverse": L.InversePower}[link]()
    if name == "gaussian":
        return sm.families.Gaussian(link=sm_link)
    if name in ("binomial", "quasibinomial"):
        return sm.families.Binomial(link=sm_link)
    if name in ("poisson", "quasipoisson"):
        return sm.families.Poisson(link=sm_link)
    return sm.families.Gamma(link=sm_link)


def _response(data: pd.DataFrame, lhs: str, family: str) -> np.ndarray:
    lhs = lhs.strip()
    if lhs in data.columns:
        s = data[lhs]
        if pd.api.types.is_bool_dtype(s.dtype):
            return s.to_numpy(dtype=float, na_value=np.nan)
        if pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype):
            return s.to_numpy(dtype=float, na_value=np.nan)
        # factor response: P(second level), as R's glm for binomial
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = list(s.cat.categories)
        else:
            levels = sorted(s.dropna().unique())
        if len(levels) != 2 or family not in ("binomial", "quasibinomial"):
            raise EstimationError(f"response {lhs!r} is categorical with {len(levels)} levels",
                                  code="estimate.bad_response", where=f"variable {lhs!r}",
                                  hint="use a binomial family with a two-level response, or a 0/1 column")
        na = s.isna().to_numpy()
        return np.where(na, np.nan, (s == levels[1]).to_numpy(dtype=bool, na_value=False).astype(float))
    import patsy

    m = patsy.dmatrix(f"{lhs} - 1", data, NA_action=patsy.NAAction(NA_types=[]), return_type="dataframe")
    return m.iloc[:, -1].to_numpy(dtype=float)


class _LazyFit:
    """The statsmodels fit of the same weighted model, made on first access (``.result``)."""

    def __init__(self, y, X, fam, w, names):
        self._args = (y, X, fam, w, names)
        self._res = None

    @property
    def result(self):
        if self._res is None:
            import statsmodels.api as sm

            y, X, fam, w, names = self._args
            self._res = sm.GLM(y, pd.DataFrame(X, columns=names), family=fam, var_weights=w).fit(
                tol=1e-13, maxiter=200)
        return self._res


def svyglm(design, formula: str, family: str = "gaussian", *, level: float = 0.95) -> pd.DataFrame:
    """Fit ``formula`` (patsy syntax, e.g. ``"y ~ age + C(education)"``) under the design.

    The formula is parsed without running code (see ``survey._formula``: column names,
    arithmetic, C(), I(), offset(), log()/np.log(), ...; anything else is refused).
    Nullable booleans, Int64 with NA, strings and categoricals work as in R: missing
    values drop the row from the model (R's na.omit) but it stays in the design for the
    variance; df_residual = degf of the rows in the model + 1 - p (R's svyglm).
    ``offset(expr)`` terms are offsets (eta = offset + X beta); families binomial,
    quasibinomial, poisson, quasipoisson, gaussian, Gamma, each with R's default link or
    one named in brackets (``"Gamma(log)"``, ``"gaussian(log)"``, ``"binomial(log)"``,
    ``"poisson(identity)"``); the quasi families give the same design-based fit and SEs
    (as R's svyglm).

    Returns a DataFrame: term, estimate, se, t_value, p_value, ci_low, ci_high, df
    (df_residual), with ``attrs``: vcov, df_residual, dispersion (svyvar of the Pearson
    residuals, as summary.svyglm), family, fit (statsmodels results).
    """
    import patsy
    from scipy import stats

    from ._irls import link_functions, parse_family, variance_function

    family_arg = family
    family, link = parse_family(family)
    from ._formula import environment, model_data, parse_model

    raw = design._data
    spec = parse_model(formula, raw.columns)    # refuses anything but whitelisted code
    w_all = design.weights
    data = model_data(raw, spec.columns, rows_ok=w_all > 0)
    env = environment()
    na = patsy.NAAction(NA_types=["None", "NaN"])
    try:
        X = patsy.dmatrix(spec.rhs, data, eval_env=env, NA_action=na, return_type="dataframe")
        lhs = spec.lhs
        if lhs in raw.columns:
            y_all = _response(raw.reset_index(drop=True), lhs, family)
        else:
            y_all = patsy.dmatrix(patsy.ModelDesc([], [patsy.Term([patsy.EvalFactor(lhs)])]), data,
                                  eval_env=env, NA_action=patsy.NAAction(NA_types=[]),
                                  return_type="dataframe").iloc[:, -1].to_numpy(dtype=float)
        off_all = np.zeros(design.n)
        for code in spec.offsets:
            o = patsy.dmatrix(patsy.ModelDesc([], [patsy.Term([patsy.EvalFactor(code)])]), data,
                              eval_env=env, NA_action=patsy.NAAction(NA_types=[]), return_type="dataframe")
            off_all = off_all + o.iloc[:, 0].to_numpy(dtype=float)
    except patsy.PatsyError as e:
        raise EstimationError(f"cannot build the model matrix for {formula!r}: {e.message}",
                              code="estimate.bad_formula", where=f"formula {formula!r}",
                              hint="check variable names; wrap categorical predictors in C()") from None
    rows = X.index.to_numpy()
    y = y_all[rows]
    # R: na.omit - rows with a missing response, predictor or offset leave the model
    # (they stay in the design with zero scores)
    keep = ~np.isnan(y) & ~np.isnan(off_all[rows]) & (w_all[rows] > 0)
    rows = rows[keep]
    if rows.size == 0:
        raise EstimationError(f"no complete rows for {formula!r}", code="estimate.empty_model",
                              where=f"formula {formula!r}", hint="check the variables' missing values")
    Xm = X.to_numpy(dtype=float)[keep]
    y = y[keep]
    off = off_all[rows]
    w = w_all[rows]
    names = ["(Intercept)" if c == "Intercept" else c for c in X.columns]
    p = Xm.shape[1]
    if np.linalg.matrix_rank(Xm) < p:
        raise EstimationError("the model matrix is rank deficient (collinear predictors)",
                              code="estimate.rank_deficient", hint="drop redundant terms")
    fam = _family(family, link)
    # R: .survey.prob.weights = weights / their mean over the design's rows (a domain's
    # rows, rows with missing values included) - it sets glm's starting values
    wbar = float(w_all[design.domain_mask].mean())
    wn = w / wbar
    if family in ("binomial", "quasibinomial") and np.any((y < 0) | (y > 1)):
        raise EstimationError(f"the response of {formula!r} is outside [0, 1] for a binomial model",
                              code="estimate.bad_response", where=f"formula {formula!r}",
                              hint="use a 0/1 (or boolean) response, or a proportion")
    if family in ("poisson", "quasipoisson") and np.any(y < 0):
        raise EstimationError(f"the response of {formula!r} is negative for a Poisson model",
                              code="estimate.bad_response", where=f"formula {formula!r}")
    if family == "Gamma" and np.any(y <= 0):
        raise EstimationError(f"the response of {formula!r} is not positive for a Gamma model",
                              code="estimate.bad_response", where=f"formula {formula!r}")
    beta, mu, eta, w_work, converged, iters = _irls_r(Xm, y, wn, family, offset=off, link=link)
    dmu = link_functions(link)[2](eta)
    vmu = variance_function(family)(mu)
    # R: cov.unscaled and glm$weights come from the last IRLS iteration (working weights
    # at the previous iterate), residuals "working" from the final fit.
    A = (Xm * w_work[:, None]).T @ Xm
    Ainv = np.linalg.inv(A)
    if design.is_replicate:
        info = design.replicate_info
        R = info["repw"][rows]
        reps = np.empty((R.shape[1], p))
        for r in range(R.shape[1]):  # loop over replicates (as R's svyglm.svyrep.design)
            wr = R[:, r]
            okr = wr > 0
            reps[r] = _irls_r(Xm[okr], y[okr], wr[okr] / wbar, family, offset=off[okr], link=link)[0]
        V = design._rep_vcov(reps, beta)
    else:
        est = Xm * (w_work * (y - mu) / dmu)[:, None]
        S = np.zeros((design.n, p))
        S[rows] = est @ Ainv
        V = design._vcov_rows(S)
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    # R: degf(design[-nas, ]) + 1 - p: the df of the rows in the model (svyglm on a
    # replicate design keeps degf(design))
    if design.is_replicate:
        df_res = float(design.degf) + 1 - p
    else:
        in_model = np.full(design.n, -1, dtype=np.int64)
        in_model[rows] = 0
        df_res = float(design.domain_degf(in_model, 1)[0]) + 1 - p
    tval = beta / se
    pval = 2 * stats.t.sf(np.abs(tval), df_res)
    q = stats.t.ppf(1 - (1 - level) / 2, df_res)
    # summary.svyglm: dispersion = svyvar(Pearson residuals) (weighted variance * n/(n-1))
    pr = (y - mu) / np.sqrt(vmu)
    prbar = np.sum(w * pr) / np.sum(w)
    nn = int(np.sum(w != 0))
    dispersion = float(np.sum(w * (pr - prbar) ** 2) / np.sum(w) * nn / (nn - 1))
    out = pd.DataFrame({"term": names, "estimate": beta, "se": se, "t_value": tval, "p_value": pval,
                        "ci_low": beta - q * se, "ci_high": beta + q * se, "df": float(df_res)})
    from .estimators import Matrix

    out.attrs.update(vcov=Matrix(V, out.index, beta), df_residual=df_res, dispersion=dispersion, family=family_arg, link=link,
                     converged=converged, iterations=iters, fit=_LazyFit(y, Xm, fam, wn, names))
    return out
