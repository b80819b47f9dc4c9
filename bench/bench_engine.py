"""Benchmark of the out-of-core engine (not CI): ScanDesign on DuckDB and Dask against a
hand-written DuckDB SQL yardstick, on N generated rows (issue 18).

Data: weight, stratum (1,000), PSU (50,000, nested: 50 per stratum), group (12), a numeric
y and a 6-level categorical c, as a folder of parquet files written in chunks by pyarrow.
Measured: mean of y with Taylor SE by the 12 groups, and the 6-level proportion of c by
group: (a) the toolkit on DuckDB (+ peak RSS of that process), (b) a hand-written SQL
yardstick (the same PSU-level sums, then the same numpy variance step), (c) the toolkit on
Dask with a 2-worker LocalCluster; and the agreement of (a), (b), (c) (max relative
difference of estimates and SEs) and of (a) with pandas (in memory) on a 1M-row subset.

    python bench/bench_engine.py 25M 50M --dir /tmp/diaspora-bench-engine [--reps 2] [--no-dask]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

H, PSU, G, K = 1000, 50_000, 12, 6
CHUNK = 5_000_000


def size(text: str) -> int:
    t = text.upper()
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(t[-1], 1)
    return int(float(t.rstrip("KMG")) * mult)


def generate(n: int, folder: Path, seed: int = 1) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cats = pa.array(["a", "b", "c", "d", "e", "f"])
    done, part = 0, 0
    while done < n:
        m = min(CHUNK, n - done)
        psu = rng.integers(0, PSU, m, dtype=np.int32)
        g = rng.integers(0, G, m, dtype=np.int8)
        c = rng.integers(0, K, m, dtype=np.int8)
        tbl = pa.table({"w": rng.gamma(2.0, 50.0, m), "h": (psu // (PSU // H)).astype(np.int32),
                        "psu": psu, "g": g,
                        "y": rng.normal(50.0, 10.0, m) + g + 0.01 * (psu % 97),
                        "c": pa.DictionaryArray.from_arrays(pa.array(c), cats)})
        pq.write_table(tbl, folder / f"part{part:04d}.parquet", row_group_size=1_000_000)
        done += m
        part += 1


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def toolkit(folder: str, engine: str):
    from diaspora_survey.survey.scan import ScanDesign

    client = cluster = None
    if engine == "dask":
        from distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit="8GB")
        client = Client(cluster)
    t0 = time.perf_counter()
    d = ScanDesign(folder, weights="w", strata="h", psu="psu", engine=engine, client=client)
    t1 = time.perf_counter()
    m = d.mean("y", by="g")
    t2 = time.perf_counter()
    p = d.proportion("c", by="g")
    t3 = time.perf_counter()
    if client is not None:
        client.close()
        cluster.close()
    return dict(checks=t1 - t0, mean=t2 - t1, prop=t3 - t2,
                mean_est=m.estimate.tolist(), mean_se=m.se.tolist(),
                prop_est=p.estimate.tolist(), prop_se=p.se.tolist())


def yardstick(folder: str):
    """Hand-written: one SQL GROUP BY per estimate to (h, psu, g[, c]) sums, then numpy."""
    import duckdb

    con = duckdb.connect()
    src = f"read_parquet('{folder}/*.parquet')"

    def variance(cells, nterm, key):
        # cells: h, psu, term, sw (weight of the term's denominator), swy (numerator)
        psu, term = cells["psu"].to_numpy(), key
        sw, swy = cells["sw"].to_numpy(), cells["swy"].to_numpy()
        grp = cells["g"].to_numpy()
        W = np.bincount(grp, weights=sw, minlength=G)
        est = np.bincount(term, weights=swy, minlength=nterm) / W
        z = (swy - est[term] * sw) / W[grp]
        pcode = psu.astype(np.int64)
        T = np.zeros((PSU, nterm))
        np.add.at(T, (pcode, term), z)
        hs = np.arange(PSU) // (PSU // H)
        n_h = np.bincount(hs, minlength=H).astype(float)
        mean_h = np.zeros((H, nterm))
        np.add.at(mean_h, hs, T)
        mean_h /= n_h[:, None]
        D = T - mean_h[hs]
        V = ((n_h / (n_h - 1))[hs][:, None] * D * D).sum(axis=0)
        return est, np.sqrt(V)

    t0 = time.perf_counter()
    m = con.sql(f"SELECT h, psu, g, SUM(w) AS sw, SUM(w*y) AS swy FROM {src} GROUP BY h, psu, g").df()
    em, sm = variance(m, G, m["g"].to_numpy().astype(np.int64))
    t1 = time.perf_counter()
    # proportion: per (h, psu, g) the group weight, per (h, psu, g, c) the level weight
    p = con.sql(f"SELECT h, psu, g, CAST(c AS VARCHAR) AS c, SUM(w) AS swc FROM {src} "
                "GROUP BY h, psu, g, c").df()
    lev = {v: i for i, v in enumerate(sorted(p["c"].unique()))}
    ci = p["c"].map(lev).to_numpy().astype(np.int64)
    g = p["g"].to_numpy().astype(np.int64)
    key = g * K + ci
    # denominator sums per (psu, g) for every level term: swy = w in level, sw = group weight
    # of the cell's rows; z for level j = (w*1[c=j] - p_j w)/W_g summed over the PSU's rows
    psu = p["psu"].to_numpy().astype(np.int64)
    swc = p["swc"].to_numpy()
    W = np.bincount(g, weights=swc, minlength=G)
    est = np.bincount(key, weights=swc, minlength=G * K) / np.repeat(W, K)
    Wpg = np.zeros((PSU, G)); np.add.at(Wpg, (psu, g), swc)
    Npgk = np.zeros((PSU, G * K)); np.add.at(Npgk, (psu, key), swc)
    T = (Npgk - est[None, :] * np.repeat(Wpg, K, axis=1)) / np.repeat(W, K)[None, :]
    hs = np.arange(PSU) // (PSU // H)
    n_h = np.bincount(hs, minlength=H).astype(float)
    mean_h = np.zeros((H, G * K)); np.add.at(mean_h, hs, T)
    D = T - (mean_h / n_h[:, None])[hs]
    sp = np.sqrt(((n_h / (n_h - 1))[hs][:, None] * D * D).sum(axis=0))
    t2 = time.perf_counter()
    return dict(mean=t1 - t0, prop=t2 - t1, mean_est=em.tolist(), mean_se=sm.tolist(),
                prop_est=est.tolist(), prop_se=sp.tolist())


def pandas_check(folder: str, sub: Path):
    """(a) against the in-memory SurveyDesign on the first 1M rows."""
    import duckdb
    import pandas as pd
    from diaspora_survey.survey.design import SurveyDesign
    from diaspora_survey.survey.scan import ScanDesign

    sub.mkdir(parents=True, exist_ok=True)
    f = sub / "sub.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_parquet('{folder}/part0000.parquet') LIMIT 1000000) "
               f"TO '{f}' (FORMAT parquet)")
    df = pd.read_parquet(f)
    df["c"] = df["c"].astype(str)
    kw = dict(weights="w", strata="h", psu="psu")
    mem, scan = SurveyDesign(df, **kw), ScanDesign(f, **kw)
    out = {}
    for name, call in (("mean", lambda d: d.mean("y", by="g")), ("prop", lambda d: d.proportion("c", by="g"))):
        a, b = call(scan), call(mem)
        pd.testing.assert_frame_equal(a, b, rtol=1e-10, check_dtype=False)
        out[name] = max(rel_diff(a.estimate, b.estimate), rel_diff(a.se, b.se))
    return out


def child(args):
    which, folder = args.child, args.folder
    res = {"a": lambda: toolkit(folder, "duckdb"), "b": lambda: yardstick(folder),
           "c": lambda: toolkit(folder, "dask"),
           "p": lambda: pandas_check(folder, Path(folder).parent / "subset")}[which]()
    res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def run_child(which, folder):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", which, "--folder", str(folder)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall"] = time.perf_counter() - t0
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", default=["25M", "50M", "100M", "200M"])
    ap.add_argument("--dir", default="/tmp/diaspora-bench-engine")
    ap.add_argument("--child")
    ap.add_argument("--folder")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--reps", type=int, default=1,
                    help="(a) and (b) alternately this many times; the fastest of each is kept "
                         "(a shared machine's load then weighs on both alike)")
    args = ap.parse_args()
    if args.child:
        return child(args)
    root = Path(args.dir)
    for s in args.sizes:
        n = size(s)
        folder = root / f"n{n}" / "data"
        t0 = time.perf_counter()
        if not folder.exists():
            generate(n, folder)
        gen = time.perf_counter() - t0
        runs = {"a": [], "b": []}
        for _ in range(max(args.reps, 1)):
            for k in ("a", "b"):
                runs[k].append(run_child(k, folder))
        a = min(runs["a"], key=lambda r: r["mean"] + r["prop"])
        b = min(runs["b"], key=lambda r: r["mean"] + r["prop"])
        c = None if args.no_dask else run_child("c", folder)
        p = run_child("p", folder) if s == args.sizes[0] else None
        agree = {"a_vs_b": max(rel_diff(a[k], b[k]) for k in ("mean_est", "mean_se", "prop_est", "prop_se"))}
        if c:
            agree["a_vs_c"] = max(rel_diff(a[k], c[k]) for k in ("mean_est", "mean_se", "prop_est", "prop_se"))
        row = dict(n=s, gen_s=round(gen, 1),
                   a_checks_s=round(a["checks"], 2), a_mean_s=round(a["mean"], 2), a_prop_s=round(a["prop"], 2),
                   a_peak_rss_mb=round(a["maxrss_mb"]),
                   b_mean_s=round(b["mean"], 2), b_prop_s=round(b["prop"], 2),
                   c_mean_s=c and round(c["mean"], 2), c_prop_s=c and round(c["prop"], 2),
                   c_checks_s=c and round(c["checks"], 2),
                   agree=agree, pandas_1M=p and {k: v for k, v in p.items() if k in ("mean", "prop")},
                   reps=max(args.reps, 1), load_average_1min=round(os.getloadavg()[0], 2))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
