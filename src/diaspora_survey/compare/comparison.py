"""Sample vs population: differences, ratios, age-standardised comparisons, GOF tests.

``compare(design, reference)`` answers "are the emigrants younger, more educated and more
entrepreneurial than the population they left, and is that real or an artefact of
sampling, weighting or age?" with one tidy DataFrame, one row per indicator × category
× adjustment (× group with ``by=``):

==================  =================================================================
column              meaning
==================  =================================================================
by, group           the ``by=`` variable and its value (``all`` for the whole sample)
indicator           ``mean_age``, ``median_age``, ``age_distribution``,
                    ``share_aged_18_34``, ``education_distribution``,
                    ``higher_education``, ``higher_education_by_age``,
                    ``entrepreneurs_all``, ``entrepreneurs_employed``
unit                ``proportion`` (shares) or ``years`` (ages)
category            distribution category (age band, education group), else ``""``;
                    ``goodness_of_fit`` for the Rao–Scott test of a distribution
adjustment          ``crude``; ``direct (age)`` / ``direct (age x sex)`` (standardised to
                    the population's age (× sex) structure); ``indirect`` (population
                    age-specific rates applied to the sample's age structure);
                    ``rao-scott`` (GOF rows)
estimate, se,       design-based sample estimate (weighted), linearised SE, t interval
ci_low, ci_high     with the design degrees of freedom (``df``)
population,         the population value in the frame (proportions as proportions,
population_se       ages in completed years); its SE when the table gives row SEs (a
                    sample survey; delta method, rows independent), else 0
difference, …       sample - population with CI; its variance is var(sample) +
                    population_se² (independent samples)
ratio, …            sample / population with a CI from the delta method on the log
                    scale: exp(log r ± t sqrt(se²/est² + se_pop²/pop²))
statistic, p_value  two-sided t-test of difference = 0 (GOF rows: Pearson X² on
                    the weighted totals and the Rao–Scott p-value, as R's svygofchisq)
n                   unweighted number of respondents the estimate is based on
reference_table, source, year, confidence, universe   provenance of the population value
note                how the population value was derived, what is missing (gaps)
frame               the age frame both sides are restricted to, e.g. ``ages 18+``
==================  =================================================================

Notes valid for the whole result are in ``result.attrs["notes"]``: the frame, how age
bands were split, the reference population's known gaps (and which project table fills
them), and tables whose universe differs from the frame.

Population restricted to the frame: the age table is cut to the frame's ages (single
years uniform within a published band). Education and employment tables without an age
breakdown cannot be restricted (the row's ``note`` and ``attrs["notes"]`` say so); a
project table with rows by age band (e.g. the census education-by-age table) is used
instead when its bands cover the frame: p_frame = sum_a w_a p_a with w_a the band's
population inside the frame (the table's counts, the part of a band cut by the frame
apportioned with the population age table; for share tables the age table's counts),
and its bands give the age-specific rates for indirect standardisation.

Conventions: proportions exclude respondents with a missing value (as ``na.rm=TRUE``);
domains (frame, groups, the employed) are estimated as subpopulations of the full design
(rows outside get weight 0; they are never dropped before variance estimation).
References: Lumley (2010) *Complex Surveys* §2.4, §3.4, §7.3; Rao & Scott (1981, 1984);
Korn & Graubard (1999) §3.6; R ``survey`` 4.1: ``svyratio``, ``svyquantile``,
``svystandardize``, ``svygofchisq``, ``svycontrast``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..harmonise import schema
from . import standardisation as st
from ..errors import EstimationError, ReferenceDataError
from .indicators import INDICATORS

COLUMNS = ["by", "group", "indicator", "category", "adjustment", "unit", "estimate", "se",
           "ci_low", "ci_high", "population", "population_se", "difference",
           "difference_ci_low", "difference_ci_high", "ratio", "ratio_ci_low",
           "ratio_ci_high", "statistic", "p_value", "df", "n", "reference_table", "source",
           "year", "confidence", "universe", "note", "frame"]

BY_ALLOWED = ("wave", "country", "departure_cohort")
STANDARDISE = ("age_sex", "age", None)


# ----------------------------------------------------------------------------- formulas
def _tcrit(df: float, level: float) -> float:
    from scipy import stats

    a = 1 - (1 - level) / 2
    return float(stats.norm.ppf(a)) if not np.isfinite(df) else float(stats.t.ppf(a, df))


def contrast_with_reference(estimate: float, se: float, population: float,
                            population_se: float = 0.0, df: float = math.inf,
                            level: float = 0.95) -> dict:
    """Difference and ratio of a sample estimate and a population value, with CIs.

    difference d = est - pop, se_d = sqrt(se² + se_pop²) (independent samples; se_pop = 0
    for a census or register figure), CI d ± t_{df} se_d, p = 2 P(T_df > |d/se_d|).
    ratio r = est/pop, CI exp(log r ± t_{df} se_log) with se_log² = se²/est² + se_pop²/pop²
    (delta method on the log scale; NaN when est <= 0 or pop <= 0).
    """
    from scipy import stats

    pse = 0.0 if population_se is None or not np.isfinite(population_se) else float(population_se)
    t = _tcrit(df, level)
    d = estimate - population
    sed = math.sqrt(se ** 2 + pse ** 2) if np.isfinite(se) else np.nan
    if np.isfinite(sed) and sed > 0:
        z = d / sed
        p = float(2 * (stats.norm.sf(abs(z)) if not np.isfinite(df) else stats.t.sf(abs(z), df)))
    else:
        p = np.nan
    out = {"difference": d, "difference_ci_low": d - t * sed, "difference_ci_high": d + t * sed,
           "p_value": p, "statistic": d / sed if np.isfinite(sed) and sed > 0 else np.nan}
    if estimate > 0 and population > 0 and np.isfinite(se):
        r = estimate / population
        sel = math.sqrt((se / estimate) ** 2 + (pse / population) ** 2)
        out.update(ratio=r, ratio_ci_low=r * math.exp(-t * sel), ratio_ci_high=r * math.exp(t * sel))
    else:
        r = estimate / population if population > 0 else np.nan
        out.update(ratio=r, ratio_ci_low=np.nan, ratio_ci_high=np.nan)
    return out


# ----------------------------------------------------------------------------- helpers
def _obj(s: pd.Series) -> np.ndarray:
    """Values as an object array with None for missing (categoricals, strings, bool)."""
    a = s.astype("object").to_numpy()
    return np.where(pd.isna(a), None, a)


def _band_codes(age: np.ndarray, bands) -> np.ndarray:
    """Index of the band (lo, hi|None) of each age; -1 outside all bands or missing."""
    lo = np.array([b[0] for b in bands], float)
    hi = np.array([np.inf if b[1] is None else b[1] for b in bands], float)
    idx = np.searchsorted(lo, age, side="right") - 1
    ok = ~np.isnan(age) & (idx >= 0)
    idx = np.where(ok, idx, 0)
    ok &= age <= hi[idx]
    return np.where(ok, idx, -1)


def _frame_bands(bands, min_age: int, max_age: int | None):
    """Analysis bands clipped to the frame (bands wholly outside dropped)."""
    out = []
    for lo, hi in bands:
        l2 = max(lo, min_age)
        h2 = hi if max_age is None else (max_age if hi is None else min(hi, max_age))
        if h2 is not None and h2 < l2:
            continue
        out.append((l2, h2))
    return out


def _fmt_frame(min_age: int, max_age: int | None) -> str:
    return f"ages {min_age}+" if max_age is None else f"ages {min_age}-{max_age}"


def _ci(est: float, se: float, t: float) -> tuple[float, float]:
    return est - t * se, est + t * se


_YEAR_INDICATORS = frozenset({"mean_age", "median_age"})


def _logit_ci(p: float, se: float, t: float) -> tuple[float, float] | None:
    """Logit interval of a share, expit(logit(p) ± t·se/(p(1−p))) — R's
    ``svyciprop(method = "logit")``; never below 0 or above 1. None (Wald) where p is 0 or 1
    or the se is not positive."""
    import math

    if not (math.isfinite(p) and math.isfinite(se)) or se <= 0 or not 0 < p < 1:
        return None
    mid = math.log(p / (1 - p))
    half = t * se / (p * (1 - p))
    return 1 / (1 + math.exp(-(mid - half))), 1 / (1 + math.exp(-(mid + half)))


class _Ctx:
    """Everything compare() needs once: design, data columns, frame, reference."""

    def __init__(self, design, reference, min_age, max_age, level, standardise, bands):
        self.design = design
        self.ref = reference
        self.min_age = int(min_age)
        self.max_age = None if max_age is None else int(max_age)
        self.level = level
        self.standardise = standardise
        data = design.data
        self.data = data
        self.n = len(data)
        self.degf = float(design.degf)
        self.t = _tcrit(self.degf, level)
        self.frame_txt = _fmt_frame(self.min_age, self.max_age)
        self.notes: list[str] = []
        self.filled: dict[str, str] = {}   # gap indicator -> id of the table that fills it
        if "age" not in data.columns:
            raise EstimationError("the data have no 'age' column", code="compare.no_age",
                                  hint="compare needs the harmonised schema (age, education, "
                                       "employment_status, sex)")
        self.age = pd.to_numeric(data["age"], errors="coerce").astype("float64").to_numpy()
        hi = np.inf if self.max_age is None else self.max_age
        self.frame = (~np.isnan(self.age)) & (self.age >= self.min_age) & (self.age <= hi)
        self.frame &= design.domain_mask
        self.bands = _frame_bands(bands, self.min_age, self.max_age)
        self.band_labels = [schema.age_band_labels([b])[0] for b in self.bands]
        self.band_code = _band_codes(self.age, self.bands)
        self.sex = _obj(data["sex"]) if "sex" in data.columns else np.full(self.n, None)
        self.age_table = reference.first("age_distribution")

    def col(self, name: str) -> np.ndarray | None:
        return _obj(self.data[name]) if name in self.data.columns else None

    # ---- estimation primitives on the design (domain = boolean row mask) ----
    def tv(self, Y: np.ndarray, domain: np.ndarray):
        return self.design.total_vcov(Y, domain=domain)

    def share(self, num: np.ndarray, valid: np.ndarray, domain: np.ndarray):
        """Share of rows with num among valid rows of the domain: (Estimate, n)."""
        dom = domain & valid
        n = int(dom.sum())
        if n == 0:
            return st.Estimate(np.nan, np.nan), 0
        t, V = self.tv(np.c_[num & valid, valid].astype(float), dom)
        return st.ratio(t, V, 0, 1), n

    def cells(self, cell_code: np.ndarray, C: int, y: np.ndarray, valid: np.ndarray,
              domain: np.ndarray):
        """Stacked totals [Y_c..., N_c...] of y and of the cell indicators (valid rows)."""
        dom = domain & valid & (cell_code >= 0)
        I = (cell_code[:, None] == np.arange(C)[None, :]) & dom[:, None]
        Y = np.c_[I & (y & valid)[:, None], I].astype(float)
        t, V = self.tv(Y, dom)
        return t, V, int(dom.sum())


def _provenance(table, universe: str | None = None) -> dict:
    if table is None:
        return {"reference_table": "", "source": "", "year": np.nan, "confidence": "",
                "universe": universe or ""}
    return {"reference_table": table.id, "source": table.source, "year": table.year,
            "confidence": table.confidence, "universe": universe if universe is not None else table.universe}


def _row(ctx: _Ctx, indicator: str, category: str, adjustment: str, est: st.Estimate,
         n: int, population: float, population_se: float, table, note: str = "",
         universe: str | None = None, ci: tuple | None = None) -> dict:
    se = est.se
    if ci is None and indicator not in _YEAR_INDICATORS:
        ci = _logit_ci(est.estimate, se, ctx.t)
    lo, hi = ci if ci is not None else _ci(est.estimate, se, ctx.t)
    r = {"indicator": indicator, "category": category, "adjustment": adjustment,
         "estimate": est.estimate, "se": se, "ci_low": lo, "ci_high": hi,
         "population": population, "population_se": population_se, "df": ctx.degf, "n": n,
         "note": note, "frame": ctx.frame_txt}
    if np.isfinite(population) and np.isfinite(est.estimate):
        r.update(contrast_with_reference(est.estimate, se, population, population_se,
                                         ctx.degf, ctx.level))
    r.update(_provenance(table, universe))
    return r


def _gap_row(ctx: _Ctx, indicator: str, category: str, adjustment: str, note: str,
             est: st.Estimate | None = None, n: int = 0, table=None) -> dict:
    """A row saying that the population figure is not available (no number invented)."""
    e = est or st.Estimate(np.nan, np.nan)
    r = _row(ctx, indicator, category, adjustment, e, n, np.nan, np.nan, table, note=note)
    return r


def _table_universe_note(ctx: _Ctx, table) -> str:
    if table.min_age is None and table.max_age is None:
        return ""
    lo = table.min_age if table.min_age is not None else 0
    if lo == ctx.min_age and table.max_age == ctx.max_age:
        return ""
    msg = (f"population universe is {_fmt_frame(lo, table.max_age)}, not the frame "
           f"({ctx.frame_txt}): the table has no age breakdown to restrict it")
    summary = f"Universe: {table.id} ({table.year}) — {msg}."
    if summary not in ctx.notes:
        ctx.notes.append(summary)
    return msg


# ----------------------------------------------------------------------------- indicators
def _age_rows(ctx: _Ctx, dom: np.ndarray, wanted) -> list[dict]:
    from .reference import ages as _age

    rows = []
    table = ctx.age_table
    if table is None:
        for ind in ("mean_age", "median_age", "age_distribution", "share_aged_18_34"):
            if ind in wanted:
                rows.append(_gap_row(ctx, ind, "", "crude", "no age_distribution table in the "
                                     "reference population"))
        return rows
    universe = f"{table.universe}; restricted to {ctx.frame_txt}"
    age_ok = ~np.isnan(ctx.age)
    split_note = ""
    _, _, split_notes = _age.frame_shares(table, ctx.bands, ctx.min_age, ctx.max_age)
    if split_notes:
        split_note = "; ".join(split_notes) + " (single years uniform within 5-year bands)"
    if "mean_age" in wanted:
        d = dom & age_ok
        t, V = ctx.tv(np.c_[np.where(d, ctx.age, 0.0), d.astype(float)], d)
        est = st.ratio(t, V, 0, 1)
        pop = _age.mean_age(table, ctx.min_age, ctx.max_age)
        rows.append(_row(ctx, "mean_age", "", "crude", est, int(d.sum()), pop, 0.0, table,
                         note="population mean in completed years derived from the 5-year bands "
                              "(band a-b at (a+b)/2, 85+ as 85-94; = exact-age mean - 0.5)"
                              + (f"; {split_note}" if split_note else ""), universe=universe))
    if "median_age" in wanted:
        d = dom & age_ok
        pop, exact = _age.median_age(table, ctx.min_age, ctx.max_age)
        note = (f"population median in completed years = floor of the interpolated exact-age "
                f"median {exact:.2f}; sample: svyquantile(qrule='math') with Woodruff CI")
        try:
            q = ctx.design.subset(d).quantile("age", 0.5, level=ctx.level)
            qe = float(q["estimate"].iloc[0])
            qlo, qhi = float(q["ci_low"].iloc[0]), float(q["ci_high"].iloc[0])
            qse = float(q["se"].iloc[0]) if "se" in q else (qhi - qlo) / (2 * ctx.t)
            r = _row(ctx, "median_age", "", "crude", st.Estimate(qe, qse ** 2), int(d.sum()),
                     pop, 0.0, table, note=note, universe=universe, ci=(qlo, qhi))
            # the difference/ratio CIs follow the (asymmetric) Woodruff interval
            r.update(difference_ci_low=qlo - pop, difference_ci_high=qhi - pop,
                     ratio_ci_low=qlo / pop, ratio_ci_high=qhi / pop)
            rows.append(r)
        except (ImportError, AttributeError, NotImplementedError) as e:  # estimator missing
            rows.append(_gap_row(ctx, "median_age", "", "crude",
                                 f"sample median not available ({e})", table=table))
    if "age_distribution" in wanted and ctx.bands:
        shares, _, _ = _age.frame_shares(table, ctx.bands, ctx.min_age, ctx.max_age)
        d = dom & (ctx.band_code >= 0)
        C = len(ctx.bands)
        I = (ctx.band_code[:, None] == np.arange(C)[None, :]).astype(float)
        t, V = ctx.tv(I, d)
        p, Vp = st.shares(t, V)
        n = int(d.sum())
        for k, lab in enumerate(ctx.band_labels):
            rows.append(_row(ctx, "age_distribution", lab, "crude",
                             st.Estimate(p[k], Vp[k, k]), n, shares[k], 0.0, table,
                             note=split_note if lab in split_note else "", universe=universe))
        rows.append(_gof_row(ctx, "age_distribution", t, V, np.array(shares), n, table, universe,
                             ctx.band_labels))
    if "share_aged_18_34" in wanted:
        lo, hi = max(18, ctx.min_age), 34 if ctx.max_age is None else min(34, ctx.max_age)
        d = dom & age_ok
        est, n = ctx.share((ctx.age >= lo) & (ctx.age <= hi), age_ok, d)
        m, sp = _age.band_mass(table, lo, hi)
        tot, _ = _age.band_mass(table, ctx.min_age, ctx.max_age)
        note = (f"{lo}-{hi} includes " + ", ".join(sp)
                + " (single years uniform within 5-year bands)") if sp else ""
        rows.append(_row(ctx, "share_aged_18_34", f"{lo}-{hi}", "crude", est, n, m / tot, 0.0,
                         table, note=note, universe=universe))
    return rows


def _gof_row(ctx, indicator, t, V, p, n, table, universe, labels) -> dict:
    keep = p > 0
    note = "Rao-Scott (svygofchisq) test of the whole distribution; Satterthwaite p-value"
    if not keep.all():
        note += "; categories with population share 0 left out: " + ", ".join(
            lab for lab, k in zip(labels, keep) if not k)
    r = {"indicator": indicator, "category": "goodness_of_fit", "adjustment": "rao-scott",
         "n": n, "df": ctx.degf, "note": note, "frame": ctx.frame_txt}
    if t[keep].sum() > 0 and keep.sum() > 1:
        g = st.gof_chisq(t[keep], V[np.ix_(keep, keep)], p[keep])
        r.update(statistic=g.statistic, p_value=g.p_value,
                 note=note + f" (scale {g.scale:.4g}, df {g.df:.4g})")
    r.update(_provenance(table, universe))
    return r


def _education_groups(rows):
    """Merge reference categories that map to overlapping schema codes into comparison
    groups: [(label, codes frozenset, population mass, [rows])] (mass = sum of the rows'
    values); rows mapped to nothing are returned separately. Rows of several age bands
    with the same categories fall into the same groups."""
    groups: list[list] = []
    unmapped = []
    for r in rows:
        codes = set(r.maps_to or ())
        if not codes:
            unmapped.append(r)
            continue
        hit = [g for g in groups if g[1] & codes]
        if hit:
            g0 = hit[0]
            for g in hit[1:]:
                g0[1] |= g[1]
                g0[2] += g[2]
                g0[3] += g[3]
                groups.remove(g)
            g0[1] |= codes
            g0[2] += r.value
            g0[3].append(r)
        else:
            groups.append([None, codes, r.value, [r]])
    order = {c: i for i, c in enumerate(schema.SCHEMA["education"].categories)}
    out = []
    for g in groups:
        codes = frozenset(g[1])
        if codes >= schema.HIGHER_EDUCATION:
            label = "higher" if codes == schema.HIGHER_EDUCATION else "+".join(sorted(codes, key=order.get))
        elif len(codes) == 1:
            label = next(iter(codes))
        else:
            label = "+".join(sorted(codes, key=order.get))
        out.append((label, codes, g[2], g[3]))
    out.sort(key=lambda g: min(order[c] for c in g[1]))
    return out, unmapped


def _std_setup(ctx: _Ctx, mode):
    """Standard cells for direct standardisation: (cell_code (n,), weights (C,), label,
    note) — age bands of the frame (× sex) with the population's shares."""
    from .reference import ages as _age

    table = ctx.age_table
    if table is None or mode is None:
        return None
    shares, _, _ = _age.frame_shares(table, ctx.bands, ctx.min_age, ctx.max_age)
    C = len(ctx.bands)
    if mode == "age_sex" and {"male", "female"} <= set(table.sexes):
        w = []
        for s in ("male", "female"):
            _, masses, _ = _age.frame_shares(table, ctx.bands, ctx.min_age, ctx.max_age, sex=s)
            w.extend(masses)
        w = np.array(w) / np.sum(w)
        sx = np.where(ctx.sex == "male", 0, np.where(ctx.sex == "female", 1, -1))
        code = np.where((ctx.band_code >= 0) & (sx >= 0), sx * C + ctx.band_code, -1)
        return code, w, "direct (age x sex)", table
    return ctx.band_code.copy(), np.array(shares), "direct (age)", table


