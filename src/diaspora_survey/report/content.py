"""Build the report document from the pipeline's results.

:class:`ReportInputs` collects what the earlier steps produced — harmonised and weighted
respondent data, weighting diagnostics, comparison rows, standardised results, tests,
claim verdicts, provenance — and :func:`build_report` turns it into a format-neutral
:class:`~.document.Report` of *aggregates*. Respondent rows are read here only to count
and estimate; they never become a table row.

Sections: sample and harmonisation (per wave), weighting (per wave), comparisons with the
general population (age, education, entrepreneurship — overall, by wave, by country),
standardised results and tests, claims, charts, methods, provenance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .disclosure import members_column, positions
from .document import Chart, Report, Section, Text
from .tables import Column, ReportTable

PCT = dict(kind="num", digits=1)


@dataclass
class WaveInfo:
    """One wave as declared in the project file plus what happened to it."""

    id: str
    file: str
    codebook: str = ""
    format: str = ""
    encoding: str = ""
    n_read: int | None = None
    n_kept: int | None = None
    n_excluded: int | None = None


@dataclass
class ReportInputs:
    """Everything the report needs; all frames are optional except ``data``.

    * ``data``: harmonised respondent data (schema columns + ``wave``), with the weight
      column ``weight_col`` if weighting ran. Used only to count and estimate.
    * ``exclusions``: frame ``wave, reason, n``; ``issues``: frame ``wave, variable,
      code, message, n``.
    * ``weighting``: ``{wave: diagnostics}`` where diagnostics is a mapping or Series with
      ``n, n_eff, kish_deff, min, max, cv, iterations, converged`` and optionally
      ``margins`` (frame ``variable, category, target, before, after`` as proportions).
    * ``comparisons``: frame of comparison rows (see :func:`comparison_tables`).
    * ``standardised``, ``gof``, ``claims``: frames from the comparison step.
    * ``age_sex``: frame ``age_group, sex, estimate, population, n`` (proportions of
      adults) for the pyramid; ``education``: ``category, estimate, ci_low, ci_high,
      population, n``; ``entrepreneurship_by_country``: ``country, estimate, ci_low,
      ci_high, n`` and ``entrepreneurship_population`` (proportion).
    """

    title: str
    date: str
    data: Any
    synthetic: bool = False
    waves: list[WaveInfo] = field(default_factory=list)
    weight_col: str | None = "weight"
    exclusions: Any = None
    issues: Any = None
    weighting: dict = field(default_factory=dict)
    weighting_method: str = ""
    weighting_targets: list[str] = field(default_factory=list)
    comparisons: Any = None
    standardised: Any = None
    gof: Any = None
    claims: Any = None
    age_sex: Any = None
    education: Any = None
    entrepreneurship_by_country: Any = None
    entrepreneurship_population: float | None = None
    reference_sources: list[tuple[str, str]] = field(default_factory=list)
    methods: list[tuple[str, str]] = field(default_factory=list)
    provenance: list[tuple[str, str, str]] = field(default_factory=list)  # role, path, sha256
    package_version: str = ""
    command: str = ""
    min_cell_size: int = 10
    cv_max: float = 0.30
    notes: list[str] = field(default_factory=list)
    panel: Any = None        # a survey.longitudinal.PanelAnalysis (the panel section), or None
    #: wording from the project ([project] sample, [reference] label): titles and legends
    sample_label: str = "Sample"
    population_label: str = "the population"
    #: one row per excluded respondent (``wave``, ``reason``): positions ``len(data) + i`` of
    #: the respondent universe that disclosure control links every published count to
    excluded: Any = None


def _excluded_waves(inp: ReportInputs):
    import numpy as np

    if inp.excluded is None or len(inp.excluded) == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=object)
    e = inp.excluded
    return (e["wave"].astype(str).to_numpy(dtype=object),
            e["reason"].astype(str).to_numpy(dtype=object))


# ---------------------------------------------------------------------------------------

COMPOSITION_VARS = ("sex", "age_group", "education", "employment_status",
                    "departure_cohort", "country")


def _label(var: str, code) -> str:
    """English label for a schema category code (the code itself if unknown)."""
    from ..harmonise.schema import SCHEMA

    v = SCHEMA.get(var)
    if v is not None:
        for lv in v.levels:
            if lv.code == str(code):
                return lv.label_en
    return str(code)


def _categories(s) -> list:
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        import numpy as np

        codes = s.cat.codes.to_numpy()       # one pass, not one comparison per category
        used = np.bincount(codes[codes >= 0], minlength=len(s.cat.categories)) > 0
        return [c for c, u in zip(s.cat.categories, used) if u]
    return sorted(s.dropna().unique().tolist(), key=str)


def composition_table(inp: ReportInputs) -> ReportTable | None:
    """Unweighted sample composition: n and % per wave for the schema variables.

    Counts and respondent sets come from one stable sort per variable of the combined
    (category, wave) code (:func:`.disclosure.split_positions`): linear in respondents,
    not respondents x categories x waves."""
    import numpy as np
    import pandas as pd

    from .disclosure import split_positions

    df = inp.data
    waves = [w.id for w in inp.waves] or _categories(df["wave"].astype(str))
    wave_a = df["wave"].astype(str).to_numpy(dtype=object)
    w_code, w_uniq = pd.factorize(wave_a)
    W = max(len(w_uniq), 1)
    w_of = {str(u): k for k, u in enumerate(w_uniq)}
    wave_tot = np.bincount(w_code[w_code >= 0], minlength=W)
    empty = np.zeros(0, dtype=np.int64)
    rows = []
    for var in COMPOSITION_VARS:
        if var not in df.columns:
            continue
        s = df[var]
        na = s.isna().to_numpy()
        if isinstance(s.dtype, pd.CategoricalDtype) and "(missing)" not in s.cat.categories:
            cats_all = list(s.cat.categories)
            v_code = s.cat.codes.to_numpy().astype(np.int64)
            v_code[na] = len(cats_all)
            v_of = {c: k for k, c in enumerate(cats_all)}
            v_of["(missing)"] = len(cats_all)
            V = len(cats_all) + 1
        else:      # the values as objects, missing as "(missing)": the groups of ==
            vals = s.astype("object").where(~na, "(missing)").to_numpy(dtype=object)
            v_code, v_uniq = pd.factorize(vals)
            v_of = {u: k for k, u in enumerate(v_uniq)}
            V = max(len(v_uniq), 1)
        v_code = np.where((v_code >= 0) & (w_code >= 0), v_code * W + w_code, -1)
        groups = split_positions(v_code, V * W)
        cats = [c for c in _categories(s)] + (["(missing)"] if na.any() else [])
        for cat in cats:
            rec = {"variable": var.replace("_", " "), "category": _label(var, cat)}
            k = v_of.get(cat)
            for w in waves:
                j = w_of.get(str(w))
                pos = groups[k * W + j] if (k is not None and j is not None) else empty
                tot = int(wave_tot[j]) if j is not None else 0
                n = len(pos)
                rec[f"n_{w}"] = n
                rec[f"p_{w}"] = 100.0 * n / tot if tot else float("nan")
                rec[members_column(f"n_{w}")] = pos
            rec["_public"] = cat == "(missing)"
            rows.append(rec)
    if not rows:
        return None
    data = pd.DataFrame(rows)
    cols = [Column("variable", "Variable", "text"), Column("category", "Category", "text")]
    for w in waves:
        cols += [Column(f"n_{w}", f"{w} n", "int", n_key=f"n_{w}"),
                 Column(f"p_{w}", f"{w} %", n_key=f"n_{w}", **PCT)]
    return ReportTable(
        id="sample_composition", title="Sample composition by wave (unweighted)", data=data,
        columns=cols, n_col=None if not waves else f"n_{waves[0]}", cv_col=None,
        complement_by=["variable"], group_col="variable",
        notes=["Unweighted counts of harmonised respondents; percentages of the wave's sample."])


def waves_table(inp: ReportInputs) -> ReportTable | None:
    import pandas as pd

    if not inp.waves:
        return None
    data = pd.DataFrame([{"wave": w.id, "file": w.file, "codebook": w.codebook,
                          "format": w.format, "encoding": w.encoding, "n_read": w.n_read,
                          "n_excluded": w.n_excluded, "n_kept": w.n_kept} for w in inp.waves])
    # The excluded respondents (e.g. minors) are a cell: a small number is suppressed here
    # as in the exclusions table, and so is "rows read" (read − kept would reveal it).
    # No exclusions at all (0) reveals nothing about anyone and is shown.
    excl = pd.to_numeric(data["n_excluded"], errors="coerce")
    data["n_excluded_cell"] = excl.where(excl > 0)
    if inp.data is not None and "wave" in inp.data.columns:
        import numpy as np

        wave_a = inp.data["wave"].astype(str).to_numpy(dtype=object)
        ex_w, _ = _excluded_waves(inp)
        kept = [positions(wave_a == w.id) for w in inp.waves]
        gone = [positions(ex_w == w.id) + len(wave_a) for w in inp.waves]
        data[members_column("n_kept")] = kept
        data[members_column("n_excluded")] = gone
        data[members_column("n_excluded_cell")] = gone
        data[members_column("n_read")] = [np.concatenate([a, b]) for a, b in zip(kept, gone)]
    return ReportTable(
        id="waves", title="Waves: files read and respondents kept", data=data,
        columns=[Column("wave", "Wave", "text"), Column("file", "File", "text"),
                 Column("codebook", "Codebook", "text")]
        + [Column(k, k.capitalize(), "text") for k in ("format", "encoding")
           if data[k].astype(str).str.len().gt(0).any()]
        + [Column("n_read", "Rows read", "int", n_key="n_excluded_cell"),
           Column("n_excluded", "Excluded", "int", n_key="n_excluded_cell"),
           Column("n_kept", "Kept", "int", stat=False)],
        n_col="n_excluded_cell", cv_col=None,
        notes=["Kept: respondents in the harmonised data (whole waves, always shown). Where "
               "a small number of exclusions is suppressed, rows read is hidden too "
               "(read − kept would reveal it)."])


def exclusions_table(inp: ReportInputs) -> ReportTable | None:
    if inp.exclusions is None or len(inp.exclusions) == 0:
        return None
    d = inp.exclusions.reset_index(drop=True)
    ex_w, ex_r = _excluded_waves(inp)
    if len(ex_w) and inp.data is not None:
        d[members_column("n")] = [positions((ex_w == str(w)) & (ex_r == str(r))) + len(inp.data)
                                  for w, r in zip(d["wave"], d["reason"])]
    return ReportTable(
        id="exclusions", title="Respondents excluded in harmonisation, by reason", data=d,
        columns=[Column("wave", "Wave", "text"), Column("reason", "Reason", "text"),
                 Column("n", "Respondents", "int")], cv_col=None,
        notes=["Exclusions follow the codebooks' eligibility rules (e.g. adults only)."])


def issues_table(inp: ReportInputs) -> ReportTable | None:
    if inp.issues is None or len(inp.issues) == 0:
        return None
    d = inp.issues.reset_index(drop=True)
    cols = [Column("wave", "Wave", "text"), Column("variable", "Variable", "text"),
            Column("message", "Issue", "text"), Column("n", "Rows", "int")]
    return ReportTable(
        id="harmonisation_issues", title="Harmonisation issues", data=d, columns=cols,
        cv_col=None, group_col="wave",
        notes=["Values the codebooks could not map, recoded to missing or flagged; "
               "counts are unweighted rows. The values themselves are listed by "
               "`diaspora-survey harmonise`, not in the report."])


def weighting_tables(inp: ReportInputs) -> list[ReportTable]:
    import pandas as pd

    if not inp.weighting:
        return []
    rows, margins = [], []
    def _get(d, k):
        try:
            return d[k]
        except (KeyError, TypeError, IndexError):
            return getattr(d, k, None)

    for wave, diag in inp.weighting.items():
        get = (lambda k, d=diag: _get(d, k))
        rows.append({"wave": str(wave), "n": get("n"), "n_eff": get("n_eff"),
                     "kish_deff": get("kish_deff"), "min": get("min"), "max": get("max"),
                     "cv": get("cv"), "iterations": get("iterations"),
                     "converged": {True: "yes", False: "NO"}.get(
                         None if get("converged") is None else bool(get("converged")), "")})
        m = get("margins")
        if m is not None and len(m):
            m = m.copy()
            m.insert(0, "wave", str(wave))
            margins.append(m)
    diag = pd.DataFrame(rows)
    if inp.data is not None and "wave" in inp.data.columns:
        wave_a = inp.data["wave"].astype(str).to_numpy(dtype=object)
        diag[members_column("n")] = [positions(wave_a == w) for w in diag["wave"]]
    out = [ReportTable(
        id="weighting_diagnostics", title="Weighting diagnostics by wave", data=diag,
        columns=[Column("wave", "Wave", "text"), Column("n", "n", "int"),
                 Column("n_eff", "Effective n", "int"),
                 Column("kish_deff", "Kish deff", "num", digits=2),
                 Column("min", "Min weight", "num", digits=2),
                 Column("max", "Max weight", "num", digits=2),
                 Column("cv", "CV of weights", "num", digits=2, stat=True),
                 Column("iterations", "Iterations", "int"),
                 Column("converged", "Converged", "text")],
        cv_col=None,
        notes=["Effective n = (Σw)²/Σw² "
               "(Kish); Kish deff = n / effective n."]
        + ([f"Method: {inp.weighting_method}."] if inp.weighting_method else []))]
    if margins:
        m = pd.concat(margins, ignore_index=True)
        # weighting.Diagnostics.margins: margin, category, n, base_share, weighted_share,
        # target_share (shares within the margin)
        m = m.rename(columns={"margin": "variable", "base_share": "before",
                              "weighted_share": "after"})
        if "target_share" in m.columns:
            m["target"] = m["target_share"]
        m["variable"] = m["variable"].astype(str)
        if "n" in m.columns:
            m[members_column("n")] = _margin_members(inp, m)
        m["category"] = [_label(v, c) for v, c in zip(m["variable"], m["category"])]
        for k in ("target", "before", "after"):
            if k in m.columns:
                m[k] = pd.to_numeric(m[k], errors="coerce") * 100
        if "n" not in m.columns:
            m["n"] = float("nan")
        out.append(ReportTable(
            id="weighting_margins", title="Weighting targets and achieved margins (%)",
            data=m[["wave", "variable", "category", "target", "before", "after", "n"]
                   + [c for c in m.columns if c == members_column("n")]],
            columns=[Column("wave", "Wave", "text"), Column("variable", "Variable", "text"),
                     Column("category", "Category", "text"),
                     Column("target", "Target %", stat=False, **PCT),
                     Column("before", "Before %", **PCT), Column("after", "After %", **PCT),
                     Column("n", "n", "int")],
            cv_col=None, complement_by=["wave", "variable"], group_col=["wave", "variable"],
            notes=["Before: unweighted (or base-weighted) sample share; after: with the "
                   "final weights. Targets: " + ("; ".join(inp.weighting_targets) or "see methods")
                   + "."]))
    return out


def _margin_members(inp: ReportInputs, m) -> list:
    """Respondents counted in each weighting-margin row (``sex:age_group`` = ``male:18-24``
    for an interaction); ``None`` where the count cannot be matched exactly.

    A value matches a category when its text is the category (``str``), missing values
    match ``<missing>``/``(missing)``/``nan``/``<NA>``. Each column is coded once
    (:func:`.disclosure.text_codes`) and the respondent sets of every (wave, category
    combination) of a margin come from one sort (:func:`.disclosure.split_positions`)."""
    import numpy as np

    from .disclosure import split_positions, text_codes

    df = inp.data
    missing_tokens = ("<missing>", "(missing)", "nan", "<NA>")
    w_code, w_of = text_codes(df["wave"].to_numpy(dtype=object))
    coded: dict = {}

    def column(v):
        """(codes with missing = the last code, {text: code}, number of codes) of ``v``."""
        if v not in coded:
            col = df[v]
            na = col.isna().to_numpy()
            c, lab = text_codes(col.astype("object").to_numpy(dtype=object), missing=na)
            c[na] = len(lab)
            coded[v] = (c, lab, len(lab) + 1)
        return coded[v]

    split: dict = {}

    def groups(names):
        """({code tuple: positions}) of a margin's columns within the waves."""
        if names not in split:
            code, size = w_code.copy(), max(len(w_of), 1)
            for v in names:
                c, _, k = column(v)
                code = np.where(code >= 0, code * k + c, -1)
                size *= k
            present, inv = np.unique(code[code >= 0], return_inverse=True)
            dense = np.full(len(code), -1, dtype=np.int64)
            dense[code >= 0] = inv
            split[names] = (dict(zip(present.tolist(), range(len(present)))),
                            split_positions(dense, len(present)))
        return split[names]

    empty = np.zeros(0, dtype=np.int64)
    out = []
    for w, var, cat, n in zip(m["wave"], m["variable"], m["category"], m["n"]):
        names, codes = str(var).split(":"), str(cat).split(":")
        if len(names) != len(codes) or not all(v in df.columns for v in names):
            out.append(None)
            continue
        key = w_of.get(str(w))
        for v, c in zip(names, codes):
            cc, lab, k = column(v)
            j = k - 1 if c in missing_tokens else lab.get(c)
            key = None if (key is None or j is None) else key * k + j
        if key is None:
            pos = empty
        else:
            where, parts = groups(tuple(names))
            g = where.get(key)
            pos = parts[g] if g is not None else empty
        try:
            same = len(pos) == int(n)
        except (TypeError, ValueError):
            same = False
        out.append(pos if same else None)
    return out


