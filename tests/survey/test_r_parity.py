"""R parity beyond ../shared/oracle (issue 14): two-stage certainty units, domain degrees
of freedom, subset chisq, ciprop intervals, quantile interval types, ...

Every reference value was computed here with R 4.2 / survey 4.1.1 on R's own api data
(``data(api)``); the R calls are in the docstrings and in ``R_A``'s keys. Tolerances:
estimates 1e-9, SEs / CIs / p-values 1e-6 (relative). apiclus1 and apistrat are read
from ../shared/oracle/data; apiclus2 (126 rows) is embedded below.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import DiasporaSurveyError
from diaspora_survey.survey.design import SurveyDesign

EST, SE = 1e-9, 1e-6
MAXREL: dict[str, float] = {}


def close(area, a, b, tol):
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    assert a.shape == b.shape, (a, b)
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.where(both_nan, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-300))
    MAXREL[area] = max(MAXREL.get(area, 0.0), float(np.nanmax(d)) if d.size else 0.0)
    np.testing.assert_allclose(a[~both_nan], b[~both_nan], rtol=tol, atol=0)

R_A = {
    'degf_H': [7],
    'degf_by': [14, 7, 11],
    'ciprop_H_logit': [0.78571428571414215, 0.091461909988849288, 0.50368796786563674, 0.92981257236462611],
    'ciprop_H_likelihood': [0.78571428571414215, 0.091461909988849288, 0.52181179923188359, 0.94604425405356085],
    'ciprop_H_asin': [0.7857142857142857, 0.091461909988849288, 0.5405400994200128, 0.95333499713283509],
    'ciprop_H_beta': [0.7857142857142857, 0.091461909988849288, 0.5217609712072494, 0.94390769367080685],
    'ciprop_H_mean': [0.7857142857142857, 0.091461909988849288, 0.56944123525765633, 1.0019873361709151],
    'ciprop_H_xlogit': [0.7857142857142857, 0.091461909988849288, 0.50368796786570214, 0.92981257236472026],
    'ciprop_by_logit': [0.91666666666666086, 0.020984278952490824, 0.85920653705640071, 0.95198680147212034, 0.78571428571414215, 0.091461909988849288, 0.50368796786563674, 0.92981257236462611, 0.67999999999990146, 0.10950224839804529, 0.41245544469725248, 0.86545626165111955],
    'ciprop_by_likelihood': [0.91666666666666086, 0.020984278952490824, 0.86416696103308999, 0.95449893006041908, 0.78571428571414215, 0.091461909988849288, 0.52181179923188359, 0.94604425405356085, 0.67999999999990146, 0.10950224839804529, 0.41841858860488623, 0.88028637051379777],
    'ciprop_by_beta': [0.91666666666666663, 0.020984278952490824, 0.85976535873735116, 0.95581662331015127, 0.7857142857142857, 0.091461909988849288, 0.5217609712072494, 0.94390769367080685, 0.68000000000000005, 0.10950224839804529, 0.40570899167224006, 0.88524128954376491],
    'ciprop_full_likelihood': [0.87431693988704007, 0.82628824196357609, 0.9136944918924953],
    'ciprop_strat_likelihood': [0.6389360640505779, 0.56939598460367924, 0.70478590138417618],
    'ciprop_strat_likelihood90': [0.6389360640505779, 0.58082784363776196, 0.6944485092775492],
    'ciprop_beta_df5': [0.87431693989071035, 0.82370221084750106, 0.91470449212686533],
    'ciprop_beta': [0.87431693989071035, 0.82370221084750106, 0.91470449212686533],
    'mean_H': [618.57142857142856, 38.020249359407529, 528.66782488456852, 708.47503225828859],
    'quant_H': [608, 478, 724, 52.016721014828711],
    'quant_by': [652, 36.367252948461626, 561, 717, 608, 52.016721014828711, 478, 724, 642, 43.616832017169536, 528, 720],
    'q_clus1_mean': [552, 492, 627, 31.471661205399485, 652, 561, 714, 35.667882699452747],
    'q_strat_mean': [262, 195, 278, 21.043781354181355, 446, 424, 522, 24.846874369997263, 1139, 1068, 1358, 73.526464972440877],
    'q_clus1_xlogit': [552, 505, 631, 29.373550458372851, 652, 564, 714, 34.968512450443875],
    'q_strat_xlogit': [262, 213, 290, 19.52254414785499, 446, 424, 522, 24.846874369997263, 1139, 1043, 1358, 79.86495333213405],
    'q_clus1_beta': [552, 502, 637, 31.471661205399485, 652, 555, 717, 37.765993446479378],
    'q_strat_beta': [262, 213, 290, 19.52254414785499, 446, 424, 522, 24.846874369997263, 1139, 1043, 1358, 79.86495333213405],
    'q_clus1_asin': [552, 502, 629, 29.606673874709145, 652, 561, 714, 35.667882699452747],
    'q_strat_asin': [262, 213, 285, 18.254846475916356, 446, 424, 522, 24.846874369997263, 1139, 1068, 1358, 73.526464972440877],
    'q_clus1_score': [552, 512, 638, 29.373550458372851, 652, 564, 701, 31.93790803807207],
    'q_strat_score': [262, 190, 266, 19.269004613467263, 446, 365, 424, 14.958832528875902, 1139, 681, 893, 53.750381290198156],
    'chisq_sub_F': [161.73600616140121, 1, 14, 4.4228557041305699e-09],
    'chisq_sub_Chisq': [62.508575689783747, 1, 4.7245917879122201e-37],
    'chisq_sub_Wald': [13.596371109784414, 1, 14, 0.0024377405251726804],
    'chisq_sub_adjWald': [13.596371109784414, 1, 14, 0.0024377405251726804],
    'chisq_sub2_F': [4.8381112140856786, 1.5678115510505803, 14.110303959455223, 0.031692877110988248],
}

APICLUS2 = """
15,3269,1,821,152,E
63,5979,1,773,312,E
83,4958,3,600,173,E
83,4957,3,740,201,M
83,4956,3,716,147,E
117,4915,1,811,234,E
132,2548,3,472,184,E
132,2550,3,520,512,E
132,2549,3,568,543,M
152,348,3,591,332,H
152,349,3,544,217,E
152,350,3,612,520,M
173,4331,4,926,507,E
173,4329,4,890,362,E
173,4330,4,903,402,E
173,4328,4,901,408,E
176,938,1,453,2237,H
198,1299,4,569,471,E
198,1296,4,545,501,E
198,1298,4,584,720,M
198,1297,4,601,311,E
200,841,11,622,365,E
200,843,11,610,834,M
200,837,11,622,397,E
200,840,11,783,376,E
200,835,11,612,498,E
228,943,2,536,NA,E
228,942,2,524,NA,E
264,5629,1,636,112,H
295,5725,5,666,435,E
295,5721,5,698,757,H
295,5724,5,713,445,M
295,5722,5,614,161,E
295,5723,5,701,298,E
302,4969,4,927,224,E
302,4970,4,934,175,E
302,4971,4,933,218,E
302,4972,4,903,463,M
403,5274,5,911,395,E
403,5275,5,889,400,E
403,5277,5,874,362,E
403,5278,5,861,994,M
403,5276,5,842,113,E
452,991,4,652,NA,M
452,989,4,554,NA,E
452,988,4,553,NA,M
452,990,4,601,NA,E
456,5548,1,607,173,E
480,3883,5,717,521,E
480,3881,5,646,541,E
480,3880,5,644,869,M
480,3879,5,631,1111,H
480,3882,5,690,501,E
523,320,2,622,1031,H
523,321,2,566,797,H
534,3502,5,615,421,E
534,3503,5,596,723,M
534,3499,5,547,702,H
534,3500,5,541,411,E
534,3501,5,621,367,E
549,231,5,912,669,H
549,233,5,929,328,E
549,235,5,909,668,M
549,232,5,951,223,E
549,234,5,912,213,E
552,1066,2,759,343,M
552,1065,2,803,454,E
570,2262,36,660,1195,H
570,2283,36,502,1145,M
570,2259,36,479,1120,H
570,2277,36,545,840,E
570,2294,36,478,455,E
574,2653,1,710,181,E
575,4429,28,769,520,E
575,4446,28,865,474,E
575,4430,28,808,408,E
575,4444,28,840,583,E
575,4434,28,840,1119,M
596,5662,7,818,264,E
596,5664,7,821,260,E
596,5663,7,868,235,E
596,5661,7,892,380,E
596,5660,7,824,304,E
620,3779,72,580,282,E
620,3777,72,807,175,E
620,3783,72,537,825,M
620,3758,72,690,230,E
620,3761,72,489,167,E
638,254,14,641,443,E
638,248,14,542,1077,H
638,247,14,645,1270,H
638,251,14,543,406,E
638,258,14,486,239,E
639,5482,7,756,290,E
639,5480,7,795,358,E
639,5478,7,773,348,E
639,5479,7,772,387,E
639,5477,7,743,927,H
674,5688,2,794,443,M
674,5689,2,751,404,E
679,5072,4,631,1067,H
679,5074,4,555,1195,H
679,5075,4,608,1418,H
679,5073,4,627,1418,H
687,5542,3,772,156,M
687,5541,3,738,151,E
687,5540,3,670,125,H
701,802,2,673,181,E
701,801,2,711,205,E
711,2792,2,730,310,M
711,2791,2,711,428,E
719,5893,1,468,298,H
731,5787,9,766,460,E
731,5781,9,742,315,E
731,5782,9,776,1012,M
731,5789,9,742,1211,M
731,5784,9,626,387,E
742,5898,1,747,193,E
768,2371,2,620,271,E
768,2372,2,602,663,M
781,535,6,895,269,E
781,531,6,844,258,E
781,533,6,869,351,E
781,530,6,851,319,E
781,532,6,861,270,E
795,5552,1,653,333,E
"""


@pytest.fixture(scope="module", autouse=True)
def _report_agreement():
    """Prints the max relative difference from R per area (pytest -s shows it)."""
    yield
    if MAXREL:
        print("\nmax relative difference from R per area:")
        for area, v in sorted(MAXREL.items()):
            print(f"  {area:24s} {v:.2e}")


@pytest.fixture(scope="module")
def api(shared_dir):
    d = shared_dir / "oracle" / "data"
    return {k: pd.read_csv(d / f"{k}.csv", dtype={"cds": str}) for k in ("apiclus1", "apistrat")}


@pytest.fixture(scope="module")
def dclus1(api):
    return SurveyDesign(api["apiclus1"], psu="dnum", weights="pw", fpc="fpc")


@pytest.fixture(scope="module")
def dstrat(api):
    return SurveyDesign(api["apistrat"], strata="stype", weights="pw", fpc="fpc")


def apiclus2() -> pd.DataFrame:
    df = pd.read_csv(io.StringIO(APICLUS2), header=None, na_values="NA",
                     names=["dnum", "snum", "fpc2", "api00", "enroll", "stype"])
    df["fpc1"] = 757
    return df


# ----------------------------------------------------------------------------- 1. certainty units

def test_two_stage_certainty_units_match_R():
    """R: dclus2 <- svydesign(id=~dnum+snum, fpc=~fpc1+fpc2, data=apiclus2)
    svymean(~api00, dclus2): 670.811808118081217, SE 30.099027376836602;
    svytotal(~enroll, dclus2, na.rm=TRUE): 2639272.93, SE 799637.77364835783; degf 39;
    svymean(~api00, as.svrepdesign(dclus2, type="JK1")): SE 33.992460762013579.
    Districts with one school sampled out of one (fpc2 = 1) are certainty units, not
    lonely PSUs."""
    d = SurveyDesign(apiclus2(), psu=["dnum", "snum"], fpc=["fpc1", "fpc2"])
    m = d.mean("api00")
    close("certainty", m.estimate, [670.811808118081217], EST)
    close("certainty", m.se, [30.099027376836602], SE)
    t = d.total("enroll")
    close("certainty", t.estimate, [2639272.93], EST)
    close("certainty", t.se, [799637.77364835783], SE)
    assert d.degf == 39
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jk = d.to_replicate("JK1")
    close("certainty", jk.mean("api00").se, [33.992460762013579], SE)


# ----------------------------------------------------------------------------- 2. domain df

def test_domain_degf_matches_R(dclus1):
    """R: degf(subset(dclus1, stype=="H")) = 7; degf of the E/H/M subsets 14, 7, 11;
    confint(svymean(~api00, dH), df=degf(dH)) = 528.66782488456852, 708.47503225828859.
    The full design's df stays available (df="full")."""
    dH = dclus1.subset(dclus1.data.stype == "H")
    assert dH.degf == 7 and dH.full_degf == 14
    m = dH.mean("api00")
    close("domain df", m[["estimate"]], R_A["mean_H"][:1], EST)
    close("domain df", m[["se", "ci_low", "ci_high"]], R_A["mean_H"][1:], SE)
    assert m.df.iloc[0] == 7
    assert dH.mean("api00", df="full").df.iloc[0] == 14
    by = dclus1.mean("api00", by="stype")
    assert list(by.df) == R_A["degf_by"]
    assert list(dclus1.mean("api00", by="stype", df="full").df) == [14, 14, 14]
    with pytest.raises(DiasporaSurveyError):
        dclus1.mean("api00", df="domain?")