def _direct_row(ctx, indicator, y, valid, dom, pop, pop_se, ptable, universe, std) -> dict | None:
    """Directly standardised sample rate vs the population (crude) value; falls back from
    age × sex to age cells when a cell of the domain has no respondents."""
    code, w, label, atable = std
    C = w.size
    t, V, n = ctx.cells(code, C, y, valid, dom)
    N = t[C:]
    empty = (N <= 0) & (w > 0)
    note = (f"sample rates by {'age band x sex' if 'sex' in label else 'age band'} reweighted "
            f"to the population's {ctx.frame_txt} structure ({atable.id}, {atable.year}), as R "
            f"svystandardize; compared with the population's crude value")
    if empty.any() and "sex" in label:
        fallback = _std_setup(ctx, "age")
        excl = ", ".join(_cell_labels(ctx, True)[i] for i in np.flatnonzero(empty))
        r = _direct_row(ctx, indicator, y, valid, dom, pop, pop_se, ptable, universe, fallback)
        r["note"] = f"age x sex cells without respondents ({excl}): standardised by age only; " + r["note"]
        return r
    if empty.any():
        excl = ", ".join(_cell_labels(ctx, False)[i] for i in np.flatnonzero(empty))
        return _gap_row(ctx, indicator, "", label, f"cannot standardise: no respondents in {excl}; "
                        "use broader age bands (age_bands=...)", n=n, table=ptable)
    if "sex" in label:
        n_other = int((dom & valid & (ctx.band_code >= 0) & ~np.isin(ctx.sex, ["male", "female"])).sum())
        if n_other:
            note += f"; {n_other} respondents with sex other/missing left out of the age x sex cells"
    est = st.direct(t, V, w)
    return _row(ctx, indicator, "", label, est, n, pop, pop_se, ptable, note=note, universe=universe)


