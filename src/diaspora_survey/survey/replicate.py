"""Replicate weights from a Taylor design (private helper of ``SurveyDesign.to_replicate``).

Follows R's ``as.svrepdesign`` (survey 4.1; Lumley 2010, §2.3):

* JK1: one replicate per PSU (unstratified); the PSU's weights are 0, all others are
  multiplied by n/(n-1); scale = (n-1)/n * (1 - n/N) with a stage-1 fpc; rscales = 1.
* JKn: one replicate per PSU of every stratum with >= 2 PSUs; in-stratum weights of the
  other PSUs multiplied by n_h/(n_h-1); scale = 1, rscales = (n_h-1)/n_h * (1 - n_h/N_h).
* BRR / Fay: exactly two PSUs per stratum; replicate r gives factor (2-rho) to one PSU
  and rho to the other by the sign of a Sylvester Hadamard matrix column (rho = 0: BRR);
  scale = 1/(R (1-rho)^2), rscales = 1. (R picks its own Hadamard matrix, so individual
  replicates differ from R's; the variance estimator is the same fully balanced one.)
* bootstrap: R's ``bootweights`` (Canty & Davison 1999): in each stratum draw n_h PSUs
  with replacement (with a stage-1 fpc: n_h without replacement from a pseudo-population
  of N_h units made by repeating the stratum's PSUs), factor = count; scale =
  nbar/((nbar-1)(R-1)) with nbar the harmonic mean of the n_h, rscales = 1 (seeded).
* subbootstrap: R's ``subbootweights`` (Rao & Wu 1988 rescaled bootstrap): draw n_h - 1
  PSUs with replacement, factor = count * n_h/(n_h-1); scale = 1/(R-1), rscales = 1 (no fpc).

The random draws use numpy's generator, so replicates differ from R's for the same seed;
the estimator is the same.
"""
from __future__ import annotations

import numpy as np

from ..errors import DesignError

MAX_CELLS = 300_000_000


def _check_size(n, R):
    if n * R > MAX_CELLS:
        raise DesignError(f"{n} rows x {R} replicates is too large for replicate weights",
                          code="design.replicates_too_large",
                          hint="use the Taylor design (linearisation) for data of this size, "
                               "or a bootstrap with fewer replicates")


def make_replicates(design, type: str, *, replicates: int = 200, seed=None, rho: float = 0.5) -> dict:
    st = design._stages[0]
    P = st.n_units
    H = st.n_h.size
    unit_h = st.unit_stratum
    n_h = st.n_h
    f_h = st.frac_h          # n_h/N_h, 0 without fpc
    if type == "JK1":
        _check_size(design.n, P)
        if H > 1:
            raise DesignError("JK1 (delete-one-PSU jackknife) is for unstratified designs",
                              code="design.jk1_stratified",
                              hint="use type='JKn' for a stratified design (as R: \"Can't use JK1 "
                                   "for a stratified design\")")
        F = np.full((P, P), P / (P - 1))
        np.fill_diagonal(F, 0.0)
        scale = (P - 1) / P * (1 - f_h[0])
        rscales = np.ones(P)
    elif type == "JKn":
        ok = n_h[unit_h] > 1
        cols = np.flatnonzero(ok)                 # one replicate per PSU of a non-lonely stratum
        R = cols.size
        _check_size(design.n, R)
        F = np.ones((P, R))
        same = unit_h[:, None] == unit_h[cols][None, :]
        F[same] = (n_h / (n_h - 1))[unit_h[cols]][np.nonzero(same)[1]]
        F[cols, np.arange(R)] = 0.0
        hh = unit_h[cols]
        scale = 1.0
        rscales = (n_h[hh] - 1) / n_h[hh] * (1 - f_h[hh])
    elif type in ("BRR", "Fay"):
        if not np.all(n_h == 2):
            raise DesignError("BRR/Fay need exactly two PSUs in every stratum",
                              code="design.brr_needs_pairs",
                              hint="collapse strata into pairs of PSUs, or use JKn or bootstrap")
        from scipy.linalg import hadamard

        m = 4
        while m < H + 1:
            m *= 2
        Hm = hadamard(m)[:, 1:H + 1]               # m replicates x H strata
        r_ = 0.0 if type == "BRR" else float(rho)
        first = np.zeros(P, dtype=bool)
        first[st.starts] = True
        sign = Hm.T[unit_h]                        # (P, m)
        hi, lo = 2.0 - r_, r_
        F = np.where(first[:, None] == (sign > 0), hi, lo)
        R = m
        _check_size(design.n, R)
        scale = 1.0 / (R * (1 - r_) ** 2)
        rscales = np.ones(R)
    elif type in ("bootstrap", "subbootstrap"):
        R = int(replicates)
        if R < 2:
            raise DesignError(f"{type} needs at least 2 replicates", code="design.bad_replicates")
        _check_size(design.n, R)
        if np.any(n_h < 2):
            raise DesignError(f"{type} needs at least two PSUs per stratum",
                              code="design.lonely_psu", hint="merge single-PSU strata first")
        rng = np.random.default_rng(seed)
        F = np.empty((P, R))
        if type == "subbootstrap":
            draws_h = (n_h - 1).astype(np.int64)
            mult = (n_h / (n_h - 1))[unit_h]
        else:
            draws_h = n_h.astype(np.int64)
            mult = np.ones(P)
        fpc_h = f_h > 0
        if type == "subbootstrap" or not fpc_h.any():
            hs = np.repeat(np.arange(H), draws_h)
            for r in range(R):  # loop over replicates, vectorised within
                pick = st.starts[hs] + np.floor(rng.random(hs.size) * n_h[hs]).astype(np.int64)
                F[:, r] = np.bincount(pick, minlength=P) * mult
        else:
            # R's bootstratum(popsize=N_h): the stratum's PSUs, shuffled once, repeated to
            # N_h pseudo-units; each replicate draws n_h of them without replacement
            with np.errstate(divide="ignore"):
                Npop = np.where(fpc_h, np.floor(n_h / np.where(fpc_h, f_h, 1.0) + 1e-9), 0).astype(np.int64)
            perms = [rng.permutation(int(n)) for n in n_h.astype(np.int64)]
            wr = np.flatnonzero(~fpc_h)
            hs = np.repeat(wr, draws_h[wr])
            for r in range(R):  # loop over replicates (and strata with an fpc)
                counts = np.zeros(P)
                if hs.size:
                    pick = st.starts[hs] + np.floor(rng.random(hs.size) * n_h[hs]).astype(np.int64)
                    counts += np.bincount(pick, minlength=P)
                for h in np.flatnonzero(fpc_h):
                    k = rng.choice(Npop[h], size=int(n_h[h]), replace=False) % int(n_h[h])
                    counts += np.bincount(st.starts[h] + perms[h][k], minlength=P)
                F[:, r] = counts
        if type == "subbootstrap":
            scale = 1.0 / (R - 1)
        else:
            nbar = 1.0 / np.mean(1.0 / n_h)
            scale = nbar / ((nbar - 1) * (R - 1))
        rscales = np.ones(R)
    else:
        raise DesignError(f"unknown replicate type {type!r}", code="design.invalid_option",
                          hint="one of JK1, JKn, BRR, Fay, bootstrap, subbootstrap")
    repw = design._w[:, None] * F[st.unit]
    return dict(type=type, repw=repw, scale=float(scale), rscales=np.asarray(rscales, float),
                factors=F, rho=rho if type == "Fay" else None)
