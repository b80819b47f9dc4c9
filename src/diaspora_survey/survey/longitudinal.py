"""Longitudinal estimates on a linked panel: retention, returns, onward moves, transitions and
cumulative return by time since departure — all design-based.

The input is the frame of :meth:`diaspora_survey.harmonise.panel.PanelLink.pairs` (one row per
baseline respondent; ``retained``, ``status`` = stayed / moved_on / returned, the follow-up
answers with the suffix ``_fu``) with weights: the baseline weights for retention, the
attrition weights (:func:`diaspora_survey.weighting.attrition.attrition_weights`) for
everything measured at the follow-up.

Design (:func:`panel_design`): the respondent is the PSU — each row of ``pairs`` is one
respondent, so the follow-up answers of a person are one cluster — unless the original design
had clusters, which are then kept as PSUs (with their strata and fpc). Attrition weights are
treated as fixed design weights (as R's ``svydesign(ids=~1, weights=~attrition_weight)``).

* :func:`retention` — the weighted share re-interviewed by baseline characteristics (R:
  ``svyciprop(~retained, subset(...))`` / ``svyby``) and a Rao–Scott test of no difference per
  characteristic (R: ``svychisq(~v + retained, design)``, F statistic);
* :func:`movement_shares` — the shares who stayed, moved on and returned, overall and by
  group (R: ``svyby(~I(status == "returned"), ~host_region, d, svyciprop, method="logit")``);
* :func:`region_test` — Rao–Scott test that the status distribution is the same in every
  region (R: ``svychisq(~host_region + status, d)``);
* :func:`transition_table` — baseline country × follow-up country: the weighted share of each
  destination among the respondents of an origin, with SEs (R: ``svyby(~country_fu, ~country,
  d, svymean)``);
* :func:`cumulative_return` — a weighted Kaplan–Meier-type estimate of the share returned by
  month since departure, with replicate-weight SEs (see its docstring for the assumptions).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import EstimationError

STATUS = ("stayed", "moved_on", "returned")


def panel_design(pairs: pd.DataFrame, weights: str | None = "attrition_weight", *, psu=None, strata=None,
                 fpc=None, retained_only: bool = True, lonely_psu: str = "fail"):
    """The panel design over ``pairs`` (retained respondents only by default): respondent = PSU
    unless the original design's ``psu`` (and ``strata``, ``fpc``) are given.

    R: ``svydesign(ids=~1, weights=~attrition_weight, data=subset(pairs, retained))``."""
    from .design import SurveyDesign

    df = pairs
    if retained_only:
        if "retained" not in pairs.columns:
            raise EstimationError("no 'retained' column", code="estimate.unknown_variable",
                                  hint="pass PanelLink.pairs() (with the attrition weights joined)")
        df = pairs[pairs["retained"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    if df.empty:
        raise EstimationError("no retained respondent in the panel", code="estimate.empty_domain",
                              hint="check the panel link (diaspora-survey panel)")
    if weights is not None and weights in df.columns and df[weights].isna().any():
        raise EstimationError(f"{int(df[weights].isna().sum())} retained respondent(s) without "
                              f"{weights!r}", code="estimate.missing_weight",
                              hint="compute the attrition weights for every retained respondent")
    return SurveyDesign(df, weights=weights, psu=psu, strata=strata, fpc=fpc, nest=strata is not None,
                        lonely_psu=lonely_psu)


def _binary(design, var: str, level: str, name: str):
    """The design with a boolean column ``name`` = (var == level), NA where var is NA."""
    d = design.data
    s = d[var].astype("object")
    col = pd.array(np.where(s.isna(), None, s == level), dtype="boolean")
    return _with_column(design, name, col)


def _with_column(design, name, values):
    data = design.data.copy()
    data[name] = values
    # same design on the extended frame (weights, PSUs, strata unchanged)
    from .design import SurveyDesign

    spec = dict(design._spec)
    w = spec.pop("weights")
    return SurveyDesign(data, weights=design.weights if w == "<array>" else w, **spec)


def _level_masks(col: pd.Series):
    """lev -> boolean mask of the rows equal to lev (missing never equal), from integer
    codes computed once ([scale] not one comparison of n objects per level)."""
    codes, uniq = pd.factorize(col.astype("object"), use_na_sentinel=True)
    pos = {u: i for i, u in enumerate(uniq)}
    return lambda lev: codes == pos.get(lev, -2)


def _domain(design, mask, method: str, var: str):
    """The group ``mask`` for svyciprop: ``design.domain_view`` (the subset's estimate,
    variance and df at the cost of the group's rows) where the interval does not use the
    row count; ``subset`` for "beta"/"likelihood" (R's nrow() of the subset design)."""
    if method in ("beta", "likelihood"):
        return design.subset(mask)
    return design.domain_view(mask, columns=[var])


def retention(pairs: pd.DataFrame, covariates, *, weights: str | None = "weight", psu=None, strata=None,
              fpc=None, level: float = 0.95):
    """Retention by baseline characteristics: (table, tests).

    table: variable, category, n (baseline respondents), n_retained, estimate (weighted share
    re-interviewed), se, ci_low, ci_high (R ``svyciprop(method="logit")``), df. tests: one row per
    variable — the Rao–Scott F test of no difference in retention (R ``svychisq``)."""
    d = panel_design(pairs, weights, psu=psu, strata=strata, fpc=fpc, retained_only=False)
    ret = pairs["retained"].astype("boolean").fillna(False)
    d = _with_column(d, "_retained", pd.Categorical(np.where(ret, "retained", "lost"),
                                                    categories=["lost", "retained"]))
    d = _with_column(d, "_ret", pd.array(ret.to_numpy(dtype=bool), dtype="boolean"))
    rows, tests = [], []
    overall = d.ciprop("_ret", level=level)
    rows.append({"variable": "all", "category": "all", "n": len(pairs), "n_retained": int(ret.sum()),
                 **{k: float(overall[k].iloc[0]) for k in ("estimate", "se", "ci_low", "ci_high", "df")}})
    for v in covariates:
        cats = pairs[v].astype("object")
        data = d.data.copy()
        data[v] = pd.Categorical(cats.where(cats.notna(), None),
                                 categories=[c for c in (pairs[v].cat.categories if isinstance(
                                     pairs[v].dtype, pd.CategoricalDtype) else sorted(cats.dropna().unique()))
                                     if (cats == c).any()])
        dv = _with_column(d, v, data[v])
        est = dv.ciprop("_ret", by=v, level=level)
        g = _level_masks(data[v])
        for i, lev in enumerate(est[v].astype("object")):     # each group's df, as R's svyby
            m = g(lev)
            one = _domain(dv, m, "logit", "_ret").ciprop("_ret", level=level, df=domain_degf(d, m))
            est.loc[est.index[i], ["ci_low", "ci_high", "df"]] = one[["ci_low", "ci_high", "df"]].iloc[0].to_numpy()
        n_ret = pairs[ret.to_numpy(dtype=bool)].groupby(data[v][ret.to_numpy(dtype=bool)], observed=True).size()
        for _, r in est.iterrows():
            rows.append({"variable": v, "category": str(r[v]), "n": int(r["n"]),
                         "n_retained": int(n_ret.get(r[v], 0)),
                         **{k: float(r[k]) for k in ("estimate", "se", "ci_low", "ci_high", "df")}})
        try:
            t = dv.chisq(v, "_retained")
            tests.append({"variable": v, "statistic": float(t["statistic"]), "ndf": float(t["ndf"]),
                          "ddf": float(t["ddf"]), "p_value": float(t["p_value"])})
        except EstimationError as e:
            note = ("every baseline respondent was re-interviewed: nothing to test" if ret.all() else
                    "nobody was re-interviewed" if not ret.any() else e.message.replace("'_retained'", "retention"))
            tests.append({"variable": v, "statistic": np.nan, "ndf": np.nan, "ddf": np.nan,
                          "p_value": np.nan, "note": note})
    return pd.DataFrame(rows), pd.DataFrame(tests)


def movement_shares(design, by=None, *, status: str = "status", level: float = 0.95,
                    method: str = "logit") -> pd.DataFrame:
    """Shares who stayed, moved on and returned (one row per group × status): estimate, se,
    ci_low, ci_high (R ``svyciprop`` with ``method``; linearisation SE; with one ``by`` variable
    the t quantiles use each group's df, R's ``degf()`` of the subset as ``svyby`` passes it), df,
    n (respondents with a known status in the group) and n_cell (of them, with this status).

    R: ``svyby(~I(status == "returned"), ~host_region, d, svyciprop, method = "logit")``."""
    by_l = [] if by is None else ([by] if isinstance(by, str) else list(by))
    out = []
    data = design.data
    known = data[status].notna().to_numpy()
    for st in STATUS:
        dd = _binary(design, status, st, "_is")
        est = dd.ciprop("_is", by=by_l or None, level=level, method=method)
        if len(by_l) == 1 and len(est):
            # intervals on each group's own df, as R's svyby(..., svyciprop) (degf of the subset)
            g = _level_masks(data[by_l[0]])
            for i, lev in enumerate(est[by_l[0]].astype("object")):
                m = g(lev)
                one = _domain(dd, m, method, "_is").ciprop("_is", level=level, method=method,
                                                    df=domain_degf(design, m))
                est.loc[est.index[i], ["ci_low", "ci_high", "df"]] = one[["ci_low", "ci_high", "df"]].iloc[0].to_numpy()
        is_st = (data[status].astype("object") == st).to_numpy() & known
        if by_l:
            cell = pd.Series(is_st).groupby([data[b].to_numpy() for b in by_l], observed=True).sum()
            est["n_cell"] = [int(cell.get(tuple(r[b] for b in by_l) if len(by_l) > 1 else r[by_l[0]], 0))
                             for _, r in est.iterrows()]
        else:
            est["n_cell"] = int(is_st.sum())
        est.insert(len(by_l), "status", st)
        out.append(est.drop(columns=[c for c in ("variable",) if c in est.columns]))
    res = pd.concat(out, ignore_index=True)
    if by_l:
        res = res.sort_values(by_l + ["status"], key=lambda s: s.map({k: i for i, k in enumerate(STATUS)})
                              if s.name == "status" else s, kind="stable").reset_index(drop=True)
    return res


def region_test(design, by: str = "host_region", outcome: str = "status", *, statistic: str = "F") -> pd.Series:
    """Rao–Scott test that ``outcome`` is distributed alike in every group of ``by``
    (R ``svychisq(~host_region + status, d, statistic = "F")``)."""
    return design.chisq(by, outcome, statistic=statistic)


def _order(s: pd.Series, present) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [c for c in s.cat.categories if c in present]
    return sorted(present)


def transition_table(design, origin: str = "country", destination: str = "country_fu", *,
                     level: float = 0.95, ci: str = "logit") -> pd.DataFrame:
    """Origin × destination: share of each destination among the origin's respondents
    (estimate, se, df) with n (respondents of the origin) and n_cell (respondents making that
    move). R: ``svyby(~country_fu, ~country, d, svymean)``. Intervals: ``ci="logit"`` (default)
    as R's ``svyciprop(method="logit")`` from that estimate and SE — inside [0, 1];
    ``ci="mean"``: R's ``confint`` of the svymean (estimate ± t se)."""
    from scipy import stats

    if ci not in ("logit", "mean"):
        raise EstimationError(f"unknown ci {ci!r}", code="estimate.bad_method", hint="'logit' or 'mean'")
    data = design.data
    o = data[origin].astype("object")
    t = data[destination].astype("object")
    ok = o.notna() & t.notna()
    levels = _order(data[destination], set(t[ok]))
    if isinstance(data[destination].dtype, pd.CategoricalDtype) and isinstance(data[origin].dtype, pd.CategoricalDtype):
        levels = list(dict.fromkeys([c for c in data[origin].cat.categories if c in set(t[ok])] + levels))
    dd = _with_column(design, "_dest", pd.Categorical(t.where(ok, None), categories=levels))
    dd = _with_column(dd, "_orig", pd.Categorical(o.where(ok, None), categories=_order(data[origin], set(o[ok]))))
    est = dd.proportion("_dest", by="_orig", level=level)
    if ci == "logit":
        p, se = est["estimate"].to_numpy(float), est["se"].to_numpy(float)
        q = stats.t.ppf(0.5 + level / 2, est["df"].to_numpy(float))
        with np.errstate(divide="ignore", invalid="ignore"):
            lg_ = np.log(p / (1 - p))
            h = q * se / (p * (1 - p))
            est["ci_low"] = 1 / (1 + np.exp(-(lg_ - h)))
            est["ci_high"] = 1 / (1 + np.exp(-(lg_ + h)))
    cnt = pd.Series(1, index=data.index[ok]).groupby([o[ok].to_numpy(), t[ok].to_numpy()]).sum()
    n_o = pd.Series(1, index=data.index[ok]).groupby(o[ok].to_numpy()).sum()
    est = est.rename(columns={"_orig": origin, "level": destination}).drop(columns=["variable"])
    est["n"] = [int(n_o.get(a, 0)) for a in est[origin]]
    est["n_cell"] = [int(cnt.get((a, b), 0)) for a, b in zip(est[origin], est[destination])]
    return est[est["n_cell"] > 0].reset_index(drop=True)


def _months(a, b):
    """Whole months from a to b (datetime-like Series, month precision)."""
    a = pd.to_datetime(a, errors="coerce")
    b = pd.to_datetime(b, errors="coerce")
    return (b.dt.year - a.dt.year) * 12 + (b.dt.month - a.dt.month)


def cumulative_return(design, *, end, start=None, departure: str = "departure_date",
                      returned: str = "returned", return_date: str = "return_date_fu",
                      replicates: str | None = None, estimator: str = "km",
                      level: float = 0.95) -> pd.DataFrame:
    """Cumulative share returned to Russia by month since departure: a weighted Kaplan–Meier
    estimate ``F(t) = 1 - Π_{s<=t} (1 - d_s / Y_s)`` with ``d_s`` the weighted returns in month
    ``s`` after departure and ``Y_s`` the weighted respondents still abroad and under
    observation at ``s``.

    Time is in whole months from the month of departure. A returnee's time is the month of
    return; everyone else is censored at the follow-up interview (``end``: a date, or a column of
    dates). ``start`` (a date or column; e.g. the baseline interview) gives delayed entry:
    respondents are at risk only after ``start``, because a panel recruited abroad at the
    baseline cannot contain those who returned before it (left truncation); a return in the
    month of ``start`` counts as after it (month precision). Without ``start``
    the estimate equals R's ``svykm(Surv(time, returned) ~ 1, design)``.

    Assumptions (say them with the result): returns are final within the window (a returnee who
    left again counts as returned at the first return); censoring and delayed entry are
    independent of returning given the weights (attrition weights correct non-response only
    as far as the model's covariates explain it); the month of return is exact to the month
    and the month of departure is correct; returnees without a return month are left out
    (counted in ``attrs["n_no_date"]``), which biases the curve down by up to their share.

    estimator: ``"km"`` (default) the weighted product limit, R's ``svykm(..., se=FALSE)`` curve;
    ``"nelson_aalen"``: ``1 - exp(-H(t))``, the curve R's ``svykm(..., se=TRUE)`` returns.

    SE: as R's ``svykm(..., se=TRUE)``: ``varlog`` is the linearisation variance of the
    Nelson–Aalen cumulative hazard (≈ var log S(t)), ``se = S(t) sqrt(varlog)`` and the interval
    is R's ``confint.svykm``, ``exp(log S ± z sqrt(varlog))``, turned into ``1 - S``. With
    ``replicates="JK1"`` (or a replicate design) ``varlog`` is the replicate variance of
    ``log S(t)`` instead (R: not available for replicate designs). Returns month, n_risk and
    n_event (unweighted), at_risk and events (weighted), estimate, se, varlog, ci_low, ci_high."""
    from scipy import stats

    data = design.data
    ret = data[returned].astype("boolean")
    t_ev = _months(data[departure], data[return_date])
    endv = data[end] if isinstance(end, str) and end in data.columns else pd.Series(pd.Timestamp(end), index=data.index)
    t_end = _months(data[departure], endv)
    is_ev = ret.fillna(False).to_numpy(dtype=bool)
    time = np.where(is_ev, t_ev.to_numpy(dtype=float, na_value=np.nan), t_end.to_numpy(dtype=float, na_value=np.nan))
    usable = ret.notna().to_numpy() & ~np.isnan(time) & (time >= 0)
    n_no_date = int((is_ev & np.isnan(t_ev.to_numpy(dtype=float, na_value=np.nan))).sum())
    if start is not None:
        sv = data[start] if isinstance(start, str) and start in data.columns else \
            pd.Series(pd.Timestamp(start), index=data.index)
        entry = np.maximum(_months(data[departure], sv).to_numpy(dtype=float, na_value=np.nan), 0)
        usable &= ~np.isnan(entry)
        bad_entry = usable & is_ev & (time < entry)
        usable &= ~bad_entry
    else:
        entry = np.zeros(len(data))
        bad_entry = np.zeros(len(data), dtype=bool)
    usable &= design.domain_mask if hasattr(design, "domain_mask") else True
    if not usable.any():
        raise EstimationError("no respondent with a usable time since departure", code="estimate.empty_domain",
                              hint="departure_date and (for returnees) return dates are needed")
    tt = time[usable].astype(int)
    ee = is_ev[usable]
    en = entry[usable].astype(int)
    months = np.arange(1, tt.max() + 1) if tt.max() >= 1 else np.array([0])
    months = months[np.isin(months, np.unique(tt[ee]))] if ee.any() else months[:0]
    # risk set at month m: entry <= m <= time (a return in the month of the baseline interview
    # counts as after it; month precision cannot tell); events at time == m
    A = (en[:, None] <= months[None, :]) & (tt[:, None] >= months[None, :])
    E = ee[:, None] & (tt[:, None] == months[None, :])

    if estimator not in ("km", "nelson_aalen"):
        raise EstimationError(f"unknown estimator {estimator!r}", code="estimate.bad_method",
                              hint="'km' (product limit) or 'nelson_aalen' (exp(-H))")

    def curve(w):
        Y = w @ A
        D = w @ E
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(Y > 0, D / Y, 0.0)
        if estimator == "nelson_aalen":
            return 1 - np.exp(-np.cumsum(h, axis=-1)), Y, D
        return 1 - np.cumprod(1 - h, axis=-1), Y, D

    w = design.weights[usable]
    F, Y, D = curve(w)
    if replicates is None and not design.is_replicate:
        # R svykm(se=TRUE): delta-method variance of the Nelson–Aalen cumulative hazard
        # H(t) = sum_{s<=t} D_s/Y_s from the linearised totals (survey:::km.stderr); it is
        # the variance of log S(t). Influence of a row: sum_{s<=t} (dN_is/Y_s - D_s y_is/Y_s^2).
        with np.errstate(divide="ignore", invalid="ignore"):
            Z = np.where(Y > 0, E / Y - A * (D / Y ** 2), 0.0)
        Zfull = np.zeros((design.n, months.size))
        Zfull[usable] = np.cumsum(Z, axis=1)
        _, V = design.total_vcov(Zfull, domain=usable)
        varlog = np.clip(np.diag(V), 0, None)
        kind = "linearisation"
    else:
        rep = design if design.is_replicate else design.to_replicate(replicates)
        info = rep.replicate_info
        Wr = np.asarray(info["repw"])[usable]
        Sr = 1 - curve(Wr.T)[0]                         # (R, T)
        rs = np.asarray(info["rscales"], dtype=float)
        with np.errstate(divide="ignore"):
            L, Lr = np.log(1 - F), np.log(Sr)
        centre = L if info.get("mse") else Lr.mean(axis=0)
        varlog = info["scale"] * (rs[:, None] * (Lr - centre) ** 2).sum(axis=0)
        kind = info["type"]
    z = stats.norm.ppf(0.5 + level / 2)
    S = 1 - F
    se = S * np.sqrt(varlog)                            # delta method: se(F) = S se(log S)
    # R confint.svykm: exp(log S -/+ z sqrt(varlog)), here for F = 1 - S
    lo = 1 - np.minimum(np.exp(np.log(np.where(S > 0, S, np.nan)) + z * np.sqrt(varlog)), 1)
    hi = 1 - np.exp(np.log(np.where(S > 0, S, np.nan)) - z * np.sqrt(varlog))
    out = pd.DataFrame({"month": months, "n_risk": A.sum(axis=0), "n_event": E.sum(axis=0),
                        "at_risk": Y, "events": D, "estimate": F, "se": se, "varlog": varlog,
                        "ci_low": lo, "ci_high": hi})
    out.attrs.update(n_no_date=n_no_date, n_used=int(usable.sum()), n_entry_after_return=int(bad_entry.sum()),
                     variance=kind)
    return out


__all__ = ["panel_design", "retention", "movement_shares", "region_test", "transition_table",
           "cumulative_return", "STATUS"]


def domain_degf(design, mask) -> float:
    """R's ``degf(subset(design, mask))``: PSUs minus strata among the rows with a nonzero weight
    in the domain (each row its own PSU when the design has no ``psu``)."""
    m = np.asarray(mask, dtype=bool) & (np.asarray(design.weights) > 0)
    spec = design._spec
    data = design.data
    psu = spec.get("psu")
    strata = spec.get("strata")
    psu = psu[0] if isinstance(psu, list) else psu
    strata = strata[0] if isinstance(strata, list) else strata
    if strata is not None and not isinstance(strata, str) or psu is not None and not isinstance(psu, str):
        return float(design.degf)
    s = data[strata].to_numpy()[m] if strata else np.zeros(int(m.sum()))
    if psu:
        units = pd.MultiIndex.from_arrays([s, data[psu].to_numpy()[m]]).nunique()
    else:
        units = int(m.sum())
    return float(units - len(pd.unique(s)))


def group_share(design, level: str = "returned", *, by: str = "host_region", group=None, versus=None,
                status: str = "status", conf: float = 0.95) -> dict:
    """The share with ``status == level`` among respondents whose ``by`` is in ``group`` (a
    category or a list of categories; None: everyone), or, with ``versus``, the difference
    ``share(group) - share(versus)``.

    Share: R ``svyciprop(~I(status == level), subset(d, by %in% group), method = "logit")`` (t
    quantiles on the subset's ``degf``, as R).
    Difference: ratio estimators of the two domains from one linearisation (their covariance
    included), t interval on the design df — R: ``svycontrast(svyby(~I(status == level),
    ~grp, d, svymean), c(a = 1, b = -1))`` with ``grp`` = "a" in ``group``, "b" in ``versus``.
    Returns estimate, se, ci_low, ci_high, df, n (respondents in the group(s))."""
    from scipy import stats

    data = design.data

    def members(g):
        if g is None:
            return np.ones(len(data), dtype=bool)
        gs = [g] if isinstance(g, str) else list(g)
        if by not in data.columns:
            raise EstimationError(f"no variable {by!r} in the panel", code="estimate.unknown_variable",
                                  hint="group claims by a baseline variable such as host_region")
        known = set(map(str, data[by].dropna().astype(str).unique()))
        cats = set(map(str, data[by].cat.categories)) if isinstance(data[by].dtype, pd.CategoricalDtype) else known
        bad = [x for x in gs if x not in cats]
        if bad:
            raise EstimationError(f"{by!r} has no category {bad[0]!r}", code="estimate.unknown_level",
                                  hint="categories: " + ", ".join(sorted(cats)))
        return data[by].astype("object").isin(gs).to_numpy()

    st = data[status].astype("object")
    ok = st.notna().to_numpy()
    y = (st == level).to_numpy() & ok
    a = members(group) & ok
    if versus is None:
        if not a.any():
            raise EstimationError("no respondent in the group", code="estimate.empty_domain")
        d2 = _with_column(design, "_y", pd.array(np.where(ok, y, None), dtype="boolean"))
        r = _domain(d2, a, "logit", "_y").ciprop("_y", level=conf, df=domain_degf(design, a))
        return {k: float(r[k].iloc[0]) for k in ("estimate", "se", "ci_low", "ci_high", "df")} | {"n": int(a.sum())}
    b = members(versus) & ok
    if not a.any() or not b.any():
        raise EstimationError("no respondent in one of the groups", code="estimate.empty_domain")
    Y = np.column_stack([y * a, a, y * b, b]).astype(float)
    t, V = design.total_vcov(Y)
    pa, pb = t[0] / t[1], t[2] / t[3]
    J = np.array([1 / t[1], -t[0] / t[1] ** 2, -1 / t[3], t[2] / t[3] ** 2])
    se = float(np.sqrt(max(J @ V @ J, 0.0)))
    dfv = float(design.degf)
    q = stats.t.ppf(0.5 + conf / 2, dfv) if np.isfinite(dfv) else stats.norm.ppf(0.5 + conf / 2)
    est = pa - pb
    return {"estimate": est, "se": se, "ci_low": est - q * se, "ci_high": est + q * se, "df": dfv,
            "n": int((a | b).sum()), "estimate_group": pa, "estimate_versus": pb}


__all__ += ["group_share", "domain_degf"]


# ---- the whole panel analysis ------------------------------------------------------------------

ASSUMPTIONS = (
    "Cumulative return is a weighted Kaplan–Meier estimate by whole months since departure: "
    "returns are taken as final within the window; respondents who did not return are censored "
    "at the follow-up interview, and enter the risk set at the baseline interview (a panel recruited "
    "abroad cannot contain those who returned earlier); censoring and entry are assumed independent "
    "of returning given the attrition weights, which correct non-response only as far as the "
    "baseline covariates explain it; returnees without a return month are left out."
)


def _wave_month(wave_id: str):
    import re

    m = re.fullmatch(r"(\d{4})-(\d{2})(?:-\d{2})?", str(wave_id))
    return pd.Timestamp(int(m.group(1)), int(m.group(2)), 1) if m else None


class PanelAnalysis:
    """Everything the panel command and the report show (see :func:`analyse`)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def analyse(link, covariates, *, followup=None, weight: str | None = "weight",
            method: str = "propensity+rake", classes: int = 0, min_cell: int = 20,
            trim_upper: float | None = 5.0, by=("host_region", "departure_cohort"),
            start=None, end=None, level: float = 0.95) -> PanelAnalysis:
    """Link → retention → attrition weights → longitudinal estimates for one follow-up wave.

    ``start``/``end`` (dates) of the cumulative-return curve default to the first of the month
    of the baseline / follow-up wave ids when they are ``YYYY-MM`` dates (else the curve is
    skipped). Returns a :class:`PanelAnalysis` with ``link``, ``followup``, ``pairs`` (with
    ``attrition_weight``), ``retention`` and ``retention_tests``, ``attrition``
    (:class:`~diaspora_survey.weighting.attrition.AttritionResult`), ``design``, ``shares``
    (overall), ``shares_by`` ({variable: frame}), ``region_test`` (Series or None),
    ``transitions``, ``cumulative`` (frame or None), ``assumptions``."""
    from ..weighting.attrition import attrition_weights

    fu = link._fu(followup)
    pairs = link.pairs(fu)
    if weight is not None and weight not in pairs.columns:
        pairs = pairs.assign(**{weight: 1.0})
    att = attrition_weights(pairs, covariates, weight=weight, method=method, classes=classes,
                            min_cell=min_cell, trim_upper=trim_upper)
    pairs["attrition_weight"] = att.weights
    # the original design's clusters and strata (codebook design: psu / strata), else respondent = PSU
    dz = {k: k for k in ("psu", "strata") if k in pairs.columns and pairs[k].notna().all()}
    ret_tab, ret_tests = retention(pairs, covariates, weights=weight, level=level, **dz)
    design = panel_design(pairs, **dz)
    shares = movement_shares(design, level=level)
    shares_by = {}
    for b in by:
        if b in design.data.columns and design.data[b].notna().any():
            shares_by[b] = movement_shares(design, by=b, level=level)
    rtest = None
    try:
        if "host_region" in design.data.columns:
            rtest = region_test(design)
    except EstimationError:
        rtest = None
    trans = transition_table(design) if "country_fu" in design.data.columns else None
    start = start if start is not None else _wave_month(link.baseline)
    end = end if end is not None else _wave_month(fu)
    cum = None
    if end is not None and "return_date_fu" in design.data.columns and "departure_date" in design.data.columns:
        try:
            cum = cumulative_return(design, end=end, start=start, level=level)
        except EstimationError:
            cum = None
    return PanelAnalysis(link=link, followup=fu, pairs=pairs, retention=ret_tab, retention_tests=ret_tests,
                         attrition=att, design=design, shares=shares, shares_by=shares_by, region_test=rtest,
                         transitions=trans, cumulative=cum, assumptions=ASSUMPTIONS, covariates=list(covariates))


__all__ += ["analyse", "PanelAnalysis", "ASSUMPTIONS"]
