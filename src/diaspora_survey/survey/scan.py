"""Out-of-core and distributed designs: the estimators of :class:`SurveyDesign` computed where
the data live (DuckDB, embedded, by default; Dask; or pandas), contract ../shared/DESIGN.md §Scale.

``ScanDesign(source, weights=, strata=, psu=, fpc=, nest=, lonely_psu=, engine=)`` takes a
parquet file / folder / glob, a DuckDB relation, a Dask or a pandas DataFrame
(:func:`diaspora_survey.io.engine.open_source`) and offers ``mean``, ``total``,
``proportion`` and ``ratio`` with ``by=``, ``deff=``, ``level=``, ``df=``, ``na_rm=`` and
``subset(where)`` domains, returning exactly the frames of the in-memory estimators.

How (one GROUP BY per estimate)
-------------------------------
Taylor linearisation needs the data only through totals of the scores over PSUs (Lumley
2010, §2.2; R ``svyrecvar``). All four estimators are smooth functions of weighted totals,
so their scores' PSU totals are sums over the *cells* stratum × PSU × fpc × by-groups ×
levels of the categorical variables × "all variables present" × domain. The engine returns,
per cell, Σw, Σw·y (each numeric y), Σw·y² (for deff), the row count and the count of
nonzero weights (:meth:`~diaspora_survey.io.engine.Source.group_sums`, one pass). numpy then
builds a *cell design*: one row per cell with weight Σw and value Σw·y/Σw, which has the
same weighted totals in every group and level and the same PSU totals of every score as the
row-level design, hence the same estimates, covariance, degrees of freedom (PSUs and strata
with a nonzero weight), lonely-PSU rules and fpc. The in-memory kernels
(:mod:`.estimators` on a :class:`.design.SurveyDesign` of the cells) do the rest; the row
counts ``n`` and the SRS variance of ``deff`` (which depend on rows, not cells) are taken
from the counted cells and Σw·y².

Element sampling (``psu=None``, R's ``id=~1``: every row its own PSU)
--------------------------------------------------------------------
A PSU per row would make the cell table as long as the data. Instead the cells are stratum ×
fpc × by-groups × levels × flags (their number independent of the rows) and the engine adds
the second moments: the centred cross-products S_c of v_i = (w_i, w_i·(y_i1 - s_1), ...)
over the cell's rows (DuckDB ``covar_pop``: one pass, no cancellation; s_j a shift near the
data, the median of the first values, so an offset of y does not cancel either). Within a
cell every score is linear, z_i = λ_c·v_i, hence per stratum

    Σ_{i∈h} (z_i - z̄_h)(z_i - z̄_h)' = Σ_{c∈h} [λ_c S_c λ_c' + n_c (ζ_c - z̄_h)(ζ_c - z̄_h)']

with ζ_c the cell mean of the scores and z̄_h the stratum mean over all its n_h rows (weight
0, missing, outside the domain included, as SurveyDesign counts its units): the Taylor
covariance Σ_h (1 - f_h) n_h/(n_h - 1) (...) of R ``svyrecvar`` without forming the rows'
scores, with the fpc, lonely-PSU rules (:func:`.linearisation.stratum_scales`, shared with
SurveyDesign), df = #rows - #strata (in a domain or group: the rows and strata with a
nonzero weight) and deff as the in-memory design (:class:`_ElementCells`).

Levels of categorical variables and groups come in the order of the in-memory path: the
categories of a pandas Categorical stored in the parquet file (or a Dask categorical, a
DuckDB ENUM), sorted values otherwise (:meth:`~diaspora_survey.io.engine.Source.category_dtype`).

R equivalent: ``svydesign(ids=~psu, strata=~h, weights=~w, fpc=~N, data="table",
dbtype="DuckDB", dbname=...)`` then ``svymean``/``svytotal``/``svyratio``/``svyby``.
"""
from __future__ import annotations

import ast
import re

import numpy as np
import pandas as pd

from ..errors import DesignError, EstimationError
from ..io.engine import open_source
from . import estimators as est
from . import linearisation as lin
from ._formula import check_condition
from .design import SurveyDesign, _distinct_per_group, den_terms
from .linearisation import LONELY_RULES

_W, _N, _NZ, _OK, _DOM = "__w", "__n", "__nnz", "__ok", "__dom"


def _one(x, role):
    if isinstance(x, (list, tuple)):
        if len(x) > 1:
            raise DesignError(f"ScanDesign supports single-stage designs; {role} has {len(x)} stages",
                              code="design.multistage_scan",
                              hint="use SurveyDesign (in memory) for multistage designs, or give the "
                                   "first-stage column only (R's ultimate-cluster variance without fpc)")
        return x[0] if x else None
    return x


