"""Apply a codebook to a raw wave: one harmonised DataFrame, issues, and an exclusions table.

Rules (issue 3, "Nothing lost"):

* every input row appears exactly once — in :attr:`Harmonised.data` (index = the row's
  position in the raw file) or in :attr:`Harmonised.exclusions` with the reason;
* a value the codebook does not map is never silently turned into missing: it becomes NA
  *and* is reported as an ``unmapped`` issue with its count; ``strict=True`` makes it an error;
* missing codes (declared in the codebook, or user-missing in the SPSS file) become NA and are
  counted as missing.

Mapping is vectorised: each column is factorised once and every *distinct* value is resolved
once (explicit map → value label map → ranges → file user-missing → crosswalk), so the cost is
one ``pandas.factorize`` and one array take per variable.

The same code harmonises a wave chunk by chunk (:class:`WaveHarmoniser`; waves larger than
memory, :mod:`diaspora_survey.harmonise.chunked`): what needs the whole wave — issues with
their totals (:class:`_IssueLog`), exclusions, the summary, duplicate ids, open category sets,
whether float ids are whole numbers — is merged over the chunks or found in a first pass, so
that the result equals :func:`harmonise` on the whole wave.

Output dtypes: categories as pandas ``Categorical`` with the schema's categories (ordered
where the schema says), ``age`` as ``Int64``, booleans as ``boolean``, dates as
``datetime64[ns]`` (first of the month for departures), ``resp_id`` as ``string``; design
columns under the stable names ``weight_base``, ``strata``, ``psu``, ``fpc``.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import schema
from .codebook import Codebook, VariableSpec, _bool_value, _key_identity, parse_rule
from .crosswalks import Crosswalk, normalise_label
from .transforms import DATE_MAX, DATE_MIN, MONTH_FORMS, parse_date_values, parse_month  # noqa: F401  (re-exported)
from .._util import mask_value
from ..errors import CodebookError, HarmonisationError

STRING = "string"
DESIGN_NAMES = {"weight": "weight_base", "strata": "strata", "psu": "psu", "fpc": "fpc"}
EXCLUSION_COLUMNS = ["wave", "row", "resp_id", "reason", "detail"]
STRICT_KINDS = ("unmapped", "unparsed")


@dataclass
class Issue:
    """Something harmonisation noticed; ``kind`` is one of ``unmapped``, ``unparsed``,
    ``out_of_range``, ``non_integer``, ``eligibility_unknown``, ``duplicate_id``,
    ``missing_id``, ``missing_weight``, ``inconsistent`` (e.g. ``returned`` against ``country``)."""

    wave: str
    variable: str
    kind: str
    count: int
    message: str
    values: dict = field(default_factory=dict)   # raw value (or "value «label»") → count
    where: str | None = None

    def __str__(self) -> str:
        return f"[{self.wave}] {self.variable}: {self.message}"


@dataclass
class Harmonised:
    """Result of :func:`harmonise` for one wave."""

    data: pd.DataFrame
    issues: list[Issue]
    exclusions: pd.DataFrame
    summary: pd.DataFrame
    wave: str = ""
    rules: dict = field(default_factory=dict)   # variable → {rule as text: rows it took} (all input rows)
    n_kept: int | None = None    # rows harmonised, when ``data`` is not held (harmonised in chunks)
    n_read: int | None = None    # rows read from the file

    def __repr__(self) -> str:
        return (f"Harmonised(wave={self.wave!r}, rows={self.rows}, excluded={len(self.exclusions)}, "
                f"issues={len(self.issues)})")

    @property
    def rows(self) -> int:
        """Rows harmonised (not excluded)."""
        return len(self.data) if self.data is not None else int(self.n_kept or 0)

    @property
    def rows_read(self) -> int:
        """Rows of the file: harmonised + excluded."""
        return int(self.n_read) if self.n_read is not None else self.rows + len(self.exclusions)

    @property
    def unmapped(self) -> int:
        return int(sum(i.count for i in self.issues if i.kind in STRICT_KINDS))


# ---- helpers ---------------------------------------------------------------------------------------

def _is_missing_scalar(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    return False


def _is_na(v) -> bool:
    """A missing scalar (None, NaN, NA, NaT)."""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _identities(v) -> list[tuple]:
    """Identities under which a raw value may be found in a map (number and/or label)."""
    if isinstance(v, (bool, np.bool_)):
        return [("b", bool(v))]
    if isinstance(v, (int, float, np.integer, np.floating)):
        return [("n", float(v))]
    if isinstance(v, str):
        out = []
        t = v.strip().replace(",", ".")
        try:
            out.append(("n", float(t)))
        except ValueError:
            pass
        out.append(("s", normalise_label(v)))
        return out
    return [("o", repr(v))]


def _fmt_value(v, label: str | None) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    return f"{v} «{label}»" if label else f"{v}"


class _Meta:
    """Value labels and user-missing declarations of one raw column, by value identity."""

    def __init__(self, meta):
        self.labels: dict[tuple, str] = {}
        self.meta = meta
        if meta is not None:
            for k, lab in (meta.value_labels or {}).items():
                for ident in _identities(k):
                    self.labels.setdefault(ident, lab)

    def label(self, v) -> str | None:
        for ident in _identities(v):
            if ident in self.labels:
                return self.labels[ident]
        return None

    def user_missing(self, uniques: pd.Series) -> np.ndarray:
        if self.meta is None or not (self.meta.missing_values or self.meta.missing_ranges):
            return np.zeros(len(uniques), dtype=bool)
        mask = np.zeros(len(uniques), dtype=bool)
        vals = list(uniques)
        miss_ids = set()
        for mv in self.meta.missing_values:
            miss_ids.update(_identities(mv))
        for i, v in enumerate(vals):
            if any(ident in miss_ids for ident in _identities(v)):
                mask[i] = True
        if self.meta.missing_ranges:
            num = pd.to_numeric(pd.Series(vals, dtype=object), errors="coerce").to_numpy(dtype=float)
            for lo, hi in self.meta.missing_ranges:
                with np.errstate(invalid="ignore"):
                    mask |= (num >= float(lo)) & (num <= float(hi))
        return mask


def _factorize(s: pd.Series):
    """Codes and distinct values (blank strings are recognised as missing among the distinct
    values, see :func:`_is_missing_scalar`)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, pd.Series(uniques, dtype=object) if not isinstance(uniques, pd.Series) else uniques.astype(object)


class _Var:
    """Book-keeping of one harmonised variable: missing / unmapped counts and issues.

    ``order`` is the variable's place in the codebook and ``step`` counts the helpers run for it
    (each helper calls :meth:`begin`): together with the site within a helper they give every
    issue its place in the wave's issue list, the same in every chunk."""

    def __init__(self, ctx: "_Ctx", name: str, spec: VariableSpec | None, order: int = 0):
        self.ctx, self.name, self.spec, self.order = ctx, name, spec, order
        self.step = 0
        n = len(ctx.raw.data)
        self.unmapped_rows = np.zeros(n, dtype=bool)       # value present but not mapped/parsed
        self.out_of_range_rows = np.zeros(n, dtype=bool)   # value outside valid_range

    @property
    def n_unmapped(self) -> int:
        return int(self.unmapped_rows.sum())

    @property
    def n_out_of_range(self) -> int:
        return int(self.out_of_range_rows.sum())

    def begin(self) -> None:
        self.step += 1

    def where(self, *keys):
        return self.ctx.cb.where("variables", self.name, *keys)

    def issue(self, kind: str, count: int, fmt, *, entries=None, display=None, order: str = "count",
              keys=(), sub: int = 0):
        """Record an issue (see :class:`_IssueLog.add`)."""
        self.ctx.log.add((1, self.order, self.step, sub), self.name, kind, count, fmt, entries=entries,
                         display=display, order=order, where=self.where(*keys))


def _listing(vals: dict, limit: int, more: str = "") -> str:
    """``value ×count, …`` of the first ``limit`` values (raw text masked, see mask_value)."""
    return ", ".join(f"{mask_value(a, c)} ×{c}" for a, c in list(vals.items())[:limit]) + \
        (more if len(vals) > limit else "")


def _text_of(value, count) -> str:
    return str(value)


class _IssuePart:
    __slots__ = ("variable", "kind", "where", "fmt", "display", "order", "count", "entries")

    def __init__(self, variable, kind, where, fmt, display, order):
        self.variable, self.kind, self.where = variable, kind, where
        self.fmt, self.display, self.order = fmt, display, order
        self.count = 0
        self.entries: dict = {}