def _cell_labels(ctx, with_sex: bool):
    if not with_sex:
        return ctx.band_labels
    return [f"{s} {b}" for s in ("male", "female") for b in ctx.band_labels]


# ----------------------------------------------------------------------------- population rates
def _ratio_se(values, ses, num, den) -> tuple[float, float]:
    """Population share p = sum(num*v) / sum(den*v) of table rows v (num, den: 0/1 masks)
    and its SE by the delta method for independent row SEs se_k (0 for census figures):
    var(p) = sum_k ((num_k - p den_k) / D)^2 se_k^2 with D = sum(den*v)."""
    v = np.asarray(values, float)
    s = np.nan_to_num(np.asarray(ses, float))
    num = np.asarray(num, float)
    den = np.asarray(den, float)
    D = float((den * v).sum())
    if D <= 0:
        return np.nan, np.nan
    p = float((num * v).sum()) / D
    return p, float(math.sqrt((((num - p * den) / D) ** 2 * s ** 2).sum()))


def _se_of(rows) -> np.ndarray:
    return np.array([r.se if r.se is not None else 0.0 for r in rows], float)


class _AgeRates:
    """Population rates by age band from one reference table (sex ``total``).

    table; bands [(lo, hi|None)] sorted; labels; rates and ses (proportions); sizes: the
    population of each band inside the frame (any unit common to the bands: the table's own
    counts, or the age table's) or None when unknown; size_note says which; covers: the
    bands are contiguous and cover the frame.
    """

    def __init__(self, ctx, table, bands, rates, ses, sizes, size_note):
        self.table, self.bands = table, bands
        self.labels = [format_band(b) for b in bands]
        self.rates, self.ses = np.asarray(rates, float), np.asarray(ses, float)
        self.sizes, self.size_note = sizes, size_note
        his = [b[1] for b in bands]
        contiguous = all(his[i] is not None and bands[i + 1][0] == his[i] + 1
                         for i in range(len(bands) - 1))
        self.covers = bool(bands) and contiguous and bands[0][0] <= ctx.min_age and (
            his[-1] is None or (ctx.max_age is not None and his[-1] >= ctx.max_age))

    @property
    def restricts(self) -> bool:
        """True when the population rate can be restricted to the frame."""
        return self.covers and self.sizes is not None and float(np.sum(self.sizes)) > 0

    def frame_rate(self) -> tuple[float, float]:
        """Population rate in the frame, sum_a w_a rho_a with w_a = size_a / sum(size)
        (band populations inside the frame; single years uniform within a band), and its
        SE sqrt(sum_a w_a^2 se_a^2) (bands independent)."""
        w = np.asarray(self.sizes, float) / float(np.sum(self.sizes))
        return float((w * self.rates).sum()), float(math.sqrt((w ** 2 * self.ses ** 2).sum()))

    def frame_note(self, ctx) -> str:
        return (f"population restricted to the frame ({ctx.frame_txt}) with the age groups of "
                f"{self.table.id} ({', '.join(self.labels)}; {self.size_note})")


