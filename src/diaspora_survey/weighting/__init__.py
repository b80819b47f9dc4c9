"""Survey weighting: raking, post-stratification, calibration, trimming, diagnostics.

>>> import diaspora_survey as ds                                      # doctest: +SKIP
>>> r = ds.weighting.rake(df, {"country": {...}, "sex:age_group": {...}})   # doctest: +SKIP
>>> r.weights, r.diagnostics.n_eff, r.diagnostics.margins             # doctest: +SKIP
>>> r2 = r.trim(upper=5, relative=True)                               # doctest: +SKIP

Targets are ``{margin: {category: share_or_count}}``; a margin is a variable or a
cross-classification ``"var1:var2"`` (categories ``"level1:level2"`` or tuples).  Shares
(margins summing to 1) are scaled to the weight total; counts are used as they are.
Every function validates its targets before iterating and raises
:class:`~diaspora_survey.errors.WeightingError` with a message naming the variable,
category and group for anything it cannot do; decisions it takes on request (dropped
or collapsed categories, rows kept at their base weight, restricted targets) are listed
in ``result.diagnostics.decisions``.

Given a :class:`~diaspora_survey.survey.design.SurveyDesign` instead of a DataFrame, ``rake``,
``poststratify`` and ``calibrate`` also return ``result.design``: the adjusted design
whose standard errors account for the adjustment as R's ``survey`` does.
"""
from __future__ import annotations

from ._result import WeightingResult
from .calibration import Mean, calibrate
from .diagnostics import Diagnostics, diagnostics, smd_table
from .poststratification import poststratify
from .raking import rake
from .targets import (Margin, Targets, TargetsFile, load_targets, parse_targets, targets_from_long,
                      targets_from_project)
from .trimming import trim
from .waves import weight_project, weight_waves

__all__ = ["rake", "poststratify", "calibrate", "Mean", "trim", "diagnostics", "Diagnostics",
           "WeightingResult", "Margin", "Targets", "TargetsFile", "parse_targets", "load_targets",
           "targets_from_long", "targets_from_project", "weight_waves", "weight_project",
           "smd_table"]