@pytest.mark.parametrize("method", ["logit", "likelihood", "asin", "beta", "mean", "xlogit"])
def test_ciprop_in_a_domain_matches_R(dclus1, method):
    """R: dH <- subset(dclus1, stype=="H");
    svyciprop(~I(sch.wide=="Yes"), dH, method=m): estimate, SE, ci (df = degf(dH) = 7)."""
    dH = dclus1.subset(dclus1.data.stype == "H")
    r = dH.ciprop("sch_wide", level_of="Yes", method=method)
    e = R_A[f"ciprop_H_{method}"]
    close("ciprop", r.estimate, e[:1], 1e-9)
    close("ciprop", r[["se", "ci_low", "ci_high"]], e[1:], SE)


@pytest.mark.parametrize("method", ["logit", "likelihood", "beta"])
def test_ciprop_by_group_matches_R(dclus1, method):
    """R: svyby(~I(sch.wide=="Yes"), ~stype, dclus1, svyciprop, method=m, vartype=c("se","ci"))
    (each group's interval on its own degf: 14, 7, 11)."""
    r = dclus1.ciprop("sch_wide", by="stype", level_of="Yes", method=method)
    e = np.asarray(R_A[f"ciprop_by_{method}"]).reshape(3, 4)
    close("ciprop", r.estimate, e[:, 0], 1e-9)
    close("ciprop", r[["se", "ci_low", "ci_high"]], e[:, 1:], SE)


def test_ciprop_likelihood_matches_R(dclus1, dstrat):
    """R: svyciprop(~I(sch.wide=="Yes"), dclus1, method="likelihood");
    svyciprop(~I(awards=="Yes"), dstrat, method="likelihood") at level 0.95 and 0.9
    (the profile deviance over the summary.svyglm dispersion, MASS's profile grid and
    R's spline interpolation)."""
    r = dclus1.ciprop("sch_wide", level_of="Yes", method="likelihood")
    close("ciprop", r[["ci_low", "ci_high"]], R_A["ciprop_full_likelihood"][1:], SE)
    for lev, key in ((0.95, "ciprop_strat_likelihood"), (0.9, "ciprop_strat_likelihood90")):
        r = dstrat.ciprop("awards", level_of="Yes", method="likelihood", level=lev)
        close("ciprop", r[["ci_low", "ci_high"]], R_A[key][1:], SE)


def test_beta_interval_uses_the_design_df(dclus1):
    """R: svyciprop(~I(sch.wide=="Yes"), dclus1, method="beta", df=5) equals the default
    (R's beta method always uses degf(design)): 0.82370221084750106, 0.91470449212686533."""
    for df in (None, 5, float("inf")):
        r = dclus1.ciprop("sch_wide", level_of="Yes", method="beta", df=df)
        close("ciprop", r[["ci_low", "ci_high"]], R_A["ciprop_beta"][1:], SE)
        assert r.df.iloc[0] == 14


