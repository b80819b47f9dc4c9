"""Reference tables: model, validation and readers (YAML and CSV).

A *reference table* is one published table of a general population (e.g. the 2010
census education distribution) with machine-readable provenance: publisher, source
table, year, URL and a confidence label (HIGH / MED / LOW, combinations such as
``MED-HIGH``; ``UNVERIFIED`` figures are refused). Its rows hold ``category``, ``sex``
(``total`` by default), ``age`` (an age band such as ``25-29`` or ``85+``; empty = the
table's whole universe), ``value``, optionally ``se`` (standard error in the same unit,
when the figure comes from a sample survey; not for ``age_distribution`` tables, whose
age structure is taken as known), ``maps_to`` (the harmonised schema
categories the row corresponds to), ``label`` and ``derived`` (how a derived figure was
computed).

Table kinds understood by :func:`diaspora_survey.compare.comparison.compare`:

``age_distribution``         categories are age bands (``15-19``, ``85+``); counts or shares
``education_distribution``   categories with ``maps_to`` = schema education levels
``employment_status``        categories with ``maps_to`` = schema employment statuses
``higher_education_share``   share with higher education (``age`` = band it refers to)
``entrepreneur_share``       share of employers + own-account workers (``base``:
                             ``population`` = all persons, ``employed`` = the employed)
``livelihood_source``        census sources of livelihood (context; no built-in indicator)
``category_distribution``    any harmonised categorical ``variable`` (table field): rows
                             with ``maps_to`` = the variable's categories; used by project
                             indicators (``[[compare.indicators]]``)
``category_share``           share of a yes/no ``variable`` (category ``yes``), e.g. the
                             share married; for project indicators

Vintages: a population may hold several tables of a kind (different ``year``); the
comparison orders them by :meth:`ReferencePopulation.vintages` (nearest the fieldwork
year first). ``caveat`` (table field) is a warning printed beside every figure taken from
the table (e.g. an unexplained jump in the latest LFS year); such a table is used only
when no other vintage lies within the allowed year gap.

``education_distribution``, ``employment_status`` and the two share kinds may give their
rows by age band (``age``): e.g. the census table of education by age group. When the
bands are contiguous and cover the survey frame, the comparison restricts the population
to the frame with them and uses them as age-specific rates for indirect standardisation.
The share kinds need a share unit (not ``count``).

Units: ``count``, ``percent``, ``per_1000``, ``proportion`` (values and SEs are
converted to proportions by :meth:`ReferenceTable.proportions`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...errors import ReferenceDataError

KINDS = ("age_distribution", "education_distribution", "employment_status",
         "higher_education_share", "entrepreneur_share", "livelihood_source",
         "category_distribution", "category_share")
GENERIC_KINDS = ("category_distribution", "category_share")
UNITS = {"count": None, "percent": 100.0, "per_1000": 1000.0, "proportion": 1.0}
_CONF_WORDS = ("HIGH", "MED", "LOW")
REQUIRED_FIELDS = ("id", "kind", "unit", "year", "publisher", "table", "url", "confidence")
TABLE_FIELDS = REQUIRED_FIELDS + ("title", "universe", "min_age", "max_age", "base", "note",
                                  "population", "derived", "caveat", "variable")
ROW_FIELDS = ("category", "sex", "age", "value", "se", "maps_to", "label", "derived")
SEXES = ("total", "male", "female")
_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*(?:-\s*(\d{1,3})|(\+))\s*$")


def parse_age_band(text: str) -> tuple[int, int | None]:
    """``"25-29"`` -> (25, 29); ``"85+"`` -> (85, None). Bounds are inclusive, in completed
    years. Raises ValueError for anything else."""
    m = _AGE_RE.match(str(text))
    if not m:
        raise ValueError(f"not an age band: {text!r} (expected e.g. '25-29' or '85+')")
    lo = int(m.group(1))
    hi = None if m.group(3) else int(m.group(2))
    if hi is not None and hi < lo:
        raise ValueError(f"age band {text!r} ends before it starts")
    return lo, hi


def format_age_band(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


@dataclass(frozen=True)
class ReferenceRow:
    category: str
    value: float
    sex: str = "total"
    age: str = ""
    se: float | None = None
    maps_to: tuple[str, ...] | None = None
    label: str = ""
    derived: str = ""


@dataclass(frozen=True)
class ReferenceTable:
    """One published table with its provenance (see the module docstring)."""

    id: str
    kind: str
    unit: str
    year: int
    publisher: str
    table: str
    url: str
    confidence: str
    rows: tuple[ReferenceRow, ...]
    title: str = ""
    universe: str = ""
    min_age: int | None = None
    max_age: int | None = None
    base: str = ""
    note: str = ""
    population: str = ""
    derived: str = ""
    origin: str = ""          # file the table was read from ("package" for shipped data)
    caveat: str = ""          # warning shown beside every figure from this table
    variable: str = ""        # harmonised variable (generic kinds category_distribution/_share)

    # ---- provenance ---------------------------------------------------------------
    @property
    def source(self) -> str:
        """One-line citation: publisher, table, year, URL."""
        return f"{self.publisher}: {self.table} ({self.year}); {self.url}"

    @property
    def citation(self) -> str:
        """Short citation for result rows: ``publisher, year [confidence]``."""
        return f"{self.publisher}, {self.year}"

    @property
    def is_derived(self) -> bool:
        return bool(self.derived) or any(r.derived for r in self.rows)

    # ---- values -------------------------------------------------------------------
    def select(self, sex: str = "total", age: str | None = ""):
        """Rows for one sex (and one age band; ``None`` = all age bands)."""
        return [r for r in self.rows if r.sex == sex and (age is None or r.age == age)]

    @property
    def sexes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.sex for r in self.rows))

    @property
    def ages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.age for r in self.rows))

    def scale(self) -> float | None:
        """Divisor turning values into proportions (None for counts)."""
        return UNITS[self.unit]

    def to_frame(self):
        """The rows as a DataFrame (category, sex, age, value, se, maps_to, label, derived)."""
        import pandas as pd

        return pd.DataFrame([{"category": r.category, "sex": r.sex, "age": r.age,
                              "value": r.value, "se": r.se,
                              "maps_to": "|".join(r.maps_to) if r.maps_to is not None else "",
                              "label": r.label, "derived": r.derived} for r in self.rows])

    def meta(self) -> dict[str, Any]:
        """Provenance fields as a dict (for JSON output)."""
        return {"id": self.id, "kind": self.kind, "title": self.title, "universe": self.universe,
                "min_age": self.min_age, "max_age": self.max_age, "base": self.base,
                "unit": self.unit, "year": self.year, "publisher": self.publisher,
                "table": self.table, "url": self.url, "confidence": self.confidence,
                "note": self.note, "derived": self.is_derived, "origin": self.origin,
                "caveat": self.caveat, "variable": self.variable, "n_rows": len(self.rows)}


@dataclass(frozen=True)
class ReferencePopulation:
    """A named general population: its tables, the known gaps and notes.

    ``tables`` are searched last-first, so tables added by a project (``with_tables``)
    take precedence over the packaged ones of the same kind.
    """

    name: str
    title: str = ""
    description: str = ""
    geo: str = ""
    tables: tuple[ReferenceTable, ...] = ()
    gaps: tuple[dict, ...] = ()
    origin: str = ""

    def __iter__(self):
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def get(self, table_id: str) -> ReferenceTable:
        for t in reversed(self.tables):
            if t.id == table_id:
                return t
        raise ReferenceDataError(f"no table {table_id!r} in reference population {self.name!r}",
                                 code="reference.no_table", where=self.name,
                                 hint="available: " + ", ".join(t.id for t in self.tables))

    fieldwork_year: int | None = None   # set by for_fieldwork(): orders the vintages
    max_year_gap: int = 3

    def for_fieldwork(self, year: int | None, max_year_gap: int = 3) -> "ReferencePopulation":
        """The same population with its vintages ordered for fieldwork in ``year``."""
        return replace(self, fieldwork_year=None if year is None else int(year),
                       max_year_gap=int(max_year_gap))

    def vintages(self, kind: str, year: int | None = None, max_year_gap: int | None = None,
                 variable: str | None = None) -> list[ReferenceTable]:
        """Tables of one kind in order of preference for fieldwork in ``year``: nearest
        year first (|table year - year|), a table with a ``caveat`` after every other
        vintage within ``max_year_gap``, ties to the newer table, then to project-added
        (later listed) tables. Without a year: newest first."""
        year = self.fieldwork_year if year is None else year
        gap = self.max_year_gap if max_year_gap is None else max_year_gap
        cands = [(i, t) for i, t in enumerate(self.tables) if t.kind == kind
                 and (variable is None or t.variable == variable)]
        if year is None:
            return [t for _, t in sorted(cands, key=lambda it: (bool(it[1].caveat), -it[1].year, -it[0]))]
        clean_near = any(not t.caveat and abs(t.year - year) <= gap for _, t in cands)

        def key(it):
            i, t = it
            return (bool(t.caveat) and clean_near, abs(t.year - year), -t.year, -i)
        return [t for _, t in sorted(cands, key=key)]

    def of_kind(self, kind: str) -> list[ReferenceTable]:
        """Tables of one kind in order of preference (see :meth:`vintages`)."""
        return self.vintages(kind)

    def first(self, kind: str) -> ReferenceTable | None:
        found = self.of_kind(kind)
        return found[0] if found else None

    def gap(self, indicator: str) -> str | None:
        for g in self.gaps:
            if g.get("indicator") == indicator:
                return str(g.get("text", "")).strip()
        return None

    def with_tables(self, tables) -> "ReferencePopulation":
        """A new population with extra tables (e.g. a project's own); an added table with
        the id of an existing one replaces it."""
        extra = list(tables)
        ids = {t.id for t in extra}
        kept = tuple(t for t in self.tables if t.id not in ids)
        return replace(self, tables=kept + tuple(extra))

    def summary(self):
        """DataFrame with one row per table: id, kind, year, universe, unit, confidence,
        publisher, source table, URL, origin."""
        import pandas as pd

        return pd.DataFrame([t.meta() for t in self.tables])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "geo": self.geo, "gaps": [dict(g) for g in self.gaps],
                "tables": [dict(t.meta(), rows=t.to_frame().to_dict(orient="records"))
                           for t in self.tables]}


# ---------------------------------------------------------------------------- parsing
def _err(msg: str, where: str, hint: str, code: str = "reference.invalid_table"):
    return ReferenceDataError(msg, code=code, where=where, hint=hint)


_HINT_FIELDS = ("a table needs " + ", ".join(REQUIRED_FIELDS) + " and rows with category and "
                "value; see `diaspora-survey reference show russia --json` for a complete example")


def _check_confidence(value, where: str) -> str:
    text = str(value or "").strip().upper().replace("–", "-").replace("_", "-")
    if "UNVERIFIED" in text:
        raise _err("UNVERIFIED figures may not be used as reference values", where,
                   "remove the table or find the primary source and give its confidence "
                   "(HIGH, MED or LOW)", code="reference.unverified")
    parts = [p.strip() for p in re.split(r"[-/ ]+", text) if p.strip()]
    if not parts or any(p not in _CONF_WORDS for p in parts):
        raise _err(f"confidence {value!r} is not HIGH, MED, LOW or a range such as MED-HIGH",
                   where, "HIGH = primary table seen; MED = reputable secondary source; "
                          "LOW = blog/aggregator or unclear definition")
    return "-".join(parts)


def _number(value, where: str, field_name: str, allow_none: bool = False) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if allow_none:
            return None
        raise _err(f"{field_name} is missing", where, f"give {field_name} as a number")
    if isinstance(value, bool):
        raise _err(f"{field_name} {value!r} is not a number", where, f"give {field_name} as a number")
    try:
        x = float(str(value).replace(",", "").strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise _err(f"{field_name} {value!r} is not a number", where,
                   f"give {field_name} as a plain number (no units or footnote marks)") from None
    if not math.isfinite(x) or x < 0:
        raise _err(f"{field_name} {value!r} must be a finite number >= 0", where,
                   "reference values are counts or shares")
    return x


def _maps_to(value, kind: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items = [v.strip() for v in re.split(r"[|;]", value) if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        raise _err(f"maps_to {value!r} must be a list of schema categories", where,
                   "e.g. maps_to: [bachelor, master] (YAML) or bachelor|master (CSV)")
    from ...harmonise import schema

    allowed = {"education_distribution": schema.SCHEMA["education"].categories,
               "employment_status": schema.SCHEMA["employment_status"].categories}.get(kind)
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise _err(f"maps_to has unknown {kind.split('_')[0]} categories {bad}", where,
                       "use the harmonised schema codes: " + ", ".join(allowed))
    return tuple(items)


def table_from_dict(d: dict, where: str, row_where=None, origin: str = "") -> ReferenceTable:
    """Validate a table given as a mapping (YAML) and return a :class:`ReferenceTable`.

    ``where`` names the table in error messages (e.g. ``file.yaml: tables[2]``);
    ``row_where(i)`` names row i (default ``where.rows[i]``).
    """
    if not isinstance(d, dict):
        raise _err(f"a table must be a mapping, got {type(d).__name__}", where, _HINT_FIELDS)
    unknown = [k for k in d if k not in TABLE_FIELDS and k != "rows"]
    if unknown:
        raise _err(f"unknown table field(s) {unknown}", where,
                   "allowed: " + ", ".join(TABLE_FIELDS + ("rows",)))
    missing = [k for k in REQUIRED_FIELDS if d.get(k) in (None, "")]
    if missing:
        raise _err(f"missing field(s) {missing}", where, _HINT_FIELDS)
    tid = str(d["id"]).strip()
    where = f"{where} (table {tid!r})" if tid not in where else where
    kind = str(d["kind"]).strip()
    if kind not in KINDS:
        raise _err(f"kind {kind!r} is not known", f"{where}: kind", "one of: " + ", ".join(KINDS))
    unit = str(d["unit"]).strip()
    if unit not in UNITS:
        raise _err(f"unit {unit!r} is not known", f"{where}: unit", "one of: " + ", ".join(UNITS))
    try:
        year = int(str(d["year"]).strip())
    except ValueError:
        raise _err(f"year {d['year']!r} is not a year", f"{where}: year",
                   "the reference year of the figures, e.g. 2022") from None
    conf = _check_confidence(d["confidence"], f"{where}: confidence")
    ages = {}
    for k in ("min_age", "max_age"):
        v = d.get(k)
        ages[k] = None if v in (None, "") else int(_number(v, f"{where}: {k}", k))
    base = str(d.get("base") or "").strip()
    if kind == "entrepreneur_share" and base not in ("population", "employed"):
        raise _err(f"base {base!r} must be 'population' or 'employed'", f"{where}: base",
                   "base says whom the share is of: all persons, or the employed")
    if kind == "employment_status" and base not in ("", "employed"):
        raise _err(f"base {base!r}: employment_status tables are of the employed", f"{where}: base",
                   "leave base empty or set it to 'employed'")
    if kind in ("higher_education_share", "entrepreneur_share") and UNITS[unit] is None:
        raise _err(f"unit {unit!r}: a {kind} table holds shares", f"{where}: unit",
                   "use percent, per_1000 or proportion (for counts, use an "
                   "education_distribution or employment_status table)")
    variable = str(d.get("variable") or "").strip()
    if kind in GENERIC_KINDS and not variable:
        raise _err(f"a {kind} table needs 'variable'", f"{where}: variable",
                   "name the harmonised variable the table describes, e.g. variable: marital_status")
    if kind == "category_share" and UNITS[unit] is None:
        raise _err(f"unit {unit!r}: a category_share table holds shares", f"{where}: unit",
                   "use percent, per_1000 or proportion (for counts, use category_distribution)")
    rows_in = d.get("rows")
    if not isinstance(rows_in, list) or not rows_in:
        raise _err("the table has no rows", f"{where}: rows", _HINT_FIELDS)
    rw = row_where or (lambda i: f"{where}: rows[{i}]")
    rows = []
    seen = set()
    for i, r in enumerate(rows_in):
        w = rw(i)
        if not isinstance(r, dict):
            raise _err("a row must be a mapping", w, "rows: [{category: ..., value: ...}, ...]")
        bad = [k for k in r if k not in ROW_FIELDS]
        if bad:
            raise _err(f"unknown row field(s) {bad}", w, "allowed: " + ", ".join(ROW_FIELDS))
        cat = str(r.get("category") if r.get("category") is not None else "").strip()
        if not cat:
            raise _err("category is missing", f"{w}: category", "every row names its category")
        sex = str(r.get("sex") or "total").strip()
        if sex not in SEXES:
            raise _err(f"sex {sex!r} is not one of {SEXES}", f"{w}: sex",
                       "use total, male or female")
        age = str(r.get("age") or "").strip()
        if age:
            try:
                parse_age_band(age)
            except ValueError as e:
                raise _err(str(e), f"{w}: age", "age bands look like 25-29 or 85+") from None
        if kind == "age_distribution":
            try:
                parse_age_band(cat)
            except ValueError as e:
                raise _err(str(e), f"{w}: category",
                           "age_distribution categories are age bands such as 15-19 or 85+") from None
        value = _number(r.get("value"), f"{w}: value", "value")
        se = _number(r.get("se"), f"{w}: se", "se", allow_none=True)
        if se is not None and kind == "age_distribution":
            raise _err("se is not used for age_distribution tables", f"{w}: se",
                       "the population age structure is taken as known; remove the se "
                       "column (standard errors are used for shares and distributions)")
        if UNITS[unit] is not None and value > UNITS[unit] + 1e-9:
            raise _err(f"value {value:g} exceeds 1 {unit} (= {UNITS[unit]:g})", f"{w}: value",
                       "shares must be at most 100 percent / 1000 per 1000 / 1 proportion; "
                       "use unit: count for counts")
        mt = _maps_to(r.get("maps_to"), kind, f"{w}: maps_to")
        if kind == "category_distribution" and mt is None:
            mt = (cat,)                 # the row's category is the variable's category
        if kind in ("education_distribution", "employment_status") and mt is None:
            raise _err("maps_to is missing", f"{w}: maps_to",
                       "say which harmonised categories this row corresponds to "
                       "(an empty list [] for a category with no counterpart)")
        key = (cat, sex, age)
        if key in seen:
            raise _err(f"duplicate row for category {cat!r}, sex {sex!r}, age {age!r}", w,
                       "each (category, sex, age) appears once per table")
        seen.add(key)
        rows.append(ReferenceRow(category=cat, value=value, sex=sex, age=age, se=se, maps_to=mt,
                                 label=str(r.get("label") or ""), derived=str(r.get("derived") or "").strip()))
    return ReferenceTable(
        id=tid, kind=kind, unit=unit, year=year, publisher=str(d["publisher"]).strip(),
        table=str(d["table"]).strip(), url=str(d["url"]).strip(), confidence=conf,
        rows=tuple(rows), title=str(d.get("title") or "").strip(),
        universe=str(d.get("universe") or "").strip(), min_age=ages["min_age"],
        max_age=ages["max_age"], base=base or ("employed" if kind == "employment_status" else ""),
        note=" ".join(str(d.get("note") or "").split()), population=str(d.get("population") or ""),
        derived=str(d.get("derived") or "").strip(), origin=origin,
        caveat=" ".join(str(d.get("caveat") or "").split()), variable=variable)


def _read_text(path: Path) -> str:
    from ..._files import read_text_input

    try:
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(path)
        return read_text_input(path, what="reference table file", error=ReferenceDataError,
                               code="reference")
    except FileNotFoundError:
        raise _err("reference table file not found", str(path),
                   "check the path in [reference] tables of diaspora-survey.toml "
                   "(relative to the project directory)", code="reference.not_found") from None
    except UnicodeDecodeError as e:
        raise _err(f"not UTF-8 text ({e.reason} at byte {e.start})", str(path),
                   "save the table as UTF-8 (CSV or YAML)") from None


def read_yaml_tables(path: Path, origin: str | None = None) -> tuple[list[ReferenceTable], dict]:
    """Tables of a YAML file: a single table mapping, or a mapping with ``tables:`` (plus
    population metadata). Returns (tables, the other top-level fields)."""
    import yaml

    path = Path(path)
    text = _read_text(path)
    from ..._yaml import safe_load

    try:
        doc = safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise _err(f"not valid YAML: {getattr(e, 'problem', e)}", where,
                   "check indentation and quoting (quote values containing ':' or '#')") from None
    if not isinstance(doc, dict):
        raise _err("expected a mapping (one table, or 'tables: [...]')", str(path), _HINT_FIELDS)
    origin = origin or str(path)
    if "tables" in doc:
        items = doc["tables"]
        if not isinstance(items, list) or not items:
            raise _err("'tables' must be a non-empty list", f"{path}: tables", _HINT_FIELDS)
        tables = [table_from_dict(t, f"{path}: tables[{i}]", origin=origin) for i, t in enumerate(items)]
        meta = {k: v for k, v in doc.items() if k != "tables"}
    else:
        tables = [table_from_dict(doc, str(path), origin=origin)]
        meta = {}
    _check_unique_ids(tables, str(path))
    return tables, meta


def read_csv_tables(path: Path) -> list[ReferenceTable]:
    """Tables of a long CSV file: one row per figure with the row fields (category, sex,
    age, value, se, maps_to, label, derived) and the table fields (id, kind, unit, year,
    publisher, table, url, confidence, ...) repeated; rows with the same ``id`` form a
    table and must agree on every table field. Errors name the file and line."""
    import csv
    import io

    path = Path(path)
    text = _read_text(path)
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else ",", delimiters=",;\t")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delim)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise _err(f"cannot read the CSV header: {e}", f"{path}:1", _HINT_FIELDS) from None
    if not header:
        raise _err("the CSV file is empty", str(path), _HINT_FIELDS)
    reader.fieldnames = header
    unknown = [h for h in header if h not in TABLE_FIELDS + ROW_FIELDS]
    if unknown:
        raise _err(f"unknown column(s) {unknown}", f"{path}:1",
                   "allowed: " + ", ".join(TABLE_FIELDS + ROW_FIELDS))
    missing = [h for h in REQUIRED_FIELDS + ("category", "value") if h not in header]
    if missing:
        raise _err(f"missing column(s) {missing}", f"{path}:1", _HINT_FIELDS)
    groups: dict[str, dict] = {}

    def records():
        line = 1
        try:
            for line, rec in enumerate(reader, start=2):
                yield line, rec
        except csv.Error as e:   # e.g. a field larger than the csv module's limit
            raise _err(f"cannot read the CSV: {e}", f"{path}:{line + 1}",
                       "one table row per line") from None

    for lineno, rec in records():
        if None in rec:
            raise _err("the row has more fields than the header", f"{path}:{lineno}",
                       "quote values that contain the separator")
        rec = {k: (v.strip() if isinstance(v, str) else v) for k, v in rec.items()}
        if not any(rec.values()):
            continue
        tid = rec.get("id") or ""
        if not tid:
            raise _err("id is missing", f"{path}:{lineno}: id", "every row names its table id")
        tmeta = {k: rec.get(k) for k in TABLE_FIELDS if k in rec and rec.get(k) not in (None, "")}
        row = {k: rec.get(k) for k in ROW_FIELDS if k in rec and rec.get(k) not in (None, "")}
        if "maps_to" in header and "maps_to" not in row:
            row["maps_to"] = ""
        g = groups.setdefault(tid, {"meta": tmeta, "rows": [], "lines": []})
        for k, v in tmeta.items():
            if g["meta"].get(k, v) != v:
                raise _err(f"{k} {v!r} differs from {g['meta'][k]!r} given earlier for table {tid!r}",
                           f"{path}:{lineno}: {k}", "table fields must be the same on every row of a table")
            g["meta"].setdefault(k, v)
        g["rows"].append(row)
        g["lines"].append(lineno)
    if not groups:
        raise _err("the CSV file has no rows", str(path), _HINT_FIELDS)
    tables = []
    for tid, g in groups.items():
        d = dict(g["meta"], rows=g["rows"])
        lines = g["lines"]
        tables.append(table_from_dict(d, f"{path}:{lines[0]}",
                                      row_where=lambda i, lines=lines: f"{path}:{lines[i]}",
                                      origin=str(path)))
    return tables


def read_tables(path) -> list[ReferenceTable]:
    """Read a user's reference table file (``.yaml``/``.yml`` or ``.csv``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return read_yaml_tables(path)[0]
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv_tables(path)
    raise _err(f"unsupported reference table format {suffix or '(none)'!r}", str(path),
               "use a .yaml/.yml or .csv file", code="reference.format")


def _check_unique_ids(tables, where: str) -> None:
    seen = set()
    for t in tables:
        if t.id in seen:
            raise _err(f"duplicate table id {t.id!r}", where, "table ids must be unique")
        seen.add(t.id)

