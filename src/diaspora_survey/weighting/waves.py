"""Harmonising the waves: weight every wave to the common targets, then pool.

Each wave is weighted on its own (``rake``, ``poststratify`` or ``calibrate``) to the
targets of the project — the common targets of ``targets.yaml``, or the wave's own,
restricted to the wave's frame where it covers only part of the population (e.g.
wave 2024-05 lives only in EU countries: its country targets are restricted to those
countries and renormalised; every such decision is reported).  Optional trimming
follows (bounds relative to the wave's mean weight, proportional redistribution,
repeated until stable).

Columns added: ``weight_base``, the step columns (``weight_raked`` …, ``weight_trimmed``),
``weight`` (final, within wave: each wave sums to its target total) and
``weight_pooled`` for analyses across waves:

* ``pooling="proportional"``: every wave keeps a share of the pooled total
  proportional to its number of respondents (pooled weights sum to the number of
  respondents; mean 1);
* ``pooling="equal"``: every wave gets the same share (each wave sums to N / #waves).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import WeightingError
from ._result import check_choice
from .targets import Targets, TargetsFile, parse_targets

METHODS = ("rake", "poststratify", "calibrate")
POOLING = ("proportional", "equal")


@dataclass
class WavesResult:
    """``data``: the input rows with the weight columns; ``results``: ``{wave:
    WeightingResult}``; ``diagnostics``: ``{wave: Diagnostics}``; ``decisions``: every
    explicit decision, prefixed by its wave; ``method``, ``pooling``, ``targets``
    (margin names)."""

    data: pd.DataFrame
    results: dict
    method: str
    pooling: str
    targets: list = field(default_factory=list)
    decisions: list = field(default_factory=list)

    @property
    def diagnostics(self) -> dict:
        return {w: r.diagnostics for w, r in self.results.items()}

    def summary(self) -> pd.DataFrame:
        """One row per wave: n, n_eff, kish_deff, cv, min, p1, median, p99, max,
        max/min, iterations, converged, worst margin gap (share scale)."""
        rows = []
        for w, r in self.results.items():
            d = r.diagnostics
            row = {"wave": w, **d.summary.to_dict(), "iterations": d.iterations, "converged": d.converged}
            m = d.margins
            row["max_abs_difference"] = float(m["difference"].abs().max()) if len(m) else np.nan
            rows.append(row)
        return pd.DataFrame(rows)


def weight_waves(data: pd.DataFrame, targets, *, wave: str = "wave", method: str = "rake",
                 base_weight=None, pooling: str = "proportional", trim_upper=None, trim_lower=None,
                 trim_relative: bool = True, max_iter: int = 100, tol: float = 1e-8,
                 unmatched: str = "keep_base", empty: str = "error", bounds=None,
                 calibration: str = "linear") -> WavesResult:
    """Weight each wave of ``data`` to its targets, then add pooled weights.

    targets : a :class:`TargetsFile` (common targets + per-wave settings), common
        targets (mapping or :class:`Targets`) for every wave, or ``{wave: targets}``.
    method : "rake" (default), "poststratify" (one joint table) or "calibrate"
        (``calibration`` = linear | raking | logit, with ``bounds``).
    base_weight : column of base weights (None: the column ``weight_base`` if the data
        have one — reported — else 1).
    trim_upper, trim_lower : optional trimming bounds, multiples of the wave's mean
        weight when ``trim_relative`` (default), else absolute.
    unmatched : rows whose category has no target (e.g. ``sex=other``, or missing
        country) — "keep_base" (default here: they keep their base weight, scaled with
        the wave; reported) or "error".
    empty : target categories with no respondents in a wave — "error" (default: the
        message names the category and the wave) or "drop" (dropped and renormalised,
        reported).
    """
    check_choice("method", method, METHODS)
    check_choice("pooling", pooling, POOLING)
    if wave not in data.columns:
        raise WeightingError(f"wave column {wave!r} not in the data", code="weighting.unknown_variable",
                             hint="pass wave= the column that identifies the waves")
    if data[wave].isna().any():
        raise WeightingError(f"{int(data[wave].isna().sum())} row(s) have no {wave}",
                             code="weighting.missing_values")
    decisions: list[str] = []
    if base_weight is None and "weight_base" in data.columns:
        base_weight = "weight_base"
    waves_col = data[wave]
    if isinstance(waves_col.dtype, pd.CategoricalDtype):
        order = [w for w in waves_col.cat.categories if (waves_col == w).any()]
    else:
        order = list(pd.unique(waves_col))
    n = len(data)
    w_cols: dict[str, np.ndarray] = {}
    results = {}
    margin_names: list[str] = []
    for wv in order:
        pos = np.flatnonzero((waves_col == wv).to_numpy())
        sub = data.iloc[pos]
        label = f"wave {wv}"
        t, notes = _targets_for(targets, str(wv), [str(x) for x in order])
        for m in t.margins:
            if m.name not in margin_names:
                margin_names.append(m.name)
        bw = None
        if isinstance(base_weight, str):
            col = pd.to_numeric(sub[base_weight], errors="coerce")
            if col.isna().all():
                bw = None
                if base_weight == "weight_base":
                    notes.append(f"{label}: no base weights in column weight_base; equal base weights used")
            else:
                bw = base_weight
                if base_weight == "weight_base":
                    notes.append(f"{label}: base weights from column weight_base")
        elif base_weight is not None:
            bw = np.asarray(base_weight)[pos]
        from . import calibrate, poststratify, rake

        if method == "rake":
            r = rake(sub, t, bw, tol=tol, max_iter=max_iter, bounds=bounds, unmatched=unmatched,
                     empty=empty, label=label)
        elif method == "poststratify":
            r = poststratify(sub, t, bw, unmatched=unmatched, label=label)
        else:
            if unmatched != "error":
                notes.append(f"{label}: calibration cannot keep unmatched rows at their base weight; "
                             "unmatched rows are an error")
            r = calibrate(sub, t.to_dict(), bw, method=calibration, bounds=bounds, tol=tol,
                          max_iter=max_iter, label=label)
        if trim_upper is not None or trim_lower is not None:
            r = r.trim(lower=trim_lower, upper=trim_upper, relative=trim_relative)
        r.diagnostics.decisions[:0] = notes
        results[str(wv)] = r
        decisions += [d if d.startswith("wave") else f"{label}: {d}" for d in r.diagnostics.decisions]
        for name, s in list(r.steps.items()) + [("weight", r.weights)]:
            arr = w_cols.setdefault(name, np.full(n, np.nan))
            arr[pos] = s.to_numpy()
    final = w_cols["weight"]
    pooled = np.empty(n)
    n_waves = len(order)
    for wv in order:
        m = (waves_col == wv).to_numpy()
        share = m.sum() if pooling == "proportional" else n / n_waves
        pooled[m] = final[m] * (share / final[m].sum())
    decisions.append(f"pooled weights: {pooling} — "
                     + ("each wave's share of the pooled total equals its share of respondents"
                        if pooling == "proportional" else "every wave has the same share of the pooled total")
                     + "; pooled weights sum to the number of respondents")
    out = data.drop(columns=[c for c in w_cols if c in data.columns] + (
        ["weight_pooled"] if "weight_pooled" in data.columns else []))
    add = pd.DataFrame({**w_cols, "weight_pooled": pooled}, index=data.index)
    first = [c for c in add.columns if c.startswith("weight_") and c != "weight_pooled"]
    add = add[first + ["weight", "weight_pooled"]]
    return WavesResult(pd.concat([out, add], axis=1), results, method, pooling, margin_names, decisions)


def _targets_for(targets, wave: str, waves: list[str]) -> tuple[Targets, list[str]]:
    """Targets of one wave: a TargetsFile, ``{wave: targets}`` (keys are exactly wave
    ids) or common targets."""
    if isinstance(targets, TargetsFile):
        return targets.for_wave(wave)
    if isinstance(targets, dict) and targets and all(str(k) in waves for k in targets):
        spec = {str(k): v for k, v in targets.items()}
        if wave not in spec:
            raise WeightingError(f"no targets for wave {wave}", code="weighting.bad_targets",
                                 hint="give targets for every wave, or common targets")
        return parse_targets(spec[wave], source=f"targets of wave {wave}"), []
    return parse_targets(targets), []


def weight_project(project, data: pd.DataFrame | None = None, *, targets=None) -> WavesResult:
    """Weight the waves of a :class:`~diaspora_survey.project.Project` with the options of
    its ``[weighting]`` section (targets file, method, pooling, trim_upper/trim_lower
    relative to the mean weight, max_iter, tolerance).  ``targets`` (a path or a
    :class:`TargetsFile`) overrides the project's targets file."""
    from .targets import load_targets, targets_from_project

    tf, opts = targets_from_project(project)
    if targets is not None:
        tf = targets if isinstance(targets, TargetsFile) else load_targets(targets)
    if tf is None:
        raise WeightingError("the project has no weighting targets", code="weighting.no_targets",
                             where="diaspora-survey.toml [weighting]",
                             hint="set targets = \"codebooks/targets.yaml\" in [weighting] or pass --targets")
    if data is None:
        data = project.harmonised()
    res = weight_waves(data, tf, method=opts.get("method", "rake"), pooling=opts.get("pooling", "proportional"),
                       trim_upper=opts.get("trim_upper"), trim_lower=opts.get("trim_lower"),
                       trim_relative=bool(opts.get("trim_relative", True)),
                       max_iter=int(opts.get("max_iter", 100)), tol=float(opts.get("tolerance", 1e-8)),
                       unmatched=opts.get("unmatched", "keep_base"), empty=opts.get("empty", "error"))
    if tf.illustrative:
        res.decisions.insert(0, f"targets are ILLUSTRATIVE ({tf.path}): not census figures")
    return res
