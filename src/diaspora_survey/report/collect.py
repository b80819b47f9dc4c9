"""Gather the report's inputs from a :class:`~.pipeline.Pipeline` run.

Aggregates only: counts per wave and reason, weighting diagnostics, the comparison
step's result frames, and a few design-based estimates for the charts (age × sex shares
with :class:`~diaspora_survey.survey.design.SurveyDesign`). Each cell carries its unweighted
respondent count (``n`` for disclosure control: respondents *in the cell*).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .content import ReportInputs, WaveInfo
from .disclosure import members_column, positions
from ..errors import ReportError


def data_date(project, data=None) -> str:
    """The report's date: SOURCE_DATE_EPOCH if set, else the latest wave id that is a date
    (``YYYY-MM`` or ``YYYY-MM-DD``), else the latest interview date: a harmonised
    ``interview_date`` (or ``date``, or another date column named ``*interview*``) column,
    else the codebooks' fixed ``interview_date:``; "undated" when there is none.

    Never the wall clock: the same inputs must give the same report.
    """
    import datetime as dt

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).date().isoformat()
    ids = [w for w in project.wave_ids if re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", w)]
    if ids:
        return max(ids)
    if data is not None:
        import pandas as pd

        cols = [c for c in ("interview_date", "date") if c in data.columns]
        cols += [c for c in data.columns if "interview" in str(c).lower() and c not in cols
                 and pd.api.types.is_datetime64_any_dtype(data[c])]
        for c in cols:
            d = pd.to_datetime(data[c], errors="coerce").max()
            if pd.notna(d):
                return d.date().isoformat()
    # a fixed interview date of the codebooks (age_from_birth_year with interview_date:)
    fixed = []
    try:
        for cb in project.codebooks().values():
            for spec in getattr(cb, "variables", {}).values():
                d = getattr(spec, "interview_date", None)
                if d is not None:
                    fixed.append(d.isoformat())
    except Exception:   # noqa: BLE001 - a codebook error is reported by the harmonise step
        fixed = []
    if fixed:
        return max(fixed)
    return "undated"


def _weight_col(data) -> str | None:
    for c in ("weight", "weight_base"):
        if data is not None and c in data.columns:
            return c
    return None


COUNTRY_INDICATORS = ("mean_age", "share_aged_18_34", "higher_education", "entrepreneurs_all",
                      "entrepreneurs_employed")


def analysis_weight(data) -> str | None:
    """The weight for estimates over waves: pooled if weighting ran, else the base weight."""
    for c in ("weight_pooled", "weight", "weight_base"):
        if data is not None and c in data.columns:
            return c
    return None


def compare_project(project, data, panel=None) -> dict:
    """Run :func:`diaspora_survey.compare.comparison.compare` for the project: overall and by wave
    (all indicators), by country (age, higher education, entrepreneurship); add the cell
    counts used for disclosure control and the chart data. Returns ``{name: frame}``."""
    import numpy as np
    import pandas as pd

    from ..compare.comparison import compare, project_designs

    ref = project.reference
    tables = [str(project.path(t)) for t in ref.tables] or None
    # the designs of `diaspora-survey compare`: pooled weights, waves (x codebook strata) as
    # strata, codebook PSUs; rows by wave from the pooled design equal the within-wave ones
    # (the pooled weights are the within-wave weights times a constant per wave)
    design, _ = project_designs(data)
    extra = project.indicators()
    opts = dict(tables=tables, **ref.compare_options())
    by = list(project.compare.by)
    unknown = [b for b in by if b not in data.columns]
    if unknown:   # rejected, as by `diaspora-survey compare`, never silently left out
        from ..compare.comparison import BY_ALLOWED
        from ..errors import EstimationError

        raise EstimationError(f"no column {unknown[0]!r} to compare by", code="compare.bad_by",
                              where=f"{project.file} [compare] by",
                              hint="use one of: " + ", ".join(BY_ALLOWED))
    from ..compare.comparison import BY_ALLOWED as _ALLOWED
    from .disclosure import check_grouping

    # never a table per respondent: only the groupings `compare --by` accepts
    check_grouping(data, by, f"{project.file} [compare] by", allowed=_ALLOWED)
    parts = [compare(design, ref.population, by="wave" if "wave" in by else None,
                     extra_indicators=extra, **opts)]
    for b in by:
        if b == "wave":
            continue
        parts.append(compare(design, ref.population, by=b, overall=False,
                             indicators=list(COUNTRY_INDICATORS) if b == "country" else None,
                             standardise=None if b == "country" else "age_sex",
                             extra_indicators=() if b == "country" else extra, **opts))
    comp = pd.concat(parts, ignore_index=True)
    comp.attrs = dict(parts[0].attrs)
    if "group_by" not in comp.columns and "by" in comp.columns:
        comp = comp.rename(columns={"by": "group_by"})
    comp["group_by"] = comp["group_by"].fillna("").astype(str)
    comp["group"] = comp["group"].fillna("").astype(str)
    comp["n_cell"], comp[members_column("n")], comp[members_column("n_cell")] = \
        cell_counts(comp, data, project, members=True)
    out = {"comparisons": comp, "notes": list(parts[0].attrs.get("notes", []))}
    claims_path = project.path(project.compare.claims)
    if claims_path.exists():
        from ..compare.claims import evaluate_claims
        # whole sample and whole waves only: claims are headlines, not small-group findings
        base = comp[comp["group_by"].isin(["", "wave"])].rename(columns={"group_by": "by"})
        out["claims"] = evaluate_claims(base, claims_path, extra, panel=panel)   # panel claims on the panel
    # chart data (proportions, not percent)
    crude = comp[comp["adjustment"] == "crude"]
    edu = crude[(crude["group_by"] == "") & (crude["indicator"] == "education_distribution")
                & (crude["category"] != "goodness_of_fit")]
    if len(edu):
        from .content import CATEGORY_LABELS

        out.setdefault("charts", {})["education"] = pd.DataFrame({
            "category": edu["category"].map(CATEGORY_LABELS).fillna(edu["category"]).to_numpy(),
            "estimate": edu["estimate"].to_numpy(), "ci_low": edu["ci_low"].to_numpy(),
            "ci_high": edu["ci_high"].to_numpy(), "population": edu["population"].to_numpy(),
            "n": edu["n_cell"].to_numpy(),
            members_column("n"): edu[members_column("n_cell")].to_list()})
    ent = crude[(crude["group_by"] == "country") & (crude["indicator"] == "entrepreneurs_all")]
    if len(ent):
        out.setdefault("charts", {})["entrepreneurship_by_country"] = pd.DataFrame({
            "country": ent["group"].to_numpy(), "estimate": ent["estimate"].to_numpy(),
            "ci_low": ent["ci_low"].to_numpy(), "ci_high": ent["ci_high"].to_numpy(),
            "n": ent["n_cell"].to_numpy(),
            members_column("n"): ent[members_column("n_cell")].to_list()})
        pop = pd.to_numeric(ent["population"], errors="coerce").dropna()
        out["charts"]["entrepreneurship_population"] = float(pop.iloc[0]) if len(pop) else None
    del np
    return out


def _education_groups(population: str) -> dict[str, set[str]]:
    """``{table category: schema levels}`` of the reference's education table (the
    respondents behind an education row); empty when there is none."""
    from ..compare import reference
    from ..errors import DiasporaSurveyError

    try:
        t = reference.load(population).first("education_distribution")
    except DiasporaSurveyError:    # an unknown population: the compare step reports it
        return {}
    if t is None:
        return {}
    f = t.to_frame()
    return {str(c): set(str(m).split("|")) for c, m in zip(f["category"], f["maps_to"])}


def _counts_start(comp, data, ref):
    """The rows' domain n (the default count), respondents' ages and the age frame of
    ``[reference]`` (min_age, max_age) as arrays."""
    import numpy as np
    import pandas as pd

    out = pd.to_numeric(comp["n"], errors="coerce").fillna(0).to_numpy(dtype=float)
    age = pd.to_numeric(data["age"], errors="coerce").to_numpy(dtype=float) \
        if "age" in data.columns else np.full(len(data), np.nan)
    frame = age >= ref.min_age
    if ref.max_age:
        frame &= age <= ref.max_age
    return out, age, frame


def cell_counts(comp, data, project, members: bool = False):
    """Unweighted respondents behind each comparison row, for disclosure control.

    Means and medians: the domain's ``n``. Shares of a yes/no indicator: the smaller of
    "yes" and "no" (either reveals a small group). Distribution categories: respondents
    in the category (secondary suppression protects the complement).

    One pass per grouping: respondents are counted by (group, category code) with
    ``np.bincount`` for every group at once, then read off per row (linear in rows, not
    rows x groups x comparison rows).

    ``members=True`` also returns, per row, the positions (in ``data``) of the respondents
    behind the row's ``n`` (the domain) and behind its estimate (the category, or "yes"),
    for the report-wide differencing check of :mod:`.disclosure`; ``None`` where the
    domain cannot be matched to ``n`` exactly (:func:`_cell_members`).
    """
    if members:
        return _cell_members(comp, data, project)
    import numpy as np
    import pandas as pd

    from ..compare import reference

    out, age, frame = _counts_start(comp, data, project.reference)

    def codes(name):
        """(codes (-1 = missing), labels as str) of a column, or None."""
        if name not in data.columns:
            return None
        s = data[name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            return s.cat.codes.to_numpy().astype(np.int64), [str(c) for c in s.cat.categories]
        c, u = pd.factorize(s, use_na_sentinel=True)
        return c.astype(np.int64), [str(x) for x in u]

    edu = codes("education")
    edu_groups = _education_groups(project.reference.population)

    def yes_known(name):
        if name not in data.columns:
            return None
        b = data[name].astype("boolean")
        return b.fillna(False).to_numpy(dtype=bool), b.notna().to_numpy()

    ent = yes_known("entrepreneur")
    hed = yes_known("higher_education")
    agrp = codes("age_group")
    employed = None
    if "employment_status" in data.columns:
        from ..harmonise.schema import EMPLOYED

        employed = data["employment_status"].astype("object").isin(EMPLOYED).to_numpy()
    recs = comp[["group_by", "group", "indicator", "category"]].astype(str)
    for gb in recs["group_by"].unique():
        if gb and gb not in data.columns:
            continue
        if gb:
            g, labels = codes(gb)
        else:
            g, labels = np.zeros(len(data), dtype=np.int64), [""]
        G = len(labels)
        g = np.where(frame & (g >= 0), g, -1)
        ok = g >= 0
        gpos = {lab: k for k, lab in enumerate(labels)}
        memo: dict = {}

        def per_group(mask, key):
            """Respondents of every group with ``mask`` (cached under ``key``)."""
            if key not in memo:
                m = ok & mask
                memo[key] = np.bincount(g[m], minlength=G + 1)
            return memo[key]

        def by_code(cc, key):
            """Respondents by group x code: (G, L) counts of a coded column."""
            if key not in memo:
                c, labs = cc
                m = ok & (c >= 0)
                memo[key] = np.bincount(g[m] * len(labs) + c[m],
                                        minlength=(G + 1) * len(labs)).reshape(G + 1, len(labs))
            return memo[key]

        def binary(yes_key, yes, base_key, base, k):
            b = per_group(base, base_key)[k]
            y = per_group(yes & base, (yes_key, base_key))[k]
            return min(int(y), int(b) - int(y))

        sel = np.flatnonzero((recs["group_by"] == gb).to_numpy())
        for i in sel:
            rec = recs.iloc[i]
            # the whole frame without a grouping; G: a group without respondents (counts 0)
            k = gpos.get(rec["group"], G) if gb else 0
            ind, cat = rec["indicator"], rec["category"]
            if cat == "goodness_of_fit" or ind in ("mean_age", "median_age"):
                continue
            if ind == "age_distribution" and agrp is not None:
                tab = by_code(agrp, "agrp")
                out[i] = int(tab[k, agrp[1].index(cat)]) if cat in agrp[1] else 0
            elif ind == "share_aged_18_34":
                known = ~np.isnan(age)
                out[i] = binary("18-34", (age >= 18) & (age <= 34), "age_known", known, k)
            elif ind == "education_distribution" and edu is not None and cat in edu_groups:
                tab = by_code(edu, "edu")
                cols = [j for j, lab in enumerate(edu[1]) if lab in edu_groups[cat]]
                out[i] = int(tab[k, cols].sum())
            elif ind in ("higher_education", "higher_education_by_age") and hed is not None:
                base, key = hed[1], "hed_known"
                if ind == "higher_education_by_age" and cat:
                    lo, hi = reference.parse_age_band(cat)
                    base = base & (age >= lo) & ((age <= hi) if hi is not None else True)
                    key = ("hed_known", cat)
                out[i] = binary("hed", hed[0], key, base, k)
            elif ind in ("entrepreneurs_all", "entrepreneurs_employed") and ent is not None:
                base, key = ent[1], "ent_known"
                if ind == "entrepreneurs_employed" and employed is not None:
                    base, key = base & employed, "ent_known_employed"
                out[i] = binary("ent", ent[0], key, base, k)
    return out


def _level_mask(s, levels):
    """Boolean array: ``s`` (a column) is one of ``levels``; categorical columns through their
    codes (one lookup per category, not per respondent)."""
    import numpy as np
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        hit = np.array([c in levels for c in s.cat.categories] + [False], dtype=bool)
        return hit[s.cat.codes.to_numpy()]          # code -1 (missing) reads the last entry
    return s.astype("object").isin(levels).to_numpy()


def _value_codes(s):
    """``(codes, {value: code})`` of a column: ``codes == k`` exactly where the value is the
    key of ``k`` (missing: -1)."""
    import numpy as np
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy().astype(np.int64), {c: k for k, c in enumerate(s.cat.categories)}
    c, u = pd.factorize(s.astype("object").to_numpy())
    return c.astype(np.int64), {x: k for k, x in enumerate(u)}


def _group_text_codes(s):
    """:func:`.disclosure.text_codes` of ``s.astype(str)`` (the text a comparison row's group
    is matched on); categorical columns through their categories."""
    import numpy as np
    import pandas as pd

    from .disclosure import text_codes

    if isinstance(s.dtype, pd.CategoricalDtype):
        of: dict = {}
        remap = np.array([of.setdefault(str(c), len(of)) for c in s.cat.categories]
                         + [of.setdefault("nan", len(of))], dtype=np.int64)
        return remap[s.cat.codes.to_numpy()], of     # astype(str) writes missing as "nan"
    return text_codes(s.astype(str).to_numpy(dtype=object))


def _cell_members(comp, data, project):
    """:func:`cell_counts` with ``members=True``: the counts, and per row the respondents'
    positions behind the domain and the cell.

    Means and medians: the domain's ``n``. Shares of a yes/no indicator: the smaller of
    "yes" and "no" (either reveals a small group). Distribution categories: respondents
    in the category (secondary suppression protects the complement).

    Per row: the positions (in ``data``, ascending int64) of the respondents behind the
    row's ``n`` (the domain) and behind its estimate (the category, or "yes"), for the
    report-wide differencing check of :mod:`.disclosure`; ``None`` where the domain cannot
    be matched to ``n`` exactly. Each domain's positions are found once; a row's sets are
    masks over those positions (cost: the domain's size per row, not the sample's).
    """
    import numpy as np
    import pandas as pd

    from ..compare import reference

    out, age, frame = _counts_start(comp, data, project.reference)
    edu_groups = _education_groups(project.reference.population)
    cols = data.columns
    full: dict = {}          # respondent-level arrays, each built once
    if "entrepreneur" in cols:
        ent = data["entrepreneur"].astype("boolean")
        full["ent_known"], full["ent_yes"] = ent.notna().to_numpy(), ent.fillna(False).to_numpy(dtype=bool)
    if "higher_education" in cols:
        hed = data["higher_education"].astype("boolean")
        full["hed_known"], full["hed_yes"] = hed.notna().to_numpy(), hed.fillna(False).to_numpy(dtype=bool)
    for v in ("age_group", "education", "age"):
        if v in cols:
            full[f"notna:{v}"] = data[v].notna().to_numpy()
    if "employment_status" in cols:
        from ..harmonise.schema import EMPLOYED

        full["employed"] = _level_mask(data["employment_status"], set(EMPLOYED))
    has_edu = "education" in cols
    if has_edu and edu_groups:
        full["edu_known"] = _level_mask(data["education"], set().union(*edu_groups.values()))
    agrp_code, agrp_of = _value_codes(data["age_group"]) if "age_group" in cols else (None, {})
    full["age"] = age
    group_code: dict = {}
    doms: dict = {}          # (group_by, group) -> (positions, {name: array at those positions})

    def domain(gb, g):
        key = (gb, g)
        if key not in doms:
            m = frame
            if gb:
                if gb not in group_code:        # the text of the grouping, coded once
                    group_code[gb] = _group_text_codes(data[gb])
                gc, g_of = group_code[gb]
                k = g_of.get(str(g))
                m = frame & (gc == k) if k is not None else np.zeros(len(data), dtype=bool)
            doms[key] = (np.flatnonzero(m).astype(np.int64), {})
        return doms[key]

    def at(dom, name):
        """The respondent-level array ``name`` at the domain's positions."""
        pos, sub = dom
        if name not in sub:
            if name == "agrp":
                sub[name] = agrp_code[pos]
            elif name.startswith("edu_in:"):
                cat = name[len("edu_in:"):]
                if name not in full:
                    full[name] = _level_mask(data["education"], edu_groups[cat])
                sub[name] = full[name][pos]
            else:
                sub[name] = full[name][pos]
        return sub[name]

    var_of = {"age_distribution": "age_group", "education_distribution": "education",
              "mean_age": "age", "median_age": "age"}
    n_rows = len(comp)
    dom_sets: list = [None] * n_rows      # (domain, mask over its positions)
    cell_sets: list = [None] * n_rows
    set_memo: dict = {}                   # one mask object per distinct (domain, set)

    def binary(yes, base):
        y = int(np.count_nonzero(yes & base))
        return min(y, int(np.count_nonzero(base)) - y)

    for i, rec in enumerate(comp[["group_by", "group", "indicator", "category"]].to_dict("records")):
        gb, g, ind, cat = rec["group_by"], rec["group"], rec["indicator"], rec["category"]
        dom = domain(gb, g)
        v = var_of.get(ind)
        if v is not None and v in cols:
            mkey = (gb, g, v, ind == "education_distribution")
            if mkey not in set_memo:
                d = at(dom, f"notna:{v}")
                if ind == "education_distribution" and "edu_known" in full:
                    d = d & at(dom, "edu_known")
                set_memo[mkey] = d
            dom_sets[i] = (dom, set_memo[mkey])
            cell_sets[i] = dom_sets[i] if ind in ("mean_age", "median_age") else None
        if cat == "goodness_of_fit" or ind in ("mean_age", "median_age"):
            continue
        if ind == "age_distribution" and agrp_code is not None:
            k = agrp_of.get(cat)
            c = at(dom, "agrp") == k if k is not None else np.zeros(len(dom[0]), dtype=bool)
            cell_sets[i] = (dom, c)
            out[i] = int(np.count_nonzero(c))
        elif ind == "share_aged_18_34":
            a = at(dom, "age")
            base = ~np.isnan(a)
            yes = base & (a >= 18) & (a <= 34)
            out[i] = binary(yes, base)
            dom_sets[i], cell_sets[i] = (dom, base), (dom, yes)
        elif ind == "education_distribution" and has_edu and cat in edu_groups:
            c = at(dom, f"edu_in:{cat}")
            cell_sets[i] = (dom, c)
            out[i] = int(np.count_nonzero(c))
        elif ind in ("higher_education", "higher_education_by_age") and "hed_known" in full:
            base = at(dom, "hed_known")
            if ind == "higher_education_by_age" and cat:
                lo, hi = reference.parse_age_band(cat)
                a = at(dom, "age")
                base = base & (a >= lo) & ((a <= hi) if hi is not None else True)
            yes = base & at(dom, "hed_yes")
            out[i] = binary(yes, base)
            dom_sets[i], cell_sets[i] = (dom, base), (dom, yes)
        elif ind in ("entrepreneurs_all", "entrepreneurs_employed") and "ent_known" in full:
            base = at(dom, "ent_known")
            if ind == "entrepreneurs_employed" and "employed" in full:
                base = base & at(dom, "employed")
            yes = base & at(dom, "ent_yes")
            out[i] = binary(yes, base)
            dom_sets[i], cell_sets[i] = (dom, base), (dom, yes)
    n_dom = pd.to_numeric(comp["n"], errors="coerce").to_numpy(dtype=float)
    published: dict = {}                  # id of a mask -> its positions (shared arrays)

    def pos_of(s):
        (p, _), m = s
        if id(m) not in published:
            published[id(m)] = (p[m], m)      # keep m alive: ids stay unique
        return published[id(m)][0]

    doms_out, cells_out = [], []
    for i in range(n_rows):
        d = dom_sets[i]
        ok = d is not None and n_dom[i] == np.count_nonzero(d[1])
        doms_out.append(pos_of(d) if ok else None)
        cells_out.append(pos_of(cell_sets[i]) if ok and cell_sets[i] is not None else None)
    return out, doms_out, cells_out


