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
fieldwork_year,     the group's fieldwork year (:func:`fieldwork_year`) and what it rests
fieldwork_basis     on (``interview dates``, ``wave ids``, ``[reference] year``, ``unknown``)
year_gap            |table year - fieldwork year|
standard            the standard of a standardised row (direct: the population's, or the
                    subpopulation's, age (× sex) structure; indirect: the sample's)
caveat              every warning that belongs beside the number: the table more than
                    ``max_year_gap`` years from fieldwork, a universe that could not be
                    restricted to the frame, an unknown fieldwork year, the table's own
                    ``caveat`` (e.g. the 2024 LFS)
validity            "" when the comparison is valid; else why a claim resting on it is
                    inconclusive (the blocking part of ``caveat``)
==================  =================================================================

Vintages: every group (the whole sample, each ``by`` group) uses, per table kind, the
vintage nearest its fieldwork year (:meth:`~diaspora_survey.compare.reference.ReferencePopulation.vintages`).
The right standard: a rate within a subpopulation (the employed) is standardised to that
subpopulation's age structure (from a table of its counts by age), never to the whole
population's; without it there is no standardised figure (a row with the reason). The
population side of a direct row is standardised to the same standard when the population's
age-specific rates are known (else its crude value, said in the note).

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
from .indicators import INDICATORS, REGISTRY

COLUMNS = ["by", "group", "indicator", "category", "adjustment", "unit", "estimate", "se",
           "ci_low", "ci_high", "population", "population_se", "difference",
           "difference_ci_low", "difference_ci_high", "ratio", "ratio_ci_low",
           "ratio_ci_high", "statistic", "p_value", "df", "n", "reference_table", "source",
           "year", "confidence", "universe", "note", "frame", "fieldwork_year",
           "fieldwork_basis", "year_gap", "standard", "caveat", "validity"]

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
class _Coded:
    """A column as integer codes (-1 = missing) into its distinct values ``cats``: the
    membership tests of the comparison (``isin``, ``eq``, ``notna``) by a lookup over the
    few categories instead of comparisons of n Python objects. ``str_values`` labels
    the values as strings (and booleans as ``yes``/``no``), as :func:`_values`."""

    __slots__ = ("codes", "cats", "is_bool")

    def __init__(self, codes: np.ndarray, cats: list, is_bool: bool = False):
        self.codes, self.cats, self.is_bool = codes, cats, is_bool

    @classmethod
    def of(cls, s: pd.Series, str_values: bool = False) -> "_Coded":
        if str_values and (pd.api.types.is_bool_dtype(s.dtype) or str(s.dtype) == "boolean"):
            b = s.astype("boolean")
            codes = np.where(b.isna().to_numpy(), -1, b.fillna(False).to_numpy().astype(np.int64))
            return cls(codes.astype(np.int64), ["no", "yes"], True)
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes, cats = s.cat.codes.to_numpy().astype(np.int64), list(s.cat.categories)
        else:
            codes, cats = pd.factorize(s, use_na_sentinel=True)
            codes, cats = np.asarray(codes, np.int64), list(cats)
        if str_values:
            cats = [str(c) for c in pd.Series(cats, dtype=object).astype("string")]
        return cls(codes, cats)

    @property
    def shape(self):
        return self.codes.shape

    def __getitem__(self, rows) -> "_Coded":
        return _Coded(self.codes[rows], self.cats, self.is_bool)

    def isin(self, values) -> np.ndarray:
        vs = set(values)
        lut = np.array([c in vs for c in self.cats] + [False], dtype=bool)
        return lut[self.codes]          # code -1 picks the trailing False

    def eq(self, value) -> np.ndarray:
        return self.isin([value])

    def notna(self) -> np.ndarray:
        return self.codes >= 0


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
        self.view_columns: list[str] | None = None   # None = all (set by compare())
        self.memo: dict = {}   # reference-only results (no respondent data), shared by domains
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
        self.sex = _Coded.of(data["sex"]) if "sex" in data.columns else \
            _Coded(np.full(self.n, -1, dtype=np.int64), [])
        self.max_gap = 3
        self.accept: frozenset = frozenset()
        self.use_reference(reference, None, "unknown")

    def use_reference(self, reference, fw_year, basis) -> None:
        """The reference with its vintages ordered for this fieldwork year (per group)."""
        self.fw_year, self.fw_basis = fw_year, basis
        self.ref = reference.for_fieldwork(fw_year, self.max_gap)
        self.age_table = self.ref.first("age_distribution")
        self.unrestricted: dict[str, tuple[str, str]] = {}   # table id -> (text, short)

    def col(self, name: str) -> np.ndarray | None:
        # [scale] converted once per compare() and cut to a domain's rows (for_domain)
        cache = self.__dict__.setdefault("_cols", {})
        if name not in cache:
            cache[name] = _Coded.of(self.data[name]) if name in self.data.columns else None
        return cache[name]

    def values(self, name: str) -> "_Coded":
        """A project indicator's column with its values as strings (booleans yes/no), as
        :func:`_values`, converted once per compare() and cut to a domain's rows."""
        cache = self.__dict__.setdefault("_cols", {})
        key = ("str", name)
        if key not in cache:
            cache[key] = _Coded.of(self.data[name], str_values=True)
        return cache[key]

    # ---- [scale, issue 17] one domain at a time, on the domain's own rows ----
    def for_domain(self, dom: np.ndarray, std=None):
        """This context seen from the rows of ``dom`` only: the design's domain view
        (the estimates, variances and df of ``design.subset(dom)``, see
        SurveyDesign.domain_view) and every row-level array (and the standard cells
        ``std``) cut to those rows, so that a comparison by 20 countries costs one pass
        over the rows, not 20. Returns ``(ctx, dom, std)`` in the domain's rows."""
        if dom.all():
            return self, dom, std
        import copy

        rows = np.flatnonzero(dom)
        # [scale] the view's data: only the columns read from a domain's frame (age for the
        # median, the project indicators' variables); the rest are arrays cut below
        view = self.design.domain_view(dom, columns=self.view_columns)
        if view.n != rows.size:        # replicate/calibrated designs: every row (as before)
            return self, dom, std
        sub = copy.copy(self)          # notes and filled stay shared with this context
        sub.design = view
        sub.data = view._data
        sub.n = int(rows.size)
        sub.degf = float(view.degf)     # the domain's own df (R's degf() of the subset)
        sub.t = _tcrit(sub.degf, self.level)
        for k, v in vars(self).items():
            if isinstance(v, (np.ndarray, _Coded)) and v.shape[:1] == (self.n,):
                setattr(sub, k, v[rows])
        sub._cols = {k: (None if v is None else v[rows])
                     for k, v in self.__dict__.get("_cols", {}).items()}
        if std is not None:        # a _Std: its cell codes cut to the domain's rows
            import copy as _copy

            std = _copy.copy(std)
            std.code = std.code[rows]
        return sub, np.ones(rows.size, dtype=bool), std

    # ---- estimation primitives on the design (domain = boolean row mask) ----
    def tv(self, Y: np.ndarray, domain: np.ndarray):
        return self.design.total_vcov(Y, domain=domain)

    def tv_groups(self, members: list[np.ndarray], domain: np.ndarray):
        """Totals of the group indicators ``members`` (boolean (n,) each) over the domain and
        their covariance: as ``tv(column_stack(members), domain)``; when the groups are
        disjoint, by codes in one pass (no dense n x G matrix)."""
        G = len(members)
        M = np.column_stack(members) if G else np.zeros((self.n, 0), bool)
        k = M.sum(axis=1)
        if G and k.max(initial=0) <= 1:
            key = np.where(domain & (k == 1), M.argmax(axis=1), -1)
            return self.design.coded_totals([(np.ones(self.n), key)], G)
        return self.tv(M.astype(float), domain)

    def share(self, num: np.ndarray, valid: np.ndarray, domain: np.ndarray):
        """Share of rows with num among valid rows of the domain: (Estimate, n)."""
        dom = domain & valid
        n = int(dom.sum())
        if n == 0:
            return st.Estimate(np.nan, np.nan), 0
        # [scale] totals [sum w num, sum w] by codes in one pass (no dense matrix)
        t, V = self.design.coded_totals([(num & valid, np.where(dom, 0, -1)),
                                         (np.ones(self.n), np.where(dom, 1, -1))], 2)
        return st.ratio(t, V, 0, 1), n

    def cells(self, cell_code: np.ndarray, C: int, y: np.ndarray, valid: np.ndarray,
              domain: np.ndarray):
        """Stacked totals [Y_c..., N_c...] of y and of the cell indicators (valid rows)."""
        dom = domain & valid & (cell_code >= 0)
        # [scale] the 2C totals by codes in one pass (no dense n x 2C indicator matrix)
        t, V = self.design.coded_totals([(y & valid, np.where(dom, cell_code, -1)),
                                         (np.ones(self.n), np.where(dom, C + cell_code, -1))], 2 * C)
        return t, V, int(dom.sum())


