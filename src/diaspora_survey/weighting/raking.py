"""Raking (iterative proportional fitting) to marginal targets.

Each sweep post-stratifies the weights to every margin in turn (Deming & Stephan
1940; Lumley 2010 §7.4; R's ``survey::rake``): within category c of margin m the
weights are multiplied by ``T_mc / Σ_{i in c} w_i``.  A margin may be one variable or
a cross-classification (``"sex:age_group"``).  The iterations run on the table of the
combinations of levels that occur (every row of one combination gets the same factor)
and the factors are mapped back to rows — the same weights as unit-level IPF, at the
cost of a group-by.

Convergence (``criterion``):

* ``"targets"`` (default): stop when every margin is within ``tol`` of its target on
  the share scale, ``max |Σ_c w − T_c| / T <= tol``, checked after each sweep;
* ``"r"``: R's rule — stop when the weighted cross-table of all margin variables
  changes by less than ``epsilon`` between sweeps, with ``epsilon = tol`` in weight
  units if ``tol >= 1`` and ``tol × Σ base weights`` otherwise; R's default control
  is ``criterion="r", tol=1, max_iter=10``.

Capped raking (``bounds=(lo, hi)``): the adjustment g = w / (base × T/Σbase) is kept in
[lo, hi] at every step; within each category the units at a bound are held and the
others rescaled so that the category still meets its target whenever that is
possible (a bounded ratio step).  Infeasible bounds end in a non-convergence error
naming the worst margin.
"""
from __future__ import annotations

import numpy as np

from ..errors import WeightingError
from ._cells import number
from ._result import WeightingResult, check_choice, finish, resolve_input
from ._setup import EMPTY, UNMATCHED, margin_rows, prepare, row_margin_fn
from .diagnostics import Diagnostics, margin_table

CRITERIA = ("targets", "r")
ON_NONCONVERGENCE = ("error", "warn")


def rake(data, targets, base_weight=None, *, tol: float = 1e-8, max_iter: int = 1000,
         bounds: tuple[float, float] | None = None, criterion: str = "targets",
         on_nonconvergence: str = "error", unmatched: str = "error", empty: str = "error",
         kind: str = "auto", label: str | None = None, covariates=None) -> WeightingResult:
    """Rake ``data`` to ``targets`` by iterative proportional fitting.

    Parameters
    ----------
    data : DataFrame, or a SurveyDesign (then its weights are the base weights and
        ``result.design`` is the raked design with R's raking record for the SEs).
    targets : ``{margin: {category: share_or_count}}`` (see ``weighting.targets``), a
        :class:`Targets` or a long table.
    base_weight : column name or array of base weights (None: all 1).
    tol, max_iter, criterion : convergence, see the module docstring.
    bounds : (lo, hi) on the adjustment factor (capped raking), lo <= 1 <= hi.
    on_nonconvergence : "error" (default; names the worst margin and its gap) or
        "warn" (return the last weights with ``diagnostics.converged = False`` and a
        warning; R's behaviour).
    unmatched : "error" or "keep_base" (rows whose category is missing from the
        targets, or missing, keep their base weight; the rest are raked to the
        targets — shares scaled to the base weight of the matched rows; with count
        targets the kept rows are scaled by N / (base weight of the matched rows) so
        that they stay on the population scale — reported in ``diagnostics.decisions``).
    empty : "error" or "drop" (target categories with no respondents are dropped and
        their margin renormalised — reported).
    kind : how target values are read: "auto", "shares", "counts", "percent".
    label : names the group being weighted in messages (e.g. "wave 2022-11").
    covariates : columns for the standardised mean differences in the diagnostics
        (default: other numeric/categorical columns).

    R: ``rake(design, list(~a, ~b), list(pop_a, pop_b), control=list(maxit, epsilon))``.
    """
    check_choice("criterion", criterion, CRITERIA)
    check_choice("on_nonconvergence", on_nonconvergence, ON_NONCONVERGENCE)
    check_choice("unmatched", unmatched, UNMATCHED)
    check_choice("empty", empty, EMPTY)
    where = label
    if not (isinstance(max_iter, (int, np.integer)) and not isinstance(max_iter, bool) and max_iter >= 1):
        raise WeightingError(f"max_iter must be a positive integer, got {max_iter!r}",
                             code="weighting.bad_option")
    tol = number("tol", tol, positive=True)
    _check_bounds(bounds)
    df, w0, design = resolve_input(data, base_weight, where)
    s = prepare(df, targets, w0, kind=kind, unmatched=unmatched, empty=empty, label=label, where=where)
    cells, fit = s.cells, s.fit
    mis = [mi[fit] for mi in s.mis]
    g_cells, iters, converged, gap, sweep = fit_cells(s, float(w0.sum()), tol=tol, max_iter=max_iter,
                                                      bounds=bounds, criterion=criterion,
                                                      on_nonconvergence=on_nonconvergence, where=where,
                                                      keep_sweep=design is not None)
    wsum = cells.wsum[fit]
    w = cells.to_rows(g_cells, times=w0)
    t_all = cells.wsum * g_cells
    m = margin_table(*margin_rows(s, t_all))
    adjustment = None
    if design is not None:
        row_cell = cells.row_cells()
        margins = []
        ws = []
        fit_pos = np.flatnonzero(fit)
        for k, mi in enumerate(s.mis):
            # rows outside the fit form one extra category of their own
            codes = np.where(mi >= 0, mi, len(s.targets.margins[k].categories))
            margins.append(codes[row_cell])
            g_k = np.full(cells.n_cells, s.unmatched_g)
            g_k[fit_pos] = sweep[k] / wsum
            ws.append(w0 * g_k[row_cell])
        adjustment = {"kind": "raking", "margins": margins, "w": ws}
    rep_weights = None
    if design is not None and design.is_replicate:
        if bounds is not None:
            raise WeightingError("capped raking (bounds=) of a replicate design is not available",
                                 code="weighting.bad_option", where=where,
                                 hint="rake without bounds (R's rake), or rake the Taylor design")
        rep_weights = _rake_replicates(design, cells, fit, mis, s, iters, where)
    diag = Diagnostics("rake", w, w0, iterations=iters, converged=converged, tolerance=tol,
                       margins=m, decisions=s.decisions, df=df, covariates=covariates,
                       margin_fn=row_margin_fn(s),
                       exclude=set(s.targets.variables) | ({base_weight} if isinstance(base_weight, str) else set()),
                       extra={"criterion": criterion, "max_gap": gap, "bounds": bounds})
    return finish("rake", df, w0, w, design, adjustment, diag, rep_weights=rep_weights)


