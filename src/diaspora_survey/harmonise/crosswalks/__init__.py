"""Crosswalks: editable CSV tables that map survey labels to harmonised categories.

Each packaged table (``country.csv``, ``education.csv``, ``employment.csv``, ``sex.csv``,
``missing.csv``) has the columns ``label,code,lang,note``: ``label`` is a wording found in
questionnaires (Russian, English, ISO codes, common variants and misspellings), ``code`` the
harmonised category (ISO 3166-1 alpha-2 for countries; the schema's codes for education,
employment and sex; a missing kind — ``dont_know``, ``refused``, ``no_answer``,
``not_applicable`` — for ``missing``), ``note`` says where a mapping needs a second look.

Matching is case-, whitespace-, punctuation- and ё/е-insensitive (:func:`normalise_label`),
so «Высшее — магистратура», «высшее (магистратура)» and «ВЫСШЕЕ МАГИСТРАТУРА» are one label.

A project extends or overrides the packaged tables with its own CSVs (project file:
``[harmonise] crosswalks = ["codebooks/my_countries.csv"]``). A project CSV has the columns
``label,code`` (``lang``/``note`` optional) and either a ``crosswalk`` column naming the table
per row or a file name starting with the table name (``country_extra.csv``). Project rows
win over packaged rows with the same normalised label.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from ...errors import CodebookError

DATA_DIR = Path(__file__).resolve().parent
NAMES = ("country", "education", "employment", "sex", "missing")
MISSING_KINDS = ("dont_know", "refused", "no_answer", "not_applicable", "missing")

_LEADING_ENUM = re.compile(r"^\s*\d{1,2}\s*[.)]\s+(?=\D)")
_PUNCT = re.compile(r"[\s\-‐‑‒–—―_.,;:!?\"'«»„“”‘’`()\[\]{}/\\|*+]+")


# Latin letters that look like Cyrillic ones and back (typed answers mix layouts: «Гpузия»
# with a Latin p, "Вietnam" with a Cyrillic В). Only words written in both scripts are fixed.
_LAT = "AaBCcEeHKkMOoPpTXxYy"
_CYR = "АаВСсЕеНКкМОоРрТХхУу"
_TO_CYR = str.maketrans(_LAT, _CYR)
_TO_LAT = str.maketrans(_CYR, _LAT)
_WORD = re.compile(r"\w+")


def _fix_mixed_script(word: str) -> str:
    cyr = sum("\u0400" <= ch <= "\u04ff" for ch in word)
    lat = sum("a" <= ch.lower() <= "z" for ch in word)
    if not cyr or not lat:
        return word
    return word.translate(_TO_CYR if cyr >= lat else _TO_LAT)


def normalise_label(value) -> str:
    """Canonical form of a label for matching.

    NFC-normalises, fixes words typed in a mix of Latin and Cyrillic look-alike letters
    (towards the word's main script), case-folds, replaces ё by е, drops a leading
    enumeration such as ``1.`` or ``2)``, turns punctuation, dashes, brackets and quotes into
    spaces and collapses whitespace. Letters with diacritics are kept (``й`` stays ``й``).
    """
    s = unicodedata.normalize("NFC", str(value))
    if s.isascii() is False and any("a" <= ch.lower() <= "z" for ch in s):
        s = _WORD.sub(lambda m: _fix_mixed_script(m.group()), s)
    s = s.casefold().replace("ё", "е")
    s = _LEADING_ENUM.sub("", s)
    return _PUNCT.sub(" ", s).strip()


def _valid_codes(name: str) -> frozenset[str] | None:
    from .. import schema

    if name == "education":
        return frozenset(lv.code for lv in schema.EDUCATION_LEVELS)
    if name == "employment":
        return frozenset(lv.code for lv in schema.EMPLOYMENT_LEVELS)
    if name == "sex":
        return frozenset(lv.code for lv in schema.SEX_LEVELS)
    if name == "missing":
        return frozenset(MISSING_KINDS)
    return None  # country: checked by pattern


_ISO2 = re.compile(r"^[A-Z]{2}$")


def _check_code(name: str, code: str, where: str) -> None:
    valid = _valid_codes(name)
    if valid is None:
        if not _ISO2.match(code):
            raise CodebookError(f"country code {code!r} is not an ISO 3166-1 alpha-2 code",
                                code="crosswalk.bad_code", where=where,
                                hint="use two capital letters, e.g. GE for Georgia")
    elif code not in valid:
        raise CodebookError(f"{name} code {code!r} is not a harmonised category",
                            code="crosswalk.bad_code", where=where,
                            hint=f"use one of: {', '.join(sorted(valid))}")


@dataclass
class Crosswalk:
    """One crosswalk: normalised label → harmonised code, with where each entry came from."""

    name: str
    table: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)   # normalised label → "file:line"
    notes: dict[str, str] = field(default_factory=dict)

    def lookup(self, label) -> str | None:
        """Harmonised code for ``label`` or ``None``."""
        if label is None:
            return None
        return self.table.get(normalise_label(label))

    def note(self, label) -> str:
        return self.notes.get(normalise_label(label), "")

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(self.table.values())

    def map(self, values):
        """Vectorised lookup on a pandas Series: looks up each distinct value once."""
        import pandas as pd

        s = pd.Series(values)
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        lut = [self.lookup(u) for u in uniques]
        cats = sorted({c for c in lut if c is not None})
        pos = {c: i for i, c in enumerate(cats)}
        import numpy as np

        lut_codes = np.array([pos[c] if c is not None else -1 for c in lut] + [-1], dtype=np.int64)
        return pd.Series(pd.Categorical.from_codes(lut_codes[codes], categories=cats),
                         index=s.index, name=s.name)

    def add_rows(self, rows: Iterable[tuple[str, str, str, str]], *, override: bool) -> None:
        """Add (label, code, note, where) rows; within one source a label may map to one code."""
        seen_here: dict[str, tuple[str, str]] = {}
        for label, code, note, where in rows:
            key = normalise_label(label)
            if not key:
                raise CodebookError("empty label in crosswalk", code="crosswalk.bad_row", where=where,
                                    hint="fill in the label or delete the row")
            _check_code(self.name, code, where)
            if key in seen_here and seen_here[key][0] != code:
                raise CodebookError(
                    f"label {label!r} is mapped to both {seen_here[key][0]!r} and {code!r}",
                    code="crosswalk.conflict", where=where,
                    hint=f"first mapped at {seen_here[key][1]}; keep one of the rows")
            seen_here[key] = (code, where)
            if key in self.table and not override:
                continue
            self.table[key] = code
            self.origin[key] = where
            if note:
                self.notes[key] = note


def _read_csv(path: Path):
    from ..._files import read_text_input

    try:
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(path)
        text = read_text_input(path, what="crosswalk file", error=CodebookError, code="crosswalk")
    except FileNotFoundError:
        raise CodebookError("crosswalk file not found", code="crosswalk.not_found", where=str(path),
                            hint="check the path in [harmonise] crosswalks of diaspora-survey.toml") from None
    except UnicodeDecodeError:
        raise CodebookError("crosswalk file is not UTF-8", code="crosswalk.encoding", where=str(path),
                            hint="save the CSV as UTF-8 (in Excel: 'CSV UTF-8')") from None
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","
    reader = csv.DictReader(text.splitlines(), delimiter=delim)
    try:
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    except csv.Error as ex:
        raise CodebookError(f"cannot read the crosswalk's header: {ex}", code="crosswalk.bad_header",
                            where=f"{path}:1", hint="first row: label,code[,crosswalk][,lang][,note]") from None
    reader.fieldnames = fields
    if "label" not in fields or "code" not in fields:
        raise CodebookError("a crosswalk needs the columns 'label' and 'code'",
                            code="crosswalk.bad_header", where=f"{path}:1",
                            hint="first row: label,code[,crosswalk][,lang][,note]")
    i = 1
    try:
        for i, row in enumerate(reader, start=2):
            yield i, {k: (v or "").strip() for k, v in row.items() if k is not None}
    except csv.Error as ex:   # e.g. a field larger than the csv module's limit
        raise CodebookError(f"cannot read the crosswalk: {ex}", code="crosswalk.bad_row",
                            where=f"{path}:{i + 1}", hint="one label,code pair per line") from None


@lru_cache(maxsize=None)
def _packaged(name: str) -> Crosswalk:
    cw = Crosswalk(name)
    path = DATA_DIR / f"{name}.csv"
    cw.add_rows(((r["label"], r["code"], r.get("note", ""), f"{path.name}:{i}")
                 for i, r in _read_csv(path)), override=False)
    return cw


def _copy(cw: Crosswalk) -> Crosswalk:
    return Crosswalk(cw.name, dict(cw.table), dict(cw.origin), dict(cw.notes))


def _table_of(path: Path, row: dict, line: int) -> str:
    name = row.get("crosswalk", "")
    if name:
        if name not in NAMES:
            raise CodebookError(f"unknown crosswalk {name!r}", code="crosswalk.unknown",
                                where=f"{path}:{line}", hint=f"use one of: {', '.join(NAMES)}")
        return name
    stem = path.stem.lower()
    for n in NAMES:
        if stem == n or stem.startswith(n + "_") or stem.startswith(n + "-"):
            return n
    raise CodebookError("cannot tell which crosswalk this file extends", code="crosswalk.unknown",
                        where=f"{path}:{line}",
                        hint=f"add a 'crosswalk' column or name the file after the table, "
                             f"e.g. country_extra.csv ({', '.join(NAMES)})")


def load(extra: Iterable[str | Path] = ()) -> dict[str, Crosswalk]:
    """All crosswalks: the packaged tables, extended/overridden by the project CSVs ``extra``."""
    out = {name: _copy(_packaged(name)) for name in NAMES}
    for p in extra:
        path = Path(p)
        per_table: dict[str, list] = {}
        for line, row in _read_csv(path):
            if not row.get("label") and not row.get("code"):
                continue
            per_table.setdefault(_table_of(path, row, line), []).append(
                (row.get("label", ""), row.get("code", ""), row.get("note", ""), f"{path}:{line}"))
        for name, rows in per_table.items():
            out[name].add_rows(rows, override=True)
    return out


def get(name: str, extra: Iterable[str | Path] = ()) -> Crosswalk:
    """One crosswalk by name (see :data:`NAMES`)."""
    if name not in NAMES:
        raise CodebookError(f"unknown crosswalk {name!r}", code="crosswalk.unknown",
                            hint=f"use one of: {', '.join(NAMES)}")
    if not extra:
        return _copy(_packaged(name))
    return load(extra)[name]


def lookup_many(cw: Crosswalk, labels: Mapping) -> dict:
    """``{key: code or None}`` for a mapping of keys to labels."""
    return {k: cw.lookup(v) for k, v in labels.items()}


__all__ = ["Crosswalk", "NAMES", "MISSING_KINDS", "normalise_label", "load", "get", "lookup_many"]
