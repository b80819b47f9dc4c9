"""Post-stratification to a joint table of one or several variables.

Within each post-stratum (cell) c the weights are multiplied by ``N_c / Σ_{i in c} w_i``
(Holt & Smith 1979; Lumley 2010 §7.2; R's ``survey::postStratify``), so the weighted
cell totals equal the population cell totals exactly.

Small or empty cells (fewer than ``min_cell_size`` respondents, default 1 = empty
cells only) are handled by one explicit rule, reported in ``diagnostics.decisions``
and in ``diagnostics.extra["collapsed"]``:

    a small cell is merged with the **next** category of the **last** variable of the
    cell key (the previous one for the last category), within the same levels of the
    other variables; merged cells share the sum of their targets; repeated, smallest
    first, until every merged cell has at least ``min_cell_size`` respondents.

Put the ordered variable last (e.g. ``"sex:age_group"``) so that neighbouring age
bands are merged.  ``strict=True`` turns every small or empty cell into an error.
Several *separate* margins are not a joint table: use :func:`rake` for them (this
function refuses rather than silently raking).
"""
from __future__ import annotations

import numpy as np

from ..errors import WeightingError
from ._result import WeightingResult, check_choice, finish, resolve_input
from ._setup import UNMATCHED, margin_rows, prepare, row_margin_fn
from .diagnostics import Diagnostics, margin_table
from .targets import parse_targets


EMPTY_PS = ("collapse", "error", "drop", "partial")


def check_cell_options(strict, min_cell_size) -> None:
    """``strict`` a bool and ``min_cell_size`` an integer >= 1, else one WeightingError."""
    if not isinstance(strict, (bool, np.bool_)):
        raise WeightingError(f"strict must be True or False, got {strict!r}", code="weighting.bad_option")
    if not (isinstance(min_cell_size, (int, np.integer)) and not isinstance(min_cell_size, bool)
            and min_cell_size >= 1):
        raise WeightingError(f"min_cell_size must be an integer >= 1, got {min_cell_size!r}",
                             code="weighting.bad_option")


