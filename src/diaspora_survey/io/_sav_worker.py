"""Read a row range of an SPSS/Stata file with pyreadstat; also the helper process's program.

Imported by the parent (``read_range``) and run as a script by the parallel reader
(``python _sav_worker.py`` with a JSON job on stdin). As a script it imports nothing from
the package, so that the helper starts quickly and never re-runs the caller's ``__main__``
(the trap of multiprocessing's spawn start method); it runs with ``-P`` so that this
folder (which has a ``csv.py``) does not shadow the standard library. Numeric columns are written straight
into a shared-memory file (``/dev/shm``) that the parent maps, so they are never pickled
or copied; the other columns (strings) come back pickled on stdout. Progress goes to
stderr as lines ``P <rows>``.
"""
from __future__ import annotations

import json
import mmap
import pickle
import sys
import time


def map_columns(mm, names_slots, n_total):
    import numpy as np

    return {name: np.frombuffer(mm, dtype=np.float64, count=n_total, offset=slot * n_total * 8)
            for name, slot in names_slots}


def read_range(reader, path, kwargs, start, stop, chunk, numeric_arrays, numeric_parts, other_parts,
               on_rows=None, meta_seconds=0.0):
    """Read rows [start, stop) in chunks of ``chunk`` rows.

    Numeric columns go into ``numeric_arrays[name][row]`` when the array is given, else are
    appended to ``numeric_parts[name]``; other columns are appended to ``other_parts[name]``.
    Returns the number of rows read (less than asked only if the file is shorter).

    pyreadstat parses the whole dictionary again for every chunk (pyreadstat #285). With
    ``meta_seconds`` (the time one metadata read took) chunks grow after the first, so that
    this re-parsing stays under about 5 % of each chunk's time (wide files: few, large chunks).
    """
    import numpy as np

    pos = start
    while pos < stop:
        lim = min(chunk, stop - pos)
        t0 = time.perf_counter()
        df, _ = reader(path, row_offset=pos, row_limit=lim, **kwargs)
        got = len(df)
        if meta_seconds > 0 and got:
            per_row = max(time.perf_counter() - t0 - meta_seconds, 1e-9) / got
            chunk = max(chunk, int(20 * meta_seconds / per_row))
        for name in df.columns:
            if name in numeric_arrays:
                numeric_arrays[name][pos:pos + got] = df[name].to_numpy(dtype=np.float64, na_value=np.nan)
            elif name in numeric_parts:
                numeric_parts[name].append(df[name].to_numpy(dtype=np.float64, na_value=np.nan))
            else:
                other_parts.setdefault(name, []).append(df[name].array)
        del df
        pos += got
        if on_rows is not None:
            on_rows(got)
        if got < lim:
            break
    return pos - start


def main() -> int:
    job = json.loads(sys.stdin.read())
    import pyreadstat

    reader = getattr(pyreadstat, job["reader"])
    n_total = job["n_total"]
    numeric = [tuple(x) for x in job["numeric"]]
    arrays, parts = {}, {}
    mm = None
    if job.get("shm"):
        with open(job["shm"], "r+b") as fh:
            mm = mmap.mmap(fh.fileno(), 0)
        arrays = map_columns(mm, numeric, n_total)
        sys.stderr.write("M\n")  # mapped: the parent may now unlink the file
        sys.stderr.flush()
    else:
        parts = {name: [] for name, _ in numeric}
    others: dict = {}

    def on_rows(n):
        sys.stderr.write(f"P {n}\n")
        sys.stderr.flush()

    rows = read_range(reader, job["path"], job["kwargs"], job["start"], job["stop"], job["chunk"],
                      arrays, parts, others, on_rows, job.get("meta_seconds", 0.0))
    arrays.clear()
    pickle.dump({"rows": rows, "numeric": parts, "others": others}, sys.stdout.buffer, protocol=5)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