class ScanDesign:
    """A single-stage Taylor design over data computed by an engine (see the module doc).

    Parameters are those of :class:`SurveyDesign` (single stage: one strata, psu and fpc
    column) plus ``engine`` (``"duckdb"`` default for files and relations, ``"dask"``,
    ``"pandas"``; None: from the source) and ``client`` (a DuckDB connection or a
    ``distributed.Client``). Design columns are checked in the engine: weights numeric,
    non-negative and never NULL; strata, PSU and fpc never NULL.

    >>> d = ScanDesign("survey.parquet", weights="w", strata="h", psu="psu")  # doctest: +SKIP
    >>> d.mean("income", by="country")                                        # doctest: +SKIP
    """

    def __init__(self, source, weights=None, strata=None, psu=None, fpc=None, nest: bool = False,
                 lonely_psu: str = "fail", engine: str | None = None, client=None, *, _domain=()):
        if lonely_psu not in LONELY_RULES:
            raise DesignError(f"unknown lonely_psu rule {lonely_psu!r}", code="design.invalid_option",
                              hint="one of " + ", ".join(LONELY_RULES))
        self.source = source if hasattr(source, "group_sums") else open_source(source, engine, client=client)
        self.weights = _one(weights, "weights")
        self.strata = _one(strata, "strata")
        self.psu = _one(psu, "psu")
        self.fpc = _one(fpc, "fpc")
        self.nest = bool(nest)
        self.lonely_psu = lonely_psu
        self._domain = tuple(_domain)
        self._shifts = {}          # psu=None: a shift per numeric variable (see _shift)
        if not _domain:
            src = self.source
            if self.weights is not None:
                src.check_design_column(self.weights, "weights", numeric=True, nonnegative=True, notnull=True)
            for col, role in ((self.strata, "strata"), (self.psu, "psu")):
                if col is not None:
                    src.check_design_column(col, role, notnull=True)
            if self.fpc is not None:
                src.check_design_column(self.fpc, "fpc", numeric=True, notnull=True)

    @property
    def engine(self) -> str:
        return self.source.engine

    def __repr__(self) -> str:
        dom = f", domain={' & '.join(d[0] for d in self._domain)}" if self._domain else ""
        return (f"<ScanDesign {self.engine}: {self.source.label}, weights={self.weights}, "
                f"strata={self.strata}, psu={self.psu}, fpc={self.fpc}{dom}>")

    # ------------------------------------------------------------------ domains
    def subset(self, where) -> "ScanDesign":
        """Domain design (R ``subset.survey.design``): rows outside get weight 0 but their
        PSUs and strata stay in the variance. ``where``: a dict ``{column: value or list of
        values}`` or a condition string in the syntax of :meth:`SurveyDesign.subset`
        (columns, values, comparisons, ``in`` lists, and/or/not); NULL compares as in pandas
        (``x != 1`` is true for a missing x, every other comparison false)."""
        cond = _condition(where, self.source.columns)
        new = object.__new__(ScanDesign)
        new.__dict__.update(self.__dict__)
        new._domain = self._domain + (cond,)
        return new

    # ------------------------------------------------------------------ the engine pass
    def _cells(self, numeric: list[str], categorical: list[str], by: list[str], squares: bool,
               derive=None):
        """One grouped pass -> the cell design (SurveyDesign over the cell table; for
        ``psu=None`` an :class:`_ElementCells`, see :meth:`_element_cells`) and the table.
        ``derive(cells)`` may add columns computed from the keys (e.g. age bands from ages)
        before the design is built (same rows, same order)."""
        src = self.source
        src.check_columns(numeric + categorical + by, "estimate")
        flags = {}
        if numeric:
            flags[_OK] = (" AND ".join(_notnull_sql(src, v) for v in numeric),
                          lambda df, cols=tuple(numeric): df[list(cols)].notna().all(axis=1))
        if self._domain:
            sqls = [d[1] for d in self._domain]
            funcs = [d[2] for d in self._domain]
            flags[_DOM] = (" AND ".join(f"COALESCE(({s}), FALSE)" for s in sqls),
                           lambda df, fs=tuple(funcs): np.logical_and.reduce([_as_mask(f(df)) for f in fs]))
        src = src.with_flags(flags)
        if self.psu is None:
            return self._element_cells(src, list(flags), numeric, categorical, by, squares, derive)
        psu = self.psu
        keys = []
        for k in [self.strata, psu, self.fpc] + by + categorical + list(flags):
            if k is not None and k not in keys:
                keys.append(k)
        w = self.weights if self.weights is not None else 1
        sums = {_W: w, _N: 1, _NZ: ("ne", self.weights, 0) if self.weights is not None else 1}
        for j, v in enumerate(numeric):
            sums[f"__s{j}"] = (w, v)
            if squares:                                    # Σw·(y - s)², for deff (no cancellation)
                sh = self._shift(v)
                sums[f"__q{j}"] = (w, ("shift", v, sh), ("shift", v, sh))
        cells = self._categorise(src.group_sums(keys, sums), by + categorical)
        if self.weights is None and self.fpc is not None:     # R: weights implied by the fpc
            imp = SurveyDesign(cells, weights=None, strata=self.strata, psu=psu, fpc=self.fpc,
                               nest=self.nest, lonely_psu=self.lonely_psu).weights
            for c in [_W] + [c for c in cells.columns if c.startswith(("__s", "__q"))]:
                cells[c] = cells[c] * imp
        ok = cells[_OK].to_numpy(dtype=bool) if numeric else np.ones(len(cells), dtype=bool)
        wsum = cells[_W].to_numpy()
        for j, v in enumerate(numeric):
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where(wsum != 0, cells[f"__s{j}"].to_numpy() / wsum, 0.0)
            cells[v] = np.where(ok, val, np.nan)
        if derive is not None:
            cells = derive(cells)
        design = SurveyDesign(cells, weights=_W, strata=self.strata, psu=psu, fpc=self.fpc,
                              nest=self.nest, lonely_psu=self.lonely_psu)
        return self._in_domain(design, cells), cells

    def _in_domain(self, design, cells):
        if self._domain:
            dom = cells[_DOM].to_numpy(dtype=bool)
            if not dom.any():
                raise EstimationError("the subset is empty", code="estimate.empty_domain",
                                      where=self.source.label, hint="no row satisfies the condition")
            design = design.subset(dom)
        return design

    def _categorise(self, cells, cols):
        """Key columns the source stores as categories (a parquet column written from a
        pandas Categorical, a Dask categorical, a DuckDB ENUM) get that dtype, so that levels
        and groups come in the category order of the in-memory path, not sorted."""
        for c in dict.fromkeys(cols):
            dt = self.source.category_dtype(c)
            if dt is None or cells[c].dtype == dt:
                continue
            have = set(dt.categories)
            extra = [v for v in pd.unique(cells[c].dropna()) if v not in have]
            if extra:      # e.g. values of a page that fell back from dictionary encoding
                dt = pd.CategoricalDtype(list(dt.categories) + sorted(extra), ordered=dt.ordered)
            cells[c] = cells[c].astype(object).astype(dt)
        return cells

    # ------------------------------------------------------------------ psu=None: element sampling
    def _shift(self, var) -> float:
        """A value near the data of ``var`` (median of its first non-missing values): the
        engine's second moments are of w·(y - shift), so a large offset of y (a year, an
        income level) does not cancel in the variance. Looked up once per variable."""
        if var not in self._shifts:                       # (shared with subset() designs)
            v = self.source.head_values(var, 1000)
            self._shifts[var] = float(np.median(v)) if v.size else 0.0
        return self._shifts[var]

    def _element_cells(self, src, flags, numeric, categorical, by, squares, derive):
        """psu=None (R's ``id=~1``): every row is a PSU. One grouped pass returns, per cell
        stratum × fpc × by × levels × flags (independent of the number of rows): the row count
        n_c, Σw, Σw·y, and the centred cross-products S_c of the row vector
        v = (w, w·(y_1 - s_1), ..., w·(y_p - s_p)). Every score of mean/total/proportion/ratio
        is z_i = λ_c·v_i within a cell, so per stratum
        Σ_{i∈h} (z_i - z̄_h)(z_i - z̄_h)' = Σ_{c∈h} [λ_c S_c λ_c' + n_c (ζ_c - z̄_h)(ζ_c - z̄_h)'],
        ζ_c = λ_c·v̄_c, z̄_h = Σ n_c ζ_c / n_h (:func:`_element_vcov`); n_h counts all rows of
        the stratum (weight 0, missing, outside the domain: as SurveyDesign's units)."""
        keys = list(dict.fromkeys(k for k in [self.strata, self.fpc] + by + categorical + flags
                                  if k is not None))
        w = self.weights if self.weights is not None else 1
        sums = {_W: w, _N: 1, _NZ: ("ne", self.weights, 0) if self.weights is not None else 1}
        for j, v in enumerate(numeric):
            sums[f"__s{j}"] = (w, v)
        shifts = [self._shift(v) for v in numeric]
        for j, (v, sh) in enumerate(zip(numeric, shifts)):
            if squares:                                    # Σw·(y - s)², for deff
                sums[f"__q{j}"] = (w, ("shift", v, sh), ("shift", v, sh))
        ops = [w] + [(w, ("shift", v, s)) for v, s in zip(numeric, shifts)]
        J = len(ops)
        scatter = {f"__S{a}_{b}": (ops[a], ops[b]) for a in range(J) for b in range(a, J)}
        cells = self._categorise(src.group_sums(keys, sums, scatter=scatter), by + categorical)
        C = len(cells)
        n_c = cells[_N].to_numpy(dtype=float)
        if self.strata is None:
            hc, hlab = np.zeros(C, dtype=np.int64), None
        else:
            hc, hlab = pd.factorize(cells[self.strata])
            hc = hc.astype(np.int64)
        H = int(hc.max()) + 1 if C else 0
        n_h = np.bincount(hc, weights=n_c, minlength=H)

        def label(h):
            return "(whole sample)" if hlab is None else f"{hlab[h]!s} (column {self.strata!r})"

        fpc_h, fraction = self._stratum_fpc(cells, hc, H, label)
        scale_h, center_h, nan_h, frac = lin.stratum_scales(
            n_h, fpc_h, fraction, np.ones(H), self.lonely_psu, 1, label, None, self.fpc or "fpc")
        su = np.column_stack([cells[_W].to_numpy(dtype=float)]
                             + [cells[f"__s{j}"].to_numpy(dtype=float) for j in range(len(numeric))])
        S = np.empty((C, J, J))
        for a in range(J):
            for b in range(a, J):
                S[:, a, b] = S[:, b, a] = cells[f"__S{a}_{b}"].to_numpy(dtype=float)
        if self.weights is None and self.fpc is not None:     # R: weights implied by the fpc
            imp = np.where(frac > 0, 1.0 / np.where(frac > 0, frac, 1.0), 1.0)[hc]
            for c in [_W] + [c for c in cells.columns if c.startswith(("__s", "__q"))]:
                cells[c] = cells[c] * imp
            su = su * imp[:, None]
            S = S * (imp ** 2)[:, None, None]
        ok = cells[_OK].to_numpy(dtype=bool) if numeric else np.ones(C, dtype=bool)
        wsum = cells[_W].to_numpy()
        values = []
        for j, v in enumerate(numeric):
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where(wsum != 0, cells[f"__s{j}"].to_numpy() / wsum, 0.0)
            cells[v] = np.where(ok, val, np.nan)
            values.append(np.where(ok, val, 0.0))
        cells = cells.drop(columns=list(scatter))
        if derive is not None:
            cells = derive(cells)
            if len(cells) != C:
                raise EstimationError("internal: derive() changed the cell table's rows",
                                      code="estimate.internal", hint="add columns only")
        info = dict(hc=hc, H=H, n=n_c, n_h=n_h, n_rows=float(n_c.sum()), nnz=cells[_NZ].to_numpy(dtype=float),
                    scale_h=scale_h, center_h=center_h, nan_h=nan_h, sums=su, S=S,
                    shift=np.array([0.0] + shifts), values=values, pairs=None)
        design = _ElementCells(cells, info, self.lonely_psu)
        return self._in_domain(design, cells), cells

    def _stratum_fpc(self, cells, hc, H, label):
        """The fpc of every stratum from the cells (checks as SurveyDesign: > 0, population
        sizes or fractions, constant within strata) -> (fpc_h or None, is_fraction)."""
        if self.fpc is None:
            return None, False
        name = self.fpc
        v = cells[name].to_numpy(dtype=float)
        if (v <= 0).any():
            raise DesignError(f"fpc {name!r} has values <= 0", code="design.fpc_invalid",
                              where=f"{self.source.label}, column {name!r}",
                              hint="fpc is a population size (>= 1) or a fraction in (0, 1]")
        fraction = not bool((v > 1).any())
        if not fraction and (v < 1).any():
            raise DesignError("fpc mixes population sizes (> 1) and sampling fractions (< 1)",
                              code="design.fpc_mixed", where=f"{self.source.label}, column {name!r}",
                              hint="use population sizes everywhere, or fractions everywhere")
        lo = np.full(H, np.inf)
        hi = np.full(H, -np.inf)
        np.minimum.at(lo, hc, v)
        np.maximum.at(hi, hc, v)
        if (lo != hi).any():
            h = int(np.flatnonzero(lo != hi)[0])
            raise DesignError(f"{name!r} varies within stratum {label(h)!s} at stage 1",
                              code="design.fpc_varies", where=f"{self.source.label}, column {name!r}",
                              hint="fpc must be constant within strata: the population size "
                                   "(or sampling fraction) of the stratum at that stage")
        return lo, fraction

    def _split(self, vars_, categorical):
        numeric, cats = [], []
        for v in vars_:
            self.source.check_columns([v], "estimate")
            is_cat = categorical if categorical is not None else not self.source.is_numeric(v)
            (cats if is_cat else numeric).append(v)
        return numeric, cats

    # ------------------------------------------------------------------ estimators
    def _mean_total(self, var, by, *, kind, deff, level, df, na_rm, categorical=None):
        vars_ = est._as_list(var)
        if not vars_:
            raise EstimationError("no variable given", code="estimate.no_variable")
        by_ = est._as_list(by)
        if deff is not False and deff is not None and deff is not True and deff != "replace":
            raise EstimationError(f"deff={deff!r} is not a design-effect type", code="estimate.bad_deff",
                                  hint="deff=True (against SRS without replacement) or deff='replace'")
        want_deff = deff is not False and deff is not None
        numeric, cats = self._split(vars_, categorical)
        design, cells = self._cells(numeric, cats, by_, squares=want_deff)
        op = {v: j + 1 for j, v in enumerate(numeric)}       # operands of the element design
        with _pairs(design, [op.get(v, 0) for v in vars_], [0] if kind == "mean" else None):
            res = est._mean_total(design, vars_, by, kind=kind, deff=False, level=level, df=df,
                                  na_rm=na_rm, categorical=categorical)
        blocks, valid = est._blocks(design, vars_, categorical)
        g, _ = est._groups(design, by)
        G = int(g.max()) + 1 if (g >= 0).any() else 0
        k = len(est._expand(blocks))
        res["n"] = np.repeat(self._counts(design, cells, g, valid, G), k).astype(np.int64)
        if want_deff:
            V = np.asarray(res.attrs["vcov"])
            shift = [self._shift(v) for v in numeric]     # the __q sums' shifts (both designs)
            d = _deff(design, cells, blocks, numeric, valid, g, G, k, V, kind, replace=(deff == "replace"),
                      shift=shift)
            pos = list(res.columns).index("cv") + 1
            res.insert(pos, "deff", d)
        return res

    @staticmethod
    def _counts(design, cells, g, valid, G):
        ok = valid & (g >= 0) & design.domain_mask
        return np.bincount(g[ok], weights=cells[_N].to_numpy()[ok], minlength=G).round()

    def mean(self, var, by=None, *, deff=False, level: float = 0.95, df=None, na_rm: bool = True):
        """Weighted mean(s) with Taylor SE (R ``svymean``); as :meth:`SurveyDesign.mean`."""
        return self._mean_total(var, by, kind="mean", deff=deff, level=level, df=df, na_rm=na_rm)

    def total(self, var, by=None, *, deff=False, level: float = 0.95, df=None, na_rm: bool = True):
        """Estimated population total(s) (R ``svytotal``); as :meth:`SurveyDesign.total`."""
        return self._mean_total(var, by, kind="total", deff=deff, level=level, df=df, na_rm=na_rm)

    def proportion(self, var, by=None, *, deff=False, level: float = 0.95, df=None, na_rm: bool = True):
        """Share of every level (R ``svymean(~factor)``); as :meth:`SurveyDesign.proportion`."""
        return self._mean_total(var, by, kind="mean", deff=deff, level=level, df=df, na_rm=na_rm,
                                categorical=True)

    def ratio(self, numerator, denominator, by=None, *, level: float = 0.95, df=None, na_rm: bool = True):
        """Ratio of totals Σw·y / Σw·x (R ``svyratio``); as :meth:`SurveyDesign.ratio`."""
        nums, dens = est._as_list(numerator), est._as_list(denominator)
        numeric = list(dict.fromkeys(nums + dens))
        for v in numeric:
            self.source.check_columns([v], "estimate")
            if not self.source.is_numeric(v):
                raise EstimationError(f"variable {v!r} is not numeric", code="estimate.not_numeric",
                                      where=f"{self.source.label}, column {v}")
        design, cells = self._cells(numeric, [], est._as_list(by), squares=False)
        op = {v: j + 1 for j, v in enumerate(numeric)}
        pairs = [(i, j) for i in nums for j in dens]
        with _pairs(design, [op[i] for i, _ in pairs], [op[j] for _, j in pairs]):
            res = est.ratio(design, nums, dens, by=by, level=level, df=df, na_rm=na_rm)
        valid = cells[_OK].to_numpy(dtype=bool)
        g, _ = est._groups(design, by)
        G = int(g.max()) + 1 if (g >= 0).any() else 0
        res["n"] = np.repeat(self._counts(design, cells, g, valid, G),
                             len(nums) * len(dens)).astype(np.int64)
        return res