def poststratify(data, targets, base_weight=None, *, min_cell_size: int = 1, strict: bool = False,
                 unmatched: str = "error", empty: str = "collapse", kind: str = "auto",
                 label: str | None = None, covariates=None, partial: bool = False) -> WeightingResult:
    """Post-stratify ``data`` to one joint table of population cells.

    targets : one margin, e.g. ``{"sex:age_group": {"female:18-24": 1200, ...}}`` or
        ``{"stype": {"E": 4421, "H": 755, "M": 1018}}`` (shares or counts).
    min_cell_size : cells with fewer respondents are collapsed (see module docstring).
    strict : raise instead of collapsing.
    unmatched : "error" or "keep_base" (as in :func:`rake`).
    empty : target cells with no respondents: "collapse" (default: merged by the rule
        above, like small cells), "error" ("sex:age_group=male:65+ has no respondents …"),
        "drop" (dropped and the table renormalised to the full total; reported), or
        "partial" (= ``partial=True``, R's ``postStratify(..., partial=TRUE)``: empty
        cells are ignored - the present cells get their own population totals, so the
        weights sum to the population minus the empty cells; reported).
    partial : R's name for ``empty="partial"``.

    On a replicate design every replicate is post-stratified to the same population
    cells (R's ``postStratify.svyrep.design``), not just rescaled.

    On a SurveyDesign, ``result.design`` carries R's post-stratification record
    (cells, new and old weights) for the SEs.
    R: ``postStratify(design, ~a+b, population_table)``.
    """
    check_choice("unmatched", unmatched, UNMATCHED)
    check_choice("empty", empty, EMPTY_PS)
    if not isinstance(partial, (bool, np.bool_)):
        raise WeightingError(f"partial must be True or False, got {partial!r}", code="weighting.bad_option")
    if partial:
        if empty not in ("collapse", "partial"):
            raise WeightingError(f"partial=True contradicts empty={empty!r}", code="weighting.bad_option",
                                 hint="partial=True is R's name for empty='partial'; give one of them")
        empty = "partial"
    check_cell_options(strict, min_cell_size)
    t = parse_targets(targets, kind=kind)
    if len(t) != 1:
        raise WeightingError(
            f"poststratify needs one joint table of cells, got {len(t)} margins "
            f"({', '.join(m.name for m in t)})", code="weighting.bad_option", where=label,
            hint="cross-classify them (e.g. 'sex:age_group') with targets for every cell, or use "
                 "rake() to match the margins separately")
    where = label
    df, w0, design = resolve_input(data, base_weight, where)
    s = prepare(df, t, w0, kind=kind, unmatched=unmatched,
                empty="keep" if empty in ("collapse", "partial") else empty, label=label, where=where)
    g_cells, decisions, collapsed, group, gi, G, T_g = fit_cells(s, min_cell_size=min_cell_size,
                                                                  strict=strict, empty=empty,
                                                                  label=label, where=where)
    margin = s.targets.margins[0]
    cells = s.cells
    fit = s.fit
    w = cells.to_rows(g_cells, times=w0)
    t_all = cells.wsum * g_cells
    s.decisions = decisions
    m = margin_table(*margin_rows(s, t_all))
    adjustment = None
    rep_weights = None
    if design is not None:
        row_cell = cells.row_cells()
        codes = np.where(fit, gi, G)[row_cell]
        adjustment = {"kind": "poststrat", "cells": codes, "w": w, "oldw": w0}
        if design.is_replicate:
            rep_weights = _poststratify_replicates(design, codes, T_g, s.unmatched_g, G,
                                                   lambda c: " + ".join(
                                                       margin.label(int(j)) for j in np.flatnonzero(group == c)),
                                                   where)
    diag = Diagnostics("poststratify", w, w0, iterations=1, converged=True, margins=m,
                       decisions=decisions, df=df, covariates=covariates, margin_fn=row_margin_fn(s),
                       exclude=set(margin.variables) | ({base_weight} if isinstance(base_weight, str) else set()),
                       extra={"collapsed": [[":".join(margin.categories[j]) for j in g] for g in collapsed],
                              "min_cell_size": min_cell_size, "empty": empty, "strict": strict})
    return finish("poststratify", df, w0, w, design, adjustment, diag, rep_weights=rep_weights)


