"""Disclosure control for everything the toolkit publishes: report tables, charts and CLI output.

Rules (the report's methods page and ``docs/disclosure.md`` say the same):

1. **Minimum cell size.** A cell based on fewer than ``min_cell_size`` unweighted respondents
   (default 10) is suppressed ("—") in every output: the PDF, xlsx, csv, markdown and LaTeX
   reports, the charts, and what ``diaspora-survey estimate`` and ``compare`` print (tables,
   ``--csv``, ``--json``). The count itself is hidden too. A cell with no respondent count
   (a population figure, a test statistic) is not a cell.
2. **Secondary (complementary) suppression against differencing.** A suppressed cell must
   not be recoverable by subtraction from anything else the same report publishes, in any
   format: the wave size minus the visible cells of a distribution, the pooled table minus
   the by-wave tables, or a chain across tables (the denominators of one table and the
   categories of another). Every published count is a set of respondents (hidden columns
   ``_members_<column>`` hold their positions in the report's respondent universe: the
   harmonised rows, then the excluded rows); a suppressed set is *recovered* when its
   indicator vector lies in the linear span of the published sets (exact subtraction), and
   a *union* of suppressed cells of one distribution or of one row (e.g. a country in the
   waves where it is hidden) is recovered when it is in that span and holds fewer than
   ``min_cell_size`` respondents. Cells are suppressed until nothing is recovered.
3. **The complement that hides least.** Each recovery is broken by suppressing one of the
   published cells it uses: the one with the smallest count, never a headline indicator
   (the comparisons for all respondents and by wave, which carry the claims) when another
   choice exists. Counts of zero protect nothing (the attacker knows they are empty) and
   are never chosen.
4. **Tables without respondent sets** (no ``_members_`` columns) fall back to the rule of
   :func:`~.tables.flag_cells`: within each complement group, suppressed non-empty cells
   are at least two and hold at least ``min_cell_size`` respondents together, adding the
   smallest cells first.

The library's estimators (``SurveyDesign.mean`` …) return every cell: that is the
documented opt-out for researchers working on their own data in Python. Everything the CLI
prints and the report writes goes through this module; ``[report] min_cell_size`` can be
raised, not lowered below 10 (``Report(min_cell_size=…)`` in Python can).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..errors import EstimationError

MEMBERS = "_members_"
HEADLINE = "_headline"
#: Hidden bool column: the row counts item nonresponse ("(missing)"), shown whatever its
#: size — every estimate's denominator reveals it (wave size − respondents answering).
PUBLIC = "_public"
#: Tables whose rows are headline indicators (whole sample and whole waves: the claims).
HEADLINE_TABLES = re.compile(r"^compare_.+_(overall|wave)$")
#: ``[report] min_cell_size`` may not be lower (the library may, see the module docstring).
MIN_CELL_SIZE_FLOOR = 10


def members_column(key: str) -> str:
    """Name of the hidden column holding the respondent positions counted in ``key``."""
    return MEMBERS + key


def positions(mask) -> Any:
    """Respondent positions (int64) of a boolean mask, as stored in ``_members_`` columns."""
    import numpy as np

    return np.flatnonzero(np.asarray(mask, dtype=bool)).astype(np.int64)


def split_positions(codes, n_groups: int) -> list:
    """Respondent positions of every group at once: ``out[k]`` equals
    ``positions(codes == k)`` (ascending int64) for ``k < n_groups``; negative codes belong
    to no group. One stable sort of the coded rows instead of one mask per group."""
    import numpy as np

    codes = np.asarray(codes, dtype=np.int64)
    idx = np.flatnonzero(codes >= 0)
    c = codes[idx]
    counts = np.bincount(c, minlength=n_groups)[:n_groups]
    idx = idx[np.argsort(c, kind="stable")][: int(counts.sum())]
    return np.split(idx, np.cumsum(counts)[:-1])


def text_codes(values, missing=None):
    """``(codes, {str(value): code})`` of a column read as text (``str`` of each value), one
    pass: ``codes[i] == k`` exactly where ``str(values[i])`` is the label of ``k`` and
    ``missing[i]`` (bool array) is False; -1 elsewhere."""
    import numpy as np
    import pandas as pd

    vals = np.asarray(values, dtype=object)
    codes = np.full(len(vals), -1, dtype=np.int64)
    keep = np.ones(len(vals), dtype=bool) if missing is None else ~np.asarray(missing, dtype=bool)
    idx = np.flatnonzero(keep)
    # hash the values themselves, then read the few distinct ones as text (values with the
    # same text, e.g. 1 and "1", share a code)
    c, uniq = pd.factorize(vals[idx])
    of: dict = {}
    remap = np.array([of.setdefault(str(u), len(of)) for u in uniq] + [-1], dtype=np.int64)
    codes[idx] = remap[c]
    na = idx[c < 0]                  # NaN/None kept as values: their own text ("nan", "None")
    if len(na):
        codes[na] = [of.setdefault(str(v), len(of)) for v in vals[na]]
    return codes, of


# ---------------------------------------------------------------------------------------
# the linear model of what a report publishes

@dataclass
class _Unit:
    """One suppression decision: a table row's cells governed by one count column."""

    table: str
    key: str
    row: int
    count: float
    sets: list            # position arrays published while the unit is shown
    primary: bool
    headline: bool
    order: int
    suppressed: bool = False
    reason: str = ""
    governed: bool = False  # sets[0] holds the respondents of the governing count itself
    public: bool = False    # item nonresponse: never primary, a complement only as last resort