class _IssueLog:
    """The issues of one wave, merged over the chunks it is harmonised in.

    Every issue has a fixed place ``key`` (the order in which :func:`harmonise` meets them), a
    total ``count`` and, where its message lists values, the count of each distinct raw value
    (in the order of first appearance). Messages are written once, from the totals
    (:meth:`issues`): values by count, most frequent first (ties: first seen first), or by value
    (``order="key"``). ``fmt(total, values, n_distinct)`` writes the message; ``display(raw,
    count)`` the value's text in it and in :attr:`Issue.values`."""

    def __init__(self, wave_id: str):
        self.wave = wave_id
        self._parts: dict[tuple, _IssuePart] = {}

    def add(self, key: tuple, variable: str, kind: str, count: int, fmt, *, entries=None, display=None,
            order: str = "count", where: str | None = None) -> None:
        p = self._parts.get(key)
        if p is None:
            p = self._parts[key] = _IssuePart(variable, kind, where, fmt, display or _text_of, order)
        p.count += int(count)
        if entries is not None:
            e = p.entries
            for raw, c in entries:         # distinct values only, never rows
                e[raw] = e.get(raw, 0) + int(c)

    def has(self, variable: str, kinds) -> bool:
        return any(p.variable == variable and p.kind in kinds for p in self._parts.values())

    def issues(self, variable: str | None = None) -> list[Issue]:
        out = []
        for key in sorted(self._parts):
            p = self._parts[key]
            if variable is not None and p.variable != variable:
                continue
            items = list(p.entries.items())
            if p.order == "key":
                items.sort(key=lambda kv: kv[0])
            else:
                items.sort(key=lambda kv: -kv[1])        # stable: ties keep first-seen order
            vals = {p.display(raw, c): c for raw, c in items}
            out.append(Issue(self.wave, p.variable, p.kind, int(p.count),
                             p.fmt(int(p.count), vals, len(items)), dict(vals), p.where))
        return out


def _whole_floats(ctx: "_Ctx", col: str, s: pd.Series) -> bool:
    """``s`` is a float column whose non-missing values are all whole numbers (ids "17", not
    "17.0") — over the whole wave (``ctx.facts``) when the wave is harmonised in chunks."""
    if not pd.api.types.is_float_dtype(s.dtype):
        return False
    if ctx.facts is not None:
        return bool(ctx.facts.integral(col))
    return bool((s.dropna() % 1 == 0).all())


@dataclass
class WaveFacts:
    """What harmonising one chunk needs to know about the whole wave: ``integral(column)`` (a
    float column holds only whole numbers) and ``categories`` (``{variable: categories}`` of
    the open category sets — country, custom variables without declared categories — as found
    over the whole wave). See :mod:`diaspora_survey.harmonise.chunked`."""

    integral: Any
    categories: dict = field(default_factory=dict)


@dataclass
class _Ctx:
    wave_id: str
    cb: Codebook
    raw: Any
    crosswalks: dict[str, Crosswalk]
    log: _IssueLog = None  # type: ignore[assignment]
    facts: WaveFacts | None = None

    def __post_init__(self):
        if self.log is None:
            self.log = _IssueLog(self.wave_id)


# ---- categorical variables -----------------------------------------------------------------------

def _resolve_values(v: _Var, uniques: pd.Series, meta: "_Meta"):
    """The category of each distinct raw value (explicit map → value label map → ranges → file
    user-missing → crosswalk): (categories or None, status per value: 0 mapped, 1 missing,
    2 unmapped)."""
    spec = v.spec
    n_u = len(uniques)
    explicit: dict[tuple, Any] = {}
    for k, cat in spec.map.items():
        explicit[_key_identity(k)] = cat
    by_label = {normalise_label(k): cat for k, cat in spec.labels.items()}
    missing_ids = {_key_identity(m) for m in spec.missing}
    cw = v.ctx.crosswalks.get(spec.crosswalk) if spec.crosswalk else None
    file_missing = meta.user_missing(uniques) if spec.file_missing else np.zeros(n_u, dtype=bool)

    result: list[Any] = [None] * n_u
    status = np.zeros(n_u, dtype=np.int8)  # 0 mapped, 1 missing, 2 unmapped
    for i, u in enumerate(uniques):          # loop over distinct values only
        if _is_missing_scalar(u):
            status[i] = 1
            continue
        ids = _identities(u)
        if any(ident in missing_ids for ident in ids):
            status[i] = 1
            continue
        cat = next((explicit[ident] for ident in ids if ident in explicit), None)
        label = meta.label(u)
        if cat is None and by_label:
            cat = by_label.get(normalise_label(label)) if label is not None else None
            if cat is None and isinstance(u, str):
                cat = by_label.get(normalise_label(u))
        if cat is None and spec.ranges:
            num = _to_float(u)
            if num is not None:
                for r in spec.ranges:
                    if (r.min is None or num >= r.min) and (r.max is None or num <= r.max):
                        cat = r.to
                        break
        if cat is None and file_missing[i]:
            status[i] = 1
            continue
        if cat is None and cw is not None:
            cat = cw.lookup(label) if label is not None else None
            if cat is None and isinstance(u, str):
                cat = cw.lookup(u)
        if cat is None:
            status[i] = 2
            continue
        result[i] = cat
    return result, status


def _present_categories(name: str, result: list) -> list:
    """An open category set (country, custom variables): the categories the values map to
    (countries sorted, others in the order of first appearance)."""
    return sorted({c for c in result if c is not None}) if name == "country" else \
        list(dict.fromkeys(c for c in result if c is not None))


def open_categories(v: _Var, uniques: pd.Series) -> list:
    """The categories of an open set from the distinct raw values of its source column."""
    result, _ = _resolve_values(v, uniques, _Meta(v.ctx.raw.meta.get(v.spec.sources[0])))
    return _present_categories(v.name, result)


def _map_categorical(v: _Var, col: pd.Series, categories: list[str] | None, ordered: bool,
                     *, whole_set: bool = True) -> pd.Series:
    """``whole_set``: an open category set takes the wave's categories (``ctx.facts``) when the
    wave is harmonised in chunks (False for bool variables, whose output has no categories)."""
    v.begin()
    spec = v.spec
    meta = _Meta(v.ctx.raw.meta.get(spec.sources[0]))
    codes, uniques = _factorize(col)
    n_u = len(uniques)
    result, status = _resolve_values(v, uniques, meta)

    if categories is None:      # open category set (country, custom): categories present
        fixed = v.ctx.facts.categories.get(v.name) if (v.ctx.facts is not None and whole_set) else None
        if v.ctx.facts is not None and whole_set and fixed is None:   # pragma: no cover - a bug
            raise HarmonisationError(f"{v.name}: the categories of the wave were not found in the first pass",
                                     code="harmonise.internal", where=v.where())
        cats = list(fixed) if fixed is not None else _present_categories(v.name, result)
        extra = [c for c in dict.fromkeys(result) if c is not None and c not in set(cats)]
        if extra:   # pragma: no cover - the first pass saw every value
            raise HarmonisationError(f"{v.name}: categories {extra} were not found in the first pass",
                                     code="harmonise.internal", where=v.where())
    else:
        cats = list(categories)
        extra = sorted({c for c in result if c is not None and c not in cats})
        if extra:   # only via a crosswalk override with a bad code; codebook categories were checked
            raise CodebookError(f"{v.name}: crosswalk gives categories not in the schema: {extra}",
                                code="codebook.unknown_category", where=v.where("crosswalk"),
                                hint="fix the project crosswalk")
    pos = {c: j for j, c in enumerate(cats)}
    lut = np.array([pos[c] if c is not None else -1 for c in result] + [-1], dtype=np.int64)
    out_codes = lut[codes]   # codes == -1 (NA) picks the trailing -1

    counts = np.bincount(codes[codes >= 0], minlength=n_u) if n_u else np.zeros(0, dtype=np.int64)
    unm = np.flatnonzero(status == 2)
    if len(unm):
        v.unmapped_rows |= np.append(status == 2, False)[codes]
        src = spec.sources[0]
        v.issue("unmapped", int(counts[unm].sum()),
                lambda k, vals, nd: f"{k} value(s) of {src!r} not mapped ({nd} distinct): " + _listing(vals, 8, " …"),
                entries=[(uniques.iloc[i], int(counts[i])) for i in unm],
                display=lambda u, c: _fmt_value(u, meta.label(u)))
    return pd.Series(pd.Categorical.from_codes(out_codes, categories=cats, ordered=ordered),
                     index=col.index, name=v.name)