def fit_cells(s, base_total: float, *, tol: float, max_iter: int, bounds, criterion: str,
              on_nonconvergence: str, where, keep_sweep: bool = False):
    """IPF on the cell table of a :func:`~._setup.prepare` setup ``s`` (``base_total``: Σ base
    weights).  Returns (g per cell, sweeps, converged, max share gap, per-margin sweep) —
    the adjustment of every cell, shared by :func:`rake` and ``weighting.scale``."""
    lo, hi = _check_bounds(bounds)
    cells, fit = s.cells, s.fit
    wsum = cells.wsum[fit]
    mis = [mi[fit] for mi in s.mis]
    scale = s.total / wsum.sum()
    if criterion == "r":
        eps = tol if tol >= 1 else tol * base_total
    else:
        eps = tol
    t, iters, converged, gap, sweep = _ipf(wsum, mis, s.tgt, s.total, eps, max_iter, criterion,
                                           None if bounds is None else (lo * scale, hi * scale),
                                           keep_sweep=keep_sweep)
    if not converged:
        msg = _gap_message(s, mis, t, iters, criterion, eps)
        if on_nonconvergence == "error":
            raise WeightingError(msg, code="weighting.not_converged", where=where,
                                 hint="check that the targets are consistent with each other and "
                                      "with the data, merge sparse categories"
                                      + (", relax the bounds" if bounds else "")
                                      + ", or raise max_iter")
        import warnings

        warnings.warn(msg, stacklevel=3)
        s.decisions.append(msg)
    g_cells = np.full(cells.n_cells, s.unmatched_g)
    g_cells[fit] = t / wsum
    return g_cells, iters, converged, gap, sweep


def _rake_replicates(design, cells, fit, mis, s, iters, where):
    """R's rake() on a svyrep.design: every sweep post-stratifies every replicate weight
    column to each margin in turn, for as many sweeps as the full sample took."""
    repw = design.replicate_info["repw"]
    row_cell = cells.row_cells()
    fit_pos = np.flatnonzero(fit)
    sizes = [len(T) for T in s.tgt]
    out = np.empty_like(repw)
    for r in range(repw.shape[1]):  # loop over replicates (as R), vectorised within
        c0 = np.bincount(row_cell, weights=repw[:, r], minlength=cells.n_cells)[fit_pos]
        t = c0.copy()
        for _ in range(iters):
            for k, (mi, T) in enumerate(zip(mis, s.tgt)):
                sm = np.bincount(mi, weights=t, minlength=sizes[k])
                if np.any((sm <= 0) & (T > 0)):
                    j = int(np.flatnonzero((sm <= 0) & (T > 0))[0])
                    raise WeightingError(f"{s.targets.margins[k].label(j)} has no weight in replicate "
                                         f"{r + 1} of the replicate design", where=where,
                                         code="weighting.replicate_empty_cell",
                                         hint="merge sparse categories so that every replicate keeps "
                                              "respondents in each")
                with np.errstate(divide="ignore", invalid="ignore"):
                    t = t * np.where(sm > 0, T / sm, 0.0)[mi]
        g = np.full(cells.n_cells, s.unmatched_g)
        with np.errstate(divide="ignore", invalid="ignore"):
            g[fit_pos] = np.where(c0 > 0, t / c0, 0.0)
        out[:, r] = repw[:, r] * g[row_cell]
    return out