def test_quantile_in_a_domain_and_by_group_match_R(dclus1):
    """R: svyquantile(~api00, subset(dclus1, stype=="H"), 0.5) (quantile, ci, se);
    svyby(~api00, ~stype, dclus1, svyquantile, quantiles=0.5, ci=TRUE, vartype=c("se","ci"))."""
    dH = dclus1.subset(dclus1.data.stype == "H")
    q = dH.quantile("api00", 0.5)
    e = R_A["quant_H"]
    close("quantile", q[["estimate", "ci_low", "ci_high"]], e[:3], EST)
    close("quantile", q.se, e[3:], SE)
    qb = dclus1.quantile("api00", 0.5, by="stype")
    e = np.asarray(R_A["quant_by"]).reshape(3, 4)
    close("quantile", qb[["estimate", "ci_low", "ci_high"]], e[:, [0, 2, 3]], EST)
    close("quantile", qb.se, e[:, 1], SE)


@pytest.mark.parametrize("it", ["mean", "xlogit", "beta", "asin", "score"])
def test_quantile_interval_types_match_R(dclus1, dstrat, it):
    """R: svyquantile(~api00, dclus1, c(0.25, 0.5), interval.type=it);
    svyquantile(~enroll, dstrat, c(0.1, 0.5, 0.9), interval.type=it)
    (rows: quantile, ci low, ci high, se)."""
    for d, var, qs, key in ((dclus1, "api00", [0.25, 0.5], "q_clus1_"),
                            (dstrat, "enroll", [0.1, 0.5, 0.9], "q_strat_")):
        q = d.quantile(var, qs, interval_type=it)
        e = np.asarray(R_A[key + it]).reshape(len(qs), 4)
        close("quantile", q[["estimate", "ci_low", "ci_high"]], e[:, :3], EST)
        close("quantile", q.se, e[:, 3], SE)
    with pytest.raises(DiasporaSurveyError):
        dclus1.quantile("api00", 0.5, interval_type="woodruff?")


# ----------------------------------------------------------------------------- 3. chisq on a subset

@pytest.mark.parametrize("stat", ["F", "Chisq", "Wald", "adjWald"])
def test_chisq_on_a_subset_matches_R(dclus1, stat):
    """R: svychisq(~sch.wide+awards, subset(dclus1, stype!="H"), statistic=stat)
    (statistic, parameter(s), p.value)."""
    d = dclus1.subset(dclus1.data.stype != "H")
    r = d.chisq("sch_wide", "awards", statistic=stat)
    e = R_A[f"chisq_sub_{stat}"]
    close("chisq", [r.statistic], e[:1], SE)
    close("chisq", [r.p_value], e[-1:], SE)
    if stat == "Chisq":
        assert r.df == e[1]
    else:
        close("chisq", [r.ndf, r.ddf], e[1:3], SE)


def test_chisq_on_a_subset_second_order_matches_R(dclus1):
    """R: svychisq(~stype+sch.wide, subset(dclus1, api00 > 600)): F, ndf, ddf, p."""
    d = dclus1.subset(dclus1.data.api00 > 600)
    r = d.chisq("stype", "sch_wide")
    close("chisq", [r.statistic, r.ndf, r.ddf, r.p_value], R_A["chisq_sub2_F"], SE)


R_B = {  # R calls in test_brr_uses_R_hadamard_matrices
    'brr20_0': [24, 670.8118081180811, 30.355946210359754, 870064.95506215561, 1.2790084009992857, 0.26563122417416413],
    'brr20_0.3': [24, 670.8118081180811, 28.107949213717546, 870064.95506215561, 1.2790084009992857, 0.24988548865782967],
    'brr11': [12, 699.01095890410954, 31.043654352475066],
}


def paired_clus2(max_pair=None) -> pd.DataFrame:
    """apiclus2 with its 40 districts paired into 20 strata in dnum order (pair 1 = the two
    smallest dnum), unequal numbers of schools per district; pw = 757/40 * fpc2 / (schools
    sampled in the district), R's apiclus2$pw."""
    a = apiclus2()
    ud = np.sort(a.dnum.unique())
    a["pair"] = np.searchsorted(ud, a.dnum) // 2 + 1
    a["pw"] = 757 / 40 * a.fpc2 / a.groupby("dnum").dnum.transform("size")
    return a if max_pair is None else a[a.pair <= max_pair].reset_index(drop=True)


@pytest.mark.parametrize("rho", [0, 0.3])
def test_brr_uses_R_hadamard_matrices(rho):
    """R: a <- apiclus2; ud <- sort(unique(a$dnum)); a$pair <- (match(a$dnum, ud)-1) %/% 2 + 1
    db <- svydesign(id=~dnum, strata=~pair, weights=~pw, data=a)
    r <- as.svrepdesign(db, type="BRR") (or type="Fay", fay.rho=0.3)
    ncol(r$repweights$weights) = 24 (hadamard(20) is Paley's 24, not Sylvester's 32);
    svymean(~api00, r), SE(svytotal(~api00, r)), svyratio(~api00, ~enroll, r, na.rm=TRUE).
    The PSUs have unequal sizes, so the mean's SE depends on the matrix."""
    d = SurveyDesign(paired_clus2(), psu="dnum", strata="pair", weights="pw")
    r = d.to_replicate("BRR") if rho == 0 else d.to_replicate("Fay", rho=rho)
    e = R_B[f"brr20_{rho}"]
    assert r.replicate_info["repw"].shape[1] == e[0]
    m = r.mean("api00")
    close("BRR", m.estimate, e[1:2], EST)
    close("BRR", m.se, e[2:3], SE)
    close("BRR", r.total("api00").se, e[3:4], SE)
    ra = r.ratio("api00", "enroll")
    close("BRR", ra.estimate, e[4:5], EST)
    close("BRR", ra.se, e[5:6], SE)


def test_brr_eleven_strata_twelve_replicates():
    """R: as.svrepdesign(svydesign(id=~dnum, strata=~pair, weights=~pw, data=a[a$pair <= 11,]),
    type="BRR"): 12 replicates (R's hadamard(11) = paley(11)); svymean(~api00, .)."""
    r = SurveyDesign(paired_clus2(11), psu="dnum", strata="pair", weights="pw").to_replicate("BRR")
    e = R_B["brr11"]
    assert r.replicate_info["repw"].shape[1] == e[0]
    m = r.mean("api00")
    close("BRR", m.estimate, e[1:2], EST)
    close("BRR", m.se, e[2:3], SE)


def test_r_hadamard_is_hadamard():
    """survey:::hadamard(n) for n = 1..150 was compared with R element by element while
    porting; here: every matrix is a 0/1 Hadamard matrix with more than n rows."""
    from diaspora_survey.survey.replicate import r_hadamard

    for n in (1, 3, 4, 11, 12, 20, 27, 35, 47, 50, 70, 100):
        H = 2.0 * r_hadamard(n) - 1
        assert H.shape[0] == H.shape[1] > n
        assert np.allclose(H @ H.T, H.shape[0] * np.eye(H.shape[0]))


