"""R's ``glm.fit`` IRLS (private; used by ``glm`` and ``estimators.ciprop``)."""
from __future__ import annotations

import numpy as np


def _irls_r(X, y, w, family, epsilon=1e-8, maxit=25, offset=None):
    """Iteratively reweighted least squares exactly as R's ``glm.fit`` (start
    mustart: binomial (w y + 0.5)/(w + 1), poisson y + 0.1, gaussian y; stop when
    |dev - devold|/(|dev| + 0.1) < epsilon). Returns (beta, mu, eta, working weights of the
    last iteration, converged, iterations) - the working weights are R's ``glm$weights``,
    used with the QR of the last iteration for ``cov.unscaled``. offset: R's offset,
    eta = offset + X beta (the start eta = linkfun(mustart) as R)."""
    off = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float)
    if family in ("binomial", "quasibinomial"):
        mu = (w * y + 0.5) / (w + 1)
        linkfun = lambda m: np.log(m / (1 - m))
        linkinv = lambda e: 1 / (1 + np.exp(-e))
        mu_eta = lambda e: np.exp(-np.abs(e)) / (1 + np.exp(-np.abs(e))) ** 2
        variance = lambda m: m * (1 - m)

        def dev_resids(m):
            with np.errstate(divide="ignore", invalid="ignore"):
                a = np.where(y > 0, y * np.log(y / m), 0.0)
                b = np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - m)), 0.0)
            return 2 * w * (a + b)
    elif family in ("poisson", "quasipoisson"):
        mu = y + 0.1
        linkfun, linkinv, mu_eta, variance = np.log, np.exp, np.exp, (lambda m: m)

        def dev_resids(m):
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(y > 0, y * np.log(y / m), 0.0) - (y - m)
            return 2 * w * r
    else:
        mu = y.copy()
        linkfun = linkinv = (lambda e: e)
        mu_eta = lambda e: np.ones_like(e)
        variance = lambda m: np.ones_like(m)
        dev_resids = lambda m: w * (y - m) ** 2
    eta = linkfun(mu)
    mu = linkinv(eta)
    devold = float(np.sum(dev_resids(mu)))
    beta = None
    ww = None
    converged = False
    it = 0
    for it in range(1, maxit + 1):
        me = mu_eta(eta)
        z = (eta - off) + (y - mu) / me
        ww = np.sqrt(w * me ** 2 / variance(mu))
        beta = np.linalg.lstsq(X * ww[:, None], z * ww, rcond=None)[0]
        eta = X @ beta + off
        mu = linkinv(eta)
        dev = float(np.sum(dev_resids(mu)))
        if abs(dev - devold) / (abs(dev) + 0.1) < epsilon:
            converged = True
            break
        devold = dev
    return beta, mu, eta, ww ** 2, converged, it
