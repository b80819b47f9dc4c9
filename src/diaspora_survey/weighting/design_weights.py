"""``method = "none"``: the base (design) weights of the file are the final weights.

For surveys that come with their own design or post-stratification weights (ESS
``dweight``/``pspwght``, a panel's supplied weight): nothing is adjusted, but the same
diagnostics are reported as for the other methods — effective n, Kish deff, the weight
range — and, when targets are given, how far the weighted sample is from them
(margins before = after, the gap to the target).  R equivalent: using the weights as
they are, ``svydesign(ids = ~1, weights = ~dweight, data = d)``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._result import WeightingResult, resolve_input
from .diagnostics import Diagnostics, margin_table


def design_weights(df: pd.DataFrame, targets=None, base_weight=None, *, label: str | None = None,
                   where: str | None = None) -> WeightingResult:
    """The base weights unchanged as a :class:`WeightingResult` (method ``"none"``).

    base_weight : column name, array, or None (equal weights 1, reported as a decision).
    targets : optional; only for the margin table of the diagnostics (sample share with
        the weights vs target share; nothing is fitted).  Target categories without
        respondents are listed with n = 0, data categories without a target are left out.
    """
    df, w0, _ = resolve_input(df, base_weight, where)
    decisions = []
    if base_weight is None:
        decisions.append("no base weight: every respondent has weight 1 (method none)")
    else:
        decisions.append("method none: the base weights are the final weights (not adjusted)")
    margins, margin_fn = None, None
    if targets is not None and len(getattr(targets, "margins", ()) or ()) > 0:
        from ._setup import margin_rows, prepare, row_margin_fn

        s = prepare(df, targets, w0, unmatched="keep_base", empty="drop", label=label, where=where)
        margins = margin_table(*margin_rows(s, s.cells.wsum))
        margin_fn = row_margin_fn(s)
        decisions.append("targets used only to show the distance of the weighted sample from "
                         "them (method none fits nothing)")
    exclude = {base_weight} if isinstance(base_weight, str) else set()
    diag = Diagnostics("none", np.asarray(w0, dtype=float), np.asarray(w0, dtype=float),
                       iterations=0, converged=True, margins=margins, decisions=decisions, df=df,
                       exclude=exclude, margin_fn=margin_fn)
    idx = df.index
    steps = {"weight_base": pd.Series(w0, index=idx, name="weight_base", copy=False)}
    return WeightingResult(pd.Series(np.array(w0, dtype=float), index=idx, name="weight"), diag,
                           method="none", steps=steps)