def _string_missing(s: pd.Series, missing) -> pd.Series:
    """Rows of a text column whose value is one of the codebook's missing codes (normalised)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    wanted = {normalise_label(m) for m in missing}
    hit = np.array([normalise_label(u) in wanted for u in uniques] + [False], dtype=bool)
    return pd.Series(hit[codes], index=s.index)


def _to_float(u) -> float | None:
    if isinstance(u, (bool, np.bool_)):
        return None
    if isinstance(u, (int, float, np.integer, np.floating)):
        f = float(u)
        return None if math.isnan(f) else f
    if isinstance(u, str):
        try:
            return float(u.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def _value_counts(s: pd.Series) -> list[tuple]:
    """(value, count) of the distinct non-missing values of ``s``, in the order of first appearance."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    if len(uniques) == 0:
        return []
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    vals = uniques.tolist() if hasattr(uniques, "tolist") else list(uniques)
    return [(vals[i], int(counts[i])) for i in range(len(vals))]


# ---- rules over several columns ------------------------------------------------------------------

class _RuleColumn:
    """One source column of a rule-based variable: distinct values factorised once, with their
    value labels and missing status (blank/system-missing, codebook ``missing``, file user-missing)."""

    def __init__(self, v: _Var, col: str):
        spec = v.spec
        self.name = col
        self.meta = _Meta(v.ctx.raw.meta.get(col))
        self.codes, self.uniques = _factorize(v.ctx.raw.data[col])
        n_u = len(self.uniques)
        miss_ids = {_key_identity(m) for m in spec.missing}
        self.missing = np.array([_is_missing_scalar(u) or any(i in miss_ids for i in _identities(u))
                                 for u in self.uniques], dtype=bool).reshape(n_u)
        if spec.file_missing:
            self.missing |= self.meta.user_missing(self.uniques)
        self.number = np.array([np.nan if (f := _to_float(u)) is None else f for u in self.uniques],
                               dtype=float).reshape(n_u)
        self.ids = [set(_identities(u)) | ({("s", normalise_label(lab))} if (lab := self.meta.label(u)) else set())
                    for u in self.uniques]

    def rows(self, per_unique: np.ndarray, na: bool = False) -> np.ndarray:
        """A per-distinct-value boolean spread to the rows (``na``: the value for NA rows)."""
        return np.append(per_unique, na)[self.codes]

    def test(self, c) -> np.ndarray:
        """Rows where the condition holds."""
        if c.kind == "missing":
            return self.rows(self.missing, True)
        if c.kind == "present":
            return self.rows(~self.missing)
        if c.kind == "cmp":
            x = self.number
            with np.errstate(invalid="ignore"):
                hit = {">=": x >= c.number, ">": x > c.number, "<=": x <= c.number, "<": x < c.number}[c.op]
            return self.rows(hit & ~self.missing)
        wanted = {_key_identity(k) for k in c.codes}
        hit = np.array([bool(ids & wanted) for ids in self.ids], dtype=bool).reshape(len(self.uniques))
        if c.kind == "not_in":
            return self.rows(~hit & ~self.missing)
        return self.rows(hit)


def _apply_rules(v: _Var, categories: list[str] | None, ordered: bool, vtype: str) -> pd.Series:
    """A categorical (or bool) variable from ordered ``rules`` over several columns: each row
    takes the first rule whose conditions all hold, else ``default``; no rule and no default is
    ``unmapped`` (NA, reported with the combination of raw values)."""
    from .rules import MISSING, describe, parse_when

    v.begin()
    spec = v.spec
    raw = v.ctx.raw.data
    n = len(raw)
    cols = {c: _RuleColumn(v, c) for c in spec.sources}
    chosen = np.full(n, -1, dtype=np.int64)           # rule index, len(rules) = default
    for i, rule in enumerate(spec.rules):
        hit = chosen < 0
        for col, cond in parse_when(rule.when).items():
            if not hit.any():
                break
            rc = cols[col]
            hit &= rc.test(cond)
        chosen[hit] = i
    has_default = "default" in spec.model_fields_set
    if has_default:
        chosen[chosen < 0] = len(spec.rules)

    def target(x):
        if isinstance(x, str) and x.strip().casefold() == MISSING:
            return None
        return bool(_bool_value(x)) if vtype == "bool" else x

    targets = [target(r.to) for r in spec.rules] + [target(spec.default) if has_default else None]
    if vtype == "bool":
        cats = [False, True]
    elif categories is None:
        cats = list(dict.fromkeys(t for t in targets if t is not None))
    else:
        cats = list(categories)
    pos = {c: j for j, c in enumerate(cats)}
    lut = np.array([pos[t] if t is not None else -1 for t in targets] + [-1], dtype=np.int64)
    out_codes = lut[chosen]            # chosen == -1 picks the trailing -1

    unm = chosen < 0
    if unm.any():
        v.unmapped_rows |= unm
        # the combinations of raw values of the unmatched rows, in the order of first appearance
        key = np.zeros(int(unm.sum()), dtype=np.int64)
        for c in spec.sources:
            codes, _ = pd.factorize(raw[c][unm], use_na_sentinel=True)
            key = pd.factorize(key * (int(codes.max(initial=-1)) + 2) + codes + 1)[0]
        _, first = np.unique(key, return_index=True)
        counts_u = np.bincount(key)
        sub = {c: raw[c][unm].astype(object).to_numpy() for c in spec.sources}
        entries = [(tuple(None if _is_na(sub[c][f]) else sub[c][f] for c in spec.sources), int(counts_u[j]))
                   for j, f in enumerate(first)]            # distinct combinations only
        metas = {c: cols[c].meta for c in spec.sources}
        sources = list(spec.sources)

        def display(combo, k):
            return ", ".join(f"{c}={mask_value(_fmt_value(x, metas[c].label(x)), int(k)) if x is not None else 'NA'}"
                             for c, x in zip(sources, combo))

        v.issue("unmapped", int(unm.sum()),
                lambda k, vals, nd: f"{k} row(s) match no rule and there is no 'default' ({len(vals)} distinct): "
                + "; ".join(f"{a} ×{c}" for a, c in list(vals.items())[:6]) + (" …" if len(vals) > 6 else ""),
                entries=entries, display=display, keys=("rules",))
    counts = np.bincount(chosen[chosen >= 0], minlength=len(spec.rules) + 1)
    v.rule_counts = {f"{i + 1}. {describe(parse_when(r.when))} → {r.to}": int(counts[i])
                     for i, r in enumerate(spec.rules)}
    if has_default:
        v.rule_counts[f"default → {spec.default}"] = int(counts[-1])
    if vtype == "bool":
        return pd.Series(pd.arrays.BooleanArray(out_codes == 1, out_codes < 0), index=raw.index, name=v.name)
    return pd.Series(pd.Categorical.from_codes(out_codes, categories=cats, ordered=ordered),
                     index=raw.index, name=v.name)


# ---- numeric variables ---------------------------------------------------------------------------