def age_sex_cells(data, project, weight_col: str | None):
    """Weighted share of each age group × sex cell among adults reporting male/female,
    beside the population share of that cell among adults (reference age × sex table)."""
    import numpy as np
    import pandas as pd

    from ..compare import reference
    from ..harmonise import schema

    if data is None or not {"age_group", "sex"} <= set(data.columns):
        return None
    ref = reference.load(project.reference.population,
                         tables=tuple(str(project.path(t)) for t in project.reference.tables)
                         or None)
    table = ref.first("age_distribution")
    if table is None or not {"male", "female"} <= set(table.sexes):
        return None
    # the frame of [reference] min_age / max_age, as every comparison row (issue 15, item 8)
    min_age = project.reference.min_age
    max_age = project.reference.max_age or None
    age = pd.to_numeric(data["age"], errors="coerce") if "age" in data.columns else None
    in_frame = (age >= min_age) & ((age <= max_age) if max_age is not None else True) \
        if age is not None else True
    d = data[data["sex"].isin(["male", "female"]) & data["age_group"].notna() & in_frame]
    if d.empty:
        return None
    # weighted shares of the cells (the chart shows no SE): one bincount over cell codes,
    # the same sums as SurveyDesign.proportion("cell") without its variance
    ag = d["age_group"].astype("category")
    sx = (d["sex"].astype("object").to_numpy(dtype=object) == "female").astype(np.int64)  # male 0
    A = len(ag.cat.categories)
    code = ag.cat.codes.to_numpy().astype(np.int64) * 2 + sx
    names = [f"{a}|{s}" for a in ag.cat.categories for s in ("male", "female")]
    w = d[weight_col].to_numpy(dtype=float) if weight_col else np.ones(len(d))
    cnt = np.bincount(code, minlength=2 * A)
    sw = np.bincount(code, weights=w, minlength=2 * A)
    est = pd.DataFrame({"cell": names, "estimate": sw / np.bincount(np.zeros(len(d), dtype=np.int64),
                                                                     weights=w)[0]})[cnt > 0]
    counts = pd.Series(cnt, index=names)
    min_age = project.reference.min_age
    max_age = project.reference.max_age or None
    labels = [str(c) for c in data["age_group"].cat.categories] \
        if isinstance(data["age_group"].dtype, pd.CategoricalDtype) else schema.age_band_labels()
    total, _ = reference.band_mass(table, min_age, max_age, "total")
    rows = []
    for lab in labels:
        lo, hi = reference.parse_age_band(lab)
        if (hi is not None and hi < min_age) or (max_age is not None and lo > max_age):
            continue                     # a band wholly outside the frame
        for sex in ("male", "female"):
            lo2 = max(lo, min_age)
            hi2 = hi if max_age is None else (max_age if hi is None else min(hi, max_age))
            mass, _ = reference.band_mass(table, lo2, hi2, sex)
            rows.append({"age_group": lab, "sex": sex, "cell": f"{lab}|{sex}",
                         "population": mass / total, "n": int(counts.get(f"{lab}|{sex}", 0))})
    out = pd.DataFrame(rows).merge(est, on="cell", how="left")
    out["estimate"] = out["estimate"].fillna(0.0)
    both = (data["sex"].isin(["male", "female"]) & data["age_group"].notna()).to_numpy()
    if any("|" in str(x) for x in out["age_group"]):
        full = (data["age_group"].astype(str) + "|" + data["sex"].astype(str)).to_numpy(dtype=object)
        out[members_column("n")] = [positions(both & (full == c)) for c in out["cell"]]
    else:    # the respondents of every cell from one sort of the (age group, sex) code
        from .disclosure import split_positions, text_codes

        a_code, a_of = text_codes(data["age_group"].astype("object").to_numpy(dtype=object),
                                  missing=~both)
        s_code, s_of = text_codes(data["sex"].astype("object").to_numpy(dtype=object),
                                  missing=~both)
        S = max(len(s_of), 1)
        parts = split_positions(np.where(a_code >= 0, a_code * S + s_code, -1),
                                max(len(a_of), 1) * S)
        empty = np.zeros(0, dtype=np.int64)
        out[members_column("n")] = [
            parts[a_of[a] * S + s_of[x]] if (a in a_of and x in s_of) else empty
            for a, x in zip(out["age_group"].astype(str), out["sex"].astype(str))]
    return out[["age_group", "sex", "estimate", "population", "n", members_column("n")]]


