"""Benchmark: harmonise 1,000,000 rows × 20 mapped variables (target: under 3 s).

Run: ``.venv/bin/python bench/bench_harmonise.py [--n N_ROWS]``. The wave is synthetic and built in
memory: 6 schema variables (sex by code map, age as a number with a valid range, education by
value labels through the crosswalk, employment status from Russian answer texts through the
crosswalk, country names typed in Russian through the crosswalk, month of departure as free
text in mixed formats) plus 14 custom categorical variables with code maps and missing codes,
an eligibility filter and a text respondent id (checked for repeats). The figure printed is the best of three runs of
``harmonise()`` (reading the file is not included; see the importer benchmark for that).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from diaspora_survey.harmonise.codebook import Codebook
from diaspora_survey.harmonise.apply import harmonise
from diaspora_survey.io.base import RawWave, SourceInfo, VariableMeta


def build(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"rid": ("R" + pd.Series(np.arange(n)).astype(str)).astype("str")}   # text ids
    meta: dict[str, VariableMeta] = {}
    cols["sex"] = rng.choice([1, 2, 99], size=n, p=[.45, .54, .01]).astype("int8")
    meta["sex"] = VariableMeta("sex", value_labels={1: "Мужской", 2: "Женский", 99: "Отказ"}, missing_values=[99])
    cols["age"] = rng.integers(16, 90, size=n).astype("int16")
    edu_labels = {1: "Высшее — магистратура", 2: "Высшее — бакалавриат", 3: "Высшее — специалитет",
                  4: "Неполное высшее", 5: "Среднее профессиональное", 6: "Среднее общее", 98: "Затрудняюсь ответить"}
    cols["edu"] = rng.choice(list(edu_labels), size=n).astype("int8")
    meta["edu"] = VariableMeta("edu", value_labels=edu_labels, missing_values=[98])
    emp = np.array(["Работаю по найму", "Фрилансер", "Собственный бизнес с сотрудниками", "Студент",
                    "Пенсионер", "Безработный, ищу работу"], dtype=object)
    cols["emp"] = pd.array(emp[rng.integers(0, len(emp), size=n)], dtype="str")
    ctry = np.array(["Грузия", "грузия ", "Армения", "АРМЕНИЯ", "Турция", "Турецкая Республика", "Казахстан",
                     "Кыргызстан", "Киргизия", "Сербия", "Израиль", "ОАЭ", "Германия"], dtype=object)
    cols["ctry"] = pd.array(ctry[rng.integers(0, len(ctry), size=n)], dtype="str")
    months = np.array(["03.2022", "2022-03", "март 2022", "Марта 2022", "09.2022", "сентябрь 2022",
                       "10.2022", "2023-01", "мая 2023", ""], dtype=object)
    cols["dep"] = pd.array(months[rng.integers(0, len(months), size=n)], dtype="str")
    for k in range(14):
        cols[f"q{k}"] = rng.choice([1, 2, 3, 4, 5, 98], size=n).astype("int8")
        meta[f"q{k}"] = VariableMeta(f"q{k}", missing_values=[98])
    df = pd.DataFrame(cols)
    for c in df.columns:
        meta.setdefault(c, VariableMeta(c))
    wave = RawWave(df, meta, SourceInfo("bench.sav", "sav", None, "", n, df.shape[1]))
    custom = "".join(f"""
  item{k}:
    custom: true
    type: ordered
    source: q{k}
    map: {{1: very_low, 2: low, 3: medium, 4: high, 5: very_high}}
    missing: [98]
""" for k in range(14))
    cb = Codebook.from_yaml(f"""
wave: bench
id: rid
eligibility: ["age >= 18"]
variables:
  sex: {{source: sex, map: {{1: male, 2: female}}, missing: [99]}}
  age: {{source: age, valid_range: [14, 100]}}
  education: {{source: edu, crosswalk: education, missing: [98]}}
  employment_status: {{source: emp, crosswalk: employment}}
  country: {{source: ctry, crosswalk: country}}
  departure_date: {{source: dep, transform: month}}
{custom}""", source="bench.yaml")
    return wave, cb


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Harmonise N rows × 20 mapped variables (target < 3 s at 1M).")
    ap.add_argument("--n", type=int, default=1_000_000)
    n = ap.parse_args(argv).n
    wave, cb = build(n)
    assert sum(1 for _ in cb.variables) == 20
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        h = harmonise(wave, cb)
        times.append(time.perf_counter() - t0)
    assert h.unmapped == 0, [str(i) for i in h.issues]
    assert len(h.data) + len(h.exclusions) == n
    best = min(times)
    print(f"harmonise: {n:,} rows × {len(cb.variables)} mapped variables: best {best:.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)}; target < 3 s) — "
          f"{len(h.data):,} kept, {len(h.exclusions):,} excluded")
    return 0 if best < 3 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