def format_band(b) -> str:
    from .reference import format_age_band

    return format_age_band(b[0], b[1])


def _by_band(rows):
    """[((lo, hi), [rows])] of the rows that have an age band, sorted by age."""
    from .reference import parse_age_band

    out: dict = {}
    for r in rows:
        if r.age:
            out.setdefault(parse_age_band(r.age), []).append(r)
    return sorted(out.items(), key=lambda kv: (kv[0][0], math.inf if kv[0][1] is None else kv[0][1]))


def _clip(ctx, lo, hi):
    """The band lo..hi clipped to the frame, or None when it lies outside."""
    l2 = max(lo, ctx.min_age)
    h2 = hi if ctx.max_age is None else (ctx.max_age if hi is None else min(hi, ctx.max_age))
    return None if h2 is not None and h2 < l2 else (l2, h2)


def _band_sizes(ctx, table, bands, masses, base: str):
    """Band populations inside the frame, and a note saying how they were obtained.

    * unit ``count``: the table's own counts times the part of the band inside the frame;
      that part is apportioned with the population age table (band_mass(band ∩ frame) /
      band_mass(band)) when there is one, else with single years uniform within the band;
    * share units, tables of the whole population (``base="population"``): the population
      age table's count of the band's ages inside the frame;
    * otherwise None (e.g. shares of the employed without the employed's age structure).
    """
    from .reference import ages as _age

    at = ctx.age_table
    clipped = [_clip(ctx, lo, hi) for lo, hi in bands]

    def at_mass(lo, hi):
        return _age.band_mass(at, lo, hi)[0]

    if table.unit == "count" and masses is not None:
        frac = []
        how = "uniform"
        for (lo, hi), c in zip(bands, clipped):
            if c is None:
                frac.append(0.0)
                continue
            f = None
            if at is not None and c != (lo, hi):
                try:
                    whole = at_mass(lo, hi)
                    f = at_mass(*c) / whole if whole > 0 else None
                    how = "age table"
                except ReferenceDataError:
                    f = None
            frac.append(_age.overlap_fraction(lo, hi, ctx.min_age, ctx.max_age) if f is None else f)
        note = "weighted by the table's own counts" + (
            f"; groups cut by the frame apportioned with the population age structure ({at.id})"
            if how == "age table" else "; single years uniform within a group cut by the frame")
        return np.asarray(masses, float) * np.array(frac), note
    if base == "population" and at is not None:
        try:
            sizes = np.array([0.0 if c is None else at_mass(*c) for c in clipped])
        except ReferenceDataError:
            return None, ""
        return sizes, f"weighted by the population age structure ({at.id}, {at.year})"
    return None, ""