def _numeric_with_missing(v: _Var, col: pd.Series, source: str) -> pd.Series:
    """Float series with missing codes (codebook and file user-missing) as NaN; unparsable
    non-empty text reported as ``unparsed``."""
    v.begin()
    spec = v.spec
    meta = _Meta(v.ctx.raw.meta.get(source))
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        num = col.astype("float64")
        bad = pd.Series(False, index=col.index)
    else:
        txt = col.astype("string").str.strip().str.replace(",", ".", regex=False).str.replace(" ", "", regex=False)
        num = pd.to_numeric(txt, errors="coerce").astype("float64")
        blank = txt.isna() | txt.eq("")
        bad = num.isna() & ~blank.fillna(True)
    miss = np.zeros(len(col), dtype=bool)
    if spec.missing:
        miss_nums = [f for m in spec.missing if (f := _to_float(m)) is not None]
        miss_strs = {normalise_label(m) for m in spec.missing if isinstance(m, str)}
        if miss_nums:
            miss |= num.isin(miss_nums).to_numpy()
        if miss_strs and bad.any():
            codes, uniques = pd.factorize(col.where(bad.to_numpy()), use_na_sentinel=True)
            hit = np.array([normalise_label(u) in miss_strs for u in uniques] + [False])
            miss |= hit[codes]
    if spec.file_missing and meta.meta is not None and (meta.meta.missing_values or meta.meta.missing_ranges):
        codes, uniques = pd.factorize(num, use_na_sentinel=True)
        um = np.append(meta.user_missing(pd.Series(uniques, dtype=object)), False)
        miss |= um[codes]
    bad = bad.to_numpy() & ~miss
    if bad.any():
        v.unmapped_rows |= bad
        v.issue("unparsed", int(bad.sum()),
                lambda k, vals, nd: f"{k} value(s) of {source!r} are not numbers: " + _listing(vals, 8),
                entries=_value_counts(col[bad].astype("string")))
    # a number whose value label says "no answer" (99 «Отказ от ответа») that neither the codebook
    # nor the file declares missing: never used as a number — NA, reported as unmapped
    mcw = v.ctx.crosswalks.get("missing")
    if mcw is not None and meta.meta is not None and meta.meta.value_labels:
        codes_like = [(f, lab) for k, lab in meta.meta.value_labels.items()
                      if (f := _to_float(k)) is not None and mcw.lookup(lab)]
        if codes_like:
            hit = num.isin([f for f, _ in codes_like]).to_numpy() & ~miss & ~bad
            if hit.any():
                labels = dict(codes_like)
                v.unmapped_rows |= hit
                bad = bad | hit
                v.issue("unmapped", int(hit.sum()),
                        lambda k, vals, nd: f"{k} value(s) of {source!r} are labelled as no answer but not "
                        "declared missing: " + _listing(vals, 8) + " — list them under 'missing:'",
                        entries=_value_counts(num[hit]), display=lambda x, c: _fmt_value(x, labels.get(float(x))),
                        sub=1)
    return num.mask(miss | bad)


def _apply_valid_range(v: _Var, num: pd.Series) -> pd.Series:
    v.begin()
    if v.spec.valid_range is None:
        return num
    lo, hi = v.spec.valid_range
    out = (num < lo) | (num > hi)
    k = int(out.sum())
    if k:
        v.out_of_range_rows |= out.to_numpy(dtype=bool, na_value=False)
        v.issue("out_of_range", k,
                lambda k, vals, nd: f"{k} value(s) outside [{lo:g}, {hi:g}] set to missing: " + _listing(vals, 8),
                entries=_value_counts(num[out]), display=lambda x, c: _fmt_value(x, None), order="key",
                keys=("valid_range",))
        num = num.mask(out)
    return num


def _to_int(v: _Var, num: pd.Series) -> pd.Series:
    v.begin()
    frac = num.notna() & (num != np.floor(num))
    k = int(frac.sum())
    if k:
        v.issue("non_integer", k, lambda k, vals, nd: f"{k} non-integer value(s) rounded down to whole years/units")
    return np.floor(num).astype("Int64")


def _parse_dates(v: _Var, col: pd.Series, source: str, *, floor_month: bool = False) -> pd.Series:
    """A date column (``datetime64[ns]``): dates as they are, texts parsed (ISO or day first),
    codebook missing codes → NaT; anything else non-empty is reported as ``unparsed`` and dates
    outside 1900–2100 as ``out_of_range``. Each distinct value is parsed once."""
    v.begin()
    spec = v.spec
    n = len(col)
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        if getattr(col.dt, "tz", None) is not None:
            col = col.dt.tz_localize(None)
        years = col.dt.year
        oor = (col.notna() & ~years.between(DATE_MIN.year, DATE_MAX.year)).to_numpy()
        vals = col.where(~oor).to_numpy(dtype="datetime64[ns]") if oor.any() else \
            col.to_numpy(dtype="datetime64[ns]")
        bad = np.zeros(n, dtype=bool)
        bad_counts: list = []
        oor_counts = _value_counts(col[oor].astype(str))
    else:
        codes, uniques = _factorize(col)
        miss = {_key_identity(m) for m in spec.missing}
        status = np.zeros(len(uniques), dtype=np.int8)   # 0 date, 1 missing, 2 unparsed, 3 out of range
        parsed = np.full(len(uniques), np.datetime64("NaT"), dtype="datetime64[ns]")
        is_text = np.zeros(len(uniques), dtype=bool)
        for i, u in enumerate(uniques):                     # distinct values only
            if _is_missing_scalar(u) or any(ident in miss for ident in _identities(u)):
                status[i] = 1
            elif isinstance(u, (_dt.date, np.datetime64)):
                try:
                    ts = pd.Timestamp(u)
                    if ts.tzinfo is not None:
                        ts = ts.tz_localize(None)
                except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
                    ts = None
                if ts is None or pd.isna(ts) or not (DATE_MIN <= ts <= DATE_MAX):
                    status[i] = 3
                else:
                    parsed[i] = np.datetime64(ts.to_datetime64(), "ns")
            elif isinstance(u, str):
                is_text[i] = True
            else:
                status[i] = 2
        if is_text.any():
            idx = np.flatnonzero(is_text)
            got = parse_date_values(pd.Series([uniques.iloc[i] for i in idx], dtype=object))
            ok = (got.notna() & got.between(DATE_MIN, DATE_MAX)).to_numpy()
            parsed[idx[ok]] = got[ok].to_numpy(dtype="datetime64[ns]")
            status[idx[~ok & got.isna().to_numpy()]] = 2
            status[idx[~ok & got.notna().to_numpy()]] = 3
        lut = np.append(parsed, np.datetime64("NaT", "ns"))
        vals = lut[codes]
        st = np.append(status, 1)[codes]
        bad, oor = st == 2, st == 3
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))

        def listing(kind):
            return [(uniques.iloc[i], int(counts[i])) for i in np.flatnonzero(status == kind)]

        bad_counts, oor_counts = listing(2), listing(3)
    out = pd.Series(vals, index=col.index, dtype="datetime64[ns]")
    if floor_month:
        out = out.dt.to_period("M").dt.to_timestamp().astype("datetime64[ns]")
    if bad.any():
        v.unmapped_rows |= bad
        v.issue("unparsed", int(bad.sum()),
                lambda k, vals, nd: f"{k} value(s) of {source!r} are not dates: " + _listing(vals, 8) +
                " (formats: 2022-03-15, 15.03.2022, 15/03/2022)",
                entries=bad_counts, display=lambda u, c: str(u))
    if oor.any():
        v.out_of_range_rows |= oor
        v.issue("out_of_range", int(oor.sum()),
                lambda k, vals, nd: f"{k} date(s) in {source!r} outside 1900–2100 set to missing: " + _listing(vals, 8),
                entries=oor_counts, display=lambda u, c: str(u), sub=1)
    return out


def _age_from_birth_year(v: _Var, df: pd.DataFrame) -> pd.Series:
    """Age in completed years from the birth year and the interview date.

    ``age_rule: year_difference`` — year(interview) − birth year (age reached during the
    interview year); ``midyear`` (default) — birthdays assumed on 1 July: one year less for
    interviews before 1 July, which is unbiased when birthdays are spread over the year.
    """
    spec = v.spec
    by = _numeric_with_missing(v, df[spec.sources[0]], spec.sources[0])
    if len(spec.sources) == 2:
        idate = _parse_dates(v, df[spec.sources[1]], spec.sources[1])
    else:
        idate = pd.Series(pd.Timestamp(spec.interview_date), index=df.index, dtype="datetime64[ns]")
    iy = idate.dt.year.astype("float64")
    age = iy - by
    if spec.age_rule == "midyear":
        before_july = (idate.dt.month < 7).astype("float64").where(idate.notna())
        age = age - before_july
    v.begin()
    negative = (age < 0).to_numpy(dtype=bool, na_value=False)   # born after the interview
    if negative.any():
        v.out_of_range_rows |= negative
        src = spec.sources[0]
        v.issue("out_of_range", int(negative.sum()),
                lambda k, vals, nd: f"{k} birth year(s) in {src!r} after the interview date set to missing")
        age = age.mask(negative)
    return age