class _pairs:
    """Context: the operand of every (value, key) pair the next estimator passes to
    ``_linear`` of an :class:`_ElementCells` design (0: the weight, j: w·y_j); a no-op for
    other designs."""

    def __init__(self, design, num_ops, den_ops):
        self.info = getattr(design, "_cellinfo", None)
        self.spec = (list(num_ops), None if den_ops is None else list(den_ops))

    def __enter__(self):
        if self.info is not None:
            self.info["pairs"] = self.spec

    def __exit__(self, *exc):
        if self.info is not None:
            self.info["pairs"] = None


class _ElementCells(SurveyDesign):
    """The cell table of an element-sampled design (``psu=None``: every row its own PSU) as a
    :class:`SurveyDesign` for the in-memory estimators: estimates from the cells' weight totals
    (as any cell design); the Taylor covariance from the cells' moments
    (:func:`_element_vcov`, the rows' PSU scores never formed); degrees of freedom from row
    counts: #rows - #strata, in a domain or group the rows with a nonzero weight (R's
    ``degf(subset(...))``), as SurveyDesign(..., psu=None) counts them."""

    __slots__ = ("_cellinfo",)

    def __init__(self, cells, info, lonely_psu):
        super().__init__(cells, weights=_W, lonely_psu="remove")   # cells as units: weights only
        object.__setattr__(self, "_cellinfo", info)
        object.__setattr__(self, "_lonely", lonely_psu)

    def _derive(self, **changes):
        new = object.__new__(type(self))
        for k in SurveyDesign.__slots__ + _ElementCells.__slots__:
            object.__setattr__(new, k, getattr(self, k, None))
        for k, v in changes.items():
            object.__setattr__(new, k, v)
        object.__setattr__(new, "_frozen", True)
        return new

    @property
    def degf(self) -> int:
        info = self._cellinfo
        if self._domain is None:
            return int(info["n_rows"] - info["H"])
        return int(self.domain_degf(np.zeros(self._n, dtype=np.int64), 1)[0])

    def domain_degf(self, groups, n_groups):
        info = self._cellinfo
        g = np.asarray(groups, dtype=np.int64)
        inset = (g >= 0) & (info["nnz"] > 0)
        if self._domain is not None:
            inset &= self._domain
        rows = np.flatnonzero(inset)
        G = int(n_groups)
        n_psu = np.bincount(g[rows], weights=info["nnz"][rows], minlength=G)
        n_st = _distinct_per_group(g[rows], info["hc"][rows], max(info["H"], 1), G)
        return (n_psu - n_st).astype(float)

    def _vcov_rows(self, Z):
        raise EstimationError("row scores of an out-of-core element design are not available",
                              code="estimate.not_supported",
                              hint="use mean/total/proportion/ratio of ScanDesign, or SurveyDesign in memory")

    def _operands(self, num, den):
        info = self._cellinfo
        J = info["sums"].shape[1]
        spec = info["pairs"]
        if spec is None:
            if J > 1:
                raise EstimationError("internal: the operands of the estimator's totals are unknown",
                                      code="estimate.internal", hint="please report this")
            spec = ([0] * len(num), None if den is None else [0] * len(den))
        ops_num, ops_den = spec
        if len(ops_num) != len(num) or (den is None) != (ops_den is None) \
                or (den is not None and len(ops_den) != len(den)):
            raise EstimationError("internal: the estimator's totals do not match the cell moments",
                                  code="estimate.internal", hint="please report this")
        for (a, k), j in zip(list(num) + list(den or []), list(ops_num) + list(ops_den or [])):
            ok = k >= 0
            want = np.ones(int(ok.sum())) if j == 0 else info["values"][j - 1][ok]
            if not np.array_equal(a[ok], want):
                raise EstimationError("internal: an estimator's values are not the cell moments'",
                                      code="estimate.internal", hint="please report this")
        return ops_num, ops_den

    def _linear(self, n_terms, num, den, n_den=0, dmap=None):
        """As :meth:`SurveyDesign._linear`: theta_t = N_t / D_dmap[t] (or N_t) from the cells,
        the covariance from the cell moments (:func:`_element_vcov`)."""
        dom = self._domain

        def mask_key(key):
            key = np.asarray(key, dtype=np.int64)
            return np.where(dom, key, -1) if dom is not None else key

        num = [(np.asarray(a, dtype=np.float64), mask_key(k)) for a, k in num]
        den = None if den is None else [(np.asarray(b, dtype=np.float64), mask_key(k)) for b, k in den]
        ops_num, ops_den = self._operands(num, den)
        w = self._w

        def totals(pairs, K):
            out = np.zeros(K)
            for a, k in pairs:
                ok = k >= 0
                out += np.bincount(k[ok], weights=(w * a)[ok], minlength=K)
            return out

        N = totals(num, n_terms)
        if den is not None:
            D = totals(den, n_den)
            dmap = np.asarray(dmap, dtype=np.int64)
            with np.errstate(divide="ignore", invalid="ignore"):
                theta = N / D[dmap]
        else:
            D, theta = None, N
        V = _element_vcov(self._cellinfo, n_terms, num, ops_num, den, ops_den, n_den, dmap, theta, D)
        return theta, V, N, D