def _provenance(table, universe: str | None = None) -> dict:
    if table is None:
        return {"reference_table": "", "source": "", "year": np.nan, "confidence": "",
                "universe": universe or ""}
    return {"reference_table": table.id, "source": table.source, "year": table.year,
            "confidence": table.confidence, "universe": universe if universe is not None else table.universe}


def _quality(ctx: _Ctx, table) -> dict:
    """Fieldwork matching and caveats of a row from ``table``: fieldwork year and basis,
    the year gap, ``caveat`` (every warning, shown beside the number) and ``validity``
    ("" when the comparison is valid; else why a claim resting on it is inconclusive)."""
    out = {"fieldwork_year": np.nan if ctx.fw_year is None else float(ctx.fw_year),
           "fieldwork_basis": ctx.fw_basis, "year_gap": np.nan, "caveat": "", "validity": ""}
    if table is None:
        return out
    cav, bad = [], []
    if ctx.fw_year is None:
        cav.append(f"fieldwork year unknown, {table.year} table unchecked (set [reference] year)")
        bad.append("fieldwork year unknown")
    else:
        gap = abs(int(table.year) - int(ctx.fw_year))
        out["year_gap"] = float(gap)
        if gap > ctx.max_gap:
            txt = f"reference {gap} years from fieldwork ({table.year} vs {ctx.fw_year})"
            if "year_gap" in ctx.accept:
                cav.append(txt + ", accepted by the project")
            else:
                cav.append(txt + f", more than max_year_gap {ctx.max_gap}")
                bad.append(f"reference {gap} years from fieldwork")
    um = ctx.unrestricted.get(table.id)
    if um:
        if "universe" in ctx.accept:
            cav.append(um[1] + ", accepted by the project")
        else:
            cav.append(um[1])
            bad.append(um[1])
    if table.caveat:
        cav.append(table.caveat)
    out["caveat"], out["validity"] = "; ".join(cav), "; ".join(bad)
    return out


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
    r.update(_quality(ctx, table))
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
    ctx.unrestricted[table.id] = (msg, f"population {_fmt_frame(lo, table.max_age)}, "
                                       f"sample {ctx.frame_txt} (table not restrictable)")
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
        # [scale] the C band totals by codes in one pass (no dense n x C matrix)
        t, V = ctx.design.coded_totals([(np.ones(ctx.n), np.where(d, ctx.band_code, -1))], C)
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
    r.update(_quality(ctx, table))
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