@dataclass
class AuditResult:
    """What an attack on a report's published cells found.

    ``attacks``: derivations tried (one per suppressed set and per union of suppressed
    sets of one distribution or row); ``recovered``: those that succeeded, each a dict
    ``table, row, key, count, method``; ``linked``/``unlinked``: table ids with and
    without respondent sets (the latter protected by the per-table rule only).
    """

    attacks: int = 0
    recovered: list = field(default_factory=list)
    linked: list = field(default_factory=list)
    unlinked: list = field(default_factory=list)
    secondary: int = 0


def _units(tables, min_cell_size: int):
    """Units and always-published sets of the linked tables."""
    import numpy as np
    import pandas as pd

    units: list[_Unit] = []
    fixed: list = []
    groups: dict = {}          # (table, key, complement values) -> unit indices
    linked, unlinked = [], []
    for t in tables:
        data = t.data.reset_index(drop=True)
        mcols = [c for c in data.columns if str(c).startswith(MEMBERS)]
        if not mcols:
            if t.n_col is not None or any(c.n_key for c in t.columns):
                unlinked.append(t.id)
            continue
        linked.append(t.id)
        n_keys = [k for k in dict.fromkeys([t.n_col] + [c.n_key for c in t.columns if c.n_key])
                  if k is not None]
        headline = data[HEADLINE].astype(bool).to_numpy() if HEADLINE in data.columns \
            else np.full(len(data), bool(HEADLINE_TABLES.match(t.id)))
        public = data[PUBLIC].astype(bool).to_numpy() if PUBLIC in data.columns \
            else np.zeros(len(data), dtype=bool)
        comp = [c for c in (t.complement_by or []) if c in data.columns]
        for c in t.columns:            # non-statistics are always shown
            if not c.is_stat:
                for k in c.keys:
                    if members_column(k) in data.columns:
                        fixed.extend(s for s in data[members_column(k)] if s is not None)
        for nk in n_keys:
            gov = [c for c in t.columns if c.is_stat and (c.n_key or t.n_col) == nk]
            keys = list(dict.fromkeys([nk] + [k for c in gov for k in c.keys]))
            mk = [members_column(k) for k in keys if members_column(k) in data.columns]
            n = pd.to_numeric(data[nk], errors="coerce").to_numpy(dtype="float64",
                                                                  na_value=np.nan)
            for i in range(len(data)):
                sets = [data.at[i, m] for m in mk]
                sets = [np.asarray(s, dtype=np.int64) for s in sets
                        if s is not None and not (isinstance(s, float) and np.isnan(s))]
                count = np.inf if np.isnan(n[i]) else float(n[i])
                u = _Unit(t.id, nk, i, count, sets,
                          count < min_cell_size and not public[i], bool(headline[i]),
                          len(units), governed=members_column(nk) in data.columns
                          and data.at[i, members_column(nk)] is not None,
                          public=bool(public[i]))
                if t.complement_by is not None:
                    g = (t.id, nk) + tuple(str(data.at[i, c]) for c in comp)
                    groups.setdefault(g, []).append(len(units))
                units.append(u)
    return units, fixed, groups, linked, unlinked