R_C = {  # R calls in the docstrings of the weighting tests below
    'ps_jk1': [642.31078821158212, 26.934535367425983, 3680892.9451190475, 473431.35677977902, 14],
    'cal_jk1': [665.30907116577998, 3.94285448376767, 3638487.2041318798, 478748.86392581684, 14],
    'calrake_jk1': [665.39379600015013, 3.8792836622570599, 3616588.5632687537, 484873.92692379944],
    'pop_schwide': [1072, 5122],
    'rake_jk1': [641.23024686220879, 26.873474236089432, 3647300.0313143106, 463510.85956667707],
    'pop_awards': [2027, 4167],
    'ps_jkn': [663.79832581998596, 9.471607358119682, 3643807.8689494128, 120244.18005647234, 198],
    'partial': [5439, 645.60610288860289, 23.711086784675185, 2827527.2308333335, 158497.73615728258],
    'trim_-Inf_45_FALSE': [212804.47258726417, 37.215094339622645, 59.925094339622646, 37.215094339622645, 37.215094339622645, 37.215094339622645, 45, 37.215094339622645, 22.204004166278271],
    'trim_-Inf_45_TRUE': [209905.5741482559, 38.48546511627908, 45, 38.48546511627908, 38.48546511627908, 38.48546511627908, 45, 38.48546511627908, 22.575230232037484],
    'trim_20_100_FALSE': [320187.54027083341, 20, 100, 20, 20, 20, 85.880833333333356, 20, 28.697034414751553],
    'trim_20_100_TRUE': [320187.54027083341, 20, 100, 20, 20, 20, 85.880833333333356, 20, 28.697034414751553],
    'trim_30_60_FALSE': [262568.94462500006, 30, 100.00500000000002, 30, 30, 30, 100.00500000000002, 30, 23.204295464701165],
    'trim_30_60_TRUE': [223417.47141276044, 34.673697916666669, 60, 34.673697916666669, 34.673697916666669, 34.673697916666669, 60, 34.673697916666669, 22.883531927697319],
    'trim_25_45_FALSE': [311082.43015625008, 25, 113.39625000000002, 25, 25, 25, 45, 25, 22.5235919503567],
    'trim_25_45_TRUE': [209838.1076235465, 38.705523255813951, 45, 38.705523255813951, 38.705523255813951, 38.705523255813951, 45, 38.705523255813951, 22.50184259835407],
}

POP_STYPE = {"stype": {"E": 4421, "H": 755, "M": 1018}}


def test_poststratify_replicate_design_per_replicate(dclus1, dstrat):
    """R: jk1 <- as.svrepdesign(dclus1, type="JK1"); pop <- data.frame(stype=c("E","H","M"),
    Freq=c(4421,755,1018)); ps <- postStratify(jk1, ~stype, pop)
    svymean(~api00, ps), svytotal(~enroll, ps), degf(ps);
    jkn <- as.svrepdesign(dstrat, type="JKn"); postStratify(jkn, ~awards,
    as.data.frame(table(awards=apipop$awards))) (No 2027, Yes 4167): same.
    Every replicate is post-stratified (the total's SE was 2.16 x R's when the replicates
    were only rescaled)."""
    from diaspora_survey.weighting import poststratify

    for d, targets, key in ((dclus1.to_replicate("JK1"), POP_STYPE, "ps_jk1"),
                            (dstrat.to_replicate("JKn"), {"awards": {"No": 2027, "Yes": 4167}}, "ps_jkn")):
        ps = poststratify(d, targets).design
        e = R_C[key]
        m, t = ps.mean("api00"), ps.total("enroll")
        close("replicate weighting", [m.estimate.iloc[0], t.estimate.iloc[0]], [e[0], e[2]], EST)
        close("replicate weighting", [m.se.iloc[0], t.se.iloc[0]], [e[1], e[3]], SE)
        assert ps.degf == e[4]


def test_calibrate_replicate_design_per_replicate(dclus1):
    """R: cal <- calibrate(jk1, ~stype+api99, c(`(Intercept)`=6194, stypeH=755, stypeM=1018,
    api99=3914069)) (and calfun="raking", epsilon=1e-12, maxit=100):
    svymean(~api00, cal), svytotal(~enroll, cal), degf(cal) = 14."""
    from diaspora_survey.weighting import calibrate

    jk = dclus1.to_replicate("JK1")
    totals = {**POP_STYPE, "api99": 3914069}
    for method, key in (("linear", "cal_jk1"), ("raking", "calrake_jk1")):
        cal = calibrate(jk, totals, method=method, tol=1e-12).design
        e = R_C[key]
        m, t = cal.mean("api00"), cal.total("enroll")
        close("replicate weighting", [m.estimate.iloc[0], t.estimate.iloc[0]], [e[0], e[2]], EST)
        close("replicate weighting", [m.se.iloc[0], t.se.iloc[0]], [e[1], e[3]], SE)
        assert cal.degf == 14


def test_rake_replicate_design_per_replicate(dclus1):
    """R: rk <- rake(jk1, list(~stype, ~sch.wide), list(pop, as.data.frame(table(sch.wide=
    apipop$sch.wide)))) (No 1072, Yes 5122; R's default control maxit=10, epsilon=1):
    svymean(~api00, rk), svytotal(~enroll, rk)."""
    from diaspora_survey.weighting import rake

    jk = dclus1.to_replicate("JK1")
    rk = rake(jk, {**POP_STYPE, "sch_wide": {"No": 1072, "Yes": 5122}}, criterion="r", tol=1,
              max_iter=10).design
    e = R_C["rake_jk1"]
    m, t = rk.mean("api00"), rk.total("enroll")
    close("replicate weighting", [m.estimate.iloc[0], t.estimate.iloc[0]], [e[0], e[2]], EST)
    close("replicate weighting", [m.se.iloc[0], t.se.iloc[0]], [e[1], e[3]], SE)


def test_poststratify_partial_matches_R(api):
    """R: dnoH <- svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=subset(apiclus1, stype!="H"))
    pp <- postStratify(dnoH, ~stype, pop, partial=TRUE): sum(weights(pp)) = 5439 (the H
    cell is ignored, not spread over E and M), svymean(~api00, pp), svytotal(~enroll, pp)."""
    from diaspora_survey.weighting import poststratify

    a = api["apiclus1"]
    d = SurveyDesign(a[a.stype != "H"].reset_index(drop=True), psu="dnum", weights="pw", fpc="fpc")
    e = R_C["partial"]
    for kw in ({"partial": True}, {"empty": "partial"}):
        r = poststratify(d, POP_STYPE, **kw)
        close("poststratify partial", [r.weights.sum()], e[:1], EST)
        assert any("partial=TRUE" in x for x in r.diagnostics.decisions)
        m, t = r.design.mean("api00"), r.design.total("enroll")
        close("poststratify partial", [m.estimate.iloc[0], t.estimate.iloc[0]], [e[1], e[3]], EST)
        close("poststratify partial", [m.se.iloc[0], t.se.iloc[0]], [e[2], e[4]], SE)
    # empty="drop" keeps its documented meaning: the full population total
    assert abs(poststratify(d, POP_STYPE, empty="drop").weights.sum() - 6194) < 1e-6
    with pytest.raises(DiasporaSurveyError):
        poststratify(d, POP_STYPE, partial=True, empty="error")


@pytest.mark.parametrize("lo,hi", [(None, 45), (20, 100), (30, 60), (25, 45)])
@pytest.mark.parametrize("strict", [False, True])
def test_trim_reproduces_R_trimWeights(lo, hi, strict):
    """R: dclus2 <- svydesign(id=~dnum+snum, fpc=~fpc1+fpc2, data=apiclus2)
    tw <- trimWeights(dclus2, lower=lo, upper=hi, strict=strict); w <- weights(tw)
    c(sum(w^2), min(w), max(w), w[c(1, 30, 60, 90, 120)], SE(svymean(~api00, tw))).
    strict=FALSE: trim(strict=False, redistribute="equal"); strict=TRUE:
    trim(redistribute="equal", rule="r")."""
    from diaspora_survey.weighting import trim

    d = SurveyDesign(apiclus2(), psu=["dnum", "snum"], fpc=["fpc1", "fpc2"])
    kw = {"rule": "r"} if strict else {"strict": False}
    w = trim(d.weights, lower=lo, upper=hi, redistribute="equal", **kw).to_numpy()
    e = R_C[f"trim_{'-Inf' if lo is None else lo}_{hi}_{str(strict).upper()}"]
    close("trim", [np.sum(w ** 2), w.min(), w.max()], e[:3], EST)
    close("trim", w[[0, 29, 59, 89, 119]], e[3:8], EST)
    close("trim", d.with_adjustment(w).mean("api00").se, e[8:], SE)
    assert abs(w.sum() - d.weights.sum()) < 1e-9 * w.sum()