def fit_cells(s, *, min_cell_size: int, strict: bool, empty: str, label, where):
    """Post-stratification on the cell table of a :func:`~._setup.prepare` setup ``s``:
    small cells collapsed by the module's rule.  Returns (g per cell, decisions, collapsed
    groups, group of each target category, group of each cell, number of groups, group
    targets) — shared by :func:`poststratify` and ``weighting.scale``."""
    margin = s.targets.margins[0]
    cells = s.cells
    mi = s.mis[0]
    fit = s.fit
    K = len(margin.categories)
    T_all = np.asarray(s.tgt[0], float)
    counts = np.bincount(mi[fit], weights=cells.count[fit], minlength=K)
    decisions = list(s.decisions)
    if empty == "partial":
        absent = np.flatnonzero((counts == 0) & (T_all > 0))
        if absent.size:
            labs = [margin.label(int(j)) for j in absent]
            decisions.append(f"ignored {absent.size} post-strat{'a' if absent.size > 1 else 'um'} with no "
                             f"respondents (R's partial=TRUE; the weights sum to the population of the "
                             f"other cells): {', '.join(labs[:8])}" + (" …" if len(labs) > 8 else ""))
            T_all = np.where(counts == 0, 0.0, T_all)
    small = np.flatnonzero((counts < min_cell_size) & ((T_all > 0) | (counts > 0)))
    collapsed = []
    group = np.arange(K)
    if small.size:
        labels = [margin.label(int(j)) for j in small]
        if strict:
            raise WeightingError(
                f"{len(labels)} post-stratification cell(s){' in ' + label if label else ''} have fewer "
                f"than {min_cell_size} respondent(s): {', '.join(labels[:8])}"
                + (" …" if len(labels) > 8 else ""),
                code="weighting.small_cell", where=where,
                hint="merge the cells in the targets and the codebook, or call with strict=False "
                     "to collapse them by the documented rule (reported)")
        group, collapsed = _collapse(margin, counts, min_cell_size, where)
        for members in collapsed:
            decisions.append("collapsed post-strata "
                             + " + ".join(":".join(margin.categories[j]) for j in members)
                             + f" ({int(counts[members].sum())} respondents)")
    G = int(group.max()) + 1
    gi = np.where(mi >= 0, group[np.maximum(mi, 0)], -1)
    T_g = np.bincount(group, weights=T_all, minlength=G)
    base_g = np.bincount(gi[fit], weights=cells.wsum[fit], minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_g = np.where(base_g > 0, T_g / base_g, 0.0)
    if np.any((T_g > 0) & (base_g == 0)):   # pragma: no cover - collapse guarantees this
        raise WeightingError("a post-stratum has no respondents after collapsing",
                             code="weighting.empty_category", where=where)
    g_cells = np.full(cells.n_cells, s.unmatched_g)
    g_cells[fit] = f_g[gi[fit]]
    return g_cells, decisions, collapsed, group, gi, G, T_g


def _poststratify_replicates(design, codes, T_g, unmatched_g, G, cell_label, where):
    """R's postStratify.svyrep.design: every replicate weight column r is multiplied by
    N_c / (sum of column r over post-stratum c); rows outside the fit keep their factor."""
    from scipy import sparse

    repw = design.replicate_info["repw"]
    n = repw.shape[0]
    M = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(G + 1, n))
    rs = np.asarray(M @ repw)[:G]                       # (G, R) replicate cell totals
    bad = (rs <= 0) & (T_g[:, None] > 0)
    if bad.any():
        c, r = (int(v[0]) for v in np.nonzero(bad))
        raise WeightingError(f"post-stratum {cell_label(c)} has no weight in replicate {r + 1} of the "
                             f"replicate design, so that replicate cannot be post-stratified",
                             code="weighting.replicate_empty_cell", where=where,
                             hint="merge the cell with a neighbour (min_cell_size=...) so that every "
                                  "replicate keeps respondents in it")
    with np.errstate(divide="ignore", invalid="ignore"):
        fac = np.where(rs > 0, T_g[:, None] / rs, 0.0)
    fac = np.vstack([fac, np.full((1, repw.shape[1]), unmatched_g)])
    return repw * fac[codes]


def _collapse(margin, counts, min_size, where):
    """Groups of target categories after the neighbour-merging rule."""
    K = len(margin.categories)
    k = len(margin.variables)
    # lines: categories sharing all but the last variable, in target order
    lines: dict[tuple, list[int]] = {}
    for j, c in enumerate(margin.categories):
        lines.setdefault(tuple(c[:-1]), []).append(j)
    group = np.arange(K)
    merged_groups = []
    for key, members in lines.items():
        blocks = [[j] for j in members]
        while True:
            sizes = [int(sum(counts[j] for j in b)) for b in blocks]
            small = [i for i, sz in enumerate(sizes) if sz < min_size]
            if not small:
                break
            if len(blocks) == 1:
                lab = ":".join(key) if k > 1 else margin.name
                raise WeightingError(
                    f"cannot collapse small post-strata of {margin.name}"
                    + (f" within {lab}" if k > 1 else "") + f": all its cells together have "
                    f"{sizes[0]} respondent(s), fewer than {min_size}", code="weighting.small_cell",
                    where=where, hint="merge categories of the other variables, or lower min_cell_size")
            i = min(small, key=lambda x: (sizes[x], x))
            other = i + 1 if i + 1 < len(blocks) else i - 1
            a, b = sorted((i, other))
            blocks[a] = blocks[a] + blocks[b]
            del blocks[b]
        for b in blocks:
            if len(b) > 1:
                merged_groups.append(sorted(b))
                group[b] = min(b)
    # renumber groups 0..G-1
    _, group = np.unique(group, return_inverse=True)
    return group, merged_groups