def _rates_from_distribution(ctx, table, num_codes, den_codes, base: str):
    """Age-specific rates from an education_distribution / employment_status table with
    rows by age band: rho_a = sum(rows mapped into num_codes) / sum(rows mapped into
    den_codes) within band a. None without age rows or when a row mixes the two."""
    out_b, rates, ses, masses = [], [], [], []
    for band, rows in _by_band(table.select("total", None)):
        mapped = [r for r in rows if r.maps_to and set(r.maps_to) <= den_codes]
        if any(r.maps_to and (set(r.maps_to) & num_codes) and not set(r.maps_to) <= num_codes
               for r in rows):
            return None
        v = np.array([r.value for r in mapped], float)
        num = np.array([set(r.maps_to) <= num_codes for r in mapped], float)
        p, se = _ratio_se(v, _se_of(mapped), num, np.ones(v.size))
        if not np.isfinite(p):
            return None
        out_b.append(band)
        rates.append(p)
        ses.append(se)
        masses.append(v.sum())
    if not out_b:
        return None
    sizes, snote = _band_sizes(ctx, table, out_b, masses, base)
    return _AgeRates(ctx, table, out_b, rates, ses, sizes, snote)


def _rates_from_shares(ctx, table, base: str):
    """Age-specific rates from a higher_education_share / entrepreneur_share table."""
    pairs = [(band, rows[0]) for band, rows in _by_band(table.select("total", None))]
    if not pairs:
        return None
    sc = table.scale() or 1.0
    bands = [b for b, _ in pairs]
    sizes, snote = _band_sizes(ctx, table, bands, None, base)
    return _AgeRates(ctx, table, bands, [r.value / sc for _, r in pairs],
                     [(r.se or 0.0) / sc for _, r in pairs], sizes, snote)


def _first_covering(specs):
    for s in specs:
        if s is not None and s.covers:
            return s
    return None


def _indirect_row(ctx, indicator, y, valid, dom, spec, gap_text) -> dict:
    """Indirect standardisation: observed O = sample total of y, expected E = sum over the
    spec's age bands of the sample's (weighted) count times the population rate; ratio O/E
    with CI on the log scale (see :func:`diaspora_survey.compare.standardisation.indirect`)."""
    if spec is None:
        return _gap_row(ctx, indicator, "", "indirect",
                        "indirect standardisation not possible: population rates by age are not "
                        "available" + (f" (GAP: {gap_text})" if gap_text else "")
                        + "; add an age-specific table to the project ([reference] tables)")
    table, bands, rates, ses = spec.table, spec.bands, spec.rates, spec.ses
    fb = _frame_bands(bands, ctx.min_age, ctx.max_age)
    code = _band_codes(ctx.age, fb)
    # rates of the bands that survive clipping (keep order)
    keep = [i for i, b in enumerate(bands) if _frame_bands([b], ctx.min_age, ctx.max_age)]
    rates, ses = rates[keep], ses[keep]
    t, V, n = ctx.cells(code, len(fb), y, valid, dom)
    out = st.indirect(t, V, rates, ses)
    r = _row(ctx, indicator, "", "indirect", out["observed"], n, out["expected"].estimate,
             out["expected"].se, table,
             note="population = expected share: population age-specific rates "
                  f"({table.id}: {', '.join(spec.labels)}) applied to the sample's age "
                  "structure; ratio = observed/expected (SMR-type)")
    t_ = ctx.t
    rat, dif = out["ratio"], out["difference"]
    r.update(difference=dif.estimate, difference_ci_low=dif.estimate - t_ * dif.se,
             difference_ci_high=dif.estimate + t_ * dif.se, ratio=rat.estimate)
    if rat.estimate > 0 and np.isfinite(rat.se):
        sl = rat.se / rat.estimate
        r.update(ratio_ci_low=rat.estimate * math.exp(-t_ * sl), ratio_ci_high=rat.estimate * math.exp(t_ * sl))
    from scipy import stats
    if dif.se > 0:
        z = dif.estimate / dif.se
        r.update(statistic=z, p_value=float(2 * (stats.norm.sf(abs(z)) if not np.isfinite(ctx.degf)
                                                  else stats.t.sf(abs(z), ctx.degf))))
    return r


