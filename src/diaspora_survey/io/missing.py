"""Classify declared missing codes by their labels: don't know, refused, not applicable …

SPSS and Stata files declare *which* codes are missing but not *why*; the value label
usually says it («Затрудняюсь ответить», "Refusal", "Not applicable"). The kinds are the
ones of ``VariableMeta.missing_kinds``: ``dont_know``, ``refused``, ``not_applicable``,
``no_answer`` and, for anything else, ``missing``.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("not_applicable", re.compile(
        r"not\s+applicable|\bn/?a\b|\binap\b|inapplicable|not\s+asked|skipped|filter|"
        r"не\s*применимо|неприменимо|не\s+относится|вопрос\s+не\s+задавал|не\s+задавал|"
        r"trifft\s+nicht\s+zu|entf[aä]llt|nicht\s+zutreffend", re.I)),
    ("refused", re.compile(
        r"refus|declin|prefer\s+not|rather\s+not|would\s+not\s+say|won'?t\s+say|"
        r"отказ|не\s+хочу\s+отвечать|не\s+(?:желаю|буду)\s+отвечать|предпочитаю\s+не|"
        r"verweiger|keine\s+angabe\s+gewollt", re.I)),
    ("dont_know", re.compile(
        r"don'?t\s+know|do\s+not\s+know|\bdk\b|not\s+sure|can'?t\s+say|cannot\s+say|hard\s+to\s+say|"
        r"undecided|затрудня|не\s+знаю|трудно\s+сказать|сложно\s+сказать|не\s+могу\s+сказать|"
        r"weiß\s+nicht|weiss\s+nicht|no\s+s[eé]", re.I)),
    ("no_answer", re.compile(
        r"no\s+answer|not\s+answered|no\s+response|nonresponse|non-response|"
        r"нет\s+ответа|без\s+ответа|не\s+ответил|keine\s+angabe", re.I)),
)

MISSING_KINDS = ("dont_know", "refused", "not_applicable", "no_answer", "missing")


@lru_cache(maxsize=4096)
def classify_label(label: str | None) -> str:
    """Missing kind of one label (``missing`` when nothing matches or there is no label)."""
    if not label:
        return "missing"
    for kind, rx in _PATTERNS:
        if rx.search(label):
            return kind
    return "missing"


def classify_missing(value_labels: dict[Any, str], missing_values: Iterable[Any],
                     missing_ranges: Iterable[tuple[Any, Any]]) -> dict[Any, str]:
    """``{code: kind}`` for every discrete missing code and every labelled code inside a range."""
    kinds: dict[Any, str] = {}
    for v in missing_values:
        kinds[v] = classify_label(value_labels.get(v))
    ranges = list(missing_ranges)
    if ranges:
        for code, label in value_labels.items():
            if isinstance(code, str) or code in kinds:
                continue
            for lo, hi in ranges:
                try:
                    inside = lo <= code <= hi
                except TypeError:
                    inside = False
                if inside:
                    kinds[code] = classify_label(label)
                    break
    return kinds
