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
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import WeightingError
from ._result import check_choice
from .targets import Targets, TargetsFile, parse_targets

METHODS = ("rake", "poststratify", "calibrate", "none")
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
                 unmatched: str | None = None, empty: str | None = None, bounds=None,
                 calibration: str | None = None) -> WavesResult:
    """Weight each wave of ``data`` to its targets, then add pooled weights.

    targets : a :class:`TargetsFile` (common targets + per-wave settings), common
        targets (mapping or :class:`Targets`) for every wave, or ``{wave: targets}``.
        With ``method="calibrate"`` a mapping may also hold numeric totals
        (``{"age": 33.2e6, ...}``).
    method : "rake" (default), "poststratify" (one joint table), "calibrate"
        (``calibration`` = linear (default) | raking | logit) or "none" (the base weights
        are the final weights; targets, if any, only for the diagnostics' margin table;
        see :mod:`.design_weights`).
    bounds : (lo, hi) on the adjustment g = new / base weight: capped raking for
        "rake", the calibration bounds for "calibrate"; rejected for "poststratify".
    base_weight : column of base weights (None: the column ``weight_base`` if the data
        have one — reported — else 1).
    trim_upper, trim_lower : optional trimming bounds, multiples of the wave's mean
        weight when ``trim_relative`` (default), else absolute.
    max_iter, tol : iteration limit and tolerance of rake / calibrate (post-stratification
        does not iterate).
    unmatched : rows whose category has no target (e.g. ``sex=other``, or missing
        country) — "keep_base" (default for rake and poststratify: they keep their base
        weight, scaled with the wave; reported) or "error" (the only choice, and the
        default, for calibrate).
    empty : target categories with no respondents in a wave — "error" (default for rake
        and calibrate: the message names the category and the wave), "drop" (dropped
        and renormalised, reported) or, for poststratify, "collapse" (its default:
        merged with a neighbouring cell, reported).

    Every option is honoured or rejected: an option that does not apply to the method
    is an error.
    """
    check_choice("method", method, METHODS)
    check_choice("pooling", pooling, POOLING)
    if method == "none":
        bad = [k for k, v in (("bounds", bounds), ("calibration", calibration),
                              ("unmatched", unmatched), ("empty", empty)) if v is not None]
        if bad:
            raise WeightingError(f"{', '.join(bad)} do(es) not apply to method='none' (the base "
                                 "weights are used as they are)", code="weighting.bad_option",
                                 hint="remove the option, or choose rake / poststratify / calibrate")
    if bounds is not None and method == "poststratify":
        raise WeightingError("bounds= do not apply to post-stratification (it meets every cell "
                             "exactly)", code="weighting.bad_option",
                             hint="use method='rake' (capped raking) or 'calibrate', or trim_upper/"
                                  "trim_lower to limit the weights")
    if calibration is not None and method != "calibrate":
        raise WeightingError(f"calibration={calibration!r} applies only to method='calibrate' "
                             f"(method is {method!r})", code="weighting.bad_option")
    if method == "calibrate":
        from .calibration import METHODS as CAL_METHODS

        calibration = calibration or "linear"
        check_choice("calibration", calibration, CAL_METHODS)
        if unmatched == "keep_base":
            raise WeightingError("unmatched='keep_base' is not available with method='calibrate': "
                                 "calibration needs a total for every respondent's category",
                                 code="weighting.bad_option",
                                 hint="use method='rake', add the categories to the totals, or "
                                      "drop/recode those respondents")
        unmatched = unmatched or "error"
        empty = empty or "error"
        check_choice("empty", empty, ("error", "drop"))
    elif method == "none":
        pass
    elif method == "poststratify":
        unmatched = unmatched or "keep_base"
        empty = empty or "collapse"
        check_choice("empty", empty, ("collapse", "error", "drop"))
    else:
        unmatched = unmatched or "keep_base"
        empty = empty or "error"
        check_choice("empty", empty, ("error", "drop"))
    if method != "none":
        check_choice("unmatched", unmatched, ("error", "keep_base"))
    if wave not in data.columns:
        raise WeightingError(f"wave column {wave!r} not in the data", code="weighting.unknown_variable",
                             hint="pass wave= the column that identifies the waves")
    if data[wave].isna().any():
        raise WeightingError(f"{int(data[wave].isna().sum())} row(s) have no {wave}",
                             code="weighting.missing_values")
    decisions: list[str] = []
    if base_weight is None and "weight_base" in data.columns:
        base_weight = "weight_base"
    if isinstance(base_weight, str) and base_weight not in data.columns:
        raise WeightingError(f"base weight column {base_weight!r} not in the data",
                             code="weighting.unknown_variable",
                             hint="name an existing column, or leave base_weight unset for equal base weights")
    if isinstance(base_weight, str):
        raw_bw = data[base_weight]
        coerced = pd.to_numeric(raw_bw, errors="coerce") if not isinstance(raw_bw.dtype, pd.CategoricalDtype) \
            else pd.to_numeric(raw_bw.astype("object"), errors="coerce")
        bad = coerced.isna() & raw_bw.notna()
        if bad.any():   # e.g. base_weight = "sex": never silently replaced by equal weights
            raise WeightingError(f"base weight column {base_weight!r} is not numeric "
                                 f"({int(bad.sum()):,} non-numeric value(s))",
                                 code="weighting.bad_weights",
                                 hint="name a column of positive numbers, or leave base_weight unset")
    if len(data) == 0:
        raise WeightingError("no respondents to weight (the data have 0 rows)", code="weighting.empty",
                             hint="check the waves and the codebooks' eligibility rules")
    if base_weight is not None and not isinstance(base_weight, str) and len(base_weight) != len(data):
        raise WeightingError(f"base weights have {len(base_weight)} values for {len(data)} rows",
                             code="weighting.bad_weights")
    waves_col = data[wave]
    if isinstance(waves_col.dtype, pd.CategoricalDtype):
        order = [w for w in waves_col.cat.categories if (waves_col == w).any()]
    else:
        order = list(pd.unique(waves_col))
    check_target_waves(targets, order)
    n = len(data)
    w_cols: dict[str, np.ndarray] = {}
    results = {}
    margin_names: list[str] = []
    for wv in order:
        pos = np.flatnonzero((waves_col == wv).to_numpy())
        sub = data.iloc[pos]
        label = f"wave {wv}"
        t, numeric, notes = _targets_for(targets, str(wv), [str(x) for x in order], method)
        for m in t.margins:
            if m.name not in margin_names:
                margin_names.append(m.name)
        bw = None
        if isinstance(base_weight, str):
            col = pd.to_numeric(sub[base_weight], errors="coerce")
            if col.isna().all():
                bw = None
                notes.append(f"{label}: no base weights in column {base_weight}; equal base weights used")
            else:
                from ._cells import check_weights

                # name a bad weight by its place in the wave's file, not by its stacked position
                places = _Places(wv, _source_rows(data, str(wv), len(pos)))
                check_weights(col.to_numpy(dtype=np.float64, na_value=np.nan), base_weight,
                              index=places, where=label)
                bw = base_weight
                notes.append(f"{label}: base weights from column {base_weight}")
        elif base_weight is not None:
            bw = np.asarray(base_weight)[pos]
        from .calibration import calibrate
        from .design_weights import design_weights
        from .poststratification import poststratify
        from .raking import rake

        if method == "none":
            r = design_weights(sub, t if t.margins else None, bw, label=label)
        elif method == "rake":
            r = rake(sub, t, bw, tol=tol, max_iter=max_iter, bounds=bounds, unmatched=unmatched,
                     empty=empty, label=label)
        elif method == "poststratify":
            r = poststratify(sub, t, bw, unmatched=unmatched, empty=empty, label=label)
        else:
            totals = {**{m.variables if len(m.variables) > 1 else m.name:
                         {"kind": m.kind,
                          "values": {c if len(c) > 1 else c[0]: v for c, v in zip(m.categories, m.values)}}
                         for m in t.margins}, **numeric}
            r = calibrate(sub, totals, bw, method=calibration, bounds=bounds, tol=tol,
                          max_iter=max_iter, empty=empty, label=label)
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


