#!/usr/bin/env python3
"""Benchmark (not CI): the whole pipeline (``diaspora-survey run``) on the example project
generated at larger sizes, step by step, with the compare step beside a bare-numpy
yardstick that computes the same comparison table in one bincount pass per block.

For every size (default 10k, 100k, 500k, 1M respondents; the example generator's three
waves in the proportions 2000:5000:1500) a fresh process:

* generates the project under ``--scratch`` (``python -m diaspora_survey.example`` with
  larger sizes; project file and codebooks copied from this repository);
* times harmonise, weight, panel, compare and report of :class:`diaspora_survey.pipeline.Pipeline`
  in-process (as ``run`` does), then the yardstick on the same weighted data;
* records the peak RSS (VmHWM) and checks that the PDF is valid (pypdf reads every page,
  or, without pypdf, header and trailer).

The yardstick (:func:`yardstick_compare`) is the minimal work behind the report's
comparison table (report.collect.compare_project): domains = the whole frame, the waves
(all indicators, age x sex direct and age-band indirect standardisation) and the countries
(mean age, share 18-34, higher education, entrepreneurs, employed entrepreneurs); per
block of columns one ``np.bincount`` over (PSU, domain) x column for all domains at once,
then per domain the within-stratum covariance (n_h/(n_h-1) sum (z - zbar)(z - zbar)') with
the PSUs outside the domain as zeros, and the estimates (ratios, shares, direct
standardisation) by the delta method. It is checked against the compare step's numbers.

usage: flock /tmp/bench.lock .venv/bin/python bench/bench_pipeline.py [--sizes 10000,100000,500000,1000000]
Prints a markdown table and JSON lines; the 1-minute load average is recorded with every
size (the machine is shared: ratios measured in the same run are what counts).
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

# as the CLI (cli.app._limit_blas_threads): one BLAS thread unless the environment says otherwise
for _k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, os.environ.get("DIASPORA_SURVEY_BLAS_THREADS", "1"))

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRATCH = Path(os.environ.get("BENCH_SCRATCH", "/tmp/diaspora-bench-pipeline"))
WAVE_SHARES = (2000, 5000, 1500)


def status_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def make_project(root: Path, n: int) -> Path:
    """The example project with ``n`` respondents in ``root`` (reused when present)."""
    stamp = root / ".complete"
    if stamp.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "diaspora-survey.toml", root)
    shutil.copytree(REPO / "codebooks", root / "codebooks", dirs_exist_ok=True)
    (root / "reports").mkdir(exist_ok=True)
    from diaspora_survey.example import generate

    t = sum(WAVE_SHARES)
    generate(root / "raw", sizes=tuple(int(round(n * s / t)) for s in WAVE_SHARES))
    stamp.write_text("ok")
    return root


# ------------------------------------------------------------------------------ yardstick
def _codes(s):
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy().astype(np.int64), [str(c) for c in s.cat.categories]
    c, u = pd.factorize(s, sort=True)
    return c.astype(np.int64), [str(x) for x in u]


def _block_vcov(contrib, dom, strat, s_row, n_h, scale_h, D, k):
    """Per domain d: totals (k,) and covariance (k, k) of a block of k columns, one PSU
    per row (the example project's design). contrib: [(mask, column, value)] per row
    (w included). V_d = sum_h s_h [sum_u T_u T_u' - n_h m_hd m_hd'], m_hd = S_hd / n_h:
    PSUs outside the domain are zero totals (Lumley 2010, section 2.3). Sums by one
    ``np.bincount`` each: (domain, stratum, column) for S, (domain, column, column) for
    the Gram matrix over the pairs of a row's contributions."""
    H = n_h.size
    S = np.zeros(D * H * k)
    for m, c, v in contrib:
        S += np.bincount(((dom[m] * H + strat[m]) * k + c[m]), weights=v[m], minlength=D * H * k)
    S = S.reshape(D, H, k)
    G = np.zeros(D * k * k)
    for m1, c1, v1 in contrib:
        for m2, c2, v2 in contrib:
            m = m1 & m2
            G += np.bincount((dom[m] * k + c1[m]) * k + c2[m], weights=s_row[m] * v1[m] * v2[m],
                             minlength=D * k * k)
    G = G.reshape(D, k, k)
    M = S / n_h[None, :, None]
    C = np.einsum("h,dhi,dhj->dij", scale_h * n_h, M, M)
    return [(S[d].sum(0), G[d] - C[d]) for d in range(D)]


def yardstick_compare(data, bands=((18, 24), (25, 29), (30, 34), (35, 39), (40, 44), (45, 49),
                                   (50, 54), (55, 59), (60, 64), (65, 200))):
    """The estimates (estimate, se) of the report's comparison table, bare numpy.

    Returns {(grouping, group, indicator, adjustment, category): (estimate, se)}."""
    import pandas as pd

    from diaspora_survey.harmonise import schema

    n = len(data)
    w = data["weight_pooled"].to_numpy(float)
    age = pd.to_numeric(data["age"], errors="coerce").to_numpy(float)
    frame = age >= 18
    wave, wave_lab = _codes(data["wave"])
    stratum = wave                      # project design: waves as strata, respondents as PSUs
    H = int(stratum.max()) + 1
    n_h = np.bincount(stratum, minlength=H).astype(float)
    scale_h = np.where(n_h > 1, n_h / np.maximum(n_h - 1, 1), 0.0)
    band = np.full(n, -1)
    for b, (lo, hi) in enumerate(bands):
        band[(age >= lo) & (age <= hi)] = b
    C = len(bands)
    sex = data["sex"].astype("object").to_numpy()
    sx = np.where(sex == "male", 0, np.where(sex == "female", 1, -1))
    cell = np.where((band >= 0) & (sx >= 0), sx * C + band, -1)
    edu, edu_lab = _codes(data["education"])
    hi_codes = [i for i, lab in enumerate(edu_lab) if lab in schema.HIGHER_EDUCATION]
    hi = np.isin(edu, hi_codes)
    edu_ok = edu >= 0
    es, es_lab = _codes(data["employment_status"])
    ent = np.isin(es, [i for i, lab in enumerate(es_lab) if lab in schema.ENTREPRENEUR])
    emp = np.isin(es, [i for i, lab in enumerate(es_lab) if lab in schema.EMPLOYED])
    es_ok = es >= 0
    age_ok = ~np.isnan(age)
    a0 = np.where(age_ok, age, 0.0)
    E = len(edu_lab)
    out = {}

    def partition(name, dom, labels, full):
        present = np.flatnonzero(np.bincount(dom[frame & (dom >= 0)], minlength=len(labels)))
        remap = np.full(len(labels), -1)
        remap[present] = np.arange(present.size)
        dom = np.where(dom >= 0, remap[np.maximum(dom, 0)], -1)   # groups with respondents
        labels = [labels[i] for i in present]
        D = len(labels)
        ok = frame & (dom >= 0)
        # unit-domain pairs (PSU = respondent here: one pair per row in the frame)
        rows = np.flatnonzero(ok)
        rd, rs, rw = dom[rows], stratum[rows], w[rows]
        s_row = scale_h[rs]

        def block(vals_keys, k):
            """Totals and covariance of k columns: row i adds w_i*value to its column."""
            contrib = [(m[rows], c[rows].astype(np.int64), rw * v[rows]) for m, c, v in vals_keys]
            return _block_vcov(contrib, rd, rs, s_row, n_h, scale_h, D, k)

        one = np.ones(n)
        z = np.zeros(n, dtype=np.int64)

        def ratio(res, lab, ind, adj="crude", cat=""):
            for d, (t, V) in enumerate(res):
                r = t[0] / t[1]
                J = np.array([1 / t[1], -r / t[1]])
                out[(name, labels[d], ind, adj, cat)] = (r, float(np.sqrt(J @ V @ J)))

        def shares(res, cats, ind):
            for d, (t, V) in enumerate(res):
                tot = t.sum()
                p = t / tot
                J = (np.eye(t.size) - p[:, None]) / tot
                Vp = J @ V @ J.T
                for j, c in enumerate(cats):
                    out[(name, labels[d], ind, "crude", c)] = (p[j], float(np.sqrt(Vp[j, j])))

        def direct(res, ind, wstd):
            for d, (t, V) in enumerate(res):
                Y, N = t[:t.size // 2], t[t.size // 2:]
                with np.errstate(invalid="ignore", divide="ignore"):
                    p = Y / N
                    est = float(np.nansum(wstd * p))
                    J = np.r_[wstd / N, -wstd * p / N]
                J = np.nan_to_num(J)
                out[(name, labels[d], ind, "direct", "")] = (est, float(np.sqrt(J @ V @ J)))

        ratio(block([(age_ok, z, a0), (age_ok, z + 1, one)], 2), labels, "mean_age")
        ratio(block([(age_ok & (age >= 18) & (age <= 34), z, one), (age_ok, z + 1, one)], 2),
              labels, "share_aged_18_34")
        ratio(block([(edu_ok & hi, z, one), (edu_ok, z + 1, one)], 2), labels, "higher_education")
        ratio(block([(es_ok & ent, z, one), (es_ok, z + 1, one)], 2), labels, "entrepreneurs_all")
        ratio(block([(emp & ent, z, one), (emp, z + 1, one)], 2), labels, "entrepreneurs_employed")
        if not full:
            return
        shares(block([(band >= 0, np.maximum(band, 0), one)], C), [f"b{b}" for b in range(C)],
               "age_distribution")
        shares(block([(edu_ok, np.maximum(edu, 0), one)], E), edu_lab, "education_distribution")
        wstd = np.full(2 * C, 1.0 / (2 * C))
        for y, valid, ind in ((hi, edu_ok, "higher_education"), (ent, es_ok, "entrepreneurs_all"),
                              (ent, emp, "entrepreneurs_employed")):
            m = valid & (cell >= 0)
            direct(block([(m, np.maximum(cell, 0), y.astype(float)),
                          (m, 2 * C + np.maximum(cell, 0), one)], 4 * C), ind, wstd)
            mb = valid & (band >= 0)          # indirect: observed and band counts
            block([(mb, np.maximum(band, 0), y.astype(float)), (mb, C + np.maximum(band, 0), one)],
                  2 * C)
        # median age: weighted CDF by single year per domain, Woodruff: variance of F(q)
        ages = np.where(ok & age_ok, a0.astype(np.int64), 0)
        A = int(ages.max()) + 1
        cdf = np.bincount(dom[ok & age_ok] * A + ages[ok & age_ok], weights=w[ok & age_ok],
                          minlength=D * A).reshape(D, A).cumsum(1)
        q = np.argmax(cdf >= 0.5 * cdf[:, -1:], axis=1)
        below = age_ok & (a0 <= q[np.maximum(dom, 0)])
        ratio(block([(age_ok & below, z, one), (age_ok, z + 1, one)], 2), labels, "median_age_F")

    partition("", np.where(frame, 0, -1), ["all"], True)
    partition("wave", wave, wave_lab, True)
    ctry, ctry_lab = _codes(data["country"])
    partition("country", ctry, ctry_lab, False)
    return out


# ------------------------------------------------------------------------------ one size
def run_size(n: int, root: Path) -> dict:
    sys.path.insert(0, str(REPO / "src"))
    t0 = time.perf_counter()
    make_project(root, n)
    gen_s = time.perf_counter() - t0
    for old in (root / "reports").glob("*.pdf"):
        old.unlink()
    from diaspora_survey.pipeline import Pipeline

    rss0 = status_mb("VmRSS")
    pipe = Pipeline(root, command="bench")
    times = {}
    for step in ("harmonise", "weight", "panel", "compare", "report"):   # as `run`
        res = pipe.run_step(step, getattr(pipe, step))
        times[step] = res.seconds
    rss_pipe = status_mb("VmHWM")
    data = pipe.data
    # the compare step again, warm (its first call also imports scipy.stats & co.)
    t = time.perf_counter()
    pipe.compare()
    compare_warm = time.perf_counter() - t
    # yardstick on the same weighted data (best of 2: no first-call imports)
    yt = []
    for _ in range(2):
        t = time.perf_counter()
        ys = yardstick_compare(data)
        yt.append(time.perf_counter() - t)
    comp = pipe.comparison["comparisons"]
    check = _check_against(comp, ys)
    pdf = root / "reports" / "diaspora-report.pdf"
    return {"n": n, "respondents": int(len(data)), "generate_s": round(gen_s, 2),
            **{f"{k}_s": round(v, 3) for k, v in times.items()},
            "run_s": round(sum(times.values()), 2), "compare_warm_s": round(compare_warm, 3),
            "yardstick_compare_s": round(min(yt), 3),
            "compare_over_yardstick": round(compare_warm / min(yt), 2),
            "peak_rss_mb": rss_pipe, "rss_before_mb": rss0, "pdf_valid": _pdf_ok(pdf),
            "pdf_pages": _pdf_pages(pdf), "yardstick_max_rel_diff": check,
            "load_average_1min": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}


def _check_against(comp, ys) -> float:
    """Largest relative difference of crude estimates and SEs, yardstick vs compare."""
    worst = 0.0
    gb = "group_by" if "group_by" in comp.columns else "by"
    for rec in comp[comp["adjustment"] == "crude"].to_dict("records"):
        key = (rec[gb], rec["group"], rec["indicator"], "crude", "")
        if rec["indicator"] in ("mean_age", "share_aged_18_34", "entrepreneurs_all",
                                "entrepreneurs_employed") and key in ys:
            e, s = ys[key]
            for a, b in ((rec["estimate"], e), (rec["se"], s)):
                if np.isfinite(a) and abs(a) > 1e-12:
                    worst = max(worst, abs(a - b) / abs(a))
    return float(worst)


def _pdf_ok(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        from pypdf import PdfReader

        r = PdfReader(str(path))
        for p in r.pages:
            p.extract_text()
        return len(r.pages) > 0
    except ImportError:
        b = path.read_bytes()
        return b.startswith(b"%PDF-") and b.rstrip().endswith(b"%%EOF")
    except Exception:  # noqa: BLE001 - any parse error = invalid
        return False


def _pdf_pages(path: Path):
    if not path.exists():
        return None
    import re

    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,500000,1000000")
    ap.add_argument("--scratch", default=str(SCRATCH))
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)   # internal: one size, this process
    a = ap.parse_args()
    scratch = Path(a.scratch)
    if a.one:
        print(json.dumps(run_size(a.one, scratch / f"p{a.one}")), flush=True)
        return
    rows = []
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), DIASPORA_SURVEY_NO_FORK="1")
    for n in [int(x) for x in a.sizes.split(",")]:
        r = subprocess.run([sys.executable, __file__, "--one", str(n), "--scratch", str(scratch)],
                           capture_output=True, text=True, env=env)
        lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
        if r.returncode or not lines:
            print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
            rows.append({"n": n, "error": (r.stderr or r.stdout)[-300:]})
            continue
        rows.append(json.loads(lines[-1]))
        print(lines[-1], flush=True)
    head = ("| respondents | harmonise s | weight s | panel s | compare s | report s | run s | compare warm s "
            "| yardstick s | compare / yardstick | compare warm / yardstick | peak RSS MB | PDF | load |")
    print("\n" + head + "\n|" + "---:|" * 14)
    for r in rows:
        if "error" in r:
            print(f"| {r['n']:,} | error: {r['error'][:80]} |")
            continue
        print(f"| {r['respondents']:,} | {r['harmonise_s']:.2f} | {r['weight_s']:.2f} | {r['panel_s']:.2f} | "
              f"{r['compare_s']:.2f} | {r['report_s']:.2f} | {r['run_s']:.1f} | "
              f"{r['compare_warm_s']:.2f} | {r['yardstick_compare_s']:.3f} | "
              f"{r['compare_s'] / r['yardstick_compare_s']:.2f} | {r['compare_over_yardstick']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {'valid' if r['pdf_valid'] else 'INVALID'}"
              f" ({r['pdf_pages']} p.) | {r['load_average_1min']} |")
    ok = [r for r in rows if "error" not in r]
    if len(ok) >= 2:
        a0, a1 = ok[0], ok[-1]
        f = a1["respondents"] / a0["respondents"]
        print(f"\ngrowth {a0['respondents']:,} -> {a1['respondents']:,} (x{f:.0f}): run x"
              f"{a1['run_s'] / a0['run_s']:.1f}, compare x{a1['compare_s'] / a0['compare_s']:.1f}")


if __name__ == "__main__":
    main()
