"""Age standardisation and the Rao–Scott goodness-of-fit test, on estimated totals.

Everything here works on a vector of design-based weighted totals and its covariance
matrix (``SurveyDesign.total_vcov``), so that it is a pure function of numbers that
can be checked by hand. Variances are first-order Taylor (delta-method) linearisations.

* :func:`direct` — direct standardisation (R ``svystandardize(design, by=~agegrp,
  population=std)`` then ``svymean``): the domain rates r_c = Y_c/N_c of the standard
  cells c (age bands, or age × sex) are averaged with the standard population's weights
  s_c (sum 1):  R_dir = sum_c s_c Y_c / N_c,  with gradient  dR/dY_c = s_c/N_c,
  dR/dN_c = -s_c Y_c / N_c^2. This is exactly the linearisation of R's post-stratified
  design (postStratify to cells s_c * N_hat, partial=TRUE): residuals y_i - r_c within
  cells (Lumley 2010, §7.3; Korn & Graubard 1999, §3.6).
* :func:`indirect` — indirect standardisation: observed O = sum_c Y_c, expected
  E = sum_c N_c rho_c from the population's age-specific rates rho_c; the standardised
  ratio SR = O/E (an SMR-type ratio) with gradient dSR/dY_c = 1/E,
  dSR/dN_c = -O rho_c / E^2 (and, when the rates have SEs, dSR/drho_c = -O N_c/E^2 as an
  independent source of variance).
* :func:`gof_chisq` — R's ``svygofchisq(~f, p, design)`` (survey 4.1): Pearson's X² on
  the estimated totals, X² = sum_k (T_k - N p_k)² / (N p_k) with N = sum_k T_k, referred
  to the distribution of sum_k lambda_k chi²_1 where lambda are the eigenvalues of the
  covariance of X_k = (T_k - p_k N)/sqrt(p_k N); the p-value uses R's default
  Satterthwaite approximation (``pchisqsum(method="satterthwaite")``): X²/scale ~
  chi²_df with scale = mean(lambda²)/mean(lambda), df = K mean(lambda)²/mean(lambda²)
  (Rao & Scott 1981, 1984).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A scalar estimate with its (linearised) variance."""

    estimate: float
    variance: float

    @property
    def se(self) -> float:
        return float(np.sqrt(self.variance)) if np.isfinite(self.variance) and self.variance >= 0 else np.nan


def _quad(g: np.ndarray, V: np.ndarray) -> float:
    return float(g @ V @ g)


def ratio(totals, vcov, num: int, den: int) -> Estimate:
    """R = T_num / T_den with delta-method variance (R ``svyratio``)."""
    t = np.asarray(totals, float)
    V = np.asarray(vcov, float)
    g = np.zeros(t.size)
    if t[den] == 0:
        return Estimate(np.nan, np.nan)
    r = t[num] / t[den]
    g[num] += 1.0 / t[den]
    g[den] += -t[num] / t[den] ** 2
    return Estimate(float(r), _quad(g, V))


def shares(totals, vcov):
    """Shares p_k = T_k / sum(T) of K category totals and their covariance
    J V J' with J = (I - p 1') / N."""
    t = np.asarray(totals, float)
    V = np.asarray(vcov, float)
    N = t.sum()
    if N <= 0:
        k = t.size
        return np.full(k, np.nan), np.full((k, k), np.nan)
    p = t / N
    J = (np.eye(t.size) - np.outer(p, np.ones(t.size))) / N
    return p, J @ V @ J.T


