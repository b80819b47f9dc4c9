#!/usr/bin/env python3
"""Benchmark (not CI): reading the 1,000,000 × 50 SPSS file of ../shared/peer-bench.

Times ``diaspora_survey.read_wave`` beside plain ``pyreadstat.read_sav`` (one process; the
yardstick), pyreadstat's own 2-process reader, ``pandas.read_spss`` and, if ``Rscript``
with haven is installed, R ``haven::read_sav`` — in the same run, each read in a fresh
process (so peak memory is that read's own), rounds interleaved (tool A, B, C, A, B, C …)
so that a busy machine slows all tools alike. Prints medians, ratios to one-process
pyreadstat and peak memory: the process's VmHWM (for 2-process readers plus the helper's
peak), and the peak proportional set size of the whole process tree, sampled every 20 ms
from outside. Also compares small files (in-process, many repetitions).

read_wave's helper is forked: its VmHWM counts pages it shares with the parent (the
interpreter and libraries it inherits, and the shared mapping both write the numeric
columns into) once more, so "process + helper" overstates its memory; PSS does not.

For timing runs, take the lock the other benchmarks use:
``flock /tmp/bench.lock .venv/bin/python bench/bench_read.py``.

The data are made once by the peer harness's ``make_data.py`` in a scratch folder (the
shared folder is read-only): about 400 MB for 1M rows.

usage: .venv/bin/python bench/bench_read.py [--n 1000000] [--rounds 3] [--scratch /tmp/dsbench]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("DIASPORA_SHARED", REPO.parent / "shared"))
PEER = SHARED / "peer-bench"

# one read, in a fresh process: prints {"seconds", "peak_mb", "child_peak_mb", "shape"}
CHILD = r"""
import json, resource, sys, time
tool, path = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
import pandas as pd, pyreadstat
if tool.startswith("read_wave"):
    import diaspora_survey as ds
    ds.read_wave  # resolve the lazy import outside the timing
    import diaspora_survey.io.spss, diaspora_survey.io.reader
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
t = time.perf_counter()
if tool == "pyreadstat":
    df = pyreadstat.read_sav(path)[0]
elif tool == "pyreadstat_mp2":
    df = pyreadstat.read_file_multiprocessing(pyreadstat.read_sav, path, num_processes=2)[0]
elif tool == "pandas":
    df = pd.read_spss(path)
elif tool == "read_wave":
    df = ds.read_wave(path, progress=False).data
elif tool == "read_wave_1proc":
    df = ds.read_wave(path, progress=False, processes=1).data
else:
    raise SystemExit("unknown tool " + tool)
sec = time.perf_counter() - t
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": sec, "peak_mb": status("VmHWM"), "child_peak_mb": round(kids, 1),
                  "shape": list(df.shape), "data_mb": round(df.memory_usage(deep=False).sum() / 2**20, 1)}))