class _Std:
    """A standard population for direct standardisation: sample cell codes (n,), the
    standard's cell shares w (C,), the adjustment label, the table, the cell labels, the
    age bands of the cells (for standardising the population rate alike), whether the
    cells are age x sex, and a text naming the standard."""

    def __init__(self, code, w, label, table, labels, bands, with_sex, text, kind):
        self.code, self.w, self.label, self.table = code, np.asarray(w, float), label, table
        self.labels, self.bands, self.with_sex, self.text, self.kind = labels, bands, with_sex, text, kind

    def age_shares(self) -> np.ndarray:
        """The standard's shares by age band (sexes summed)."""
        C = len(self.bands)
        return self.w.reshape(-1, C).sum(axis=0) if self.with_sex else self.w


def _std_setup(ctx: _Ctx, mode):
    """The population standard: age bands of the frame (x sex) with the shares of the
    population in the frame (the age table matched to the fieldwork year)."""
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
        sx = np.where(ctx.sex.eq("male"), 0, np.where(ctx.sex.eq("female"), 1, -1))
        code = np.where((ctx.band_code >= 0) & (sx >= 0), sx * C + ctx.band_code, -1)
        return _Std(code, w, "direct (age x sex)", table, _cell_labels(ctx, True), ctx.bands, True,
                    f"population {ctx.frame_txt} by age x sex ({table.id}, {table.year})", "population")
    return _Std(ctx.band_code.copy(), np.array(shares), "direct (age)", table, ctx.band_labels,
                ctx.bands, False, f"population {ctx.frame_txt} by age ({table.id}, {table.year})",
                "population")


def _spec_std(ctx: _Ctx, spec, who: str):
    """A subpopulation's own standard: the age structure of the subpopulation (e.g. the
    employed) in the frame, from a reference table with its counts by age band (the bands
    of ``spec``). None when the table has no such counts."""
    if spec is None or not spec.restricts or spec.table.unit != "count":
        return None
    fb = _frame_bands(spec.bands, ctx.min_age, ctx.max_age)
    keep = [i for i, b in enumerate(spec.bands) if _frame_bands([b], ctx.min_age, ctx.max_age)]
    w = np.asarray(spec.sizes, float)[keep]
    return _Std(_band_codes(ctx.age, fb), w / w.sum(), "direct (age)", spec.table,
                [format_band(b) for b in fb], fb, False,
                f"{who} {ctx.frame_txt} by age ({spec.table.id}, {spec.table.year})", who)


def _standardised_population_rate(ctx, spec, std) -> tuple[float, float]:
    """The population's rate standardised to the same standard as the sample:
    sum_b s_b rho_b over the standard's age bands b, with rho_b the population rate of band
    b from the age-specific rates rho_a of ``spec`` (bands a cut to b, each weighted by its
    population in the band, single years uniform within a), and its SE from the rates'
    SEs (independent): var = sum_a (sum_b s_b c_ab)^2 se_a^2, c_ab = m_ab / sum_a' m_a'b."""
    from .reference import ages as _age

    s = std.age_shares()
    A = len(spec.bands)
    sizes = np.asarray(spec.sizes, float)
    M = np.zeros((A, len(std.bands)))
    for ai, (lo, hi) in enumerate(spec.bands):
        c = _clip(ctx, lo, hi)
        if c is None:
            continue
        for bi, (blo, bhi) in enumerate(std.bands):
            M[ai, bi] = sizes[ai] * _age.overlap_fraction(c[0], c[1], blo, bhi)
    col = M.sum(axis=0)
    if np.any((col <= 0) & (s > 0)):
        return np.nan, np.nan
    C = np.divide(M, col, out=np.zeros_like(M), where=col > 0)
    g = C @ s
    return float(g @ spec.rates), float(math.sqrt(((g * spec.ses) ** 2).sum()))


