"""WeightingResult and the helpers shared by rake / poststratify / calibrate (private)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import WeightingError
from ._cells import base_weights
from .diagnostics import Diagnostics

STEP_COLUMN = {"rake": "weight_raked", "poststratify": "weight_poststratified",
               "calibrate": "weight_calibrated", "trim": "weight_trimmed"}


class WeightingResult:
    """The outcome of a weighting step.

    * ``weights``: Series of the new weights, aligned with the input's index;
    * ``diagnostics``: :class:`~diaspora_survey.weighting.diagnostics.Diagnostics`;
    * ``steps``: ordered mapping column name -> Series, the weight after each step
      (``weight_base``, ``weight_raked`` / ``weight_poststratified`` /
      ``weight_calibrated``, ``weight_trimmed``);
    * ``g``: the adjustment factor new / base weight (Series);
    * ``design``: when the input was a :class:`~diaspora_survey.survey.design.SurveyDesign`, a
      new design with the new weights that carries what calibration-aware standard
      errors need (as R's ``calibrate``/``postStratify``/``rake``); else None.

    ``result.frame(df)`` returns ``df`` with the step columns and the final ``weight``;
    ``result.trim(upper=..., lower=...)`` trims the weights and returns a new result.
    """

    def __init__(self, weights: pd.Series, diagnostics: Diagnostics, *, method: str,
                 steps: dict, design=None, adjustment: dict | None = None):
        self.weights = weights
        self.diagnostics = diagnostics
        self.method = method
        self.steps = dict(steps)
        self.design = design
        self.adjustment = adjustment

    @property
    def g(self) -> pd.Series:
        base = self.steps["weight_base"]
        return (self.weights / base).rename("g")

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def frame(self, df: pd.DataFrame | None = None, *, final: str = "weight") -> pd.DataFrame:
        """``df`` (or just the weights) with one column per step and the final weight."""
        cols = {name: s for name, s in self.steps.items()}
        cols[final] = self.weights
        out = pd.DataFrame(cols, index=self.weights.index)
        if df is None:
            return out
        clash = [c for c in out.columns if c in df.columns]
        return pd.concat([df.drop(columns=clash), out], axis=1)

    def trim(self, lower=None, upper=None, **kwargs) -> "WeightingResult":
        """Trim the weights (see :func:`diaspora_survey.weighting.trim`); the design, if
        any, keeps its calibration record and gets the trimmed weights (as R's
        ``trimWeights`` on a calibrated design)."""
        from .trimming import trim as _trim

        new = _trim(self.weights, lower=lower, upper=upper, **kwargs)
        info = new.attrs.get("trim", {})
        d = self.diagnostics
        base = self.steps["weight_base"].to_numpy()
        margins = d._margin_fn(new.to_numpy()) if d._margin_fn is not None else d.margins
        diag = Diagnostics(d.method + "+trim", new.to_numpy(), base, iterations=d.iterations,
                           converged=d.converged, tolerance=d.tolerance, margins=margins,
                           decisions=d.decisions + [info.get("note", "weights trimmed")],
                           df=d._df, covariates=d._covariates, exclude=d._exclude,
                           extra={**d.extra, "trim": info}, margin_fn=d._margin_fn)
        steps = dict(self.steps)
        steps["weight_trimmed"] = new.rename("weight_trimmed")
        design = self.design.with_adjustment(new.to_numpy(), None) if self.design is not None else None
        return WeightingResult(new.rename("weight"), diag, method=self.method + "+trim", steps=steps,
                               design=design, adjustment=self.adjustment)

    def __repr__(self) -> str:
        return f"<WeightingResult {self.method}: {self.diagnostics!r}>"


def resolve_input(data, base_weight, where=None):
    """(DataFrame, base weights array, design or None) from a DataFrame or SurveyDesign."""
    if isinstance(data, pd.DataFrame):
        return data, base_weights(data, base_weight, where), None
    if hasattr(data, "with_adjustment") and hasattr(data, "weights"):
        if base_weight is not None:
            raise WeightingError("base_weight cannot be given with a SurveyDesign: its weights are "
                                 "the base weights", code="weighting.bad_option", where=where,
                                 hint="drop base_weight=, or build the design with those weights")
        dom = getattr(data, "domain_mask", None)
        if dom is not None and not np.all(dom):
            raise WeightingError("cannot weight a subset design: weight the full design, then subset",
                                 code="weighting.bad_option", where=where)
        df = data.data
        w0 = np.asarray(data.weights, dtype=np.float64).copy()
        from ._cells import check_weights
        check_weights(w0, "design weights", index=df.index, where=where)
        return df, w0, data
    raise WeightingError(f"cannot weight a {type(data).__name__}: pass a DataFrame or a SurveyDesign",
                         code="weighting.bad_option", where=where)


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise WeightingError(f"unknown {name} {value!r}", code="weighting.bad_option",
                             hint=f"{name} must be one of: " + ", ".join(map(repr, choices)))


def finish(method: str, df: pd.DataFrame, w0: np.ndarray, w: np.ndarray, design, adjustment,
           diag: Diagnostics, rep_weights: np.ndarray | None = None,
           keep_degf: bool = False) -> WeightingResult:
    idx = df.index
    steps = {"weight_base": pd.Series(w0, index=idx, name="weight_base", copy=False),
             STEP_COLUMN[method]: pd.Series(w, index=idx, name=STEP_COLUMN[method], copy=False)}
    new_design = None
    if design is not None:
        if rep_weights is not None:   # replicate design: every replicate re-weighted, as R
            new_design = design.with_adjustment(w, adjustment, replicate_weights=rep_weights,
                                                keep_degf=keep_degf)
        else:
            new_design = design.with_adjustment(w, adjustment)
    return WeightingResult(pd.Series(w, index=idx, name="weight", copy=False), diag, method=method,
                           steps=steps, design=new_design, adjustment=adjustment)