def _source_rows(data, wave: str, n: int):
    """0-based rows in the wave's file of the wave's respondents (``attrs["source_rows"]`` of
    :func:`~diaspora_survey.harmonise.apply.stack`), or None when unknown."""
    try:
        n_raw, excluded = data.attrs["source_rows"][wave]
        rows = np.delete(np.arange(int(n_raw)), np.asarray(excluded, dtype=np.int64))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return rows if len(rows) == n else None


class _Places:
    """Lazy labels of a wave's rows for messages: the data row of the wave's file when known."""

    def __init__(self, wave, rows):
        self.wave, self.rows = wave, rows

    def __getitem__(self, k: int) -> str:
        if self.rows is not None:
            return f"data row {int(self.rows[k]) + 1} of wave {self.wave}'s file"
        return f"respondent {k + 1} of wave {self.wave}"


def check_target_waves(targets, order) -> None:
    """Per-wave settings of a targets file for waves the data do not have are an error (never
    silently unused); ``order``: the waves in the data."""
    if isinstance(targets, TargetsFile) and targets.waves:
        unknown = [w for w in targets.waves if w not in {str(x) for x in order}]
        if unknown:
            raise WeightingError(f"targets for wave(s) {', '.join(map(repr, unknown))}, which the data "
                                 "do not have", code="weighting.bad_targets", where=targets.path or None,
                                 hint="waves in the data: " + ", ".join(map(str, order))
                                      + "; fix the wave ids under waves: in the targets file")


def _targets_for(targets, wave: str, waves: list[str], method: str = "rake"):
    if targets is None:
        if method != "none":
            raise WeightingError("no targets", code="weighting.no_targets",
                                 hint="targets are needed unless method='none'")
        return Targets(()), {}, []
    return _targets_for_(targets, wave, waves, method)