def _direct_row(ctx, indicator, y, valid, dom, pop, pop_se, ptable, universe, std,
                rates=None) -> dict | None:
    """Directly standardised sample rate vs the population standardised to the same
    standard (when ``rates``, the population's age-specific rates, are given) or the
    population's crude value; falls back from age x sex to age cells when a cell of the
    domain has no respondents."""
    C = std.w.size
    t, V, n = ctx.cells(std.code, C, y, valid, dom)
    N = t[C:]
    empty = (N <= 0) & (std.w > 0)
    note = (f"sample rates by {'age band x sex' if std.with_sex else 'age band'} reweighted "
            f"to the standard ({std.text}), as R svystandardize")
    if empty.any() and std.with_sex:
        fallback = _std_setup(ctx, "age")
        excl = ", ".join(std.labels[i] for i in np.flatnonzero(empty))
        r = _direct_row(ctx, indicator, y, valid, dom, pop, pop_se, ptable, universe, fallback, rates)
        r["note"] = f"age x sex cells without respondents ({excl}): standardised by age only; " + r["note"]
        return r
    if empty.any():
        excl = ", ".join(std.labels[i] for i in np.flatnonzero(empty))
        r = _gap_row(ctx, indicator, "", std.label, f"cannot standardise: no respondents in {excl}; "
                     "use broader age bands (age_bands=...)", n=n, table=ptable)
        r["standard"] = std.text
        return r
    if std.with_sex:
        n_other = int((dom & valid & (ctx.band_code >= 0) & ~ctx.sex.isin(["male", "female"])).sum())
        if n_other:
            note += f"; {n_other} respondents with sex other/missing left out of the age x sex cells"
    if rates is not None and rates.restricts:
        p2, s2 = _standardised_population_rate(ctx, rates, std)
        if np.isfinite(p2):
            pop, pop_se = p2, s2
            note += (f"; population rate standardised to the same standard with the age-specific "
                     f"rates of {rates.table.id} ({', '.join(rates.labels)})")
    else:
        note += "; compared with the population's crude value (no age-specific population rates)"
    est = st.direct(t, V, std.w)
    r = _row(ctx, indicator, "", std.label, est, n, pop, pop_se, ptable, note=note, universe=universe)
    r["standard"] = std.text
    return r


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
    # [scale] depends on the tables and the frame only: computed once per compare()
    key = ("dist", id(table), frozenset(num_codes), frozenset(den_codes), base,
           id(ctx.age_table), ctx.min_age, ctx.max_age)
    hit = ctx.memo.get(key)
    if hit is None:   # the tables are kept with the result, so their ids stay theirs
        hit = ctx.memo[key] = (table, ctx.age_table,
                               _rates_from_distribution_(ctx, table, num_codes, den_codes, base))
    return hit[2]


def _rates_from_distribution_(ctx, table, num_codes, den_codes, base: str):
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
             universe=f"{table.universe}; restricted to {ctx.frame_txt}".lstrip("; "),
             note="population = expected share: population age-specific rates "
                  f"({table.id}: {', '.join(spec.labels)}) applied to the sample's age "
                  "structure; ratio = observed/expected (SMR-type)")
    r["standard"] = f"sample's age structure (population rates by age: {table.id}, {table.year})"
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
        y = edu.isin(schema.HIGHER_EDUCATION)
        for ind in ind_dist:
            est, n = ctx.share(y, edu.notna(), dom) if ind == "higher_education" else (None, 0)
            rows.append(_gap_row(ctx, ind, "", "crude", msg, est=est, n=n))
        return rows
    for m in skipped:
        if f"Not used: {m}." not in ctx.notes:
            ctx.notes.append(f"Not used: {m}.")
    valid = edu.isin(covered)
    n_unc = int((dom & ~valid & edu.notna()).sum())
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
        t, V = ctx.tv_groups([edu.isin(g[1]) for g in groups], d)
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
        if unote:                                      # the test row says it too
            gof["note"] = f"{gof['note']}; {unote}"
        rows.append(gof)
    y = edu.isin(schema.HIGHER_EDUCATION)
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
                                universe, std, rates=spec_for(hi_codes) if by_age else None)
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
        for t in ([] if bands else ctx.ref.of_kind("higher_education_share")):
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
    known = es.notna()
    y = es.isin(schema.ENTREPRENEUR)
    employed = es.isin(schema.EMPLOYED)
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
        spec = _first_covering(age_specs)
        if spec is not None:
            ctx.filled.setdefault("employment_by_age", spec.table.id)
        if std is not None:
            entry = REGISTRY[ind]
            if entry.standard == "population":
                r = _direct_row(ctx, ind, y, valid, dom, pop, pse, table, universe, std, rates=spec)
            else:       # the subpopulation's own age structure, never the whole population's
                sstd = _spec_std(ctx, frame_spec, "employed")
                if sstd is not None:
                    r = _direct_row(ctx, ind, y, valid, dom, pop, pse, table, universe, sstd, rates=frame_spec)
                else:
                    r = _gap_row(ctx, ind, "", std.label,
                                 "no standardised row: the standard for a rate among the employed is "
                                 "the age structure of the employed, which the reference does not have"
                                 + (f" (GAP: {gap})" if gap else "")
                                 + "; the whole population's age structure would weight employed "
                                   "respondents of pension age as if they were a fifth of the employed",
                                 table=table)
                    r["standard"] = "employed by age: not available"
            r["note"] = (r["note"] + (f"; {unote}" if unote else "")).strip("; ")
            rows.append(r)
        rows.append(_indirect_row(ctx, ind, y, valid, dom, spec, gap))
    return rows


