"""Age structure helpers: cut the published age bands to the survey's frame and bands.

Published age tables come in bands (RosBRiS: 5-year bands 0-4 ... 80-84, 85+) that do not
match the sample frame (e.g. 18+) or the analysis bands (18-24, 25-29, ... 65+). Ages are
in completed years. Inside a source band the population is taken as spread uniformly over
the single years of age (so ages 18-19 are 2/5 of the 15-19 band, as in the reference
notes' own derived 18+ figures), and an open top band ``85+`` as uniform over 85-94
(exact-age mean 90, the convention of the reference notes). Every split is reported so
that the comparison output can state it.
"""
from __future__ import annotations

import math

from ...errors import ReferenceDataError
from .model import ReferenceTable, format_age_band, parse_age_band

OPEN_WIDTH = 10  # an open band "85+" counts as 85..94 (uniform; exact-age mean 90)


def _bands(table: ReferenceTable, sex: str = "total", category_is_age: bool = True):
    """[(lo, hi_inclusive, value)] sorted by age; open band closed at lo + OPEN_WIDTH - 1."""
    rows = table.select(sex=sex, age=None)
    if not rows:
        raise ReferenceDataError(f"table {table.id!r} has no rows for sex {sex!r}",
                                 code="reference.no_rows", where=table.origin or table.id,
                                 hint="available: " + ", ".join(table.sexes))
    out = []
    for r in rows:
        lo, hi = parse_age_band(r.category if category_is_age else r.age)
        out.append((lo, (lo + OPEN_WIDTH - 1) if hi is None else hi, r.value, hi is None))
    out.sort()
    for (a, b, _, _), (c, _, _, _) in zip(out, out[1:]):
        if c != b + 1:
            raise ReferenceDataError(f"age bands of table {table.id!r} overlap or leave a gap "
                                     f"({b} then {c})", code="reference.age_bands",
                                     where=table.origin or table.id,
                                     hint="age bands must be contiguous, e.g. 15-19, 20-24, ... 85+")
    return out


def coverage(table: ReferenceTable) -> tuple[int, int | None]:
    """(youngest, oldest or None if open) age covered by an age_distribution table."""
    b = _bands(table)
    return b[0][0], (None if b[-1][3] else b[-1][1])


def _clipped(table: ReferenceTable, lo: int, hi: int | None, sex: str):
    """The table's age bands cut to ages lo..hi (inclusive; hi None = no upper limit):
    ``(x0, x1, mass, frac, (a, b, is_open))`` per band that overlaps, single years of age
    uniform within a band (mass = frac × the band's value)."""
    hi_ = math.inf if hi is None else hi
    for a, b, v, is_open in _bands(table, sex):
        x0, x1 = max(a, lo), min(b, hi_)
        if x1 >= x0:
            frac = (x1 - x0 + 1) / (b - a + 1)
            yield x0, x1, frac * v, frac, (a, b, is_open)


def band_mass(table: ReferenceTable, lo: int, hi: int | None, sex: str = "total"):
    """Population (in the table's unit) aged lo..hi (inclusive; hi None = no upper limit),
    with the list of source bands that had to be split, e.g. ``['2/5 of 15-19']``."""
    total = 0.0
    splits = []
    for x0, x1, mass, frac, (a, b, is_open) in _clipped(table, lo, hi, sex):
        if frac < 1 - 1e-12:
            if is_open:
                splits.append(f"{x1 - x0 + 1}/{OPEN_WIDTH} of {a}+ (taken as {a}-{b})")
            else:
                splits.append(f"{x1 - x0 + 1}/{b - a + 1} of {a}-{b}")
        total += mass
    return total, splits


def overlap_fraction(lo: int, hi: int | None, min_age: int, max_age: int | None) -> float:
    """Fraction of the age band lo..hi (completed years; hi None = open, taken as
    lo..lo+OPEN_WIDTH-1) that lies inside the frame min_age..max_age, single years of age
    uniform within the band: |[lo,hi] ∩ [min_age,max_age]| / (hi - lo + 1)."""
    b = lo + OPEN_WIDTH - 1 if hi is None else hi
    x0, x1 = max(lo, min_age), min(b, math.inf if max_age is None else max_age)
    return 0.0 if x1 < x0 else (x1 - x0 + 1) / (b - lo + 1)


def check_frame(table: ReferenceTable, min_age: int, max_age: int | None) -> None:
    lo, hi = coverage(table)
    if min_age < lo or (hi is not None and (max_age is None or max_age > hi)):
        raise ReferenceDataError(
            f"table {table.id!r} covers ages {format_age_band(lo, hi)}, not the frame "
            f"{format_age_band(min_age, max_age)}", code="reference.frame",
            where=table.origin or table.id, hint="restrict the frame (min_age/max_age) or use a "
                                                 "table that covers it")


def frame_shares(table: ReferenceTable, bands, min_age: int, max_age: int | None,
                 sex: str = "total"):
    """Shares of the analysis ``bands`` [(lo, hi|None)] within the frame min_age..max_age.

    Bands are clipped to the frame; returns (shares list summing to 1, masses, notes)."""
    check_frame(table, min_age, max_age)
    masses, notes = [], []
    for lo, hi in bands:
        l2 = max(lo, min_age)
        h2 = hi if max_age is None else (max_age if hi is None else min(hi, max_age))
        if h2 is not None and h2 < l2:
            masses.append(0.0)
            continue
        m, sp = band_mass(table, l2, h2, sex)
        masses.append(m)
        if sp:
            notes.append(f"{format_age_band(l2, h2)} includes " + ", ".join(sp))
    total, _ = band_mass(table, min_age, max_age, sex)
    shares = [m / total for m in masses]
    return shares, masses, notes


def mean_age(table: ReferenceTable, min_age: int, max_age: int | None, sex: str = "total") -> float:
    """Mean age in completed years within the frame: single years uniform inside each
    source band, so a band a..b contributes its mass at (a+b)/2 (85+ -> 89.5, i.e. exact
    age 90). Equals the exact-age mean of the reference notes minus 0.5."""
    check_frame(table, min_age, max_age)
    num = den = 0.0
    for x0, x1, mass, _, _ in _clipped(table, min_age, max_age, sex):
        num += mass * (x0 + x1) / 2
        den += mass
    return num / den


def median_age(table: ReferenceTable, min_age: int, max_age: int | None,
               sex: str = "total") -> tuple[float, float]:
    """(median in completed years, median in exact years). Exact age is interpolated
    linearly inside each band (age a..b spans exact ages [a, b+1)); the completed-years
    median is the age of the median person, floor(exact median), which is what the
    sample's ``quantile(qrule='math')`` estimates on completed years."""
    check_frame(table, min_age, max_age)
    segs = [(x0, x1 + 1, mass) for x0, x1, mass, _, _ in _clipped(table, min_age, max_age, sex)]
    total = sum(s[2] for s in segs)
    half, cum = total / 2, 0.0
    for x0, x1, m in segs:
        if cum + m >= half:
            exact = x0 + (half - cum) / m * (x1 - x0)
            return float(math.floor(exact)), float(exact)
        cum += m
    return float(segs[-1][1] - 1), float(segs[-1][1])  # pragma: no cover