def weights_histogram(inp: ReportInputs, bins: int = 30) -> ReportTable | None:
    """Binned weight distribution per wave (counts per bin are cells, so suppressible)."""
    import numpy as np
    import pandas as pd

    wc = inp.weight_col
    if wc is None or wc not in inp.data.columns:
        return None
    w = pd.to_numeric(inp.data[wc], errors="coerce").to_numpy(dtype="float64")
    waves = inp.data["wave"].astype(str).to_numpy()
    frames = []
    for wave in [x.id for x in inp.waves] or sorted(set(waves)):
        sel = (waves == wave) & np.isfinite(w)
        ww = w[sel]
        if ww.size == 0:
            continue
        ww = ww / ww.mean()
        hi = float(np.quantile(ww, 0.995)) if ww.size > 20 else float(ww.max())
        edges = np.linspace(0.0, max(hi, 1.5), bins + 1)
        counts, _ = np.histogram(np.clip(ww, 0, edges[-1]), bins=edges)
        # no respondent sets (_members_): bins are not categories any other table shows,
        # so the per-wave complement rule protects them (the bins add up to the wave)
        frames.append(pd.DataFrame({"wave": wave, "bin_low": edges[:-1],
                                    "bin_high": edges[1:], "n": counts}))
    if not frames:
        return None
    return ReportTable(
        id="weights_distribution", title="Distribution of weights", data=pd.concat(frames),
        columns=[Column("wave", "Wave", "text"), Column("bin_low", "From", digits=2, stat=False),
                 Column("bin_high", "To", digits=2, stat=False), Column("n", "n", "int")],
        cv_col=None, complement_by=["wave"])     # the bins of a wave add up to its n