def _education_rows(ctx: _Ctx, dom: np.ndarray, wanted, std) -> list[dict]:
    rows = []
    edu = ctx.col("education")
    tables = ctx.ref.of_kind("education_distribution")
    if edu is None:
        raise EstimationError("the data have no 'education' column", code="compare.no_column",
                              hint="drop the education indicators or harmonise education")
    ind_dist = [i for i in ("education_distribution", "higher_education") if i in wanted]
    if not tables:
        for ind in ind_dist:
            rows.append(_gap_row(ctx, ind, "", "crude", "no education_distribution table"))
        return rows
    gap_age = ctx.ref.gap("education_by_age")
    skipped = []      # tables that cannot be used, with the reason
    for table in tables:     # project tables first; the first usable one is used
        total_rows = table.select("total", "")
        age_rows = [r for r in table.select("total", None) if r.age]
        groups, unmapped = _education_groups(total_rows or age_rows)
        if not groups:
            skipped.append(f"table {table.id} has no rows for sex 'total' mapped to harmonised "
                           "education levels")
            continue
        covered = frozenset().union(*[g[1] for g in groups])

        def spec_for(codes, table=table, covered=covered, age_rows=age_rows):
            return _rates_from_distribution(ctx, table, frozenset(codes), covered, "population") \
                if age_rows else None

        probe = spec_for(groups[0][1])
        by_age = probe is not None and probe.restricts
        if by_age or total_rows:
            break
        why = ("do not cover the frame " + ctx.frame_txt) if probe is None or not probe.covers \
            else "come without the population sizes needed to combine them"
        skipped.append(f"the age groups of table {table.id} {why}, and it has no all-ages rows")
    else:
        msg = "; ".join(skipped)
        y = np.isin(edu, list(schema.HIGHER_EDUCATION))
        for ind in ind_dist:
            est, n = ctx.share(y, edu != None, dom) if ind == "higher_education" else (None, 0)  # noqa: E711
            rows.append(_gap_row(ctx, ind, "", "crude", msg, est=est, n=n))
        return rows
    for m in skipped:
        if f"Not used: {m}." not in ctx.notes:
            ctx.notes.append(f"Not used: {m}.")
    valid = np.isin(edu, list(covered))
    n_unc = int((dom & ~valid & (edu != None)).sum())  # noqa: E711
    if by_age:
        ctx.filled["education_by_age"] = table.id
        unote = probe.frame_note(ctx)
        universe = f"{table.universe}; restricted to {ctx.frame_txt}".lstrip("; ")
    else:
        unote = _table_universe_note(ctx, table)
        universe = table.universe
    tv = np.array([r.value for r in total_rows], float)
    tse = _se_of(total_rows)
    tmapped = np.array([bool(r.maps_to) and set(r.maps_to) <= covered for r in total_rows], float)

    def pop_share(codes):
        """Population share (and SE) of the education levels ``codes`` in the frame."""
        if by_age:
            return spec_for(codes).frame_rate()
        num = np.array([bool(r.maps_to) and set(r.maps_to) <= codes for r in total_rows], float)
        return _ratio_se(tv, tse, num, tmapped)

    derived = "; ".join(f"{r.category}: {r.derived}" for g in groups for r in g[3]
                        if r.derived and not r.age)
    base_note = "; ".join(x for x in (unote, derived) + tuple(f"not used: {m}" for m in skipped) if x)
    if unmapped:
        base_note += ("; " if base_note else "") + "left out (no schema counterpart): " + \
            ", ".join(dict.fromkeys(r.category for r in unmapped))
    if n_unc:
        base_note += f"; {n_unc} respondents with an education level the table does not cover left out"
    pop = [pop_share(g[1]) for g in groups]
    pshare = np.array([p for p, _ in pop])
    pse = np.array([s for _, s in pop])
    if "education_distribution" in wanted:
        d = dom & valid
        G = np.column_stack([np.isin(edu, list(g[1])) for g in groups]).astype(float)
        t, V = ctx.tv(G, d)
        p, Vp = st.shares(t, V)
        n = int(d.sum())
        for k, g in enumerate(groups):
            note = base_note
            merged = list(dict.fromkeys(r.category for r in g[3]))
            if len(merged) > 1:
                note = f"population: {' + '.join(merged)}" + (f"; {note}" if note else "")
            rows.append(_row(ctx, "education_distribution", g[0], "crude",
                             st.Estimate(p[k], Vp[k, k]), n, pshare[k], pse[k], table, note=note,
                             universe=universe))
        gof = _gof_row(ctx, "education_distribution", t, V, pshare, n, table,
                       universe, [g[0] for g in groups])
        unote = _table_universe_note(ctx, table)       # the test row says it too
        if unote:
            gof["note"] = f"{gof['note']}; {unote}"
        rows.append(gof)
    y = np.isin(edu, list(schema.HIGHER_EDUCATION))
    hi_codes = frozenset().union(*[g[1] for g in groups if g[1] <= schema.HIGHER_EDUCATION])
    if "higher_education" in wanted:
        mixed = [g[0] for g in groups if (g[1] & schema.HIGHER_EDUCATION) and not g[1] <= schema.HIGHER_EDUCATION]
        if mixed or not hi_codes:
            rows.append(_gap_row(ctx, "higher_education", "", "crude",
                                 f"table {table.id} does not separate higher education", table=table))
        else:
            pop, pop_se = pop_share(hi_codes)
            est, n = ctx.share(y, valid, dom)
            rows.append(_row(ctx, "higher_education", "", "crude", est, n, pop, pop_se, table,
                             note=base_note, universe=universe))
            if std is not None:
                note_extra = "" if by_age else (
                    "; population education is not age-specific: "
                    + (f"GAP: {gap_age}" if gap_age else "no education-by-age table"))
                r = _direct_row(ctx, "higher_education", y, valid, dom, pop, pop_se, table,
                                universe, std)
                r["note"] = (r["note"] + note_extra + (f"; {unote}" if unote else "")).strip("; ")
                rows.append(r)
            specs = [_rates_from_distribution(ctx, t, frozenset(schema.HIGHER_EDUCATION),
                                              frozenset().union(*[set(x.maps_to or ()) for x in t.rows]),
                                              "population") for t in tables]
            specs += [_rates_from_shares(ctx, t, "population")
                      for t in ctx.ref.of_kind("higher_education_share")]
            spec = _first_covering(specs)
            if spec is not None:
                ctx.filled.setdefault("education_by_age", spec.table.id)
            rows.append(_indirect_row(ctx, "higher_education", y, valid, dom, spec, gap_age))
    if "higher_education_by_age" in wanted:
        from .reference import parse_age_band
        bands = []   # (band label, lo, hi, rate, se, table, note)
        spec = spec_for(hi_codes) if hi_codes and age_rows else None
        if spec is not None:
            for b, lab, rate, se in zip(spec.bands, spec.labels, spec.rates, spec.ses):
                bands.append((lab, b[0], b[1], rate, se, table, table.title))
        for t in ctx.ref.of_kind("higher_education_share"):
            sc = t.scale() or 1.0
            for r in t.select("total", None):
                if r.age:
                    lo, hi = parse_age_band(r.age)
                    bands.append((r.age, lo, hi, r.value / sc, (r.se or 0.0) / sc, t, t.title))
        for lab, lo, hi, rate, se, t, title in bands:
            if hi is not None and hi < ctx.min_age or (ctx.max_age is not None and lo > ctx.max_age):
                continue
            inframe = lo >= ctx.min_age and (ctx.max_age is None or (hi is not None and hi <= ctx.max_age))
            dd = dom & (ctx.age >= lo) & (ctx.age <= (np.inf if hi is None else hi))
            est, n = ctx.share(y, valid, dd)
            note = "; ".join(x for x in (title, "" if inframe else f"band {lab} extends outside "
                                         "the frame (the sample part is inside it)") if x)
            rows.append(_row(ctx, "higher_education_by_age", lab, "crude", est, n, rate, se, t,
                             note=note))
    return rows


