"""Tail probabilities of linear combinations of chi-squares (private; ``chisq``).

R's ``survey:::pFsum`` for ``svychisq(statistic="saddlepoint" | "lincom")``: the
Pearson X2 of a design-based two-way table is asymptotically sum_j a_j chi2_1 with a_j
the eigenvalues of the Rao–Scott design-effect matrix Delta; with ddf denominator
degrees of freedom, P(X2 > x) = P(sum_j a_j chi2_1 - (x/ddf) chi2_ddf > 0).

* "saddlepoint": ``survey:::saddle(0, c(a, rep(-x/ddf, ddf)))`` (Kuonen 1999), the
  root found with R's uniroot (tol 1e-8) step for step; where R's saddlepoint gives NA
  (|zeta| < 1e-4) the Satterthwaite F approximation, as R.
* "lincom": the exact probability by numerical inversion of the characteristic function
  (Imhof 1961), the quantity R computes with ``CompQuadForm::davies(acc=1e-7)``; as
  davies, the chi2_ddf has ``int(ddf)`` degrees of freedom.
"""
from __future__ import annotations

import numpy as np


def _satterthwaite_f(x, a, ddf):
    from scipy import stats

    tr = np.mean(a)
    tr2 = np.mean(a ** 2) / tr ** 2
    scale = tr * tr2
    ndf = a.size / tr2
    return float(stats.f.sf(x / ndf / scale, ndf, ddf))


def saddle(x: float, lam: np.ndarray):
    """R's survey:::saddle(x, lambda): upper tail P(sum lambda_j chi2_1 > x) by the
    Lugannani–Rice saddlepoint formula; None where R returns NA."""
    from scipy import stats

    from ._roots import _zeroin

    lam = np.asarray(lam, dtype=float)
    d = lam.max()
    lam = lam / d
    x = x / d

    def k0(z):
        return -np.sum(np.log(1 - 2 * z * lam)) / 2

    def kprime0(z):
        return float(np.sum(lam / (1 - 2 * z * lam)))

    def kpprime0(z):
        return 2 * np.sum(lam ** 2 / (1 - 2 * z * lam) ** 2)

    if np.any(lam < 0):
        lmin = np.max(1 / (2 * lam[lam < 0])) * 0.99999
    elif x > lam.sum():
        lmin = -0.01
    else:
        lmin = -lam.size / (2 * x)
    lmax = np.min(1 / (2 * lam[lam > 0])) * 0.99999
    z = _zeroin(lambda zz: kprime0(zz) - x, float(lmin), float(lmax), 1e-8)
    w = np.sign(z) * np.sqrt(2 * (z * x - k0(z)))
    v = z * np.sqrt(kpprime0(z))
    if abs(z) < 1e-4:
        return None
    return float(stats.norm.sf(w + np.log(v / w) / w))


def pfsum_saddlepoint(x: float, a: np.ndarray, ddf: float) -> float:
    """R's pFsum(x, df=rep(1, length(a)), a, ddf, lower.tail=FALSE, method="saddlepoint")."""
    a = np.asarray(a, dtype=float)
    rval = _satterthwaite_f(x, a, ddf)
    lam = np.concatenate([a, np.repeat(-x / ddf, int(ddf))]) if ddf > 1 else np.append(a, -x / ddf)
    s = saddle(0.0, lam)
    return rval if s is None else s


def imhof_upper(lam: np.ndarray, h: np.ndarray, c: float = 0.0) -> float:
    """P(sum_j lam_j chi2_{h_j} > c), exact by Imhof's (1961) inversion formula."""
    from scipy import integrate

    lam = np.asarray(lam, dtype=float)
    h = np.asarray(h, dtype=float)

    def f(u):
        if u == 0.0:   # the integrand's limit at 0
            return 0.5 * np.sum(h * lam) - 0.5 * c
        theta = 0.5 * np.sum(h * np.arctan(lam * u)) - 0.5 * c * u
        with np.errstate(over="ignore"):
            rho = np.exp(np.sum(h / 4 * np.log1p((lam * u) ** 2)))
        return np.sin(theta) / (u * rho)

    val, _ = integrate.quad(f, 0, np.inf, limit=2000, epsabs=1e-13, epsrel=1e-12)
    return float(0.5 + val / np.pi)


def pfsum_integration(x: float, a: np.ndarray, ddf: float) -> float:
    """R's pFsum(..., method="integration") (CompQuadForm::davies(0, c(a, -x/ddf),
    c(rep(1, length(a)), ddf)) with ddf truncated to an integer as davies does), here
    by Imhof's formula. ddf = inf (P(sum a_j chi2_1 > x), which svychisq never asks
    for: its ddf is d0 times the finite design df) converges slowly for few
    eigenvalues; use a large finite ddf instead."""
    a = np.asarray(a, dtype=float)
    if not np.isfinite(ddf):
        return imhof_upper(a, np.ones(a.size), c=x)
    return imhof_upper(np.append(a, -x / ddf), np.append(np.ones(a.size), float(int(ddf))))
