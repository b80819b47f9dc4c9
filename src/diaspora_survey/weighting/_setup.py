"""Validation of targets against the data, before any iteration (private).

Turns (data, targets, base weights) into a cell table with, for every margin, the
target category of each cell and the target totals — or raises a WeightingError for
every problem listed in issue 5: categories in the data missing from the targets
(unless ``unmatched="keep_base"``), target categories with no respondents (unless
``empty="drop"``), zero targets for categories that have respondents, and the
explicit decisions taken are recorded for the diagnostics.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import WeightingError
from ._cells import CellTable, build_cells, describe_cell, margin_index
from .targets import Targets, parse_targets

UNMATCHED = ("error", "keep_base")
EMPTY = ("error", "drop")


@dataclass
class Setup:
    targets: Targets
    cells: CellTable
    mis: list              # per margin: (C,) target index of each cell (-1 = not fitted)
    fit: np.ndarray        # (C,) bool: cells that are fitted (others keep base weights)
    tgt: list              # per margin: (K_m,) target totals (weight units)
    total: float           # the fitted total
    decisions: list = field(default_factory=list)
    unmatched_g: float = 1.0   # factor of the rows kept out of the fit (unmatched='keep_base')


def _in(label: str | None) -> str:
    return f" in {label}" if label else ""


def prepare(df: pd.DataFrame, targets, w0: np.ndarray, *, kind: str = "auto",
            unmatched: str = "error", empty: str = "error", label: str | None = None,
            where: str | None = None, counts: np.ndarray | None = None) -> Setup:
    t = parse_targets(targets, kind=kind)
    decisions = list(t.decisions)
    cells = build_cells(df, t.variables, w0, where=where, counts=counts)
    C = cells.n_cells

    def indices(tt: Targets):
        return [margin_index(cells, m) for m in tt.margins]

    mis = indices(t)
    # ---- data categories that have no target (including missing values)
    fit = np.ones(C, dtype=bool)
    for m, mi in zip(t.margins, mis):
        fit &= mi >= 0
    if not fit.all():
        problems = []
        for m, mi in zip(t.margins, mis):
            badc = np.flatnonzero(mi < 0)
            if badc.size == 0:
                continue
            agg: dict[str, int] = {}
            for c in badc:
                key = describe_cell(cells, int(c), m.variables)
                agg[key] = agg.get(key, 0) + int(cells.count[c])
            for key, k in sorted(agg.items(), key=lambda kv: -kv[1]):
                if "<missing>" in key.split(":"):
                    miss = [v for v, p in zip(m.variables, key.split(":")) if p == "<missing>"]
                    what = (f"{'/'.join(miss)} is missing" if len(m.variables) == 1 else
                            f"{m.name}={key} ({'/'.join(miss)} missing)")
                else:
                    what = f"{m.name}={key} is in the data but not in the targets"
                problems.append(f"{what} ({k} respondent{'s' if k != 1 else ''})")
        n_bad = int(cells.count[~fit].sum())
        if not fit.any():   # e.g. custom age bands against targets written for the default bands
            shown = "; ".join(problems[:4]) + (f"; … ({len(problems) - 4} more)" if len(problems) > 4 else "")
            raise WeightingError(
                f"no respondent{_in(label)} matches the targets' categories: {shown}",
                code="weighting.unmatched_category", where=where,
                hint="the targets' categories must be the data's (custom [harmonise] age_bands need "
                     "targets with the same bands)")
        if unmatched == "error":
            shown = "; ".join(problems[:6]) + (f"; … ({len(problems) - 6} more)" if len(problems) > 6 else "")
            raise WeightingError(
                f"{n_bad} respondent(s){_in(label)} cannot be matched to the targets: {shown}",
                code="weighting.unmatched_category", where=where,
                hint="add the categories to the targets, recode or merge them in the codebook, "
                     "or pass unmatched='keep_base' to keep those respondents at their base weight")
        share = float(cells.wsum[~fit].sum() / cells.wsum.sum())
        decisions.append(
            f"{n_bad} respondent(s){_in(label)} ({share:.1%} of the base weight) kept their base "
            f"weight (unmatched='keep_base'): " + "; ".join(problems[:6]))
    # ---- target categories with no respondents / zero targets with respondents
    for it in range(2):
        changed = False
        new_margins = []
        for m, mi in zip(t.margins, mis):
            sel = fit & (mi >= 0)
            present = np.bincount(mi[sel], weights=cells.count[sel], minlength=len(m.categories)) > 0
            vals = np.asarray(m.values)
            zero_t = np.flatnonzero(present & (vals == 0))
            if zero_t.size:
                lab = m.label(int(zero_t[0]))
                raise WeightingError(
                    f"{lab} has respondents{_in(label)} but a target of 0", where=where,
                    code="weighting.zero_target",
                    hint="a ratio adjustment cannot reach 0: drop those respondents, merge the "
                         "category, or give it a positive target")
            empties = np.flatnonzero(~present & (vals > 0))
            if empties.size == 0 or empty == "keep":
                new_margins.append(m)
                continue
            labs = [m.label(int(j)) for j in empties]
            if empty == "error":
                more = f" (and {len(labs) - 1} more: {', '.join(labs[1:6])})" if len(labs) > 1 else ""
                among = "" if fit.all() else (f"; counted among the {int(cells.count[fit].sum()):,} "
                                              "respondents matched to every margin")
                raise WeightingError(
                    f"{labs[0]} has no respondents{_in(label)}: drop it or merge it{more}{among}",
                    code="weighting.empty_category", where=where,
                    hint="remove the category from the targets (or restrict the wave's targets to "
                         "its frame), merge it with a neighbour, or pass empty='drop' to drop it "
                         "and renormalise the margin (reported)")
            new_margins.append(m.drop(empties.tolist()))
            decisions.append(f"dropped target categor{'ies' if len(labs) > 1 else 'y'} with no "
                             f"respondents{_in(label)} and renormalised {m.name}: {', '.join(labs)}")
            changed = True
        # zero-valued categories without respondents are harmless: leave them
        if not changed:
            break
        t = Targets(tuple(new_margins), t.decisions)
        mis = indices(t)
    # ---- totals
    fitted_base = float(cells.wsum[fit].sum())
    counts_total = t.count_total
    if counts_total is not None:
        total = counts_total
        if any(m.kind == "shares" for m in t.margins):
            decisions.append(f"shares scaled to the population total {total:,.6g} of the count margins")
    else:
        total = fitted_base
    tgt = [np.asarray(m.values, dtype=float) * (total / m.total) if m.kind == "shares"
           else np.asarray(m.values, dtype=float) for m in t.margins]
    unmatched_g = 1.0
    if not fit.all() and counts_total is not None:
        # counts describe the matched population: the rows kept out of the fit are scaled
        # like the matched ones on average (else they would stay on the sample scale)
        unmatched_g = total / fitted_base
        decisions.append(f"count targets: the respondents kept at their base weight were scaled by "
                         f"{unmatched_g:.6g} (population total / base weight of the matched rows), "
                         f"so that they stay on the population scale")
    return Setup(t, cells, mis, fit, tgt, total, decisions, unmatched_g)


def margin_rows(setup: Setup, t_after: np.ndarray):
    """Columns for diagnostics.margin_table from the fitted cell weights ``t_after``."""
    names, cats, n, base, after, target = [], [], [], [], [], []
    cells, fit = setup.cells, setup.fit
    for m, mi, T in zip(setup.targets.margins, setup.mis, setup.tgt):
        sel = fit & (mi >= 0)
        K = len(m.categories)
        n.append(np.bincount(mi[sel], weights=cells.count[sel], minlength=K))
        base.append(np.bincount(mi[sel], weights=cells.wsum[sel], minlength=K))
        after.append(np.bincount(mi[sel], weights=t_after[sel], minlength=K))
        target.append(T)
        names += [m.name] * K
        cats += [":".join(c) for c in m.categories]
    return names, cats, np.concatenate(n), np.concatenate(base), np.concatenate(after), np.concatenate(target)


def row_margin_fn(setup: Setup):
    """A function: row weights -> margin table (for steps after the fit, e.g. trimming)."""
    from .diagnostics import margin_table

    C = setup.cells.n_cells

    def fn(w):
        row_cell = setup.cells.row_cells()
        return margin_table(*margin_rows(setup, np.bincount(row_cell, weights=w, minlength=C)))
    return fn
