"""Claims about the emigrants, tested against a comparison (``claims.yaml``).

A claim names a row of :func:`diaspora_survey.compare.comparison.compare`'s result and a threshold::

    claims:
      - id: decade_younger
        statement: "Emigrants are about a decade younger than the population"
        attribution: "..."                 # who said it, with caveats
        indicator: mean_age                # a compare() indicator
        category: ""                       # for distributions (e.g. "18-24")
        adjustment: crude                  # crude | direct | indirect (prefix match)
        metric: difference                 # difference | ratio | estimate
        op: "<="                           # <=, <, >=, >
        threshold: -8                      # "at least 8 years below"

Panel claims (about returns and onward moves, evaluated on the linked panel — see
``docs/panel.md``) use the indicators :data:`PANEL_INDICATORS` (``returned_share``,
``moved_on_share``, ``stayed_share``), ``group`` as one category or a list of categories of
``by`` (default ``host_region``), and for a comparison between groups ``versus`` with
``metric: difference`` (share in ``group`` minus share in ``versus``)::

      - id: returns_cis_above_europe
        statement: "Returns concern the CIS much more than Europe"
        indicator: returned_share
        by: host_region
        group: [south_caucasus, central_asia]
        versus: [eu_eea, other_europe]
        metric: difference
        op: ">"
        threshold: 0

Verdict from the confidence interval of the metric (level of the comparison):
``supported`` when the whole interval lies on the claimed side of the threshold,
``not supported`` when the whole interval lies on the other side, ``inconclusive`` when
it contains the threshold, ``not evaluable`` when the comparison has no figure (e.g. a
gap in the reference data); the interval that decides is reported.

A verdict says what it rests on: each row of :func:`evaluate_claims` names the reference
table and year, the fieldwork year, the universe, the standard and the caveats of the
comparison behind it. A comparison that is not valid on all of these (the comparison's
``validity`` column: a reference more than ``max_year_gap`` years from fieldwork, a
population universe that cannot be restricted to the frame, an unknown fieldwork year)
turns ``supported`` / ``not supported`` into ``inconclusive (<why>)``, e.g.
``inconclusive (reference 8 years from fieldwork)`` — unless the project accepted that
gap (``[reference] accept``), in which case the caveat stays beside the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ProjectError

METRICS = {"difference": ("difference", "difference_ci_low", "difference_ci_high"),
           "ratio": ("ratio", "ratio_ci_low", "ratio_ci_high"),
           "estimate": ("estimate", "ci_low", "ci_high")}
OPS = ("<=", "<", ">=", ">")
FIELDS = ("id", "statement", "attribution", "indicator", "category", "adjustment", "metric",
          "op", "threshold", "group", "note", "by", "versus")
#: panel indicators → the follow-up status whose share they are
PANEL_INDICATORS = {"returned_share": "returned", "moved_on_share": "moved_on", "stayed_share": "stayed"}


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    indicator: str
    metric: str
    op: str
    threshold: float
    attribution: str = ""
    category: str = ""
    adjustment: str = "crude"
    group: str = ""
    note: str = ""
    by: str = ""
    versus: str = ""

    @property
    def is_panel(self) -> bool:
        return self.indicator in PANEL_INDICATORS


def _groups(v) -> str:
    """A group as text: a list of categories joined with '+'."""
    if isinstance(v, (list, tuple)):
        return "+".join(str(x).strip() for x in v)
    return str(v or "").strip()


def _err(msg, where, hint):
    return ProjectError(msg, code="claims.invalid", where=where, hint=hint)


def parse_claims(doc, where: str = "claims", indicators=()) -> list[Claim]:
    """Validate a claims document (``{"claims": [...]}`` or a list) into :class:`Claim`s."""
    from .indicators import registry

    names = tuple(registry(indicators))
    items = doc.get("claims") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise _err("expected a non-empty list under 'claims:'", where,
                   "claims: [{id: ..., indicator: mean_age, metric: difference, op: '<=', threshold: -8}]")
    out, seen = [], set()
    for i, c in enumerate(items):
        w = f"{where}: claims[{i}]"
        if not isinstance(c, dict):
            raise _err("a claim must be a mapping", w, "see the claims.yaml of the example project")
        bad = [k for k in c if k not in FIELDS]
        if bad:
            raise _err(f"unknown field(s) {bad}", w, "allowed: " + ", ".join(FIELDS))
        for k in ("id", "statement", "indicator", "metric", "op", "threshold"):
            if c.get(k) in (None, ""):
                raise _err(f"{k} is missing", f"{w}: {k}", "every claim needs id, statement, "
                           "indicator, metric, op and threshold")
        if c["indicator"] not in names and c["indicator"] not in PANEL_INDICATORS:
            raise _err(f"indicator {c['indicator']!r} is not known", f"{w}: indicator",
                       "one of: " + ", ".join(list(names) + list(PANEL_INDICATORS)) + " (or a project "
                       "indicator of [[compare.indicators]])")
        panel = c["indicator"] in PANEL_INDICATORS
        if not panel and (c.get("by") or c.get("versus")):
            raise _err("'by' and 'versus' are for panel indicators", f"{w}: {'by' if c.get('by') else 'versus'}",
                       "panel indicators: " + ", ".join(PANEL_INDICATORS) + "; for comparisons use 'group'")
        if panel:
            if c["metric"] not in ("estimate", "difference"):
                raise _err(f"metric {c['metric']!r} is not available for {c['indicator']}", f"{w}: metric",
                           "estimate (the share) or difference (with versus: the other group)")
            if (c["metric"] == "difference") != bool(c.get("versus")):
                raise _err("metric difference needs 'versus' (and 'versus' needs metric difference)",
                           f"{w}: versus", "versus: [eu_eea, other_europe] with metric: difference")
            for k in ("category", "adjustment"):
                if c.get(k):
                    raise _err(f"{k!r} is not used by panel indicators", f"{w}: {k}", f"remove {k}")
        if c["metric"] not in METRICS:
            raise _err(f"metric {c['metric']!r} is not known", f"{w}: metric", "one of: " + ", ".join(METRICS))
        if str(c["op"]) not in OPS:
            raise _err(f"op {c['op']!r} is not known", f"{w}: op", "one of: " + ", ".join(OPS))
        try:
            thr = float(c["threshold"])
        except (TypeError, ValueError):
            raise _err(f"threshold {c['threshold']!r} is not a number", f"{w}: threshold",
                       "e.g. threshold: -8 or threshold: 3") from None
        if isinstance(c["threshold"], bool) or thr != thr or thr in (float("inf"), float("-inf")):
            raise _err(f"threshold {c['threshold']!r} is not a finite number", f"{w}: threshold",
                       "e.g. threshold: -8 or threshold: 3")
        cid = str(c["id"])
        if cid in seen:
            raise _err(f"duplicate claim id {cid!r}", w, "claim ids must be unique")
        seen.add(cid)
        adj = str(c.get("adjustment") or "crude")
        if not adj.startswith(("crude", "direct", "indirect")):
            raise _err(f"adjustment {adj!r} is not known", f"{w}: adjustment",
                       "crude, direct or indirect")
        out.append(Claim(id=cid, statement=" ".join(str(c["statement"]).split()),
                         indicator=c["indicator"], metric=c["metric"], op=str(c["op"]),
                         threshold=thr, attribution=" ".join(str(c.get("attribution") or "").split()),
                         category=str(c.get("category") or ""), adjustment=adj,
                         group=_groups(c.get("group")), note=" ".join(str(c.get("note") or "").split()),
                         by=str(c.get("by") or ("host_region" if panel and (c.get("group") or c.get("versus")) else "")),
                         versus=_groups(c.get("versus"))))
    return out


def load_claims(path, indicators=()) -> list[Claim]:
    """Read and validate a claims YAML file (``indicators``: project indicators)."""
    import yaml

    from .._files import read_text_input
    from .._yaml import safe_load

    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise _err(f"a claims file is a path, not {type(path).__name__}", None,
                   "load_claims('codebooks/claims.yaml')")
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        raise _err("claims file not found", str(p), "set [compare] claims in diaspora-survey.toml "
                   "or pass --claims FILE")
    try:
        doc = safe_load(read_text_input(p, what="claims file", error=ProjectError, code="claims"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise _err(f"not valid YAML: {getattr(e, 'problem', e)}",
                   f"{p}:{mark.line + 1}" if mark is not None else str(p),
                   "check indentation and quoting") from None
    return parse_claims(doc, str(p), indicators)


def verdict(op: str, threshold: float, lo: float, hi: float) -> str:
    """supported / not supported / inconclusive from the interval [lo, hi]."""
    import math

    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "not evaluable"
    if op in (">=", ">"):
        if lo > threshold or (op == ">=" and lo == threshold):
            return "supported"
        if hi < threshold or (op == ">" and hi == threshold):
            return "not supported"
        return "inconclusive"
    if hi < threshold or (op == "<=" and hi == threshold):
        return "supported"
    if lo > threshold or (op == "<" and lo == threshold):
        return "not supported"
    return "inconclusive"


def evaluate_panel_claim(c: Claim, panel) -> dict:
    """The row of :func:`evaluate_claims` for a panel claim on ``panel`` (a panel design, or a
    :class:`~diaspora_survey.survey.longitudinal.PanelAnalysis`; None: not evaluable)."""
    import numpy as np

    base = {"claim": c.id, "statement": c.statement, "attribution": c.attribution,
            "indicator": c.indicator, "category": "", "adjustment": "", "metric": c.metric,
            "test": f"{c.metric} {c.op} {c.threshold:g}", "group": c.group or "all", "by": c.by,
            "source": "", "confidence": "", "reference_table": "", "year": np.nan, "fieldwork_year": np.nan,
            "universe": "", "frame": "", "standard": "", "caveat": ""}
    if c.versus:
        base["group"] = f"{c.group or 'all'} vs {c.versus}"
    if panel is None:
        return dict(base, value=np.nan, ci_low=np.nan, ci_high=np.nan, verdict="not evaluable",
                    raw_verdict="not evaluable",
                    reason="a panel indicator: needs the linked panel ([panel] in the project file; "
                           "`diaspora-survey report` or `panel`)")
    from ..survey.longitudinal import group_share

    design = getattr(panel, "design", panel)
    split = (lambda g: None if not g else (g.split("+") if "+" in g else g))
    r = group_share(design, PANEL_INDICATORS[c.indicator], by=c.by or "host_region",
                    group=split(c.group), versus=split(c.versus))
    lo, hi = float(r["ci_low"]), float(r["ci_high"])
    ver = verdict(c.op, c.threshold, lo, hi)
    side = {"supported": "entirely on the claimed side of", "not supported": "entirely on the other side of",
            "inconclusive": "contains", "not evaluable": "cannot be placed against"}[ver]
    src = f"panel {getattr(panel, 'link', None).baseline} → {panel.followup}" if hasattr(panel, "followup") else "panel"
    return dict(base, value=float(r["estimate"]), ci_low=lo, ci_high=hi, verdict=ver, raw_verdict=ver,
                universe="the linked panel (baseline respondents re-interviewed)",
                reason=f"CI [{lo:.4g}, {hi:.4g}] {side} {c.threshold:g}", source=src, n=int(r["n"]))


def qualify(ver: str, validity: str) -> str:
    """The verdict given what the comparison rests on: ``supported`` / ``not supported``
    become ``inconclusive (<validity>)`` when the comparison is not valid (``validity``
    non-empty); ``inconclusive`` and ``not evaluable`` are kept."""
    if validity and ver in ("supported", "not supported"):
        return f"inconclusive ({validity})"
    return ver


RESTS_ON = ("reference_table", "year", "fieldwork_year", "universe", "frame", "standard", "caveat")


def evaluate_claims(comparison, claims, indicators=(), *, panel=None):
    """One row per claim × group of the comparison: the decisive interval, the verdict and
    what it rests on (``reference_table``, ``year``, ``fieldwork_year``, ``universe``,
    ``standard``, ``caveat``; ``raw_verdict`` = the verdict from the interval alone).

    claims: list of :class:`Claim`, a parsed document, or a path to a claims YAML file.
    panel: the linked panel's design or analysis for the panel indicators (None: their claims
    are ``not evaluable``).
    """
    import numpy as np
    import pandas as pd

    if isinstance(claims, (str, Path)):
        claims = load_claims(claims, indicators)
    elif not (isinstance(claims, list) and all(isinstance(c, Claim) for c in claims)):
        claims = parse_claims(claims, indicators=indicators)
    rows = []
    empty = {"reference_table": "", "year": np.nan, "fieldwork_year": np.nan, "universe": "",
             "frame": "", "standard": "", "caveat": ""}
    for c in claims:
        if c.is_panel:
            rows.append(evaluate_panel_claim(c, panel))
            continue
        m = comparison[(comparison["indicator"] == c.indicator)
                       & (comparison["category"] == c.category)
                       & comparison["adjustment"].str.startswith(c.adjustment)]
        if c.group:
            m = m[m["group"] == c.group]
        base = {"claim": c.id, "statement": c.statement, "attribution": c.attribution,
                "indicator": c.indicator, "category": c.category, "adjustment": c.adjustment,
                "metric": c.metric, "test": f"{c.metric} {c.op} {c.threshold:g}"}
        if m.empty:
            rows.append(dict(base, group=c.group or "all", by="", value=np.nan, ci_low=np.nan,
                             ci_high=np.nan, verdict="not evaluable", raw_verdict="not evaluable",
                             reason="no such row in the comparison (indicator not computed)",
                             source="", confidence="", **empty))
            continue
        v, lo_c, hi_c = METRICS[c.metric]
        for _, r in m.iterrows():
            val, lo, hi = float(r[v]), float(r[lo_c]), float(r[hi_c])
            raw = verdict(c.op, c.threshold, lo, hi)
            validity = str(r.get("validity", "") or "")
            ver = qualify(raw, validity)
            if raw == "not evaluable":
                reason = r["note"] or "no population figure"
            else:
                side = {"supported": "entirely on the claimed side of",
                        "not supported": "entirely on the other side of",
                        "inconclusive": "contains"}[raw]
                reason = f"CI [{lo:.4g}, {hi:.4g}] {side} {c.threshold:g}"
                if ver != raw:
                    reason += f"; but the comparison is not valid: {validity}"
            rest = {k: r.get(k, empty[k]) for k in RESTS_ON}
            if not rest["standard"] and str(r["adjustment"]) == "crude":
                rest["standard"] = "none (crude)"
            rows.append(dict(base, group=r["group"], by=r["by"], value=val,
                             ci_low=lo, ci_high=hi, verdict=ver, raw_verdict=raw, reason=reason,
                             source=r["source"], confidence=r["confidence"], **rest))
    return pd.DataFrame(rows)