# ---- comparisons -----------------------------------------------------------------------

def _registry_labels():
    from ..compare.indicators import BUILTIN

    return {i.name: i.label for i in BUILTIN}, frozenset(i.name for i in BUILTIN if i.unit == "years")


# labels and units from the indicator registry (compare/indicators.py)
INDICATOR_LABELS, YEAR_INDICATORS = _registry_labels()
CATEGORY_LABELS = {
    "higher": "Higher (incl. postgraduate)", "incomplete_higher": "Incomplete higher",
    "secondary_vocational": "Secondary / initial vocational",
    "secondary_general": "Secondary general", "basic_general": "Basic general",
    "primary_or_less": "Primary or less",
}

#: which indicators go in which topic table, per scope (overall / wave / country)
TOPICS = (
    ("age", "Age", {"overall": ("mean_age", "median_age", "share_aged_18_34", "age_distribution"),
                    "wave": ("mean_age", "median_age", "share_aged_18_34", "age_distribution"),
                    "country": ("mean_age", "share_aged_18_34")}),
    ("education", "Education",
     {"overall": ("higher_education", "higher_education_by_age", "education_distribution"),
      "wave": ("higher_education", "higher_education_by_age", "education_distribution"),
      "country": ("higher_education",)}),
    ("entrepreneurship", "Entrepreneurship",
     {"overall": ("entrepreneurs_all", "entrepreneurs_employed"),
      "wave": ("entrepreneurs_all", "entrepreneurs_employed"),
      "country": ("entrepreneurs_all", "entrepreneurs_employed")}),
)
SCOPES = (("overall", "", "all respondents"), ("wave", "wave", "by wave"),
          ("country", "country", "by country of residence"))


