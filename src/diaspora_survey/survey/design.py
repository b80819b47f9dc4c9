"""Survey designs: :class:`SurveyDesign` (Taylor linearisation or replicate weights).

A design is an immutable description of how the rows of a DataFrame were sampled:
weights, strata, (multistage) clusters, finite population corrections, and optionally
replicate weights and calibration records. Estimators (``mean``, ``total``,
``proportion``, ``ratio``, ``quantile``, ``var``, ``ciprop``, ``chisq``, ``glm``,
``contrast``) live in :mod:`diaspora_survey.survey.estimators` and are exposed as methods.

Variance conventions follow R's ``survey`` package (Lumley 2010; survey 4.1):

* Taylor linearisation, with-replacement at the first stage within strata, fpc where
  given (population size, or sampling fraction if all values are <= 1), later stages
  when an fpc is given (``svyrecvar``); single-PSU strata by ``lonely_psu`` —
  a per-design setting equivalent to ``options(survey.lonely.psu)``.
* Domains (``subset``, ``by=``, missing values) keep every row, PSU and stratum in the
  variance: rows outside get weight 0.
* Degrees of freedom: #PSU - #strata at stage 1 (``degf``); replicate designs: rank of
  the replicate weights - 1 (as ``degf.svyrep.design``). A domain's are those of R's
  ``degf(subset(...))``: the PSUs and strata that keep a nonzero weight
  (``domain_degf``); ``full_degf`` is the full design's.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import linearisation as lin
from ..errors import DesignError, EstimationError

REPLICATE_TYPES = ("JK1", "JKn", "BRR", "Fay", "bootstrap", "subbootstrap", "other", "JK2", "ACS",
                   "successive-difference")
# types only for user-supplied replicate weights (R's svrepdesign), not built by to_replicate
USER_ONLY_TYPES = ("other", "JK2", "ACS", "successive-difference")


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, (str, bytes)) or not isinstance(x, (list, tuple)):
        return [x]
    return list(x)


def _distinct_per_group(g: np.ndarray, code: np.ndarray, n_codes: int, G: int) -> np.ndarray:
    """Number of distinct ``code`` values (0..n_codes-1) among the rows of each group
    ``g`` (0..G-1) -> (G,) int. [scale] a presence table when G x n_codes is small (one
    pass, no sort), else a sort of the combined codes."""
    if G * n_codes <= 1 << 26:
        seen = np.zeros(G * n_codes, dtype=bool)
        seen[g * n_codes + code] = True
        return seen.reshape(G, n_codes).sum(axis=1)
    u = np.unique(g * n_codes + code)
    return np.bincount(u // n_codes, minlength=G)


def _colsum(T: np.ndarray) -> np.ndarray:
    """Column sums of (U, K) unit totals by pairwise summation (numpy sums a contiguous
    axis pairwise; down axis 0 of a C-ordered array it adds row after row, which loses
    ~1e-13 relative over 1e5 units)."""
    return np.ascontiguousarray(T.T).sum(axis=1)



def den_terms(n_den: int, dmap: np.ndarray):
    """The pairs (row, term) of a ratio's denominator part: ``dmap[t]`` is the denominator
    cell of term t; returns ``f(k) -> (rows, terms)`` with every row i of ``k >= 0`` repeated
    once per term whose denominator cell is ``k[i]`` (a CSR map cell -> terms)."""
    order = np.argsort(dmap, kind="stable")
    counts = np.bincount(dmap, minlength=n_den)
    ptr = np.concatenate(([0], np.cumsum(counts)))

    def pairs(k: np.ndarray):
        ok = np.flatnonzero(k >= 0)
        reps = counts[k[ok]]
        rows = np.repeat(ok, reps)
        offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        return rows, order[np.repeat(ptr[k[ok]], reps) + offs]
    return pairs

class SurveyDesign:
    """A complex survey design over a pandas DataFrame.

    Parameters
    ----------
    df : DataFrame, one row per respondent (kept as is; never modified).
    weights : column name (or array of length n) of the sampling weights (inverse
        inclusion probabilities). None = all 1 (or implied by fpc, as R's svydesign).
    strata : column name (first-stage strata) or a list of names, one per stage.
    psu : column name of the first-stage clusters, or a list (one per stage) for a
        multistage design. None = every row is its own PSU (R's ``id=~1``).
    fpc : column name or list (one per stage): population size of the stratum at that
        stage, or the sampling fraction when all values are <= 1. None = sampling with
        replacement (no finite population correction).
    nest : bool, PSU ids are only unique within strata (R's ``nest=TRUE``).
    lonely_psu : "fail" (default, raise naming the stratum), "remove", "certainty",
        "adjust" (centre the single PSU at the grand mean of the scores) or "average"
        (as R's ``options(survey.lonely.psu=...)``, but set per design).

    Examples
    --------
    >>> d = SurveyDesign(df, weights="w", strata="region", psu="cluster")  # doctest: +SKIP
    >>> d.mean("age", by="wave")                                            # doctest: +SKIP
    """

    __slots__ = ("_data", "_n", "_w", "_domain", "_stages", "_strata_labels", "_degf",
                 "_adjustments", "_rep", "_spec", "_fpc_cols", "_lonely", "_degf_cache",
                 "_frozen")

    def __init__(self, df: pd.DataFrame, weights=None, strata=None, psu=None, fpc=None,
                 nest: bool = False, lonely_psu: str = "fail"):
        object.__setattr__(self, "_frozen", False)
        if not isinstance(df, pd.DataFrame):
            raise DesignError(f"SurveyDesign needs a pandas DataFrame, got {type(df).__name__}",
                              hint="pass the data frame of respondents: SurveyDesign(df, weights='w')")
        if lonely_psu not in lin.LONELY_RULES:
            raise DesignError(f"unknown lonely_psu rule {lonely_psu!r}",
                              code="design.invalid_option",
                              hint="one of " + ", ".join(lin.LONELY_RULES))
        n = len(df)
        if n == 0:
            raise DesignError("the data frame has no rows", hint="check the filter that made it")
        self._data = df
        self._n = n
        self._lonely = lonely_psu
        self._adjustments: tuple = ()
        self._rep = None
        self._domain = None
        self._degf_cache = None
        psus = _as_list(psu)
        stratas = _as_list(strata)
        fpcs = _as_list(fpc)
        self._spec = dict(weights=weights if isinstance(weights, str) or weights is None else "<array>",
                          strata=strata, psu=psu, fpc=fpc, nest=nest, lonely_psu=lonely_psu)
        for name in [c for c in psus + stratas + fpcs if isinstance(c, str)] + (
                [weights] if isinstance(weights, str) else []):
            if name not in df.columns:
                raise DesignError("not found in the data",
                                  code="design.unknown_column", where=f"column {name!r}",
                                  hint="available columns: " + ", ".join(map(str, df.columns[:30]))
                                       + (" …" if len(df.columns) > 30 else ""))
        if len(fpcs) > max(len(psus), 1):
            raise DesignError(f"{len(fpcs)} fpc columns for {max(len(psus), 1)} sampling stage(s)",
                              code="design.fpc_stages", hint="give one fpc per psu stage")
        if len(stratas) > max(len(psus), 1):
            raise DesignError(f"{len(stratas)} strata columns for {max(len(psus), 1)} stage(s)",
                              code="design.strata_stages", hint="give at most one strata per stage")

        # ---- weights
        if weights is None:
            w = np.ones(n)
        else:
            w = self._numeric_design_column(weights, "weights")
            if np.isnan(w).any():
                k = int(np.isnan(w).sum())
                raise DesignError(f"weights {self._name(weights)!r} have {k} missing value(s)",
                                  code="design.weights_missing", where=f"column {self._name(weights)!r}",
                                  hint="drop or impute those rows before building the design "
                                       "(a missing weight is not a zero weight)")
            if (w < 0).any():
                k = int((w < 0).sum())
                raise DesignError(f"weights {self._name(weights)!r} have {k} negative value(s)",
                                  code="design.weights_negative", where=f"column {self._name(weights)!r}",
                                  hint="sampling weights must be >= 0")
            if not np.isfinite(w).all():
                raise DesignError(f"weights {self._name(weights)!r} have infinite values",
                                  code="design.weights_infinite", where=f"column {self._name(weights)!r}")
            if w.sum() <= 0:
                raise DesignError("all weights are zero", code="design.weights_zero",
                                  where=f"column {self._name(weights)!r}")
        # ---- codes
        strata_codes = []
        strata_uniques = []
        for s in stratas:
            c, u = self._codes(s, "strata")
            strata_codes.append(c)
            strata_uniques.append(u)
        psu_codes = []
        for p in psus:
            c, _ = self._codes(p, "psu")
            psu_codes.append(c)
        if not psu_codes:
            psu_codes = [np.arange(n, dtype=np.int64)]
        n_stages = len(psu_codes)
        fpc_vals = []
        for j, f in enumerate(fpcs):
            v = self._numeric_design_column(f, "fpc")
            if np.isnan(v).any():
                k = int(np.isnan(v).sum())
                raise DesignError(f"fpc {self._name(f)!r} has {k} missing value(s)",
                                  code="design.fpc_missing", where=f"column {self._name(f)!r}",
                                  hint="every row needs the population size (or sampling fraction) "
                                       "of its stratum")
            if (v <= 0).any():
                raise DesignError(f"fpc {self._name(f)!r} has values <= 0",
                                  code="design.fpc_invalid", where=f"column {self._name(f)!r}",
                                  hint="fpc is a population size (>= 1) or a fraction in (0, 1]")
            fpc_vals.append(v)
        fpc_fraction = None
        if fpc_vals:
            allv = np.concatenate(fpc_vals)
            fpc_fraction = not bool((allv > 1).any())
            if not fpc_fraction and (allv < 1).any():
                raise DesignError("fpc mixes population sizes (> 1) and sampling fractions (< 1)",
                                  code="design.fpc_mixed",
                                  hint="use population sizes everywhere, or fractions everywhere")

        # ---- stages (R: later stages only count when an fpc is given for them)
        n_use = 1 if not fpc_vals else max(1, min(n_stages, len(fpc_vals)))
        stages = []
        prev_unit = None
        mult_row = None
        inv_frac_row = np.ones(n)
        for k in range(n_use):
            if k == 0:
                st = strata_codes[0] if strata_codes else np.zeros(n, dtype=np.int64)
            else:
                base = (strata_codes[min(k, len(strata_codes) - 1)] if strata_codes
                        else np.zeros(n, np.int64))
                st = lin.combine_codes(base, prev_unit)
            u = psu_codes[k]
            if k > 0:
                u = lin.combine_codes(prev_unit, u)
            if nest and strata_codes:
                u = lin.combine_codes(strata_codes[min(k, len(strata_codes) - 1)], u)
            if k == 0 and strata_codes and psus:
                us = np.full(int(u.max()) + 1, -1, dtype=np.int64)
                us[u] = st
                if not np.array_equal(us[u], st):
                    raise DesignError(
                        f"PSUs in {psus[0]!r} are not nested in strata {stratas[0]!r}: "
                        "some PSU id occurs in more than one stratum",
                        code="design.not_nested", where=f"column {psus[0]!r}",
                        hint="if PSU ids are only unique within strata, pass nest=True")
            labels = self._stratum_labeller(k, st, strata_uniques, stratas)
            stage = lin.build_stage(u, st, fpc_vals[k] if k < len(fpc_vals) else None,
                                    bool(fpc_fraction), mult_row, lonely_psu, k + 1, labels,
                                    group_of_stratum_row=(None if k == 0 else prev_unit),
                                    fpc_name=self._name(fpcs[k]) if k < len(fpcs) else "fpc")
            stages.append(stage)
            if fpc_vals:     # [scale] without fpc: m = 1 and no implied weights (no n-row gathers)
                mult_row = (stage.mult_h * stage.frac_h)[st]
                with np.errstate(divide="ignore"):
                    inv_frac_row = inv_frac_row * np.where(stage.frac_h > 0, 1.0 / stage.frac_h, 1.0)[st]
            prev_unit = u
        self._stages = tuple(stages)
        if weights is None and fpc_vals and len(fpc_vals) == n_stages:
            w = inv_frac_row  # R: weights implied by the fpcs, prod_k N_k / n_k
        self._w = np.ascontiguousarray(w, dtype=np.float64)
        s1 = self._stages[0]
        self._degf = int(s1.n_units - s1.n_h.size)
        self._strata_labels = strata_uniques[0] if strata_uniques else None
        self._frozen = True

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _name(x) -> str:
        return x if isinstance(x, str) else "<array>"

    def _numeric_design_column(self, col, role: str) -> np.ndarray:
        if isinstance(col, str):
            s = self._data[col]
        else:
            s = pd.Series(np.asarray(col))
            if len(s) != self._n:
                raise DesignError(f"{role} array has {len(s)} values for {self._n} rows",
                                  code="design.length_mismatch")
        try:
            return s.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise DesignError(f"{role} column {self._name(col)!r} is not numeric (dtype {s.dtype})",
                              code="design.not_numeric", where=f"column {self._name(col)!r}",
                              hint=f"{role} must be numbers") from None

    def _codes(self, col, role: str):
        s = self._data[col] if isinstance(col, str) else pd.Series(np.asarray(col))
        if len(s) != self._n:
            raise DesignError(f"{role} array has {len(s)} values for {self._n} rows",
                              code="design.length_mismatch")
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        if (codes < 0).any():
            k = int((codes < 0).sum())
            raise DesignError(f"{role} column {self._name(col)!r} has {k} missing value(s)",
                              code=f"design.{role}_missing", where=f"column {self._name(col)!r}",
                              hint=f"every row needs a {role}; fill or drop those rows first")
        return codes.astype(np.int64, copy=False), np.asarray(uniques)

    @staticmethod
    def _stratum_labeller(k, st, strata_uniques, stratas):
        def label(h):
            if k == 0 and strata_uniques:
                return f"{strata_uniques[0][h]!s} (column {stratas[0]!r})"
            if k == 0:
                return "(whole sample)"
            return f"#{h} of stage {k + 1} (within a stage-{k} unit)"
        return label

    def __setattr__(self, key, value):
        if getattr(self, "_frozen", False):
            raise AttributeError("SurveyDesign is immutable; use subset()/with_adjustment() "
                                 "to derive a new design")
        object.__setattr__(self, key, value)

    def _derive(self, **changes) -> "SurveyDesign":
        new = object.__new__(SurveyDesign)
        object.__setattr__(new, "_frozen", False)
        for k in self.__slots__:
            if k == "_frozen":
                continue
            object.__setattr__(new, k, getattr(self, k, None))
        for k, v in changes.items():
            object.__setattr__(new, k, v)
        object.__setattr__(new, "_frozen", True)
        return new

    def __repr__(self) -> str:
        kind = "replicate" if self._rep is not None else "Taylor"
        extra = f", replicates={self._rep['type']}x{self._rep['repw'].shape[1]}" if self._rep else ""
        dom = f", domain={int(self.domain_mask.sum())} rows" if self._domain is not None else ""
        return (f"<SurveyDesign {kind}: n={self._n}, PSUs={self._stages[0].n_units}, "
                f"strata={self._stages[0].n_h.size}, degf={self.degf}{extra}{dom}, "
                f"adjustments={len(self._adjustments)}>")

    # ------------------------------------------------------------------ public props
    @property
    def data(self) -> pd.DataFrame:
        """The design's DataFrame (all rows, also for subsets). A shallow copy: changing it
        does not change the design."""
        return self._data.copy(deep=False)

    @property
    def n(self) -> int:
        """Number of rows of the design data (all rows, also for a subset)."""
        return self._n

    @property
    def weights(self) -> np.ndarray:
        """Final weights, float64 array of length n; 0 outside a subset's domain."""
        w = self._w if self._domain is None else self._w * self._domain
        w = w.copy()
        w.flags.writeable = False
        return w

    @property
    def domain_mask(self) -> np.ndarray:
        """Boolean array: rows inside the (sub)domain of this design."""
        return np.ones(self._n, dtype=bool) if self._domain is None else self._domain.copy()

    @property
    def degf(self) -> int:
        """Design degrees of freedom, as R's ``degf()``: #PSU - #strata (stage 1) with a
        nonzero weight for Taylor designs; for replicate designs rank(replicate weights)
        - 1. For a subset (domain) design, those of the domain: R's
        ``degf(subset(design, ...))`` counts only the PSUs and strata (rows) that keep a
        nonzero weight. ``full_degf`` is the full design's."""
        if self._domain is None and self._rep is None:
            return self._degf
        if self._degf_cache is None:
            object.__setattr__(self, "_frozen", False)
            self._degf_cache = (self._rep_degf() if self._domain is None
                                else int(self.domain_degf(np.zeros(self._n, dtype=np.int64), 1)[0]))
            object.__setattr__(self, "_frozen", True)
        return self._degf_cache

    @property
    def full_degf(self) -> int:
        """Degrees of freedom of the full design (also for a subset), R's ``degf()`` of
        the design before subsetting."""
        if self._domain is None:
            return self.degf
        return self._derive(_domain=None, _degf_cache=None).degf

    def domain_degf(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """R's ``degf()`` of the subset design of every group (``svyby`` subsets the
        design per group): groups (n,) int codes 0..G-1 (-1 = in no group), combined with
        this design's own domain. Taylor: #stage-1 PSUs - #stage-1 strata among the rows
        with a nonzero weight; replicate: rank of the group's replicate weights - 1
        (R's ``[.svyrep.design`` recomputes ``degf``). Returns (G,) floats."""
        g = np.asarray(groups, dtype=np.int64)
        G = int(n_groups)
        inset = (g >= 0) & (self._w != 0)
        if self._domain is not None:
            inset &= self._domain
        rows = np.flatnonzero(inset)
        gr = g[rows]
        out = np.zeros(G)
        if self._rep is None:
            st = self._stages[0]
            unit = st.unit[rows]
            H = st.n_h.size
            n_psu = _distinct_per_group(gr, unit, st.n_units, G)
            n_st = _distinct_per_group(gr, st.unit_stratum[unit], H, G)
            return (n_psu - n_st).astype(float)
        f = self._rep.get("factors")
        unit_all = self._stages[0].unit if f is not None else None
        for gi in range(G):  # loop over groups: one rank each
            r = rows[gr == gi]
            if r.size == 0:
                out[gi] = np.nan
            elif f is not None:
                out[gi] = np.linalg.matrix_rank(f[np.unique(unit_all[r])]) - 1
            else:
                Rg = self._rep["repw"][r]
                if Rg.shape[0] > 5000:   # same rank, fewer rows (rows repeat within PSUs)
                    Rg = np.unique(Rg, axis=0)
                out[gi] = np.linalg.matrix_rank(Rg) - 1
        return out

    @property
    def is_replicate(self) -> bool:
        return self._rep is not None

    @property
    def lonely_psu(self) -> str:
        return self._lonely

    @property
    def replicate_info(self) -> dict | None:
        """For replicate designs: type, scale, rscales, mse and the (n, R) analysis weights."""
        if self._rep is None:
            return None
        r = dict(self._rep)
        r["rscales"] = np.array(r["rscales"])
        return r

    # ------------------------------------------------------------------ domains
    def subset(self, mask) -> "SurveyDesign":
        """Domain (subpopulation) design: rows outside ``mask`` get weight 0 but stay in the
        design, so all PSUs and strata remain in the variance and in ``degf`` (R's
        ``subset.survey.design``). mask: boolean array/Series of length n (NA = False),
        a query string evaluated with ``DataFrame.eval`` (columns, values, comparisons,
        and/or/not; calls, attributes and @variables are refused before pandas sees it)
        or a callable df -> mask."""
        m = self._mask(mask)
        if self._domain is not None:
            m = m & self._domain
        if not m.any():
            raise EstimationError("the subset is empty", code="estimate.empty_domain",
                                  hint="check the condition; no row satisfies it")
        return self._derive(_domain=m, _degf_cache=None)

    def domain_view(self, mask, columns=None) -> "SurveyDesign":
        """The domain ``mask`` as a design over its own rows only: the same estimates,
        variances and degrees of freedom as :meth:`subset` (rows outside a domain have
        weight 0 and add nothing to the PSU totals; the PSUs and strata without a domain
        row still count in the centring - see :func:`.linearisation.restrict_stage`),
        at a cost proportional to the domain's rows instead of the design's. For loops
        over many domains (comparisons by country, report cell tables).

        ``data``, ``n``, ``weights`` and ``domain_mask`` of the view are those of the
        domain's rows. Designs with calibration records or replicate weights return
        ``subset(mask)`` (their variances need every row). ``columns``: keep only these
        columns of the data in the view (the caller's estimators need no others).
        """
        m = self._mask(mask)
        if self._domain is not None:
            m = m & self._domain
        if not m.any():
            raise EstimationError("the subset is empty", code="estimate.empty_domain",
                                  hint="check the condition; no row satisfies it")
        sub = self.subset(m)
        if self._rep is not None or self._adjustments:
            return sub
        rows = np.flatnonzero(m)
        stages = tuple(lin.restrict_stage(s, rows) for s in self._stages)
        # R's degf() of the subset: stage-1 PSUs and strata with a nonzero weight in the
        # domain (as sub.degf, counted over the domain's rows only)
        s0 = stages[0]
        unit = s0.unit[self._w[rows] != 0]
        zero = np.zeros(unit.size, dtype=np.int64)
        degf = int(_distinct_per_group(zero, unit, s0.n_units, 1)[0]
                   - _distinct_per_group(zero, s0.unit_stratum[unit], s0.n_h.size, 1)[0])
        data = self._data if columns is None else self._data[[c for c in columns
                                                                 if c in self._data.columns]]
        return self._derive(_data=data.take(rows), _n=int(rows.size), _w=self._w[rows],
                            _domain=None, _stages=stages, _degf=degf, _degf_cache=None,
                            _spec=dict(self._spec, view=True))

    def coded_totals(self, pairs, n_totals: int) -> tuple[np.ndarray, np.ndarray]:
        """Weighted totals given by integer codes, and their design-based covariance, in
        one pass: row i adds ``w_i * a_i`` to total ``key_i`` for every ``(a, key)`` in
        ``pairs`` (key < 0: not counted). The same numbers as :meth:`total_vcov` of the
        dense indicator matrix ``Y[i, key_i] = a_i``, without building it: PSU totals by
        one ``np.bincount`` over unit x key, then one small covariance per stage
        (R ``svytotal`` of the indicator columns). The design's domain applies.
        Returns ``(totals (K,), vcov (K, K))``.
        """
        K = int(n_totals)
        pairs = [(np.asarray(a, dtype=np.float64), np.asarray(k, dtype=np.int64)) for a, k in pairs]
        for a, k in pairs:
            if a.shape != (self._n,) or k.shape != (self._n,):
                raise EstimationError(f"coded_totals: arrays of {a.shape}/{k.shape} for {self._n} rows",
                                      code="estimate.length_mismatch")
            if k.size and k.max() >= K:
                raise EstimationError(f"coded_totals: key {int(k.max())} >= {K} totals",
                                      code="estimate.bad_key")
        theta, V, _, _ = self._linear(K, pairs, None)
        return theta, V

    def _mask(self, mask) -> np.ndarray:
        if callable(mask):
            mask = mask(self._data)
        if isinstance(mask, str):
            from ._formula import check_condition

            check_condition(mask, self._data.columns)   # no calls/attributes: no code runs
            try:
                mask = self._data.eval(mask)
            except Exception as e:  # pandas raises many kinds
                raise EstimationError(f"cannot evaluate subset condition {mask!r}: {e}",
                                      code="estimate.bad_subset",
                                      hint="use column names and comparisons, e.g. \"wave == 'w2'\"") from None
        if isinstance(mask, pd.Series):
            if not mask.index.equals(self._data.index):
                mask = mask.reindex(self._data.index)
            m = mask.where(mask.notna(), False).astype(bool).to_numpy(dtype=bool)
        else:
            m = np.asarray(mask)
            if m.dtype != bool:
                m = np.asarray(pd.Series(m).fillna(False).astype(bool))
        if m.shape != (self._n,):
            raise EstimationError(f"subset mask has shape {m.shape}, the design has {self._n} rows",
                                  code="estimate.bad_subset")
        return m

    # ------------------------------------------------------------------ kernels
    def total_vcov(self, Y, *, domain=None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted totals of the columns of ``Y`` and their design-based covariance.

        Y: (n, k) or (n,) array of numbers (NaN not allowed), rows in design order.
        domain: optional boolean mask (n,); rows outside contribute 0 (they stay in
        the design). The design's own subset domain also applies.
        Returns ``(totals (k,), vcov (k, k))`` with totals = sum_i w_i Y_ik and vcov the
        Taylor-linearisation covariance (R ``svytotal(..)`` / ``vcov``), including any
        calibration records (``with_adjustment``), or the replicate-weight covariance
        for replicate designs. Build ratios/differences/standardised rates on top by the
        delta method: ``J @ vcov @ J.T``.
        """
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != self._n:
            raise EstimationError(f"Y has {Y.shape[0]} rows, the design has {self._n}",
                                  code="estimate.length_mismatch")
        if np.isnan(Y).any():
            raise EstimationError("Y contains NaN", code="estimate.nan",
                                  hint="replace missing values by 0 and pass domain= to exclude rows")
        keep = self.domain_mask
        if domain is not None:
            keep = keep & self._mask(domain)
        w = np.where(keep, self._w, 0.0)
        totals = w @ Y
        if self._rep is not None:
            R = self._rep["repw"]
            reps = (R * keep[:, None]).T @ Y              # (R, k)
            return totals, self._rep_vcov(reps, totals)
        Z = Y * w[:, None]
        if not self._adjustments and Z.shape[1] > 4:
            r, c = np.nonzero(Z)
            if 8 * r.size < Z.size:
                # [scale] mostly zeros (indicator columns, a domain): sparse unit totals,
                # Gram per stratum (linearisation.stage_vcov_sparse), O(nonzeros)
                from scipy import sparse

                vals = Z[r, c]
                V = None
                for stage in self._stages:
                    Zs = sparse.csr_matrix((vals, (stage.unit[r], c)), shape=(stage.n_units, Z.shape[1]))
                    v = lin.stage_vcov_sparse(stage, Zs)
                    V = v if V is None else V + v
                return totals, V
        return totals, self._vcov_rows(Z)

    def _vcov_rows(self, Z: np.ndarray) -> np.ndarray:
        """Taylor covariance of the totals of row scores Z (n, k) (weights included)."""
        for adj in self._adjustments:
            Z = lin.apply_adjustment(Z, adj)
        return lin.design_vcov(list(self._stages), Z=Z)

    def _rep_vcov(self, reps: np.ndarray, full: np.ndarray) -> np.ndarray:
        """scale * sum_r rscales_r (theta_r - centre)(theta_r - centre)', centre = mean of
        the replicates (mse=False) or the full-sample estimate (mse=True)."""
        rep = self._rep
        reps = np.asarray(reps, dtype=float)
        centre = np.asarray(full, dtype=float) if rep["mse"] else reps.mean(axis=0)
        D = reps - centre
        return rep["scale"] * (D * rep["rscales"][:, None]).T @ D

    def _rep_degf(self) -> int:
        if self._rep.get("degf") is not None:
            return int(self._rep["degf"])
        R = self._rep["repw"]
        f = self._rep.get("factors")
        if f is not None:
            return int(np.linalg.matrix_rank(f)) - 1
        # rank of the replicate weights (R: qr(weights(design, "analysis"), tol=1e-5)$rank - 1)
        sample = R if R.shape[0] <= 200_000 else R[np.linspace(0, R.shape[0] - 1, 200_000).astype(int)]
        return int(np.linalg.matrix_rank(sample)) - 1

    def _linear(self, n_terms: int, num: list, den: list | None, n_den: int = 0,
                dmap: np.ndarray | None = None):
        """Linearised estimates theta_t = N_t / D_dmap[t] (or N_t when den is None) and
        their covariance.

        num: list of (a, key) pairs: row i adds w_i a_i to numerator total key_i
        (key < 0 = not counted); den likewise for the denominators. Scores (R's
        svymean/svyratio influence functions): z_it = w_i (a_i [key_i=t] -
        theta_t b_i [dkey_i=dmap_t]) / D_dmap[t]. Returns (theta, vcov, N, D).
        """
        dom = self._domain

        def mask_key(key):
            key = np.asarray(key, dtype=np.int64)
            if dom is not None:
                key = np.where(dom, key, -1)
            return key

        num = [(np.asarray(a, dtype=np.float64), mask_key(k)) for a, k in num]
        den = None if den is None else [(np.asarray(b, dtype=np.float64), mask_key(k)) for b, k in den]
        # per pair, once: the weighted values and keys of the counted rows (no copies when
        # every row counts)
        pnum = [self._prepare(a, k) for a, k in num]
        pden = None if den is None else [self._prepare(b, k) for b, k in den]

        def totals(prepared, K):
            out = np.zeros(K)
            for wa, k, _ in prepared:
                out += np.bincount(k, weights=wa, minlength=K)
            return out

        # [scale] nonzero unit totals at most: the counted rows of every pair (a
        # denominator row counts once per term using it); far fewer than U x terms
        # (e.g. many cells, one row per PSU) -> sparse unit totals, Gram per stratum
        nnz = sum(int(k.size if r is None else r.size) for _, k, r in pnum)
        if pden is not None:
            per_den = np.bincount(dmap, minlength=n_den)
            nnz += sum(int(per_den[k].sum()) for _, k, _ in pden)

        def dense(stage):
            U = stage.n_units
            sparse_ok = max(n_terms, n_den) > 8 and 8 * nnz < U * n_terms
            return U * max(n_terms, n_den) <= 30_000_000 and not sparse_ok

        unit_totals = {}
        if self._rep is None and not self._adjustments and len(self._stages) == 1 \
                and dense(self._stages[0]):
            # [scale] one pass: the unit totals, and the totals as their sums
            st0 = self._stages[0]
            unit_totals["num"] = self._unit_totals(st0, pnum, n_terms)
            N = _colsum(unit_totals["num"])
            if den is not None:
                unit_totals["den"] = self._unit_totals(st0, pden, n_den)
        else:
            N = totals(pnum, n_terms)
        if den is not None:
            D = _colsum(unit_totals["den"]) if "den" in unit_totals else totals(pden, n_den)
            with np.errstate(divide="ignore", invalid="ignore"):
                theta = N / D[dmap]
        else:
            D = None
            theta = N

        if self._rep is not None:
            return theta, self._linear_rep(n_terms, num, den, n_den, dmap, theta), N, D

        if self._adjustments:
            Z = self._dense_scores(n_terms, num, den, n_den, dmap, theta, D)
            V = self._vcov_rows(Z)
            return theta, V, N, D

        V = None
        for stage in self._stages:
            if dense(stage):
                Tn = unit_totals.pop("num", None)
                if Tn is None:
                    Tn = self._unit_totals(stage, pnum, n_terms)
                if den is not None:
                    Td = unit_totals.pop("den", None)
                    if Td is None:
                        Td = self._unit_totals(stage, pden, n_den)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        Zu = (Tn - theta * Td[:, dmap]) / D[dmap]
                else:
                    Zu = Tn
                if not np.isfinite(Zu).all():      # one check instead of three passes
                    Zu = np.nan_to_num(Zu, nan=0.0, posinf=0.0, neginf=0.0)
                v = lin.stage_vcov(stage, Zu)
            else:
                Zs = self._sparse_unit_scores(stage, n_terms, num, den, n_den, dmap, theta, D)
                v = lin.stage_vcov_sparse(stage, Zs)
            V = v if V is None else V + v
        return theta, V, N, D

    def _prepare(self, a, key):
        """(w*a, key, rows) restricted to the rows with key >= 0 (rows None = all rows)."""
        wa = self._w * a
        if key.size and key.min() >= 0:
            return wa, key, None
        rows = np.flatnonzero(key >= 0)
        return wa[rows], key[rows], rows

    def _unit_totals(self, stage, prepared, K):
        """(U, K) totals of w*a by sampling unit of the stage and key."""
        U = stage.n_units
        out = None
        for wa, k, rows in prepared:
            unit = stage.unit if rows is None else stage.unit[rows]
            t = np.bincount(unit * K + k if K > 1 else unit, weights=wa, minlength=U * K)
            out = t if out is None else out + t
        return (np.zeros(U * K) if out is None else out).reshape(U, K)

    def _score_triplets(self, unit, n_terms, num, den, n_den, dmap, theta, D):
        rows, cols, vals = [], [], []
        scale_t = np.ones(n_terms) if D is None else 1.0 / D[dmap]
        scale_t = np.where(np.isfinite(scale_t), scale_t, 0.0)
        for a, k in num:
            ok = np.flatnonzero(k >= 0)
            rows.append(unit[ok]); cols.append(k[ok]); vals.append((self._w * a)[ok] * scale_t[k[ok]])
        if den is not None:
            terms_of = den_terms(n_den, dmap)
            th = np.where(np.isfinite(theta), theta, 0.0)
            for b, k in den:
                rr, tt = terms_of(k)
                rows.append(unit[rr]); cols.append(tt)
                vals.append(-(self._w * b)[rr] * th[tt] * scale_t[tt])
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)

    def _sparse_unit_scores(self, stage, n_terms, num, den, n_den, dmap, theta, D):
        from scipy import sparse

        r, c, v = self._score_triplets(stage.unit, n_terms, num, den, n_den, dmap, theta, D)
        return sparse.csr_matrix((v, (r, c)), shape=(stage.n_units, n_terms))

    def _dense_scores(self, n_terms, num, den, n_den, dmap, theta, D):
        r, c, v = self._score_triplets(np.arange(self._n), n_terms, num, den, n_den, dmap, theta, D)
        Z = np.zeros((self._n, n_terms))
        np.add.at(Z, (r, c), v)
        return Z

    def _linear_rep(self, n_terms, num, den, n_den, dmap, theta):
        from scipy import sparse

        R = self._rep["repw"]

        def rep_totals(pairs, K):
            out = np.zeros((K, R.shape[1]))
            for a, k in pairs:
                ok = np.flatnonzero(k >= 0)
                A = sparse.csr_matrix((a[ok], (k[ok], ok)), shape=(K, self._n))
                out += np.asarray(A @ R)
            return out.T  # (R, K)

        Nr = rep_totals(num, n_terms)
        if den is not None:
            Dr = rep_totals(den, n_den)
            with np.errstate(divide="ignore", invalid="ignore"):
                th = Nr / Dr[:, dmap]
        else:
            th = Nr
        return self._rep_vcov(th, theta)

    # ------------------------------------------------------------------ calibration hook
    def with_adjustment(self, new_weights, adjustment: dict | None = None, *,
                        replicate_weights=None, keep_degf: bool = False) -> "SurveyDesign":
        """A design with new final weights and a calibration record for the variance.

        new_weights: (n,) final weights (e.g. after post-stratification, raking or GREG
        calibration). adjustment: how the weights were made, so that every Taylor
        variance afterwards projects the weighted scores exactly as R's ``svyrecvar``
        does with ``design$postStrata`` (Lumley 2010, §7; survey 4.1 ``svyrecvar``):

        * ``{"kind": "greg", "X": (n, p), "w": (n,)}``: ``z <- qr.resid(X, z/w) * w``.
          For R's ``calibrate()`` pass ``X = model_matrix * sqrt(w_old)`` and
          ``w = g * sqrt(w_old)`` (R stores ``qr(mm*whalf)`` and ``w = g*whalf``).
        * ``{"kind": "poststrat", "cells": int (n,), "w": (n,), "oldw": (n,) optional}``:
          ``z <- z - cellmean(z/w) * w``, the cell mean weighted by ``oldw`` (R's
          ``attr(, "oldweights")``: the weights before post-stratification), unweighted
          if ``oldw`` is absent; ``w`` = the post-stratified weights.
        * ``{"kind": "raking", "margins": [int (n,), ...], "w": (n,) or a list, one per
          margin}``: 10 sweeps of ``z <- z - w_m * ave(z/w_m, margin_m)``; R stores, for
          each margin, the weights after that margin's post-stratification in the last
          raking iteration.
        * None: new weights only (SEs treat them as fixed design weights; R's
          ``trimWeights``).

        For replicate designs: ``replicate_weights`` (n, R), the re-weighted replicates
        (``weighting.poststratify``/``calibrate``/``rake`` pass every replicate
        post-stratified / calibrated / raked, as R's methods for svyrep.design);
        without them every replicate weight is multiplied by new/old (R's
        ``trimWeights``-like rescaling; the calibration record itself is not used).
        keep_degf: keep the degrees of freedom (R's calibrate.svyrep.design keeps them;
        postStratify recomputes the rank of the new replicate weights).
        """
        w_new = np.asarray(new_weights, dtype=np.float64).reshape(-1)
        if w_new.shape != (self._n,):
            raise DesignError(f"new weights have {w_new.size} values for {self._n} rows",
                              code="design.length_mismatch")
        if np.isnan(w_new).any() or (w_new < 0).any():
            raise DesignError("new weights contain NaN or negative values",
                              code="design.weights_invalid", hint="weights must be finite and >= 0")
        changes: dict[str, Any] = {"_w": w_new}
        if self._rep is not None and replicate_weights is not None:
            R = np.asarray(replicate_weights, dtype=np.float64)
            if R.shape != self._rep["repw"].shape or not np.all(np.isfinite(R)) or (R < 0).any():
                raise DesignError("replicate weights must be finite, >= 0 and of the design's shape "
                                  f"{self._rep['repw'].shape}", code="design.weights_invalid")
            rep = dict(self._rep)
            rep["repw"] = R
            degf = self.degf if keep_degf else None
            if keep_degf:
                rep["degf"] = degf
            else:
                rep.pop("degf", None)
            rep["factors"] = None    # the replicates no longer are the factors times w
            return self._derive(_w=w_new, _rep=rep, _degf_cache=degf)
        if self._rep is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(self._w > 0, w_new / self._w, 0.0)
            if np.any((self._w == 0) & (w_new > 0)):
                raise DesignError("cannot rescale replicate weights: a row with old weight 0 "
                                  "has a positive new weight", code="design.replicate_rescale")
            rep = dict(self._rep)
            rep["repw"] = self._rep["repw"] * ratio[:, None]
            changes["_rep"] = rep
            return self._derive(**changes)
        if adjustment is not None:
            adj = self._check_adjustment(adjustment)
            changes["_adjustments"] = self._adjustments + (adj,)
        return self._derive(**changes)

    def _check_adjustment(self, adjustment: dict) -> dict:
        if not isinstance(adjustment, dict) or "kind" not in adjustment:
            raise DesignError("adjustment must be a dict with a 'kind'",
                              code="design.bad_adjustment", hint="kinds: greg, poststrat, raking")
        kind = adjustment["kind"]
        n = self._n
        adj = dict(adjustment)

        def vec(name, dtype=float):
            if name not in adj:
                raise DesignError(f"{kind} adjustment needs {name!r}", code="design.bad_adjustment")
            v = np.asarray(adj[name], dtype=dtype)
            if v.shape[0] != n:
                raise DesignError(f"{kind} adjustment: {name!r} has {v.shape[0]} rows, design has {n}",
                                  code="design.bad_adjustment")
            return v

        if kind == "greg":
            X = vec("X")
            if X.ndim == 1:
                X = X[:, None]
            adj["X"] = X
            adj["w"] = vec("w")
            if np.any(adj["w"] == 0):
                raise DesignError("greg adjustment: w has zeros", code="design.bad_adjustment")
            adj["_Q"] = np.linalg.qr(X, mode="reduced")[0]
            # rank-deficient X: use the column space from an SVD instead
            if np.linalg.matrix_rank(X) < X.shape[1]:
                U, s, _ = np.linalg.svd(X, full_matrices=False)
                adj["_Q"] = U[:, s > s.max() * 1e-10]
        elif kind == "poststrat":
            adj["cells"] = lin.factorize(vec("cells", dtype=np.int64))[0]
            adj["w"] = vec("w")
            if "oldw" in adj and adj["oldw"] is not None:
                adj["oldw"] = vec("oldw")
        elif kind == "raking":
            margins = adj.get("margins")
            if not margins:
                raise DesignError("raking adjustment needs 'margins'", code="design.bad_adjustment")
            ms = []
            for m in margins:
                m = np.asarray(m)
                if m.shape[0] != n:
                    raise DesignError("raking margin of wrong length", code="design.bad_adjustment")
                ms.append(lin.factorize(m)[0])
            adj["margins"] = ms
            ws = adj.get("w")
            if isinstance(ws, (list, tuple)):
                if len(ws) != len(ms):
                    raise DesignError("raking: one weight vector per margin", code="design.bad_adjustment")
                adj["w"] = [np.asarray(x, dtype=float) for x in ws]
            else:
                adj["w"] = vec("w")
        else:
            raise DesignError(f"unknown adjustment kind {kind!r}", code="design.bad_adjustment",
                              hint="kinds: greg, poststrat, raking")
        return adj

    # ------------------------------------------------------------------ replicate designs
    def to_replicate(self, type: str = "JK1", *, replicates: int | None = None, seed: int | None = None,
                     rho: float | None = None, mse: bool = False) -> "SurveyDesign":
        """Replicate-weight version of this design (R's ``as.svrepdesign``).

        type: "JK1" (delete-one-PSU jackknife, unstratified designs; scale (n-1)/n, times
        (1-n/N) with a stage-1 fpc), "JKn" (stratified delete-one; rscales (n_h-1)/n_h,
        times (1-n_h/N_h) with fpc), "BRR" (exactly 2 PSUs per stratum; R's brrweights with R's
        Hadamard matrices, so the replicates are R's), "Fay" (BRR with factors 2-rho/rho, ``rho`` default 0.5, scale
        1/(R(1-rho)^2)), "bootstrap" (R's Canty–Davison bootstrap, stage-1 fpc used;
        scale nbar/((nbar-1)(R-1))) or "subbootstrap" (Rao–Wu n_h-1 bootstrap; scale
        1/(R-1)); for the bootstraps ``replicates`` (default 200) draws, seeded by
        ``seed``. mse=True centres the replicates on the full-sample estimate (R's
        ``mse=TRUE``). As R: fpcs after the first stage are dropped (with a warning), and
        BRR, Fay and subbootstrap drop the fpc (with a warning).
        Calibration records are not carried over (replicates are rescaled by the
        final weights only): post-stratify, rake or calibrate the replicate design
        instead (``weighting.*`` re-weight every replicate, as R).
        """
        import warnings

        from . import replicate

        if self._rep is not None:
            raise DesignError("this design already has replicate weights", code="design.already_replicate")
        if self._domain is not None or self._spec.get("view"):
            raise DesignError("build the replicate design from the full design, then subset()",
                              code="design.subset_replicate")
        if type not in REPLICATE_TYPES or type in USER_ONLY_TYPES:
            raise DesignError(f"unknown replicate type {type!r}", code="design.invalid_option",
                              hint="one of JK1, JKn, BRR, Fay, bootstrap, subbootstrap")
        boot = type in ("bootstrap", "subbootstrap")
        if not boot and (replicates is not None or seed is not None):
            raise DesignError(f"replicates/seed apply to the bootstraps, not to type={type!r}",
                              code="design.invalid_option",
                              hint=f"{type} has a fixed number of replicates; drop replicates=/seed=")
        if rho is not None and type != "Fay":
            raise DesignError(f"rho applies to Fay's BRR, not to type={type!r}", code="design.invalid_option",
                              hint="use type='Fay' with rho in (0, 1)")
        if type == "Fay":
            rho = 0.5 if rho is None else float(rho)
            if not 0 < rho < 1:
                raise DesignError(f"Fay's rho must be in (0, 1), got {rho}", code="design.invalid_option",
                                  hint="rho=0 is plain BRR: type='BRR'")
        has_fpc = bool(np.any(self._stages[0].frac_h > 0))
        if len(self._stages) > 1:
            warnings.warn("to_replicate: finite population corrections after the first stage are "
                          "dropped (as R's as.svrepdesign)", UserWarning, stacklevel=2)
        if self._adjustments:
            warnings.warn("to_replicate: the calibration record is not carried over - the replicates "
                          "are rescaled by the final weights only; re-calibrate the replicate design "
                          "for a calibration-aware replicate variance", UserWarning, stacklevel=2)
        if has_fpc and type in ("BRR", "Fay", "subbootstrap"):
            warnings.warn(f"to_replicate: the finite population correction is dropped for {type} "
                          "(as R's as.svrepdesign)", UserWarning, stacklevel=2)
        info = replicate.make_replicates(self, type, replicates=200 if replicates is None else replicates,
                                         seed=seed, rho=0.0 if rho is None else rho)
        info["mse"] = bool(mse)
        return self._derive(_rep=info, _adjustments=(), _degf_cache=None)

    @classmethod
    def from_replicate_weights(cls, df: pd.DataFrame, weights: str, repweights,
                               type: str = "other", scale: float | None = None,
                               rscales=None, mse: bool = False, rho: float | None = None,
                               combined_weights: bool = True, fpc=None,
                               fpctype: str | None = None) -> "SurveyDesign":
        """A design from user-supplied replicate weight columns (R's ``svrepdesign``).

        repweights: list of column names, or a regular expression matched against the
        column names. combined_weights=True: the columns are analysis weights (R's
        default); False: they are multipliers of ``weights``. scale/rscales default as
        R: JK1 (R-1)/R, BRR 1/R, Fay 1/(R(1-rho)^2), bootstrap 1/(R-1), JKn/other 1
        (JKn needs rscales); "successive-difference" and "ACS" 4/R, "JK2" 1 (these three
        fix scale and rscales: giving them is an error, where R warns and ignores them).
        fpc: one value per replicate (R's ``svrepdesign(fpc=, fpctype=)``), the sampling
        fraction (fpctype="fraction": rscales times 1 - fpc) or the correction itself
        (fpctype="correction": rscales times fpc); for JK1, JKn and other (R refuses it
        for BRR, Fay, JK2, ACS, successive-difference; bootstraps need none).
        """
        import re

        base = cls(df, weights=weights, lonely_psu="remove")
        if isinstance(repweights, str):
            cols = [c for c in df.columns if re.search(repweights, str(c))]
        else:
            cols = list(repweights)
        if not cols:
            raise DesignError(f"no replicate weight columns match {repweights!r}",
                              code="design.no_repweights", hint="pass a list of columns or a regex")
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DesignError(f"replicate weight column {missing[0]!r} not found",
                              code="design.unknown_column", where=f"column {missing[0]!r}")
        R = df[cols].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(R).any():
            bad = cols[int(np.flatnonzero(np.isnan(R).any(axis=0))[0])]
            raise DesignError(f"replicate weights have {int(np.isnan(R).sum())} missing values",
                              code="design.repweights_missing", where=f"column {bad!r}",
                              hint="replicate weights must be complete")
        if not combined_weights:
            R = R * base._w[:, None]
        nrep = R.shape[1]
        if type not in REPLICATE_TYPES:
            raise DesignError(f"unknown replicate type {type!r}", code="design.invalid_option",
                              hint="one of " + ", ".join(REPLICATE_TYPES))
        if rho is not None and type != "Fay":
            raise DesignError(f"rho applies to Fay's BRR, not to type={type!r}", code="design.invalid_option",
                              hint="pass type='Fay' (or give scale= directly)")
        if type in ("successive-difference", "ACS", "JK2"):
            if scale is not None or rscales is not None:
                raise DesignError(f"type={type!r} fixes scale and rscales; do not give them",
                                  code="design.invalid_option",
                                  hint="successive-difference and ACS use scale 4/R, JK2 scale 1 (as R)")
            scale = 4 / nrep if type != "JK2" else 1.0
        if scale is None:
            scale = {"JK1": (nrep - 1) / nrep, "BRR": 1 / nrep,
                     "Fay": 1 / (nrep * (1 - (rho if rho is not None else 0.5)) ** 2),
                     "bootstrap": 1 / (nrep - 1), "subbootstrap": 1 / (nrep - 1)}.get(type, 1.0)
        if rscales is None:
            if type == "JKn":
                raise DesignError("JKn replicate weights need rscales ((n_h-1)/n_h per replicate)",
                                  code="design.rscales_missing")
            rscales = np.ones(nrep)
        rscales = np.asarray(rscales, dtype=float).reshape(-1)
        if rscales.size != nrep:
            raise DesignError(f"{rscales.size} rscales for {nrep} replicates", code="design.rscales_length")
        if fpc is not None or fpctype is not None:
            if fpc is None or fpctype not in ("fraction", "correction"):
                raise DesignError("fpc needs fpctype='fraction' or 'correction' (and fpctype needs fpc)",
                                  code="design.invalid_option",
                                  hint="fpctype='fraction': sampling fractions; 'correction': 1 - fraction")
            if type in ("BRR", "Fay", "JK2", "ACS", "successive-difference"):
                raise DesignError(f"fpc is not available for type={type!r} (as R)", code="design.invalid_option")
            if type in ("bootstrap", "subbootstrap"):
                raise DesignError("a separate fpc is not needed for the bootstrap (as R)",
                                  code="design.invalid_option")
            f = np.asarray(fpc, dtype=float).reshape(-1)
            if f.size == 1:
                f = np.repeat(f, nrep)
            if f.size != nrep:
                raise DesignError(f"{f.size} fpc values for {nrep} replicates", code="design.fpc_length",
                                  hint="one value per replicate (or one for all)")
            if np.any(~np.isfinite(f)) or np.any(f < 0) or np.any(f > 1):
                raise DesignError("fpc values must be in [0, 1]", code="design.fpc_invalid")
            rscales = rscales * (1 - f if fpctype == "fraction" else f)
        info = dict(type=type, repw=R, scale=float(scale), rscales=rscales, mse=bool(mse), factors=None)
        return base._derive(_rep=info, _degf_cache=None)

    def mean(self, var, by=None, *, deff: bool | str = False, level: float = 0.95, df=None,
             na_rm: bool = True) -> pd.DataFrame:
        """Weighted mean(s) of numeric variable(s) with design-based SE (R ``svymean``).
        See :func:`diaspora_survey.survey.estimators.mean`."""
        from . import estimators as estimate
        return estimate.mean(self, var, by=by, deff=deff, level=level, df=df, na_rm=na_rm)

    def total(self, var, by=None, *, deff: bool | str = False, level: float = 0.95, df=None,
              na_rm: bool = True) -> pd.DataFrame:
        """Estimated population total(s) (R ``svytotal``); categorical variables give a
        total per level. See :func:`diaspora_survey.survey.estimators.total`."""
        from . import estimators as estimate
        return estimate.total(self, var, by=by, deff=deff, level=level, df=df, na_rm=na_rm)

    def proportion(self, var, by=None, *, deff: bool | str = False, level: float = 0.95, df=None,
                   na_rm: bool = True) -> pd.DataFrame:
        """Share of every level of a categorical variable (R ``svymean(~factor)``)."""
        from . import estimators as estimate
        return estimate.proportion(self, var, by=by, deff=deff, level=level, df=df, na_rm=na_rm)

    def ratio(self, numerator, denominator, by=None, *, level: float = 0.95, df=None,
              na_rm: bool = True) -> pd.DataFrame:
        """Ratio of two totals (R ``svyratio``)."""
        from . import estimators as estimate
        return estimate.ratio(self, numerator, denominator, by=by, level=level, df=df, na_rm=na_rm)

    def var(self, var, by=None, *, level: float = 0.95, df=None, na_rm: bool = True,
            covariance: bool = False) -> pd.DataFrame:
        """Population variance estimate (R ``svyvar``); covariance=True: the covariance
        matrix of several variables with SEs (R's ``svyvar(~a+b)``)."""
        from . import estimators as estimate
        return estimate.var(self, var, by=by, level=level, df=df, na_rm=na_rm, covariance=covariance)

    def quantile(self, var, q=0.5, by=None, *, qrule: str = "math", level: float = 0.95, df=None,
                 na_rm: bool = True, interval_type: str = "mean") -> pd.DataFrame:
        """Quantiles with Woodruff (or xlogit, beta, asin, score) intervals (R
        ``svyquantile``, survey >= 4.1, ``interval.type``)."""
        from . import estimators as estimate
        return estimate.quantile(self, var, q, by=by, qrule=qrule, level=level, df=df, na_rm=na_rm,
                                 interval_type=interval_type)

    def ciprop(self, var, by=None, *, method: str = "logit", level: float = 0.95, df=None,
               level_of=None, na_rm: bool = True) -> pd.DataFrame:
        """Confidence interval for a proportion (R ``svyciprop``)."""
        from . import estimators as estimate
        return estimate.ciprop(self, var, by=by, method=method, level=level, df=df,
                               level_of=level_of, na_rm=na_rm)

    def chisq(self, a: str, b: str, *, statistic: str = "F", na_rm: bool = True) -> pd.Series:
        """Rao–Scott test of association in a two-way table (R ``svychisq``; statistic
        "F", "Chisq", "Wald", "adjWald", "saddlepoint", "lincom")."""
        from . import estimators as estimate
        return estimate.chisq(self, a, b, statistic=statistic, na_rm=na_rm)

    def glm(self, formula: str, family: str = "gaussian", *, level: float = 0.95):
        """Design-based GLM (R ``svyglm``). See :func:`diaspora_survey.survey.glm.svyglm`."""
        from .glm import svyglm
        return svyglm(self, formula, family=family, level=level)

    def contrast(self, result: pd.DataFrame, weights, *, level: float = 0.95, df=None) -> pd.DataFrame:
        """Linear combination(s) of the rows of an estimate (R ``svycontrast``)."""
        from . import estimators as estimate
        return estimate.contrast(result, weights, level=level, df=df)

    def difference(self, result: pd.DataFrame, a, b, *, level: float = 0.95, df=None) -> pd.DataFrame:
        """Row ``a`` minus row ``b`` of an estimate, with SE (e.g. wave 2 - wave 1)."""
        from . import estimators as estimate
        return estimate.contrast(result, {a: 1.0, b: -1.0}, level=level, df=df)
