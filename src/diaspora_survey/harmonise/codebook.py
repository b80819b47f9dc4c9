"""Codebooks: one YAML file per wave saying how its raw columns become the harmonised schema.

The format is documented in ``docs/codebook.md``; the example project's codebooks in
``codebooks/`` are living examples. In short::

    wave: "2022-03"
    file: raw/2022-03_wave1.sav          # optional; the project file is authoritative
    id: id                               # respondent id column (default: row number)
    design: {weight: wt_base}            # weight, strata, psu, fpc — when the file has them
    eligibility: ["age >= 18"]           # rules on harmonised variables; failing rows go to exclusions
    variables:
      sex:
        source: q1_pol
        map: {1: male, 2: female}        # code → category
        missing: [99]                    # codes → NA (reported as missing, never as unmapped)
      education:
        source: q3_obraz
        crosswalk: education             # value labels → category through the crosswalk
      age:
        transform: age_from_birth_year
        source: [q2_god_rozhd, data_intervyu]
      employment_status:                 # from several columns: ordered rules, first match wins
        source: [mnactic, emplrel]
        rules:
          - {when: {mnactic: 1, emplrel: 1}, to: employee}
          - {when: {mnactic: 2}, to: student}
        default: other

:meth:`Codebook.load` validates the file against the schema and raises
:class:`~diaspora_survey.errors.CodebookError` naming ``file:line`` and a hint;
:meth:`Codebook.validate_against` checks it against a :class:`~diaspora_survey.io.RawWave`.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import os
import math
import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from . import schema
from .._yaml import LimitedLoader, compose as _compose
from ..errors import CodebookError

TRANSFORMS = ("age_from_birth_year", "month", "year_month", "date", "number")
CROSSWALK_NAMES = ("country", "education", "employment", "sex")
TYPES = ("category", "ordered", "int", "float", "bool", "string", "date")


# ---- YAML with line numbers ------------------------------------------------------------------

class _Loader(LimitedLoader):
    """Safe loader with YAML 1.2 booleans: only true/false are booleans (``no`` is Norway);
    with the limits of :class:`~diaspora_survey._yaml.LimitedLoader` (depth, aliases, size)."""

    reject_duplicate_keys = False   # load_yaml_with_lines reports them, with both lines


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


class _DupKey(Exception):
    def __init__(self, key, line, first_line, path):
        self.key, self.line, self.first_line, self.path = key, line, first_line, path


def _key_identity(key):
    """Keys that mean the same code: 1 == 1.0 == "1"; labels equal after normalisation."""
    from .crosswalks import normalise_label

    if isinstance(key, bool):
        return ("b", key)
    if isinstance(key, (int, float)):
        return ("n", float(key))
    if isinstance(key, str):
        try:
            return ("n", float(key.strip().replace(",", ".")))
        except ValueError:
            return ("s", normalise_label(key))
    return ("o", repr(key))


def load_yaml_with_lines(text: str, source: str = "<yaml>"):
    """Parse YAML into plain Python data and a ``{path tuple: line}`` map (1-based lines).

    Duplicate keys in a mapping (which PyYAML would silently overwrite) raise
    :class:`CodebookError`; under ``map``/``labels``/``missing`` keys equal as codes
    (``1`` and ``1.0``, ``"Высшее"`` and ``"высшее "``) count as duplicates too.
    """
    try:
        node = _compose(text, _Loader)
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None) or getattr(ex, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(ex, "problem", None) or str(ex)
        raise CodebookError(f"not valid YAML: {problem}", code="codebook.yaml_syntax",
                            where=f"{source}{line}",
                            hint="check indentation and quoting near that line; "
                                 "labels with ':' or '#' need quotes") from None
    lines: dict[tuple, int] = {}
    constructor = _Loader("")

    def build(n, path):
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            out: dict = {}
            seen: dict = {}
            code_like = bool(path) and path[-1] in ("map", "labels")
            for k_node, v_node in n.value:
                key = constructor.construct_object(k_node, deep=True)
                if isinstance(key, list):
                    key = tuple(key)
                ident = _key_identity(key) if code_like else ("k", repr(key))
                if ident in seen:
                    raise _DupKey(key, k_node.start_mark.line + 1, seen[ident], path)
                seen[ident] = k_node.start_mark.line + 1
                out[key] = build(v_node, path + (key,))
                lines[path + (key,)] = k_node.start_mark.line + 1
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(v, path + (i,)) for i, v in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    if node is None:
        return None, lines
    try:
        data = build(node, ())
    except _DupKey as d:
        what = "code" if d.path and d.path[-1] in ("map", "labels") else "key"
        raise CodebookError(f"{what} {d.key!r} appears twice" +
                            (f" in the {d.path[-1]} of {d.path[-2]!r}" if len(d.path) >= 2 else ""),
                            code="codebook.duplicate_code" if what == "code" else "codebook.duplicate_key",
                            where=f"{source}:{d.line}",
                            hint=f"first given at line {d.first_line}; " +
                                 ("a code maps to one category — delete one of them" if what == "code" else
                                  "a key may appear once — merge the two entries or delete one")) from None
    except yaml.YAMLError as ex:
        raise CodebookError(f"not valid YAML: {ex}", code="codebook.yaml_syntax", where=source) from None
    except (ValueError, OverflowError) as ex:   # e.g. a date such as 2022-13-45
        raise CodebookError(f"a value cannot be read: {str(ex)[:80]}", code="codebook.yaml_syntax",
                            where=source, hint="quote values that are not numbers or dates") from None
    return data, lines


# ---- the model ---------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Design(_Strict):
    """Design columns of the raw file; they become ``weight_base``, ``strata``, ``psu``, ``fpc``."""

    weight: str | None = None
    strata: str | None = None
    psu: str | None = None
    fpc: str | None = None


class RangeRule(_Strict):
    """Numeric codes ``min <= x <= max`` (inclusive; either bound may be omitted) → ``to``."""

    min: float | None = None
    max: float | None = None
    to: str


class EligibilityRule(_Strict):
    """``rule`` such as ``age >= 18``; rows failing it go to the exclusions table.

    ``missing``: what to do with rows where the rule cannot be evaluated (variable missing):
    ``keep`` (default; counted in the issues) or ``exclude``.
    """

    rule: str
    missing: Literal["keep", "exclude"] = "keep"


Scalar = Union[int, float, str]


class RuleSpec(_Strict):
    """One rule of a derivation over several columns: ``when`` (column → condition, all must
    hold) gives ``to`` (a category, or ``missing``); see :mod:`.rules` and docs/codebook.md."""

    when: dict[Any, Any]
    to: Any
    note: str | None = None


class VariableSpec(_Strict):
    """How one harmonised variable is made from the raw file."""

    source: Union[str, list[str], None] = None
    type: Literal["category", "ordered", "int", "float", "bool", "string", "date"] | None = None
    map: dict[Any, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    ranges: list[RangeRule] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    default: Any = None
    crosswalk: Literal["country", "education", "employment", "sex"] | None = None
    missing: list[Scalar] = Field(default_factory=list)
    file_missing: bool = True
    transform: Literal["age_from_birth_year", "month", "year_month", "date", "number"] | None = None
    interview_date: _dt.date | None = None
    age_rule: Literal["year_difference", "midyear"] = "midyear"
    valid_range: list[float] | None = None
    custom: bool = False
    levels: list[str] | None = None
    note: str | None = None

    @field_validator("missing", mode="before")
    @classmethod
    def _scalar_list(cls, v):
        if v is None:
            return []
        if not isinstance(v, list):
            return [v]
        return v

    @property
    def sources(self) -> list[str]:
        if self.source is None:
            return []
        return [self.source] if isinstance(self.source, str) else list(self.source)


class Codebook(_Strict):
    """A wave's codebook (see the module docstring and ``docs/codebook.md``)."""

    wave: str
    file: str | None = None
    id: str | None = None
    title: str | None = None
    note: str | None = None
    design: Design | None = None
    eligibility: list[Union[str, EligibilityRule]] = Field(default_factory=list)
    variables: dict[str, VariableSpec]

    _path: str = PrivateAttr(default="<codebook>")
    _lines: dict = PrivateAttr(default_factory=dict)

    @field_validator("wave", mode="before")
    @classmethod
    def _wave_str(cls, v):
        return str(v) if isinstance(v, (int, float, _dt.date)) else v

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, display: str | None = None) -> "Codebook":
        """Read and validate a codebook YAML file; errors name ``file:line``."""
        from .._files import read_text_input

        if not isinstance(path, (str, os.PathLike)):
            raise CodebookError(f"a codebook is loaded from a file path, not {type(path).__name__}",
                                code="codebook.bad_argument", hint="Codebook.load('codebooks/w1.yaml')")
        p = Path(path)
        shown = display or str(path)
        if not p.exists() and not p.is_symlink():
            raise CodebookError("codebook file not found", code="codebook.not_found", where=shown,
                                hint="check the codebook path in diaspora-survey.toml, or write a draft "
                                     "with `diaspora-survey codebook draft RAWFILE -o " + shown + "`") from None
        if p.is_dir():
            raise CodebookError("codebook path is a directory", code="codebook.not_found", where=shown,
                                hint="point to the .yaml file") from None
        try:
            text = read_text_input(p, what="codebook", error=CodebookError, code="codebook")
        except CodebookError as ex:
            ex.where = shown if ex.where == str(p) else ex.where
            raise
        return cls.from_yaml(text, source=shown)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<codebook>") -> "Codebook":
        data, lines = load_yaml_with_lines(text, source)
        if not isinstance(data, dict):
            raise CodebookError("a codebook must be a YAML mapping with 'wave' and 'variables'",
                                code="codebook.not_a_mapping", where=f"{source}:1",
                                hint="start from `diaspora-survey codebook draft RAWFILE`")
        return cls.from_dict(data, source=source, lines=lines)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<codebook>", lines: dict | None = None) -> "Codebook":
        lines = lines or {}
        if isinstance(data.get("variables"), dict):   # keys must be strings (variable names)
            data = dict(data)
            data["variables"] = {str(k): ({} if v is None else v) for k, v in data["variables"].items()}
        try:
            cb = cls.model_validate(data)
        except ValidationError as ex:
            raise _pydantic_error(ex, source, lines) from None
        cb._path = source
        cb._lines = lines
        cb._check_semantics()
        return cb

    # -- helpers --------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._path

    def where(self, *keys) -> str:
        """``file:line`` of the deepest known key path (falls back to the parent key)."""
        keys = tuple(keys)
        while keys:
            if keys in self._lines:
                return f"{self._path}:{self._lines[keys]}"
            keys = keys[:-1]
        return f"{self._path}:1" if self._lines else self._path

    def _err(self, msg: str, code: str, keys: tuple, hint: str) -> CodebookError:
        return CodebookError(msg, code=code, where=self.where(*keys), hint=hint)

    def eligibility_rules(self) -> list[EligibilityRule]:
        return [EligibilityRule(rule=r) if isinstance(r, str) else r for r in self.eligibility]

    # -- validation against the schema ----------------------------------------------------------

    def _check_semantics(self) -> None:
        for name, spec in self.variables.items():
            keys = ("variables", name)
            self._check_variable(name, spec, keys)
        for i, rule in enumerate(self.eligibility_rules()):
            parse_rule(rule.rule, where=self.where("eligibility", i), known=set(self.variables) | set(schema.SCHEMA))
        if self.id is not None and not isinstance(self.id, str):
            raise self._err("id must be a column name", "codebook.invalid_field", ("id",),
                            "write the name of the respondent id column")

    def _check_variable(self, name: str, spec: VariableSpec, keys: tuple) -> None:
        var = schema.SCHEMA.get(name)
        if name in ("wave", "resp_id"):
            raise self._err(f"{name!r} is set by the program, not by a codebook variable",
                            "codebook.reserved_variable", keys,
                            "the wave id comes from 'wave:', the respondent id from 'id:'")
        if var is None and not spec.custom:
            close = difflib.get_close_matches(name, [n for n, v in schema.SCHEMA.items() if not v.derived],
                                              n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]!r}? " if close else "") + \
                "harmonised variables are: " + ", ".join(n for n, v in schema.SCHEMA.items()
                                                         if not v.derived and n not in ("wave", "resp_id")) + \
                "; for a project-specific variable add 'custom: true' and a 'type'"
            raise self._err(f"unknown harmonised variable {name!r}", "codebook.unknown_variable", keys, hint)
        if var is not None and var.derived:
            raise self._err(f"{name!r} is derived by a fixed rule and cannot be mapped",
                            "codebook.derived_variable", keys,
                            "map its base variable instead (see docs/codebook.md, 'Derived variables')")
        if var is not None and spec.custom:
            raise self._err(f"{name!r} is a schema variable, not a custom one", "codebook.invalid_field",
                            keys + ("custom",), "remove 'custom: true'")
        vtype = self.var_type(name)
        if var is None and spec.type is None:
            raise self._err(f"custom variable {name!r} needs a type", "codebook.invalid_field", keys,
                            f"add 'type:' ({', '.join(TYPES)})")
        if var is not None and spec.type is not None and spec.type != vtype and not (
                var.type in ("category", "ordered") and spec.type in ("category", "ordered")):
            raise self._err(f"{name!r} has type {var.type} in the schema, not {spec.type}",
                            "codebook.invalid_field", keys + ("type",), "remove 'type:' (the schema decides)")

        # sources and transforms
        srcs = spec.sources
        t = spec.transform
        if t is None and not srcs:
            raise self._err(f"variable {name!r} has no source column", "codebook.bad_transform", keys,
                            "add 'source: COLUMN'")
        need = {"age_from_birth_year": (1, 2), "year_month": (2, 2), "month": (1, 1), "date": (1, 1),
                "number": (1, 1), None: (1, 1)}[t]
        if spec.rules and t is None:
            need = (1, len(srcs) or 1)
        elif "default" in spec.model_fields_set and not spec.rules:
            raise self._err("'default' is only used with 'rules'", "codebook.invalid_field",
                            keys + ("default",), "add 'rules:' (ordered when/to conditions) or remove 'default:'")
        if not need[0] <= len(srcs) <= need[1]:
            want = f"{need[0]}" if need[0] == need[1] else f"{need[0]}–{need[1]}"
            raise self._err(f"{'transform ' + t if t else 'variable ' + repr(name)} needs {want} source "
                            f"column(s), got {len(srcs)}", "codebook.bad_transform", keys + ("source",),
                            {"age_from_birth_year": "source: [BIRTH_YEAR, INTERVIEW_DATE] or one column "
                                                    "plus 'interview_date: YYYY-MM-DD'",
                             "year_month": "source: [YEAR_COLUMN, MONTH_COLUMN]"}.get(t, "source: COLUMN"))
        if t == "age_from_birth_year":
            if name != "age" and vtype != "int":
                raise self._err("age_from_birth_year makes an integer age", "codebook.bad_transform",
                                keys + ("transform",), "use it for 'age' or a custom int variable")
            if len(srcs) == 1 and spec.interview_date is None:
                raise self._err("age_from_birth_year needs the interview date", "codebook.bad_transform",
                                keys + ("transform",),
                                "add the interview-date column as second source or 'interview_date: 2022-03-15'")
        if t in ("month", "year_month", "date") and vtype != "date":
            raise self._err(f"transform {t} makes a date, but {name!r} is {vtype}",
                            "codebook.bad_transform", keys + ("transform",),
                            "use it for departure_date or a custom date variable")
        if t == "number" and vtype not in ("int", "float"):
            raise self._err(f"transform number makes a number, but {name!r} is {vtype}",
                            "codebook.bad_transform", keys + ("transform",), "remove the transform")
        if vtype in ("int", "float", "date", "string") and (spec.map or spec.labels or spec.ranges or spec.crosswalk):
            raise self._err(f"{name!r} is {vtype}: value maps, ranges and crosswalks are for categories",
                            "codebook.bad_transform", keys, "remove map/labels/ranges/crosswalk; "
                            "use 'missing:' and 'valid_range:' for numbers")
        if vtype == "bool" and spec.crosswalk:
            raise self._err(f"{name!r} is bool: crosswalks give categories, not true/false",
                            "codebook.bad_transform", keys + ("crosswalk",),
                            "map the codes instead, e.g. map: {1: true, 2: false}")
        if "age_rule" in spec.model_fields_set and t != "age_from_birth_year":
            raise self._err("age_rule is only used by transform age_from_birth_year", "codebook.bad_transform",
                            keys + ("age_rule",), "remove it or set transform: age_from_birth_year")
        if spec.levels is not None and (var is not None or vtype not in ("category", "ordered")):
            raise self._err(f"'levels' is for custom categorical variables; {name!r} "
                            + ("takes its categories from the schema" if var is not None else f"is {vtype}"),
                            "codebook.invalid_field", keys + ("levels",), "remove 'levels:'")
        if spec.valid_range is not None:
            if len(spec.valid_range) == 2 and any(x != x for x in spec.valid_range):
                raise self._err(f"valid_range must be two numbers, got {spec.valid_range} (NaN)",
                                "codebook.bad_range", keys + ("valid_range",), "e.g. valid_range: [14, 100]")
            if len(spec.valid_range) != 2 or spec.valid_range[0] > spec.valid_range[1]:
                raise self._err(f"valid_range must be [min, max] with min <= max, got {spec.valid_range}",
                                "codebook.bad_range", keys + ("valid_range",), "e.g. valid_range: [14, 100]")
            if vtype not in ("int", "float"):
                raise self._err("valid_range is for numeric variables", "codebook.bad_range",
                                keys + ("valid_range",), "remove it")
        if spec.interview_date is not None and t != "age_from_birth_year":
            raise self._err("interview_date is only used by age_from_birth_year", "codebook.bad_transform",
                            keys + ("interview_date",), "remove it or set transform: age_from_birth_year")

        # codes: none empty
        for what in ("map", "labels"):
            for code in getattr(spec, what):
                if code is None or (isinstance(code, str) and not code.strip()):
                    raise self._err(f"an empty code in the {what} of {name!r}", "codebook.invalid_field",
                                    keys + (what, code), "write the code (or label) before the colon, e.g. 1: male; "
                                    "'~' and empty keys mean nothing in YAML")
        if vtype == "bool":
            for what in ("map", "labels"):
                for code, cat in getattr(spec, what).items():
                    if _bool_value(cat) is None:
                        raise self._err(f"{name!r} is bool: {cat!r} is neither true nor false",
                                        "codebook.unknown_category", keys + (what, code),
                                        "map each code to true or false (yes/no, да/нет also work); "
                                        "list codes meaning no answer under 'missing:'")
            for i, r in enumerate(spec.ranges):
                if _bool_value(r.to) is None:
                    raise self._err(f"{name!r} is bool: {r.to!r} is neither true nor false",
                                    "codebook.unknown_category", keys + ("ranges", i), "use to: true or to: false")
        # categories
        if vtype in ("category", "ordered"):
            allowed = self._allowed(name, spec)
            for code, cat in spec.map.items():
                self._check_category(name, cat, allowed, keys + ("map", code))
            for lab, cat in spec.labels.items():
                self._check_category(name, cat, allowed, keys + ("labels", lab))
            for i, r in enumerate(spec.ranges):
                self._check_category(name, r.to, allowed, keys + ("ranges", i))
            if spec.crosswalk and name in schema.SCHEMA and spec.crosswalk != _default_crosswalk(name):
                raise self._err(f"crosswalk {spec.crosswalk!r} does not give {name!r} categories",
                                "codebook.bad_transform", keys + ("crosswalk",),
                                f"use crosswalk: {_default_crosswalk(name)}")
            if not (spec.map or spec.labels or spec.ranges or spec.crosswalk or spec.rules):
                raise self._err(f"{name!r} has no value map", "codebook.bad_transform", keys,
                                "add 'map:' (code → category), 'labels:', 'ranges:' or 'crosswalk:'")
        if spec.rules:
            self._check_rules(name, spec, keys, vtype)
        # ranges
        rs = sorted(spec.ranges, key=lambda r: -math.inf if r.min is None else r.min)
        for i, r in enumerate(spec.ranges):
            if r.min is None and r.max is None:
                raise self._err("a range needs min or max", "codebook.bad_range", keys + ("ranges", i),
                                "e.g. {min: 18, max: 24, to: '18-24'}")
            if r.min is not None and r.max is not None and r.min > r.max:
                raise self._err(f"range min {r.min:g} is above max {r.max:g}", "codebook.bad_range",
                                keys + ("ranges", i), "swap min and max")
        for a, b in zip(rs, rs[1:]):
            a_hi = math.inf if a.max is None else a.max
            b_lo = -math.inf if b.min is None else b.min
            if b_lo <= a_hi:
                i = spec.ranges.index(b)
                raise self._err(f"ranges overlap: {_fmt_range(a)} and {_fmt_range(b)}", "codebook.bad_range",
                                keys + ("ranges", i), "a code may fall into one range only")
        # codes mapped twice: in 'map' and inside a range
        for code in spec.map:
            ident = _key_identity(code)
            if ident[0] != "n":
                continue
            for i, r in enumerate(spec.ranges):
                lo = -math.inf if r.min is None else r.min
                hi = math.inf if r.max is None else r.max
                if lo <= ident[1] <= hi:
                    raise self._err(f"code {code!r} is mapped twice: to {spec.map[code]!r} in 'map' and to "
                                    f"{r.to!r} by the range {_fmt_range(r)}", "codebook.duplicate_code",
                                    keys + ("map", code), "a code maps to one category: remove it from 'map' "
                                    "or narrow the range")
        # missing codes also mapped
        mapped = {_key_identity(k): k for k in spec.map}
        for i, m in enumerate(spec.missing):
            ident = _key_identity(m)
            if ident in mapped:
                raise self._err(f"code {m!r} is declared missing and also mapped to "
                                f"{spec.map[mapped[ident]]!r}", "codebook.missing_and_mapped",
                                keys + ("missing", i),
                                "a code is either a category or missing: remove it from 'map' or 'missing'")
            if ident[0] == "n":
                for r in spec.ranges:
                    lo = -math.inf if r.min is None else r.min
                    hi = math.inf if r.max is None else r.max
                    if lo <= ident[1] <= hi:
                        raise self._err(f"missing code {m!r} falls into the range {_fmt_range(r)}",
                                        "codebook.missing_and_mapped", keys + ("missing", i),
                                        "narrow the range or drop the missing code")

    def _check_rules(self, name: str, spec: VariableSpec, keys: tuple, vtype: str) -> None:
        """``rules:``/``default:``: categories of the schema, columns among ``source``, readable
        conditions; not combined with maps, crosswalks or transforms (one way per variable)."""
        from .rules import MISSING, parse_when

        others = [k for k in ("map", "labels", "ranges", "crosswalk", "transform", "valid_range")
                  if k in spec.model_fields_set and getattr(spec, k)]
        if others:
            raise self._err(f"{name!r} has 'rules' and '{others[0]}': a variable is made one way",
                            "codebook.bad_transform", keys + (others[0],),
                            "write every case as a rule (a single-column code is `when: {COLUMN: CODE}`), "
                            "or drop the rules")
        if vtype not in ("category", "ordered", "bool"):
            raise self._err(f"{name!r} is {vtype}: rules give categories (or true/false)",
                            "codebook.bad_transform", keys + ("rules",),
                            "use rules for categorical or bool variables")
        srcs = spec.sources
        allowed = self._allowed(name, spec)

        def check_to(cat, kk):
            if isinstance(cat, str) and cat.strip().casefold() == MISSING:
                return
            if vtype == "bool":
                if _bool_value(cat) is None:
                    raise self._err(f"{name!r} is bool: {cat!r} is neither true nor false",
                                    "codebook.unknown_category", kk, "use to: true, to: false or to: missing")
                return
            self._check_category(name, cat, allowed, kk)

        for i, rule in enumerate(spec.rules):
            rk = keys + ("rules", i)
            if not rule.when:
                raise self._err("a rule needs at least one condition in 'when'", "codebook.bad_rule",
                                rk + ("when",), "e.g. when: {mnactic: 1, emplrel: 2}; "
                                "for the rows no rule matches use 'default:'")
            for col in rule.when:
                if str(col) not in srcs:
                    raise self._err(f"rule {i + 1} of {name!r} tests column {str(col)!r}, which is not in "
                                    f"'source'", "codebook.bad_rule", rk + ("when", col),
                                    f"list every column the rules use: source: [{', '.join(srcs + [str(col)])}]")
            try:
                parse_when(rule.when)
            except ValueError as ex:
                col = next((c for c in rule.when if f"column {str(c)!r}" in str(ex)), None)
                raise self._err(f"rule {i + 1} of {name!r}: {ex}", "codebook.bad_rule",
                                rk + (("when", col) if col is not None else ("when",)),
                                "a condition is a code (1), a list of codes ([3, 4]), a comparison "
                                "(\">= 1\", \"!= 2\", \"not in [1, 2]\"), missing or not missing") from None
            check_to(rule.to, rk + ("to",))
        if "default" in spec.model_fields_set:
            check_to(spec.default, keys + ("default",))
        used = {str(c) for r in spec.rules for c in r.when}
        unused = [c for c in srcs if c not in used]
        if unused:
            raise self._err(f"source column {unused[0]!r} of {name!r} is used by no rule", "codebook.bad_rule",
                            keys + ("source",), "remove it from 'source' or test it in a rule")

    def _allowed(self, name: str, spec: VariableSpec) -> list[str] | None:
        var = schema.SCHEMA.get(name)
        if var is not None and var.levels:
            return var.categories
        if spec.levels:
            return list(spec.levels)
        return None

    def _check_category(self, name: str, cat, allowed, keys) -> None:
        if cat is None:
            raise self._err(f"no category given for {keys[-1]!r}", "codebook.unknown_category", keys,
                            "to treat a code as missing, list it under 'missing:'")
        if name == "country":
            if not (isinstance(cat, str) and re.fullmatch(r"[A-Z]{2}", cat)):
                raise self._err(f"country category {cat!r} is not an ISO 3166-1 alpha-2 code",
                                "codebook.unknown_category", keys, "use two capital letters, e.g. GE")
            return
        if allowed is not None and cat not in allowed:
            close = difflib.get_close_matches(str(cat), allowed, n=1)
            raise self._err(f"category {cat!r} is not a category of {name!r}", "codebook.unknown_category",
                            keys, (f"did you mean {close[0]!r}? " if close else "") +
                            "categories: " + ", ".join(allowed))
        if not isinstance(cat, str):
            raise self._err(f"category {cat!r} must be text", "codebook.unknown_category", keys,
                            "quote it")

    def var_type(self, name: str) -> str:
        var = schema.SCHEMA.get(name)
        spec = self.variables.get(name)
        if var is not None:
            if var.type in ("category", "ordered") and spec is not None and spec.type == "ordered" and not var.levels:
                return "ordered"
            return var.type
        return spec.type if spec is not None and spec.type else "category"

    def categories(self, name: str) -> list[str] | None:
        """Declared categories (schema levels, ``levels:``, or map values in order) or None."""
        spec = self.variables[name]
        allowed = self._allowed(name, spec)
        if allowed is not None:
            return allowed
        if name == "country":
            return None
        seen: dict[str, None] = {}
        from .rules import MISSING

        rule_cats = [r.to for r in spec.rules] + ([spec.default] if "default" in spec.model_fields_set else [])
        rule_cats = [c for c in rule_cats if not (isinstance(c, str) and c.strip().casefold() == MISSING)]
        for v in list(spec.map.values()) + list(spec.labels.values()) + [r.to for r in spec.ranges] + rule_cats:
            seen.setdefault(v, None)
        return list(seen) if not spec.crosswalk else None

    # -- validation against a raw wave ----------------------------------------------------------

    def validate_against(self, wave) -> None:
        """Check that every column the codebook names exists in the raw wave."""
        cols = list(wave.data.columns)
        colset = set(cols)

        def need(col, keys, what):
            if col not in colset:
                close = [c for c in cols if c.casefold() == col.casefold()] or \
                    difflib.get_close_matches(col, cols, n=1)
                raise self._err(f"{what} column {col!r} is not in {Path(wave.source.path).name}",
                                "codebook.unknown_column", keys,
                                (f"did you mean {close[0]!r}? " if close else "") +
                                f"the file has: {', '.join(_short(c) for c in cols[:25])}"
                                f"{' …' if len(cols) > 25 else ''}")

        if self.id:
            need(self.id, ("id",), "id")
        if self.design is not None:
            for k in ("weight", "strata", "psu", "fpc"):
                col = getattr(self.design, k)
                if col:
                    need(col, ("design", k), k)
        for name, spec in self.variables.items():
            src = spec.source
            for i, col in enumerate(spec.sources):
                need(col, ("variables", name, "source") + ((i,) if isinstance(src, list) else ()),
                     "source")
            if spec.rules:
                self._check_rules_against(name, spec, wave)

    def _check_rules_against(self, name: str, spec: VariableSpec, wave) -> None:
        """Each condition against its column: comparisons need numbers; a code must be a
        labelled code, a value label or a value present in the file when the column has
        value labels (a typo such as ``emplrel: 4`` would otherwise match nobody, silently)."""
        import pandas as pd

        from .crosswalks import normalise_label
        from .rules import parse_when

        fname = Path(wave.source.path).name
        for i, rule in enumerate(spec.rules):
            conds = parse_when(rule.when)
            for col_key in rule.when:
                col, c = str(col_key), conds[str(col_key)]
                kk = ("variables", name, "rules", i, "when", col_key)
                s = wave.data[col]
                numeric = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
                if c.kind == "cmp" and not numeric:
                    raise self._err(f"rule {i + 1} of {name!r}: {col!r} is text in {fname}, it cannot be "
                                    f"compared with {c.op!r}", "codebook.bad_rule", kk,
                                    f"list the codes instead, e.g. {col}: [a, b]")
                if c.kind not in ("in", "not_in"):
                    continue
                m = wave.meta.get(col)
                labels = dict(m.value_labels) if m is not None and m.value_labels else {}
                if not labels:
                    if numeric and c.text_codes:
                        raise self._err(f"rule {i + 1} of {name!r}: {col!r} holds numbers without value "
                                        f"labels in {fname}; {c.text_codes[0]!r} matches nothing",
                                        "codebook.bad_rule", kk, "write the numeric code")
                    if numeric:
                        continue     # a number that nobody has is possible (0 employees)
                    present = {_key_identity(x) for x in s.dropna().astype(str).unique()}
                    absent = [code for code in c.codes if _key_identity(code) not in present]
                    if absent:
                        some = ", ".join(repr(x) for x in list(s.dropna().astype(str).unique())[:10])
                        raise self._err(f"rule {i + 1} of {name!r}: {absent[0]!r} is not a value of {col!r} "
                                        f"in {fname}", "codebook.bad_rule", kk,
                                        f"values are compared case- and punctuation-insensitively; {col} has: {some}")
                    continue
                known = {_key_identity(k) for k in labels} | {("s", normalise_label(v)) for v in labels.values()}
                present = s.dropna().unique()
                known |= {_key_identity(x.item() if hasattr(x, "item") else x) for x in present}
                for code in c.codes:
                    if _key_identity(code) not in known:
                        shown = ", ".join(f"{k} «{v}»" for k, v in list(labels.items())[:12])
                        raise self._err(f"rule {i + 1} of {name!r}: code {code!r} is neither a value label "
                                        f"nor a value of {col!r} in {fname}", "codebook.bad_rule", kk,
                                        f"{col} has: {shown}{' …' if len(labels) > 12 else ''}")


