"""Weighting targets: parsing, validation and loaders.

A *target specification* is ``{margin: {category: value}}`` (DESIGN.md, contract):

* ``margin`` is one variable (``"country"``) or a cross-classification of several:
  the string ``"sex:age_group"`` or the tuple ``("sex", "age_group")``.
* ``category`` is a level of the variable; for a cross-classification a tuple
  ``("female", "18-24")`` or the string ``"female:18-24"`` (levels joined by ``:``),
  or a nested mapping ``{"female": {"18-24": 0.1, ...}, ...}``.
* ``value`` is a population **share** or a population **count**.  By default a margin
  whose values sum to 1 (within 1e-6) holds shares and is scaled to the weight total;
  any other margin holds counts and is used as it is.  A margin whose values are all
  below 1 but do not sum to 1 is rejected ("shares sum to 0.98, not 1").  The kind can
  be forced with ``kind="shares" | "counts" | "percent"`` (per call, per YAML file, or
  per margin in YAML).

Counts margins must agree on the population total (relative 1e-6); shares are scaled
to that total when some margins are counts (reported), otherwise to the sum of the
base weights.

Loaders: :func:`load_targets` (``targets.yaml``), :func:`targets_from_long` (a long or
tidy census table with columns variable, category, value — the way published margins
come) and :func:`targets_from_project` (the ``[weighting]`` section of
``diaspora-survey.toml``).  Everything is validated before any iteration
(:func:`parse_targets`) and every problem is a :class:`~diaspora_survey.errors.WeightingError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import WeightingError

SEP = ":"
KINDS = ("auto", "shares", "counts", "percent")
SHARE_TOL = 1e-6
TOTAL_TOL = 1e-6


class Mean(float):
    """A numeric calibration target given as a population *mean*: the total is
    ``mean × N``, N the population size of the categorical totals (or of the base weights
    when the categorical targets are shares). ``{"age": Mean(38.2)}``."""

    def __repr__(self) -> str:
        return f"Mean({float(self)!r})"



@dataclass(frozen=True)
class Margin:
    """One validated margin.

    variables: the column names (one, or several for a cross-classification);
    categories: one tuple of level labels (strings) per target category;
    values: the targets as given (shares or counts, floats);
    kind: ``"shares"`` or ``"counts"`` (percent is converted to shares).
    """

    variables: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    values: tuple[float, ...]
    kind: str
    source: str = ""

    @property
    def name(self) -> str:
        return SEP.join(self.variables)

    def label(self, j: int) -> str:
        """``country=GE`` or ``sex:age_group=female:18-24``."""
        return f"{self.name}={SEP.join(self.categories[j])}"

    @property
    def total(self) -> float:
        return math.fsum(self.values)

    def shares(self) -> list[float]:
        t = self.total
        return [v / t for v in self.values]

    def drop(self, js: Iterable[int]) -> "Margin":
        """The margin without categories ``js``, renormalised to its former total."""
        js = set(js)
        keep = [j for j in range(len(self.categories)) if j not in js]
        vals = [self.values[j] for j in keep]
        s = math.fsum(vals)
        if s <= 0:
            raise WeightingError(f"margin {self.name}: nothing left after dropping categories",
                                 code="weighting.empty_margin")
        scale = self.total / s
        return replace(self, categories=tuple(self.categories[j] for j in keep),
                       values=tuple(v * scale for v in vals))

    def restrict(self, variable: str, levels: Iterable[str]) -> "Margin":
        """Keep only categories whose ``variable`` level is in ``levels`` and renormalise
        to the former total (a wave whose frame covers part of the population)."""
        if variable not in self.variables:
            return self
        k = self.variables.index(variable)
        levels = {str(x) for x in levels}
        drop = [j for j, c in enumerate(self.categories) if c[k] not in levels]
        return self.drop(drop) if drop else self


@dataclass(frozen=True)
class Targets:
    """A validated, ordered list of margins plus the decisions taken while parsing."""

    margins: tuple[Margin, ...]
    decisions: tuple[str, ...] = field(default_factory=tuple)

    def __iter__(self):
        return iter(self.margins)

    def __len__(self) -> int:
        return len(self.margins)

    @property
    def variables(self) -> list[str]:
        out: list[str] = []
        for m in self.margins:
            for v in m.variables:
                if v not in out:
                    out.append(v)
        return out

    @property
    def count_total(self) -> float | None:
        """The population total implied by the counts margins (None if all are shares)."""
        counts = [m.total for m in self.margins if m.kind == "counts"]
        return counts[0] if counts else None

    def restrict(self, variable: str, levels: Iterable[str]) -> "Targets":
        levels = list(levels)
        ms = tuple(m.restrict(variable, levels) for m in self.margins)
        return Targets(ms, self.decisions)

    def to_dict(self) -> dict:
        """Back to ``{margin: {category: value}}`` (cross-classified keys joined by ':')."""
        return {m.name: {SEP.join(c): v for c, v in zip(m.categories, m.values)} for m in self.margins}


# ---------------------------------------------------------------------------- parsing
def _split_margin_key(key) -> tuple[str, ...]:
    if isinstance(key, tuple):
        parts = tuple(str(k) for k in key)
    else:
        parts = tuple(p.strip() for p in str(key).split(SEP))
    if not parts or any(p == "" for p in parts):
        raise WeightingError(f"bad margin name {key!r}", code="weighting.bad_targets",
                             hint="a margin is a variable name or 'var1:var2' for a cross-classification")
    if len(set(parts)) != len(parts):
        raise WeightingError(f"margin {key!r} names a variable twice", code="weighting.bad_targets")
    return parts


def _norm_level(x) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x).strip()


def _flatten_categories(name: str, k: int, cats) -> list[tuple[tuple[str, ...], Any]]:
    """(category tuple, value) pairs from a mapping, a nested mapping or a pandas Series."""
    if hasattr(cats, "items") and not isinstance(cats, Mapping):   # pandas Series
        cats = dict(cats.items())
    if not isinstance(cats, Mapping):
        raise WeightingError(f"targets for {name!r} must map categories to values, got "
                             f"{type(cats).__name__}", code="weighting.bad_targets",
                             hint="e.g. {'country': {'GE': 0.2, 'AM': 0.15, ...}}")
    out: list[tuple[tuple[str, ...], Any]] = []
    for cat, val in cats.items():
        if isinstance(val, Mapping):
            if k < 2:
                raise WeightingError(f"nested targets under {name}={cat!r}, but {name!r} is one "
                                     f"variable", code="weighting.bad_targets",
                                     hint="nest categories only for a cross-classification "
                                          "such as 'sex:age_group'")
            for sub, v in _flatten_categories(name, k - 1, val):
                out.append(((_norm_level(cat),) + sub, v))
            continue
        if isinstance(cat, tuple):
            parts = tuple(_norm_level(c) for c in cat)
        elif k > 1:
            parts = tuple(p.strip() for p in str(cat).split(SEP))
        else:
            parts = (_norm_level(cat),)
        out.append((parts, val))
    return out


def _as_float(name: str, cat, val) -> float:
    try:
        v = float(val)
    except (TypeError, ValueError):
        raise WeightingError(f"target {name}={cat} is not a number: {val!r}",
                             code="weighting.bad_targets") from None
    if math.isnan(v) or math.isinf(v):
        raise WeightingError(f"target {name}={cat} is missing or infinite ({val!r})",
                             code="weighting.bad_targets", hint="give a finite share or count")
    if v < 0:
        raise WeightingError(f"target {name}={cat} is negative ({v:g})", code="weighting.bad_targets")
    return v


def parse_targets(targets, kind: str = "auto", *, source: str = "") -> Targets:
    """Validate a target specification and return :class:`Targets`.

    Accepts a mapping (see module docstring), an existing :class:`Targets`, or a list of
    :class:`Margin`.  ``kind`` forces how values are read (``"auto"``: margins summing to
    1 are shares, others counts).  Raises WeightingError for: empty targets, non-numeric,
    negative or missing values, categories of the wrong arity, duplicate categories,
    shares not summing to 1, counts margins whose totals disagree, margins naming the
    same variable twice (the same variable in two margins is allowed: e.g. ``sex`` and
    ``sex:age_group``, as long as they agree).
    """
    if isinstance(targets, Targets):
        return targets
    if isinstance(targets, (list, tuple)) and all(isinstance(m, Margin) for m in targets):
        return _check_totals(Targets(tuple(targets)), source)
    if kind not in KINDS:
        raise WeightingError(f"unknown targets kind {kind!r}", code="weighting.bad_option",
                             hint="one of " + ", ".join(KINDS))
    if hasattr(targets, "columns") and hasattr(targets, "iterrows"):   # a long DataFrame
        return targets_from_long(targets, kind=kind)
    if not isinstance(targets, Mapping) or not targets:
        raise WeightingError("targets must be a non-empty mapping {margin: {category: value}}",
                             code="weighting.bad_targets", where=source or None,
                             hint="e.g. {'sex': {'female': 0.52, 'male': 0.48}}")
    margins: list[Margin] = []
    seen: set[tuple[str, ...]] = set()
    for key, cats in targets.items():
        mkind = kind
        if isinstance(cats, Mapping) and "kind" in cats and "values" in cats:  # YAML per-margin form
            mkind = str(cats["kind"])
            cats = cats["values"]
        vars_ = _split_margin_key(key)
        name = SEP.join(vars_)
        if vars_ in seen:
            raise WeightingError(f"margin {name!r} is given twice", code="weighting.bad_targets",
                                 where=source or None)
        seen.add(vars_)
        pairs = _flatten_categories(name, len(vars_), cats)
        if not pairs:
            raise WeightingError(f"margin {name!r} has no categories", code="weighting.bad_targets",
                                 where=source or None)
        cats_out: list[tuple[str, ...]] = []
        vals: list[float] = []
        for parts, val in pairs:
            label = SEP.join(parts)
            if len(parts) != len(vars_):
                raise WeightingError(
                    f"category {label!r} of margin {name!r} has {len(parts)} level(s), expected "
                    f"{len(vars_)}", code="weighting.bad_targets", where=source or None,
                    hint=f"write cross-classified categories as 'level1{SEP}level2' or tuples")
            if parts in cats_out:
                raise WeightingError(f"category {name}={label} is given twice",
                                     code="weighting.bad_targets", where=source or None)
            cats_out.append(parts)
            vals.append(_as_float(name, label, val))
        margins.append(_make_margin(vars_, cats_out, vals, mkind, source))
    return _check_totals(Targets(tuple(margins)), source)


def _make_margin(vars_, cats, vals, kind, source) -> Margin:
    name = SEP.join(vars_)
    if kind not in KINDS:
        raise WeightingError(f"unknown targets kind {kind!r} for margin {name!r}",
                             code="weighting.bad_option", hint="one of " + ", ".join(KINDS))
    try:
        total = math.fsum(vals)
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        raise WeightingError(f"targets of margin {name!r} are too large (their sum overflows)",
                             code="weighting.bad_targets", where=source or None)
    if total <= 0:
        raise WeightingError(f"targets of margin {name!r} sum to 0", code="weighting.bad_targets",
                             where=source or None)
    if kind == "percent":
        if abs(total - 100) > 100 * SHARE_TOL:
            raise WeightingError(f"percentages of margin {name!r} sum to {total:.6g}, not 100",
                                 code="weighting.shares_sum", where=source or None,
                                 hint="fix the targets, or give counts with kind='counts'")
        vals = [v / 100 for v in vals]
        kind = "shares"
    elif kind == "shares" or (kind == "auto" and max(vals) <= 1):
        if abs(total - 1) > SHARE_TOL:
            raise WeightingError(
                f"shares of margin {name!r} sum to {total:.6g}, not 1", code="weighting.shares_sum",
                where=source or None,
                hint="fix the targets (a category may be missing), or say kind='counts' if they "
                     "are population counts")
        kind = "shares"
    else:
        kind = "counts"
    return Margin(tuple(vars_), tuple(tuple(c) for c in cats), tuple(vals), kind, source)


def _check_totals(t: Targets, source: str) -> Targets:
    counts = [m for m in t.margins if m.kind == "counts"]
    if counts:
        ref = counts[0]
        for m in counts[1:]:
            if abs(m.total - ref.total) > TOTAL_TOL * max(abs(ref.total), 1.0):
                raise WeightingError(
                    f"margin totals disagree: {ref.name} sums to {ref.total:,.6g} but {m.name} to "
                    f"{m.total:,.6g}", code="weighting.totals_disagree", where=source or None,
                    hint="all count margins must describe the same population; give shares, or "
                         "correct the counts")
    # consistency between margins sharing variables (e.g. sex and sex:age_group)
    for i, a in enumerate(t.margins):
        for b in t.margins[i + 1:]:
            common = [v for v in a.variables if v in b.variables]
            if not common:
                continue
            ta, tb = _collapse(a, common), _collapse(b, common)
            for key in sorted(set(ta) | set(tb)):
                va, vb = ta.get(key, 0.0), tb.get(key, 0.0)
                if abs(va - vb) > 1e-6 * max(1.0, abs(va), abs(vb)):
                    raise WeightingError(
                        f"margins {a.name} and {b.name} disagree on {SEP.join(common)}="
                        f"{SEP.join(key)}: {va:.6g} vs {vb:.6g} (as shares)",
                        code="weighting.margins_inconsistent", where=source or None,
                        hint="raking cannot meet contradictory targets; make the margins agree or "
                             "drop one of them")
    return t


def _collapse(m: Margin, common: list[str]) -> dict[tuple[str, ...], float]:
    idx = [m.variables.index(v) for v in common]
    out: dict[tuple[str, ...], float] = {}
    for c, s in zip(m.categories, m.shares()):
        key = tuple(c[i] for i in idx)
        out[key] = out.get(key, 0.0) + s
    return out


# ---------------------------------------------------------------------------- loaders
def targets_from_long(table, variable: str = "variable", category: str = "category",
                      value: str = "value", *, kind: str = "auto", filter: str | None = None,
                      filter_value=None) -> Targets:
    """Targets from a long/tidy table with one row per (variable, category, value).

    A cross-classified margin has ``variable = "sex:age_group"`` and
    ``category = "female:18-24"``.  ``filter``/``filter_value`` select the rows of one
    segment (e.g. ``filter="wave", filter_value="2024-05"``).  A CSV path is read with
    pandas.  Duplicate (variable, category) rows and missing values are errors.
    """
    import pandas as pd

    src = ""
    if isinstance(table, (str, Path)):
        src = str(table)
        try:
            table = pd.read_csv(table, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise WeightingError(f"targets table not found: {src}", code="weighting.targets_file",
                                 where=src) from None
    cols = [variable, category, value] + ([filter] if filter else [])
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise WeightingError(f"targets table lacks column(s) {', '.join(map(repr, missing))}",
                             code="weighting.bad_targets", where=src or None,
                             hint=f"expected columns {variable!r}, {category!r}, {value!r}; pass "
                                  f"variable=, category=, value= to name yours")
    if filter:
        table = table[table[filter].astype(str) == str(filter_value)]
    spec: dict[str, dict[str, Any]] = {}
    for row, (var, cat, val) in enumerate(zip(table[variable], table[category], table[value]), start=1):
        if pd.isna(var) or pd.isna(cat) or str(var).strip() == "" or str(cat).strip() == "":
            raise WeightingError(f"row {row} of the targets table has an empty variable or category",
                                 code="weighting.bad_targets", where=src or None)
        var, cat = str(var).strip(), _norm_level(cat)
        if cat in spec.setdefault(var, {}):
            raise WeightingError(f"category {var}={cat} appears twice in the targets table",
                                 code="weighting.bad_targets", where=src or None)
        spec[var][cat] = val
    if not spec:
        raise WeightingError("the targets table has no rows" + (f" for {filter}={filter_value}" if filter else ""),
                             code="weighting.bad_targets", where=src or None)
    return parse_targets(spec, kind=kind, source=src)


@dataclass(frozen=True)
class TargetsFile:
    """What ``targets.yaml`` holds: common targets, per-wave overrides and frames."""

    targets: Targets
    waves: dict[str, dict] = field(default_factory=dict)   # wave -> {"targets": Targets|None, "restrict": {var: [levels]}, "totals": {...}}
    illustrative: bool = False
    note: str = ""
    path: str = ""
    totals: dict = field(default_factory=dict)   # numeric calibration targets {var: total or Mean}

    def totals_for(self, wave: str) -> dict:
        """The numeric calibration targets of one wave: its own ``totals`` if given, else
        the common ones."""
        own = self.waves.get(str(wave), {}).get("totals")
        return dict(self.totals if own is None else own)

    def for_wave(self, wave: str) -> tuple[Targets, list[str]]:
        """The targets of one wave: its own targets if given, else the common ones,
        restricted to the wave's frame (``restrict``), with the decisions taken."""
        spec = self.waves.get(str(wave), {})
        t = spec.get("targets") or self.targets
        notes: list[str] = []
        if spec.get("targets") is not None:
            notes.append(f"wave {wave}: own targets from {self.path or 'the targets file'}")
        for var, levels in (spec.get("restrict") or {}).items():
            t = t.restrict(var, levels)
            notes.append(f"wave {wave}: frame covers {var} in {{{', '.join(map(str, levels))}}} only; "
                         f"the {var} targets were restricted to these and renormalised")
        return t, notes


