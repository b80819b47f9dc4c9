"""R's ``glm.fit`` IRLS (private; used by ``glm`` and ``estimators.ciprop``).

Families and links as R's ``family`` objects: binomial/quasibinomial (logit, log),
poisson/quasipoisson (log, identity), gaussian (identity, log, inverse), Gamma
(inverse, log, identity); a family is named ``"Gamma"`` (its default link) or
``"Gamma(log)"``.
"""
from __future__ import annotations

import numpy as np

from ..errors import EstimationError

DEFAULT_LINK = {"binomial": "logit", "quasibinomial": "logit", "poisson": "log", "quasipoisson": "log",
                "gaussian": "identity", "Gamma": "inverse"}
LINKS = {"binomial": ("logit", "log"), "quasibinomial": ("logit", "log"),
         "poisson": ("log", "identity"), "quasipoisson": ("log", "identity"),
         "gaussian": ("identity", "log", "inverse"), "Gamma": ("inverse", "log", "identity")}
_EPS = np.finfo(float).eps


def parse_family(family: str) -> tuple[str, str]:
    """("Gamma(log)" | "poisson" | ...) -> (family, link); EstimationError if unknown."""
    if not isinstance(family, str):
        raise EstimationError(f"family must be a name, got {family!r}", code="estimate.bad_family",
                              hint="one of " + ", ".join(DEFAULT_LINK))
    name, link = family.strip(), None
    if name.endswith(")") and "(" in name:
        name, link = name[:-1].split("(", 1)
        name, link = name.strip(), link.strip().strip("'\"")
        if link.startswith("link="):
            link = link[5:].strip("'\"")
    if name not in DEFAULT_LINK:
        raise EstimationError(f"unknown family {family!r}", code="estimate.bad_family",
                              hint="one of " + ", ".join(DEFAULT_LINK) + ", optionally with a link, "
                                   "e.g. 'Gamma(log)'")
    link = link or DEFAULT_LINK[name]
    if link not in LINKS[name]:
        raise EstimationError(f"family {name!r} has no link {link!r} here", code="estimate.bad_family",
                              hint=f"links for {name}: " + ", ".join(LINKS[name]))
    return name, link


def link_functions(link: str):
    """(linkfun, linkinv, mu_eta) as R's make.link."""
    if link == "logit":
        def linkinv(e):
            t = np.exp(np.clip(e, -30.0, 30.0))
            t = np.where(e < -30, _EPS, np.where(e > 30, 1 / _EPS, t))
            return t / (1 + t)

        def mu_eta(e):
            o = 1 + np.exp(e)
            return np.where((e > 30) | (e < -30), _EPS, np.exp(np.clip(e, -30, 30)) / (o * o))
        return (lambda m: np.log(m / (1 - m))), linkinv, mu_eta
    if link == "log":
        return np.log, (lambda e: np.maximum(np.exp(e), _EPS)), (lambda e: np.maximum(np.exp(e), _EPS))
    if link == "inverse":
        return (lambda m: 1 / m), (lambda e: 1 / e), (lambda e: -1 / (e * e))
    return (lambda m: m), (lambda e: e), (lambda e: np.ones_like(e))


def variance_function(family: str):
    if family in ("binomial", "quasibinomial"):
        return lambda m: m * (1 - m)
    if family in ("poisson", "quasipoisson"):
        return lambda m: m
    if family == "Gamma":
        return lambda m: m * m
    return lambda m: np.ones_like(m)


def _irls_r(X, y, w, family, epsilon=1e-8, maxit=25, offset=None, link=None):
    """Iteratively reweighted least squares exactly as R's ``glm.fit`` (start
    mustart: binomial (w y + 0.5)/(w + 1), poisson y + 0.1, gaussian and Gamma y; stop
    when |dev - devold|/(|dev| + 0.1) < epsilon). Returns (beta, mu, eta, working weights
    of the last iteration, converged, iterations) - the working weights are R's
    ``glm$weights``, used with the QR of the last iteration for ``cov.unscaled``.
    offset: R's offset, eta = offset + X beta (the start eta = linkfun(mustart) as R).
    family may carry its link ("Gamma(log)"), or pass link=."""
    if link is None:
        family, link = parse_family(family)
    off = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float)
    linkfun, linkinv, mu_eta = link_functions(link)
    variance = variance_function(family)
    if family in ("binomial", "quasibinomial"):
        mu = (w * y + 0.5) / (w + 1)

        def dev_resids(m):
            with np.errstate(divide="ignore", invalid="ignore"):
                a = np.where(y > 0, y * np.log(y / m), 0.0)
                b = np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - m)), 0.0)
            return 2 * w * (a + b)
    elif family in ("poisson", "quasipoisson"):
        mu = y + 0.1

        def dev_resids(m):
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(y > 0, y * np.log(y / m), 0.0) - (y - m)
            return 2 * w * r
    elif family == "Gamma":
        mu = y.copy()

        def dev_resids(m):
            with np.errstate(divide="ignore", invalid="ignore"):
                return -2 * w * (np.log(np.where(y == 0, 1.0, y / m)) - (y - m) / m)
    else:
        mu = y.copy()
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
        with np.errstate(invalid="ignore"):
            dev = float(np.sum(dev_resids(mu)))
        if not np.isfinite(dev) or (family in ("binomial", "quasibinomial") and np.any((mu <= 0) | (mu >= 1))):
            raise EstimationError(f"the {family} model with the {link} link left the valid range of "
                                  f"fitted values at iteration {it} (R would ask for starting values)",
                                  code="estimate.not_converged",
                                  hint="use the family's default link, or another model")
        if abs(dev - devold) / (abs(dev) + 0.1) < epsilon:
            converged = True
            break
        devold = dev
    return beta, mu, eta, ww ** 2, converged, it