def direct(totals, vcov, std_weights) -> Estimate:
    """Directly standardised rate from stacked totals ``[Y_1..Y_C, N_1..N_C]``.

    totals: (2C,) weighted totals of y (numerators) then of the cell indicators
    (denominators) of the C standard cells; vcov: their (2C, 2C) covariance;
    std_weights: (C,) the standard population's cell shares (normalised here).
    NaN if a cell with a positive standard weight has no sample (N_c = 0).
    """
    t = np.asarray(totals, float)
    V = np.asarray(vcov, float)
    s = np.asarray(std_weights, float)
    s = s / s.sum()
    C = s.size
    Y, N = t[:C], t[C:]
    use = s > 0
    if np.any(N[use] <= 0):
        return Estimate(np.nan, np.nan)
    Nsafe = np.where(N > 0, N, 1.0)
    r = np.where(use, Y / Nsafe, 0.0)
    est = float((s * r).sum())
    g = np.concatenate([np.where(use, s / Nsafe, 0.0), np.where(use, -s * Y / Nsafe ** 2, 0.0)])
    return Estimate(est, _quad(g, V))


def indirect(totals, vcov, rates, rate_se=None):
    """Indirect standardisation from stacked totals ``[Y_1..Y_C, N_1..N_C]``.

    rates: (C,) population rates rho_c of the cells (proportions); rate_se optional SEs.
    Returns dict with ``observed`` (O/N), ``expected`` (E/N), ``ratio`` (O/E) and
    ``difference`` ((O-E)/N), each an :class:`Estimate`, plus O, E, N.
    """
    t = np.asarray(totals, float)
    V = np.asarray(vcov, float)
    rho = np.asarray(rates, float)
    C = rho.size
    Y, Nc = t[:C], t[C:]
    O, E, N = Y.sum(), (Nc * rho).sum(), Nc.sum()
    vr = np.zeros(C) if rate_se is None else np.nan_to_num(np.asarray(rate_se, float)) ** 2
    one = np.ones(C)
    with np.errstate(divide="ignore", invalid="ignore"):   # an empty domain (N = 0): NaN, not a warning
        # O/N
        g_obs = np.concatenate([one / N, -O / N ** 2 * one])
        g_exp = np.concatenate([np.zeros(C), rho / N - E / N ** 2])
        g_rat = np.concatenate([one / E, -O * rho / E ** 2])
        g_dif = g_obs - g_exp
        out = {
            "observed": Estimate(O / N, _quad(g_obs, V)),
            "expected": Estimate(E / N, _quad(g_exp, V) + float(((Nc / N) ** 2 * vr).sum())),
            "ratio": Estimate(O / E, _quad(g_rat, V) + float(((O * Nc / E ** 2) ** 2 * vr).sum())),
            "difference": Estimate((O - E) / N, _quad(g_dif, V) + float(((Nc / N) ** 2 * vr).sum())),
            "O": O, "E": E, "N": N,
        }
    return out


@dataclass(frozen=True)
class GofResult:
    statistic: float     # Pearson X² on the weighted totals (R: rval$statistic)
    scale: float         # R: rval$parameter["scale"]
    df: float            # R: rval$parameter["df"]
    p_value: float
    lambdas: tuple


def gof_chisq(totals, vcov, p) -> GofResult:
    """Design-based goodness-of-fit test of category totals against known proportions
    ``p`` (R ``svygofchisq``; see the module docstring for the formula)."""
    from scipy import stats

    T = np.asarray(totals, float)
    V = np.asarray(vcov, float)
    p = np.asarray(p, float)
    p = p / p.sum()
    K = T.size
    N = T.sum()
    E = N * p
    X2 = float(((T - E) ** 2 / E).sum())
    J = (np.eye(K) - p[:, None]) / np.sqrt(E)[:, None] \
        - (0.5 * (T - E) * p / E ** 1.5)[:, None]
    VX = J @ V @ J.T
    lam = np.sort(np.linalg.eigvalsh((VX + VX.T) / 2))[::-1]
    tr = lam.mean()
    tr2 = (lam ** 2).mean() / tr ** 2
    scale = tr * tr2
    df = K / tr2
    pv = float(stats.chi2.sf(X2 / scale, df))
    return GofResult(X2, float(scale), float(df), pv, tuple(float(x) for x in lam))
