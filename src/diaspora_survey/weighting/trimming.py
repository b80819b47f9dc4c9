"""Weight trimming with redistribution (the weight total is kept).

Weights above ``upper`` are set to ``upper``, weights below ``lower`` to ``lower``, and
the difference is given to the untrimmed weights so that the total is unchanged
(Potter 1990; Lumley 2010 §7.5; R's ``survey::trimWeights``):

* ``redistribute="proportional"`` (default): untrimmed weights are multiplied by a
  common factor (their relative sizes — the earlier adjustments — are kept);
* ``redistribute="equal"``: the trimmed amount is spread in equal parts over the
  untrimmed weights (R's ``trimWeights``).

``strict=True`` (default) repeats until every weight is within the bounds (units at a
bound stay there; the redistribution goes to the others); it is an error if the bounds
cannot hold the total (``n × upper < Σw`` or ``n × lower > Σw``).  ``strict=False``
does a single pass like R's default, so weights can end up outside the bounds again.
``rule="r"`` with ``strict=True`` instead repeats R's one-pass rule until no weight is
outside (R's ``trimWeights(strict=TRUE)`` recursion: units at a bound are not outside,
so they keep receiving redistributed weight on later passes and are re-trimmed).

Which call reproduces which R call (R: ``trimWeights(design, upper=, lower=, strict=)``):

* ``trimWeights(strict=FALSE)`` = ``trim(w, lower, upper, strict=False, redistribute="equal")``;
* ``trimWeights(strict=TRUE)`` = ``trim(w, lower, upper, strict=True, redistribute="equal", rule="r")``.
``relative=True`` reads the bounds as multiples of the mean weight (e.g. ``upper=5``:
five times the mean).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import WeightingError
from ._cells import check_weights, number

REDISTRIBUTE = ("proportional", "equal")


RULES = ("fixed_point", "r")


def trim(weights, lower=None, upper=None, *, relative: bool = False, strict: bool = True,
         redistribute: str = "proportional", max_iter: int = 1000, rule: str = "fixed_point") -> pd.Series:
    """Trim ``weights`` (Series or array) to [lower, upper], keeping their total.

    Returns a Series (same index as the input Series, else a RangeIndex) whose
    ``attrs["trim"]`` records the bounds used, the number of weights trimmed, the
    passes and whether every weight ended within the bounds.

    rule : with strict=True, "fixed_point" (default: the weights clip(f(w; c)) that keep
        the total, units at a bound held there) or "r" (R's trimWeights(strict=TRUE):
        the one-pass rule repeated until nothing is outside, at most ``max_iter`` passes).

    R: ``trimWeights(design, upper=, lower=, strict=FALSE)`` is
    ``trim(w, lower, upper, strict=False, redistribute="equal")``;
    ``trimWeights(design, upper=, lower=, strict=TRUE)`` is
    ``trim(w, lower, upper, redistribute="equal", rule="r")``.
    """
    if rule not in RULES:
        raise WeightingError(f"unknown rule {rule!r}", code="weighting.bad_option",
                             hint="'fixed_point' or 'r' (R's trimWeights(strict=TRUE))")
    if redistribute not in REDISTRIBUTE:
        raise WeightingError(f"unknown redistribute {redistribute!r}", code="weighting.bad_option",
                             hint="'proportional' or 'equal'")
    if lower is None and upper is None:
        raise WeightingError("trim needs lower= and/or upper=", code="weighting.bad_option")
    if isinstance(weights, pd.Series):
        index, name = weights.index, weights.name
        w = pd.to_numeric(weights, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        index, name = pd.RangeIndex(w.size), None
    check_weights(w, "weights to trim", index=index, allow_zero=True)
    lower = None if lower is None else number("lower", lower)
    upper = None if upper is None else number("upper", upper)
    max_iter = number("max_iter", max_iter, positive=True, integer=True)
    if not isinstance(relative, (bool, np.bool_)) or not isinstance(strict, (bool, np.bool_)):
        raise WeightingError("relative= and strict= must be True or False", code="weighting.bad_option")
    n = w.size
    total = float(w.sum())
    if total <= 0:
        raise WeightingError("weights to trim are all zero", code="weighting.bad_weights",
                             hint="there is no weight total to keep")
    mean = total / n
    lo = -np.inf if lower is None else float(lower) * (mean if relative else 1.0)
    hi = np.inf if upper is None else float(upper) * (mean if relative else 1.0)
    if lo > hi:
        raise WeightingError(f"lower bound {lo:g} is above upper bound {hi:g}", code="weighting.bad_option")
    if strict and (n * hi < total * (1 - 1e-12) or n * lo > total * (1 + 1e-12)):
        raise WeightingError(
            f"the bounds [{lo:g}, {hi:g}] cannot hold the weight total {total:,.6g} of {n} weights "
            f"(mean {mean:.6g})", code="weighting.infeasible_bounds",
            hint="the mean weight must lie within the bounds; relax them")
    if strict and rule == "fixed_point":
        out, passes = _strict(w, lo, hi, total, redistribute, max_iter)
    elif strict:   # R's trimWeights(strict=TRUE): the one-pass rule until nothing is outside
        out, passes = w.copy(), 0
        while ((out < lo) | (out > hi)).any():
            if passes >= max_iter:
                raise WeightingError(f"trimming (rule='r') did not settle in {max_iter} passes",
                                     code="weighting.not_converged", hint="raise max_iter")
            out = _one_pass(out, lo, hi, redistribute)
            passes += 1
    else:   # R's trimWeights(strict=FALSE): one pass on the weights as they are
        outside = (w < lo) | (w > hi)
        passes = int(outside.any())
        out = _one_pass(w, lo, hi, redistribute)
    n_trimmed = int(((out <= lo) & (w != out)).sum() + ((out >= hi) & (w != out)).sum())
    within = bool(np.all((out >= lo * (1 - 1e-12)) & (out <= hi * (1 + 1e-12))))
    if strict and not within:   # pragma: no cover - guarded by the feasibility check
        raise WeightingError("trimming did not reach the bounds", code="weighting.not_converged")
    if (out < 0).any():
        raise WeightingError(f"trimming made {int((out < 0).sum())} weight(s) negative "
                             f"(redistribute='equal' with a lower bound)", code="weighting.negative_weights",
                             hint="use redistribute='proportional', or set lower=0")
    res = pd.Series(out, index=index, name=name)
    res.attrs["trim"] = {
        "lower": None if lower is None else lo, "upper": None if upper is None else hi,
        "relative": relative, "strict": strict, "redistribute": redistribute,
        "n_trimmed": n_trimmed, "passes": passes, "within_bounds": within,
        "note": (f"trimmed {n_trimmed} weight(s) to [{lo:.6g}, {hi:.6g}]"
                 + ("" if strict else " in one pass (strict=False)") + ", "
                 f"{redistribute} redistribution, total kept"
                 + ("" if within else "; some weights are outside the bounds after one pass (strict=False)")),
    }
    return res


def _one_pass(w, lo, hi, redistribute):
    """One pass of R's trimWeights: clip the weights outside [lo, hi] and give what was
    trimmed to the others (equal parts: R; proportionally: the default here)."""
    out = w.copy()
    outside = (w < lo) | (w > hi)
    if not outside.any():
        return out
    out[outside] = np.clip(w[outside], lo, hi)
    free = ~outside
    if free.any():
        trimmings = float(np.sum(w[outside] - out[outside]))
        if redistribute == "equal":
            out[free] = w[free] + trimmings / int(free.sum())
        else:
            out[free] = w[free] * ((float(w[free].sum()) + trimmings) / float(w[free].sum()))
    return out


def _strict(w, lo, hi, total, redistribute, max_iter, counts=None, return_c=False):
    """The weights ``clip(f(w; c), lo, hi)`` that keep the total, with ``f = c·w``
    (proportional) or ``f = w + c`` (equal): the fixed point of trimming and
    redistributing until nothing is outside the bounds.  ``h(c) = Σ clip(f(w_i; c))`` is
    non-decreasing in c; c is bracketed by bisection, then solved exactly on its linear
    piece.  ``counts``: how many respondents each value of ``w`` stands for (distinct
    weights of a cell table, ``weighting.scale``; default 1 each).  Returns (weights,
    bisection steps)."""
    prop = redistribute == "proportional"

    def total_of(x, mask=None):
        if counts is None:
            return float(x.sum()) if mask is None else float(x[mask].sum())
        return float(np.dot(x, counts)) if mask is None else float(np.dot(x[mask], counts[mask]))

    def number_of(mask):
        return int(mask.sum()) if counts is None else int(counts[mask].sum())

    def f(c):
        return w * c if prop else w + c

    def h(c):
        return total_of(np.clip(f(c), lo, hi))

    pos = w[w > 0]
    if prop:
        a = 0.0
        b = (hi if np.isfinite(hi) else total) / (pos.min() if pos.size else 1.0) + 1.0
    else:
        a = (lo if np.isfinite(lo) else -abs(total)) - float(w.max()) - 1.0
        b = (hi if np.isfinite(hi) else abs(total)) - float(w.min()) + 1.0
    steps = 0
    for steps in range(1, max_iter + 1):
        m = 0.5 * (a + b)
        if h(m) < total:
            a = m
        else:
            b = m
        if b - a <= 1e-15 * max(abs(a), abs(b), 1.0):
            break
    c = 0.5 * (a + b)
    v = f(c)
    low, high = v < lo, v > hi
    mid = ~(low | high)
    nlow, nhigh = number_of(low), number_of(high)
    fixed = (lo * nlow if nlow else 0.0) + (hi * nhigh if nhigh else 0.0)
    if mid.any():   # exact solution on the linear piece around c
        c = ((total - fixed) / total_of(w, mid) if prop
             else (total - fixed - total_of(w, mid)) / number_of(mid))
    out = np.where(low, lo, np.where(high, hi, f(c)))
    if return_c:   # the factor of the untrimmed weights (weighting.scale applies clip(c·w) in the engine)
        return out, steps, c
    return out, steps
