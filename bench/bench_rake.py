#!/usr/bin/env python3
"""Benchmark: rake 1,000,000 rows to 4 margins (27 cells) from a base weight to 1e-8.

Runs, in one go and each in its own process, the peer harness of
``../shared/peer-bench`` (its ``bench_rake.py``: the numpy "cell table" yardstick, the
row-level numpy IPF, and the Python peers installed in /tmp venvs — weightipy, balance,
svy — where present) and ``diaspora_survey.weighting.rake`` on the same data and
targets, and prints the ratios to the yardstick (time) and the peak memory above the
loaded data relative to the size of the data.  Not part of CI.

    .venv/bin/python bench/bench_rake.py                      # N = 1,000,000, 3 reps
    .venv/bin/python bench/bench_rake.py --n 100000 --reps 1  # quick

Peer venvs (created by ../shared/peer-bench/setup_venvs.sh or by hand):
``--venv weightipy=/tmp/venv-weightipy`` etc.; missing ones are skipped and named.
R's ``survey::rake`` and ``calibrate(calfun="raking")`` run through the harness's
``bench.R`` when ``Rscript`` is on the PATH (they need the CSV copy of the data, made
on first use).  Wrap timing runs in ``flock /tmp/bench.lock ...`` on a shared machine;
the load average before and after is printed so a busy machine can be recognised.
Timed: from the in-memory DataFrame to the final weight vector (the peers' convention);
our diagnostics (weight quantiles, SMDs) are computed lazily and are timed separately.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER = Path(os.environ.get("DIASPORA_PEER_BENCH", REPO.parent / "shared" / "peer-bench"))
DEFAULT_VENVS = {"weightipy": ["/tmp/venv-weightipy", "/tmp/w5-weightipy"],
                 "balance": ["/tmp/venv-balance", "/tmp/w5-balance"],
                 "svy": ["/tmp/venv-svy"], "ipfn": ["/tmp/venv-base"]}
R_TOOLS = {"R_rake": "rake", "R_calibrate": "calibrate"}


def ours(n: int, reps: int, scratch: Path) -> None:
    """Child process: time diaspora_survey.weighting.rake with the peer harness helpers."""
    sys.path.insert(0, str(scratch))
    import numpy as np
    import pandas as pd
    from bench_common import DATA, VARS, codes_for, emit, load_targets, margin_check, run_reps, status_mb

    import diaspora_survey as ds
    import diaspora_survey.weighting  # noqa: F401  (imported before timing, as the peers' modules)

    tg = load_targets()
    df = pd.read_parquet(f"{DATA}/survey_{n}.parquet", columns=VARS + ["w"])
    data_mb = df.memory_usage(deep=True).sum() / 2 ** 20
    codes = {v: codes_for(df[v].to_numpy(), list(tg[v])) for v in VARS}
    extra = {}

    def job():
        r = ds.weighting.rake(df, tg, base_weight="w", tol=1e-8, max_iter=1000)
        extra["iterations"] = r.diagnostics.iterations
        extra["_r"] = r
        return r.weights.to_numpy()

    rss0 = status_mb("VmRSS")
    med, times, w = run_reps(job, reps)
    peak = status_mb("VmHWM")
    r = extra.pop("_r")
    import time
    t = time.perf_counter()
    _ = r.diagnostics.summary, r.diagnostics.margins
    diag_s = time.perf_counter() - t
    chk = margin_check(w, codes, tg)
    emit(tool="diaspora_survey", job="rake", n=n, seconds=round(med, 4), peak_rss_mb=peak,
         rss_before_mb=rss0, data_mb=round(data_mb, 1), check=chk, converged=bool(chk < 1e-6),
         times=[round(x, 4) for x in times], diagnostics_seconds=round(diag_s, 4),
         version=f"diaspora_survey {ds.__version__}", setting="weighting.rake(df, shares, base_weight='w', tol=1e-8)",
         **extra)


def _venv(tool: str, given: dict) -> str | None:
    for cand in ([given[tool]] if tool in given else []) + DEFAULT_VENVS.get(tool, []):
        py = Path(cand) / "bin" / "python"
        if py.exists():
            return str(py)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", default=os.environ.get("DIASPORA_BENCH_DATA", "/tmp/diaspora-bench/data"),
                    help="folder for the generated data (the shared folder may be read-only)")
    ap.add_argument("--venv", action="append", default=[], help="tool=/path/to/venv")
    ap.add_argument("--tools", default="numpy_cells,numpy,ours,weightipy,balance,svy,ipfn,R_rake,R_calibrate")
    ap.add_argument("--ours-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the result lines to this file")
    a = ap.parse_args()
    if a.ours_child:
        ours(a.n, a.reps, Path(a.scratch))
        return 0
    if not (PEER / "bench_rake.py").exists():
        print(f"peer harness not found at {PEER}", file=sys.stderr)
        return 2
    data = Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    tools = a.tools.split(",")
    rscript = shutil.which("Rscript")
    want_r = rscript is not None and any(t in R_TOOLS for t in tools)
    if not (data / f"survey_{a.n}.parquet").exists() or (want_r and not (data / f"survey_{a.n}.csv").exists()):
        subprocess.run([sys.executable, str(PEER / "make_data.py"), "--n", str(a.n), "--out", str(data)]
                       + ([] if want_r else ["--no-csv"]), check=True)
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="diaspora-bench-"))
    try:
        for f in ("bench_rake.py", "bench_common.py", "bench.R"):
            if (PEER / f).exists():
                shutil.copy(PEER / f, scratch / f)
        (scratch / "data").symlink_to(data)
        venvs = dict(x.split("=", 1) for x in a.venv)
        rows, skipped = [], []
        for tool in tools:
            if tool in R_TOOLS:
                if rscript is None:
                    skipped.append(f"{tool} (no Rscript on the PATH)")
                    continue
                cmd = [rscript, str(scratch / "bench.R"), "rake", R_TOOLS[tool], str(a.n), str(a.reps)]
            elif tool == "ours":
                cmd = [sys.executable, __file__, "--ours-child", "--n", str(a.n), "--reps", str(a.reps),
                       "--scratch", str(scratch)]
            else:
                py = sys.executable if tool in ("numpy", "numpy_cells") else _venv(tool, venvs)
                if py is None:
                    skipped.append(tool)
                    continue
                cmd = [py, str(scratch / "bench_rake.py"), "--tool", tool, "--n", str(a.n), "--reps", str(a.reps)]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=scratch)
            line = next((ln for ln in p.stdout.splitlines()[::-1] if ln.startswith("{")), None)
            if p.returncode != 0 or line is None:
                skipped.append(f"{tool} (failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode})")
                continue
            rows.append(json.loads(line))
            print(f"  {tool:<16} {rows[-1]['seconds']:.4f} s", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = os.getloadavg()
    if a.json:
        Path(a.json).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    yard = next((r for r in rows if r["tool"] == "numpy_cells"), None)
    our = next((r for r in rows if r["tool"] == "diaspora_survey"), None)
    print(f"\nrake {a.n:,} rows, 4 margins (27 cells), tol 1e-8 — median of {a.reps}")
    print(f"{'tool':<18}{'seconds':>10}{'× yardstick':>13}{'ours ×':>9}{'peak MB':>9}{'max gap':>10}")
    for r in rows:
        rel = r["seconds"] / yard["seconds"] if yard else float("nan")
        vs = r["seconds"] / our["seconds"] if our else float("nan")
        print(f"{r['tool']:<18}{r['seconds']:>10.4f}{rel:>13.2f}{vs:>9.1f}{r['peak_rss_mb']:>9.0f}"
              f"{r['check']:>10.1e}")
    if our:
        extra = our["peak_rss_mb"] - our["rss_before_mb"]
        print(f"\nours: peak memory above the loaded data {extra:.0f} MB = {extra / our['data_mb']:.2f}× "
              f"the data ({our['data_mb']:.0f} MB in memory); lazily computed diagnostics "
              f"{our['diagnostics_seconds']:.3f} s more; {our.get('iterations')} sweeps")
    if our and yard:
        ratio = our["seconds"] / yard["seconds"]
        py_peers = [r for r in rows if r["tool"] in ("weightipy", "balance", "svy")]   # the peers
        table_fitters = [r for r in rows if r["tool"] == "ipfn"]   # fits the table, not respondents
        r_peers = [r for r in rows if r["tool"].startswith("R ")]
        print(f"targets: ours / yardstick = {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})"
              + "".join(f"; {r['tool']} / ours = {r['seconds'] / our['seconds']:.0f}" for r in r_peers)
              + (f"; faster than every Python peer run: "
                 f"{'yes' if all(r['seconds'] > our['seconds'] for r in py_peers) else 'NO'}" if py_peers else "")
              + "".join(f"; ipfn (on the cell table) / ours = {r['seconds'] / our['seconds']:.2f}"
                        for r in table_fitters))
    if skipped:
        print("skipped: " + ", ".join(skipped))
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f} on "
          f"{os.cpu_count()} CPU(s)" + ("  -- the machine was busy: ratios are noisy"
                                        if max(load_before[0], load_after[0]) > 0.5 * (os.cpu_count() or 1) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