def _entrepreneur_rows(ctx: _Ctx, dom: np.ndarray, wanted, std) -> list[dict]:
    rows = []
    es = ctx.col("employment_status")
    if es is None:
        raise EstimationError("the data have no 'employment_status' column", code="compare.no_column",
                              hint="drop the entrepreneurship indicators or harmonise employment_status")
    known = es != None  # noqa: E711
    y = np.isin(es, list(schema.ENTREPRENEUR))
    employed = np.isin(es, list(schema.EMPLOYED))
    gap = ctx.ref.gap("employment_by_age")
    share_tabs = ctx.ref.of_kind("entrepreneur_share")
    status_tabs = ctx.ref.of_kind("employment_status")
    ent, emp = frozenset(schema.ENTREPRENEUR), frozenset(schema.EMPLOYED)
    specs = {
        "entrepreneurs_all": (known, [t for t in share_tabs if t.base == "population"], [], "population"),
        "entrepreneurs_employed": (employed, [t for t in share_tabs if t.base == "employed"],
                                   status_tabs, "employed"),
    }
    for ind, (valid, stabs, sttabs, base) in specs.items():
        if ind not in wanted:
            continue
        est, n = ctx.share(y, valid, dom)
        age_specs = [_rates_from_distribution(ctx, t, ent, emp, base) for t in sttabs] + \
                    [_rates_from_shares(ctx, t, base) for t in stabs]
        pop = pse = np.nan
        table = None
        note = unote = ""
        frame_spec = next((s for s in age_specs if s is not None and s.restricts), None)
        total_rows = [(t, r) for t in stabs for r in t.select("total", "")]
        if frame_spec is not None:
            table = frame_spec.table
            pop, pse = frame_spec.frame_rate()
            unote = frame_spec.frame_note(ctx)
        elif total_rows:
            table, r = total_rows[0]
            sc = table.scale() or 1.0
            pop, pse = r.value / sc, (r.se or 0.0) / sc
            note = r.derived
        else:
            for st_t in sttabs:
                rws = st_t.select("total", "")
                v = np.array([r.value for r in rws], float)
                den = np.array([bool(r.maps_to) and set(r.maps_to) <= emp for r in rws], float)
                num = np.array([bool(r.maps_to) and set(r.maps_to) <= ent for r in rws], float)
                p, s = _ratio_se(v, _se_of(rws), num, den) if rws else (np.nan, np.nan)
                if np.isfinite(p):
                    left = [r.category for r in rws if not r.maps_to]
                    table, pop, pse = st_t, p, s
                    note = ("population: (employer + own_account) / (employee + employer + own_account)"
                            + (f"; left out: {', '.join(left)}" if left else ""))
                    break
        if table is None:
            rows.append(_gap_row(ctx, ind, "", "crude", "no population figure for this indicator",
                                 est=est, n=n))
            continue
        if not unote:
            unote = _table_universe_note(ctx, table)
        note = "; ".join(x for x in (note, unote) if x)
        universe = (f"{table.universe}; restricted to {ctx.frame_txt}".lstrip("; ")
                    if frame_spec is not None else table.universe)
        rows.append(_row(ctx, ind, "", "crude", est, n, pop, pse, table, note=note, universe=universe))
        if std is not None:
            r = _direct_row(ctx, ind, y, valid, dom, pop, pse, table, universe, std)
            extra = ("; the standard is the age structure of the whole population (that of the "
                     "employed is not available)") if ind == "entrepreneurs_employed" else ""
            r["note"] = (r["note"] + extra + (f"; {unote}" if unote else "")).strip("; ")
            rows.append(r)
        spec = _first_covering(age_specs)
        if spec is not None:
            ctx.filled.setdefault("employment_by_age", spec.table.id)
        rows.append(_indirect_row(ctx, ind, y, valid, dom, spec, gap))
    return rows


def compare(design, reference="russia", *, by: str | None = None,
            indicators: Sequence[str] | None = None, min_age: int | None = None,
            max_age: int | None = None, standardise: str | None = "age_sex",
            age_bands=None, level: float = 0.95, tables=None,
            overall: bool = True) -> pd.DataFrame:
    """Compare a weighted sample with a general population.

    Parameters
    ----------
    design : :class:`~diaspora_survey.survey.design.SurveyDesign` over harmonised data (``age``,
        ``sex``, ``education``, ``employment_status``; ``by`` column if given).
    reference : name of a packaged population (``"russia"``), a population YAML path or a
        :class:`~diaspora_survey.compare.reference.ReferencePopulation`.
    by : ``"wave"``, ``"country"``, ``"departure_cohort"`` (or another column): one block
        of rows per group (domains of the same design), after the ``all`` block when
        ``overall``.
    indicators : subset of :data:`INDICATORS` (default all).
    min_age, max_age : the survey frame (default 18 and no upper limit); the population is
        restricted to the same ages where its tables allow (and the output says where they
        do not). Respondents outside the frame are left out (as a domain).
    standardise : ``"age_sex"`` (default; falls back to age where an age × sex cell is
        empty), ``"age"`` or None (no direct standardisation rows).
    age_bands : analysis age bands [(lo, hi|None)], default 18-24, 25-29, … 65+.
    level : confidence level. tables : extra reference table files (CSV/YAML).

    Returns a DataFrame with the columns :data:`COLUMNS` (see the module docstring) and
    ``attrs["notes"]``, ``attrs["frame"]``, ``attrs["reference"]``.
    """
    from . import reference as refmod

    if not isinstance(reference, refmod.ReferencePopulation) or tables:
        reference = refmod.load(reference, tables=tables)
    if standardise not in STANDARDISE:
        raise EstimationError(f"standardise={standardise!r} is not one of {STANDARDISE}",
                              code="compare.bad_option", hint="use 'age_sex', 'age' or None")
    if not (0 < level < 1):
        raise EstimationError(f"level={level!r} must be between 0 and 1", code="compare.bad_option")
    wanted = list(INDICATORS) if indicators is None else list(indicators)
    bad = [i for i in wanted if i not in INDICATORS]
    if bad:
        raise EstimationError(f"unknown indicator(s) {bad}", code="compare.bad_indicator",
                              hint="choose from: " + ", ".join(INDICATORS))
    min_age = 18 if min_age is None else int(min_age)
    if max_age is not None and int(max_age) < min_age:
        raise EstimationError(f"max_age {max_age} < min_age {min_age}", code="compare.bad_frame")
    bands = schema.DEFAULT_AGE_BANDS if age_bands is None else tuple(
        (int(lo), None if hi is None else int(hi)) for lo, hi in age_bands)
    ctx = _Ctx(design, reference, min_age, max_age, level, standardise, bands)
    if not ctx.frame.any():
        raise EstimationError(f"no respondent in the frame {ctx.frame_txt}", code="compare.empty_frame",
                              hint="check the age column and min_age/max_age")
    n_out = int((design.domain_mask & ~ctx.frame).sum())
    ctx.notes.append(f"Frame: {ctx.frame_txt}; the population is restricted to the same ages where "
                     "its tables have an age breakdown." + (
                         f" {n_out} respondents outside the frame or without age are left out." if n_out else ""))
    if ctx.age_table is not None:
        from .reference import ages as _age
        _, _, sp = _age.frame_shares(ctx.age_table, ctx.bands, ctx.min_age, ctx.max_age)
        if sp:
            ctx.notes.append("Age split: " + "; ".join(sp) + " — single years taken as uniform "
                             "within the published 5-year bands (the reference notes' own 18+ "
                             "figures take 18-19 as 2/5 of 15-19).")
    gap_at = len(ctx.notes)
    std = _std_setup(ctx, standardise)

    groups = []
    if overall or by is None:
        groups.append(("", "all", ctx.frame))
    if by is not None:
        if by not in ctx.data.columns:
            raise EstimationError(f"no column {by!r} to compare by", code="compare.bad_by",
                                  hint="by= one of " + ", ".join(BY_ALLOWED) + " (or another column)")
        g = ctx.data[by]
        levels = list(g.cat.categories) if isinstance(g.dtype, pd.CategoricalDtype) else sorted(g.dropna().unique(), key=str)
        vals = _obj(g)
        for lev in levels:
            m = ctx.frame & (vals == lev)
            if m.any():
                groups.append((by, str(lev), m))
    out = []
    for gby, gval, dom in groups:
        rows = []
        rows += _age_rows(ctx, dom, wanted)
        if {"education_distribution", "higher_education", "higher_education_by_age"} & set(wanted):
            rows += _education_rows(ctx, dom, wanted, std)
        if {"entrepreneurs_all", "entrepreneurs_employed"} & set(wanted):
            rows += _entrepreneur_rows(ctx, dom, wanted, std)
        for r in rows:
            r["by"], r["group"] = gby, gval
            r["unit"] = "years" if r["indicator"] in ("mean_age", "median_age") else "proportion"
        out += rows
    gap_notes = []
    for g in reference.gaps:
        ind = g.get("indicator")
        text = " ".join(str(g.get("text", "")).split())
        if ind in ctx.filled:
            gap_notes.append(f"GAP ({ind}) filled by table {ctx.filled[ind]}: {text}")
        else:
            gap_notes.append(f"GAP ({ind}): {text}")
    ctx.notes[gap_at:gap_at] = gap_notes
    res = pd.DataFrame(out).reindex(columns=COLUMNS)
    order = {k: i for i, k in enumerate(INDICATORS)}
    res["_o"] = res["indicator"].map(order)
    res["_g"] = res.index  # stable within indicator
    gorder = {g[1] if g[0] else "all": i for i, g in enumerate(groups)}
    res["_gg"] = [gorder.get(v, 0) if b else 0 for b, v in zip(res["by"], res["group"])]
    res = res.sort_values(["_gg", "_o", "_g"], kind="stable").drop(columns=["_o", "_g", "_gg"])
    res = res.reset_index(drop=True)
    for c in ("by", "group", "unit", "indicator", "category", "adjustment", "reference_table",
              "source", "confidence", "universe", "note", "frame"):
        res[c] = res[c].fillna("").astype(str)
    res["n"] = res["n"].fillna(0).astype("int64")
    res.attrs["notes"] = ctx.notes
    res.attrs["frame"] = {"min_age": ctx.min_age, "max_age": ctx.max_age, "text": ctx.frame_txt}
    res.attrs["reference"] = reference.name
    return res