#: How the report describes a harmonisation issue. The issue's own message lists raw
#: values with their counts (e.g. an unmapped free-text answer ×1): useful on the console
#: (``diaspora-survey harmonise``), but respondent-level detail and small counts that
#: disclosure control could not hide, so the report says only what kind of issue it is.
ISSUE_TEXT = {
    "unmapped": "values not mapped by the codebook or crosswalks; set to missing",
    "unparsed": "values that could not be read (not a number, date or month); set to missing",
    "out_of_range": "values outside the valid range; set to missing",
    "non_integer": "non-integer values rounded down",
    "eligibility_unknown": "kept although an eligibility rule could not be checked "
                           "(value missing)",
    "duplicate_id": "rows repeating an earlier respondent id; excluded",
    "missing_weight": "missing or non-positive design weight",
    "missing_fpc": "missing finite population correction",
}


def issue_text(issue) -> str:
    return ISSUE_TEXT.get(getattr(issue, "kind", ""), "see `diaspora-survey harmonise` for details")


def _provenance(project, pipeline) -> list[tuple[str, str, str]]:
    from .._util import sha256_file

    out = [("project", project._display(project.file), sha256_file(project.file))]
    for w in project.waves:
        for role, rel in (("raw", w.file), ("codebook", w.codebook)):
            p = project.path(rel)
            if p.exists():
                out.append((f"{role} {w.id}", project._display(p), sha256_file(p)))
    for role, rel in (("weighting targets", project.weighting.targets),
                      ("claims", project.compare.claims)):
        p = project.path(rel)
        if p.exists():
            out.append((role, project._display(p), sha256_file(p)))
    for t in project.reference.tables:
        p = project.path(t)
        if p.exists():
            out.append(("reference table", project._display(p), sha256_file(p)))
    return out


