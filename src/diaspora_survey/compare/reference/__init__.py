"""General-population reference tables, shipped as data with their sources.

>>> import diaspora_survey as ds
>>> ds.reference.list()                      # doctest: +SKIP
['russia']
>>> ru = ds.reference.load("russia")         # doctest: +SKIP
>>> ru.summary()[["id", "kind", "year", "confidence"]]   # doctest: +SKIP

Each packaged population is one YAML file in ``reference/data/`` (population metadata,
known ``gaps`` and a list of tables); every table carries publisher, source table, year,
URL and confidence, and every derived figure says how it was derived (see
:mod:`diaspora_survey.compare.reference.model` for the format). A project adds its own tables
(CSV or YAML with the same fields, e.g. the official 2021 census education-by-age table, or
a host country) with ``load("russia", tables=["my_table.yaml"])`` or
``[reference] tables = [...]`` in ``diaspora-survey.toml``; an added table with the id of
a packaged one replaces it, other added tables take precedence over packaged tables of
the same kind.
"""
from __future__ import annotations

import builtins
import functools
from importlib import resources
from pathlib import Path

from ...errors import ReferenceDataError
from .ages import band_mass, frame_shares, mean_age, median_age
from .model import KINDS, UNITS, ReferencePopulation, ReferenceRow, ReferenceTable, format_age_band, parse_age_band, read_csv_tables, read_tables, read_yaml_tables, table_from_dict

__all__ = ["load", "list", "read_tables", "ReferencePopulation", "ReferenceTable",
           "ReferenceRow", "ReferenceDataError", "KINDS", "UNITS", "parse_age_band",
           "format_age_band", "frame_shares", "band_mass", "mean_age", "median_age",
           "table_from_dict", "read_csv_tables", "read_yaml_tables", "data_dir", "from_microdata"]


def from_microdata(source, **options) -> ReferenceTable:
    """A reference table computed from weighted microdata by the engine (DuckDB default):
    see :func:`diaspora_survey.compare.reference.microdata.from_microdata`."""
    from .microdata import from_microdata as build

    return build(source, **options)


def data_dir() -> Path:
    """Directory of the packaged population files."""
    return Path(str(resources.files(__package__).joinpath("data")))


def list() -> builtins.list[str]:  # noqa: A001 - public name required by the API (ds.reference.list())
    """Names of the packaged reference populations (sorted)."""
    return sorted(p.stem for p in data_dir().glob("*.yaml"))


@functools.lru_cache(maxsize=16)
def _load_file(path: str, origin: str) -> ReferencePopulation:
    p = Path(path)
    tables, meta = read_yaml_tables(p, origin=origin)
    gaps = meta.get("gaps") or []
    if not isinstance(gaps, builtins.list) or not all(isinstance(g, dict) for g in gaps):
        raise ReferenceDataError("'gaps' must be a list of {indicator, text}", where=f"{p}: gaps",
                                 hint="gaps: [{indicator: education_by_age, text: ...}]")
    return ReferencePopulation(
        name=str(meta.get("name") or p.stem), title=str(meta.get("title") or ""),
        description=" ".join(str(meta.get("description") or "").split()),
        geo=str(meta.get("geo") or ""), tables=tuple(tables),
        gaps=tuple(dict(g) for g in gaps), origin=origin)


def load(name: str = "russia", tables=None) -> ReferencePopulation:
    """Load a reference population.

    name: a packaged population (see :func:`list`) or the path of a population YAML file
    (same format as the packaged ones). tables: optional paths of extra table files
    (CSV or YAML) to add, e.g. from the project file's ``[reference] tables``.
    Raises :class:`~diaspora_survey.errors.ReferenceDataError` for an unknown name or a
    malformed table (naming the file, line or field, with a hint).
    """
    if isinstance(name, ReferencePopulation):
        pop = name
    else:
        text = str(name)
        packaged = data_dir() / f"{text}.yaml"
        if packaged.is_file() and "/" not in text and "\\" not in text:
            pop = _load_file(str(packaged), "package")
        elif text.lower().endswith((".yaml", ".yml")) and Path(text).is_file():
            pop = _load_file(str(Path(text).resolve()), str(text))
        else:
            raise ReferenceDataError(f"unknown reference population {text!r}",
                                     code="reference.unknown", where="reference",
                                     hint="available: " + ", ".join(list())
                                     + " (or give the path of a population .yaml file)")
    if tables:
        if isinstance(tables, (str, Path)):
            tables = [tables]
        extra = []
        for t in tables:
            if isinstance(t, ReferenceTable):
                extra.append(t)
            else:
                extra.extend(read_tables(t))
        pop = pop.with_tables(extra)
    return pop