R_D = {  # R calls in the docstrings of the glm tests below
    'glm_harm_binomial': [-1.5185571678890086, 0.025715314494730687, 0.35187506155947568, 0.11099558023454023, 0.3818917997167216, 0.0070850280097090428, 0.24221921739041802, 0.30305368013274886, 0.00055926444452582302, 0.0013357153881327459, 0.15925366586011702, 0.71738214221934937, 24],
    'glm_harm_quasibinomial': [-1.5185571678890086, 0.025715314494730687, 0.35187506155947568, 0.11099558023454023, 0.3818917997167216, 0.0070850280097090428, 0.24221921739041802, 0.30305368013274886, 0.00055926444452582302, 0.0013357153881327459, 0.15925366586011702, 0.71738214221934937, 24],
    'glm_harm_country': [-1.0501033766756951, 0.022434092606063966, -0.12610770022092582, -0.23612602260423829, 0.41883214209673003, 0.0066098891708018335, 0.3658854051685641, 0.33911708663913365, 24],
    'glm_off_qp': [-0.16689028610958492, -0.00031903824615260243, 0.00025887817683025165, 0.017113604923573059, 0.00067454384200704698, 0.00066070678674829265, 4.6949710751239231e-07, 0.64472224821785784, 0.70206042968666615, 1.6881872262327913],
    'glm_off_p': [-0.16689028610958492, -0.00031903824615260243, 0.00025887817683025165, 0.017113604923573059, 0.00067454384200704698, 0.00066070678674829265],
    'glm_off_gauss': [28.077083810749986, 0.21061516669354963, 2.9917855102461002, 0.10409261500916306],
    'glm_I': [2.410076520293309, -0.13304772575051424, -1.9896459175841645, -1.7508575234217447, 0.48589895571855851, 0.026037181298728847, 0.4707897620294953, 0.49105204760726778],
    'glm_sub': [806.57121802964718, -4.4345849059720477, -13.67800808628828, 163.53677500785298, 0.73304491945762429, 25.929860636711858, 9],
}

def harmonised_like() -> pd.DataFrame:
    """300 respondents, 3 strata x 10 PSUs, the toolkit's own dtypes: entrepreneur
    (boolean, some NA), age (Int64, some NA), sex (category with an unused level),
    higher_education (boolean), country (string)."""
    rng = np.random.default_rng(20260214)
    n = 300
    st = np.repeat(["s1", "s2", "s3"], 100)
    psu = np.repeat(np.arange(30), 10)
    w = np.round(rng.uniform(0.5, 3.0, n), 3)
    age = rng.integers(18, 70, n)
    sex = rng.choice(["female", "male"], n)
    he = rng.random(n) < 0.55
    eta = -2.0 + 0.03 * age + 0.5 * (sex == "male") + 0.4 * he + rng.normal(0, 0.5, 30)[psu]
    ent = rng.random(n) < 1 / (1 + np.exp(-eta))
    df = pd.DataFrame({"stratum": st, "psu": psu, "w": w,
                       "age": pd.array(age, dtype="Int64"),
                       "sex": pd.Categorical(sex, categories=["female", "male", "other"]),
                       "higher_education": pd.array(he, dtype="boolean"),
                       "entrepreneur": pd.array(ent, dtype="boolean"),
                       "country": pd.array(rng.choice(["DE", "GE", "TR"], n), dtype="string")})
    df.loc[rng.choice(n, 12, replace=False), "age"] = pd.NA
    df.loc[rng.choice(n, 9, replace=False), "entrepreneur"] = pd.NA
    df.loc[rng.choice(n, 5, replace=False), "higher_education"] = pd.NA
    return df



@pytest.mark.parametrize("family", ["binomial", "quasibinomial"])
def test_glm_on_the_toolkits_own_dtypes_matches_R(family):
    """R (harmonised_like() written to CSV, read back with logicals and a factor sex):
    dh <- svydesign(id=~psu, strata=~stratum, weights=~w, nest=TRUE, data=h)
    g <- svyglm(entrepreneur ~ age + sex + higher_education, dh, family=family)
    coef(g), SE(g), p values, g$df.residual. Nullable booleans (with NA), Int64 with NA
    and a categorical with an unused level: NA rows leave the model (na.omit), not the
    design."""
    d = SurveyDesign(harmonised_like(), strata="stratum", psu="psu", weights="w", nest=True)
    g = d.glm("entrepreneur ~ age + sex + higher_education", family=family).set_index("term")
    e = np.asarray(R_D[f"glm_harm_{family}"])
    terms = ["(Intercept)", "age", "sex[T.male]", "higher_education[T.True]"]
    assert list(g.index) == ["(Intercept)", "sex[T.male]", "higher_education[T.True]", "age"]
    close("glm", g.loc[terms, "estimate"], e[0:4], EST)
    close("glm", g.loc[terms, "se"], e[4:8], SE)
    close("glm", g.loc[terms, "p_value"], e[8:12], SE)
    assert g.df.iloc[0] == e[12]
    g2 = d.glm("entrepreneur ~ age + country", family="quasibinomial").set_index("term")
    e = R_D["glm_harm_country"]
    terms = ["(Intercept)", "age", "country[T.GE]", "country[T.TR]"]
    close("glm", g2.loc[terms, "estimate"], e[0:4], EST)
    close("glm", g2.loc[terms, "se"], e[4:8], SE)
    assert g2.df.iloc[0] == e[8]


def test_glm_offsets_and_quasi_families_match_R(dclus1, dstrat):
    """R: svyglm(api.stu ~ ell + meals + offset(log(enroll)), dclus1, family=quasipoisson())
    (coef, SE, p, summary()$dispersion) and family=poisson();
    svyglm(api00 ~ ell + offset(api99), dstrat); svyglm(I(api00 > 700) ~ ell + stype,
    dstrat, family=quasibinomial())."""
    terms = ["(Intercept)", "ell", "meals"]
    for fam, key in (("quasipoisson", "glm_off_qp"), ("poisson", "glm_off_p")):
        g = dclus1.glm("api_stu ~ ell + meals + offset(np.log(enroll))", family=fam).set_index("term")
        e = R_D[key]
        close("glm", g.loc[terms, "estimate"], e[0:3], EST)
        close("glm", g.loc[terms, "se"], e[3:6], SE)
        if fam == "quasipoisson":
            close("glm", g.loc[terms, "p_value"], e[6:9], SE)
            close("glm", [g.attrs["dispersion"]], e[9:10], SE)
    g = dclus1.glm("api_stu ~ ell + meals + offset(log(enroll))", family="quasipoisson")
    close("glm", g.estimate, R_D["glm_off_qp"][0:3], EST)
    g = dstrat.glm("api00 ~ ell + offset(api99)").set_index("term")
    close("glm", g.loc[["(Intercept)", "ell"], "estimate"], R_D["glm_off_gauss"][0:2], EST)
    close("glm", g.loc[["(Intercept)", "ell"], "se"], R_D["glm_off_gauss"][2:4], SE)
    g = dstrat.glm("I(api00 > 700) ~ ell + stype", family="quasibinomial").set_index("term")
    terms = ["(Intercept)", "ell", "stype[T.H]", "stype[T.M]"]
    close("glm", g.loc[terms, "estimate"], R_D["glm_I"][0:4], EST)
    close("glm", g.loc[terms, "se"], R_D["glm_I"][4:8], SE)


def test_glm_in_a_domain_uses_the_domain_df(dclus1):
    """R: g <- svyglm(api00 ~ ell + log(enroll), subset(dclus1, stype != "E"));
    coef(g), SE(g), g$df.residual = 9 (degf of the subset 11, + 1 - 3)."""
    d = dclus1.subset(dclus1.data.stype != "E")
    g = d.glm("api00 ~ ell + log(enroll)").set_index("term")
    e = R_D["glm_sub"]
    terms = ["(Intercept)", "ell", "log(enroll)"]
    close("glm", g.loc[terms, "estimate"], e[0:3], EST)
    close("glm", g.loc[terms, "se"], e[3:6], SE)
    assert g.df.iloc[0] == e[6]