# ----------------------------------------------------------------------------- project level
def project_designs(data: pd.DataFrame):
    """(pooled design, within-wave design) for a project's weighted data.

    Pooled analyses use ``weight_pooled``, per-wave analyses the within-wave ``weight``
    (both fall back to the other when one is absent). The waves are independent samples:
    strata are the waves, crossed with the codebooks' ``strata`` column where a wave has
    one; PSUs are the codebooks' ``psu`` column (nested in those strata), each respondent
    its own PSU where a wave has none; ``fpc`` is used when every respondent has one.
    """
    from ..survey.design import SurveyDesign

    if "weight" not in data.columns and "weight_pooled" not in data.columns:
        if "weight_base" not in data.columns:
            raise EstimationError("the data have no weights (columns 'weight', 'weight_pooled' "
                                  "or the codebook's design weight 'weight_base')",
                                  code="compare.no_weights",
                                  hint="run `diaspora-survey weight` first (it writes "
                                       "build/weighted.parquet), or name the file's weight in "
                                       "the codebook (design: weight: COLUMN)")
        # weights from the file (the codebook's design weight), used as they are
        data = data.assign(weight=data["weight_base"])
    frame, design = _design_columns(data)
    pooled_w = "weight_pooled" if "weight_pooled" in data.columns else "weight"
    within_w = "weight" if "weight" in data.columns else "weight_pooled"
    pooled = SurveyDesign(frame, weights=pooled_w, **design)
    within = pooled if within_w == pooled_w else SurveyDesign(frame, weights=within_w, **design)
    return pooled, within


def _design_columns(data: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The frame (with helper columns ``_stratum``/``_psu`` where needed) and the
    SurveyDesign arguments for :func:`project_designs`."""
    import numpy as np

    wave = data["wave"].astype(str) if "wave" in data.columns else pd.Series("", index=data.index)
    strata = wave
    if "strata" in data.columns and data["strata"].notna().any():
        strata = wave + "\x1f" + data["strata"].astype("string").fillna("")
    design: dict = {}
    extra: dict = {}
    if strata.nunique() > 1:
        extra["_stratum"] = strata.to_numpy()
        design["strata"] = "_stratum"
    if "psu" in data.columns and data["psu"].notna().any():
        own = pd.Series(np.arange(len(data)).astype(str), index=data.index)
        extra["_psu"] = (strata + "\x1f" + data["psu"].astype("string").fillna("\x1e" + own)).to_numpy()
        design["psu"] = "_psu"
    if "fpc" in data.columns and data["fpc"].notna().all():
        design["fpc"] = "fpc"
    return (data.assign(**extra) if extra else data), design


def compare_with_groups(data: pd.DataFrame, reference="russia", *, by=(), tables=None,
                        **options) -> pd.DataFrame:
    """The whole sample (pooled weights) plus one block per ``by`` variable (``wave``: with
    the within-wave weights; others: pooled weights), concatenated."""
    pooled, within = project_designs(data)
    from . import reference as refmod

    ref = refmod.load(reference, tables=tables)
    parts = [compare(pooled, ref, **options)]
    notes = list(parts[0].attrs.get("notes", []))
    for b in [b for b in (by or ()) if b]:
        d = within if b == "wave" else pooled
        part = compare(d, ref, by=b, overall=False, **options)
        parts.append(part)
    res = pd.concat(parts, ignore_index=True)
    if any(b == "wave" for b in (by or ())):
        notes.append("Pooled rows use the pooled weights (weight_pooled, waves as strata); "
                     "rows by wave use the within-wave weights.")
    if "_psu" in pooled.data.columns:
        notes.append("Standard errors use the waves' PSUs and strata from the codebooks' design columns.")
    res.attrs.update(parts[0].attrs)
    res.attrs["notes"] = notes
    return res


def compare_project(project, data: pd.DataFrame | None = None) -> dict:
    """Run the comparison step of a project (``[reference]`` and ``[compare]`` of
    diaspora-survey.toml) on its weighted data; returns ``{"comparisons": crude rows,
    "standardised": direct/indirect rows, "gof": goodness-of-fit rows, "claims": verdicts,
    "all": every row}`` (DataFrames; ``claims`` None when the project has no claims file)."""
    from .claims import evaluate_claims, load_claims

    if data is None:
        p = project.path("build/weighted.parquet")
        if not p.exists():
            raise EstimationError("no weighted data", code="compare.no_data", where=str(p),
                                  hint="run `diaspora-survey weight` first")
        data = pd.read_parquet(p)
    rc = project.reference
    tables = [str(project.path(t)) for t in rc.tables] or None
    res = compare_with_groups(data, rc.population, by=list(project.compare.by or []), tables=tables,
                              min_age=rc.min_age, max_age=rc.max_age or None)
    claims = None
    cpath = project.path(project.compare.claims) if project.compare.claims else None
    if cpath is not None and cpath.exists():
        claims = evaluate_claims(res, load_claims(cpath))
    gof = res[res["adjustment"] == "rao-scott"].reset_index(drop=True)
    stdz = res[res["adjustment"].str.startswith(("direct", "indirect"))].reset_index(drop=True)
    crude = res[res["adjustment"] == "crude"].reset_index(drop=True)
    for f in (gof, stdz, crude):
        f.attrs.update(res.attrs)
    return {"comparisons": crude, "standardised": stdz, "gof": gof, "claims": claims, "all": res}