#: above this many cells x terms the between-cell part is formed sparse (as SurveyDesign's
#: unit totals: linearisation.stage_vcov_sparse)
_DENSE_LIMIT = 30_000_000


def _element_vcov(info, T, num, ops_num, den, ops_den, n_den, dmap, theta, D):
    """Taylor covariance (T, T) of the estimates of an element-sampled stratified design from
    cell moments (Lumley 2010, §2.2; R ``svyrecvar`` with every row a PSU):

        V = Σ_h scale_h Σ_{i∈h} (z_i - z̄_h)(z_i - z̄_h)'
          = Σ_h scale_h Σ_{c∈h} [λ_c S_c λ_c' + n_c (ζ_c - z̄_h)(ζ_c - z̄_h)'],

    scale_h = (1 - f_h) n_h/(n_h - 1) with the lonely-PSU rule (:func:`.linearisation.
    stratum_scales`); z_it = w_i (a_i [key=t] - theta_t b_i [dkey=dmap_t]) / D_dmap[t] the
    scores of :meth:`SurveyDesign._linear` (non-finite -> 0, as there), linear within a cell:
    z_it = λ_ct·v_i with v_i = (w_i, w_i (y_i1 - s_1), ...); S_c the centred cross-products of
    v over the cell's n_c rows (from the engine), ζ_ct = Σ_{i∈c} z_it / n_c, z̄_h = Σ_{c∈h}
    n_c ζ_c / n_h (0 where 'adjust' leaves a single-row stratum uncentred). Cells of
    different groups share no row, so λ_c has the terms of one group only."""
    from scipy import sparse

    hc, n_c, H = info["hc"], info["n"], max(info["H"], 1)
    su, S, shift = info["sums"], info["S"], info["shift"]
    C, J = su.shape
    scale_c = info["scale_h"][hc]
    with np.errstate(divide="ignore", invalid="ignore"):
        st = np.ones(T) if den is None else 1.0 / D[dmap]
    st = np.where(np.isfinite(st), st, 0.0)
    r, t, o, v = [], [], [], []
    for (a, k), j in zip(num, ops_num):
        ok = np.flatnonzero(k >= 0)
        r.append(ok); t.append(k[ok]); o.append(np.full(ok.size, j)); v.append(st[k[ok]])
    if den is not None:
        th = np.where(np.isfinite(theta), theta, 0.0)
        terms_of = den_terms(n_den, dmap)
        for (b, k), j in zip(den, ops_den):
            rr, tt = terms_of(k)
            r.append(rr); t.append(tt); o.append(np.full(rr.size, j)); v.append(-th[tt] * st[tt])
    r, t, o, v = (np.concatenate(x) for x in (r, t, o, v))
    # within cells: λ on the shifted operands (w·y = w·(y - s) + s·w)
    y_ = o > 0
    rs, ts = np.concatenate([r, r[y_]]), np.concatenate([t, t[y_]])
    os_ = np.concatenate([o, np.zeros(int(y_.sum()), dtype=o.dtype)])
    vs = np.concatenate([v, v[y_] * shift[o[y_]]])
    L = sparse.csr_matrix((vs, (rs * J + os_, ts)), shape=(C * J, T))
    bi = np.broadcast_to(np.arange(C)[:, None, None] * J + np.arange(J)[None, :, None], (C, J, J))
    bj = np.broadcast_to(np.arange(C)[:, None, None] * J + np.arange(J)[None, None, :], (C, J, J))
    Sb = sparse.csr_matrix(((S * scale_c[:, None, None]).ravel(), (bi.ravel(), bj.ravel())),
                           shape=(C * J, C * J))
    V = np.asarray((L.T @ (Sb @ L)).todense()).reshape(T, T)
    # between cells: the cell totals of the scores, centred within strata
    zc = v * su[r, o]
    ind = sparse.csr_matrix((np.ones(C), (hc, np.arange(C))), shape=(H, C))
    n_h = info["n_h"]
    if C * T <= _DENSE_LIMIT:
        Zc = np.bincount(r * T + t, weights=zc, minlength=C * T).reshape(C, T)
        zbar = np.asarray(ind @ Zc) / n_h[:, None]
        zbar[~info["center_h"]] = 0.0
        E = Zc / n_c[:, None] - zbar[hc]
        V += (E * (scale_c * n_c)[:, None]).T @ E
    else:
        Zs = sparse.csr_matrix((zc, (r, t)), shape=(C, T))
        V += np.asarray((Zs.T @ sparse.diags(scale_c / n_c) @ Zs).todense())
        Zh = np.asarray((ind @ Zs).todense())
        coef = np.where(info["center_h"], info["scale_h"] / n_h, 0.0)
        V -= (Zh * coef[:, None]).T @ Zh
    if info["nan_h"].any():
        V = V * np.nan
    return V


