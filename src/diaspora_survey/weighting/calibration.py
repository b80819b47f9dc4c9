"""Calibration to population totals of categorical and numeric auxiliaries.

Finds g-weights ``w_i = d_i g_i`` with ``Σ w_i x_i = T`` that stay close to the base
weights d under a distance function (Deville & Särndal 1992; Deville, Särndal &
Sautory 1993; Lumley 2010 §7.3), with ``g_i = F(x_i'λ)``:

* ``"linear"`` (GREG / chi-square distance): ``F(u) = 1 + u``; without bounds the
  closed form ``λ = (X'DX)⁻¹ (T − X'd)`` (R's ``regcalibrate``);
* ``"raking"`` (exponential / multiplicative): ``F(u) = exp(u)``;
* ``"logit"`` (bounded, L < g < U): ``F(u) = (L(U−1) + U(1−L)e^{Au}) / (U−1 + (1−L)e^{Au})``
  with ``A = (U−L)/((U−1)(1−L))``;
* ``bounds=(L, U)`` also truncates linear and raking (R's ``bounds=``).

Iterative fits use Newton steps with a generalised inverse, exactly as R's
``survey:::grake``: ``λ ← λ + (X' diag(d F'(Xλ)) X)⁺ (T − X'(d F(Xλ)))``, until every
``|misfit_j| / (1 + |T_j|) < tol``.  Totals are ``{categorical: {category: total},
numeric: total}``; the intercept (population size) is implied by the categorical
totals, or given as ``"(Intercept)": N``.  Categorical-only problems are solved on the
table of level combinations (same g for every row of a combination).

On a SurveyDesign, ``result.design`` carries R's GREG record (``X·√d`` and ``g·√d``) so
that standard errors are calibration-aware as R's ``calibrate``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import WeightingError
from ._cells import build_cells, describe_cell, margin_index, number
from ._result import WeightingResult, check_choice, finish, resolve_input
from .diagnostics import Diagnostics, margin_table
from .targets import Mean, Targets, parse_targets  # noqa: F401  (Mean re-exported)

METHODS = ("linear", "raking", "logit")


INTERCEPT = "(Intercept)"


EMPTY = ("error", "drop")


def calibrate(data, totals, base_weight=None, method: str = "linear", bounds=None, *,
              tol: float = 1e-10, max_iter: int = 50, kind: str = "auto", empty: str = "error",
              label: str | None = None, covariates=None) -> WeightingResult:
    """Calibrate the base weights to population ``totals``.

    Parameters
    ----------
    data : DataFrame or SurveyDesign.
    totals : ``{"stype": {"E": 4421, "H": 755, "M": 1018}, "api99": 3914069}``;
        categorical totals may be shares (scaled to the population size); an explicit
        population size may be given as ``"(Intercept)"``; a numeric target may be a
        population mean, ``Mean(38.2)`` (total = mean × population size).  Cross-classified margins
        (``"sex:age_group"``) are allowed.
    method : "linear" (GREG), "raking" or "logit" (needs finite ``bounds``).
    bounds : (L, U) on g = new/base weight, L < 1 < U (None: unbounded).
    tol, max_iter : Newton convergence, ``max |T − X'w| / (1 + |T|) < tol``.
    empty : categories with a total but no respondents: "error" (default) or "drop"
        (dropped and the margin renormalised to its former total; reported).

    R: ``calibrate(design, ~stype + api99, c(`(Intercept)`=6194, stypeH=755, stypeM=1018,
    api99=3914069), calfun="linear"|"raking"|"logit", bounds=c(L, U))``.
    """
    check_choice("method", method, METHODS)
    check_choice("empty", empty, EMPTY)
    tol = number("tol", tol, positive=True)
    max_iter = number("max_iter", max_iter, positive=True, integer=True)
    L, U = _bounds(method, bounds)
    where = label
    if not isinstance(totals, Mapping) or not totals:
        raise WeightingError("totals must be a non-empty mapping {variable: total or {category: total}}",
                             code="weighting.bad_targets", where=where)
    df, w0, design = resolve_input(data, base_weight, where)
    cat_spec = {k: v for k, v in totals.items() if isinstance(v, Mapping) or hasattr(v, "items")}
    num_spec = {str(k): v for k, v in totals.items() if k not in cat_spec}
    N_given = None
    if INTERCEPT in num_spec:
        N_given = _num(INTERCEPT, num_spec.pop(INTERCEPT))
    decisions: list[str] = []

    # ---- categorical part (on cells)
    t = parse_targets(cat_spec, kind=kind) if cat_spec else Targets(())
    cells = build_cells(df, t.variables, w0, where=where)
    mis = [margin_index(cells, m) for m in t.margins]
    kept_margins = []
    for m, mi in zip(t.margins, mis):
        bad = np.flatnonzero(mi < 0)
        if bad.size:
            agg: dict[str, int] = {}
            for c in bad:
                key = describe_cell(cells, int(c), m.variables)
                agg[key] = agg.get(key, 0) + int(cells.count[c])
            shown = "; ".join(f"{m.name}={k} ({v})" for k, v in list(agg.items())[:6])
            raise WeightingError(f"respondents{' in ' + label if label else ''} whose category has no "
                                 f"calibration total (or is missing): {shown}",
                                 code="weighting.unmatched_category", where=where,
                                 hint="add totals for these categories, or recode/drop those rows")
        present = np.bincount(mi, weights=cells.count, minlength=len(m.categories)) > 0
        vals = np.asarray(m.values)
        zero_t = np.flatnonzero(present & (vals == 0))
        if zero_t.size:
            raise WeightingError(f"{m.label(int(zero_t[0]))} has respondents"
                                 f"{' in ' + label if label else ''} but a total of 0",
                                 code="weighting.zero_target", where=where,
                                 hint="drop those respondents, merge the category, or give it a "
                                      "positive total")
        empt = np.flatnonzero(~present)
        if empt.size and (vals[empt] > 0).any() and empty == "error":
            j = int(empt[vals[empt] > 0][0])
            raise WeightingError(f"{m.label(j)} has no respondents"
                                 f"{' in ' + label if label else ''}: drop it or merge it",
                                 code="weighting.empty_category", where=where,
                                 hint="a calibration total for an empty category cannot be met: "
                                      "remove or merge it, or pass empty='drop' (reported)")
        if empt.size:   # categories without respondents (and, here, zero or dropped totals)
            if (vals[empt] > 0).any():
                labs = [m.label(int(j)) for j in empt if vals[j] > 0]
                decisions.append(f"dropped calibration categor{'ies' if len(labs) > 1 else 'y'} with "
                                 f"no respondents{' in ' + label if label else ''} and renormalised "
                                 f"{m.name}: {', '.join(labs)}")
            m = m.drop(empt.tolist())
        kept_margins.append(m)
    if kept_margins != list(t.margins):
        t = Targets(tuple(kept_margins), t.decisions)
        mis = [margin_index(cells, m) for m in t.margins]
    N = t.count_total
    if N is not None and N_given is not None and abs(N - N_given) > 1e-6 * max(N, 1):
        raise WeightingError(f"margin totals disagree: (Intercept) is {N_given:,.6g} but the "
                             f"categorical totals sum to {N:,.6g}", code="weighting.totals_disagree",
                             where=where)
    if N is None:
        N = N_given
    if t.margins and any(m.kind == "shares" for m in t.margins):
        if N is None:
            N = float(w0.sum())
            decisions.append(f"categorical shares scaled to the sum of the base weights ({N:,.6g})")
        else:
            decisions.append(f"categorical shares scaled to the population size {N:,.6g}")
    if not t.margins and N is None:
        raise WeightingError("calibration needs a population size: give categorical totals or "
                             "'(Intercept)': N", code="weighting.bad_targets", where=where,
                             hint="e.g. calibrate(df, {'(Intercept)': 6194, 'api99': 3914069})")

    # columns of the categorical design matrix on cells
    cols, names, T = [], [], []
    C = cells.n_cells
    if not t.margins:
        cols.append(np.ones(C))
        names.append(INTERCEPT)
        T.append(N)
    for k, (m, mi) in enumerate(zip(t.margins, mis)):
        vals = np.asarray(m.values, float) * (N / m.total if m.kind == "shares" else 1.0)
        for j, cat in enumerate(m.categories):
            if k > 0 and j == 0:
                continue   # the intercept is implied by the first margin
            cols.append((mi == j).astype(float))
            names.append(f"{m.name}={':'.join(cat)}")
            T.append(vals[j])
    Xc = np.column_stack(cols) if cols else np.zeros((C, 0))

    # ---- numeric part (row level)
    num_names, num_T, num_cols = [], [], []
    for v, tot in num_spec.items():
        if v not in df.columns:
            raise WeightingError(f"calibration variable {v!r} not in the data", where=where,
                                 code="weighting.unknown_variable",
                                 hint="categorical totals are given as {category: total} mappings")
        x = pd.to_numeric(df[v], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        nbad = int(np.isnan(x).sum())
        if nbad:
            raise WeightingError(f"calibration variable {v!r} is missing or not numeric for {nbad} "
                                 f"row(s)", code="weighting.missing_values", where=where,
                                 hint="impute or drop those rows before calibrating")
        num_names.append(v)
        if isinstance(tot, Mean):
            tot = _num(v, tot) * N
            decisions.append(f"mean of {v} ({float(num_spec[v]):,.6g}) times the population size "
                             f"({N:,.6g}) = total {tot:,.6g}")
        num_T.append(_num(v, tot))
        num_cols.append(x)
    T = np.asarray(T + num_T, dtype=float)
    names = names + num_names
    if num_cols:
        row_cell = cells.row_cells()
        X = np.column_stack([Xc[row_cell]] + [c[:, None] for c in num_cols])
        d = w0
        unit_map = None
    else:
        X = Xc
        d = cells.wsum
        unit_map = cells
    g, iters = _solve(X, d, T, method, L, U, tol, max_iter, names, where)
    if np.any(g < 0):
        k = int((g < 0).sum() if unit_map is None else cells.count[g < 0].sum())
        raise WeightingError(f"linear calibration gives {k} negative weight(s)", where=where,
                             code="weighting.negative_weights",
                             hint="use bounds=(L, U) (e.g. (0.3, 3)) or method='raking'")
    g_rows = g if unit_map is None else cells.to_rows(g)
    w = w0 * g_rows
    # ---- diagnostics
    wx = X.T @ (d * g)
    bx = X.T @ d
    achieved = pd.DataFrame({"term": names, "base": bx, "calibrated": wx, "target": T,
                             "difference": wx - T})
    t_cells = (cells.wsum * g if unit_map is not None
               else np.bincount(cells.row_cells(), weights=w, minlength=C))
    mt = _margin_rows(t, mis, cells, t_cells, N)
    adjustment = None
    rep_weights = None
    if design is not None:
        Xr = X if unit_map is None else X[cells.row_cells()]
        sq = np.sqrt(w0)
        adjustment = {"kind": "greg", "X": Xr * sq[:, None], "w": g_rows * sq}
        if design.is_replicate:
            rep_weights = _calibrate_replicates(design, X, unit_map, cells, T, method, L, U, tol,
                                                max_iter, names, where)
    exclude = set(t.variables) | set(num_names) | ({base_weight} if isinstance(base_weight, str) else set())
    row_cell_all = cells.row_cells()

    def margin_fn(wr):
        return _margin_rows(t, mis, cells, np.bincount(row_cell_all, weights=wr, minlength=C), N)

    diag = Diagnostics("calibrate", w, w0, iterations=iters, converged=True, tolerance=tol,
                       margins=mt, decisions=decisions, df=df, covariates=covariates, exclude=exclude,
                       margin_fn=margin_fn,
                       extra={"method": method, "bounds": None if bounds is None else (L, U),
                              "totals": achieved, "g_min": float(g.min()), "g_max": float(g.max())})
    return finish("calibrate", df, w0, w, design, adjustment, diag, rep_weights=rep_weights,
                  keep_degf=True)


def _calibrate_replicates(design, X, unit_map, cells, T, method, L, U, tol, max_iter, names, where):
    """R's calibrate.svyrep.design: every replicate weight column is calibrated to the same
    totals with the same distance and bounds (Newton from g = 1)."""
    repw = design.replicate_info["repw"]
    out = np.empty_like(repw)
    row_cell = cells.row_cells() if unit_map is not None else None
    for r in range(repw.shape[1]):  # loop over replicates (as R)
        d = repw[:, r] if unit_map is None else np.bincount(row_cell, weights=repw[:, r],
                                                            minlength=cells.n_cells)
        try:
            g, _ = _solve(X, d, T, method, L, U, tol, max_iter, names, where)
        except WeightingError as e:
            raise WeightingError(f"replicate {r + 1} of the replicate design: {e.args[0]}",
                                 code=e.code, where=where,
                                 hint="a replicate lost every respondent of a category: merge "
                                      "categories, or calibrate the Taylor design") from None
        out[:, r] = repw[:, r] * (g if unit_map is None else g[row_cell])
    if (out < 0).any():
        raise WeightingError("linear calibration gives negative replicate weights",
                             code="weighting.negative_weights", where=where,
                             hint="use bounds=(L, U) or method='raking'")
    return out


def _num(name, v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise WeightingError(f"total for {name!r} is not a number: {v!r}", code="weighting.bad_targets") from None
    if not np.isfinite(x):
        raise WeightingError(f"total for {name!r} is missing or infinite", code="weighting.bad_targets")
    return x


def _bounds(method, bounds):
    if bounds is None:
        if method == "logit":
            raise WeightingError("logit calibration needs finite bounds (L, U) with L < 1 < U",
                                 code="weighting.bad_option", hint="e.g. bounds=(0.5, 2)")
        return -np.inf, np.inf
    try:
        L, U = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise WeightingError(f"bounds must be (L, U), got {bounds!r}", code="weighting.bad_option") from None
    if not (L < 1 < U):
        raise WeightingError(f"bounds ({L:g}, {U:g}) must satisfy L < 1 < U",
                             code="weighting.bad_option", hint="bounds are on g = new / base weight")
    if method == "logit" and not (np.isfinite(L) and np.isfinite(U)):
        raise WeightingError("logit calibration needs finite bounds", code="weighting.bad_option")
    return L, U


def _calfun(method, L, U):
    """(F - 1, dF) of R's grake for the distance function."""
    if method == "linear":
        return (lambda u: np.clip(u + 1, L, U) - 1,
                lambda u: ((u < U - 1) & (u > L - 1)).astype(float))
    if method == "raking":
        def Fm1(u):
            with np.errstate(over="ignore"):
                return np.clip(np.exp(u), L, U) - 1

        def dF(u):
            with np.errstate(over="ignore"):
                return np.where((u < U - 1) & (u > L - 1), np.exp(u), 0.0)
        return Fm1, dF
    A = (U - L) / ((U - 1) * (1 - L))

    def Fm1(u):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(A * u)
            g = (L * (U - 1) + U * (1 - L) * e) / (U - 1 + (1 - L) * e)
        return np.where(np.isinf(e), U, g) - 1

    def dF(u):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(A * u)
            den = U - 1 + (1 - L) * e
            r = U * (1 - L) * e * A / den - (L * (U - 1) + U * (1 - L) * e) * ((1 - L) * e * A) / den ** 2
        return np.where(np.isfinite(r), r, 0.0)
    return Fm1, dF