_TRUE = frozenset({"true", "yes", "1", "да", "y", "д"})
_FALSE = frozenset({"false", "no", "0", "нет", "n", "н"})


def _bool_value(cat) -> bool | None:
    """``True``/``False`` for a bool category (true/false, yes/no, да/нет, 1/0), else None."""
    from .crosswalks import normalise_label

    if isinstance(cat, bool):
        return cat
    if isinstance(cat, (int, float)) and cat in (0, 1):
        return bool(cat)
    if isinstance(cat, str):
        t = normalise_label(cat)
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
    return None


def _fmt_range(r: RangeRule) -> str:
    lo = "" if r.min is None else f"{r.min:g}"
    hi = "" if r.max is None else f"{r.max:g}"
    return f"[{lo}, {hi}]"


def _short(name, limit: int = 40) -> str:
    """A column name for a message, cut: a wrong file's "header" may be a line of its content."""
    text = str(name)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _default_crosswalk(name: str) -> str | None:
    return {"country": "country", "education": "education", "employment_status": "employment",
            "sex": "sex"}.get(name)


_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<|not in|in)\s*(.+?)\s*$")


def parse_rule(rule: str, *, where: str, known: set[str] | None = None):
    """Parse an eligibility rule ``VAR OP VALUE`` (ops: >= > <= < == != in, not in)."""
    m = _RULE.match(rule or "")
    if not m:
        raise CodebookError(f"cannot read the eligibility rule {rule!r}", code="codebook.bad_eligibility",
                            where=where, hint="write VARIABLE OPERATOR VALUE, e.g. 'age >= 18' or "
                                              "\"country in [GE, AM]\"")
    var, op, raw = m.groups()
    if known is not None and var not in known:
        raise CodebookError(f"eligibility rule uses unknown variable {var!r}", code="codebook.bad_eligibility",
                            where=where, hint="rules refer to harmonised variables, e.g. age, sex, country")
    try:
        value = yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError:
        value = raw
    if op in ("in", "not in") and not isinstance(value, list):
        raise CodebookError(f"'{op}' needs a list, got {raw!r}", code="codebook.bad_eligibility", where=where,
                            hint="e.g. country in [GE, AM]")
    if op in (">=", ">", "<=", "<") and (isinstance(value, bool) or not isinstance(value, (int, float, _dt.date))):
        raise CodebookError(f"'{op}' needs a number or a date, got {raw!r}", code="codebook.bad_eligibility",
                            where=where, hint="e.g. age >= 18 or departure_date >= 2022-02-24")
    return var, op, value


