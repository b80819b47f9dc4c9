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
from the counted cells and Σw·y². With ``psu=None`` (R's ``id=~1``) every row is a PSU and
the cell table has one row per row.

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
from ._formula import check_condition
from .design import SurveyDesign
from .linearisation import LONELY_RULES

_W, _N, _NZ, _OK, _DOM, _ROW = "__w", "__n", "__nnz", "__ok", "__dom", "__row"


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
        """One grouped pass -> the cell design (SurveyDesign over the cell table) and the table.
        ``derive(cells)`` may add columns computed from the keys (e.g. age bands from ages)
        before the design is built."""
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
        psu = self.psu
        if psu is None:
            src = src.with_row_id(_ROW)
            psu = _ROW
        keys = []
        for k in [self.strata, psu, self.fpc] + by + categorical + list(flags):
            if k is not None and k not in keys:
                keys.append(k)
        w = self.weights if self.weights is not None else 1
        sums = {_W: w, _N: 1, _NZ: ("ne", self.weights, 0) if self.weights is not None else 1}
        for j, v in enumerate(numeric):
            sums[f"__s{j}"] = (w, v)
            if squares:
                sums[f"__q{j}"] = (w, v, v)
        cells = src.group_sums(keys, sums)
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
        if self._domain:
            dom = cells[_DOM].to_numpy(dtype=bool)
            if not dom.any():
                raise EstimationError("the subset is empty", code="estimate.empty_domain",
                                      where=self.source.label, hint="no row satisfies the condition")
            design = design.subset(dom)
        return design, cells

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
        res = est._mean_total(design, vars_, by, kind=kind, deff=False, level=level, df=df,
                              na_rm=na_rm, categorical=categorical)
        blocks, valid = est._blocks(design, vars_, categorical)
        g, _ = est._groups(design, by)
        G = int(g.max()) + 1 if (g >= 0).any() else 0
        k = len(est._expand(blocks))
        res["n"] = np.repeat(self._counts(design, cells, g, valid, G), k).astype(np.int64)
        if want_deff:
            V = np.asarray(res.attrs["vcov"])
            d = _deff(design, cells, blocks, numeric, valid, g, G, k, V, kind, replace=(deff == "replace"))
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
        res = est.ratio(design, nums, dens, by=by, level=level, df=df, na_rm=na_rm)
        valid = cells[_OK].to_numpy(dtype=bool)
        g, _ = est._groups(design, by)
        G = int(g.max()) + 1 if (g >= 0).any() else 0
        res["n"] = np.repeat(self._counts(design, cells, g, valid, G),
                             len(nums) * len(dens)).astype(np.int64)
        return res


def _deff(design, cells, blocks, numeric, valid, g, G, k, V, kind, replace=False):
    """R deff=TRUE / deff="replace" as :func:`.estimators._deff`, from cell sums: Nhat = Σw,
    nnz = number of rows with a nonzero weight, Σw·y and Σw·y² per group (valid rows in the
    domain); SRS variance s² = (Σw·y² - (Σw·y)²/Nhat)/Nhat · nnz/(nnz-1)."""
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
            q = cells[f"__q{numeric.index(var)}"].to_numpy() * inside
            ys = [(data, q)]
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
