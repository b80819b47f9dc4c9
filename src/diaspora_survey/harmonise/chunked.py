"""Harmonising a wave in chunks of rows (waves too large for memory; docs/scale.md).

The result equals :func:`~diaspora_survey.harmonise.apply.harmonise` on the whole wave — the same
rows, values, dtypes and categories, the same issues (counted once, with the wave's totals),
exclusions, summary and rule counts — because every chunk runs through the same code
(:class:`~diaspora_survey.harmonise.apply.WaveHarmoniser`) and what a chunk cannot know is
found over the whole wave first:

* the file is read by :func:`diaspora_survey.io.chunks.open_chunked`, whose first pass fixes
  each raw column's dtype as the whole-file reader would (a CSV column numeric in its first rows
  and text later is text in every chunk) and records, for float columns, whether every value is
  a whole number (ids "17", not "17.0");
* the codebook is checked against the file's columns and the distinct values of the columns
  its rules test (``Codebook.validate_against``, as in memory);
* open category sets (``country``, custom variables without declared categories) take the
  categories found among the distinct values of their source column over the whole wave, so
  every chunk has the same categorical dtype;
* duplicate respondent ids are found across chunks (the ids kept so far are remembered), issues,
  exclusions and the summary are merged.

>>> run = harmonise_chunked("raw/big.sav", cb, chunk_rows=200_000)     # doctest: +SKIP
>>> for part in run: ...                      # harmonised rows, chunk by chunk
>>> h = run.finish()                          # issues, exclusions, summary of the whole wave
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

from . import schema
from .apply import Harmonised, WaveFacts, WaveHarmoniser, _Ctx, _Var, open_categories
from .codebook import Codebook
from ..errors import CodebookError, HarmonisationError


def codebook_columns(codebook: Codebook) -> list[str]:
    """The raw columns the codebook reads (id, design, every variable's sources)."""
    cols: list[str] = []
    if codebook.id:
        cols.append(codebook.id)
    if codebook.design is not None:
        for k in ("weight", "strata", "psu", "fpc"):
            c = getattr(codebook.design, k)
            if c:
                cols.append(c)
    for spec in codebook.variables.values():
        cols.extend(spec.sources)
    return list(dict.fromkeys(cols))


def _open_sets(codebook: Codebook) -> dict[str, str]:
    """{variable: source column} of the categorical variables whose categories are those present
    in the wave (country, custom variables without declared categories)."""
    out = {}
    for name, spec in codebook.variables.items():
        if spec.transform in ("age_from_birth_year", "month", "year_month", "date") or spec.rules:
            continue
        if codebook.var_type(name) in ("category", "ordered") and codebook.categories(name) is None:
            out[name] = spec.sources[0]
    return out


def distinct_columns(codebook: Codebook) -> list[str]:
    """The raw columns whose distinct values the first pass records: the sources of rules (the
    codebook check) and of open category sets."""
    cols = [c for spec in codebook.variables.values() if spec.rules for c in spec.sources]
    cols += list(_open_sets(codebook).values())
    return list(dict.fromkeys(cols))


class _Columns:
    """``wave.data`` as ``Codebook.validate_against`` reads it: the file's column names, and for a
    column the distinct values of the whole wave (only rules' columns are looked at)."""

    def __init__(self, cw):
        self._cw = cw
        self.columns = list(cw.columns)

    def __getitem__(self, col: str) -> pd.Series:
        return self._cw.distinct(col)


class _WaveView:
    def __init__(self, cw):
        self.data = _Columns(cw)
        self.meta = cw.meta
        self.source = cw.source


class ChunkedHarmonisation:
    """One wave being harmonised in chunks: iterate for the harmonised rows (a DataFrame per
    chunk, index = the rows' positions in the file, excluded rows left out), then
    :meth:`finish` for the :class:`Harmonised` of the whole wave (``data`` None)."""

    def __init__(self, cw, codebook: Codebook, *, strict: bool = False, crosswalks=None,
                 age_bands: Sequence[tuple[int, int | None]] = schema.DEFAULT_AGE_BANDS,
                 wave_id: str | None = None, regions=None):
        from ..io import RawWave
        from . import crosswalks as _cw

        self.wave = cw
        self.codebook = codebook
        codebook.validate_against(_WaveView(cw))
        cws = crosswalks if crosswalks is not None else _cw.load()
        wid = str(wave_id or codebook.wave)
        ctx = _Ctx(wid, codebook, RawWave(data=pd.DataFrame(), meta=cw.meta, source=cw.source), cws)
        cats = {}
        for name, col in _open_sets(codebook).items():
            cats[name] = open_categories(_Var(ctx, name, codebook.variables[name]), cw.distinct(col))
        self.facts = WaveFacts(integral=cw.integral, categories=cats)
        self.runner = WaveHarmoniser(codebook, cw.meta, cw.source, strict=strict, crosswalks=cws,
                                     age_bands=age_bands, wave_id=wid, regions=regions, facts=self.facts)
        self.wave_id = wid
        self._empty: pd.DataFrame | None = None
        self._done = False

    def empty(self) -> pd.DataFrame:
        """No rows, the output's columns and dtypes (the first chunk is read for the raw dtypes)."""
        if self._empty is None:
            first = next(iter(self.wave.chunks()), None)
            if first is None:
                raise HarmonisationError(f"wave {self.wave_id!r} has no rows", code="harmonise.empty_wave",
                                         where=str(self.wave.path), hint="check the file")
            self._empty = self.runner.empty(first.iloc[:0])
        return self._empty

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self._done:
            raise HarmonisationError("the wave was already harmonised", code="harmonise.bad_argument")
        self._done = True
        from .._util import trim_memory

        for chunk in self.wave.chunks():
            part = self.runner.add(chunk)
            del chunk
            if part is not None and len(part):
                yield part
            del part
            trim_memory()          # the previous chunk's buffers back to the system

    def finish(self) -> Harmonised:
        """The whole wave's issues, exclusions, summary and rule counts (after iterating)."""
        return self.runner.finish()


def harmonise_chunked(wave, codebook, *, chunk_rows: int | None = None, strict: bool = False, crosswalks=None,
                      age_bands: Sequence[tuple[int, int | None]] = schema.DEFAULT_AGE_BANDS,
                      wave_id: str | None = None, regions=None, encoding: str | None = None,
                      sep: str | None = None, decimal: str | None = None) -> ChunkedHarmonisation:
    """Harmonise ``wave`` chunk by chunk.

    ``wave``: a path (.sav, .zsav or CSV, read with :func:`~diaspora_survey.io.chunks.open_chunked`
    — only the codebook's columns — with ``encoding``, ``sep``, ``decimal``), a
    :class:`~diaspora_survey.io.chunks.ChunkedWave`, or a :class:`~diaspora_survey.io.RawWave`
    already in memory (cut into chunks). ``chunk_rows``: rows per chunk (not for a ChunkedWave,
    which has its own). The other parameters are those of
    :func:`~diaspora_survey.harmonise.apply.harmonise`.
    """
    from ..io import RawWave
    from ..io.chunks import ChunkedWave, from_raw, open_chunked

    if isinstance(codebook, (str, Path)):
        codebook = Codebook.load(codebook)
    if not isinstance(codebook, Codebook):
        raise CodebookError(f"harmonise needs a Codebook (or its path), not {type(codebook).__name__}",
                            code="harmonise.bad_argument")
    cols, dist = codebook_columns(codebook), distinct_columns(codebook)
    if isinstance(wave, ChunkedWave):
        if chunk_rows is not None:
            raise HarmonisationError("chunk_rows= is given by the ChunkedWave", code="harmonise.bad_argument",
                                     hint="leave chunk_rows out")
        cw = wave
        missing = [c for c in dist if c not in cw.read_columns or c not in cw._distinct]
        if missing:
            raise HarmonisationError(f"the ChunkedWave has no distinct values of {missing}",
                                     code="harmonise.bad_argument",
                                     hint="open it with distinct=distinct_columns(codebook)")
    elif isinstance(wave, RawWave):
        cw = from_raw(wave, chunk_rows, columns=[c for c in cols if c in wave.data.columns], distinct=dist)
    elif isinstance(wave, (str, Path)):
        cw = open_chunked(wave, chunk_rows, columns=cols, distinct=dist, encoding=encoding, sep=sep,
                          decimal=decimal)
    else:
        raise HarmonisationError(f"harmonise_chunked needs a file path, a RawWave or a ChunkedWave, not "
                                 f"{type(wave).__name__}", code="harmonise.bad_argument")
    return ChunkedHarmonisation(cw, codebook, strict=strict, crosswalks=crosswalks, age_bands=age_bands,
                                wave_id=wave_id, regions=regions)


__all__ = ["ChunkedHarmonisation", "codebook_columns", "distinct_columns", "harmonise_chunked"]
