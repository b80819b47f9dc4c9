"""Rule-based derivations over several raw columns (``rules:`` and ``default:`` in a codebook).

A variable such as ESS employment status needs several questions (main activity, employment
relation, number of employees). The codebook lists ordered rules; each row takes the
category of the first rule whose ``when:`` conditions all hold, else the ``default``::

    employment_status:
      source: [mnactic, emplrel, emplno]
      rules:
        - when: {mnactic: 1, emplrel: 1}
          to: employee
        - when: {mnactic: 1, emplrel: 2, emplno: ">= 1"}
          to: employer
        - when: {mnactic: missing}
          to: missing
      default: other

A condition (the value under a column in ``when:``) is one of

* a code ``1`` or a list of codes ``[3, 4]`` — the raw code equals one of them (numbers
  match numerically, texts case- and punctuation-insensitively, and a text also matches the
  code whose value label it is: ``"Self-employed"``). An explicit code matches even when the
  file declares it user-missing (as an explicit ``map`` entry wins);
* a comparison ``">= 1"``, ``"> 0"``, ``"<= 10"``, ``"< 18"``, ``"== 2"``, ``"!= 2"``,
  ``"in [1, 2]"``, ``"not in [1, 2]"`` — ``>``/``<`` compare numbers and never match a
  missing value; ``!=``/``not in`` hold for a present (non-missing) value outside the codes;
* ``missing`` — the value is missing: blank, system-missing, listed under the variable's
  ``missing:`` or (with ``file_missing: true``) declared user-missing in the file;
  ``not missing`` — the opposite.

``to: missing`` (in a rule or as ``default``) makes the row NA, counted as missing. A row that
no rule matches and that has no ``default`` is *unmapped*: NA and reported with the
combination of raw values and its count, like an unmapped code of a ``map``.

This module parses and checks conditions (used when a codebook is loaded and when it is
checked against a file); :mod:`.apply` evaluates them, vectorised over distinct values.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MISSING = "missing"       # to: missing / default: missing → NA (counted as missing)
_OP = re.compile(r"^\s*(not in|in|>=|<=|==|!=|>|<)(?:(?<=n)\s+|(?<!n)\s*)(.+?)\s*$")


@dataclass(frozen=True)
class Condition:
    """One parsed condition on one column.

    ``kind``: ``in`` (codes), ``not_in`` (codes), ``cmp`` (``op`` and ``number``),
    ``missing`` or ``present``; ``text`` is the condition as written (for messages)."""

    kind: str
    codes: tuple = ()
    op: str | None = None
    number: float | None = None
    text: str = ""

    @property
    def numeric_codes(self) -> list[float]:
        return [c for c in (_as_number(x) for x in self.codes) if c is not None]

    @property
    def text_codes(self) -> list[str]:
        return [x for x in self.codes if isinstance(x, str) and _as_number(x) is None]


def _as_number(x) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return None if isinstance(x, float) and math.isnan(x) else float(x)
    if isinstance(x, str):
        try:
            return float(x.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def _scalar_code(x, written) -> Any:
    if isinstance(x, bool) or x is None or isinstance(x, (dict, list)):
        raise ValueError(f"{written!r} is not a code: write a number or a text "
                         "(quote yes/no texts), or a list of them")
    if isinstance(x, str) and not x.strip():
        raise ValueError("an empty code")
    if not isinstance(x, (int, float, str)):
        raise ValueError(f"{written!r} is not a code: write a number or a text")
    return x


def _scalar(text: str):
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    try:
        f = float(t.replace(",", ".")) if t.count(",") <= 1 else None
    except ValueError:
        return t
    if f is None:
        return t
    return int(f) if f.is_integer() and re.fullmatch(r"[+-]?\d+", t) else f


def _parse_rhs(rhs: str):
    """The right-hand side of ``in [1, 2]`` / ``>= 1``: a list of scalars or one scalar
    (numbers as numbers, quotes removed; no other YAML, so ``no`` stays a text)."""
    t = rhs.strip()
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    return _scalar(t)


def parse_condition(value) -> Condition:
    """Parse the value written under a column in ``when:`` (raises ``ValueError`` with the reason)."""
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty list of codes matches nothing")
        return Condition("in", tuple(_scalar_code(x, value) for x in value), text=str(value))
    if isinstance(value, str):
        t = value.strip()
        low = " ".join(t.casefold().split())
        if low == MISSING:
            return Condition("missing", text=t)
        if low == "not missing":
            return Condition("present", text=t)
        m = _OP.match(t)
        if m:
            op, rhs = m.group(1), m.group(2)
            parsed = _parse_rhs(rhs)
            if op in ("in", "not in"):
                if not isinstance(parsed, list):
                    if op == "in":    # a label such as "in education": a text code
                        return Condition("in", (t,), text=t)
                    raise ValueError(f"'{op}' needs a list, e.g. \"{op} [1, 2]\"")
                if not parsed:
                    raise ValueError("an empty list of codes matches nothing")
                return Condition("in" if op == "in" else "not_in",
                                 tuple(_scalar_code(x, rhs) for x in parsed), text=t)
            if op in ("==", "!="):
                codes = tuple(_scalar_code(x, rhs) for x in (parsed if isinstance(parsed, list) else [parsed]))
                return Condition("in" if op == "==" else "not_in", codes, text=t)
            num = _as_number(parsed)
            if num is None:
                raise ValueError(f"'{op}' compares numbers, got {rhs!r}")
            return Condition("cmp", op=op, number=num, text=t)
        return Condition("in", (_scalar_code(value, value),), text=t)
    return Condition("in", (_scalar_code(value, value),), text=str(value))


def parse_when(when: dict) -> dict[str, Condition]:
    """``{column: Condition}`` of a rule's ``when:`` mapping (``ValueError`` naming the column)."""
    out = {}
    for col, value in when.items():
        try:
            out[str(col)] = parse_condition(value)
        except ValueError as ex:
            raise ValueError(f"column {col!r}: {ex}") from None
    return out


def describe(when: dict[str, Condition]) -> str:
    """``mnactic == 1 and emplno >= 1`` — a rule's conditions as text."""
    parts = []
    for col, c in when.items():
        if c.kind == "missing":
            parts.append(f"{col} missing")
        elif c.kind == "present":
            parts.append(f"{col} not missing")
        elif c.kind == "cmp":
            parts.append(f"{col} {c.op} {c.number:g}")
        else:
            codes = ", ".join(str(x) for x in c.codes)
            neg = c.kind == "not_in"
            parts.append(f"{col} {'!=' if neg else '=='} {codes}" if len(c.codes) == 1 else
                         f"{col} {'not in' if neg else 'in'} [{codes}]")
    return " and ".join(parts)


__all__ = ["Condition", "MISSING", "parse_condition", "parse_when", "describe"]
