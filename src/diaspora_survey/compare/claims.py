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

Verdict from the confidence interval of the metric (level of the comparison):
``supported`` when the whole interval lies on the claimed side of the threshold,
``not supported`` when the whole interval lies on the other side, ``inconclusive`` when
it contains the threshold, ``not evaluable`` when the comparison has no figure (e.g. a
gap in the reference data); the interval that decides is reported.
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
          "op", "threshold", "group", "note")


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


def _err(msg, where, hint):
    return ProjectError(msg, code="claims.invalid", where=where, hint=hint)


def parse_claims(doc, where: str = "claims") -> list[Claim]:
    """Validate a claims document (``{"claims": [...]}`` or a list) into :class:`Claim`s."""
    from .indicators import INDICATORS

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
        if c["indicator"] not in INDICATORS:
            raise _err(f"indicator {c['indicator']!r} is not known", f"{w}: indicator",
                       "one of: " + ", ".join(INDICATORS))
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
                         group=str(c.get("group") or ""), note=" ".join(str(c.get("note") or "").split())))
    return out


def load_claims(path) -> list[Claim]:
    """Read and validate a claims YAML file."""
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
    return parse_claims(doc, str(p))


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


def evaluate_claims(comparison, claims):
    """One row per claim × group of the comparison: the decisive interval and verdict.

    claims: list of :class:`Claim`, a parsed document, or a path to a claims YAML file.
    """
    import numpy as np
    import pandas as pd

    if isinstance(claims, (str, Path)):
        claims = load_claims(claims)
    elif not (isinstance(claims, list) and all(isinstance(c, Claim) for c in claims)):
        claims = parse_claims(claims)
    rows = []
    for c in claims:
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
                             ci_high=np.nan, verdict="not evaluable",
                             reason="no such row in the comparison (indicator not computed)",
                             source="", year=np.nan, confidence=""))
            continue
        v, lo_c, hi_c = METRICS[c.metric]
        for _, r in m.iterrows():
            val, lo, hi = float(r[v]), float(r[lo_c]), float(r[hi_c])
            ver = verdict(c.op, c.threshold, lo, hi)
            if ver == "not evaluable":
                reason = r["note"] or "no population figure"
            else:
                side = {"supported": "entirely on the claimed side of",
                        "not supported": "entirely on the other side of",
                        "inconclusive": "contains"}[ver]
                reason = f"CI [{lo:.4g}, {hi:.4g}] {side} {c.threshold:g}"
            rows.append(dict(base, group=r["group"], by=r["by"], value=val,
                             ci_low=lo, ci_high=hi, verdict=ver, reason=reason,
                             source=r["source"], year=r["year"], confidence=r["confidence"]))
    return pd.DataFrame(rows)