"""

R_CODE = r"""
suppressPackageStartupMessages(library(haven))
a <- commandArgs(trailingOnly = TRUE)
t <- proc.time()[["elapsed"]]; d <- read_sav(a[1]); s <- proc.time()[["elapsed"]] - t
l <- grep("^VmHWM:", readLines("/proc/self/status"), value = TRUE)
hwm <- as.numeric(strsplit(trimws(sub(".*:", "", l)), " +")[[1]][1]) / 1024
cat(sprintf('{"seconds": %.4f, "peak_mb": %.1f, "child_peak_mb": 0, "shape": [%d, %d]}\n', s, hwm, nrow(d), ncol(d)))
"""


def have_haven() -> bool:
    if not shutil.which("Rscript"):
        return False
    r = subprocess.run(["Rscript", "-e", "library(haven)"], capture_output=True)
    return r.returncode == 0


def make_data(n: int, scratch: Path) -> Path:
    path = scratch / f"wide_{n}x50.sav"
    if path.exists():
        return path
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"making {path} with {PEER / 'make_data.py'} …", flush=True)
    subprocess.run([sys.executable, str(PEER / "make_data.py"), "--n", str(n), "--sav", "--no-csv",
                    "--out", str(scratch)], check=True)
    return path


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and its descendants (shared pages split fairly), MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total / 1024


def run_one(tool: str, path: Path) -> dict:
    """One read in a fresh process; this process samples the tree's PSS every 20 ms meanwhile
    (from outside, so that the measured process gets no extra thread)."""
    import tempfile

    if tool == "haven":
        cmd = ["Rscript", "-e", R_CODE, str(path)]
    else:
        cmd = [sys.executable, "-c", CHILD, tool, str(path), str(REPO / "src")]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        pss = 0.0
        can_sample = Path(f"/proc/{proc.pid}/smaps_rollup").exists()
        while proc.poll() is None:
            if can_sample:
                pss = max(pss, _tree_pss_mb(proc.pid))
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{stderr[-2000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res["pss_mb"] = round(pss, 1) if can_sample else None
    return res


def small_files(reps: int) -> list[tuple[str, float, float, float]]:
    """(file, pyreadstat s, pyreadstat user_missing=True s, read_wave s) — medians, in-process."""
    sys.path.insert(0, str(REPO / "src"))
    import pyreadstat

    import diaspora_survey as ds

    files = [SHARED / "testdata/spss/scgUtils__survey.sav", SHARED / "testdata/spss/Bor_Littvay_TIER_Protocol__ESS5RU.sav",
             SHARED / "oracle/data/apipop.sav", SHARED / "testdata/spss/pyreadstat__sample.sav"]
    out = []
    for f in files:
        if not f.exists():
            continue
        ds.read_wave(f), pyreadstat.read_sav(str(f))  # warm up (imports, page cache)
        a, u, b = [], [], []
        for _ in range(reps):
            t = time.perf_counter(); pyreadstat.read_sav(str(f)); a.append(time.perf_counter() - t)
            t = time.perf_counter(); pyreadstat.read_sav(str(f), user_missing=True); u.append(time.perf_counter() - t)
            t = time.perf_counter(); ds.read_wave(f, progress=False); b.append(time.perf_counter() - t)
        out.append((f.name, statistics.median(a), statistics.median(u), statistics.median(b)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scratch", type=Path, default=Path(os.environ.get("BENCH_SCRATCH", "/tmp/dsbench")))
    ap.add_argument("--tools", default="pyreadstat,read_wave,read_wave_1proc,pyreadstat_mp2,pandas,haven")
    ap.add_argument("--small-reps", type=int, default=15)
    a = ap.parse_args()
    if not (PEER / "make_data.py").exists():
        print(f"peer harness not found at {PEER}", file=sys.stderr)
        return 2
    path = make_data(a.n, a.scratch)
    tools = [t for t in a.tools.split(",") if t]
    if "haven" in tools and not have_haven():
        print("R haven: not installed here (Rscript with library(haven) unavailable) — skipped")
        tools.remove("haven")
    import platform

    print(f"file {path} ({path.stat().st_size / 2**20:.0f} MB), {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {a.rounds} interleaved rounds, each read in a fresh process")
    res: dict[str, list[dict]] = {t: [] for t in tools}
    for r in range(a.rounds):
        for t in tools:
            out = run_one(t, path)
            res[t].append(out)
            print(f"  round {r + 1} {t:16s} {out['seconds']:7.2f} s  peak {out['peak_mb']:7.0f} MB"
                  + (f" (+ helper {out['child_peak_mb']:.0f} MB)" if out.get("child_peak_mb") else ""), flush=True)
    base = statistics.median(o["seconds"] for o in res["pyreadstat"]) if "pyreadstat" in res else None
    base_mem = max(o["peak_mb"] for o in res["pyreadstat"]) if "pyreadstat" in res else None
    print()
    base_pss = max((o.get("pss_mb") or 0) for o in res["pyreadstat"]) if "pyreadstat" in res else 0
    print(f"| reader (N = {a.n:,} × 50, {a.rounds} rounds) | median s | ratio to pyreadstat 1 proc "
          "| peak MB process | peak MB process + helper | peak PSS MB, process tree | PSS ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for t in tools:
        med = statistics.median(o["seconds"] for o in res[t])
        own = max(o["peak_mb"] for o in res[t])
        peak = max(o["peak_mb"] + o.get("child_peak_mb", 0) for o in res[t])
        pss = max((o.get("pss_mb") or 0) for o in res[t])
        ratio = f"{med / base:.2f}" if base else "–"
        pss_ratio = f"{pss / base_pss:.2f}" if base_pss and pss else "–"
        print(f"| {t} | {med:.2f} | {ratio} | {own:.0f} | {peak:.0f} | {pss:.0f} | {pss_ratio} |")
    print("\n(process + helper counts the pages a forked helper shares with the process twice; "
          "PSS, sampled every 20 ms, splits them fairly)")
    print()
    print("| small file | pyreadstat.read_sav s | same, user_missing=True s | read_wave s | ratio | ratio to user_missing=True |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p, um, w in small_files(a.small_reps):
        print(f"| {name} | {p:.4f} | {um:.4f} | {w:.4f} | {w / p:.2f} | {w / um:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
