"""Panel linking: the same respondents across harmonised waves, by a link key.

:func:`link` takes the harmonised waves of a panel in time order (the first is the
baseline), links every later wave to the baseline by the key (``panel_id`` by default, a
harmonised string variable the codebooks map) and returns a :class:`PanelLink`:

* ``data`` — the stacked rows of all panel waves, one row per respondent per wave, with
  ``link_status``: ``baseline`` (a baseline row), ``retained`` (a follow-up row whose key is
  in the baseline), ``unmatched`` (a follow-up key not in the baseline), ``no_key`` (no key:
  e.g. a refreshment respondent), ``duplicate_key`` (the key is repeated in that wave, so it
  links nothing) — no row is dropped;
* ``pairs(followup)`` — one row per baseline respondent with the baseline variables, the
  baseline ``weight`` when given, ``retained`` and the follow-up answers with the suffix
  ``_fu``; for the retained, ``status`` is ``returned`` (lives in Russia: the follow-up's
  ``returned``, which is ``country == RU`` unless asked), ``moved_on`` (the follow-up's
  ``moved_on`` if asked, else a known country other than the baseline's) or ``stayed``;
* ``report`` — a table of what linking found, with counts (matched, unmatched, duplicated
  keys, conflicting fixed attributes, ``returned`` against the country, a wave without
  matches); ``issues`` the same as :class:`PanelIssue` objects whose ``examples`` hold up to
  five respondent ids (for the CLI — reports show counts only).

Conflicting fixed attributes (``sex`` both known and different, ``birth_year`` both known
and different) keep the link and are flagged in ``conflict`` (the reported year may be a
typo, or the key may be wrong: the researcher decides); with ``strict=True`` every problem
is a :class:`~diaspora_survey.errors.PanelError` instead. A wave without the key column, or
whose key is empty in every row, is always an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import PanelError

FIXED = ("sex", "birth_year")
STATUS = ("stayed", "moved_on", "returned")
LINK_STATUS = ("baseline", "retained", "unmatched", "no_key", "duplicate_key")
N_EXAMPLES = 5


@dataclass
class PanelIssue:
    kind: str          # duplicate_key | conflict_sex | conflict_birth_year | no_match | unmatched | returned_inconsistent
    wave: str
    count: int
    message: str
    examples: list = field(default_factory=list)   # respondent ids (CLI only)
    where: str | None = None

    def __str__(self) -> str:
        return f"[{self.wave}] {self.message}"


@dataclass
class PanelLink:
    """The result of :func:`link` (see the module docstring)."""

    data: object
    report: object
    issues: list
    key: str
    baseline: str
    followups: list

    def _fu(self, followup):
        fu = self.followups[-1] if followup is None else str(followup)
        if fu not in self.followups:
            raise PanelError(f"{fu!r} is not a follow-up wave of the panel", code="panel.unknown_wave",
                             hint="follow-up waves: " + ", ".join(self.followups))
        return fu

    def pairs(self, followup=None):
        """One row per baseline respondent (with a usable key): the baseline columns, ``retained``,
        the follow-up columns with suffix ``_fu``, ``status`` and ``conflict``."""
        import numpy as np
        import pandas as pd

        fu = self._fu(followup)
        d = self.data
        base = d[(d["wave"] == self.baseline) & (d["link_status"] == "baseline")].copy()
        later = d[(d["wave"] == fu) & (d["link_status"] == "retained")]
        later = later.drop(columns=["wave", "link_status"]).set_index(self.key)
        later = later.loc[:, later.notna().any().to_numpy()].drop(columns=["weight"], errors="ignore")
        later.columns = [f"{c}_fu" for c in later.columns]
        base = base.drop(columns=["link_status"]).join(later, on=self.key)
        # [scale] hash lookup of the (unique) retained keys, not Series.isin over arrow strings
        lidx = pd.Index(later.index.astype(object).to_numpy())
        bk = base[self.key].astype(object).to_numpy()
        base["retained"] = (lidx.get_indexer(bk) >= 0) if lidx.is_unique else pd.Index(bk).isin(lidx)
        ret = base.get("returned_fu")
        ret = (pd.Series(pd.NA, index=base.index, dtype="boolean") if ret is None else ret.astype("boolean"))
        c0 = base["country"].astype("object") if "country" in base else pd.Series(None, index=base.index)
        c1 = base["country_fu"].astype("object") if "country_fu" in base else pd.Series(None, index=base.index)
        known = c0.notna() & c1.notna()
        if "moved_on_fu" in base and base["moved_on_fu"].notna().any():
            moved = base["moved_on_fu"].astype("boolean")
        else:
            moved = pd.Series(pd.array(np.where(known, (c0 != c1).to_numpy(), False), dtype="boolean"),
                              index=base.index)
            moved[~known] = pd.NA
        moved = moved & ~ret.fillna(False)
        status = np.full(len(base), None, dtype=object)
        r = ret.fillna(False).to_numpy(dtype=bool)
        m = moved.fillna(False).to_numpy(dtype=bool)
        stay = (moved.eq(False).fillna(False).to_numpy(dtype=bool) & ret.eq(False).fillna(False).to_numpy(dtype=bool))
        status[stay] = "stayed"
        status[m] = "moved_on"
        status[r] = "returned"
        status[~base["retained"].to_numpy()] = None
        # living in Russia already at the baseline: no return to measure (reported by link())
        status[c0.eq("RU").to_numpy(dtype=bool)] = None
        base["status"] = pd.Categorical(status, categories=list(STATUS))
        base["returned"] = pd.array(np.where(base["status"].isna(), None, r), dtype="boolean")
        base["moved_on"] = pd.array(np.where(base["status"].isna(), None, m), dtype="boolean")
        base["stayed"] = pd.array(np.where(base["status"].isna(), None, stay), dtype="boolean")
        return base.reset_index(drop=True)

    def transitions(self, followup=None, *, by: str = "country"):
        """Counts of retained respondents by baseline ``by`` × follow-up ``by`` (unweighted)."""
        p = self.pairs(followup)
        p = p[p["retained"]]
        return p.groupby([by, f"{by}_fu"], observed=True).size().rename("n").reset_index()

    def counts(self):
        """``link_status`` counts per wave (a DataFrame)."""
        d = self.data
        return d.groupby(["wave", "link_status"], observed=True).size().unstack(fill_value=0)


def _issue(issues, strict, kind, wave, count, message, examples, where, hint):
    if strict:
        raise PanelError(message + (f" (e.g. {', '.join(map(str, examples[:3]))})" if examples else ""),
                         code=f"panel.{kind}", where=where, hint=hint + "; or run without --strict to get "
                         "them reported")
    issues.append(PanelIssue(kind, wave, int(count), message, list(examples[:N_EXAMPLES]), where))


def link(waves: Mapping[str, object], *, key: str = "panel_id", strict: bool = False,
         where: Mapping[str, str] | None = None, weights=None) -> PanelLink:
    """Link harmonised panel waves (``{wave id: DataFrame}``, in time order; the first is the
    baseline). See the module docstring for the result and the checks.

    weights : optional baseline weights — a Series aligned with the baseline frame's index, or
        a DataFrame with ``wave``, ``resp_id`` and ``weight`` columns (the weight step's output).
    """
    import numpy as np
    import pandas as pd

    from .apply import Harmonised, stack

    ids = [str(w) for w in waves]
    if len(ids) < 2:
        raise PanelError("a panel needs at least two waves", code="panel.too_few_waves",
                         hint="list the baseline and at least one follow-up wave")
    where = dict(where or {})
    frames = {}
    for wid, df in zip(ids, waves.values()):
        df = df.data if isinstance(df, Harmonised) else df
        if key not in df.columns:
            raise PanelError(f"wave {wid} has no link key {key!r}", code="panel.no_key",
                             where=where.get(wid, f"wave {wid}"),
                             hint=f"map the column holding the panel id to {key!r} in the wave's codebook "
                                  f"(variables: {key}: {{source: COLUMN}})")
        kv = df[key].astype("string").str.strip().replace("", pd.NA)
        if kv.isna().all():
            raise PanelError(f"wave {wid}: the link key {key!r} is empty in every row", code="panel.no_key",
                             where=where.get(wid, f"wave {wid}"),
                             hint="check the key's source column in the codebook")
        df = df.drop(columns=[c for c in ("link_status",) if c in df.columns]).copy()
        df[key] = kv
        frames[wid] = df
    baseline, followups = ids[0], ids[1:]
    issues: list[PanelIssue] = []
    rows = []

    if weights is not None:
        b = frames[baseline]
        if isinstance(weights, pd.DataFrame):
            wt = weights[weights["wave"].astype(str) == baseline].set_index(
                weights["resp_id"].astype("string")[weights["wave"].astype(str) == baseline])["weight"]
            b["weight"] = b["resp_id"].astype("string").map(wt).to_numpy(dtype=float, na_value=np.nan)
        else:
            b["weight"] = pd.Series(weights).reindex(b.index).to_numpy(dtype=float)
        if b["weight"].isna().any():
            k = int(b["weight"].isna().sum())
            raise PanelError(f"{k} baseline respondent(s) without a weight", code="panel.missing_weight",
                             where=f"wave {baseline}", hint="weight the baseline wave first (the weight step)")

    status = {}
    dup_keys = {}
    for wid, df in frames.items():
        kv = df[key]
        dup = kv.duplicated(keep=False) & kv.notna()
        dup_keys[wid] = set(kv[dup])
        if dup.any():
            nk = len(dup_keys[wid])
            _issue(issues, strict, "duplicate_key", wid, int(dup.sum()),
                   f"wave {wid}: {nk} key(s) repeated in {int(dup.sum())} rows; those rows link nothing",
                   sorted(dup_keys[wid])[:N_EXAMPLES], where.get(wid),
                   "give every respondent one row per wave (a repeated interview?)")
        st = np.where(kv.isna(), "no_key", np.where(dup, "duplicate_key", "baseline" if wid == baseline else ""))
        status[wid] = st

    bkeys = frames[baseline][key][status[baseline] == "baseline"]
    bset = pd.Index(bkeys)
    bidx = pd.Index(bkeys.astype(object).to_numpy())
    b = frames[baseline][status[baseline] == "baseline"].set_index(key, drop=False)
    rows.append(dict(wave=baseline, check="rows", count=len(frames[baseline])))
    rows.append(dict(wave=baseline, check="keys usable (baseline)", count=len(bset)))
    if "country" in frames[baseline]:
        in_ru = int(frames[baseline]["country"].astype("object").eq("RU").sum())
        rows.append(dict(wave=baseline, check="living in Russia at the baseline (no status)", count=in_ru))
        if in_ru:
            issues.append(PanelIssue("baseline_in_russia", baseline, in_ru,
                                     f"wave {baseline}: {in_ru} baseline respondent(s) live in Russia; they get no "
                                     "status (stayed / moved on / returned)",
                                     frames[baseline].loc[frames[baseline]["country"].astype("object").eq("RU"),
                                                          "resp_id"].tolist()[:N_EXAMPLES], where.get(baseline)))
    for wid in followups:
        df = frames[wid]
        st = status[wid]
        ok = st == ""
        # [scale] a hash lookup of the (unique) baseline keys, not Series.isin over arrow strings
        fk = df[key].astype(object).to_numpy()
        inb = ((bidx.get_indexer(fk) >= 0) if bidx.is_unique else pd.Index(fk).isin(bidx)) & ok
        st = np.where(ok & inb, "retained", np.where(ok, "unmatched", st))
        status[wid] = st
        n_match = int(inb.sum())
        rows += [dict(wave=wid, check="rows", count=len(df)),
                 dict(wave=wid, check="matched to baseline", count=n_match),
                 dict(wave=wid, check="key not in baseline", count=int((st == "unmatched").sum())),
                 dict(wave=wid, check="no key (new respondents)", count=int((st == "no_key").sum())),
                 dict(wave=wid, check="duplicated key rows", count=int((st == "duplicate_key").sum())),
                 dict(wave=wid, check="baseline respondents not re-interviewed", count=len(bset) - n_match)]
        if n_match == 0:
            _issue(issues, strict, "no_match", wid, 0,
                   f"wave {wid}: no key matches the baseline wave {baseline}", [], where.get(wid),
                   f"check that {key!r} holds the same ids in both codebooks (e.g. the baseline's "
                   "respondent number)")
        if (st == "unmatched").any():
            ex = df.loc[st == "unmatched", key].tolist()
            _issue(issues, strict, "unmatched", wid, int((st == "unmatched").sum()),
                   f"wave {wid}: {int((st == 'unmatched').sum())} key(s) not found in the baseline wave",
                   ex, where.get(wid), "check the ids (typos, another id scheme?)")
        # fixed attributes of matched respondents
        m = df[inb]
        conf = np.full(len(df), "", dtype=object)
        for attr in FIXED:
            if attr not in m.columns or attr not in b.columns:
                rows.append(dict(wave=wid, check=f"conflicting {attr} (not in both waves)", count=0))
                continue
            x0 = b.loc[m[key], attr].astype("object").to_numpy()
            x1 = m[attr].astype("object").to_numpy()
            known = pd.notna(x0) & pd.notna(x1)
            bad = np.zeros(len(m), dtype=bool)
            bad[known] = x0[known] != x1[known]
            rows.append(dict(wave=wid, check=f"conflicting {attr}", count=int(bad.sum())))
            if bad.any():
                _issue(issues, strict, f"conflict_{attr}", wid, int(bad.sum()),
                       f"wave {wid}: {int(bad.sum())} matched respondent(s) with a different {attr} than "
                       f"in the baseline (kept linked, flagged in 'conflict')", m[key][bad].tolist(),
                       where.get(wid), f"check the key and the {attr} answers")
                pos = np.flatnonzero(inb)[bad]
                conf[pos] = conf[pos] + attr + " "
        conf = pd.Series(conf, index=df.index, dtype="string").str.strip()
        df["conflict"] = conf.mask(conf == "")
    for wid, df in frames.items():
        if "returned" in df and "country" in df:
            in_ru = df["country"].astype("object").eq("RU")
            ret = df["returned"].astype("boolean")
            bad = (df["country"].notna() & ret.notna()).to_numpy(dtype=bool) & \
                (ret.fillna(False).to_numpy(dtype=bool) != in_ru.to_numpy(dtype=bool))
            rows.append(dict(wave=wid, check="returned inconsistent with country", count=int(bad.sum())))
            if bad.any():
                _issue(issues, strict, "returned_inconsistent", wid, int(bad.sum()),
                       f"wave {wid}: {int(bad.sum())} respondent(s) answer 'returned' against their country "
                       "(returned but living abroad, or living in Russia but not returned); the answer to "
                       "'returned' is used", df.loc[bad, "resp_id"].tolist(), where.get(wid),
                       "check the residence questions of these respondents")
        df["link_status"] = pd.Categorical(status[wid], categories=list(LINK_STATUS))
        if "conflict" not in df:
            df["conflict"] = pd.Series(pd.NA, index=df.index, dtype="string")

    cat_cols = {c for df in frames.values() for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)}
    for wid, df in frames.items():
        for c in cat_cols & set(df.columns):   # categorical in one wave: categorical in all (for stacking)
            if not isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype("object").astype("category")
        df.insert(0, "wave", wid)
    cat_like = {wid: Harmonised(data=df.drop(columns=["wave"]), issues=[], exclusions=_empty_excl(),
                                summary=None, wave=wid) for wid, df in frames.items()}
    data, _ = stack(list(cat_like.values()), ids)
    report = pd.DataFrame(rows, columns=["wave", "check", "count"])
    return PanelLink(data=data, report=report, issues=issues, key=key, baseline=baseline,
                     followups=followups)


def _empty_excl():
    import pandas as pd

    return pd.DataFrame({"wave": pd.Series([], dtype="string"), "row": pd.Series([], dtype="Int64"),
                         "resp_id": pd.Series([], dtype="string"), "reason": pd.Series([], dtype="string"),
                         "detail": pd.Series([], dtype="string")})


__all__ = ["link", "PanelLink", "PanelIssue", "STATUS", "LINK_STATUS", "FIXED"]
