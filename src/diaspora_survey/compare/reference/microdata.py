"""Reference tables computed from weighted microdata (e.g. a census sample or a labour-force
survey file) through the out-of-core engine (issue 18 item 4; ../shared/DESIGN.md §Scale).

``from_microdata(source, weights=..., indicator=..., by=["age", "sex"], ...)`` returns a
:class:`~.model.ReferenceTable` usable by ``compare`` like the shipped tables, e.g. the
share with higher education by 5-year age band × sex. The heavy part is one grouped pass
in the engine (DuckDB by default; Dask; pandas) over cells age × sex × indicator level
(× stratum × PSU when the file carries its design); only the cell table comes to numpy.

Standard errors: with ``strata=`` and/or ``psu=`` the shares are domain estimates of that
design (Taylor linearisation, as ``svyby(~I(edu %in% share_of), ~ageband+sex,
subset(design, filter), svymean)`` in R survey), and every row carries its SE; without
design columns the table has point estimates only (a share of weights), like a published
census table.

Provenance (in ``derived`` and ``note`` of the table, and ``origin``): the file (label),
its SHA-256 (for several files: of the sorted files' hashes) or the ``dataset_id``, the
filter, the weight column, the design columns and the engine.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...errors import ReferenceDataError
from .model import GENERIC_KINDS, KINDS, ReferenceTable, format_age_band, table_from_dict

SHARE_KINDS = ("higher_education_share", "entrepreneur_share", "category_share")
_BAND, _SEX = "__ageband", "__sex"


def _bands(ages: np.ndarray, age_bands, min_age, max_age):
    """[(lo, hi|None)] from a width (int) or a list of (lo, hi|None) / "25-29" / "85+"."""
    from .model import parse_age_band

    if isinstance(age_bands, (int, np.integer)) and not isinstance(age_bands, bool):
        width = int(age_bands)
        if width < 1:
            raise ReferenceDataError("age_bands must be a positive width or a list of bands",
                                     code="reference.bad_option", where="age_bands")
        finite = ages[np.isfinite(ages)]
        if not finite.size:
            raise ReferenceDataError("no ages in the data", code="reference.no_rows", where="age")
        lo0 = int(min_age) if min_age is not None else int(math.floor(finite.min() / width) * width)
        if max_age is not None:
            top = int(max_age)
            return [(lo, min(lo + width - 1, top)) for lo in range(lo0, top + 1, width)]
        top = int(math.floor(finite.max()))            # open last band: everyone above
        out = [(lo, lo + width - 1) for lo in range(lo0, top + 1, width)]
        return out[:-1] + [(out[-1][0], None)]
    out = []
    for b in age_bands:
        out.append(parse_age_band(b) if isinstance(b, str) else (int(b[0]), None if b[1] is None else int(b[1])))
    return out


def _band_labels(ages: np.ndarray, bands) -> np.ndarray:
    lab = np.full(ages.shape, None, dtype=object)
    a = np.floor(ages)
    for lo, hi in bands:
        sel = (a >= lo) if hi is None else ((a >= lo) & (a <= hi))
        lab[sel & np.isfinite(ages)] = format_age_band(lo, hi)
    return lab


def _sex_labels(values: pd.Series, mapping, label: str, col: str) -> np.ndarray:
    if mapping is not None:
        out = values.map(lambda v: mapping.get(v, mapping.get(str(v))) if pd.notna(v) else None)
    else:
        out = values.map(lambda v: str(v).strip().lower() if pd.notna(v) else None)
    bad = sorted({str(v) for v, o in zip(values, out) if pd.notna(v) and o not in ("male", "female")})
    if bad:
        raise ReferenceDataError(f"sex values {bad[:5]} are not 'male'/'female'",
                                 code="reference.bad_sex", where=f"{label}, column {col}",
                                 hint="pass sex_labels={1: 'male', 2: 'female'} (the file's codes)")
    return out.to_numpy(dtype=object)


def from_microdata(source, *, weights: str, indicator: str, year: int, by=("age", "sex"),
                   kind: str = "higher_education_share", share_of=None, maps_to: dict | None = None,
                   age: str = "age", age_bands=5, min_age: int | None = None,
                   max_age: int | None = None, sex: str = "sex", sex_labels: dict | None = None,
                   filter=None, strata: str | None = None, psu: str | None = None,
                   fpc: str | None = None, nest: bool = False, lonely_psu: str = "adjust",
                   dataset_id: str | None = None, engine: str | None = None, client=None,
                   id: str | None = None, publisher: str | None = None, table: str | None = None,
                   url: str | None = None, confidence: str = "MED", title: str = "",
                   universe: str = "", population: str = "", variable: str = "",
                   base: str = "") -> ReferenceTable:
    """A :class:`ReferenceTable` of shares computed from weighted microdata.

    source: a parquet file / folder / glob, DuckDB relation, Dask or pandas DataFrame
    (:func:`diaspora_survey.io.engine.open_source`). weights: the weight column (numeric,
    >= 0, no NULL). indicator: the categorical column. by: a subset of ``[age, sex]``
    (the columns named by ``age=`` and ``sex=``): ages are grouped into ``age_bands``
    (a width, default 5 years from ``min_age`` up to ``max_age``, the last band open such as
    ``85+`` without ``max_age``; or a list such as ``[(25, 34), (35, None)]``);
    sex values must be ``male``/``female`` or be mapped with ``sex_labels``. The table has a
    ``total`` row per age band and, with sex in ``by``, one per sex.

    kind: a share kind (``higher_education_share``, ``entrepreneur_share``,
    ``category_share``: the value is the share of rows whose indicator is in ``share_of``)
    or a distribution kind (``education_distribution``, ``employment_status``,
    ``category_distribution``: one row per indicator level, ``maps_to`` {level: [schema
    categories]}). filter: the universe, a condition as in :meth:`ScanDesign.subset`
    (a dict or "age >= 25 and ..."); rows outside stay in the design (domain estimation).
    strata/psu/fpc/nest/lonely_psu: the file's sampling design -> design-based SEs.
    The table's metadata (year, publisher, table, url, confidence, ...) are those of
    :func:`.model.table_from_dict`; defaults name the file or ``dataset_id``.

    Errors: a missing/unreadable file, an unknown column, non-numeric / negative / NULL
    weights, NULL strata or PSU, an engine that is not installed: one
    :class:`~diaspora_survey.errors.EngineError` naming the file and column.
    R equivalent: ``svyby(~I(x %in% share_of), ~ageband+sex, subset(svydesign(...), filter),
    svymean)``.
    """
    from ...io.engine import open_source
    from ...survey import estimators as est
    from ...survey.scan import ScanDesign, _condition

    if kind not in KINDS or kind in ("age_distribution", "livelihood_source"):
        raise ReferenceDataError(f"kind {kind!r} cannot be computed from microdata",
                                 code="reference.bad_option", where="kind",
                                 hint="a share kind (" + ", ".join(SHARE_KINDS) + ") or a distribution kind")
    share = kind in SHARE_KINDS
    if share and share_of is None:
        raise ReferenceDataError(f"a {kind} table needs share_of (the indicator's values counted)",
                                 code="reference.bad_option", where="share_of",
                                 hint="e.g. share_of=['bachelor', 'master', 'doctorate']")
    share_of = ([share_of] if isinstance(share_of, (str, int, float)) else list(share_of or []))
    by = [by] if isinstance(by, str) else list(by or [])
    other = [b for b in by if b not in (age, sex)]
    if other:
        raise ReferenceDataError(f"by={other}: a reference table is by age and/or sex only",
                                 code="reference.bad_option", where="by",
                                 hint=f"by=[{age!r}, {sex!r}] (name the columns with age= and sex=)")
    src = open_source(source, engine, client=client)
    src.check_columns([indicator] + by, "reference")
    has_design = strata is not None or psu is not None
    if has_design:
        design = ScanDesign(src, weights=weights, strata=strata, psu=psu, fpc=fpc, nest=nest,
                            lonely_psu=lonely_psu)
        if filter is not None:
            design = design.subset(filter)
    else:
        src.check_design_column(weights, "weights", numeric=True, nonnegative=True, notnull=True)

    bands = []

    def derive(cells):
        cells = cells.copy()
        if age in by:
            ages = pd.to_numeric(cells[age], errors="coerce").to_numpy(dtype=float)
            bands[:] = _bands(ages, age_bands, min_age, max_age)
            cells[_BAND] = _band_labels(ages, bands)
        else:
            cells[_BAND] = ""
        cells[_SEX] = _sex_labels(cells[sex], sex_labels, src.label, sex) if sex in by else "total"
        return cells

    if has_design:
        cdesign, cells = design._cells([], [indicator], by, squares=False, derive=derive)
    else:
        flags = {}
        if filter is not None:
            _, sql, func = _condition(filter, src.columns)
            flags["__dom"] = (sql, func)
        s2 = src.with_flags(flags)
        keys = list(dict.fromkeys(by + [indicator] + list(flags)))
        cells = derive(s2.group_sums(keys, {"__w": weights}))
        if flags:
            cells = cells[cells["__dom"].to_numpy(dtype=bool)]
        cdesign = None

    sexes = ["total"] + (["male", "female"] if sex in by else [])
    rows = []
    for sx in sexes:
        if cdesign is not None:
            part = cdesign if sx == "total" else cdesign.subset((cells[_SEX] == sx).to_numpy(dtype=bool))
            res = est.proportion(part, indicator, by=[_BAND] if age in by else None)
            V = np.asarray(res.attrs["vcov"])
            if _BAND not in res.columns:
                res[_BAND] = ""
        else:
            c = cells if sx == "total" else cells[cells[_SEX] == sx]
            c = c[c[indicator].notna() & c[_BAND].notna()]
            tot = c.groupby([_BAND, indicator], dropna=True)["__w"].sum().reset_index()
            tot["estimate"] = tot["__w"] / tot.groupby(_BAND)["__w"].transform("sum")
            res = tot.rename(columns={indicator: "level"})
            res["se"] = np.nan
            V = None
        for band, grp in res.groupby(_BAND, sort=False):
            idx = grp.index.to_numpy()
            levels = list(grp["level"])
            if share:
                sel = idx[[lv in share_of or str(lv) in map(str, share_of) for lv in levels]]
                value = float(res.loc[sel, "estimate"].sum())
                se = None if V is None else float(np.sqrt(max(V[np.ix_(sel, sel)].sum(), 0.0)))
                cat = variable or ("higher_education" if kind == "higher_education_share" else
                                   "entrepreneur" if kind == "entrepreneur_share" else "yes")
                rows.append({"category": cat, "sex": sx, "age": band, "value": value, "se": se})
            else:
                for i, lv in zip(idx, levels):
                    r = {"category": str(lv), "sex": sx, "age": band,
                         "value": float(res.loc[i, "estimate"]),
                         "se": None if V is None else float(res.loc[i, "se"])}
                    if maps_to is not None:
                        r["maps_to"] = list(maps_to.get(lv, maps_to.get(str(lv), [])))
                    rows.append(r)
    if not rows:
        raise ReferenceDataError("no rows: the filter or the age bands leave no respondent",
                                 code="reference.no_rows", where=src.label)
    sha = src.sha256()
    ident = dataset_id or (f"sha256 {sha}" if sha else "in-memory data")
    prov = (f"computed by diaspora-survey from microdata {src.label} ({ident}); weights {weights}; "
            f"filter {filter if filter is not None else 'none'}; "
            f"design strata={strata}, psu={psu}, fpc={fpc}; engine {src.engine}"
            + (f"; share of {indicator} in {share_of}" if share else f"; distribution of {indicator}"))
    d = {"id": id or f"microdata_{kind}", "kind": kind, "unit": "proportion", "year": year,
         "publisher": publisher or dataset_id or "microdata", "table": table or (dataset_id or src.label),
         "url": url or (dataset_id or _uri(src)), "confidence": confidence, "title": title,
         "universe": universe or (str(filter) if filter is not None else ""), "population": population,
         "derived": prov, "note": ("design-based standard errors" if has_design else
                                   "point estimates only (no design columns: no standard errors)"),
         "rows": rows, "base": base or ("population" if kind == "entrepreneur_share" else "")}
    if kind in GENERIC_KINDS:
        d["variable"] = variable or indicator
    if bands:
        d["min_age"] = bands[0][0]
        if bands[-1][1] is not None:
            d["max_age"] = bands[-1][1]
    return table_from_dict(d, where=src.label, origin=src.label)


def _uri(src) -> str:
    if src.files:
        return src.files[0].resolve().as_uri() if len(src.files) == 1 else src.files[0].parent.resolve().as_uri()
    return src.label
