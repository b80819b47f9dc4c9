"""A small hand-built two-wave panel (deterministic arithmetic, no random generator), shared by
the panel tests of harmonise/, weighting/ and survey/ and exported for the R checks."""
from __future__ import annotations

import numpy as np
import pandas as pd

REGIONS = ["eu_eea", "south_caucasus", "central_asia", "turkey"]
COUNTRY = {"eu_eea": "DE", "south_caucasus": "GE", "central_asia": "KZ", "turkey": "TR"}
OTHER = {"DE": "ES", "GE": "AM", "KZ": "KG", "TR": "RS"}


def baseline(n: int = 60) -> pd.DataFrame:
    i = np.arange(n)
    region = np.array(REGIONS, dtype=object)[i % 4]
    country = np.array([COUNTRY[r] for r in region], dtype=object)
    dep = pd.to_datetime("2022-03-01") - pd.to_timedelta(0, "D")
    dep_m = np.array(["2022-03-01", "2022-02-01", "2021-12-01"])[(i * 5) % 3]
    return pd.DataFrame({
        "resp_id": pd.array([str(k + 1) for k in i], dtype="string"),
        "panel_id": pd.array([f"P{k + 1:03d}" for k in i], dtype="string"),
        "sex": pd.Categorical(np.where((i // 3) % 2 == 0, "female", "male"), categories=["female", "male", "other"]),
        "birth_year": pd.array(1960 + (i * 7) % 40, dtype="Int64"),
        "age_group": pd.Categorical(np.array(["18-29", "30-44", "45+"], dtype=object)[(i * 7) % 3],
                                    categories=["18-29", "30-44", "45+"], ordered=True),
        "country": pd.Categorical(country),
        "host_region": pd.Categorical(region, categories=REGIONS),
        "departure_date": pd.to_datetime(dep_m),
        "weight": 0.5 + ((i * 37) % 11) / 10,
    })


def followup(base: pd.DataFrame) -> pd.DataFrame:
    """Re-interviews: retention depends on age group; returns by region; some moved on."""
    i = np.arange(len(base))
    age_code = base["age_group"].cat.codes.to_numpy()
    kept = ((i * 13) % 5) < np.array([2, 3, 4])[age_code]
    b = base[kept].reset_index(drop=True)
    j = np.flatnonzero(kept)
    reg = b["host_region"].astype(str).to_numpy()
    thr = np.array([{"eu_eea": 1, "south_caucasus": 3, "central_asia": 3, "turkey": 4}[r] for r in reg])
    returned = ((j * 17) % 7) < thr
    moved = ~returned & (((j * 11) % 6) == 0)
    c = b["country"].astype(str).to_numpy()
    country = np.where(returned, "RU", np.where(moved, [OTHER[x] for x in c], c))
    ret_month = b["departure_date"].dt.to_period("M").to_numpy() + (1 + (j * 5) % 10)
    ret = pd.PeriodIndex(ret_month).to_timestamp()
    return pd.DataFrame({
        "resp_id": pd.array([str(1001 + k) for k in range(len(b))], dtype="string"),
        "panel_id": b["panel_id"].astype("string").to_numpy(),
        "sex": b["sex"].to_numpy(),
        "birth_year": b["birth_year"].to_numpy(),
        "age_group": b["age_group"].to_numpy(),
        "country": pd.Categorical(country),
        "returned": pd.array(returned, dtype="boolean"),
        "return_date": pd.Series(np.where(returned, ret, pd.NaT), dtype="datetime64[ns]"),
    })