@pytest.mark.parametrize("formula", [
    "y ~ __import__('os').system('touch {marker}')",
    "y ~ open('{marker}', 'w').write('x')",
    "y ~ x + I(__import__('pathlib').Path('{marker}').touch())",
    "y ~ x.__class__.__bases__",
    "y ~ C(x).__init__",
    "y ~ (lambda: open('{marker}', 'w'))()",
    "y ~ [c for c in ().__class__.__base__.__subclasses__()]",
    "y ~ np.lib.npyio.savetxt('{marker}', x)",
    "y ~ x[0]",
    "y ~ eval('1')",
    "y ~ getattr(x, 'mean')()",
    "__import__('os').system('touch {marker}') ~ x",
    "y ~ offset(exec('open(\"{marker}\", \"w\")'))",
    "y ~ Q('__import__')",
    "y ~ C(x, Treatment(reference=__import__('os').getcwd()))",
])
def test_glm_formula_cannot_run_code(tmp_path, formula):
    """Issue 11, item 14: formulas are parsed with a whitelist (columns, arithmetic, C(),
    I(), offset(), log()/np.log(), ...) before patsy evaluates anything; every other
    construct is refused with the package's error and nothing runs."""
    marker = tmp_path / "pwned"
    df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [0.5, 1, 2, 1, 3, 2]})
    d = SurveyDesign(df)
    with pytest.raises(DiasporaSurveyError) as e:
        d.glm(formula.format(marker=marker))
    assert e.value.code == "estimate.bad_formula"
    assert not marker.exists() and not any(tmp_path.iterdir())


def test_glm_formula_whitelist_still_fits():
    """The whitelist keeps the usual formulas: interactions, -1, C() with a reference,
    I() arithmetic, np.log / log, Q()."""
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"y": rng.normal(size=60), "x": rng.uniform(1, 2, 60),
                       "g": rng.choice(["a", "b", "c"], 60), "my var": rng.normal(size=60)})
    d = SurveyDesign(df)
    for f in ("y ~ x*C(g)", "y ~ x:C(g) - 1", "y ~ C(g, Treatment(reference='b'))",
              "y ~ I(x ** 2) + np.log(x) + log(x + 1)", "y ~ Q('my var')", "y ~ x + I(g == 'a')"):
        g = d.glm(f)
        assert np.isfinite(g.estimate).all() and np.isfinite(g.se).all()



R_E = {  # R calls in the docstrings of the contrast / svyvar tests below
    'nl_ratio': [1.0276004934048453, 0.023795858440489388],
    'nl_logratio': [0.027226466406108797, 0.02315672150141182],
    'nl_list': [17.428055555555488, 13.575765946376215, 14.337390234216764, 5.002092916795621],
    'nl_growth': [0.052260546218248605, 0.0036439222308434689],
    'nl_misc': [10194586.074810676, 393964.93664234999],
    'cov3': [15190.586205827334, 15458.825911154325, -13249.102944801814, 15458.825911154325, 16518.236962973442, -9852.963478354608, -13249.102944801814, -9852.963478354608, 195567.69066278962, 1255.7399786809804, 1277.0496395006267, 3296.8131408796316, 1277.0496395006267, 1318.4331131202498, 3245.6309758105717, 3296.8131408796316, 3245.6309758105717, 23231.894997320935],
    'cov_clus1': [11182.822794691647, -5492.3911607518166, -5492.3911607518166, 136424.31441782261, 1386.4139429142574, 3458.1373857000349, 3458.1373857000349, 41377.197636690267],
    'cov_sub': [11270.828622766123, -1727.0893065268067, -1727.0893065268067, 19912.027534965036, 1154.9296536237136, 621.99639467099985, 621.99639467099985, 4711.3652153724179],
}


def test_nonlinear_contrasts_match_R(dclus1, dstrat):
    """R: b <- svyby(~api00, ~stype, dclus1, svymean, covmat=TRUE) (the domains share
    clusters: their covariance counts; svyby's default covmat=FALSE drops it)
    svycontrast(b, quote(E/M)); svycontrast(b, quote(log(E/M)));
    svycontrast(b, list(d=quote(E-M), f=quote(exp(H/100)/(E+M)^0.5)));
    m <- svymean(~api00+api99, dstrat); svycontrast(m, quote(api00/api99 - 1));
    svycontrast(m, quote(sqrt(api00) * api99^2))  (coef, SE)."""
    b = dclus1.mean("api00", by="stype")
    for expr, key in (("E/M", "nl_ratio"), ("log(E / M)", "nl_logratio"), ("np.log(`E`/`M`)", "nl_logratio")):
        c = dclus1.contrast(b, expr)
        close("contrast", c.estimate, R_E[key][:1], EST)
        close("contrast", c.se, R_E[key][1:], SE)
    c = dclus1.contrast(b, {"d": "E - M", "f": "exp(H/100) / (E + M)**0.5"})
    assert list(c.contrast) == ["d", "f"]
    close("contrast", c.estimate, R_E["nl_list"][:2], EST)
    close("contrast", c.se, R_E["nl_list"][2:], SE)
    m = dstrat.mean(["api00", "api99"])
    for expr, key in (("api00/api99 - 1", "nl_growth"), ("sqrt(api00) * api99**2", "nl_misc")):
        c = dstrat.contrast(m, expr)
        close("contrast", c.estimate, R_E[key][:1], EST)
        close("contrast", c.se, R_E[key][1:], SE)
    # a linear expression equals the linear contrast
    lin = dclus1.contrast(b, {"E": 1, "M": -1})
    assert np.allclose(dclus1.contrast(b, "E - M")[["estimate", "se"]], lin[["estimate", "se"]], rtol=1e-14)


@pytest.mark.parametrize("spec", ["E/X", "E/", "__import__('os')", "E.real", "E[0]", "max(E, M)",
                                  ["a", 1, 2], {"E": "one"}, {"Z": 1}, {7: 1}, [1, 2], None, {}, "E ** M if E else M"])
def test_bad_contrasts_are_package_errors(dclus1, spec):
    """contrast(m, "E/X"), malformed expressions, other calls, non-numeric coefficients,
    unknown rows: EstimationError (code estimate.bad_contrast), never a raw ValueError."""
    b = dclus1.mean("api00", by="stype")
    with pytest.raises(DiasporaSurveyError) as e:
        dclus1.contrast(b, spec)
    assert e.value.code == "estimate.bad_contrast"


def test_covariance_matrix_matches_R(dclus1, dstrat):
    """R: v <- svyvar(~api00+api99+enroll, dstrat); as.matrix(v), SE(v);
    svyvar(~api00+enroll, dclus1); svyvar(~api00+enroll, subset(dclus1, stype=="E"))."""
    for d, vs, key in ((dstrat, ["api00", "api99", "enroll"], "cov3"), (dclus1, ["api00", "enroll"], "cov_clus1"),
                       (dclus1.subset(dclus1.data.stype == "E"), ["api00", "enroll"], "cov_sub")):
        v = d.var(vs, covariance=True)
        p = len(vs)
        e = np.asarray(R_E[key])
        assert list(v.variable) == [a for a in vs for _ in vs] and list(v.variable2) == vs * p
        close("svyvar", v.estimate, e[:p * p], EST)
        close("svyvar", v.se, e[p * p:], SE)
        close("svyvar", v.attrs["matrix"].to_numpy(), e[:p * p].reshape(p, p), EST)
        # the diagonal is the univariate svyvar
        for i, a in enumerate(vs):
            close("svyvar", d.var(a).se, e[p * p + i * p + i: p * p + i * p + i + 1], SE)
    by = dclus1.var(["api00", "enroll"], by="stype", covariance=True)
    e = np.asarray(R_E["cov_sub"])
    close("svyvar", by[by.stype == "E"].estimate, e[:4], EST)
    close("svyvar", by[by.stype == "E"].se, e[4:], SE)



R_F = {  # R calls in test_chisq_saddlepoint_matches_R
    'sp_clus1': [11.940892080745339, 0.026441127709637507],
    'sp_strat': [19.479656420958879, 4.8547329135635706e-06],
    'sp_clus1b': [9.0138736842105267, 0.061074537181396028],
    'sp_sub': [7.1305299539170512, 0.032879272439066957],
}


