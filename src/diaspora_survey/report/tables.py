"""Report tables: a small table spec, disclosure control and number formatting.

Every table in every output format passes through :func:`disclose` exactly once, before
any renderer sees it (see :func:`diaspora_survey.report.disclose_report`). This is the one
place where small cells are suppressed, so the PDF, xlsx, csv, markdown and LaTeX outputs
cannot disagree about what is shown.

Rules (documented in the report's footnotes and methods page):

* **Primary suppression.** A row whose unweighted count (``n_col``) is below
  ``min_cell_size`` (default 10) has every statistic blanked (shown as "—"), including
  the count itself.
* **Secondary suppression.** Within a *complement group* (``complement_by``: rows that
  are the categories of one distribution, e.g. the age groups of one wave), a single
  suppressed category could be recovered as 100 % minus the others. When exactly one
  row of such a group is suppressed, the next smallest row of the group is suppressed
  too. ``complement_by=[]`` makes the whole table one group (e.g. one distribution).
* **Low precision.** A shown estimate whose coefficient of variation (``cv_col``) exceeds
  ``cv_max`` (default 0.30) is flagged ``low_precision`` and marked "†".

The flags ``suppressed`` and ``low_precision`` are added to the tidy frame, as
DESIGN.md asks, so programmatic users see the same decision as readers of the PDF.
Respondent-level data is refused outright: a table must describe aggregates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import ReportError

SUPPRESSED = "—"
LOW_PRECISION_MARK = "†"
DEFAULT_MIN_CELL_SIZE = 10
DEFAULT_CV_MAX = 0.30

#: Columns that only respondent-level data has; a report table carrying them is refused.
RESPONDENT_LEVEL_COLUMNS = frozenset({"resp_id", "respondent_id", "weight", "weight_pooled"})

_KINDS = frozenset({"text", "int", "num", "pct", "pvalue", "ci", "pct_ci", "est_ci"})


@dataclass(frozen=True)
class Column:
    """One displayed column.

    ``kind``: ``text`` (as is), ``int`` (thousands separator), ``num`` (value × ``scale``,
    ``digits`` decimals), ``pct`` (a proportion shown as percent, ``digits`` decimals), ``pvalue`` ("<0.001"
    or 3 decimals), ``ci`` / ``pct_ci`` (two keys ``low``/``high`` → "a – b").
    ``stat`` columns are blanked by suppression; ``text`` columns (labels) never are.
    """

    key: str
    label: str
    kind: str = "num"
    digits: int = 1
    scale: float = 1.0
    high: str | None = None          # upper-bound key for ci / est_ci columns
    low: str | None = None           # lower-bound key for est_ci columns
    n_key: str | None = None         # count governing this column (default: table's n_col)
    stat: bool | None = None         # default: every non-text column is a statistic
    mark_low_precision: bool = False  # put "†" after this column's value when flagged
    mono: bool = False               # monospaced and never wrapped (hashes, codes)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ReportError(f"unknown column kind {self.kind!r}", code="report.column_kind",
                              hint=f"use one of {sorted(_KINDS)}")
        if self.kind in ("ci", "pct_ci") and not self.high:
            raise ReportError(f"column {self.key!r}: a CI column needs high=<upper-bound column>",
                              code="report.column_ci")
        if self.kind == "est_ci" and not (self.low and self.high):
            raise ReportError(f"column {self.key!r}: an estimate-with-CI column needs low= and "
                              "high=", code="report.column_ci")

    @property
    def is_stat(self) -> bool:
        return self.kind != "text" if self.stat is None else self.stat

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.key, self.low, self.high) if k)

    @property
    def numeric(self) -> bool:
        return self.kind != "text"


@dataclass
class ReportTable:
    """A table of aggregates plus everything needed to print it honestly.

    ``data`` is a tidy frame (one row per displayed row). ``n_col`` names the unweighted
    respondent count used for disclosure control; a table without counts (e.g. weighting
    targets, file hashes) must say why in ``no_disclosure_reason``. ``notes`` are source
    notes printed under the table in every format.
    """

    id: str
    title: str
    data: Any                      # pandas.DataFrame
    columns: list[Column]
    notes: list[str] = field(default_factory=list)
    n_col: str | None = "n"
    cv_col: str | None = "cv"
    complement_by: list[str] | None = None
    no_disclosure_reason: str | None = None
    group_col: str | Sequence[str] | None = None   # rows are visually grouped by this text
    #   column (or these, outermost first): the PDF prints a label only where it changes

    def __post_init__(self) -> None:
        bad = RESPONDENT_LEVEL_COLUMNS.intersection(map(str, self.data.columns))
        if bad:
            raise ReportError(
                f"table {self.id!r} carries respondent-level columns {sorted(bad)}",
                code="report.respondent_level", where=self.id,
                hint="report tables hold aggregates only; estimate first, then tabulate")
        if self.n_col is None and not self.no_disclosure_reason:
            raise ReportError(
                f"table {self.id!r} has no unweighted count column for disclosure control",
                code="report.no_counts", where=self.id,
                hint="give n_col, or no_disclosure_reason if the table holds no respondent counts")
        if self.n_col is not None and self.n_col not in self.data.columns:
            raise ReportError(f"table {self.id!r}: count column {self.n_col!r} is missing",
                              code="report.no_counts", where=self.id)
        missing = [k for c in self.columns for k in c.keys if k not in self.data.columns]
        if missing:
            raise ReportError(f"table {self.id!r}: columns {missing} are not in the data",
                              code="report.missing_column", where=self.id)


@dataclass
class DisclosedTable:
    """A table after disclosure control: what every renderer prints.

    ``values``: the spec's columns with suppressed statistics set to NA, plus the flags
    ``suppressed``, ``suppression`` ("primary"/"secondary"/"") and ``low_precision``.
    ``cells``: the displayed strings (header excluded), row-major. ``footnotes`` explain
    every "—" and "†" that appears.
    """

    spec: ReportTable
    values: Any                    # pandas.DataFrame
    cells: list[list[str]]
    footnotes: list[str]
    min_cell_size: int
    cv_max: float

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def header(self) -> list[str]:
        return [c.label for c in self.spec.columns]

    @property
    def numeric_columns(self) -> list[bool]:
        return [c.numeric for c in self.spec.columns]

    @property
    def notes(self) -> list[str]:
        """Footnotes (suppression, precision) then source notes."""
        return self.footnotes + list(self.spec.notes)

    @property
    def n_suppressed(self) -> int:
        return int(self.values["suppressed"].sum()) if len(self.values) else 0


# ---------------------------------------------------------------------------------------
# flags

def _complement(n, primary, headline, min_cell_size: int) -> list[int]:
    """Complementary cells of one distribution whose total is known (positions).

    Suppressed non-empty cells must be at least two and hold at least ``min_cell_size``
    respondents together (else "total − visible cells" reveals one, or a small group);
    cells are added smallest first, headline cells last. Empty cells protect nothing.
    """
    import numpy as np

    n = np.asarray(n, dtype="float64")
    sup = np.asarray(primary, dtype=bool).copy()
    head = np.asarray(headline, dtype=bool)
    out: list[int] = []
    while True:
        hidden = sup & (n > 0)
        if not hidden.any() or (hidden.sum() >= 2 and n[hidden].sum() >= min_cell_size):
            return out
        cand = np.flatnonzero(~sup & (n > 0) & np.isfinite(n))
        if not len(cand):
            return out
        j = int(min(cand, key=lambda i: (bool(head[i]), n[i], i)))
        sup[j] = True
        out.append(j)


def flag_cells(df, *, n_col: str | None = "n", cv_col: str | None = "cv",
               min_cell_size: int = DEFAULT_MIN_CELL_SIZE, cv_max: float = DEFAULT_CV_MAX,
               complement_by: Sequence[str] | None = None, secondary=None):
    """Return a copy of ``df`` with ``suppressed``, ``suppression`` and ``low_precision``.

    Works on any tidy estimate frame (``estimate, se, …, n, cv``). Rows with a missing
    count are not suppressed (they carry no respondent count, e.g. population figures).
    ``secondary``: complementary suppression decided elsewhere (a bool per row, from the
    report-wide rule of :mod:`.disclosure`); then ``complement_by`` is not applied.
    """
    import numpy as np
    import pandas as pd

    if min_cell_size < 1:
        raise ReportError(f"min_cell_size must be at least 1, got {min_cell_size}",
                          code="report.min_cell_size", hint="set [report] min_cell_size = 10")
    out = df.copy()
    if n_col is not None and n_col in out.columns:
        n = pd.to_numeric(out[n_col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        primary = np.nan_to_num(n, nan=np.inf) < min_cell_size
        if "_public" in out.columns:      # item nonresponse: see disclosure.PUBLIC
            primary &= ~out["_public"].astype(bool).to_numpy()
    else:
        n = np.full(len(out), np.nan)
        primary = np.zeros(len(out), dtype=bool)
    headline = out["_headline"].astype(bool).to_numpy() if "_headline" in out.columns \
        else np.zeros(len(out), dtype=bool)
    if secondary is not None:
        secondary = np.asarray(secondary, dtype=bool) & ~primary
        complement_by = None
    else:
        secondary = np.zeros(len(out), dtype=bool)
    if complement_by is not None and primary.any():     # [] = the whole table is one group
        keys = [c for c in complement_by if c in out.columns]
        pos = pd.RangeIndex(len(out))
        frame = pd.DataFrame({"n": np.nan_to_num(n, nan=np.inf), "p": primary, "pos": pos})
        for k in keys:
            frame[k] = out[k].astype("object").to_numpy()
        grouped = frame.groupby(keys, dropna=False, sort=False) if keys else [(None, frame)]
        for _, g in grouped:
            for j in _complement(g["n"].to_numpy(), g["p"].to_numpy(),
                                 headline[g["pos"].to_numpy()], min_cell_size):
                secondary[int(g["pos"].iloc[j])] = True
    suppressed = primary | secondary
    out["suppressed"] = suppressed
    out["suppression"] = np.where(primary, "primary", np.where(secondary, "secondary", ""))
    if cv_col is not None and cv_col in out.columns:
        cv = pd.to_numeric(out[cv_col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        low = (~suppressed) & (np.abs(np.nan_to_num(cv, nan=0.0)) > cv_max)
    else:
        low = np.zeros(len(out), dtype=bool)
    out["low_precision"] = low
    return out


# ---------------------------------------------------------------------------------------
# formatting

def _is_missing(x) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):   # array-likes are not missing scalars
        return False


def format_value(value, col: Column) -> str:
    """Format one value for display; missing values give an empty string."""
    if _is_missing(value):
        return ""
    k = col.kind
    if k == "text":
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if k == "int":
        return f"{round(v):,d}"
    if k == "pvalue":
        return "<0.001" if v < 0.001 else f"{v:.3f}"
    v *= 100.0 if k in ("pct", "pct_ci") else col.scale
    s = f"{v:.{col.digits}f}"
    if s.startswith("-") and float(s) == 0:
        s = s[1:]          # no "-0.0"
    return s.replace("-", "−")


def _format_cell(row, col: Column) -> str:
    if col.kind in ("ci", "pct_ci"):
        lo, hi = row[col.key], row[col.high]
        if _is_missing(lo) or _is_missing(hi):
            return ""
        return f"{format_value(lo, col)} – {format_value(hi, col)}"
    if col.kind == "est_ci":
        est = format_value(row[col.key], col)
        lo, hi = row[col.low], row[col.high]
        if not est or _is_missing(lo) or _is_missing(hi):
            return est
        return f"{est} ({format_value(lo, col)} to {format_value(hi, col)})"
    return format_value(row[col.key], col)


def disclose(table: ReportTable, *, min_cell_size: int = DEFAULT_MIN_CELL_SIZE,
             cv_max: float = DEFAULT_CV_MAX, secondary=None) -> DisclosedTable:
    """Apply disclosure control to ``table`` and format its cells (see module docstring).

    Each statistic column is governed by one count: its ``n_key`` or the table's
    ``n_col`` (wide tables, e.g. one ``n``/``%`` pair per wave, give each pair its own
    count). Suppression is decided per count, so a small cell in one wave does not hide
    the other waves; ``suppressed`` on the row means "some cell of this row is hidden".
    ``secondary``: ``{count column: bool per row}`` from the report-wide rule
    (:func:`.disclosure.protect`), replacing the table's own complement rule.
    """
    import numpy as np

    keys: list[str] = []
    for c in table.columns:
        keys.extend(k for k in c.keys if k not in keys)
    for c in table.columns:
        if c.n_key and c.n_key not in table.data.columns:
            raise ReportError(f"table {table.id!r}: count column {c.n_key!r} is missing",
                              code="report.no_counts", where=table.id)
    n_keys = list(dict.fromkeys([table.n_col] + [c.n_key for c in table.columns if c.n_key]))
    n_keys = [k for k in n_keys if k is not None]
    masks: dict[str | None, tuple] = {}
    base = table.data.reset_index(drop=True)
    for nk in n_keys or [None]:
        f = flag_cells(base, n_col=nk, cv_col=table.cv_col, min_cell_size=min_cell_size,
                       cv_max=cv_max, complement_by=table.complement_by,
                       secondary=None if secondary is None else
                       secondary.get(nk, np.zeros(len(base), dtype=bool)))
        masks[nk] = (f["suppression"].to_numpy(), f["low_precision"].to_numpy(dtype=bool))
    main = table.n_col if table.n_col in masks else next(iter(masks))
    extra = [k for k in n_keys if k not in keys]
    values = base[keys + extra].copy()
    reason = masks[main][0].copy()
    for nk, (r, _) in masks.items():
        reason = np.where(reason == "", r, reason)
    sup_any = reason != ""
    values["suppressed"] = sup_any
    values["suppression"] = reason
    values["low_precision"] = masks[main][1]

    def governing(c: Column):
        return c.n_key or main

    for c in table.columns:
        if not c.is_stat:
            continue
        m = masks[governing(c)][0] != ""
        if m.any():
            for k in c.keys:
                col = values[k]
                if col.dtype.kind in "iub":
                    col = col.astype("float64")
                values[k] = col.where(~m, np.nan)
    for nk in n_keys:          # the counts themselves are disclosive
        m = masks[nk][0] != ""
        if m.any():
            values[nk] = values[nk].astype("float64").where(~m, np.nan)
    values = values[keys + ["suppressed", "suppression", "low_precision"]]
    low = values["low_precision"].to_numpy(dtype=bool)
    records = base[keys].to_dict("records")
    cells: list[list[str]] = []
    cell_sup = {id(c): masks[governing(c)][0] != "" for c in table.columns}
    for i, row in enumerate(records):
        out_row = []
        for c in table.columns:
            if c.is_stat and cell_sup[id(c)][i]:
                out_row.append(SUPPRESSED)
                continue
            s = _format_cell(row, c)
            if low[i] and c.mark_low_precision and s:
                s += LOW_PRECISION_MARK
            out_row.append(s)
        cells.append(out_row)
    cell_reasons = np.concatenate([masks[nk][0] for nk in masks]) if masks else np.array([])

    footnotes: list[str] = []
    n_primary = int((cell_reasons == "primary").sum())
    n_secondary = int((cell_reasons == "secondary").sum())
    if n_primary:
        what = "cell" if n_primary == 1 else "cells"
        footnotes.append(
            f"{SUPPRESSED} Suppressed: {n_primary} {what} based on fewer than {min_cell_size} "
            f"unweighted respondents (disclosure control, minimum cell size {min_cell_size}).")
    if n_secondary:
        what = "cell" if n_secondary == 1 else "cells"
        footnotes.append(
            f"{SUPPRESSED} Also suppressed: {n_secondary} further {what}, so that a suppressed "
            "category cannot be derived from the others (secondary suppression).")
    if low.any() and any(c.mark_low_precision for c in table.columns):
        footnotes.append(
            f"{LOW_PRECISION_MARK} Low precision: coefficient of variation above "
            f"{cv_max:.0%}; interpret with caution.")
    return DisclosedTable(spec=table, values=values, cells=cells, footnotes=footnotes,
                          min_cell_size=min_cell_size, cv_max=cv_max)


def _rounded(value, col: Column):
    """The numeric value as displayed (percent scale, rounding) for spreadsheet formats."""
    if _is_missing(value):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if col.kind == "int":
        return int(round(v))
    if col.kind == "pvalue":
        return round(v, 4)
    v *= 100.0 if col.kind in ("pct", "pct_ci") else col.scale
    return round(v, col.digits)


def export_rows(t: DisclosedTable) -> tuple[list[str], list[list]]:
    """Header and rows for spreadsheet-like formats (xlsx, csv).

    Numbers stay numbers, rounded as displayed (percentages in percent); suppressed cells
    are the string "—"; CI columns are split into ``(low)``/``(high)``; a ``Low
    precision`` column carries "†" where the table marks it.
    """
    header: list[str] = []
    for c in t.spec.columns:
        if c.kind == "est_ci":
            header += [c.label.split(" (")[0], f"{c.label.split(' (')[0]} (CI low)",
                       f"{c.label.split(' (')[0]} (CI high)"]
        elif c.high:
            header += [f"{c.label} (low)", f"{c.label} (high)"]
        else:
            header.append(c.label)
    marks = any(c.mark_low_precision for c in t.spec.columns)
    if marks:
        header.append("Low precision")
    low = t.values["low_precision"].to_numpy(dtype=bool)
    rows = []
    for i, rec in enumerate(t.values.to_dict("records")):
        row: list = []
        for j, c in enumerate(t.spec.columns):
            for k in c.keys:
                if t.cells[i][j] == SUPPRESSED and c.is_stat:
                    row.append(SUPPRESSED)
                elif c.kind == "text":
                    row.append("" if _is_missing(rec[k]) else str(rec[k]))
                else:
                    row.append(_rounded(rec[k], c))
        if marks:
            row.append(LOW_PRECISION_MARK if low[i] else "")
        rows.append(row)
    return header, rows