class _Span:
    """The linear span of published sets over *atoms* (respondents in exactly the same
    published and suppressed sets), with a membership test for candidate sets."""

    def __init__(self, all_sets):
        import numpy as np

        size = 1 + max((int(s.max()) for s in all_sets if len(s)), default=0)
        rng = np.random.default_rng(20240229)
        h1 = np.zeros(size, dtype=np.uint64)
        h2 = np.zeros(size, dtype=np.uint64)
        for s in all_sets:           # a signature per respondent: the sets it is in
            if len(s):
                r = rng.integers(1, 2**63, size=2, dtype=np.uint64)
                h1[s] += r[0]
                h2[s] += r[1]
        used = (h1 != 0) | (h2 != 0)
        # atoms numbered in the order of their signatures (h1, h2), as np.unique(axis=0)
        # would, but by hashing (pandas.factorize) instead of sorting every respondent
        import pandas as pd

        f1, u1 = pd.factorize(h1[used])
        f2, u2 = pd.factorize(h2[used])
        pair, first = np.unique(f1.astype(np.int64) * max(len(u2), 1) + f2,
                                return_inverse=True)
        sig1, sig2 = u1[pair // max(len(u2), 1)], u2[pair % max(len(u2), 1)]
        order = np.lexsort((sig2, sig1))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        self.atom = np.full(size, -1, dtype=np.int64)
        self.atom[used] = rank[first.ravel()]
        self.n_atoms = len(order)
        self._mark = np.zeros(self.n_atoms + 1, dtype=bool)
        self._cache: dict = {}

    def atoms(self, s):
        """The set's atoms (cached: sets are arrays held by the units)."""
        import numpy as np

        got = self._cache.get(id(s))
        if got is None or got[0] is not s:
            if len(s):       # the sorted distinct atoms (np.unique without sorting the set)
                mark = self._mark
                mark[self.atom[s]] = True          # -1 (no atom) marks the spare last slot
                mark[-1] = False
                a = np.flatnonzero(mark).astype(np.int64)
                mark[a] = False
            else:
                a = np.zeros(0, dtype=np.int64)
            got = self._cache[id(s)] = (s, a, a.tobytes())
        return got[1]

    def key(self, s) -> bytes:
        """The set's identity (its atoms)."""
        self.atoms(s)
        return self._cache[id(s)][2]

    def matrix(self, sets):
        """Sets as a sparse 0/1 matrix over atoms (one row per set)."""
        import numpy as np
        from scipy import sparse

        rows, cols = [], []
        for i, s in enumerate(sets):
            a = self.atoms(s)
            rows.append(np.full(len(a), i, dtype=np.int64))
            cols.append(a)
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        return sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(sets), self.n_atoms))