def comparison_rows(df):
    """Comparison rows (``diaspora_survey.compare.comparison`` columns) in display units.

    Proportions become percent and their differences percentage points; ages stay in
    years. Gap rows (no estimate) and goodness-of-fit rows are left to other tables.
    ``n_cell`` (respondents in the cell, for disclosure control) defaults to ``n``.
    """
    import numpy as np
    import pandas as pd

    d = df.reset_index(drop=True).copy()
    if "group_by" not in d.columns and "by" in d.columns:
        d = d.rename(columns={"by": "group_by"})
    for c in ("group_by", "group", "category", "adjustment", "source"):
        if c not in d.columns:
            d[c] = ""
        d[c] = d[c].fillna("").astype(str)
    if "n_cell" not in d.columns:
        d["n_cell"] = d["n"]
    share = ~d["indicator"].isin(YEAR_INDICATORS).to_numpy()
    if "unit" in d.columns:          # project indicators carry their unit
        share &= (d["unit"].fillna("").astype(str) != "years").to_numpy()
    for c in ("estimate", "ci_low", "ci_high", "population", "difference",
              "difference_ci_low", "difference_ci_high"):
        d[c] = np.where(share, pd.to_numeric(d[c], errors="coerce") * 100,
                        pd.to_numeric(d[c], errors="coerce"))
    d["indicator_label"] = d["indicator"].map(INDICATOR_LABELS).fillna(d["indicator"])
    d["category_label"] = d["category"].map(CATEGORY_LABELS).fillna(d["category"])
    if "year" in d.columns:
        d["year"] = d["year"].map(lambda y: "" if pd.isna(y) else str(int(y))
                                  if float(y).is_integer() else str(y))
    else:
        d["year"] = ""
    for c in ("reference_table", "universe", "standard", "caveat", "frame"):
        d[c] = d[c].fillna("").astype(str) if c in d.columns else ""
    d["reference_label"] = [f"{t} ({y})" if t and y else t for t, y in zip(d["reference_table"], d["year"])]
    d["universe_label"] = [_universe_label(u, f) if t else "" for u, f, t in
                           zip(d["universe"], d["frame"], d["reference_table"])]
    return d


