"""ScanDesign on Dask (dask.distributed, a 2-worker LocalCluster started here): the same
frames as the in-memory SurveyDesign to 1e-10, from a Dask DataFrame and from parquet.

R: svymean/svytotal/svyby/svyratio as in test_scan.py (the in-memory path is checked
against R survey 4.1.1 in test_oracle.py).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.survey.design import SurveyDesign
from diaspora_survey.survey.scan import ScanDesign

pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

from scan_helpers import CALLS, elements, generated  # noqa: E402  (tests/ is on sys.path: conftest)

RTOL = 1e-10


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    df = generated(7, 4000)
    folder = tmp_path_factory.mktemp("dask") / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 4)):
        df.iloc[part].to_parquet(folder / f"p{i}.parquet")
    return df, folder


KW = dict(weights="w", strata="h", psu="psu", fpc="N", nest=True, lonely_psu="average")


def test_dask_frame_all_calls(client, data):
    df, _ = data
    ddf = dd.from_pandas(df, npartitions=4)
    scan = ScanDesign(ddf, client=client, **KW)
    assert scan.engine == "dask"
    mem = SurveyDesign(df, **KW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in ("mean", "mean_by2", "total_by", "total_cat", "prop", "ratio", "domain", "domain_dict"):
            pd.testing.assert_frame_equal(CALLS[name](scan), CALLS[name](mem), rtol=RTOL, obj=name)


def test_dask_parquet_and_row_psus(client, data):
    df, folder = data
    for kw in (KW, dict(weights="w", strata="h")):       # id=~1: every row a PSU
        scan = ScanDesign(folder, engine="dask", client=client, **kw)
        mem = SurveyDesign(df, **kw)
        for name in ("mean_by", "prop", "ratio", "domain"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pd.testing.assert_frame_equal(CALLS[name](scan), CALLS[name](mem), rtol=RTOL, obj=name)


def test_dask_element_designs(client, tmp_path):
    """psu=None (every row a PSU) on Dask: the partitions' cell moments combined by Chan's
    formula give SurveyDesign's numbers - fpc, weight-0 rows, a lonely stratum, implied
    weights; and the levels of a parquet Categorical in category order."""
    df = elements(31, 3000, lonely=True)
    df["edu"] = pd.Categorical(np.where(df["k"] > 2, "secondary", "primary"),
                               categories=["primary", "secondary", "tertiary"], ordered=True)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        df.iloc[part].to_parquet(folder / f"p{i}.parquet")
    mem_df = pd.read_parquet(folder)
    for kw in (dict(weights="w", strata="h", fpc="N", lonely_psu="adjust"),
               dict(weights=None, strata="h", fpc="f", lonely_psu="average")):
        scan = ScanDesign(folder, engine="dask", client=client, **kw)
        mem = SurveyDesign(mem_df, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for name in ("mean", "mean_by", "prop", "ratio", "domain", "total_cat"):
                pd.testing.assert_frame_equal(CALLS[name](scan), CALLS[name](mem), rtol=RTOL, obj=name)
            got = scan.proportion("edu", by="z", deff=True)
            pd.testing.assert_frame_equal(got, mem.proportion("edu", by="z", deff=True), rtol=RTOL)
    assert list(got["level"][:3]) == ["primary", "secondary", "tertiary"]