class _Basis:
    """The row space of a sparse 0/1 matrix ``P`` (eigen-decomposition of the Gram matrix
    ``P Pᵀ``): membership of candidate vectors and the minimum-norm combination of rows
    that gives one (which published cells a subtraction uses)."""

    def __init__(self, P):
        import numpy as np

        self.P = P
        if P.shape[0] == 0:
            self.V = np.zeros((0, 0))
            self.w = np.zeros(0)
            self.null_norm = np.zeros(0)
            self.N = np.zeros((0, 0))
            return
        G = (P @ P.T).toarray()
        w, V = np.linalg.eigh(G)
        keep = w > max(float(w.max()), 1.0) * 1e-10
        self.V, self.w = V[:, keep], w[keep]
        # the null space of Pᵀ (redundant published sets): every combination of rows giving
        # a vector is x0 + N z; a row with no share in it is used by all of them
        self.N = V[:, ~keep]
        self.null_norm = np.linalg.norm(self.N, axis=1)

    def in_span(self, C):
        """True per row of the sparse matrix ``C`` lying in the row space: the residual of
        the orthogonal projection ``C Pᵀ V Λ⁻¹ Vᵀ P`` (the projection onto the row space,
        with ``P Pᵀ = V Λ Vᵀ``) is zero. Computed from the small ``C Pᵀ`` (candidates x sets),
        never forming an orthonormal basis over all atoms (sets x atoms, dense)."""
        import numpy as np

        if C.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        Cd = C.toarray()
        if self.V.shape[1]:
            CP = np.asarray((C @ self.P.T).toarray())
            X = ((CP @ self.V) / self.w) @ self.V.T          # candidates x sets
            R = Cd - np.asarray(self.P.T @ X.T).T
        else:
            R = Cd
        return np.linalg.norm(R, axis=1) <= 1e-7 * np.maximum(np.linalg.norm(Cd, axis=1), 1.0)

    def breaks(self, x0, rows) -> bool:
        """Whether hiding ``rows`` leaves no combination ``x0 + N z`` that avoids them."""
        import numpy as np

        b = x0[rows]
        if not np.any(np.abs(b) > 1e-8):
            return False
        if self.N.shape[1] == 0:
            return True
        A = self.N[rows]
        z, *_ = np.linalg.lstsq(A, -b, rcond=None)
        return np.linalg.norm(A @ z + b) > 1e-6 * max(1.0, np.linalg.norm(b))

    def coefficients(self, c_row):
        """Minimum-norm ``x`` with ``Pᵀ x = c`` (c in the row space)."""
        import numpy as np

        pc = np.asarray(self.P @ c_row.toarray().ravel()).ravel()
        return self.V @ ((self.V.T @ pc) / self.w)


def _candidates(units, groups, min_cell_size: int):
    """Derivations an attacker tries: every suppressed non-empty set; the union of the
    suppressed sets of each distribution (complement group) and of each table row."""
    import numpy as np

    cands = []       # (positions, size, unit index of a member, method, small-only)
    for i, u in enumerate(units):
        if not u.suppressed:
            continue
        # the hidden count itself (any size); other hidden sets of the row (e.g. the domain
        # of a share) and nested differences (domain − "yes" = "no") when small
        # a primary cell must not be recovered at all; anything else only when small
        for j, s in enumerate(u.sets):
            if len(s):
                cands.append((s, len(s), i, "cell",
                              not (j == 0 and u.governed and u.reason == "primary")))
        for a in range(len(u.sets)):
            for b in range(len(u.sets)):
                sa, sb = u.sets[a], u.sets[b]
                if a != b and 0 < len(sa) - len(sb) < min_cell_size and len(sb) \
                        and np.isin(sb, sa).all():
                    cands.append((np.setdiff1d(sa, sb), len(sa) - len(sb), i, "cell", True))

    def union(members, method):
        sets = [s for i in members for s in units[i].sets[:1] if len(s)]
        if len(sets) >= 2:
            s = _union(sets)
            cands.append((s, len(s), members[0], method, True))

    for g, idx in groups.items():
        union([i for i in idx if units[i].suppressed], "distribution")
    rows: dict = {}
    for i, u in enumerate(units):
        if u.suppressed:
            rows.setdefault((u.table, u.row), []).append(i)
    for idx in rows.values():
        union(idx, "row")
    return cands


def _union(sets):
    """Sorted distinct positions of several position arrays (np.unique of their
    concatenation, by marking instead of sorting)."""
    import numpy as np

    allp = np.concatenate(sets)
    mark = np.zeros(int(allp.max()) + 1, dtype=bool)
    mark[allp] = True
    return np.flatnonzero(mark).astype(np.int64)