def _project_rows(ctx: _Ctx, dom: np.ndarray, ind, std) -> list[dict]:
    """Rows of a project indicator (:func:`diaspora_survey.compare.indicators.from_config`):
    the share of ``ind.categories`` of ``ind.variable`` (booleans: of ``yes``) among the
    respondents of its universe, or, without categories on a categorical variable, the
    distribution of the table's categories (+ Rao-Scott test), against the nearest vintage of
    a ``category_distribution`` / ``category_share`` table of the same variable: crude (the
    population restricted to the frame with the table's age bands where it has them), direct
    (the population standard, or the subpopulation's own structure from the table's counts
    by age) and indirect (the table's age-specific rates)."""
    if ind.variable not in ctx.data.columns:
        raise EstimationError(f"the data have no column {ind.variable!r} for indicator {ind.name!r}",
                              code="compare.no_column", where="[[compare.indicators]]",
                              hint="harmonise the variable in the codebooks or fix 'variable'")
    vals = ctx.values(ind.variable)
    is_bool = vals.is_bool
    valid = vals.notna()
    for col, allowed in ind.universe_values:
        if col not in ctx.data.columns:
            raise EstimationError(f"the data have no column {col!r} (universe of {ind.name!r})",
                                  code="compare.no_column", where="[[compare.indicators]]",
                                  hint="fix the indicator's universe")
        valid &= ctx.values(col).isin(allowed)
    if ind.table:
        tables = [ctx.ref.get(ind.table)]
    else:
        tables = (ctx.ref.vintages("category_distribution", variable=ind.variable)
                  + ctx.ref.vintages("category_share", variable=ind.variable))
    base = "population" if not ind.universe_values else "subpopulation"
    cats = tuple(ind.categories) or (("yes",) if is_bool else ())
    name = ind.name
    if not tables:
        return [_gap_row(ctx, name, "", "crude", f"no reference table of kind category_distribution "
                         f"or category_share with variable {ind.variable!r}; add one to "
                         "[reference] tables")]
    table = tables[0]
    if not cats:                       # the whole distribution
        if table.kind != "category_distribution":
            return [_gap_row(ctx, name, "", "crude", f"table {table.id} is a share; give the "
                             "indicator's categories", table=table)]
        codes = [frozenset(r.maps_to or ()) for r in table.select("total", None)]
        groups = list(dict.fromkeys(c for c in codes if c))
        covered = frozenset().union(*groups) if groups else frozenset()
        v2 = valid & vals.isin(covered)
        rows = []
        pops = []
        for g in groups:
            p, se, note, universe = _project_pop(ctx, table, g, covered, base)
            pops.append((p, se, note, universe))
        d = dom & v2
        t, V = ctx.tv_groups([vals.isin(g) for g in groups], d)
        pr, Vp = st.shares(t, V)
        for k, g in enumerate(groups):
            p, se, note, universe = pops[k]
            rows.append(_row(ctx, name, "+".join(sorted(g)), "crude", st.Estimate(pr[k], Vp[k, k]),
                             int(d.sum()), p, se, table, note=note, universe=universe))
        ps = np.array([x[0] for x in pops], float)
        if np.all(np.isfinite(ps)):
            rows.append(_gof_row(ctx, name, t, V, ps / ps.sum(), int(d.sum()), table,
                                 pops[0][3], ["+".join(sorted(g)) for g in groups]))
        return rows
    y = vals.isin(cats)
    est, n = ctx.share(y, valid, dom)
    if table.kind == "category_distribution":
        covered = frozenset().union(*[set(r.maps_to or ()) for r in table.rows])
        spec = _rates_from_distribution(ctx, table, frozenset(cats), covered, base) \
            if any(r.age for r in table.rows) else None
    else:
        spec = _rates_from_shares(ctx, table, base)
    pop, pse, note, universe = _project_pop(ctx, table, frozenset(cats), None, base)
    rows = [_row(ctx, name, "", "crude", est, n, pop, pse, table, note=note, universe=universe)]
    if std is not None and np.isfinite(pop):
        if base == "population":
            rows.append(_direct_row(ctx, name, y, valid, dom, pop, pse, table, universe, std, rates=spec))
        else:
            sstd = _spec_std(ctx, spec, "subpopulation")
            if sstd is not None:
                rows.append(_direct_row(ctx, name, y, valid, dom, pop, pse, table, universe, sstd,
                                        rates=spec))
            else:
                r = _gap_row(ctx, name, "", std.label, "no standardised row: the age structure of "
                             f"the indicator's universe ({ind.universe}) is not in table {table.id} "
                             "(counts by age band needed)", table=table)
                r["standard"] = "subpopulation by age: not available"
                rows.append(r)
    rows.append(_indirect_row(ctx, name, y, valid, dom, spec if spec is not None and spec.covers else None, ""))
    return rows