def _month_series(v: _Var, col: pd.Series) -> pd.Series:
    v.begin()
    spec = v.spec
    codes, uniques = _factorize(col)
    miss = {_key_identity(m) for m in spec.missing}
    vals = np.full(len(uniques) + 1, np.datetime64("NaT"), dtype="datetime64[ns]")
    status = np.zeros(len(uniques), dtype=np.int8)
    for i, u in enumerate(uniques):
        if _is_missing_scalar(u) or any(ident in miss for ident in _identities(u)):
            status[i] = 1
            continue
        if isinstance(u, (pd.Timestamp, np.datetime64)) or hasattr(u, "year"):
            ym = (u.year, u.month)
        else:
            ym = parse_month(u)
        if ym is None:
            status[i] = 2
            continue
        vals[i] = np.datetime64(f"{ym[0]:04d}-{ym[1]:02d}-01", "ns")
    out = pd.Series(vals[codes], index=col.index, name=v.name)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    bad = np.flatnonzero(status == 2)
    if len(bad):
        v.unmapped_rows |= np.append(status == 2, False)[codes]
        src = spec.sources[0]
        v.issue("unparsed", int(counts[bad].sum()),
                lambda k, vals, nd: f"{k} value(s) of {src!r} are not a month: " + _listing(vals, 8) +
                " (formats: 03.2022, 2022-03, март 2022)",
                entries=[(uniques.iloc[i], int(counts[i])) for i in bad], display=lambda u, c: str(u))
    return out


def _year_month(v: _Var, df: pd.DataFrame) -> pd.Series:
    spec = v.spec
    y = _numeric_with_missing(v, df[spec.sources[0]], spec.sources[0])
    m = _numeric_with_missing(v, df[spec.sources[1]], spec.sources[1])
    v.begin()
    ok = y.notna() & m.notna() & m.between(1, 12) & y.between(1900, 2100)
    bad = y.notna() & m.notna() & ~ok
    if bad.any():
        v.out_of_range_rows |= bad.to_numpy(dtype=bool)
        v.issue("out_of_range", int(bad.sum()),
                lambda k, vals, nd: f"{k} year/month pair(s) out of range set to missing: " + _listing(vals, 8) +
                " (years 1900–2100, months 1–12)",
                entries=_value_counts(y[bad].astype("int64").astype(str) + "/" + m[bad].astype("int64").astype(str)))
    yy = y.where(ok, 1970).astype("int64").to_numpy()
    mm = m.where(ok, 1).astype("int64").to_numpy()
    months = (yy - 1970) * 12 + (mm - 1)
    out = pd.Series(months.astype("datetime64[M]").astype("datetime64[ns]"), index=df.index, name=v.name)
    out[~ok.to_numpy()] = pd.NaT
    return out


# ---- eligibility ---------------------------------------------------------------------------------

def _repeated(values) -> np.ndarray:
    """True for each value seen earlier in ``values`` (missing values never count as repeats)."""
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    out = np.ones(len(codes), dtype=bool)
    if len(codes):
        _, first = np.unique(codes, return_index=True)
        out[first] = False
    out[codes < 0] = False
    return out


def _as_text(s: pd.Series) -> pd.Series:
    """Values as text for the exclusions' ``detail`` (NA as "NA", dates as YYYY-MM-DD)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.dt.strftime("%Y-%m-%d").fillna("NA").astype(object)
    return s.astype("string").fillna("NA").astype(object)


def _check_rule(codebook: Codebook, col: pd.Series, var: str, op: str, value, rule: str, where: str):
    """Reject a rule that cannot mean what it says for this variable's type (it would exclude
    every row, or none); returns the value in the column's terms (dates as Timestamps)."""
    def bad(msg, hint):
        return CodebookError(f"eligibility rule '{rule}': {msg}", code="codebook.bad_eligibility",
                             where=where, hint=hint)

    values = value if op in ("in", "not in") else [value]
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if op in (">=", ">", "<=", "<"):
            some = ", ".join(str(c) for c in list(dtype.categories)[:2]) or "a, b"
            raise bad(f"{var} is a category, it cannot be compared with '{op}'",
                      f"list the categories instead, e.g. {var} in [{some}]")
        if var == "country":
            wrong = [x for x in values if not (isinstance(x, str) and re.fullmatch(r"[A-Z]{2}", x))]
            if wrong:
                raise bad(f"{wrong[0]!r} is not an ISO 3166-1 alpha-2 code", "countries are two capital "
                                                                           "letters, e.g. country in [GE, AM]")
        elif var in schema.SCHEMA and schema.SCHEMA[var].derived or codebook.variables.get(var) is not None \
                and codebook.categories(var) is not None:
            cats = [str(c) for c in dtype.categories]
            wrong = [x for x in values if str(x) not in cats]
            if wrong:
                close = difflib.get_close_matches(str(wrong[0]), cats, n=1)
                raise bad(f"{wrong[0]!r} is not a category of {var}",
                          (f"did you mean {close[0]!r}? " if close else "") + "categories: " + ", ".join(cats))
            return [c for c in dtype.categories if str(c) in {str(x) for x in values}] \
                if op in ("in", "not in") else next(c for c in dtype.categories if str(c) == str(value))
        return value
    if pd.api.types.is_bool_dtype(dtype):
        if op in (">=", ">", "<=", "<") or any(_bool_value(x) is None for x in values):
            raise bad(f"{var} is true/false", f"write {var} == true or {var} == false")
        return [_bool_value(x) for x in values] if op in ("in", "not in") else _bool_value(value)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if any(not isinstance(x, _dt.date) for x in values):
            raise bad(f"{var} is a date", f"compare it with a date, e.g. {var} >= 2022-02-24")
        ts = [pd.Timestamp(x) for x in values]
        return ts if op in ("in", "not in") else ts[0]
    if pd.api.types.is_numeric_dtype(dtype):
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in values):
            raise bad(f"{var} is a number", f"compare it with a number, e.g. {var} >= 18")
        return value
    if op in (">=", ">", "<=", "<"):
        raise bad(f"{var} is text, it cannot be compared with '{op}'", f"use ==, !=, in or not in with {var}")
    return [str(x) for x in values] if op in ("in", "not in") else str(value)


def _eval_rule(data: pd.DataFrame, var: str, op: str, value) -> tuple[np.ndarray, np.ndarray]:
    """(passes, unknown) boolean arrays for one rule."""
    col = data[var]
    unknown = col.isna().to_numpy()
    if op in ("in", "not in"):
        res = col.astype(object).isin(value).to_numpy()
        if op == "not in":
            res = ~res
    elif op in ("==", "!="):
        res = (col.astype(object) == value).to_numpy(dtype=bool, na_value=False)
        if op == "!=":
            res = ~res
    elif pd.api.types.is_datetime64_any_dtype(col.dtype):
        vals = col.to_numpy(dtype="datetime64[ns]")
        t = np.datetime64(pd.Timestamp(value), "ns")
        res = {">=": vals >= t, ">": vals > t, "<=": vals <= t, "<": vals < t}[op]
    else:
        num = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        with np.errstate(invalid="ignore"):
            res = {">=": num >= value, ">": num > value, "<=": num <= value, "<": num < value}[op]
    return res & ~unknown, unknown


# ---- host region and returns ----------------------------------------------------------------------

def _derive_residence(ctx: "_Ctx", data: pd.DataFrame, regions) -> None:
    """``host_region`` from ``country``; ``returned`` from ``country == RU`` where the codebook
    does not map it; a mapped ``returned`` that contradicts the country is reported (kept as
    answered: the panel step decides, see harmonise/panel.py)."""
    from . import regions as _regions

    table = regions if regions is not None else _regions.load()
    data["host_region"], unknown = table.derive(data["country"])
    if unknown:
        k = int(data["country"].astype("object").isin(unknown).sum())
        ctx.log.add((2, 0, 0, 0), "host_region", "unmapped", k,
                    lambda k, vals, nd: f"{k} row(s) live in a country without a host region: "
                    + ", ".join(list(vals)[:10]),
                    entries=[(u, 0) for u in unknown], order="key", where=ctx.cb.where("variables", "country"))
    in_ru = data["country"].astype("object").eq(schema.RUSSIA)
    known = data["country"].notna()
    if "returned" not in data:
        data["returned"] = pd.array(np.where(known, in_ru, False), dtype="boolean")
        data.loc[~known, "returned"] = pd.NA
        return
    ret = data["returned"].astype("boolean")
    bad = (known & ret.notna() & (ret.fillna(False).to_numpy(dtype=bool) != in_ru.to_numpy(dtype=bool))).to_numpy(dtype=bool)
    if bad.any():
        ctx.log.add((2, 1, 0, 0), "returned", "inconsistent", int(bad.sum()),
                    lambda k, vals, nd: f"{k} row(s) answer 'returned' against their country of residence "
                    "(returned but not living in Russia, or living in Russia but not returned)",
                    where=ctx.cb.where("variables", "returned"))


