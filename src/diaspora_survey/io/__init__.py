"""Importers: ``read_wave(path, **options)`` → :class:`RawWave` for SPSS, Stata, CSV and Excel files.

See :func:`read_wave`. Formats are recognised by content (:mod:`.detect`); SPSS and Stata
go through pyreadstat (:mod:`.spss`), delimited text through :mod:`.csv`, workbooks
through :mod:`.excel`. Encoding names are normalised by :mod:`.encoding`.
"""
from __future__ import annotations

from .base import RawWave, SourceInfo, VariableMeta
from .reader import read_wave

__all__ = ["read_wave", "RawWave", "VariableMeta", "SourceInfo"]