def _universe_label(universe: str, frame: str) -> str:
    """Short universe of a comparison row: the sample frame, and the population's universe
    when it differs (a table that could not be restricted)."""
    frame = frame.replace("ages ", "")
    if "restricted to" in universe or not universe:
        return frame
    return f"{frame}; population: {universe}"


def caveat_marks(d, column: str = "caveat"):
    """Replace each distinct caveat text of ``d[column]`` by a mark ([1], [2] ...) in a new
    column ``caveat_mark``; returns the notes ``[k] text`` that explain the marks."""
    marks: dict[str, str] = {}
    d["caveat_mark"] = [marks.setdefault(c, f"[{len(marks) + 1}]") if c else "" for c in d[column]]
    return [f"{k} Caveat: {t}." for t, k in marks.items()]


def _sources(d) -> list[str]:
    """One note per population source, naming the indicators it supplies."""
    by_source: dict[str, list[str]] = {}
    for rec in d[["indicator_label", "source", "year"]].drop_duplicates().to_dict("records"):
        if rec["source"]:
            src = rec["source"] + (f" ({rec['year']})" if rec["year"] and rec["year"]
                                   not in rec["source"] else "")
            labels = by_source.setdefault(src, [])
            if rec["indicator_label"] not in labels:
                labels.append(rec["indicator_label"])
    return [f"Population — {', '.join(v)}: {k}." for k, v in by_source.items()]


COMPARISON_NOTE = ("Sample: weighted estimate with its 95% design-based confidence interval "
                   "(percent for shares, years for ages). Population: reference value for the "
                   "same age frame. Difference: sample − population (percentage points for "
                   "shares); Ratio: sample / population; p: two-sided test of no difference.")


def _comparison_table(d, id, title, group: str | None, extra_notes=(),
                      with_adjustment: bool = False) -> ReportTable:
    cols = []
    if group:
        cols.append(Column("group", group.replace("_", " ").capitalize(), "text"))
    cols.append(Column("indicator_label", "Indicator", "text"))
    if (d["category_label"] != "").any():
        cols.append(Column("category_label", "Category", "text"))
    if with_adjustment:
        cols.append(Column("adjustment", "Adjustment", "text"))
    if with_adjustment and "standard" in d.columns and (d["standard"].fillna("") != "").any():
        cols.append(Column("standard", "Standard", "text"))
    cols += [
        Column("estimate", "Sample (95% CI)", "est_ci", digits=1, low="ci_low", high="ci_high",
               mark_low_precision=True),
        Column("population", "Population", digits=1, stat=False),
        Column("difference", "Difference (95% CI)", "est_ci", digits=1,
               low="difference_ci_low", high="difference_ci_high"),
        Column("ratio", "Ratio", digits=2),
        Column("p_value", "p", "pvalue"),
        Column("n", "n", "int"),
    ]
    d = d.reset_index(drop=True)
    cav_notes = caveat_marks(d)
    # what each row rests on; a column whose rows are all empty is left out
    for key, lab in (("reference_label", "Table (year)"), ("universe_label", "Universe"),
                     ("caveat_mark", "Caveat")):
        if key in d.columns and (d[key] != "").any():
            cols.append(Column(key, lab, "text"))
    return ReportTable(id=id, title=title, data=d, columns=cols,
                       n_col="n_cell", cv_col="cv" if "cv" in d.columns else None,
                       notes=[COMPARISON_NOTE] + list(extra_notes) + cav_notes + _sources(d),
                       complement_by=["group", "indicator", "adjustment"],
                       group_col=["group", "indicator_label"] if group else "indicator_label")


def comparison_tables(inp: ReportInputs) -> list:
    """Age, education, entrepreneurship: overall, by wave, by country (crude rows)."""
    if inp.comparisons is None or len(inp.comparisons) == 0:
        return []
    d = comparison_rows(inp.comparisons)
    d = d[d["estimate"].notna() & (d["category"] != "goodness_of_fit")]
    blocks: list = []
    for key, name, wanted in TOPICS:
        for scope, by, label in SCOPES:
            part = d[(d["group_by"] == by) & (d["adjustment"] == "crude")
                     & d["indicator"].isin(wanted[scope])]
            if part.empty:
                continue
            order = {k: i for i, k in enumerate(wanted[scope])}
            part = part.assign(_o=part["indicator"].map(order))
            if by:
                part = part.sort_values(["group", "_o"], kind="stable") if by == "country" \
                    else part.sort_values(["_o"], kind="stable")
                if by == "wave":
                    part = part.sort_values(["group", "_o"], kind="stable")
            else:
                part = part.sort_values("_o", kind="stable")
            blocks.append(_comparison_table(part.drop(columns="_o"), f"compare_{key}_{scope}",
                                            f"{name}: {label}", by or None))
    builtin = {i for _, _, w in TOPICS for v in w.values() for i in v} | set(INDICATOR_LABELS)
    own = d[~d["indicator"].isin(builtin) & (d["adjustment"] == "crude")]
    for scope, by, label in SCOPES:          # project indicators ([[compare.indicators]])
        part = own[own["group_by"] == by]
        if len(part):
            blocks.append(_comparison_table(part.sort_values(["group"], kind="stable") if by else part,
                                            f"compare_project_{scope}", f"Project indicators: {label}",
                                            by or None))
    return blocks