# ---- the public function ------------------------------------------------------------------------

def harmonise(wave, codebook, *, strict: bool = False, crosswalks: dict[str, Crosswalk] | None = None,
              age_bands: Sequence[tuple[int, int | None]] = schema.DEFAULT_AGE_BANDS,
              wave_id: str | None = None, regions=None) -> Harmonised:
    """Harmonise one raw wave with its codebook.

    Parameters
    ----------
    wave : RawWave or path (read with :func:`diaspora_survey.read_wave`).
    codebook : Codebook or path to its YAML file.
    strict : unmapped or unparsable values raise :class:`HarmonisationError` instead of
        being reported as issues.
    crosswalks : crosswalk tables (default: the packaged ones, see
        :func:`diaspora_survey.harmonise.crosswalks.load`).
    age_bands : bands of the derived ``age_group``.
    wave_id : overrides the codebook's ``wave``.
    regions : the host-region table (:func:`diaspora_survey.harmonise.regions.load`; default the
        packaged one) from which ``host_region`` is derived.

    A wave too large for memory is harmonised in chunks by
    :func:`diaspora_survey.harmonise.chunked.harmonise_chunked` (the same code, one chunk at a time).
    """
    if isinstance(codebook, (str, Path)):
        codebook = Codebook.load(codebook)
    if isinstance(wave, (str, Path)):
        from ..io import read_wave

        wave = read_wave(wave)
    from ..io import RawWave

    if not isinstance(codebook, Codebook):
        raise CodebookError(f"harmonise needs a Codebook (or its path), not {type(codebook).__name__}",
                            code="harmonise.bad_argument", hint="harmonise(read_wave(FILE), Codebook.load(YAML))")
    if not isinstance(wave, RawWave):
        raise HarmonisationError(f"harmonise needs a RawWave (or a file path), not {type(wave).__name__}",
                                 code="harmonise.bad_argument",
                                 hint="harmonise(read_wave(FILE), Codebook.load(YAML))")
    codebook.validate_against(wave)
    runner = WaveHarmoniser(codebook, wave.meta, wave.source, strict=strict, crosswalks=crosswalks,
                            age_bands=age_bands, wave_id=wave_id, regions=regions)
    data = runner.add(wave.data)
    h = runner.finish()
    h.data = data
    return h


