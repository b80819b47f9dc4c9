"""Replicate weights from a Taylor design (private helper of ``SurveyDesign.to_replicate``).

Follows R's ``as.svrepdesign`` (survey 4.1; Lumley 2010, §2.3):

* JK1: one replicate per PSU (unstratified); the PSU's weights are 0, all others are
  multiplied by n/(n-1); scale = (n-1)/n * (1 - n/N) with a stage-1 fpc; rscales = 1.
* JKn: one replicate per PSU of every stratum with >= 2 PSUs; in-stratum weights of the
  other PSUs multiplied by n_h/(n_h-1); scale = 1, rscales = (n_h-1)/n_h * (1 - n_h/N_h).
* BRR / Fay: exactly two PSUs per stratum; replicate r gives factor (2-rho) to one PSU
  and rho to the other by R's ``brrweights``: the Hadamard matrix of R's
  ``survey:::hadamard`` (precomputed 4/16/28/36, Paley, doubling; :func:`r_hadamard`),
  strata sorted by their labels as strings (R sorts them as character, by the locale's
  collation: labels that differ only in case may sort differently), the first PSU of a
  stratum the first in the data (rho = 0: BRR); scale = 1/(R (1-rho)^2), rscales = 1.
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


# R survey:::hadamard.list (survey 4.1.1): the precomputed 0/1 Hadamard matrices of sizes
# 4, 16, 28, 36, one string of 0/1 per row
_R_HADAMARD = {
    4: (
        "1111",
        "1010",
        "1100",
        "1001",
    ),
    16: (
        "1111111111111111",
        "1010101010101010",
        "1100110011001100",
        "1001100110011001",
        "1111000011110000",
        "1010010110100101",
        "1100001111000011",
        "1001011010010110",
        "1111111100000000",
        "1010101001010101",
        "1100110000110011",
        "1001100101100110",
        "1111000000001111",
        "1010010101011010",
        "1100001100111100",
        "1001011001101001",
    ),
    28: (
        "1111111111111111111111111111",
        "1001110001110001110001111000",
        "1000001111001101001101111000",
        "1000001110110010111001100110",
        "1001101000001111100011010110",
        "1001010100101100010110101110",
        "1000110011010010001110011110",
        "0101100010101010011111110000",
        "0100010110110101100111010100",
        "0100011011001011110010101100",
        "0101011000010111011101001010",
        "0100101101100100111010011010",
        "0101100101011001101100100110",
        "0010110100011110101011101000",
        "0011011001100110101100110100",
        "0010101100111011010100011100",
        "0011000111010111010010110010",
        "0011001011111000100111001010",
        "0010110011101101011001000110",
        "1110101001010100010111100100",
        "1111000101100011001011001100",
        "1111000010011100111000011100",
        "1110010101001010110101010010",
        "1110011000111001001010110010",
        "1110100010100111100100101010",
        "1101111111111110000000000000",
        "1011111110000001111110000000",
        "0111111110000000000001111110",
    ),
    36: (
        "111111111111111111111111111111111111",
        "010111000111110111001000010101100100",
        "101110001111101110010000101011001000",
        "011100011111011100100001010110010010",
        "111000111110111001000010101100100100",
        "110001111101110010000101011001001010",
        "100011111011100100001010110010010110",
        "000111110111001000010101100100101110",
        "001111101110010000101011001001011100",
        "011111011100100001010110010010111000",
        "111110111001000010101100100101110000",
        "111101110010000101011001001011100010",
        "111011100100001010110010010111000110",
        "110111001000010101100100101110001110",
        "101110010000101011001001011100011110",
        "011100100001010110010010111000111110",
        "111001000010101100100101110001111100",
        "110010000101011001001011100011111010",
        "100100001010110010010111000111110110",
        "001000010101100100101110001111101110",
        "010000101011001001011100011111011100",
        "100001010110010010111000111110111000",
        "000010101100100101110001111101110010",
        "000101011001001011100011111011100100",
        "001010110010010111000111110111001000",
        "010101100100101110001111101110010000",
        "101011001001011100011111011100100000",
        "010110010010111000111110111001000010",
        "101100100101110001111101110010000100",
        "011001001011100011111011100100001010",
        "110010010111000111110111001000010100",
        "100100101110001111101110010000101010",
        "001001011100011111011100100001010110",
        "010010111000111110111001000010101100",
        "100101110001111101110010000101011000",
        "001011100011111011100100001010110010",
    ),
}

_HAD_SIZES = (4, 16, 28, 36)


def _precooked(n: int) -> np.ndarray:
    return np.array([[int(ch) for ch in row] for row in _R_HADAMARD[n]], dtype=np.int8)


def _small_primes() -> list[int]:
    """survey:::paley's small.primes: the primes p = 3 (mod 4) up to 7919."""
    lim = 7920
    sieve = np.ones(lim, dtype=bool)
    sieve[:2] = False
    for i in range(2, int(lim ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = False
    return [int(p) for p in np.flatnonzero(sieve) if p % 4 == 3]


def _doubler(H: np.ndarray) -> np.ndarray:
    return np.block([[H, H], [H, 1 - H]])


def _paley(n: int | None = None, nmax: int | None = None, prime: int | None = None):
    """survey:::paley: a 0/1 Hadamard matrix of size p + 1 from the quadratic residues
    of a prime p = 3 (mod 4) (or a doubled smaller one); None where R returns NULL."""
    primes = _small_primes()
    if prime is None:
        nmax = 2 * n if nmax is None else nmax
        nceil = nn = n + 4 - (n % 4)
        if (n % 4) + 4 == (n % 8):
            while nn % 8 == 0:
                nn //= 2
            if nn - 1 in primes:
                m = _paley(prime=nn - 1)
                while nn < nceil:
                    m = _doubler(m)
                    nn *= 2
                return m
        if n > max(primes):
            return None
        p = min(q for q in primes if q >= n)
        if p + 1 > nceil + 4 and nceil + 4 < nmax:
            return _paley(nceil + 3)
        if p > nmax:
            return None
    else:
        p = prime
    k = (p - 1) // 2
    res = {0, 1} | {(i * i) % p for i in range(2, max(k, 2) + 1)}
    m = np.add.outer(np.arange(p), np.arange(p)) % p
    m = np.where(np.isin(m, list(res)), 0, 1).astype(np.int8)
    out = np.ones((p + 1, p + 1), dtype=np.int8)
    out[1:, 1:] = m
    return out


def r_hadamard(n: int) -> np.ndarray:
    """R's ``survey:::hadamard(n)``: the 0/1 Hadamard matrix brrweights uses for n strata
    (a precomputed one of size 4, 16, 28 or 36, a Paley construction, or a doubled
    precomputed one), so that BRR replicates are R's."""
    m = n - (n % 4)
    pre = [k for k, sz in enumerate(_HAD_SIZES) if m < sz <= m + 4]
    if pre:
        return _precooked(_HAD_SIZES[min(pre)])
    if all(m < sz for sz in _HAD_SIZES):
        return _precooked(4)
    import math

    sizes = [sz * 2 ** max(0, math.ceil(math.log2((n + 1) / sz))) for sz in _HAD_SIZES]
    best = int(np.argmin([sz - n for sz in sizes]))
    H = None
    if sizes[best] - n > 4:
        H = _paley(n, sizes[best])
    if H is None:
        nd = math.ceil(math.log2(sizes[best] / _HAD_SIZES[best]))
        H = _precooked(_HAD_SIZES[best])
        for _ in range(nd):
            H = _doubler(H)
    return H


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
        # R's brrweights: strata in sorted order (as character) get rows 2..H+1 of
        # hadamard(H); in replicate i the stratum's first PSU (first in the data) gets
        # 2 - rho where H[row, i] == 1, rho where it is 0, the other PSU the rest
        Hm = r_hadamard(H).astype(bool)
        labels = design._strata_labels
        names = [str(labels[h]) for h in range(H)] if labels is not None else ["1"] * H
        rank = np.empty(H, dtype=np.int64)
        rank[np.array(sorted(range(H), key=lambda h: names[h]), dtype=np.int64)] = np.arange(H)
        r_ = 0.0 if type == "BRR" else float(rho)
        first = np.zeros(P, dtype=bool)
        first[st.starts] = True
        one = Hm[1 + rank[unit_h]]                 # (P, R): H == 1 for the PSU's stratum
        hi, lo = 2.0 - r_, r_
        F = np.where(first[:, None] == one, hi, lo)
        R = Hm.shape[1]
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