def standardised_table(inp: ReportInputs) -> ReportTable | None:
    if inp.comparisons is None or len(inp.comparisons) == 0:
        return None
    d = comparison_rows(inp.comparisons)
    d = d[d["estimate"].notna() & d["adjustment"].str.startswith(("direct", "indirect"))]
    if d.empty:
        return None
    d = d.assign(group=d["group"].where(d["group_by"] != "", "all"))
    return _comparison_table(d, "standardised", "Age-standardised comparisons", "group",
                             ["Direct standardisation: the sample's age (× sex) specific "
                              "rates weighted by the standard named in the row (the population's "
                              "age (× sex) structure; for a rate among the employed, the "
                              "employed's), as R survey's svystandardize; the population rate is "
                              "standardised to the same standard where its age-specific rates are "
                              "known. Indirect: the population's age-specific rates applied to the "
                              "sample's age structure. Compare with the crude rows above."],
                             with_adjustment=True)


def gof_table(inp: ReportInputs) -> ReportTable | None:
    import pandas as pd

    if inp.comparisons is None or len(inp.comparisons) == 0:
        return None
    d = inp.comparisons
    d = d[d["category"].astype(str) == "goodness_of_fit"].reset_index(drop=True).copy()
    if d.empty:
        return None
    if "group_by" not in d.columns and "by" in d.columns:
        d = d.rename(columns={"by": "group_by"})
    d["group_by"] = d["group_by"].fillna("").astype(str)
    key_group = d["group"].fillna("").astype(str)
    d["group"] = key_group.where(d["group_by"] != "", "all")
    d["indicator_label"] = d["indicator"].map(INDICATOR_LABELS).fillna(d["indicator"])
    for c in ("statistic", "p_value"):
        d[c] = pd.to_numeric(d.get(c), errors="coerce")
    # the test's degrees of freedom: categories compared (population share > 0) − 1; the
    # comparison rows' ``df`` is the design's degrees of freedom, not the test's
    allc = inp.comparisons
    if "group_by" not in allc.columns and "by" in allc.columns:
        allc = allc.rename(columns={"by": "group_by"})
    cats = allc[(allc["category"].astype(str) != "goodness_of_fit")
                & (allc["adjustment"].astype(str) == "crude")
                & (pd.to_numeric(allc["population"], errors="coerce") > 0)]
    k = cats.groupby([cats["group_by"].fillna("").astype(str),
                      cats["group"].fillna("").astype(str),
                      cats["indicator"].astype(str)]).size().to_dict()
    d["chisq_df"] = [float(k[key] - 1) if k.get(key, 0) > 1 else float("nan")
                     for key in zip(d["group_by"], key_group, d["indicator"].astype(str))]
    return ReportTable(
        id="goodness_of_fit", title="Goodness of fit to the population distribution", data=d,
        columns=[Column("group", "Group", "text"), Column("indicator_label", "Distribution", "text"),
                 Column("statistic", "X²", digits=1),
                 Column("chisq_df", "df", digits=0, stat=False),
                 Column("p_value", "p (Rao–Scott)", "pvalue"), Column("n", "n", "int")],
        cv_col=None, group_col="group",
        notes=["Pearson X² of the weighted sample distribution against the population shares "
               "(df: categories compared − 1), with the Rao–Scott design-based p-value (as R "
               "survey's svygofchisq)."])


def _generic_table(df, id: str, title: str, notes=()) -> ReportTable:
    """A table for frames whose columns we only know loosely (tests, verdicts)."""
    import pandas as pd

    d = df.reset_index(drop=True).copy()
    cols = []
    for c in d.columns:
        if c in ("suppressed", "low_precision") or str(c).startswith("_"):
            continue
        s = d[c]
        label = str(c).replace("_", " ")
        if pd.api.types.is_bool_dtype(s):
            d[c] = s.map({True: "yes", False: "no"}).astype("object")
            cols.append(Column(c, label, "text"))
        elif pd.api.types.is_integer_dtype(s) and c not in ("year",):
            cols.append(Column(c, label, "int", stat=c in ("n",)))
        elif pd.api.types.is_float_dtype(s):
            kind = "pvalue" if c in ("p_value", "p") else "num"
            cols.append(Column(c, label, kind, digits=2 if kind == "num" else 1,
                               stat=c in ("estimate", "ci_low", "ci_high", "n")))
        else:
            d[c] = s.astype("object").where(s.notna(), "").astype(str)
            cols.append(Column(c, label, "text"))
    n_col = "n" if "n" in d.columns else None
    return ReportTable(id=id, title=title, data=d, columns=cols, notes=list(notes),
                       n_col=n_col, cv_col="cv" if "cv" in d.columns else None,
                       no_disclosure_reason=None if n_col else "test statistics and verdicts, "
                       "no respondent counts")


