"""Taylor-linearisation variance kernels (private).

The variance of a vector of estimated totals (or of any estimator through its
linearised "influence" scores) under a stratified multistage design is computed as
R's ``survey:::svyrecvar`` / ``multistage`` / ``onestrat`` (survey 4.1, Lumley 2010,
§2.2 and appendix C):

    V = sum_stages sum_h  m_h (1 - f_h) n_h/(n_h - 1) sum_i (z_hi - zbar_h)(z_hi - zbar_h)'

where z_hi are the totals of the scores over sampling unit i of stratum h at that
stage, f_h = n_h/N_h the sampling fraction (0 without fpc), and m_h the product of the
sampling fractions of the units above (stage 1: m = 1). Later stages only contribute
when an fpc is given for the stages above (as R: without fpc the variance is the
with-replacement "ultimate cluster" variance). Single-unit strata follow
``lonely_psu`` like ``options(survey.lonely.psu)``.

Everything is vectorised: unit totals are ``np.bincount`` sums over integer codes, the
centring within strata uses ``np.add.reduceat`` over units numbered in stratum order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LONELY_RULES = ("fail", "remove", "adjust", "average", "certainty")


@dataclass(frozen=True)
class Stage:
    """One sampling stage.

    unit: (n,) int64 unit code of every row, units numbered so that their strata are
    non-decreasing; unit_stratum: (U,) stratum of each unit; starts: (H,) first unit of
    each stratum; n_h: (H,) units per stratum; scale_u: (U,) the full multiplier
    m_h (1-f_h) n_h/(n_h-1) (0 for removed / self-representing strata, 'average'
    factor folded in); center_h: (H,) False where lonely_psu='adjust' leaves a
    single-unit stratum uncentred; nan_h: (H,) True where the contribution is NaN
    (R's 'average' rule when no stratum of a group is usable).
    """

    unit: np.ndarray
    n_units: int
    unit_stratum: np.ndarray
    starts: np.ndarray
    n_h: np.ndarray
    scale_u: np.ndarray
    center_h: np.ndarray
    nan_h: np.ndarray = field(default=None)
    frac_h: np.ndarray = field(default=None)   # sampling fraction n_h/N_h (0 without fpc)
    mult_h: np.ndarray = field(default=None)   # product of the fractions above
    # domain views (restrict_stage): units of the full design's strata that have no row
    # in the view, per stratum (their totals are 0; they still count in the centring)
    absent_h: np.ndarray = field(default=None)


def factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (0..k-1, in order of first appearance) and uniques of a 1-d array."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values) if not hasattr(values, "dtype") else values,
                                  use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), np.asarray(uniques)


def combine_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Codes of the pairs (a, b) of two non-negative code arrays (first-appearance order)."""
    import pandas as pd

    key = a.astype(np.int64) * (int(b.max()) + 1 if b.size else 1) + b
    codes, _ = pd.factorize(key)
    return codes.astype(np.int64, copy=False)


def stratum_scales(n_h: np.ndarray, fpc_h: np.ndarray | None, fpc_is_fraction: bool,
                   mult_h: np.ndarray, lonely_psu: str, stage_no: int, stratum_label,
                   grp_h: np.ndarray | None = None, fpc_name: str = "fpc"):
    """Per-stratum multipliers of one stage from its unit counts (shared by :func:`build_stage`
    and the element-sampled out-of-core designs, ``survey/scan.py``).

    n_h: (H,) sampled units per stratum; fpc_h: (H,) the stratum's fpc (population size,
    or the sampling fraction when fpc_is_fraction; None = with replacement); mult_h: (H,)
    product of the sampling fractions above; grp_h: (H,) the 'average' rule group (None =
    one group). Returns ``(scale_h, center_h, nan_h, frac_h)``: scale_h = m_h (1-f_h)
    n_h/(n_h-1) with the lonely-PSU rule applied (0 for removed / self-representing strata,
    the 'average' factor folded in), center_h False where 'adjust' leaves a single-unit
    stratum uncentred, nan_h True where the contribution is NaN ('average' with no usable
    stratum), frac_h = n_h/N_h (0 without fpc). Raises ``design.fpc_too_small`` and
    ``design.lonely_psu`` (rule 'fail') naming the stratum (``stratum_label(h)``).
    """
    from ..errors import DesignError

    n_strata = n_h.size
    if fpc_h is None:
        N_h = np.full(n_strata, np.inf)
    else:
        with np.errstate(divide="ignore"):
            N_h = n_h / fpc_h if fpc_is_fraction else fpc_h
        if np.any(N_h < n_h - 1e-9 * n_h):
            h = int(np.flatnonzero(N_h < n_h - 1e-9 * n_h)[0])
            raise DesignError(f"{fpc_name!r} implies more than 100% sampling in stratum "
                              f"{stratum_label(h)!s} at stage {stage_no}: population "
                              f"{N_h[h]:g} < {int(n_h[h])} sampled units",
                              code="design.fpc_too_small", where=f"column {fpc_name!r}",
                              hint="fpc is the number of units in the population of the "
                                   "stratum (or a sampling fraction <= 1 for all rows)")
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(np.isinf(N_h), 1.0, (N_h - n_h) / N_h)          # R's f = 1 - n/N
        frac = np.where(np.isinf(N_h), 0.0, n_h / N_h)
        scale_h = np.where(n_h > 1, f * n_h / np.maximum(n_h - 1, 1), f) * mult_h
    scale_h = np.where(f < 1e-7, 0.0, scale_h)                        # self-representing
    center_h = np.ones(n_strata, dtype=bool)
    nan_h = np.zeros(n_strata, dtype=bool)
    # R's onestrat: a self-representing stratum (f = 0: every unit sampled, e.g. a
    # single school out of a single school) contributes 0 before the lonely-PSU rule
    lonely = (n_h == 1) & ~(f < 1e-7)
    if lonely.any():
        if lonely_psu == "fail":
            h = int(np.flatnonzero(lonely)[0])
            raise DesignError(
                f"only one PSU in this stratum at stage {stage_no}"
                + (f" ({int(lonely.sum())} such strata)" if lonely.sum() > 1 else ""),
                code="design.lonely_psu", where=f"stratum {stratum_label(h)!s}",
                hint="choose a rule: SurveyDesign(..., lonely_psu='remove'|'adjust'|'average'"
                     "|'certainty') (as R's options(survey.lonely.psu)), or merge the stratum "
                     "with a neighbouring one")
        if lonely_psu == "adjust":
            center_h = ~lonely
        elif lonely_psu == "average":
            # R: sum over usable strata * nstrat/nokstrat within each onestage() call
            if grp_h is None:
                grp_h = np.zeros(n_strata, dtype=np.int64)
            ng = int(grp_h.max()) + 1
            nstrat = np.bincount(grp_h, minlength=ng).astype(float)
            nok = np.bincount(grp_h, weights=(~lonely).astype(float), minlength=ng)
            with np.errstate(divide="ignore", invalid="ignore"):
                fac = nstrat / nok
            scale_h = np.where(lonely, 0.0, scale_h * fac[grp_h])
            nan_h = (nok == 0)[grp_h]
            scale_h = np.where(nan_h, 0.0, scale_h)
        else:  # remove / certainty: a centred single unit contributes 0
            scale_h = np.where(lonely, 0.0, scale_h)
    return scale_h, center_h, nan_h, frac


def build_stage(unit_code: np.ndarray, stratum_code: np.ndarray, fpc_row: np.ndarray | None,
                fpc_is_fraction: bool, parent_mult_row: np.ndarray | None, lonely_psu: str,
                stage_no: int, stratum_label, group_of_stratum_row: np.ndarray | None = None,
                fpc_name: str = "fpc") -> Stage:
    """Build a :class:`Stage` from row-level unit and stratum codes.

    unit_code must be nested in stratum_code (checked by the caller). fpc_row is the
    row's fpc at this stage: population size of its stratum, or the sampling fraction
    when fpc_is_fraction (None = no fpc, with-replacement);
    parent_mult_row the multiplier m of the row's stratum (None = 1).
    stratum_label(h_code) names a stratum for error messages.
    group_of_stratum_row: the 'average' rule group (R's onestage call) per row.
    """
    from ..errors import DesignError

    n_units = int(unit_code.max()) + 1 if unit_code.size else 0
    n_strata = int(stratum_code.max()) + 1 if stratum_code.size else 0
    # stratum of each unit
    us = np.zeros(n_units, dtype=np.int64)
    us[unit_code] = stratum_code
    # renumber units in stratum order
    order = np.argsort(us, kind="stable")
    newcode = np.empty(n_units, dtype=np.int64)
    newcode[order] = np.arange(n_units)
    unit = newcode[unit_code]
    unit_stratum = us[order]
    n_h = np.bincount(unit_stratum, minlength=n_strata).astype(np.float64)
    starts = np.concatenate(([0], np.cumsum(n_h)[:-1])).astype(np.int64)

    # first row of each stratum, to read stratum-level inputs
    first_row = np.full(n_strata, -1, dtype=np.int64)
    rows = np.arange(stratum_code.size)
    first_row[stratum_code[::-1]] = rows[::-1]
    fpc_h = None
    if fpc_row is not None:
        fpc_row = np.asarray(fpc_row, dtype=np.float64)
        fpc_h = fpc_row[first_row]
        bad = fpc_row != fpc_h[stratum_code]
        if bad.any():
            h = int(stratum_code[np.flatnonzero(bad)[0]])
            raise DesignError(f"{fpc_name!r} varies within stratum {stratum_label(h)!s} at stage "
                              f"{stage_no} ({int(bad.sum())} rows differ from the stratum's first row)",
                              code="design.fpc_varies", where=f"column {fpc_name!r}",
                              hint="fpc must be constant within strata: the population size "
                                   "(or sampling fraction) of the stratum at that stage")
    mult_h = (np.ones(n_strata) if parent_mult_row is None
              else np.asarray(parent_mult_row, dtype=np.float64)[first_row])
    grp_h = None if group_of_stratum_row is None else np.asarray(group_of_stratum_row)[first_row]
    scale_h, center_h, nan_h, frac = stratum_scales(n_h, fpc_h, fpc_is_fraction, mult_h, lonely_psu,
                                                    stage_no, stratum_label, grp_h, fpc_name)
    return Stage(unit=unit, n_units=n_units, unit_stratum=unit_stratum, starts=starts,
                 n_h=n_h, scale_u=scale_h[unit_stratum], center_h=center_h, nan_h=nan_h,
                 frac_h=frac, mult_h=mult_h)


def unit_sums(codes: np.ndarray, n_codes: int, Z: np.ndarray) -> np.ndarray:
    """Sums of the rows of Z (n, k) by integer code -> (n_codes, k)."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 1:
        return np.bincount(codes, weights=Z, minlength=n_codes)[:, None]
    k = Z.shape[1]
    if k <= 16:   # [scale] one bincount per column beats building a sparse matrix of n rows
        out = np.empty((n_codes, k))
        for j in range(k):  # loop over a few columns, not over rows
            out[:, j] = np.bincount(codes, weights=Z[:, j], minlength=n_codes)
        return out
    from scipy import sparse

    M = sparse.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))),
                          shape=(n_codes, codes.size))
    return np.asarray(M @ Z)


def stage_vcov(stage: Stage, T: np.ndarray) -> np.ndarray:
    """Variance contribution of one stage from the unit totals T (U, k) of the scores."""
    T = np.asarray(T, dtype=np.float64)
    if T.ndim == 1:
        T = T[:, None]
    k = T.shape[1]
    if stage.n_units == 0:
        return np.zeros((k, k))
    sums = np.add.reduceat(T, stage.starts, axis=0)
    means = sums / stage.n_h[:, None]
    means[~stage.center_h] = 0.0
    D = T - means[stage.unit_stratum]
    V = (D * stage.scale_u[:, None]).T @ D
    if stage.absent_h is not None and stage.absent_h.any():
        # units outside a domain view: total 0, deviation -mean_h each
        c = stage.absent_h * stage.scale_u[stage.starts]
        V += (means * c[:, None]).T @ means
    if stage.nan_h is not None and stage.nan_h.any():
        V = V * np.nan
    return V


def restrict_stage(stage: Stage, rows: np.ndarray) -> Stage:
    """The stage seen from the rows ``rows`` (sorted row indices) of a domain only.

    Units without a row in the domain and strata without such units are dropped; the
    kept strata keep their full unit counts ``n_h`` and record the dropped units in
    ``absent_h``, so that :func:`stage_vcov` / :func:`stage_vcov_sparse` of totals over
    the kept units equal those of the full stage with zero totals elsewhere (rows
    outside a domain have weight 0: Lumley 2010, §2.3; R ``subset.survey.design``).
    Strata without a kept unit contribute nothing (all their totals are 0). Cost: one
    pass over the domain's rows and the stage's units.
    """
    u = stage.unit[rows]
    present = np.zeros(stage.n_units, dtype=bool)
    present[u] = True
    keep = np.flatnonzero(present)               # units stay in stratum order
    newcode = np.full(stage.n_units, -1, dtype=np.int64)
    newcode[keep] = np.arange(keep.size)
    us_old = stage.unit_stratum[keep]
    H = stage.n_h.size
    hs = np.flatnonzero(np.bincount(us_old, minlength=H) > 0)
    hmap = np.full(H, -1, dtype=np.int64)
    hmap[hs] = np.arange(hs.size)
    unit_stratum = hmap[us_old]
    present_h = np.bincount(unit_stratum, minlength=hs.size).astype(np.float64)
    starts = np.concatenate(([0], np.cumsum(present_h)[:-1])).astype(np.int64)
    n_h = stage.n_h[hs]
    absent = n_h - present_h          # n_h: the full design's counts (also for a view of a view)
    nan_h = None if stage.nan_h is None else np.full(hs.size, bool(stage.nan_h.any()))

    def pick(a):
        return None if a is None else a[hs]

    return Stage(unit=newcode[u], n_units=int(keep.size), unit_stratum=unit_stratum,
                 starts=starts, n_h=n_h, scale_u=stage.scale_u[keep], center_h=stage.center_h[hs],
                 nan_h=nan_h, frac_h=pick(stage.frac_h), mult_h=pick(stage.mult_h), absent_h=absent)


def design_vcov(stages: list[Stage], Z: np.ndarray | None = None,
                unit_totals: list[np.ndarray] | None = None) -> np.ndarray:
    """Sum of the stage contributions, from row scores Z (n, k) or precomputed unit
    totals per stage (list of (U_s, k) arrays)."""
    V = None
    for s, stage in enumerate(stages):
        T = unit_totals[s] if unit_totals is not None else unit_sums(stage.unit, stage.n_units, Z)
        v = stage_vcov(stage, T)
        V = v if V is None else V + v
    return V


# --------------------------------------------------------------------------------------
# calibration-aware projections (R svyrecvar's design$postStrata handling)
# --------------------------------------------------------------------------------------

def _cell_means(codes: np.ndarray, X: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-cell (weighted) mean of the rows of X, mapped back to rows."""
    ncell = int(codes.max()) + 1
    if weights is None:
        den = np.bincount(codes, minlength=ncell).astype(float)
        num = unit_sums(codes, ncell, X)
    else:
        den = np.bincount(codes, weights=weights, minlength=ncell)
        num = unit_sums(codes, ncell, X * weights[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        m = num / den[:, None]
    m[~np.isfinite(m)] = 0.0
    return m[codes]


def apply_adjustment(Z: np.ndarray, adj: dict) -> np.ndarray:
    """Project the weighted scores Z (n, k) for one calibration record, as svyrecvar:

    * greg:      Z <- qr.resid(X, Z/w) * w
    * poststrat: Z <- Z - cellmean_oldw(Z/w) * w   (cell mean weighted by ``oldw``,
                 unweighted when oldw is absent; w==0 & oldw==0 -> w=1)
    * raking:    10 sweeps over the margins of  Z <- Z - w_m * ave(Z/w_m, margin_m)
    """
    kind = adj["kind"]
    Z = np.asarray(Z, dtype=np.float64)
    if kind == "greg":
        w = adj["w"]
        Q = adj.get("_Q")
        if Q is None:
            Q = np.linalg.qr(np.asarray(adj["X"], dtype=float), mode="reduced")[0]
        B = Z / w[:, None]
        R = B - Q @ (Q.T @ B)
        return R * w[:, None]
    if kind == "poststrat":
        cells = adj["cells"]
        psw = np.asarray(adj["w"], dtype=float)
        oldw = adj.get("oldw")
        if oldw is not None:
            oldw = np.asarray(oldw, dtype=float)
            psw = np.where((psw == 0) & (oldw == 0), 1.0, psw)
        m = _cell_means(cells, Z / psw[:, None], oldw)
        return Z - m * psw[:, None]
    if kind == "raking":
        margins = adj["margins"]
        ws = adj["w"]
        if not isinstance(ws, (list, tuple)):
            ws = [ws] * len(margins)
        for _ in range(int(adj.get("iterations", 10))):
            for codes, psw in zip(margins, ws):
                psw = np.asarray(psw, dtype=float)
                Z = Z - psw[:, None] * _cell_means(codes, Z / psw[:, None])
        return Z
    raise ValueError(f"unknown adjustment kind {kind!r}")


def stage_vcov_sparse(stage: Stage, Zs) -> np.ndarray:
    """Stage contribution from sparse unit totals Zs (U, k) (scipy sparse), using
    sum_{u in h} (z_u - m_h)(z_u - m_h)' = sum z_u z_u' - n_h m_h m_h' per stratum."""
    from scipy import sparse

    Zs = sparse.csr_matrix(Zs)
    k = Zs.shape[1]
    S = sparse.diags(stage.scale_u)
    V = np.asarray((Zs.T @ (S @ Zs)).todense())
    H = stage.n_h.size
    ind = sparse.csr_matrix((np.ones(stage.n_units), (stage.unit_stratum, np.arange(stage.n_units))),
                            shape=(H, stage.n_units))
    sums = np.asarray((ind @ Zs).todense())
    scale_h = stage.scale_u[stage.starts] if stage.n_units else np.zeros(H)
    coef = np.where(stage.center_h, scale_h / stage.n_h, 0.0)
    V -= (sums * coef[:, None]).T @ sums
    if stage.nan_h is not None and stage.nan_h.any():
        V = V * np.nan
    return V.reshape(k, k)