def wording(project) -> tuple[str, str]:
    """(sample label, population label) for titles and legends: ``[project] sample`` and
    ``[reference] label`` (default: the reference population's title)."""
    sample = project.config.project.sample or "Sample"
    label = project.reference.label
    if not label:
        from ..compare import reference

        try:
            label = reference.load(project.reference.population).title
        except Exception:   # noqa: BLE001 - the comparison step reports reference errors
            label = str(project.reference.population)
    return sample, label


def _weighting_text(project, pipeline) -> str:
    wcfg = project.weighting
    method = pipeline.weighting_info.get("method", "") or wcfg.method
    pooled = (f"pooled weights ({wcfg.pooling}) for estimates over all waves"
              if len(project.waves) > 1 else "")
    if method.startswith("none"):
        trim = " then trimmed" if "trim" in method else ""
        return ("Method: none — the design (base) weights of the file are used as they are"
                f"{trim}, not adjusted to population targets"
                + (f"; {pooled}." if pooled else "."))
    return (f"Method: {method}, within each wave, to the targets in "
            f"{wcfg.targets}; weights trimmed to [{wcfg.trim_lower or '—'}, {wcfg.trim_upper or '—'}] "
            f"× the mean and scaled to mean 1 within the wave"
            + (f"; {pooled}." if pooled else "."))