def claims_table(inp: ReportInputs) -> ReportTable | None:
    """Claim verdicts (``diaspora_survey.compare.claims.evaluate_claims``), one row per claim × group."""
    import pandas as pd

    c = inp.claims
    if c is None or len(c) == 0:
        return None
    d = c.reset_index(drop=True).copy()
    for col in ("statement", "group", "test", "verdict", "attribution", "reason",
                "reference_table", "universe", "standard", "caveat"):
        d[col] = d[col].fillna("").astype(str) if col in d.columns else ""
    years = pd.to_numeric(d["year"], errors="coerce") if "year" in d.columns else pd.Series(float("nan"), index=d.index)
    d["reference_label"] = [f"{t} ({int(y)})" if t and y == y else t
                            for t, y in zip(d["reference_table"], years)]
    frames = d["frame"].fillna("").astype(str) if "frame" in d.columns else pd.Series("", index=d.index)
    d["universe"] = [_universe_label(u, f) if f else u for u, f in zip(d["universe"], frames)]
    for col in ("value", "ci_low", "ci_high"):
        d[col] = pd.to_numeric(d[col], errors="coerce") if col in d.columns else float("nan")
    notes = ["Verdicts: supported = the whole 95% confidence interval lies on the claimed side "
             "of the threshold; not supported = it lies on the other side; inconclusive = it "
             "contains the threshold, or the comparison behind it is not valid (reference table "
             "too far from fieldwork, population universe not restrictable to the frame — said in "
             "brackets); not evaluable = no population figure. Each verdict names the reference "
             "table and year, the universe and the standard it rests on. Differences of "
             "shares are proportions (0.10 = 10 percentage points)."]
    notes += caveat_marks(d)
    for rec in d[["statement", "attribution"]].drop_duplicates().to_dict("records"):
        if rec["attribution"]:
            notes.append(f"“{rec['statement']}”: {rec['attribution']}")
    return ReportTable(
        id="claims", title="Claims and verdicts", data=d,
        columns=[Column("statement", "Claim", "text"), Column("group", "Group", "text"),
                 Column("test", "Test", "text"),
                 Column("value", "Value (95% CI)", "est_ci", digits=2, low="ci_low",
                        high="ci_high"),
                 Column("verdict", "Verdict", "text"),
                 Column("reference_label", "Table (year)", "text"),
                 Column("universe", "Universe", "text"),
                 Column("standard", "Standard", "text"),
                 Column("caveat_mark", "Caveat", "text")],
        n_col=None, cv_col=None, group_col="statement", notes=notes,
        no_disclosure_reason="claims are evaluated for all respondents and whole waves only")


# ---- charts ---------------------------------------------------------------------------

def chart_blocks(inp: ReportInputs) -> list:
    from .tables import ReportTable as RT

    blocks: list = []
    if inp.age_sex is not None and len(inp.age_sex):
        d = inp.age_sex.reset_index(drop=True)
        blocks.append(Chart(
            id="age_pyramid", title=f"Age structure: {inp.sample_label} vs {inp.population_label}",
            kind="age_pyramid", caption="Bars: weighted sample (percent of adult respondents "
            f"who reported sex male or female); outlines: {inp.population_label}, adults.",
            options={"population_label": inp.population_label},
            table=RT(id="chart_age_pyramid", title="Age pyramid data", data=d,
                     columns=[Column("age_group", "Age group", "text"),
                              Column("sex", "Sex", "text"),
                              Column("estimate", "Sample", "pct"),
                              Column("population", "Population", "pct", stat=False),
                              Column("n", "n", "int")], cv_col=None,
                     complement_by=["sex"])))
    if inp.education is not None and len(inp.education):
        d = inp.education.reset_index(drop=True)
        blocks.append(Chart(
            id="education", title=f"Education: {inp.sample_label} vs {inp.population_label}",
            kind="education", caption="Weighted sample share with 95% confidence interval "
            "beside the population share.",
            options={"sample_label": f"{inp.sample_label} (weighted)",
                     "population_label": inp.population_label},
            table=RT(id="chart_education", title="Education chart data", data=d,
                     columns=[Column("category", "Category", "text"),
                              Column("estimate", "Sample", "pct"),
                              Column("ci_low", "95% CI", "pct_ci", high="ci_high"),
                              Column("population", "Population", "pct", stat=False),
                              Column("n", "n", "int")], cv_col=None,
                     complement_by=[])))     # one distribution: shares add up to 100 %
    if inp.entrepreneurship_by_country is not None and len(inp.entrepreneurship_by_country):
        d = inp.entrepreneurship_by_country.reset_index(drop=True)
        blocks.append(Chart(
            id="entrepreneurship_by_country",
            title="Entrepreneurship by country of residence",
            kind="entrepreneurship_by_country",
            caption="Weighted share of employers and own-account workers among respondents "
            f"in each country, with 95% confidence intervals; dashed line: {inp.population_label}. "
            "Countries with too few respondents are not shown.",
            options={"population": inp.entrepreneurship_population,
                     "population_label": inp.population_label,
                     "sample_label": f"{inp.sample_label} (weighted)"},
            table=RT(id="chart_entrepreneurship", title="Entrepreneurship chart data", data=d,
                     columns=[Column("country", "Country", "text"),
                              Column("estimate", "Sample", "pct"),
                              Column("ci_low", "95% CI", "pct_ci", high="ci_high"),
                              Column("n", "n", "int")], cv_col=None)))
    hist = weights_histogram(inp)
    if hist is not None:
        blocks.append(Chart(
            id="weights", title="Distribution of the weights", kind="weights", table=hist,
            caption="Final weights within each wave, scaled to mean 1 (dotted line); the "
            "top 0.5% are gathered in the last bin. Bins with too few respondents are not drawn."))
    return blocks


# ---- the document ----------------------------------------------------------------------