def _deff(design, cells, blocks, numeric, valid, g, G, k, V, kind, replace=False, shift=None):
    """R deff=TRUE / deff="replace" as :func:`.estimators._deff`, from cell sums: Nhat = Σw,
    nnz = number of rows with a nonzero weight, Σw·y and Σw·y² per group (valid rows in the
    domain); SRS variance s² = (Σw·y² - (Σw·y)²/Nhat)/Nhat · nnz/(nnz-1). ``shift``: the
    cells' ``__q`` are Σw·(y - s)² (a shift s per variable, both designs), then y - s replaces
    y (the same s² without the cancellation of an offset of y)."""
    w = design.weights
    ok = valid & (g >= 0)
    wv = np.where(ok, w, 0.0)
    gg = np.where(ok, g, 0)
    inside = (design.domain_mask & ok).astype(float)
    Nhat = np.bincount(gg, weights=wv, minlength=G)
    nnz = np.bincount(gg, weights=cells[_NZ].to_numpy() * inside, minlength=G)
    est.warn_deff_scaling(nnz, Nhat, replace)
    out = np.empty(G * k)
    j = 0
    for var, levels, data in blocks:
        if levels is None:
            jv = numeric.index(var)
            q = cells[f"__q{jv}"].to_numpy() * inside
            ys = [(data if shift is None else data - shift[jv], q)]
        else:
            ys = [((data == lev).astype(float), None) for lev in range(len(levels))]
        for y, q in ys:
            sw_y = np.bincount(gg, weights=wv * y, minlength=G)
            sw_yy = sw_y if q is None else np.bincount(gg, weights=np.where(ok, q, 0.0), minlength=G)
            with np.errstate(invalid="ignore", divide="ignore"):
                ss = np.maximum(sw_yy - sw_y ** 2 / Nhat, 0.0)
                s2 = ss / Nhat * nnz / (nnz - 1)
                vsrs = s2 / nnz if replace else np.where(Nhat < nnz, np.nan, s2 * (Nhat - nnz) / (Nhat * nnz))
                if kind == "total":
                    vsrs = vsrs * Nhat ** 2
                idx = np.arange(G) * k + j
                out[idx] = np.diag(V)[idx] / vsrs
            j += 1
    return out