def _pydantic_error(ex: ValidationError, source: str, lines: dict) -> CodebookError:
    err = ex.errors()[0]
    loc = tuple(err.get("loc", ()))
    # pydantic adds union-branch names into loc; drop non-data parts
    data_loc = tuple(x for x in loc if not (isinstance(x, str) and ("[" in x or x in (
        "str", "int", "float", "list[str]", "EligibilityRule", "function-before"))))
    keys = data_loc
    line = None
    while keys:
        if keys in lines:
            line = lines[keys]
            break
        keys = keys[:-1]
    where = f"{source}:{line}" if line else (f"{source}:1" if lines else source)
    kind = err.get("type", "")
    dotted = ".".join(str(x) for x in data_loc)
    if kind == "extra_forbidden":
        key = data_loc[-1] if data_loc else "?"
        parent = data_loc[:-1]
        allowed = _allowed_keys(parent)
        close = difflib.get_close_matches(str(key), allowed, n=1)
        return CodebookError(f"unknown key {key!r}" + (f" in {'.'.join(map(str, parent))}" if parent else ""),
                             code="codebook.unknown_key", where=where,
                             hint=(f"did you mean {close[0]!r}? " if close else "") +
                                  f"allowed here: {', '.join(allowed)}")
    if kind == "missing":
        return CodebookError(f"required key {dotted!r} is missing", code="codebook.missing_key", where=where,
                             hint="every codebook needs 'wave:' and 'variables:'")
    if kind in ("literal_error", "enum"):
        return CodebookError(f"{dotted}: {err.get('msg')}", code="codebook.bad_transform" if
                             data_loc and data_loc[-1] in ("transform", "crosswalk") else "codebook.invalid_field",
                             where=where, hint="see docs/codebook.md for the allowed values")
    if len(data_loc) == 2 and data_loc[0] == "variables":      # the variable's entry itself
        field_name = "variable"
    else:
        field_name = next((x for x in reversed(data_loc) if isinstance(x, str) and x in _FIELD_HINTS), None)
    hint = _FIELD_HINTS.get(field_name, "see docs/codebook.md for the codebook format")
    msg = err.get("msg", "invalid value")
    if field_name in _FIELD_SHAPES:   # pydantic's message names one branch of a union: say what is wanted
        msg = f"should be {_FIELD_SHAPES[field_name]}"
    return CodebookError(f"{dotted or 'codebook'}: {msg}", code="codebook.invalid_field",
                         where=where, hint=hint)