def test_chisq_saddlepoint_matches_R(dclus1, dstrat):
    """R: svychisq(~sch.wide+stype, dclus1, statistic="saddlepoint");
    svychisq(~stype+awards, dstrat, statistic="saddlepoint");
    svychisq(~stype+comp.imp, dclus1, statistic="saddlepoint");
    svychisq(~stype+sch.wide, subset(dclus1, api00 > 600), statistic="saddlepoint")
    (X-squared, p.value)."""
    for d, a, b, key in ((dclus1, "sch_wide", "stype", "sp_clus1"), (dstrat, "stype", "awards", "sp_strat"),
                         (dclus1, "stype", "comp_imp", "sp_clus1b"),
                         (dclus1.subset(dclus1.data.api00 > 600), "stype", "sch_wide", "sp_sub")):
        r = d.chisq(a, b, statistic="saddlepoint")
        close("chisq", [r.statistic, r.p_value], R_F[key], SE)


def test_chisq_lincom_exact_distribution():
    """statistic="lincom": R computes it with CompQuadForm::davies, which is not installed
    with R here (R then falls back to the saddlepoint, with a warning), so it is checked
    against exact cases: with all eigenvalues equal to a, P(a chi2_k - (x/ddf) chi2_ddf > 0)
    = P(F(k, ddf) > x/(a k)); unequal eigenvalues: close to
    the saddlepoint (R: survey:::pchisqsum(5, rep(1,3), c(2,1,0.5), lower.tail=FALSE,
    method="saddlepoint") = 0.22055667496316356)."""
    from scipy import stats

    from diaspora_survey.survey._chisqsum import pfsum_integration, saddle

    for a, k, x, ddf in ((1.0, 2, 5.3, 14), (2.5, 3, 11.0, 40), (0.7, 1, 2.0, 7)):
        p = pfsum_integration(x, np.full(k, a), ddf)
        assert abs(p - stats.f.sf(x / (a * k), k, ddf)) < 1e-9
    sp = saddle(5.0, np.array([2.0, 1.0, 0.5]))
    close("chisq", [sp], [0.22055667496316356], SE)
    exact = pfsum_integration(5.0, np.array([2.0, 1.0, 0.5]), 10 ** 6)
    assert abs(exact - sp) < 0.01


def test_chisq_lincom_on_designs(dclus1, dstrat):
    """lincom on real tables: the same X2 as the saddlepoint, a p-value close to it."""
    for d, a, b in ((dclus1, "sch_wide", "stype"), (dstrat, "stype", "awards")):
        sp = d.chisq(a, b, statistic="saddlepoint")
        lc = d.chisq(a, b, statistic="lincom")
        assert lc.statistic == sp.statistic
        assert abs(np.log(lc.p_value / sp.p_value)) < 0.15



R_G = {  # R calls in test_replicate_types_and_fpc_match_R
    'rt_successive-difference': [644.16939890710387, 14.215177184162281, 0.26666666666666666, 14],
    'rt_ACS': [644.16939890710387, 14.215177184162281, 0.26666666666666666, 14],
    'rt_JK2': [644.16939890710387, 27.527572248824075, 1, 14],
    'rt_jk1_fpc': [644.16939890710387, 26.329360589527614],
    'rt_jkn_corr': [644.16939890710387, 23.786541040175596],
    'rt_other_fpc': [644.16939890710387, 24.997468633338556],
}


def test_replicate_types_and_fpc_match_R(api):
    """R: jk1 <- as.svrepdesign(svydesign(id=~dnum, weights=~pw, data=apiclus1), type="JK1")
    dd <- cbind(apiclus1, weights(jk1, "analysis")) (columns r1..r15);
    svrepdesign(data=dd, repweights="^r[0-9]+$", weights=~pw, type=ty) for ty in
    successive-difference, ACS, JK2 (svymean(~api00), scale, degf);
    type="JK1", scale=14/15, fpc=rep(15/757, 15), fpctype="fraction";
    type="JKn", rscales=rep(14/15, 15), fpc=rep(0.8, 15), fpctype="correction";
    type="other", scale=1, rscales=rep(14/15, 15), fpc=seq(0.01, 0.15, length=15),
    fpctype="fraction"."""
    df = api["apiclus1"]
    jk = SurveyDesign(df, psu="dnum", weights="pw").to_replicate("JK1")
    R = jk.replicate_info["repw"]
    cols = [f"r{i + 1}" for i in range(R.shape[1])]
    dd = pd.concat([df, pd.DataFrame(R, columns=cols)], axis=1)
    for ty in ("successive-difference", "ACS", "JK2"):
        d = SurveyDesign.from_replicate_weights(dd, "pw", cols, type=ty)
        e = R_G[f"rt_{ty}"]
        m = d.mean("api00")
        close("replicate types", m.estimate, e[:1], EST)
        close("replicate types", m.se, e[1:2], SE)
        assert abs(d.replicate_info["scale"] - e[2]) < 1e-15 and d.degf == e[3]
        with pytest.raises(DiasporaSurveyError):
            SurveyDesign.from_replicate_weights(dd, "pw", cols, type=ty, scale=1.0)
    for kw, key in ((dict(type="JK1", scale=14 / 15, fpc=[15 / 757] * 15, fpctype="fraction"), "rt_jk1_fpc"),
                    (dict(type="JKn", rscales=[14 / 15] * 15, fpc=[0.8] * 15, fpctype="correction"), "rt_jkn_corr"),
                    (dict(type="other", scale=1, rscales=[14 / 15] * 15, fpc=np.linspace(0.01, 0.15, 15),
                          fpctype="fraction"), "rt_other_fpc")):
        m = SurveyDesign.from_replicate_weights(dd, "pw", "^r[0-9]+$", **kw).mean("api00")
        close("replicate types", m.se, R_G[key][1:], SE)
    for bad in (dict(type="BRR", fpc=[0.1] * 15, fpctype="fraction"), dict(type="JK1", fpc=[0.1] * 15),
                dict(type="bootstrap", fpc=[0.1] * 15, fpctype="fraction"),
                dict(type="JK1", fpc=[1.5] * 15, fpctype="fraction"), dict(type="JK1", fpc=[0.1] * 3, fpctype="fraction")):
        with pytest.raises(DiasporaSurveyError):
            SurveyDesign.from_replicate_weights(dd, "pw", cols, **bad)
    with pytest.raises(DiasporaSurveyError):
        SurveyDesign(df, psu="dnum", weights="pw").to_replicate("JK2")



R_H = {  # R calls in test_glm_links_and_gamma_match_R
    'gamma_inv': [0.0011649678813314742, 1.9867228064895413e-06, 6.9533678041733401e-06, 1.5416060678491792e-05, 1.151626346224988e-06, 6.9858915886820837e-07, 0.01231937295278117],
    'gamma_log': [5.9400384547909111, 0.0042972366449581766, 1.0162151796923302, 0.76824658879842667, 0.10735949985679391, 0.0032439924172859335, 0.27654171440572095, 0.095778323375806024],
    'gauss_log': [6.7331132381474905, -0.0010468864633764491, -0.0046722373270855185, 0.011175826359724935, 0.00067519779813004967, 0.00042820246625689852],
}


def test_glm_links_and_gamma_match_R(dclus1, dstrat):
    """R: svyglm(api00 ~ ell + meals, dstrat, family=Gamma()) (coef, SE, dispersion);
    svyglm(enroll ~ ell + stype, dclus1, family=Gamma(link="log"));
    svyglm(api00 ~ ell + meals, dstrat, family=gaussian(link="log")).
    (R fits quasibinomial(link="log") of I(sch.wide=="Yes") ~ ell only with start=; here
    that model ends in a clean error instead.)"""
    cases = ((dstrat, "api00 ~ ell + meals", "Gamma", "gamma_inv", ["(Intercept)", "ell", "meals"]),
             (dclus1, "enroll ~ ell + stype", "Gamma(log)", "gamma_log",
              ["(Intercept)", "ell", "stype[T.H]", "stype[T.M]"]),
             (dstrat, "api00 ~ ell + meals", "gaussian(log)", "gauss_log", ["(Intercept)", "ell", "meals"]))
    for d, f, fam, key, terms in cases:
        g = d.glm(f, family=fam).set_index("term")
        e = R_H[key]
        p = len(terms)
        close("glm", g.loc[terms, "estimate"], e[:p], EST)
        close("glm", g.loc[terms, "se"], e[p:2 * p], SE)
        if len(e) > 2 * p:
            close("glm", [g.attrs["dispersion"]], e[2 * p:], SE)
    for bad in ("Gamma(logit)", "tweedie", "binomial(probit)"):
        with pytest.raises(DiasporaSurveyError):
            dclus1.glm("enroll ~ ell", family=bad)
    with pytest.raises(DiasporaSurveyError):
        dclus1.glm("I(sch_wide == 'Yes') ~ ell", family="quasibinomial(link='log')")