def _published(units, fixed, span):
    """Distinct published sets (the same respondents counted in several places are one
    row) and, per row, the units publishing it (-1: always published)."""
    rows: dict[bytes, int] = {}
    sets, owners = [], []

    def add(s, who):
        k = span.key(s)
        if k not in rows:
            rows[k] = len(sets)
            sets.append(s)
            owners.append([])
        owners[rows[k]].append(who)

    for s in fixed:
        add(s, -1)
    for i, u in enumerate(units):
        if not u.suppressed:
            for s in u.sets:
                add(s, i)
    return sets, owners


def _attack(units, fixed, groups, span, min_cell_size):
    """(violations, attacks tried, basis, owners): each violation (candidate, its row)."""
    sets, owner = _published(units, fixed, span)
    basis = _Basis(span.matrix(sets))
    cands = _candidates(units, groups, min_cell_size)
    if not cands:
        return [], 0, basis, owner
    C = span.matrix([c[0] for c in cands])
    hit = basis.in_span(C)
    bad = [(c, C[j]) for j, c in enumerate(cands)
           if hit[j] and (not c[4] or 0 < c[1] < min_cell_size)]
    return bad, len(cands), basis, owner


def _complement_for(v, target, basis, owner, units, chosen):
    """The published cells to hide so that ``v`` (a recovered set) is no longer a
    combination of published sets: a set every combination needs, cheapest first (fewest
    respondents, headline cells last); else the cheapest whose removal is checked to break
    the subtraction, cells of the same table first. A set is unpublished only when every
    unit showing it is hidden."""
    import numpy as np

    coef = basis.coefficients(v)
    used = np.abs(coef) > 1e-8
    needed = used & (basis.null_norm < 1e-6)

    def option(j):
        who = [i for i in owner[j] if i < 0 or not units[i].suppressed]
        if not who or -1 in who or any(i in chosen for i in who):
            return None
        return (any(units[i].public for i in who), any(units[i].headline for i in who),
                sum(units[i].count for i in who),
                min(units[i].order for i in who), tuple(who))

    opts = [o for j in np.flatnonzero(needed) if (o := option(j)) is not None]
    if opts:
        return min(opts)[-1]
    opts = sorted({o for j in np.flatnonzero(used) if (o := option(j)) is not None},
                  key=lambda o: (not all(units[i].table == target.table for i in o[-1]),) + o[:-1])
    for o in opts[:40]:
        gone = set(o[-1]) | set(chosen)
        rows = [j for j, w in enumerate(owner)
                if not any(i < 0 or (not units[i].suppressed and i not in gone) for i in w)]
        if rows and basis.breaks(coef, np.array(rows)):
            return o[-1]
    return opts[0][-1] if opts else None


def _release(units, fixed, groups, span, min_cell_size) -> None:
    """Show again every complementary cell whose sets can be derived from what is shown
    anyway: hiding it protects nothing, and showing it adds nothing to the span. (It can
    shrink a hidden union of its distribution below the minimum: such releases are undone.)
    Afterwards no hidden cell is recoverable at all."""
    sec = [i for i, u in enumerate(units) if u.reason == "secondary" and u.sets]
    if not sec:
        return
    sets, _ = _published(units, fixed, span)
    basis = _Basis(span.matrix(sets))
    flat = [(i, s) for i in sec for s in units[i].sets]
    hit = basis.in_span(span.matrix([s for _, s in flat]))
    ok = {i: True for i in sec}
    for (i, _), h in zip(flat, hit):
        ok[i] = ok[i] and bool(h)
    freed = [i for i, free in ok.items() if free]
    for i in freed:
        units[i].suppressed, units[i].reason = False, ""
    group_of = {i: g for g, idx in groups.items() for i in idx}
    for _ in range(len(freed) + 1):
        bad, *_ = _attack(units, fixed, groups, span, min_cell_size)
        if not bad:
            return
        near = {(units[c[2]].table, units[c[2]].row) for c, _ in bad}
        near_g = {group_of.get(c[2]) for c, _ in bad}
        back = [i for i in freed if not units[i].suppressed and
                ((units[i].table, units[i].row) in near or group_of.get(i) in near_g)]
        if not back:
            back = [i for i in freed if not units[i].suppressed]
        if not back:
            return
        for i in back:
            units[i].suppressed, units[i].reason = True, "secondary"