def load_targets(path: str | Path, *, kind: str | None = None) -> TargetsFile:
    """Read a ``targets.yaml`` file.

    Layout::

        illustrative: true          # optional; reports say so
        kind: shares                # optional: auto | shares | counts | percent
        margins:                    # the common targets
          country: {GE: 0.20, AM: 0.15, ...}
          sex:age_group: {female:18-24: 0.05, ...}     # or nested {female: {18-24: ...}}
        long: census.csv            # alternative to margins: a long table (variable,category,value)
        totals:                     # optional numeric auxiliaries (method = calibrate only)
          age: {mean: 37.5}         # a population mean (total = mean x population size)
          income: 2.1e9             # or a population total
        waves:                      # optional per-wave settings
          2024-05:
            restrict: {country: [DE, CY, ...]}   # the wave's frame: restrict and renormalise
            margins: {...}                        # or the wave's own targets
            totals: {...}                         # the wave's own numeric targets

    The top-level mapping may also be just the margins (no ``margins:`` key).
    """
    import yaml

    if not isinstance(path, (str, os.PathLike)):
        raise WeightingError(f"a targets file is a path, not {type(path).__name__}",
                             code="weighting.targets_file", hint="load_targets('codebooks/targets.yaml')")
    p = Path(path)
    if not p.exists():
        raise WeightingError(f"targets file not found: {p}", code="weighting.targets_file",
                             where=str(p), hint="write codebooks/targets.yaml or pass --targets")
    from .._files import read_text_input
    from .._yaml import safe_load

    text = read_text_input(p, what="targets file", error=WeightingError, code="weighting.targets_file")
    try:
        raw = safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        raise WeightingError(f"targets file is not valid YAML: {getattr(e, 'problem', e)}",
                             code="weighting.targets_file", where=where) from None
    if not isinstance(raw, Mapping):
        raise WeightingError("targets file must hold a mapping", code="weighting.targets_file",
                             where=str(p))
    known = {"illustrative", "kind", "margins", "long", "waves", "note", "source", "totals"}
    has_structure = any(k in raw for k in ("margins", "long", "waves", "totals"))
    if has_structure:
        unknown = [k for k in raw if k not in known]
        if unknown:
            raise WeightingError(f"unknown key(s) in targets file: {', '.join(map(str, unknown))}",
                                 code="weighting.targets_file", where=str(p),
                                 hint="known keys: " + ", ".join(sorted(known)))
    k = kind or str(raw.get("kind", "auto")) if has_structure else (kind or "auto")

    def read_margins(node, where) -> Targets:
        if isinstance(node, Mapping) and "long" in node and "margins" not in node:
            lp = Path(node["long"])
            lp = lp if lp.is_absolute() else p.parent / lp
            return targets_from_long(lp, kind=k)
        spec = node.get("margins") if isinstance(node, Mapping) and "margins" in node else node
        return parse_targets(spec, kind=k, source=where)

    if has_structure:
        if "margins" in raw and "long" in raw:
            raise WeightingError("give either 'margins' or 'long', not both",
                                 code="weighting.targets_file", where=str(p))
        common = read_margins(raw, str(p)) if ("margins" in raw or "long" in raw) else Targets(())
    else:
        common = parse_targets(raw, kind=k, source=str(p))
    waves: dict[str, dict] = {}
    for wave, spec in (raw.get("waves") or {}).items() if has_structure else ():
        if not isinstance(spec, Mapping):
            raise WeightingError(f"waves.{wave} must be a mapping", code="weighting.targets_file",
                                 where=str(p))
        bad = [x for x in spec if x not in ("restrict", "margins", "long", "totals")]
        if bad:
            raise WeightingError(f"unknown key(s) under waves.{wave}: {', '.join(map(str, bad))}",
                                 code="weighting.targets_file", where=str(p),
                                 hint="per-wave keys: restrict, margins, long, totals")
        own = read_margins(spec, f"{p} (waves.{wave})") if ("margins" in spec or "long" in spec) else None
        restrict = spec.get("restrict") or {}
        if not isinstance(restrict, Mapping) or not all(isinstance(v, (list, tuple)) for v in restrict.values()):
            raise WeightingError(f"waves.{wave}.restrict must map a variable to a list of levels",
                                 code="weighting.targets_file", where=str(p))
        waves[str(wave)] = {"targets": own, "restrict": {str(a): [_norm_level(x) for x in b]
                                                         for a, b in restrict.items()},
                            "totals": (_numeric_totals(spec["totals"], f"{p} (waves.{wave}.totals)")
                                       if "totals" in spec else None)}
    totals = _numeric_totals(raw.get("totals") or {}, f"{p} (totals)") if has_structure else {}
    return TargetsFile(common, waves, bool(raw.get("illustrative", False)) if has_structure else False,
                       str(raw.get("note", "")) if has_structure else "", str(p), totals)