def _project_pop(ctx, table, codes, covered, base):
    """Population share of ``codes`` in a project table: (value, se, note, universe)."""
    if table.kind == "category_distribution":
        cov = covered or frozenset().union(*[set(r.maps_to or ()) for r in table.rows])
        if any(r.age for r in table.rows):
            spec = _rates_from_distribution(ctx, table, frozenset(codes), cov, base)
            if spec is not None and spec.restricts:
                p, se = spec.frame_rate()
                return p, se, spec.frame_note(ctx), f"{table.universe}; restricted to {ctx.frame_txt}".lstrip("; ")
        rws = table.select("total", "")
        if not rws:
            return np.nan, np.nan, f"table {table.id}: its age groups do not cover the frame", table.universe
        v = np.array([r.value for r in rws], float)
        den = np.array([bool(r.maps_to) and set(r.maps_to) <= cov for r in rws], float)
        num = np.array([bool(r.maps_to) and set(r.maps_to) <= set(codes) for r in rws], float)
        p, se = _ratio_se(v, _se_of(rws), num, den)
        return p, se, _table_universe_note(ctx, table), table.universe
    spec = _rates_from_shares(ctx, table, base)
    if spec is not None and spec.restricts:
        p, se = spec.frame_rate()
        return p, se, spec.frame_note(ctx), f"{table.universe}; restricted to {ctx.frame_txt}".lstrip("; ")
    rws = table.select("total", "")
    if not rws:
        return np.nan, np.nan, f"table {table.id}: its age groups do not cover the frame", table.universe
    sc = table.scale() or 1.0
    return rws[0].value / sc, (rws[0].se or 0.0) / sc, _table_universe_note(ctx, table), table.universe


def fieldwork_year(data: pd.DataFrame, mask=None, default: int | None = None) -> tuple[int | None, str]:
    """The fieldwork year of the rows ``mask`` of ``data`` and what it rests on.

    The year of the midpoint of the fieldwork period — from the earliest to the latest
    interview date (column ``interview_date``) when the data have one; else from the
    earliest to the latest wave date when every wave id starts with a date (``2022``,
    ``2022-03``, ``2022-03-15``; a month is taken at its 15th, a year at 1 July) — else
    ``default`` (``[reference] year``); else ``(None, "unknown")``. (Waves 2022-03,
    2022-11 and 2024-05 pooled: midpoint April 2023, so 2023.)
    Returns (year, basis) with basis ``interview dates``, ``wave ids``, ``[reference] year``
    or ``unknown``.
    """
    return _Fieldwork(data).year(mask, default)


_WAVE_DATE = None


def _wave_day(wid: str):
    """Nanoseconds of the date a wave id starts with (see :func:`fieldwork_year`), or None."""
    import re

    global _WAVE_DATE
    if _WAVE_DATE is None:
        _WAVE_DATE = re.compile(r"^((?:19|20)\d\d)(?:[-_./](\d{1,2})(?:[-_./](\d{1,2}))?)?(?!\d)")
    mt = _WAVE_DATE.match(wid)
    if not mt or (mt.group(2) and not 1 <= int(mt.group(2)) <= 12):
        return None
    y, mo = int(mt.group(1)), int(mt.group(2) or 7)
    dd = int(mt.group(3) or (1 if not mt.group(2) else 15))
    try:
        return pd.Timestamp(year=y, month=mo, day=dd).value
    except ValueError:
        return None