class _SeenIds:
    """Respondent ids kept so far in a wave, to find a duplicate whose first occurrence lies in an
    earlier chunk. Sorted runs, two runs of similar size merged into one (amortised O(n log n);
    membership by binary search, vectorised): numeric ids as they are (8 bytes each), text ids
    by two independent 64-bit SipHash values of their text (``pandas.util.hash_array`` with two
    keys; 16 bytes each, the text itself is not kept): two different ids are taken for the same
    only if both hashes collide, about n² / 2¹²⁹ — 10⁻²¹ for a billion ids."""

    def __init__(self):
        self.runs: list[tuple[np.ndarray, np.ndarray | None]] = []

    @staticmethod
    def _values(keys):
        """(rows with an id, the ids as a numpy array) — numbers as int64/float64, text as objects."""
        arr = keys.array if isinstance(keys, pd.Series) else keys
        na = np.asarray(pd.isna(arr), dtype=bool)
        if isinstance(arr, np.ndarray) and arr.dtype.kind in "iu":
            vals = arr.astype(np.int64, copy=False) if arr.dtype.kind == "i" else arr
        elif isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
            vals = arr + 0.0                           # -0.0 and 0.0 are the same id
        elif pd.api.types.is_integer_dtype(getattr(arr, "dtype", None)):
            vals = np.asarray(arr.to_numpy(dtype="int64", na_value=0))
        elif pd.api.types.is_float_dtype(getattr(arr, "dtype", None)):
            vals = np.asarray(arr.to_numpy(dtype="float64", na_value=np.nan)) + 0.0
        else:
            vals = np.asarray(arr, dtype=object)
        return ~na, vals

    _KEYS = ("diaspora-survey1", "ids-in-chunks-02")

    @classmethod
    def _key(cls, v: np.ndarray):
        """(sort key, confirming key or None): the id itself for numbers; two hashes for text."""
        if v.dtype != object:
            return v, None
        return (pd.util.hash_array(v, hash_key=cls._KEYS[0], categorize=False),
                pd.util.hash_array(v, hash_key=cls._KEYS[1], categorize=False))

    def seen(self, keys) -> np.ndarray:
        ok, vals = self._values(keys)
        out = np.zeros(len(vals), dtype=bool)
        if not self.runs or not ok.any():
            return out
        idx_ok = np.flatnonzero(ok)
        h, v = self._key(vals[idx_ok])
        got = np.zeros(len(h), dtype=bool)
        for rk, rv in self.runs:
            pos = np.minimum(np.searchsorted(rk, h), len(rk) - 1)
            cand = np.flatnonzero((rk[pos] == h) & ~got)
            if not len(cand):
                continue
            if rv is None:                 # numbers: the key is the id
                got[cand] = True
                continue
            same = np.asarray(rv[pos[cand]] == v[cand], dtype=bool)
            got[cand[same]] = True
            for i in cand[~same]:      # a hash shared by two different ids (about never): look on
                j = pos[i] + 1
                while j < len(rk) and rk[j] == h[i]:
                    if rv[j] == v[i]:
                        got[i] = True
                        break
                    j += 1
        out[idx_ok] = got
        return out

    def add(self, keys) -> None:
        """Add distinct ids not yet seen (missing ones are left out)."""
        ok, vals = self._values(keys)
        if not ok.any():
            return
        h, v = self._key(vals[ok])
        if v is None:
            self.runs.append((np.sort(h), None))
        else:
            o = np.argsort(h, kind="stable")
            self.runs.append((h[o], v[o]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (k1, v1), (k2, v2) = self.runs[-2], self.runs[-1]
            if v1 is None:
                kk = np.concatenate([k1, k2])
                kk.sort(kind="stable")
                self.runs[-2:] = [(kk, None)]
            else:
                kk, vv = np.concatenate([k1, k2]), np.concatenate([v1, v2])
                o = np.argsort(kk, kind="stable")
                self.runs[-2:] = [(kk[o], vv[o])]


def _exclusion_frame(wid: str, rows, resp_id, reason, detail) -> pd.DataFrame:
    return pd.DataFrame({
        "wave": pd.Series([wid] * len(rows), dtype="string"),
        "row": pd.Series(rows, dtype="Int64"),
        "resp_id": pd.Series(resp_id, dtype="string"),
        "reason": pd.Series(reason, dtype="string"),
        "detail": pd.Series(detail, dtype="string"),
    })


class WaveHarmoniser:
    """Harmonises one wave chunk by chunk: :meth:`add` each chunk of raw rows in file order (index:
    the rows' positions in the file), then :meth:`finish`. What needs the whole wave is kept
    across chunks: issues with their totals (:class:`_IssueLog`), exclusions, the summary, the
    rule counts and the respondent ids kept so far (a duplicate whose first occurrence lies in an
    earlier chunk is found as in memory). With ``facts`` (a :class:`WaveFacts` from a first
    pass over the file) every chunk is harmonised with the wave's dtypes and categories; without,
    the one chunk given is the whole wave (:func:`harmonise`).

    ``strict`` in chunks: an unmapped value is an error once every chunk has been counted (the
    message gives the wave's totals); the remaining chunks are then only counted, not returned.
    """

    def __init__(self, codebook: Codebook, meta: dict, source, *, strict: bool = False,
                 crosswalks: dict[str, Crosswalk] | None = None,
                 age_bands: Sequence[tuple[int, int | None]] = schema.DEFAULT_AGE_BANDS,
                 wave_id: str | None = None, regions=None, facts: WaveFacts | None = None):
        from . import crosswalks as _cw

        self.cb = codebook
        self.meta, self.source = meta, source
        self.strict = strict
        self.cws = crosswalks if crosswalks is not None else _cw.load()
        self.age_bands = age_bands
        self.regions = regions
        self.wid = str(wave_id or codebook.wave)
        self.facts = facts
        self.whole = facts is None
        self.log = _IssueLog(self.wid)
        self._seen = _SeenIds()
        self._summary: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in codebook.variables}
        self._rules: dict[str, dict] = {}
        self._excl: list[pd.DataFrame] = []
        self.n_rows = 0           # rows read
        self.n_kept = 0           # rows harmonised (not excluded)
        self._no_id = 0
        self._offset = 0
        self.failed = False       # strict: an unmapped value was met (chunks are then only counted)

    def _strict_error(self, name: str) -> HarmonisationError:
        first = next(i for i in self.log.issues(name) if i.kind in STRICT_KINDS)
        return HarmonisationError(
            f"wave {self.wid}, {name}: {first.message}", code="harmonise.unmapped", where=first.where,
            hint="add the values to 'map:'/'labels:' (or to 'missing:' if they mean no answer) "
                 "in the codebook, or run without --strict to get them as reported NA")

    def empty(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The output's columns and dtypes (categories included): ``raw`` (no rows, the raw
        columns' dtypes) harmonised on the side — nothing is counted."""
        saved = dict(self.__dict__)
        self.log, self._seen = _IssueLog(self.wid), _SeenIds()
        self._summary = {name: [0, 0, 0, 0] for name in self.cb.variables}
        self._rules, self._excl = {}, []
        self.strict, self.failed = False, False
        try:
            return self.add(raw.iloc[:0])
        finally:
            self.__dict__.clear()
            self.__dict__.update(saved)

    def add(self, raw: pd.DataFrame) -> pd.DataFrame | None:
        """Harmonise the next chunk: the harmonised rows kept (index: their positions in the file),
        or None after a strict failure."""
        from ..io import RawWave

        codebook, wid, strict = self.cb, self.wid, self.strict
        n = len(raw)
        offset = self._offset
        self._offset += n
        self.n_rows += n
        wave = RawWave(data=raw, meta=self.meta, source=self.source)
        ctx = _Ctx(wid, codebook, wave, self.cws, log=self.log, facts=self.facts)
        out: dict[str, pd.Series] = {}
        summary_rows = []

        # respondent id
        if codebook.id:
            ids = raw[codebook.id]
            if _whole_floats(ctx, codebook.id, ids):
                ids = ids.astype("Int64")
            rid = ids.astype("string").str.strip()
            # duplicates are found on the numbers where the ids are numbers (much faster than on text)
            id_key = ids.array if pd.api.types.is_numeric_dtype(ids.dtype) and not \
                pd.api.types.is_bool_dtype(ids.dtype) else rid.array
            no_id = rid.isna() | (rid == "")
            if self.whole and n and bool(no_id.all()):   # never a normal-looking result without any id
                raise self._empty_id_error()
            k = int(no_id.sum())
            self._no_id += k
            if k:
                self.log.add((0, 0, 0, 0), "resp_id", "missing_id", k,
                             lambda k, vals, nd: f"{k} row(s) have no respondent id (kept; duplicates cannot "
                             "be checked for them)", where=codebook.where("id"))
        else:
            rid = pd.Series(np.arange(offset + 1, offset + n + 1).astype(str), index=raw.index, dtype="string")
            id_key = np.arange(offset, offset + n)
        out["resp_id"] = rid.astype("string")

        for j, (name, spec) in enumerate(codebook.variables.items()):
            v = _Var(ctx, name, spec, order=j)
            vtype = codebook.var_type(name)
            t = spec.transform
            if t == "age_from_birth_year":
                num = _apply_valid_range(v, _age_from_birth_year(v, raw))
                series = _to_int(v, num) if vtype == "int" else num
            elif t == "month":
                series = _month_series(v, raw[spec.sources[0]])
            elif t == "year_month":
                series = _year_month(v, raw)
            elif t == "date":
                series = _parse_dates(v, raw[spec.sources[0]], spec.sources[0], floor_month=name == "departure_date")
            elif vtype in ("int", "float"):
                num = _apply_valid_range(v, _numeric_with_missing(v, raw[spec.sources[0]], spec.sources[0]))
                series = _to_int(v, num) if vtype == "int" else num.astype("Float64")
            elif spec.rules:
                series = _apply_rules(v, codebook.categories(name), vtype == "ordered", vtype)
            elif vtype in ("category", "ordered"):
                ordered = vtype == "ordered"
                series = _map_categorical(v, raw[spec.sources[0]], codebook.categories(name), ordered)
            elif vtype == "bool":
                cats = _map_categorical(v, raw[spec.sources[0]], None, False, whole_set=False)
                lut = np.array([bool(_bool_value(c)) for c in cats.cat.categories] + [False], dtype=bool)
                codes = cats.cat.codes.to_numpy()
                series = pd.Series(pd.arrays.BooleanArray(lut[codes], codes < 0), index=cats.index)
            elif vtype == "string":
                s = raw[spec.sources[0]]
                if _whole_floats(ctx, spec.sources[0], s):
                    s = s.astype("Int64")          # numeric ids: "17", not "17.0" (as resp_id)
                s = s.astype("string").str.strip()
                miss = s.eq("").fillna(True)
                if spec.missing:
                    miss |= _string_missing(s, spec.missing)
                series = s.mask(miss)
            elif vtype == "date":
                series = _parse_dates(v, raw[spec.sources[0]], spec.sources[0])
            else:  # pragma: no cover - types are validated by the model
                raise CodebookError(f"unsupported type {vtype}", where=v.where())
            if strict and self.log.has(name, STRICT_KINDS):
                if self.whole:
                    raise self._strict_error(name)
                self.failed = True
            out[name] = series.rename(name)
            summary_rows.append((name, v))
            if spec.rules:
                acc = self._rules.setdefault(name, {})
                for rk, c in v.rule_counts.items():
                    acc[rk] = acc.get(rk, 0) + int(c)
        if self.failed:          # strict: the error follows in finish(), with the wave's totals
            return None

        data = pd.DataFrame(out, index=raw.index)

        # derived variables (schema rules)
        if "age" in data:
            data["age_group"] = schema.derive_age_group(data["age"], self.age_bands)
        if "education" in data:
            data["higher_education"] = schema.derive_higher_education(data["education"]).astype("boolean")
        if "employment_status" in data:
            data["entrepreneur"] = schema.derive_entrepreneur(data["employment_status"]).astype("boolean")
        if "departure_date" in data:
            data["departure_cohort"] = schema.derive_departure_cohort(data["departure_date"])
        if "country" in data:
            _derive_residence(ctx, data, self.regions)

        # design columns
        if codebook.design is not None:
            for i, (key, target) in enumerate(DESIGN_NAMES.items()):
                col = getattr(codebook.design, key)
                if not col:
                    continue
                s = raw[col]
                if key in ("weight", "fpc"):
                    num = pd.to_numeric(s.astype("string").str.replace(",", ".", regex=False), errors="coerce") \
                        if not pd.api.types.is_numeric_dtype(s.dtype) else s
                    num = num.astype("float64")
                    bad = num.isna() | (num <= 0) if key == "weight" else num.isna()
                    if bad.any():
                        self.log.add((3, i, 0, 0), target, "missing_weight" if key == "weight" else "missing_fpc",
                                     int(bad.sum()), lambda k, vals, nd, key=key, col=col:
                                     f"{k} row(s) with a missing or non-positive {key} in {col!r}",
                                     where=codebook.where("design", key))
                    data[target] = num
                else:
                    if _whole_floats(ctx, col, s):
                        s = s.astype("Int64")
                    data[target] = s.astype("string")

        # eligibility and exclusions
        keep = np.ones(n, dtype=bool)
        reason = np.full(n, None, dtype=object)
        detail = np.full(n, None, dtype=object)
        for i, rule in enumerate(codebook.eligibility_rules()):
            where = codebook.where("eligibility", i)
            var, op, value = parse_rule(rule.rule, where=where)
            if var not in data:
                raise CodebookError(f"eligibility rule uses {var!r}, which this codebook does not define",
                                    code="codebook.bad_eligibility", where=where,
                                    hint=f"map {var!r} under 'variables:' or remove the rule")
            value = _check_rule(codebook, data[var], var, op, value, rule.rule, where)
            ok, unknown = _eval_rule(data, var, op, value)
            fail = keep & ~ok & ~unknown
            if rule.missing == "exclude":
                fail |= keep & unknown
            elif (keep & unknown).any():
                k = int((keep & unknown).sum())
                self.log.add((4, i, 0, 0), var, "eligibility_unknown", k,
                             lambda k, vals, nd, rule=rule.rule, var=var:
                             f"{k} row(s) kept although '{rule}' cannot be checked ({var} missing)",
                             where=where)
            if fail.any():
                reason[fail] = f"eligibility: {rule.rule}"
                detail[fail] = (f"{var}=" + _as_text(data[var][fail])).to_numpy(dtype=object)
                keep &= ~fail
        # duplicate ids among kept rows: first occurrence kept (also across chunks)
        dup = np.zeros(n, dtype=bool)
        keys = id_key[keep]
        dup_kept = _repeated(keys)
        if not self.whole:
            dup_kept |= self._seen.seen(keys)
            self._seen.add(keys[~dup_kept])
        dup[keep] = dup_kept
        if dup.any():
            reason[dup] = "duplicate resp_id"
            detail[dup] = ("resp_id=" + data["resp_id"][dup]).to_numpy(dtype=object)
            keep &= ~dup
            self.log.add((5, 0, 0, 0), "resp_id", "duplicate_id", int(dup.sum()),
                         lambda k, vals, nd: f"{k} row(s) repeat an earlier respondent id; first kept, "
                         "others excluded", where=codebook.where("id"))

        positions = np.arange(offset, offset + n)
        if not keep.all():
            self._excl.append(_exclusion_frame(wid, positions[~keep], data["resp_id"].to_numpy()[~keep],
                                               reason[~keep], detail[~keep]))
        data = data.loc[keep] if not keep.all() else data
        self.n_kept += len(data)

        # summary over the rows kept: n + missing + unmapped + out_of_range = rows kept
        for name, v in summary_rows:
            na = data[name].isna().to_numpy()
            unm = v.unmapped_rows[keep]
            oor = v.out_of_range_rows[keep] & ~unm
            acc = self._summary[name]
            acc[0] += int((~na).sum())
            acc[1] += int((na & ~unm & ~oor).sum())
            acc[2] += int(unm.sum())
            acc[3] += int(oor.sum())
        return data

    def _empty_id_error(self) -> CodebookError:
        return CodebookError(f"the id column {self.cb.id!r} is empty in every row",
                             code="codebook.empty_id", where=self.cb.where("id"),
                             hint="name the column that holds the respondent ids, or remove 'id:' "
                                  "to number the rows")

    def finish(self) -> Harmonised:
        """The wave's issues, exclusions, summary and rule counts (``data`` None: the caller has the
        chunks). Raises the errors that need every chunk (an empty id column; strict)."""
        if not self.whole:
            if self.cb.id and self.n_rows and self._no_id == self.n_rows:
                raise self._empty_id_error()
            if self.strict:
                for name in self.cb.variables:
                    if self.log.has(name, STRICT_KINDS):
                        raise self._strict_error(name)
        parts = [e for e in self._excl if len(e)]
        excl = pd.concat(parts, ignore_index=True) if len(parts) > 1 else \
            (parts[0].reset_index(drop=True) if parts else _exclusion_frame(self.wid, [], [], [], []))
        rows = [{"wave": self.wid, "variable": name, "n": a[0], "missing": a[1], "unmapped": a[2],
                 "out_of_range": a[3]} for name, a in self._summary.items()]
        summary = pd.DataFrame(rows, columns=["wave", "variable", "n", "missing", "unmapped", "out_of_range"])
        summary[["n", "missing", "unmapped", "out_of_range"]] = summary[["n", "missing", "unmapped",
                                                                         "out_of_range"]].astype("int64")
        return Harmonised(data=None, issues=self.log.issues(), exclusions=excl, summary=summary, wave=self.wid,
                          rules={k: dict(v) for k, v in self._rules.items()}, n_kept=self.n_kept,
                          n_read=self.n_rows)


class Stacker:
    """Stacks per-wave harmonised frames into one (as :func:`stack`), frame by frame: categorical
    columns get the union of the waves' categories (schema order where the schema has levels,
    sorted for country, first-seen order for custom variables), a categorical ``wave`` column
    comes first, and a column that a wave lacks is added to its rows as missing values of the
    column's dtype. Built from one frame per wave that has every column's dtype (e.g.
    :meth:`WaveHarmoniser.empty`), in project order."""

    def __init__(self, frames: dict[str, pd.DataFrame], wave_order: Sequence[str] | None = None):
        self.order = list(wave_order or list(frames))
        cat_cols: dict[str, list] = {}
        ordered: dict[str, bool] = {}
        columns: dict[str, Any] = {}
        for d in frames.values():
            for c in d.columns:
                if isinstance(d[c].dtype, pd.CategoricalDtype):
                    lst = cat_cols.setdefault(c, [])
                    for x in d[c].cat.categories:
                        if x not in lst:
                            lst.append(x)
                    ordered[c] = bool(d[c].cat.ordered)
                if c not in columns:
                    columns[c] = d[c].dtype
        for c in columns:       # the dtype concatenating the waves gives (e.g. Int64 and Float64: Float64)
            having = [d[[c]].iloc[:0] for d in frames.values() if c in d]
            if len(having) > 1 and c not in cat_cols:
                columns[c] = pd.concat(having, ignore_index=True)[c].dtype
        if "country" in cat_cols:
            cat_cols["country"] = sorted(cat_cols["country"])
        self.cat_cols, self.ordered = cat_cols, ordered
        for c, cats in cat_cols.items():
            columns[c] = pd.CategoricalDtype(cats, ordered=ordered[c])
        for c in ("higher_education", "entrepreneur", "returned", "moved_on"):
            if c in columns:
                columns[c] = pd.BooleanDtype()
        if "age" in columns:
            columns["age"] = pd.Int64Dtype()
        if "resp_id" in columns:
            columns["resp_id"] = pd.StringDtype()
        self.dtypes = columns
        self.wave_dtype = pd.CategoricalDtype(self.order)

    def frame(self, d: pd.DataFrame, wave: str) -> pd.DataFrame:
        """One wave's harmonised rows (or a chunk of them) in the stacked form (index 0..n-1)."""
        n = len(d)
        cols: dict[str, Any] = {"wave": pd.Categorical.from_codes(np.full(n, self.order.index(wave), dtype=np.int8
                                                                          if len(self.order) < 127 else np.int64),
                                                                  dtype=self.wave_dtype)}
        for c, dt in self.dtypes.items():
            if c in d:
                s = d[c]
                if c in self.cat_cols:
                    s = s.cat.set_categories(self.cat_cols[c], ordered=self.ordered[c])
                elif s.dtype != dt:
                    s = s.astype(dt)
                cols[c] = s.array
            else:
                cols[c] = pd.array([None] * n, dtype=dt) if not isinstance(dt, np.dtype) else \
                    pd.Series(np.full(n, None), dtype=object).astype(dt).array
        return pd.DataFrame(cols, index=pd.RangeIndex(n), copy=False)


def stack(results: Sequence[Harmonised], wave_order: Sequence[str] | None = None):
    """Stack per-wave results: (data, exclusions) with a categorical ``wave`` column.

    Categorical columns get the union of categories (schema order where the schema has levels,
    sorted for country, first-seen order for custom variables); see :class:`Stacker`.
    """
    order = list(wave_order or [r.wave for r in results])
    st = Stacker({str(r.wave): r.data for r in results}, order)
    frames = [st.frame(r.data, str(r.wave)) for r in results]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"wave": pd.Categorical([])})
    # per wave (rows in its file, [excluded rows]): messages can then name a row's place in its
    # file ("data row 4 of wave …'s file"); small, JSON-friendly (parquet keeps attrs as JSON)
    data.attrs["source_rows"] = source_rows(results)
    excl = stack_exclusions(results, order)
    return data, excl


def source_rows(results: Sequence[Harmonised]) -> dict:
    """``data.attrs["source_rows"]`` of the stacked data: {wave: [rows in its file, [excluded rows]]}."""
    return {str(r.wave): [int(r.rows_read), [int(x) for x in r.exclusions["row"].dropna()]
                          if "row" in r.exclusions else []] for r in results}


def stack_exclusions(results: Sequence[Harmonised], order: Sequence[str]) -> pd.DataFrame:
    excl = pd.concat([r.exclusions for r in results], ignore_index=True) if results else \
        pd.DataFrame(columns=EXCLUSION_COLUMNS)
    excl["wave"] = pd.Categorical(excl["wave"].astype(object), categories=list(order))
    return excl


__all__ = ["harmonise", "Harmonised", "Issue", "Stacker", "WaveFacts", "WaveHarmoniser", "parse_month",
           "stack"]