def _methods(project, pipeline) -> list[tuple[str, str]]:
    ref = project.reference
    design = project.config.project.sample_design
    _, population = wording(project)
    if design:
        art = "an" if design[:1].lower() in "aeiou" else "a"
        caveat = (f" The sample is {art} {design}: estimates describe the respondents as "
                  "weighted, not a known population beyond what the sample design covers.")
    else:
        caveat = " Estimates describe the respondents as weighted."
    return [
        ("Harmonisation", "Each wave is mapped to one schema by its codebook (YAML): explicit "
         "code maps, value labels and packaged crosswalks (country names, Russian education "
         "levels → census 2021 / ISCED 2011). Unmapped values become missing and are listed "
         "as issues; eligibility rules (adults only) exclude respondents with a reason."),
        ("Weighting", _weighting_text(project, pipeline)),
        ("Estimation", "Design-based estimates (Horvitz–Thompson / Hájek) with Taylor-"
         "linearisation variances, with-replacement at the first stage, matching R's survey "
         "package; weights are treated as fixed sampling weights. Confidence intervals: t "
         "with design degrees of freedom; proportions with logit intervals."),
        ("Comparison", f"Sample estimates against {population} (reference "
         f"'{ref.population}') aged {ref.min_age}{'–' + str(ref.max_age) if ref.max_age else '+'}: "
         "differences and ratios with confidence intervals (population figures treated as "
         "fixed unless they carry a standard error), direct age standardisation and Rao–Scott "
         "goodness-of-fit tests." + caveat),
    ]