def _numeric_totals(node, where: str) -> dict:
    """``{var: total}`` or ``{var: {mean: m}}`` from a targets file → ``{var: float | Mean}``."""

    if not isinstance(node, Mapping):
        raise WeightingError("totals must map a numeric variable to a total or {mean: value}",
                             code="weighting.targets_file", where=where,
                             hint="e.g. totals: {age: {mean: 37.5}}")
    out: dict = {}
    for var, v in node.items():
        if isinstance(v, Mapping):
            if set(v) != {"mean"}:
                raise WeightingError(f"totals.{var}: give a number (population total) or "
                                     "{mean: value}", code="weighting.targets_file", where=where)
            out[str(var)] = Mean(_as_float(str(var), "mean", v["mean"]))
        else:
            out[str(var)] = _as_float(str(var), "total", v)
    return out


def targets_from_project(project) -> tuple[TargetsFile | None, dict]:
    """The ``[weighting]`` section of a project: (targets or None, options).

    ``project`` is a :class:`diaspora_survey.project.Project` (or anything with a
    ``root`` path and a ``weighting``/``config`` mapping).  Recognised keys:

    * ``targets``: path of a targets YAML file (relative to the project root), or
    * ``[weighting.margins]``: the targets inline, ``{margin: {category: value}}`` as in
      Python (``"sex:age_group" = {female = {"18-24" = 0.05, ...}, ...}``) — not both;
      with ``[weighting.totals]`` for numeric calibration targets (``age = {mean = 37.5}``);
    * ``method`` (rake | poststratify | calibrate), ``calibration`` (linear | raking |
      logit, with method = calibrate), ``bounds`` ([lo, hi] on g = new / base weight),
      ``base_weight`` (column), ``pooling`` (equal | proportional);
    * ``trim_upper``, ``trim_lower`` (numbers; multiples of the wave's mean weight when
      ``trim_relative = true``, the default), ``max_iter``, ``tolerance``;
    * ``unmatched`` (error | keep_base), ``empty`` (error | drop | collapse).

    Unknown keys are an error (never silently ignored).
    """
    section, explicit = _project_section(project)
    allowed = {"targets", "margins", "totals", "method", "calibration", "bounds", "base_weight", "pooling",
               "trim_upper", "trim_lower", "trim_relative", "max_iter", "tolerance", "unmatched",
               "empty"}
    where = "diaspora-survey.toml [weighting]"
    unknown = [k for k in section if k not in allowed]
    if unknown:
        raise WeightingError(f"unknown key(s) in [weighting]: {', '.join(unknown)}",
                             code="weighting.bad_option", where=where,
                             hint="known keys: " + ", ".join(sorted(allowed)))
    root = Path(getattr(project, "root", ".") or ".")
    tf = None
    inline = section.get("margins")
    if inline is not None:
        if "targets" in explicit:
            raise WeightingError("give either targets = \"file.yaml\" or [weighting.margins], not both",
                                 code="weighting.bad_option", where=where)
        if not isinstance(inline, Mapping):
            raise WeightingError("[weighting] margins must be a table {margin: {category: value}}",
                                 code="weighting.bad_targets", where=where)
        tf = TargetsFile(parse_targets(inline, source=f"{where} margins"), {}, False, "",
                         f"{where} margins",
                         _numeric_totals(section.get("totals") or {}, f"{where} totals"))

    elif section.get("targets"):
        target = section["targets"]
        if not isinstance(target, (str, Path)):
            raise WeightingError("[weighting] targets must be the path of a targets file",
                                 code="weighting.bad_option", where=where,
                                 hint="put inline targets under [weighting.margins]")
        tp = Path(target)
        tf = load_targets(tp if tp.is_absolute() else root / tp)
    if inline is None and section.get("totals") is not None:
        raise WeightingError("[weighting.totals] goes with [weighting.margins]",
                             code="weighting.bad_option", where=where,
                             hint="with a targets file, put the numeric totals under totals: in it")
    opts = {k: v for k, v in section.items() if k not in ("targets", "margins", "totals")}
    return tf, opts


def _project_section(project) -> tuple[dict, set]:
    """(the [weighting] options that are set, the keys given explicitly)."""
    for attr in ("weighting", "weighting_options"):
        sec = getattr(project, attr, None)
        if isinstance(sec, Mapping):
            return dict(sec), set(sec)
        if sec is not None and hasattr(sec, "model_dump"):
            return ({k: v for k, v in sec.model_dump().items() if v is not None},
                    set(getattr(sec, "model_fields_set", ()) or ()))
    for attr in ("config", "raw", "data", "settings"):
        cfg = getattr(project, attr, None)
        if isinstance(cfg, Mapping) and isinstance(cfg.get("weighting"), Mapping):
            return dict(cfg["weighting"]), set(cfg["weighting"])
    root = getattr(project, "root", None)
    if root is not None and (Path(root) / "diaspora-survey.toml").exists():
        import tomllib

        cfg = tomllib.loads((Path(root) / "diaspora-survey.toml").read_text(encoding="utf-8"))
        sec = dict(cfg.get("weighting", {}))
        return sec, set(sec)
    return {}, set()
