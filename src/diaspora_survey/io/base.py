"""The raw-wave model shared by all importers (contract: ../shared/DESIGN.md).

A :class:`RawWave` holds the file's raw codes (never recoded, user-missing codes kept as
values), per-variable metadata and provenance. Harmonisation is the only step that turns
codes into categories and missing codes into NA.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class VariableMeta:
    """Metadata of one raw variable.

    ``value_labels`` maps raw code → label (numeric codes as int where integral);
    ``missing_values`` lists discrete user-missing codes and ``missing_ranges`` (lo, hi)
    inclusive ranges, as declared in the file; ``missing_kinds`` classifies known missing
    codes as ``dont_know``, ``refused``, ``not_applicable``, ``no_answer`` or ``missing``.
    ``measure`` is ``nominal``, ``ordinal``, ``scale`` or ``unknown``; ``type`` is the
    storage type (``numeric``, ``string``, ``date``, ``datetime``, ``time``) and ``format`` the
    original format string (e.g. ``F8.2``, ``A20``) where the file has one; ``label_set``
    names the file's value-label set the labels come from (several variables may share one).
    """

    name: str
    label: str | None = None
    value_labels: dict[Any, str] = field(default_factory=dict)
    missing_values: list[Any] = field(default_factory=list)
    missing_ranges: list[tuple[Any, Any]] = field(default_factory=list)
    missing_kinds: dict[Any, str] = field(default_factory=dict)
    measure: str = "unknown"
    type: str = "numeric"
    format: str | None = None
    label_set: str | None = None   # name of the shared value-label set (SPSS/Stata), if any

    def is_user_missing(self, values: pd.Series) -> pd.Series:
        """Boolean mask of values that are declared user-missing for this variable."""
        mask = values.isin(self.missing_values) if self.missing_values else pd.Series(False, index=values.index)
        for lo, hi in self.missing_ranges:
            num = pd.to_numeric(values, errors="coerce")
            mask |= (num >= lo) & (num <= hi)
        return mask.fillna(False).astype(bool)


@dataclass
class SourceInfo:
    """Provenance of a wave: where it came from and how it was read."""

    path: str
    format: str            # sav, zsav, por, dta, csv, xlsx
    encoding: str | None
    sha256: str
    n_rows: int
    n_columns: int
    notes: list[str] = field(default_factory=list)   # what was detected or decided (e.g. separator)
    file_label: str | None = None

    @property
    def rows(self) -> int:
        return self.n_rows

    @property
    def columns(self) -> int:
        return self.n_columns


@dataclass
class RawWave:
    """A survey wave as read: raw codes, metadata per column, provenance, warnings."""

    data: pd.DataFrame
    meta: dict[str, VariableMeta]
    source: SourceInfo
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # short, for notebooks
        return (f"RawWave({self.source.path!r}, format={self.source.format}, "
                f"rows={self.source.n_rows}, columns={self.source.n_columns})")