# ------------------------------------------------------------------ conditions -> SQL

def _notnull_sql(src, col) -> str:
    from ..io.engine import _q
    c = _q(col)
    if getattr(src, "_is_float", None) and src._is_float(col):
        return f"({c} IS NOT NULL AND NOT isnan({c}))"
    return f"({c} IS NOT NULL)"


def _as_mask(m):
    if hasattr(m, "fillna"):
        return m.fillna(False).to_numpy(dtype=bool)
    return np.asarray(m, dtype=bool)


def _condition(where, columns):
    """(label, DuckDB SQL, pandas callable) of a domain condition (dict or string)."""
    from ..io.engine import _lit, _q

    cols = list(map(str, columns))
    if isinstance(where, dict):
        parts, funcs = [], []
        for col, val in where.items():
            if col not in cols:
                raise EstimationError("not found in the data", code="estimate.unknown_variable",
                                      where=f"column {col!r}")
            vals = list(val) if isinstance(val, (list, tuple, set)) else [val]
            parts.append(f"COALESCE({_q(col)} IN ({', '.join(_lit(v) for v in vals)}), FALSE)")
            funcs.append((col, vals))
        label = " & ".join(f"{c} in {v}" for c, v in funcs)
        return (label, " AND ".join(parts),
                lambda df, fs=tuple(funcs): np.logical_and.reduce(
                    [df[c].isin(v).to_numpy(dtype=bool) for c, v in fs]))
    if not isinstance(where, str):
        raise EstimationError("ScanDesign.subset takes a dict {column: values} or a condition string",
                              code="estimate.bad_subset",
                              hint="e.g. {'country': 'PT'} or \"country == 'PT' and age >= 30\"")
    check_condition(where, cols)
    quoted = {}

    def repl(m):
        key = f"_c{len(quoted)}_"
        quoted[key] = m.group(1)
        return key

    tree = ast.parse(re.sub(r"`([^`]*)`", repl, where).strip(), mode="eval").body
    ops = {ast.Eq: "=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
           ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}

    def val(node):
        if isinstance(node, ast.Name):
            return _q(quoted.get(node.id, node.id))
        if isinstance(node, ast.Constant):
            return "NULL" if node.value is None else _lit(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return f"({val(node.left)} {ops[type(node.op)]} {val(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"(-{val(node.operand)})"
        return boolean(node)

    def cmp(left, op, right):
        if isinstance(op, (ast.In, ast.NotIn)):
            items = ", ".join(val(e) for e in right.elts)
            s = f"COALESCE({val(left)} IN ({items}), FALSE)"
            return s if isinstance(op, ast.In) else f"(NOT {s})"
        if isinstance(op, (ast.NotEq, ast.IsNot)):
            return f"({val(left)} IS DISTINCT FROM {val(right)})"
        if isinstance(op, ast.Is):
            return f"({val(left)} IS NOT DISTINCT FROM {val(right)})"
        return f"COALESCE({val(left)} {ops[type(op)]} {val(right)}, FALSE)"

    def boolean(node):
        if isinstance(node, ast.BoolOp):
            j = " AND " if isinstance(node.op, ast.And) else " OR "
            return "(" + j.join(boolean(v) for v in node.values) + ")"
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            j = " AND " if isinstance(node.op, ast.BitAnd) else " OR "
            return f"({boolean(node.left)}{j}{boolean(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return f"(NOT {boolean(node.operand)})"
        if isinstance(node, ast.Compare):
            parts, left = [], node.left
            for op, right in zip(node.ops, node.comparators):
                parts.append(cmp(left, op, right))
                left = right
            return "(" + " AND ".join(parts) + ")"
        if isinstance(node, ast.Name):
            return f"COALESCE(CAST({val(node)} AS BOOLEAN), FALSE)"
        if isinstance(node, ast.Constant):
            return "TRUE" if node.value else "FALSE"
        raise EstimationError(f"cannot translate {ast.unparse(node)!r} for the engine",
                              code="estimate.bad_subset", where=f"subset condition {where!r}")

    sql = boolean(tree)

    def func(df, expr=where):
        m = df.eval(expr)
        return m.where(m.notna(), False).astype(bool) if isinstance(m, pd.Series) else m

    return (where, sql, func)


def scan_design(source, weights=None, strata=None, psu=None, fpc=None, nest: bool = False,
                lonely_psu: str = "fail", engine: str | None = None, client=None) -> ScanDesign:
    """:class:`ScanDesign` over a parquet file/folder/glob, DuckDB relation or Dask/pandas frame."""
    return ScanDesign(source, weights=weights, strata=strata, psu=psu, fpc=fpc, nest=nest,
                      lonely_psu=lonely_psu, engine=engine, client=client)