class _Fieldwork:
    """The columns :func:`fieldwork_year` reads, converted once (interview dates as int64
    nanoseconds, wave ids as integer codes), so that the year of many groups costs one
    pass over the group's rows each."""

    def __init__(self, data: pd.DataFrame):
        self.n = len(data)
        self.dates = None
        if "interview_date" in data.columns:
            d = pd.to_datetime(data["interview_date"], errors="coerce")
            a = np.asarray(d.to_numpy(dtype="datetime64[ns]"))
            self.dates = (a.view("i8"), ~np.isnat(a))
        self.wave = None
        if "wave" in data.columns:
            w = data["wave"]
            if isinstance(w.dtype, pd.CategoricalDtype):
                codes, cats = w.cat.codes.to_numpy(), list(w.cat.categories)
            else:
                codes, cats = pd.factorize(w, use_na_sentinel=True)
                cats = list(cats)
            ids = [""] + [str(x) for x in pd.Series(cats, dtype=object).astype("string")]
            self.wave = (np.asarray(codes, np.int64) + 1, [_wave_day(i) for i in ids])

    def year(self, mask=None, default: int | None = None) -> tuple[int | None, str]:
        m = np.ones(self.n, bool) if mask is None else np.asarray(mask, bool)
        if self.dates is not None:
            v, ok = self.dates
            sel = ok & m
            if sel.any():
                x = v[sel]
                lo, hi = int(x.min()), int(x.max())
                return int(pd.Timestamp(lo + (hi - lo) // 2).year), "interview dates"
        if self.wave is not None and m.any():
            codes, days = self.wave
            present = np.flatnonzero(np.bincount(codes[m], minlength=len(days)))
            got = [days[k] for k in present]
            if got and all(g is not None for g in got):
                return int(pd.Timestamp((min(got) + max(got)) // 2).year), "wave ids"
        if default:
            return int(default), "[reference] year"
        return None, "unknown"


ACCEPT = ("year_gap", "universe")


def compare(design, reference="russia", *, by: str | None = None,
            indicators: Sequence | None = None, min_age: int | None = None,
            max_age: int | None = None, standardise: str | None = "age_sex",
            age_bands=None, level: float = 0.95, tables=None,
            overall: bool = True, year: int | None = None, max_year_gap: int = 3,
            accept: Sequence[str] = (), extra_indicators: Sequence = ()) -> pd.DataFrame:
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
    indicators : names (or :class:`~diaspora_survey.compare.indicators.Indicator` entries) of
        the indicators to compute (default: every built-in one and ``extra_indicators``).
    extra_indicators : project indicators (``Indicator`` entries, e.g. from
        ``[[compare.indicators]]``), computed in addition to the built-in ones.
    min_age, max_age : the survey frame (default 18 and no upper limit); the population is
        restricted to the same ages where its tables allow (and the output says where they
        do not). Respondents outside the frame are left out (as a domain).
    standardise : ``"age_sex"`` (default; falls back to age where an age × sex cell is
        empty), ``"age"`` or None (no direct standardisation rows).
    age_bands : analysis age bands [(lo, hi|None)], default 18-24, 25-29, … 65+.
    level : confidence level. tables : extra reference table files (CSV/YAML).
    year : fieldwork year to use when the data have neither interview dates nor date-like
        wave ids (``[reference] year``); see :func:`fieldwork_year`.
    max_year_gap : a reference table further than this many years from the fieldwork year
        gives every row a caveat and makes claims resting on it inconclusive.
    accept : ``"year_gap"`` and/or ``"universe"``: the project accepts reference tables
        beyond the year gap / with a universe that cannot be restricted to the frame (the
        caveat stays; claims keep their verdict).

    Each group (the whole sample, each ``by`` group) uses, per table kind, the vintage
    nearest its own fieldwork year (:meth:`ReferencePopulation.vintages`).

    Returns a DataFrame with the columns :data:`COLUMNS` (see the module docstring) and
    ``attrs["notes"]``, ``attrs["frame"]``, ``attrs["reference"]``, ``attrs["fieldwork"]``.
    """
    from . import reference as refmod
    from .indicators import Indicator, registry
    from ..survey.design import SurveyDesign

    if not isinstance(design, SurveyDesign):
        raise EstimationError(f"compare needs a SurveyDesign, not {type(design).__name__}",
                              code="compare.bad_argument",
                              hint="wrap the data first: compare(SurveyDesign(df, weights='weight'), "
                                   "'russia')")
    if not isinstance(reference, refmod.ReferencePopulation) or tables:
        reference = refmod.load(reference, tables=tables)
    if standardise not in STANDARDISE:
        raise EstimationError(f"standardise={standardise!r} is not one of {STANDARDISE}",
                              code="compare.bad_option", hint="use 'age_sex', 'age' or None")
    if not (0 < level < 1):
        raise EstimationError(f"level={level!r} must be between 0 and 1", code="compare.bad_option")
    bad_acc = [a for a in accept if a not in ACCEPT]
    if bad_acc:
        raise EstimationError(f"accept={bad_acc!r}: unknown", code="compare.bad_option",
                              hint="accept may hold " + ", ".join(ACCEPT))
    if int(max_year_gap) < 0:
        raise EstimationError(f"max_year_gap={max_year_gap!r} must be >= 0", code="compare.bad_option")
    extra = [i for i in extra_indicators]
    extra += [i for i in (indicators or ()) if isinstance(i, Indicator) and i.name not in REGISTRY]
    reg = registry(extra)
    wanted = list(reg) if indicators is None else [i.name if isinstance(i, Indicator) else i
                                                  for i in indicators]
    bad = [i for i in wanted if i not in reg]
    if bad:
        raise EstimationError(f"unknown indicator(s) {bad}", code="compare.bad_indicator",
                              hint="choose from: " + ", ".join(reg))
    min_age = 18 if min_age is None else int(min_age)
    if max_age is not None and int(max_age) < min_age:
        raise EstimationError(f"max_age {max_age} < min_age {min_age}", code="compare.bad_frame")
    bands = schema.DEFAULT_AGE_BANDS if age_bands is None else tuple(
        (int(lo), None if hi is None else int(hi)) for lo, hi in age_bands)
    ctx = _Ctx(design, reference, min_age, max_age, level, standardise, bands)
    ctx.max_gap, ctx.accept = int(max_year_gap), frozenset(accept)
    for c in ("education", "employment_status"):   # converted once, cut per domain
        ctx.col(c)
    ctx.view_columns = ["age"] + sorted({c for name in wanted if not reg[name].builtin
                                         for c in [reg[name].variable]
                                         + [col for col, _ in reg[name].universe_values]})
    if not ctx.frame.any():
        raise EstimationError(f"no respondent in the frame {ctx.frame_txt}", code="compare.empty_frame",
                              hint="check the age column and min_age/max_age")
    n_out = int((design.domain_mask & ~ctx.frame).sum())
    ctx.notes.append(f"Frame: {ctx.frame_txt}; the population is restricted to the same ages where "
                     "its tables have an age breakdown." + (
                         f" {n_out} respondents outside the frame or without age are left out." if n_out else ""))
    gap_at = len(ctx.notes)

    groups = []
    if overall or by is None:
        groups.append(("", "all", ctx.frame))
    if by is not None:
        if by not in ctx.data.columns:
            raise EstimationError(f"no column {by!r} to compare by", code="compare.bad_by",
                                  hint="by= one of " + ", ".join(BY_ALLOWED) + " (or another column)")
        g = ctx.data[by]
        levels = list(g.cat.categories) if isinstance(g.dtype, pd.CategoricalDtype) else sorted(g.dropna().unique(), key=str)
        vals = _Coded.of(g)
        for lev in levels:
            m = ctx.frame & vals.eq(lev)
            if m.any():
                groups.append((by, str(lev), m))
    out = []
    fieldwork = {}
    fw_notes: dict[str, list[str]] = {}
    fwork = _Fieldwork(ctx.data)
    for gby, gval, dom in groups:
        fy, basis = fwork.year(dom, year)
        ctx.use_reference(reference, fy, basis)
        fieldwork[gval if gby else "all"] = {"year": fy, "basis": basis}
        _age_split_note(ctx)
        gctx, dom, _ = ctx.for_domain(dom)   # [scale] the domain's rows only
        gstd = _std_setup(gctx, standardise)  # standard cells of the domain's rows
        rows = []
        rows += _age_rows(gctx, dom, wanted)
        if {"education_distribution", "higher_education", "higher_education_by_age"} & set(wanted):
            rows += _education_rows(gctx, dom, wanted, gstd)
        if {"entrepreneurs_all", "entrepreneurs_employed"} & set(wanted):
            rows += _entrepreneur_rows(gctx, dom, wanted, gstd)
        for name in wanted:
            if not reg[name].builtin:
                ind = reg[name]
                rows += _project_rows(gctx, dom, ind, _std_setup(gctx, _indmode(ind, standardise)))
        for r in rows:
            r["by"], r["group"] = gby, gval
            r["unit"] = reg[r["indicator"]].unit
        out += rows
        used = sorted({(r["reference_table"], r["year"]) for r in rows if r.get("reference_table")},
                      key=lambda x: (str(x[0])))
        fw = f"{fy} (from the {basis})" if fy is not None else "unknown (no interview dates, date-like wave ids or [reference] year)"
        key = f"fieldwork {fw}; tables used: " + ", ".join(f"{t} ({int(y)})" for t, y in used)
        fw_notes.setdefault(key, []).append("all respondents" if not gby else f"{gby} = {gval}")
    for key, who in fw_notes.items():
        ctx.notes.append(f"Vintages ({', '.join(who)}): {key}.")
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
    order = {k: i for i, k in enumerate(reg)}
    res["_o"] = res["indicator"].map(order)
    res["_g"] = res.index  # stable within indicator
    gorder = {g[1] if g[0] else "all": i for i, g in enumerate(groups)}
    res["_gg"] = [gorder.get(v, 0) if b else 0 for b, v in zip(res["by"], res["group"])]
    res = res.sort_values(["_gg", "_o", "_g"], kind="stable").drop(columns=["_o", "_g", "_gg"])
    res = res.reset_index(drop=True)
    for c in ("by", "group", "unit", "indicator", "category", "adjustment", "reference_table",
              "source", "confidence", "universe", "note", "frame", "fieldwork_basis", "standard",
              "caveat", "validity"):
        res[c] = res[c].astype(object).where(res[c].notna(), "").astype(str)
    res["n"] = res["n"].fillna(0).astype("int64")
    res.attrs["notes"] = ctx.notes
    res.attrs["frame"] = {"min_age": ctx.min_age, "max_age": ctx.max_age, "text": ctx.frame_txt}
    res.attrs["reference"] = reference.name
    res.attrs["fieldwork"] = fieldwork
    res.attrs["max_year_gap"] = ctx.max_gap
    res.attrs["accept"] = sorted(ctx.accept)
    return res


def _indmode(ind, standardise):
    from .indicators import standardise_mode

    return standardise_mode(ind, standardise)


def _age_split_note(ctx) -> None:
    """The note on how the age table's bands were split at the frame (once per table)."""
    from .reference import ages as _age

    if ctx.age_table is None:
        return
    _, _, sp = _age.frame_shares(ctx.age_table, ctx.bands, ctx.min_age, ctx.max_age)
    if sp:
        note = (f"Age split ({ctx.age_table.id}): " + "; ".join(sp) + " — single years taken as "
                "uniform within the published 5-year bands (the reference notes' own 18+ figures "
                "take 18-19 as 2/5 of 15-19).")
        if note not in ctx.notes:
            ctx.notes.append(note)


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
        from .._files import read_parquet_input

        data = read_parquet_input(p, hint="run `diaspora-survey weight` again")
    rc = project.reference
    tables = [str(project.path(t)) for t in rc.tables] or None
    extra = project.indicators()
    res = compare_with_groups(data, rc.population, by=list(project.compare.by or []), tables=tables,
                              extra_indicators=extra, **rc.compare_options())
    claims = None
    cpath = project.claims_file() if hasattr(project, "claims_file") else (
        project.path(project.compare.claims) if project.compare.claims else None)
    if cpath is not None and cpath.exists():
        claims = evaluate_claims(res, load_claims(cpath, extra), extra)
    gof = res[res["adjustment"] == "rao-scott"].reset_index(drop=True)
    stdz = res[res["adjustment"].str.startswith(("direct", "indirect"))].reset_index(drop=True)
    crude = res[res["adjustment"] == "crude"].reset_index(drop=True)
    for f in (gof, stdz, crude):
        f.attrs.update(res.attrs)
    return {"comparisons": crude, "standardised": stdz, "gof": gof, "claims": claims, "all": res}