def protect(tables, min_cell_size: int):
    """Report-wide secondary suppression (module docstring, rules 2–3).

    ``tables``: the report's :class:`~.tables.ReportTable` objects (tables and chart
    data). Returns ``({table id: {count key: bool array of secondary suppression}},
    AuditResult)``; tables without respondent sets are not in the dict.
    """
    import numpy as np

    units, fixed, groups, linked, unlinked = _units(tables, min_cell_size)
    result = AuditResult(linked=linked, unlinked=unlinked)
    for u in units:
        if u.primary:
            u.suppressed, u.reason = True, "primary"
    if units:
        span = _Span([s for u in units for s in u.sets] + list(fixed))
        for _ in range(len(units) + 1):
            bad, tried, basis, owner = _attack(units, fixed, groups, span, min_cell_size)
            if not bad:
                break
            chosen: set[int] = set()
            for cand, v in bad:
                pick = _complement_for(v, units[cand[2]], basis, owner, units, chosen)
                if pick:
                    chosen.update(pick)
            if not chosen:
                break
            for i in chosen:
                units[i].suppressed, units[i].reason = True, "secondary"
        _release(units, fixed, groups, span, min_cell_size)
    out: dict = {}
    for t in tables:
        if t.id in linked:
            out[t.id] = {}
    for u in units:
        arr = out[u.table].setdefault(u.key, None)
        if arr is None:
            n = len(tables_by_id(tables)[u.table].data)
            arr = out[u.table][u.key] = np.zeros(n, dtype=bool)
        if u.reason == "secondary":
            arr[u.row] = True
    result.secondary = sum(u.reason == "secondary" for u in units)
    audit_units(units, fixed, groups, min_cell_size, result, span=span if units else None)
    return out, result


def tables_by_id(tables):
    return {t.id: t for t in tables}


def audit_units(units, fixed, groups, min_cell_size, result: AuditResult | None = None,
                span=None):
    """Attack the published cells (rules 2): fills ``result.attacks``/``recovered``.
    ``span``: the :class:`_Span` of these units' sets, if already built."""
    result = result or AuditResult()
    if not units:
        return result
    if span is None:
        span = _Span([s for u in units for s in u.sets] + list(fixed))
    bad, tried, _, _ = _attack(units, fixed, groups, span, min_cell_size)
    result.attacks = tried
    result.recovered = [{"table": units[c[2]].table, "row": units[c[2]].row,
                         "key": units[c[2]].key, "count": c[1], "method": c[3]}
                        for c, _ in bad]
    return result


def audit(tables, suppressed: dict, min_cell_size: int) -> AuditResult:
    """Attack tables as published: ``suppressed[table id][count key]`` = bool array of
    every hidden cell (primary and secondary). For tests and the report's summary."""
    units, fixed, groups, linked, unlinked = _units(tables, min_cell_size)
    for u in units:
        u.suppressed = bool(suppressed.get(u.table, {}).get(u.key, [False] * (u.row + 1))[u.row])
    return audit_units(units, fixed, groups, min_cell_size,
                       AuditResult(linked=linked, unlinked=unlinked))


# ---------------------------------------------------------------------------------------
# CLI estimates: the same minimum cell size, and no grouping by identifiers

#: Columns that identify respondents: never a grouping variable, never an estimate.
IDENTIFIER_NAMES = re.compile(
    r"^(resp_?id|respondent(_id)?|id|idno|uuid|panel_id|case_?id|record_?id|"
    r"response_?id|interview_?id|email|e_?mail|phone|name|ip(_address)?|token)$", re.I)
#: A grouping variable with more distinct values than this is refused (table of tiny cells).
MAX_GROUPS = 60


def is_identifier(df, col: str) -> bool:
    """``col`` identifies respondents: named like an id, or text/integers unique per row."""
    import pandas as pd

    if IDENTIFIER_NAMES.match(str(col)):
        return True
    s = df[col]
    valid = s.dropna()
    if len(valid) < 20:
        return False
    if pd.api.types.is_float_dtype(s) or pd.api.types.is_bool_dtype(s):
        return False
    if isinstance(s.dtype, pd.CategoricalDtype):
        return False
    return valid.nunique() >= 0.9 * len(valid)


