"""Host regions: the crosswalk from ``country`` (ISO 3166-1 alpha-2) to ``host_region``.

The packaged table ``crosswalks/host_region.csv`` has the columns ``country,host_region,note``
and lists every country of ``crosswalks/country.csv`` once. Its regions
(:data:`~diaspora_survey.harmonise.schema.REGION_LEVELS`) follow the grouping used in reports
on the 2022 emigration: EU/EEA (EU 27 + Iceland, Liechtenstein, Norway), other Europe (UK,
Switzerland, the Western Balkans incl. Serbia and Montenegro, Moldova, Ukraine, Belarus and
the micro-states), South Caucasus (Georgia, Armenia, Azerbaijan), Central Asia (the five
former Soviet republics; Mongolia is ``other``), Turkey, Israel, Middle East/Gulf (incl.
Egypt), South-East Asia (ASEAN + Timor-Leste), the Americas, ``other``, and ``russia`` for
respondents who live in Russia again (returnees).

A project regroups countries or adds regions with its own CSVs (``[harmonise] host_regions =
["codebooks/host_regions.csv"]`` in the project file), same columns (lines starting with ``#``
are comments): its rows replace the packaged row of the same country; a region code that is
not packaged becomes a new category, placed where the first region it takes countries from
was (e.g. ``europe`` for EU/EEA + other Europe, or ``cis``); packaged regions left without a
country disappear. A country in the data that no table
lists gets NA and an ``unmapped`` issue (never a silent ``other``).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CodebookError
from . import schema

PACKAGED = Path(__file__).resolve().parent / "crosswalks" / "host_region.csv"
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_ISO2 = re.compile(r"^[A-Z]{2}$")


@dataclass
class RegionTable:
    """``country → host_region`` with the category order and where each row came from."""

    table: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    levels: list[str] = field(default_factory=lambda: [lv.code for lv in schema.REGION_LEVELS])

    def derive(self, country):
        """``host_region`` (categorical) of a ``country`` Series; NA where the country is NA or
        not in the table. Returns (Series, countries not in the table)."""
        import numpy as np
        import pandas as pd

        s = pd.Series(country)
        codes, uniques = pd.factorize(s.astype("object"), use_na_sentinel=True)
        pos = {c: i for i, c in enumerate(self.levels)}
        lut = np.array([pos.get(self.table.get(str(u)), -1) for u in uniques] + [-1], dtype=np.int64)
        unknown = sorted(str(u) for u in uniques if str(u) not in self.table)
        out = pd.Categorical.from_codes(lut[codes], categories=self.levels)
        return pd.Series(out, index=s.index, name="host_region"), unknown


def _rows(path: Path, shown: str):
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CodebookError("host-region crosswalk not found", code="crosswalk.not_found", where=shown,
                            hint="check [harmonise] host_regions in diaspora-survey.toml") from None
    except UnicodeDecodeError:
        raise CodebookError("host-region crosswalk is not UTF-8", code="crosswalk.encoding", where=shown,
                            hint="save the CSV as UTF-8") from None
    numbered = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1)
                if ln.strip() and not ln.lstrip().startswith("#")]      # '#' lines are comments
    if not numbered:
        raise CodebookError("the host-region crosswalk is empty", code="crosswalk.bad_header", where=shown,
                            hint="first row: country,host_region[,note]")
    reader = csv.DictReader([ln for _, ln in numbered])
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    reader.fieldnames = fields
    if "country" not in fields or "host_region" not in fields:
        raise CodebookError("a host-region crosswalk needs the columns 'country' and 'host_region'",
                            code="crosswalk.bad_header", where=f"{shown}:{numbered[0][0]}",
                            hint="first row: country,host_region[,note]")
    for k, row in enumerate(reader, start=1):
        i = numbered[k][0]
        c = (row.get("country") or "").strip()
        r = (row.get("host_region") or "").strip()
        where = f"{shown}:{i}"
        if not _ISO2.match(c):
            raise CodebookError(f"country {c!r} is not an ISO 3166-1 alpha-2 code", code="crosswalk.bad_code",
                                where=where, hint="two capital letters, e.g. GE")
        if not _CODE.match(r):
            raise CodebookError(f"host_region {r!r} is not a region code", code="crosswalk.bad_code",
                                where=where, hint="lower-case letters, digits and _, e.g. south_caucasus")
        yield c, r, where


def load(extra=None) -> RegionTable:
    """The packaged table, then the project CSV(s) ``extra`` (path or list; later rows win)."""
    t = RegionTable()
    paths = [] if extra is None else ([extra] if isinstance(extra, (str, Path)) else list(extra))
    for path, override in [(PACKAGED, False)] + [(Path(p), True) for p in paths]:
        shown = path.name if path == PACKAGED else str(path)
        seen: dict[str, str] = {}
        for c, r, where in _rows(path, shown):
            if c in seen:
                raise CodebookError(f"country {c} is listed twice", code="crosswalk.conflict", where=where,
                                    hint=f"first listed at {seen[c]}; keep one row")
            seen[c] = where
            if c in t.table and not override:
                continue
            if r not in t.levels:   # a new region: placed before the packaged region it takes from
                before = t.table.get(c)
                pos = t.levels.index(before) if before in t.levels else (
                    len(t.levels) - 1 if t.levels[-1] == "russia" else len(t.levels))
                t.levels.insert(pos, r)
            t.table[c] = r
            t.origin[c] = where
    used = set(t.table.values())
    t.levels = [lv for lv in t.levels if lv in used]
    return t


__all__ = ["RegionTable", "load", "PACKAGED"]
