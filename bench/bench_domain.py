#!/usr/bin/env python3
"""Benchmark (not CI): weighted mean with Taylor SE by 12 countries, 1,000,000 rows,
100 strata, 2,000 PSUs - the peer harness job (b) of ../shared/peer-bench - and a
proportion of the 6-level ``education`` by country (beside a bare numpy yardstick for it,
written here in the style of the harness's).

Times ``SurveyDesign(df, weights, strata, psu).mean("y_age", by="country")`` (design
construction included) beside the numpy yardstick of the peer harness in this process,
and runs the peers (``svy`` from /tmp/venv-svy, R ``svyby`` if Rscript is available) in
their own processes via the harness scripts, copied to a scratch folder. Prints ratios.

usage: flock /tmp/bench.lock .venv/bin/python bench/bench_domain.py [--n 1000000] [--reps 3] [--no-peers]
(the output records the 1-minute load average: ratios from a busy machine are rough)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEER = Path(os.environ.get("DIASPORA_SHARED", HERE.parent.parent / "shared")) / "peer-bench"
SCRATCH = Path(os.environ.get("BENCH_SCRATCH", "/tmp/diaspora-peer-bench"))


def proportion_yardstick(dom, cat, w, stratum, psu):
    """Bare numpy reference for the shares of every level of ``cat`` by ``dom``: the
    harness's domain-mean algorithm with one bincount over PSU x domain x level."""
    import pandas as pd
    dc, dlev = pd.factorize(dom, sort=True)
    cc, clev = pd.factorize(cat, sort=True)
    pc, _ = pd.factorize(psu)
    sc, _ = pd.factorize(stratum)
    D, L, P, H = len(dlev), len(clev), pc.max() + 1, sc.max() + 1
    pd_ = pc * D + dc
    Sw = np.bincount(pd_, weights=w, minlength=P * D).reshape(P, D)
    Swy = np.bincount(pd_ * L + cc, weights=w, minlength=P * D * L).reshape(P, D, L)
    Wd = Sw.sum(0)
    share = Swy.sum(0) / Wd[:, None]
    z = ((Swy - share[None] * Sw[:, :, None]) / Wd[None, :, None]).reshape(P, D * L)
    psu_str = np.zeros(P, dtype=np.intp)
    psu_str[pc] = sc
    nh = np.bincount(psu_str, minlength=H).astype(float)
    zsum = np.zeros((H, D * L))
    np.add.at(zsum, psu_str, z)
    dev = z - (zsum / nh[:, None])[psu_str]
    ss = np.zeros((H, D * L))
    np.add.at(ss, psu_str, dev * dev)
    fac = np.where(nh > 1, nh / np.maximum(nh - 1, 1), 0.0)
    return share.reshape(-1), np.sqrt((fac[:, None] * ss).sum(0))


def median_time(fn, reps):
    ts, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true")
    a = ap.parse_args()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for f in ("bench_common.py", "bench_domain.py", "make_data.py", "bench.R"):
        shutil.copy(PEER / f, SCRATCH / f)
    data = SCRATCH / "data" / f"survey_{a.n}.parquet"
    if not data.exists() or not data.with_suffix(".csv").exists():
        subprocess.run([sys.executable, "make_data.py", "--n", str(a.n)], cwd=SCRATCH, check=True)
    import pandas as pd

    sys.path.insert(0, str(SCRATCH))
    from bench_domain import domain_mean_taylor  # the peer harness's numpy yardstick

    sys.path.insert(0, str(HERE.parent / "src"))
    from diaspora_survey.survey.design import SurveyDesign

    df = pd.read_parquet(data, columns=["country", "education", "y_age", "stratum", "psu", "w"])
    arrs = [df[c].to_numpy() for c in ("country", "y_age", "w", "stratum", "psu")]
    SurveyDesign(df.head(1000), weights="w", strata="stratum", psu="psu").mean("y_age", by="country")  # warm imports
    t_np, (lev, est_np, se_np) = median_time(lambda: domain_mean_taylor(*arrs), a.reps)

    def ours():
        return SurveyDesign(df, weights="w", strata="stratum", psu="psu").mean("y_age", by="country")

    def ours_prop():
        return SurveyDesign(df, weights="w", strata="stratum", psu="psu").proportion("education", by="country")

    parr = [df[c].to_numpy() for c in ("country", "education", "w", "stratum", "psu")]
    t_np_prop, (share_np, se_np_prop) = median_time(lambda: proportion_yardstick(*parr), a.reps)
    t_ours, res = median_time(ours, a.reps)
    t_prop, pres = median_time(ours_prop, a.reps)
    out = {"n": a.n, "load_average_1min": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
           "numpy_s": round(t_np, 4), "ours_mean_by_s": round(t_ours, 4),
           "ours_over_numpy": round(t_ours / t_np, 2),
           "numpy_proportion_s": round(t_np_prop, 4), "ours_proportion_by_s": round(t_prop, 4),
           "ours_proportion_over_numpy": round(t_prop / t_np_prop, 2),
           "max_abs_share_diff_vs_numpy": float(np.max(np.abs(pres.estimate.to_numpy() - share_np))),
           "max_rel_share_se_diff_vs_numpy": float(np.nanmax(np.abs(pres.se.to_numpy() / se_np_prop - 1))),
           "max_abs_mean_diff_vs_numpy": float(np.max(np.abs(res.estimate.to_numpy() - est_np))),
           "max_rel_se_diff_vs_numpy": float(np.max(np.abs(res.se.to_numpy() / se_np - 1)))}
    if not a.no_peers:
        (SCRATCH / "results").mkdir(exist_ok=True)
        peers = {}
        if shutil.which("Rscript"):
            r = subprocess.run(["Rscript", "bench.R", "domain", "svyby", str(a.n), str(a.reps)], cwd=SCRATCH,
                               capture_output=True, text=True)
            peers["R"] = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        svy_py = Path("/tmp/venv-svy/bin/python")
        if svy_py.exists():
            r = subprocess.run([str(svy_py), "bench_domain.py", "--tool", "svy", "--n", str(a.n), "--reps",
                                str(a.reps)], cwd=SCRATCH, capture_output=True, text=True)
            peers["svy"] = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
            if not peers["svy"]:
                print(r.stderr[-2000:], file=sys.stderr)
        for k, v in peers.items():
            if v:
                out[f"{k}_s"] = v[0]["seconds"]
                out[f"{k}_over_ours"] = round(v[0]["seconds"] / t_ours, 1)
        rpath = SCRATCH / "results" / f"est_R_{a.n}.json"
        if rpath.exists():
            rj = json.loads(rpath.read_text())
            out["max_rel_se_diff_vs_R"] = float(np.max(np.abs(np.array(rj["se"]) / res.se.to_numpy() - 1)))
            out["max_abs_mean_diff_vs_R"] = float(np.max(np.abs(np.array(rj["mean"]) - res.estimate.to_numpy())))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