def check_grouping(df, by: Sequence[str] | None, where: str, *, max_groups: int = MAX_GROUPS,
                   allowed: Iterable[str] | None = None) -> None:
    """Refuse a ``by`` that identifies respondents or has too many distinct values.

    ``allowed``: when given, only these names are accepted (``compare --by``).
    """
    allowed = list(allowed) if allowed is not None else None
    for b in by or []:
        if allowed is not None and b not in allowed:
            raise EstimationError(f"cannot group by {b!r}", code="disclosure.bad_by", where=where,
                                  hint="use one of: " + ", ".join(allowed))
        if b not in df.columns:
            raise EstimationError(f"no column {b!r} to group by", code="estimate.unknown_column",
                                  where=where, hint="check the variable name")
        if is_identifier(df, b):
            raise EstimationError(
                f"{b!r} identifies respondents; grouping by it would print every respondent",
                code="disclosure.identifier", where=where,
                hint="group by a categorical variable (wave, country, sex, age_group …)")
        k = int(df[b].nunique(dropna=True))
        if k > max_groups:
            raise EstimationError(
                f"{b!r} has {k:,} distinct values (more than {max_groups}): too many small "
                "groups to publish", code="disclosure.too_many_groups", where=where,
                hint="group by a coarser variable (e.g. age_group instead of age)")


def check_estimand(df, variables: Sequence[str], where: str) -> None:
    """Refuse estimates of identifier or free-text columns (meaningless and disclosive)."""
    import pandas as pd

    for v in variables:
        if v not in df.columns:
            continue
        s = df[v]
        text = pd.api.types.is_string_dtype(s) or s.dtype == object
        if IDENTIFIER_NAMES.match(str(v)) or (text and is_identifier(df, v)):
            raise EstimationError(f"{v!r} identifies respondents; it cannot be estimated",
                                  code="disclosure.identifier", where=where,
                                  hint="estimate a survey variable (age, education …)")


def suppress_estimates(res, *, min_cell_size: int = MIN_CELL_SIZE_FLOOR, n_col: str = "n",
                       cell_col: str | None = None, group_cols: Sequence[str] = (),
                       stat_cols: Sequence[str] | None = None):
    """Suppress small cells of an estimate frame (``estimate``/``compare`` output).

    A row whose count (``cell_col`` if given and present — respondents in the cell, e.g.
    the smaller of yes/no — else ``n_col``) is below ``min_cell_size`` (and above 0: an empty
    level reveals nobody and stays marked as empty) has its statistics and count set to missing. Within each distribution (rows sharing ``group_cols``), a
    single suppressed non-empty row (or suppressed rows holding fewer than
    ``min_cell_size`` together) is complemented by the smallest other row. Adds
    ``suppressed`` (bool) and ``suppression`` (``primary``/``secondary``/``""``).
    """
    import numpy as np
    import pandas as pd

    from .tables import _complement

    out = res.copy().reset_index(drop=True)
    key = cell_col if cell_col and cell_col in out.columns else n_col
    if key not in out.columns:
        out["suppressed"] = False
        out["suppression"] = ""
        return out
    n = pd.to_numeric(out[key], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    nn = np.nan_to_num(n, nan=np.inf)
    # an empty level (no respondents) reveals nobody: it is marked, not hidden (issue 15 item 11)
    primary = (nn > 0) & (nn < min_cell_size)
    secondary = np.zeros(len(out), dtype=bool)
    gcols = [c for c in group_cols if c in out.columns]
    if primary.any():
        frame = pd.DataFrame({"n": nn, "p": primary, "pos": np.arange(len(out))})
        for c in gcols:
            frame[c] = out[c].astype("object").fillna("").astype(str).to_numpy()
        for _, g in (frame.groupby(gcols, sort=False) if gcols else [(None, frame)]):
            for pos in _complement(g["n"].to_numpy(), g["p"].to_numpy(),
                                   np.zeros(len(g), dtype=bool), min_cell_size):
                secondary[int(g["pos"].iloc[pos])] = True
    hide = primary | secondary
    if stat_cols is None:
        skip = set(gcols) | {"variable", "level", "indicator", "category", "adjustment",
                             "group", "by", "group_by", "source", "confidence",
                             "reference_table", "note", "year", "population", "population_se",
                             "df"}
        stat_cols = [c for c in out.columns if c not in skip
                     and pd.api.types.is_numeric_dtype(out[c])]
    for c in stat_cols:
        if c in out.columns and hide.any():
            col = out[c]
            if col.dtype.kind in "iub" or str(col.dtype) in ("Int64", "boolean"):
                col = col.astype("float64")
            out[c] = col.where(~hide, np.nan)
    out["suppressed"] = hide
    out["suppression"] = np.where(primary, "primary", np.where(secondary, "secondary", ""))
    return out


# ---------------------------------------------------------------------------------------
# text that leaves the program: spreadsheets, markdown, terminals

_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|"
                      r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def strip_control(s: str) -> str:
    """Text without ANSI escape sequences, C0/C1 control characters and bidi overrides
    (newlines and tabs kept): safe to print on a terminal."""
    return _CONTROL.sub("", str(s))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_text(value):
    """A text cell that a spreadsheet will not run as a formula (OWASP CSV injection):
    text starting with ``= + - @``, tab or carriage return is prefixed with ``'``.
    Numbers are returned unchanged."""
    if not isinstance(value, str):
        return value
    v = strip_control(value) if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in value) \
        else value
    if v.startswith(_FORMULA_START):
        return "'" + v
    return v


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~])")


