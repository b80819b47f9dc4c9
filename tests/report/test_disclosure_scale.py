"""The report step's fast paths (issue 17) decide exactly what the respondent-level
definitions decide: respondent sets from one sort per variable, the disclosure span's atoms
by hashing, set atoms and unions by marking (property tests on random data), and
composition / weighting-margin sets equal to one boolean mask per cell."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from diaspora_survey.report import disclosure as D
from diaspora_survey.report.content import ReportInputs, WaveInfo, composition_table, _margin_members
from diaspora_survey.report.tables import Column, ReportTable


class _SortedSpan(D._Span):
    """The respondent-level reference: atoms numbered by ``np.unique(axis=0)`` of every
    respondent's signature, a set's atoms by ``np.unique`` (the code before issue 17)."""

    def __init__(self, all_sets):
        size = 1 + max((int(s.max()) for s in all_sets if len(s)), default=0)
        rng = np.random.default_rng(20240229)
        h1 = np.zeros(size, dtype=np.uint64)
        h2 = np.zeros(size, dtype=np.uint64)
        for s in all_sets:
            if len(s):
                r = rng.integers(1, 2**63, size=2, dtype=np.uint64)
                h1[s] += r[0]
                h2[s] += r[1]
        used = (h1 != 0) | (h2 != 0)
        _, atom = np.unique(np.stack([h1, h2], axis=1), axis=0, return_inverse=True)
        atom = atom.ravel()
        ids = np.unique(atom[used])
        remap = np.full(atom.max() + 1 if atom.size else 1, -1, dtype=np.int64)
        remap[ids] = np.arange(len(ids))
        self.atom = remap[atom]
        self.atom[~used] = -1
        self.n_atoms = len(ids)
        self._cache = {}

    def atoms(self, s):
        got = self._cache.get(id(s))
        if got is None or got[0] is not s:
            a = np.unique(self.atom[s]) if len(s) else np.zeros(0, dtype=np.int64)
            a = a[a >= 0]
            got = self._cache[id(s)] = (s, a, a.tobytes())
        return got[1]


class _DenseBasis(D._Basis):
    """The reference row-space test: an orthonormal basis ``B`` over all atoms."""

    def __init__(self, P):
        super().__init__(P)
        self.B = np.asarray((P.T @ self.V).T) / np.sqrt(self.w)[:, None] if P.shape[0] \
            else np.zeros((0, P.shape[1]))

    def in_span(self, C):
        if C.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        Cd = C.toarray()
        R = Cd - (Cd @ self.B.T) @ self.B if self.B.shape[0] else Cd
        return np.linalg.norm(R, axis=1) <= 1e-7 * np.maximum(np.linalg.norm(Cd, axis=1), 1.0)


@st.composite
def _codes(draw):
    n = draw(st.integers(0, 300))
    g = draw(st.integers(1, 12))
    return np.array(draw(st.lists(st.integers(-1, g - 1), min_size=n, max_size=n)),
                    dtype=np.int64), g


@given(_codes())
@settings(max_examples=60, deadline=None)
def test_split_positions_is_one_mask_per_group(cg):
    codes, g = cg
    got = D.split_positions(codes, g)
    assert len(got) == g
    for k in range(g):
        want = D.positions(codes == k)
        assert got[k].dtype == np.int64 and np.array_equal(got[k], want)


def test_text_codes_match_text_equality_and_skip_missing():
    vals = np.array(["a", 1, "1", None, 2.0, "a", np.nan], dtype=object)
    miss = pd.isna(vals)
    codes, lab = D.text_codes(vals, missing=miss)
    for text, k in lab.items():
        want = np.array([str(v) == text and not m for v, m in zip(vals, miss)])
        assert np.array_equal(codes == k, want)
    assert (codes[miss] == -1).all() and set(lab) == {"a", "1", "2.0"}


@st.composite
def _sets(draw):
    n = draw(st.integers(1, 120))
    k = draw(st.integers(1, 14))
    out = []
    for _ in range(k):
        mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        out.append(D.positions(mask))
    return out


@given(_sets())
@settings(max_examples=80, deadline=None)
def test_span_atoms_equal_the_sorted_respondent_level_ones(sets):
    fast, ref = D._Span(sets), _SortedSpan(sets)
    assert fast.n_atoms == ref.n_atoms
    assert np.array_equal(fast.atom, ref.atom)
    for s in sets + [np.zeros(0, dtype=np.int64)]:
        assert np.array_equal(fast.atoms(s), ref.atoms(s))
        assert fast.key(s) == ref.key(s)
    nonempty = [s for s in sets if len(s)]
    if len(nonempty) >= 2:
        assert np.array_equal(D._union(nonempty), np.unique(np.concatenate(nonempty)))


@st.composite
def _tables(draw):
    """Random linked tables: distributions of a few variables by wave over one universe
    of respondents, with small cells (primary suppression and differencing chains)."""
    n = draw(st.integers(20, 90))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    wave = rng.integers(0, 2, n)
    tables = []
    for t in range(draw(st.integers(1, 3))):
        levels = int(rng.integers(2, 5))
        # skewed: some levels are small
        x = rng.choice(levels, size=n, p=np.r_[0.8, np.full(levels - 1, 0.2 / (levels - 1))])
        rows = []
        for lev in range(levels):
            rec = {"category": f"c{lev}"}
            for w in range(2):
                s = D.positions((x == lev) & (wave == w))
                rec[f"n_{w}"] = len(s)
                rec[D.members_column(f"n_{w}")] = s
            s = D.positions(x == lev)
            rec["n_all"] = len(s)
            rec[D.members_column("n_all")] = s
            rows.append(rec)
        tables.append(ReportTable(
            id=f"t{t}", title="t", data=pd.DataFrame(rows),
            columns=[Column("category", "Category", "text")]
            + [Column(f"n_{w}", f"n {w}", "int", n_key=f"n_{w}") for w in range(2)]
            + [Column("n_all", "n", "int", n_key="n_all")],
            n_col="n_0", cv_col=None, complement_by=[]))
    return tables


@given(_tables())
@settings(max_examples=40, deadline=None)
def test_protect_decides_as_with_the_respondent_level_span(tables):
    """The same secondary suppression and the same audit as with the reference span
    (respondent-level atoms) and the reference row-space test (a dense basis over atoms)."""
    fast, fast_audit = D.protect(tables, 10)
    real = D._Span, D._Basis
    try:
        D._Span, D._Basis = _SortedSpan, _DenseBasis
        ref, ref_audit = D.protect(tables, 10)
    finally:
        D._Span, D._Basis = real
    assert fast.keys() == ref.keys()
    for t in fast:
        assert fast[t].keys() == ref[t].keys()
        for k in fast[t]:
            assert np.array_equal(fast[t][k], ref[t][k])
    assert fast_audit.recovered == ref_audit.recovered
    assert (fast_audit.attacks, fast_audit.secondary) == (ref_audit.attacks, ref_audit.secondary)


def _data(n=400, seed=3):
    rng = np.random.default_rng(seed)
    sex = pd.Categorical(rng.choice(["female", "male", "other", None], n, p=[.5, .4, .05, .05]),
                         categories=["female", "male", "other"])
    country = rng.choice(["DE", "GE", "AM", None], n, p=[.5, .3, .15, .05]).astype(object)
    return pd.DataFrame({"wave": pd.Categorical(rng.choice(["w1", "w2"], n)), "sex": sex,
                         "country": country})


def test_composition_sets_are_one_mask_per_category_and_wave():
    df = _data()
    inp = ReportInputs(title="t", date="2024", data=df,
                       waves=[WaveInfo(id="w1", file="a"), WaveInfo(id="w2", file="b"),
                              WaveInfo(id="w3", file="c")])
    t = composition_table(inp)
    wave = df["wave"].astype(str).to_numpy(dtype=object)
    for var in ("sex", "country"):
        vals = df[var].astype("object").where(df[var].notna(), "(missing)").to_numpy(dtype=object)
        rows = t.data[t.data["variable"] == var]
        cats = sorted(set(vals) - {"(missing)"}) + ["(missing)"]
        assert len(rows) == len(cats)
        for (_, r), cat in zip(rows.iterrows(), cats):
            for w in ("w1", "w2", "w3"):
                want = D.positions((wave == w) & (vals == cat))
                assert np.array_equal(r[D.members_column(f"n_{w}")], want)
                assert r[f"n_{w}"] == len(want)


def test_margin_sets_are_one_mask_per_row():
    df = _data()
    wave = df["wave"].astype(str).to_numpy(dtype=object)
    sex_t = df["sex"].astype("object").astype(str).to_numpy(dtype=object)
    c_t = df["country"].astype("object").astype(str).to_numpy(dtype=object)
    rows = []
    for w in ("w1", "w2"):
        for s in ("female", "male", "other", "<missing>"):
            for c in ("DE", "GE", "AM", "(missing)", "XX"):
                ms = df["sex"].isna().to_numpy() if s == "<missing>" else \
                    (sex_t == s) & df["sex"].notna().to_numpy()
                mc = df["country"].isna().to_numpy() if c == "(missing)" else \
                    (c_t == c) & df["country"].notna().to_numpy()
                mask = (wave == w) & ms & mc
                rows.append({"wave": w, "variable": "sex:country", "category": f"{s}:{c}",
                             "n": int(mask.sum()), "want": D.positions(mask)})
        rows.append({"wave": w, "variable": "sex", "category": "male", "n": -1, "want": None})
        rows.append({"wave": w, "variable": "nope", "category": "x", "n": 0, "want": None})
    m = pd.DataFrame(rows)
    got = _margin_members(ReportInputs(title="t", date="2024", data=df), m)
    for g, want in zip(got, m["want"]):
        assert (g is None) == (want is None)
        if want is not None:
            assert np.array_equal(g, want)