def build_report(inp: ReportInputs) -> Report:
    """The full report document (not yet disclosed)."""
    import pandas as pd

    n_total = len(inp.data)
    waves = [w.id for w in inp.waves] or _categories(inp.data["wave"].astype(str))
    wave_n = inp.data["wave"].astype(str).value_counts()
    facts = [("Waves", ", ".join(waves)),
             ("Respondents", f"{n_total:,d} in total; "
              + "; ".join(f"{w}: {int(wave_n.get(w, 0)):,d}" for w in waves)),
             ("Data as of", inp.date),
             ("Disclosure control", f"cells with fewer than {inp.min_cell_size} unweighted "
              "respondents are suppressed (—)")]
    sections = []
    from .summary import summary_section

    has_rows = inp.comparisons is not None and len(inp.comparisons) > 0
    summary = summary_section(inp, comparison_rows(inp.comparisons) if has_rows else None,
                              sample_label=inp.sample_label,
                              population_label=inp.population_label)
    if summary is not None:          # the answers first (PDF pages 1-2, first xlsx sheet)
        sections.append(summary)

    s1 = Section("1. Sample and harmonisation")
    s1.blocks.append(Text("Each wave was read from its raw file, harmonised to the common "
                          "schema with its codebook, and stacked. The tables below show what "
                          "was read, who was excluded and why, and the resulting sample."))
    for t in (waves_table(inp), exclusions_table(inp), issues_table(inp),
              composition_table(inp)):
        if t is not None:
            s1.blocks.append(t)
    sections.append(s1)

    s2 = Section("2. Weighting")
    wt = weighting_tables(inp)
    if wt:
        s2.blocks.append(Text(
            "The design weights of the file are used as they are (method none: no adjustment "
            "to population margins). Large design effects mean fewer effective respondents."
            if inp.weighting_method.startswith("none") else
            "Weights adjust each wave to the population margins named "
            "below. Large design effects mean fewer effective respondents."))
        s2.blocks.extend(wt)
    else:
        s2.blocks.append(Text("Weighting did not run; estimates below are unweighted.",
                              "warning"))
    sections.append(s2)

    s3 = Section("3. Comparison with the general population")
    comp = comparison_tables(inp)
    if comp:
        s3.blocks.append(Text(f"Weighted estimates ({inp.sample_label}) against "
                              f"{inp.population_label} in the same age frame, overall, by wave "
                              "and by the other groups of [compare] by. "
                              "Population figures are fixed reference values with the sources "
                              "named under each table."))
        s3.blocks.extend(comp)
    else:
        s3.blocks.append(Text("The comparison step did not run; no comparison tables.",
                              "warning"))
    sections.append(s3)

    s4 = Section("4. Standardised results, tests and claims")
    for t in (standardised_table(inp), gof_table(inp)):
        if t is not None:
            s4.blocks.append(t)
    if inp.standardised is not None and len(inp.standardised):
        s4.blocks.append(_generic_table(inp.standardised, "standardised_extra",
                                        "Further standardised results"))
    claims = claims_table(inp)
    if claims is not None:
        s4.blocks.append(claims)
    if not s4.blocks:
        s4.blocks.append(Text("No standardised results, tests or claims were produced.",
                              "warning"))
    sections.append(s4)

    if inp.panel is not None:
        from .panel import panel_section

        sections.append(panel_section(inp, f"{len(sections) + 1}. Panel: returns and onward moves"))
    charts = chart_blocks(inp)
    if charts:
        sections.append(Section(f"{len(sections) + 1}. Charts", charts))

    methods = Section("Methods")
    for head, text in inp.methods:
        methods.blocks.append(Text(f"{head}. {text}" if head else text))
    methods.blocks.append(Text(
        f"Disclosure control. Every table and chart in every format applies a minimum cell "
        f"size of {inp.min_cell_size} unweighted respondents: smaller cells are shown as "
        "“—”. Further cells are suppressed where a hidden cell could otherwise be recovered "
        "by subtraction from anything this report publishes (wave sizes minus the visible "
        "categories, all waves minus single waves, or across tables), choosing the smallest "
        "such cell and sparing the headline comparisons where possible. Counts of missing "
        "answers are shown whatever their size (every estimate's base reveals them). "
        "Estimates with a coefficient of variation above "
        f"{inp.cv_max:.0%} are marked †. No respondent-level data appears in this report."))
    if inp.reference_sources:
        src = pd.DataFrame(inp.reference_sources, columns=["indicator", "source"])
        methods.blocks.append(ReportTable(
            id="reference_sources", title="Reference sources", data=src,
            columns=[Column("indicator", "Indicator", "text"),
                     Column("source", "Source", "text")],
            n_col=None, cv_col=None, no_disclosure_reason="published population figures"))
    sections.append(methods)

    prov = Section("Provenance")
    prov.blocks.append(Text(f"diaspora-survey {inp.package_version}; command: "
                            f"{inp.command or 'diaspora-survey report'}"))
    if inp.provenance:
        p = pd.DataFrame(inp.provenance, columns=["role", "path", "sha256"])
        prov.blocks.append(ReportTable(
            id="provenance", title="Input files (SHA-256)", data=p,
            columns=[Column("role", "Role", "text"), Column("path", "File", "text"),
                     Column("sha256", "SHA-256", "text", mono=True)],
            n_col=None, cv_col=None, no_disclosure_reason="file hashes"))
    for note in inp.notes:
        prov.blocks.append(Text(note, "note"))
    sections.append(prov)

    subtitle = "Survey report"
    return Report(title=inp.title, subtitle=subtitle, date=inp.date, synthetic=inp.synthetic,
                  facts=facts, sections=sections, min_cell_size=inp.min_cell_size,
                  cv_max=inp.cv_max)