def _targets_for_(targets, wave: str, waves: list[str], method: str = "rake"):
    """(categorical targets, numeric totals, notes) of one wave: a TargetsFile,
    ``{wave: targets}`` (keys are exactly wave ids) or common targets.  Numeric totals
    (``{"age": total}``) are only for calibration."""
    if isinstance(targets, TargetsFile):
        t, notes = targets.for_wave(wave)
        numeric = targets.totals_for(wave)
        if numeric and method != "calibrate":
            raise WeightingError(f"numeric totals ({', '.join(map(str, numeric))}) need "
                                 f"method = \"calibrate\" (method is {method!r})",
                                 code="weighting.bad_targets", where=targets.path or None,
                                 hint="set method = \"calibrate\" in [weighting], or remove totals:")
        return t, numeric, notes
    source = ""
    if isinstance(targets, dict) and targets and all(str(k) in waves for k in targets):
        spec = {str(k): v for k, v in targets.items()}
        if wave not in spec:
            raise WeightingError(f"no targets for wave {wave}", code="weighting.bad_targets",
                                 hint="give targets for every wave, or common targets")
        targets, source = spec[wave], f"targets of wave {wave}"
    numeric = {}
    if isinstance(targets, dict):
        numeric = {k: v for k, v in targets.items() if not (isinstance(v, dict) or hasattr(v, "items"))}
        if numeric and method != "calibrate":
            raise WeightingError(f"numeric totals ({', '.join(map(str, numeric))}) need "
                                 f"method='calibrate' (method is {method!r})",
                                 code="weighting.bad_targets", where=source or None,
                                 hint="rake and poststratify take {category: share_or_count} margins")
        cat = {k: v for k, v in targets.items() if k not in numeric}
        if not cat:
            return Targets(()), numeric, []
        return parse_targets(cat, source=source), numeric, []
    return parse_targets(targets, source=source), numeric, []


def project_options(project, *, targets=None):
    """``(targets file, keyword arguments of weight_waves, note)`` from the project's
    ``[weighting]`` section (``targets`` overrides its targets file) — shared by
    :func:`weight_project` and the engine path (``weighting.scale.weight_waves_source``)."""
    from .targets import _project_section, load_targets, targets_from_project

    section, explicit = _project_section(project)
    method = section.get("method", "rake")
    note = None
    project_targets = True
    if method == "none" and targets is None and "margins" not in section:
        # design weights only: a targets file, if there is one, only for the diagnostics
        tp = Path(str(section.get("targets", "")))
        tp = tp if tp.is_absolute() else Path(getattr(project, "root", ".") or ".") / tp
        if not (section.get("targets") and tp.is_file()):
            project_targets = False
            if section.get("targets") and "targets" in explicit:
                note = (f"method none: targets file {section['targets']} not found; the weighted "
                        "sample is not compared with targets (the weights do not need them)")
    if project_targets:
        tf, opts = targets_from_project(project)
    else:
        tf, opts = None, {k: v for k, v in section.items() if k not in ("targets", "margins", "totals")}
    if targets is not None:
        tf = targets if isinstance(targets, TargetsFile) else load_targets(targets)
    if method == "none":
        # the base weights are final: trimming only when asked for in the project file
        for k in ("trim_upper", "trim_lower"):
            if k not in explicit:
                opts.pop(k, None)
    if tf is None and method != "none":
        raise WeightingError("the project has no weighting targets", code="weighting.no_targets",
                             where="diaspora-survey.toml [weighting]",
                             hint="set targets = \"codebooks/targets.yaml\" in [weighting] or pass --targets")
    bounds = opts.get("bounds")
    if bounds is not None and (not isinstance(bounds, (list, tuple)) or len(bounds) != 2):
        raise WeightingError(f"[weighting] bounds must be [lower, upper], got {bounds!r}",
                             code="weighting.bad_option", where="diaspora-survey.toml [weighting]")
    max_iter = opts.get("max_iter", 100)
    if isinstance(max_iter, float) and max_iter.is_integer():
        max_iter = int(max_iter)
    kwargs = dict(method=opts.get("method", "rake"), pooling=opts.get("pooling", "proportional"),
                  base_weight=opts.get("base_weight"), bounds=None if bounds is None else tuple(bounds),
                  calibration=opts.get("calibration"),
                  trim_upper=opts.get("trim_upper"), trim_lower=opts.get("trim_lower"),
                  trim_relative=opts.get("trim_relative", True),
                  max_iter=max_iter, tol=opts.get("tolerance", 1e-8),
                  unmatched=opts.get("unmatched"), empty=opts.get("empty"))
    return tf, kwargs, note


def weight_project(project, data: pd.DataFrame | None = None, *, targets=None) -> WavesResult:
    """Weight the waves of a :class:`~diaspora_survey.project.Project` with the options of
    its ``[weighting]`` section (targets file, method, pooling, trim_upper/trim_lower
    relative to the mean weight, max_iter, tolerance).  ``targets`` (a path or a
    :class:`TargetsFile`) overrides the project's targets file."""
    tf, kwargs, note = project_options(project, targets=targets)
    if data is None:
        data = project.harmonised()
    res = weight_waves(data, tf, **kwargs)
    if note:
        res.decisions.insert(0, note)
    if tf is not None and tf.illustrative:
        res.decisions.insert(0, f"targets are ILLUSTRATIVE ({tf.path}): not census figures")
    return res