def _solve(X, d, T, method, L, U, tol, max_iter, names, where):
    """g (per row of X) and the number of Newton steps."""
    bx = X.T @ d
    if method == "linear" and not np.isfinite(L) and not np.isfinite(U):
        Tm = (X * d[:, None]).T @ X
        rhs = T - bx
        try:
            lam = np.linalg.solve(Tm, rhs)
        except np.linalg.LinAlgError:
            lam = np.linalg.pinv(Tm) @ rhs
        g = 1 + X @ lam
        mis = T - X.T @ (d * g)
        if np.any(np.abs(mis) / (1 + np.abs(T)) > max(tol, 1e-7)):
            raise WeightingError("the calibration totals cannot be met (collinear or inconsistent "
                                 "auxiliaries)", code="weighting.not_converged", where=where,
                                 hint=_worst(names, mis, T))
        return g, 1
    Fm1, dF = _calfun(method, L, U)
    eta = np.zeros(X.shape[1])
    xeta = X @ eta
    scale = 1 + np.abs(T)
    misfit = T - bx - X.T @ (d * Fm1(xeta))
    for it in range(1, max_iter + 1):
        Tm = (X * (d * dF(xeta))[:, None]).T @ X
        step = np.linalg.pinv(Tm) @ misfit
        # Newton step as R's grake; halved while it does not reduce the (scaled) misfit,
        # so that the bounded distances (logit, truncated linear/raking) converge from
        # far away too.  Near the solution the full step is always taken.
        f0 = float(np.sum((misfit / scale) ** 2))
        t = 1.0
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(40):
                eta_t = eta + t * step
                xeta_t = X @ eta_t
                mis_t = T - bx - X.T @ (d * Fm1(xeta_t))
                if float(np.sum((mis_t / scale) ** 2)) < f0:
                    break
                t *= 0.5
            else:   # no decrease along the step: take it whole (R's behaviour); max_iter decides
                eta_t = eta + step
                xeta_t = X @ eta_t
                mis_t = T - bx - X.T @ (d * Fm1(xeta_t))
        eta, xeta, misfit = eta_t, xeta_t, mis_t
        if not np.all(np.isfinite(misfit)):
            raise WeightingError(f"calibration ({method}) diverged at iteration {it} (the Newton "
                                 f"steps left the range of the distance function)",
                                 code="weighting.not_converged", where=where,
                                 hint="the totals are probably out of reach of the data within the "
                                      "bounds; check them, widen the bounds or use another method")
        if np.all(np.abs(misfit) / scale < tol):
            return 1 + Fm1(xeta), it
    raise WeightingError(f"calibration ({method}) did not converge in {max_iter} iterations: "
                         + _worst(names, misfit, T), code="weighting.not_converged", where=where,
                         hint="the bounds may be too tight for the totals, or the totals inconsistent "
                              "with the data; widen the bounds or raise max_iter")


def _worst(names, mis, T):
    j = int(np.argmax(np.abs(mis) / (1 + np.abs(T))))
    return f"worst total {names[j]}: achieved {T[j] - mis[j]:,.8g} vs target {T[j]:,.8g}"


def _margin_rows(t, mis, cells, t_cells, N):
    if not t.margins:
        return pd.DataFrame()
    names, cats, n, base, after, target = [], [], [], [], [], []
    for m, mi in zip(t.margins, mis):
        K = len(m.categories)
        n.append(np.bincount(mi, weights=cells.count, minlength=K))
        base.append(np.bincount(mi, weights=cells.wsum, minlength=K))
        after.append(np.bincount(mi, weights=t_cells, minlength=K))
        target.append(np.asarray(m.values, float) * (N / m.total if m.kind == "shares" else 1.0))
        names += [m.name] * K
        cats += [":".join(c) for c in m.categories]
    return margin_table(names, cats, np.concatenate(n), np.concatenate(base), np.concatenate(after),
                        np.concatenate(target))