def _check_bounds(bounds):
    if bounds is None:
        return None, None
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise WeightingError(f"bounds must be (lower, upper), got {bounds!r}",
                             code="weighting.bad_option") from None
    if not (0 <= lo <= 1 <= hi):
        raise WeightingError(f"bounds ({lo:g}, {hi:g}) must satisfy 0 <= lower <= 1 <= upper",
                             code="weighting.bad_option",
                             hint="bounds are on the adjustment factor g = new / base weight")
    return lo, hi


def _ipf(wsum, mis, tgts, total, eps, max_iter, criterion, bounds, keep_sweep=False):
    """IPF on the cell vector.  Returns (cell weights, sweeps, converged, max share gap,
    per-margin cell weights after that margin's step in the last sweep)."""
    t = wsum * (total / wsum.sum()) if bounds is not None else wsum.copy()
    sizes = [len(T) for T in tgts]
    sweep = [None] * len(mis)
    converged = False
    it = 0
    gap = np.inf
    for it in range(1, max_iter + 1):
        old = t.copy() if criterion == "r" else None
        for k, (mi, T) in enumerate(zip(mis, tgts)):
            if bounds is None:
                s = np.bincount(mi, weights=t, minlength=sizes[k])
                t *= (T / s)[mi]
            else:
                t = _bounded_step(t, wsum, mi, T, sizes[k], *bounds)
            if keep_sweep:
                sweep[k] = t.copy()
        if criterion == "r":
            converged = float(np.max(np.abs(t - old))) < eps
            if converged or it == max_iter:
                gap = _max_gap(t, mis, tgts, sizes, total)
        else:
            gap = _max_gap(t, mis, tgts, sizes, total)
            converged = gap <= eps
        if converged:
            break
    return t, it, converged, gap, sweep


def _max_gap(t, mis, tgts, sizes, total):
    g = 0.0
    for mi, T, K in zip(mis, tgts, sizes):
        s = np.bincount(mi, weights=t, minlength=K)
        g = max(g, float(np.max(np.abs(s - T))) / total)
    return g


def _bounded_step(t, wsum, mi, T, K, lo, hi):
    """Ratio step for one margin with g = t / wsum held in [lo, hi]: units pushed past a
    bound are held there and the others of the category rescaled, until stable."""
    g0 = t / wsum
    free = np.ones(t.size, dtype=bool)
    gfix = g0.copy()
    for _ in range(t.size + 1):
        tf = np.where(free, wsum * g0, 0.0)
        s_free = np.bincount(mi, weights=tf, minlength=K)
        s_fixed = np.bincount(mi, weights=np.where(free, 0.0, wsum * gfix), minlength=K)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(s_free > 0, (T - s_fixed) / s_free, 1.0)
        gn = g0 * f[mi]
        out = free & ((gn < lo) | (gn > hi))
        if not out.any():
            return wsum * np.where(free, gn, gfix)
        gfix = np.where(out, np.clip(gn, lo, hi), gfix)
        free &= ~out
    return wsum * np.where(free, g0, gfix)  # pragma: no cover


def _gap_message(s, mis, t, iters, criterion, eps):
    worst = (None, -1, 0.0, 0.0, 0.0)
    for m, mi, T in zip(s.targets.margins, mis, s.tgt):
        sums = np.bincount(mi, weights=t, minlength=len(T))
        d = np.abs(sums - T) / s.total
        j = int(np.argmax(d))
        if d[j] > worst[2]:
            worst = (m, j, float(d[j]), float(sums[j] / s.total), float(T[j] / s.total))
    m, j, g, got, want = worst
    rule = (f"change between sweeps >= {eps:g}" if criterion == "r" else f"tolerance {eps:g}")
    if m is None:
        return f"raking did not converge in {iters} iteration(s) ({rule})"
    return (f"raking did not converge in {iters} iteration(s) ({rule}): worst margin {m.name}, "
            f"category {':'.join(m.categories[j])}: weighted share {got:.6g} vs target {want:.6g} "
            f"(gap {g:.3g})")