_FIELD_SHAPES = {
    "source": "a column name or a list of column names",
    "missing": "a list of codes (numbers or texts)",
    "eligibility": "a list of rules",
    "variables": "a mapping: harmonised variable → how to make it",
    "variable": "a mapping of keys such as source, map, missing",
    "design": "a mapping of weight, strata, psu, fpc to column names",
    "map": "a mapping: code → category",
    "labels": "a mapping: value label (text) → category",
    "ranges": "a list of {min, max, to} ranges",
    "rules": "a list of {when: {COLUMN: CONDITION, …}, to: CATEGORY} rules",
    "when": "a mapping: column → condition",
}
_FIELD_HINTS = {
    "wave": 'write the wave id, e.g. wave: "2022-03"',
    "file": "write the raw file's path relative to the project, e.g. file: raw/wave1.sav",
    "id": "write the name of the respondent id column, e.g. id: respid",
    "source": "source: COLUMN, or source: [COLUMN1, COLUMN2] for age_from_birth_year and year_month",
    "missing": "missing: [98, 99] or missing: [\"Затрудняюсь ответить\"]",
    "eligibility": 'a list of rules, e.g. eligibility: ["age >= 18"]',
    "variables": "one entry per harmonised variable, e.g. variables: {sex: {source: q1, map: {1: male, 2: female}}}",
    "variable": "e.g. sex: {source: q1, map: {1: male, 2: female}}",
    "design": "design: {weight: wt}",
    "weight": "design: {weight: COLUMN}",
    "strata": "design: {strata: COLUMN}",
    "psu": "design: {psu: COLUMN}",
    "fpc": "design: {fpc: COLUMN}",
    "map": "map: {1: male, 2: female}",
    "labels": 'labels: {"Высшее — магистратура": master}',
    "ranges": "ranges: [{min: 18, max: 24, to: young}, {min: 25, to: older}]",
    "min": "ranges: [{min: 18, max: 24, to: young}] — min and max are numbers",
    "max": "ranges: [{min: 18, max: 24, to: young}] — min and max are numbers",
    "to": "to is a category (or missing in rules), e.g. ranges: [{min: 18, max: 24, to: young}]",
    "rules": "rules: [{when: {mnactic: 1, emplrel: 2}, to: own_account}] (docs/codebook.md)",
    "when": "when: {mnactic: 1, emplno: \">= 1\"} — column → code, [codes], comparison or missing",
    "valid_range": "valid_range: [14, 100]",
    "interview_date": "interview_date: 2022-03-15 (YYYY-MM-DD)",
    "file_missing": "file_missing: true or false",
    "custom": "custom: true or false",
    "levels": "levels: [low, medium, high]",
    "type": "type: category | ordered | int | float | bool | string | date",
    "rule": 'a rule such as "age >= 18"',
}