def test_quantile_df_argument_matches_R(dclus1):
    """R: svyquantile(~api00, dclus1, 0.5, interval.type="beta", df=3): 652, 555, 717, se
    25.452118348554208 (the beta interval keeps degf(design); only the se's t quantile
    uses df=3); interval.type="mean", df=3: 652, 517, 754, se 37.235506472884857."""
    for it, e in (("beta", [652, 555, 717, 25.452118348554208]), ("mean", [652, 517, 754, 37.235506472884857])):
        q = dclus1.quantile("api00", 0.5, interval_type=it, df=3)
        close("quantile", q[["estimate", "ci_low", "ci_high"]], e[:3], EST)
        close("quantile", q.se, e[3:], SE)


def test_replicate_domain_df_matches_R(dclus1, dstrat):
    """R: jk1 <- as.svrepdesign(dclus1, type="JK1"); degf(subset(jk1, stype=="H")) = 7,
    degf(subset(jk1, stype=="E")) = 14; jkn <- as.svrepdesign(dstrat, "JKn"): degf 197,
    subset awards=="Yes" 112, stype=="H" 49 (R's [.svyrep.design recomputes the rank);
    svyciprop(~I(sch.wide=="Yes"), subset(jk1, stype=="H"), method="logit") and
    confint(svymean(~api00, subset(jk1, stype=="H")), df=7)."""
    jk1 = dclus1.to_replicate("JK1")
    assert jk1.subset(jk1.data.stype == "H").degf == 7
    assert jk1.subset(jk1.data.stype == "E").degf == 14
    assert list(jk1.mean("api00", by="stype").df) == [14, 7, 11]
    jkn = dstrat.to_replicate("JKn")
    assert jkn.degf == 197
    assert jkn.subset(jkn.data.awards == "Yes").degf == 112
    assert jkn.subset(jkn.data.stype == "H").degf == 49
    H = jk1.subset(jk1.data.stype == "H")
    r = H.ciprop("sch_wide", level_of="Yes")
    close("domain df", r[["estimate", "ci_low", "ci_high"]],
          [0.78571428571414215, 0.46495049131486121, 0.93928877278379586], SE)
    m = H.mean("api00")
    close("domain df", m[["estimate"]], [618.57142857142856], EST)
    close("domain df", m[["se", "ci_low", "ci_high"]],
          [46.344121745185973, 508.98499437399329, 728.15786276886388], SE)


def test_ciprop_on_a_replicate_design_matches_R(dclus1):
    """R: jk1 <- as.svrepdesign(dclus1, type="JK1"); svyciprop(~I(sch.wide=="Yes"), jk1,
    method=m) for logit (the intercept's replicate variance), beta, asin. (R's
    method="likelihood" gives NA on replicate designs; here it profiles with the
    replicate variance.)"""
    jk = dclus1.to_replicate("JK1")
    for m, e in (("logit", [0.82346354827010504, 0.91208536451205791]),
                 ("beta", [0.82314207130285377, 0.91506159734842518]),
                 ("asin", [0.82705279102423168, 0.91496959492133578])):
        r = jk.ciprop("sch_wide", level_of="Yes", method=m)
        close("ciprop", r[["ci_low", "ci_high"]], e, SE)
    r = jk.ciprop("sch_wide", level_of="Yes", method="likelihood")
    assert r.ci_low.iloc[0] < r.estimate.iloc[0] < r.ci_high.iloc[0]


@pytest.mark.parametrize("cond", ["@self._data.to_csv('{marker}')", "a.__class__", "a.apply(print)",
                                  "__import__('os').system('touch {marker}')", "a[0] > 1", "b > 1"])
def test_subset_condition_cannot_run_code(tmp_path, cond):
    """subset("...") conditions are checked like formulas: no calls, attributes, subscripts
    or @variables reach DataFrame.eval; unknown names are refused too."""
    marker = tmp_path / "pwned"
    d = SurveyDesign(pd.DataFrame({"a": [1.0, 2, 3], "my col": [1, 2, 3], "g": ["x", "y", "x"]}))
    with pytest.raises(DiasporaSurveyError) as e:
        d.subset(cond.format(marker=marker))
    assert e.value.code == "estimate.bad_subset" and not any(tmp_path.iterdir())
    assert d.subset("a >= 2 and g in ['x', 'z'] and not `my col` == 1").domain_mask.tolist() == [False, False, True]


@pytest.mark.parametrize("it,e", [
    ("score", [652, 28.674180209363975, 582, 705, 608, 39.329715889260733, 517, 703, 642, 42.480977016722406, 512, 699]),
    ("beta", [652, 36.367252948461626, 561, 717, 608, 51.805270929402575, 478, 723, 642, 41.572293016364711, 528, 711]),
    ("xlogit", [652, 34.502265617771286, 566, 714, 608, 51.805270929402575, 478, 723, 642, 37.25604401466564, 547, 711]),
])
def test_quantile_interval_types_by_group_match_R(dclus1, it, e):
    """R: svyby(~api00, ~stype, dclus1, svyquantile, quantiles=0.5, interval.type=it,
    ci=TRUE, vartype=c("se","ci")) (quantile, se, ci per group; each group's own degf)."""
    q = dclus1.quantile("api00", 0.5, by="stype", interval_type=it)
    e = np.asarray(e).reshape(3, 4)
    close("quantile", q[["estimate", "ci_low", "ci_high"]], e[:, [0, 2, 3]], EST)
    close("quantile", q.se, e[:, 1], SE)


def test_quantile_score_in_a_domain_matches_R(dstrat):
    """R: svyquantile(~enroll, subset(dstrat, awards=="Yes"), c(0.3, 0.7), interval.type="score")."""
    q = dstrat.subset(dstrat.data.awards == "Yes").quantile("enroll", [0.3, 0.7], interval_type="score")
    e = np.array([342, 292, 357, 16.399520313036327, 558, 446, 553, 26.996133438382873]).reshape(2, 4)
    close("quantile", q[["estimate", "ci_low", "ci_high"]], e[:, :3], EST)
    close("quantile", q.se, e[:, 3], SE)


def test_glm_with_missing_values_df_matches_R():
    """R: d <- svydesign(id=~dnum+snum, fpc=~fpc1+fpc2, data=apiclus2) (enroll has 6 NA);
    svyglm(api00 ~ enroll, d): coef, SE, df.residual 36 (degf of the complete cases + 1 - 2);
    svyglm(api00 ~ enroll, as.svrepdesign(d, "JK1")): SE, df.residual 38 (degf(jk) + 1 - 2)."""
    d = SurveyDesign(apiclus2(), psu=["dnum", "snum"], fpc=["fpc1", "fpc2"])
    g = d.glm("api00 ~ enroll")
    close("glm", g.estimate, [724.3414065860353, -0.097379260698433404], EST)
    close("glm", g.se, [35.769112117443697, 0.043503538009834003], SE)
    assert g.df.iloc[0] == 36
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jk = d.to_replicate("JK1")
    g = jk.glm("api00 ~ enroll")
    close("glm", g.estimate, [724.3414065860353, -0.097379260698433404], EST)
    close("glm", g.se, [51.879793180939956, 0.066426910888617657], SE)
    assert g.df.iloc[0] == 38