def markdown_text(s: str) -> str:
    """Plain text as markdown: markup characters escaped (no links, images or HTML), control
    characters removed, line breaks as spaces."""
    s = strip_control(str(s)).replace("\r", " ").replace("\n", " ")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    # a leading "-" or "1." would start a list; "=" / "-" lines a heading
    return re.sub(r"^(\d+)\.(\s)", r"\1\\.\2", s)


def proportion_cell_counts(df, res, by: Sequence[str] | None = None):
    """Unweighted respondents behind each row of an ``estimate`` result: for a proportion
    row the respondents at that level (within its group), for a mean or total the row's
    ``n``. The count that :func:`suppress_estimates` compares with the minimum."""
    import numpy as np
    import pandas as pd

    n = pd.to_numeric(res["n"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan) \
        if "n" in res.columns else np.full(len(res), np.nan)
    out = n.copy()
    if "level" not in res.columns or "variable" not in res.columns:
        return out
    by = list(by or [])
    is_prop = res["level"].notna().to_numpy() if "statistic" not in res.columns else \
        (res["statistic"] == "proportion").to_numpy()
    for var in res.loc[is_prop, "variable"].dropna().unique():
        if var not in df.columns:
            continue
        keys = by + [var]
        counts = df[keys].astype("object").astype(str).value_counts()
        sel = np.flatnonzero(is_prop & (res["variable"] == var).to_numpy())
        for i in sel:
            k = tuple(str(res.iloc[i][b]) for b in by) + (str(res.iloc[i]["level"]),)
            out[i] = float(counts.get(k if len(k) > 1 else k[0], 0))
    return out


_SMALL_COUNT = re.compile(r"\((\d[\d,]*) (respondents?|rows?)\)")


def mask_small_counts(text: str, min_cell_size: int = MIN_CELL_SIZE_FLOOR) -> str:
    """Counts of respondents below the minimum in free-standing messages (weighting
    decisions: ``sex:age_group=other:45-49 ... (2 respondents)``) as ``(fewer than 10
    respondents)``: a console line must not reveal a small group either."""
    def sub(m):
        n = int(m.group(1).replace(",", ""))
        return m.group(0) if n == 0 or n >= min_cell_size else \
            f"(fewer than {min_cell_size} {m.group(2).rstrip('s')}s)"
    return _SMALL_COUNT.sub(sub, str(text))