def _allowed_keys(parent: tuple) -> list[str]:
    if not parent:
        return list(Codebook.model_fields)
    if parent[0] == "design":
        return list(Design.model_fields)
    if parent[0] == "variables" and len(parent) == 2:
        return list(VariableSpec.model_fields)
    if parent[0] == "variables" and len(parent) >= 4 and parent[2] == "ranges":
        return list(RangeRule.model_fields)
    if parent[0] == "variables" and len(parent) >= 4 and parent[2] == "rules":
        return list(RuleSpec.model_fields)
    if parent[0] == "eligibility":
        return list(EligibilityRule.model_fields)
    return []


__all__ = ["Codebook", "VariableSpec", "Design", "RangeRule", "RuleSpec", "EligibilityRule", "parse_rule",
           "load_yaml_with_lines", "TRANSFORMS"]


# ---- drafting a codebook from a file's metadata -------------------------------------------------

def draft_yaml(wave, *, wave_id: str | None = None, file: str | None = None, crosswalks=None,
               max_values: int = 60) -> str:
    """A commented codebook draft for a raw wave as YAML text; columns are picked by meaning
    (value labels, value ranges, variable labels) — see :mod:`diaspora_survey.harmonise.draft`."""
    from .draft import draft_yaml as _draft_yaml

    return _draft_yaml(wave, wave_id=wave_id, file=file, crosswalks=crosswalks, max_values=max_values)