def _reference_sources(project) -> list[tuple[str, str]]:
    from ..compare import reference

    try:
        ref = reference.load(project.reference.population,
                             tables=tuple(str(project.path(t))
                                          for t in project.reference.tables) or None)
    except Exception:   # noqa: BLE001 - the comparison step reports reference errors itself
        return []
    return [(f"{t.title} [{t.confidence}]", t.source) for t in ref]


def report_inputs(pipeline) -> ReportInputs:
    """Build :class:`ReportInputs` from whatever steps of ``pipeline`` have run."""
    import pandas as pd

    from .. import __version__

    project = pipeline.project
    h = pipeline.harmonised
    data = pipeline.data
    waves = []
    for w in project.waves:
        hw = h.waves.get(w.id) if h is not None else None
        n_kept = hw.rows if hw is not None else None
        n_excl = len(hw.exclusions) if hw is not None else None
        src = getattr(hw, "source", None)
        waves.append(WaveInfo(
            id=w.id, file=w.file, codebook=w.codebook,
            format=getattr(src, "format", None) or Path(w.file).suffix.lstrip("."),
            encoding=getattr(src, "encoding", None) or (w.encoding or ""),
            n_read=(n_kept + n_excl) if n_kept is not None else None,
            n_kept=n_kept, n_excluded=n_excl))
    exclusions = issues = excluded = None
    if h is not None:
        if len(h.exclusions):
            excluded = h.exclusions[["wave", "reason"]].reset_index(drop=True)
            exclusions = (h.exclusions.assign(wave=h.exclusions["wave"].astype(str))
                          .groupby(["wave", "reason"], sort=False, observed=True).size()
                          .rename("n").reset_index())
        if h.issues:
            issues = pd.DataFrame([{"wave": str(i.wave), "variable": i.variable,
                                    "message": issue_text(i), "n": int(i.count)}
                                   for i in h.issues])
    if data is None:
        raise ReportError("no harmonised data to report on", code="report.order",
                          hint="run the harmonise step first")
    wcol = analysis_weight(data) if pipeline.weighting else None
    comp = pipeline.comparison or {}
    charts = comp.get("charts") or {}
    inp = ReportInputs(
        title=project.title, date=data_date(project, data), data=data,
        synthetic=project.synthetic, waves=waves, weight_col=wcol,
        exclusions=exclusions, issues=issues, weighting=pipeline.weighting,
        weighting_method=pipeline.weighting_info.get("method", ""),
        weighting_targets=pipeline.weighting_info.get("targets", []),
        comparisons=comp.get("comparisons"), standardised=comp.get("standardised"),
        notes=list(comp.get("notes", [])),
        gof=comp.get("gof"), claims=comp.get("claims"),
        age_sex=age_sex_cells(data, project, wcol),
        education=charts.get("education"),
        entrepreneurship_by_country=charts.get("entrepreneurship_by_country"),
        entrepreneurship_population=charts.get("entrepreneurship_population"),
        reference_sources=_reference_sources(project),
        methods=_methods(project, pipeline), provenance=_provenance(project, pipeline),
        package_version=__version__, command=pipeline.command or "diaspora-survey report",
        min_cell_size=project.report.min_cell_size, excluded=excluded,
        panel=getattr(pipeline, "panel_analysis", None),
    )
    inp.sample_label, inp.population_label = wording(project)
    return inp
