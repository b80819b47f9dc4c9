"""io/engine.py: one Source API over pandas, DuckDB and Dask; grouped sums agree exactly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.errors import EngineError
from diaspora_survey.io.engine import ENGINES, open_source, require_engine

SUMS = {"sw": "w", "swy": ("w", "y"), "swyy": ("w", "y", "y"), "n": 1,
        "nb": ("w", ("eq", "s", "b")), "nin": ("isin", "s", ["a"]), "nn": ("notnull", "y")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(1)
    n = 2000
    df = pd.DataFrame({"w": rng.uniform(1, 3, n), "y": rng.normal(size=n),
                       "g": rng.integers(0, 3, n).astype(float), "s": rng.choice(["a", "b"], n)})
    df.loc[::7, "y"] = np.nan
    df.loc[::11, "g"] = np.nan
    folder = tmp_path_factory.mktemp("eng")
    df.iloc[:1000].to_parquet(folder / "part0.parquet")
    df.iloc[1000:].to_parquet(folder / "part1.parquet")
    return df, folder


def _expected(df):
    w, y = df["w"], df["y"].fillna(0)
    frame = pd.DataFrame({"g": df["g"], "s": df["s"], "sw": w, "swy": w * y, "swyy": w * y * y,
                          "n": 1.0, "nb": w * (df["s"] == "b"), "nin": (df["s"] == "a") * 1.0,
                          "nn": df["y"].notna() * 1.0})
    out = frame.groupby(["g", "s"], dropna=False).sum().reset_index()
    return out.sort_values(["g", "s"], na_position="last").reset_index(drop=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_group_sums_agree(data, engine):
    df, folder = data
    src = open_source(folder, engine)
    assert src.count() == 2000 and len(src.files) == 2
    got = src.group_sums(["g", "s"], SUMS)
    pd.testing.assert_frame_equal(got, _expected(df), check_dtype=False, rtol=1e-12)
    assert got["g"].isna().sum() == 2                  # NULL keys kept
    total = src.group_sums([], {"sw": "w"})
    assert total["sw"].iloc[0] == pytest.approx(df["w"].sum(), rel=1e-12)
    assert src.distinct("g")[-1] is None and src.distinct("s") == ["a", "b"]


@pytest.mark.parametrize("engine", ENGINES)
def test_pandas_frame_any_engine(data, engine):
    df, _ = data
    got = open_source(df, engine).group_sums(["g", "s"], SUMS)
    pd.testing.assert_frame_equal(got, _expected(df), check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("col, kw, code", [("y", {"notnull": True}, "engine.null"),
                                           ("s", {"numeric": True}, "engine.not_numeric"),
                                           ("nope", {}, "engine.unknown_column")])
def test_design_column_errors_name_file_and_column(data, engine, col, kw, code):
    _, folder = data
    src = open_source(folder / "part0.parquet", engine)
    with pytest.raises(EngineError) as err:
        src.check_design_column(col, "weight", **kw)
    assert err.value.code == code
    assert "part0.parquet" in err.value.where and col in err.value.where
    if code == "engine.null":
        assert "143 missing" in err.value.message


def test_negative_and_missing_files(tmp_path):
    df = pd.DataFrame({"w": [1.0, -2.0, -1.0]})
    with pytest.raises(EngineError, match="2 negative") as err:
        open_source(df, "duckdb").check_design_column("w", "weight", nonnegative=True)
    assert err.value.code == "engine.negative"
    with pytest.raises(EngineError) as err:
        open_source(tmp_path / "missing.parquet")
    assert err.value.code == "engine.source_missing" and "missing.parquet" in err.value.where
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(EngineError) as err:
        open_source(bad)
    assert err.value.code == "engine.unreadable" and "bad.parquet" in err.value.where
    with pytest.raises(EngineError) as err:
        require_engine("spark")
    assert err.value.code == "engine.unknown"


def test_relation_and_mismatch():
    import duckdb
    con = duckdb.connect()
    rel = con.sql("SELECT range % 3 AS g, 1.5 AS w FROM range(10)")
    src = open_source(rel)
    assert src.engine == "duckdb" and src.label == "<relation>"
    assert list(src.group_sums(["g"], {"sw": "w"})["sw"]) == [6.0, 4.5, 4.5]
    with pytest.raises(EngineError) as err:
        open_source(rel, "dask")
    assert err.value.code == "engine.mismatch"


@pytest.mark.parametrize("engine", ENGINES)
def test_group_scatter_centred(data, engine):
    """scatter=: Σ (a - ā)(b - b̄) per group (NULL -> 0, NULL keys kept), with the shift
    factor; equal to the two-pass numpy values also for values with a large offset, where
    Σab - ΣaΣb/n loses most digits."""
    df, folder = data
    df = df.assign(big=1e7 + df["y"])
    src = open_source(df, engine)
    s = 1e7 + 0.1
    scatter = {"Sww": ("w", "w"), "Swb": ("w", ("w", ("shift", "big", s))),
               "Sbb": (("w", ("shift", "big", s)), ("w", ("shift", "big", s))), "Syy": ("y", "y")}
    got = src.group_sums(["g", "s"], {"sw": "w", "swb": ("w", ("shift", "big", s))}, scatter=scatter)
    a = df["w"].to_numpy()
    b = df["w"].to_numpy() * np.nan_to_num(df["big"].to_numpy() - s)
    y = df["y"].fillna(0).to_numpy()
    frame = pd.DataFrame({"g": df["g"], "s": df["s"], "a": a, "b": b, "y": y})
    grp = frame.groupby(["g", "s"], dropna=False)
    dev = frame[["a", "b", "y"]] - grp[["a", "b", "y"]].transform("mean")
    want = pd.DataFrame({"g": frame["g"], "s": frame["s"], "sw": a, "swb": b, "Sww": dev.a ** 2,
                         "Swb": dev.a * dev.b, "Sbb": dev.b ** 2, "Syy": dev.y ** 2})
    want = want.groupby(["g", "s"], dropna=False).sum().reset_index()
    want = want.sort_values(["g", "s"], na_position="last").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-11)
    one = src.group_sums([], {"n": 1}, scatter={"Syy": ("y", "y")})
    assert one["Syy"].iloc[0] == pytest.approx(((y - y.mean()) ** 2).sum(), rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_category_dtype_and_head_values(tmp_path, engine):
    """Categories of a parquet column written from a pandas Categorical (their order, not
    sorted; ordered flag; an unused level), as pd.read_parquet gives them; None for strings."""
    cats = ["low", "mid", "high", "none"]
    df = pd.DataFrame({"c": pd.Categorical(["high", "low", "mid"] * 20, categories=cats, ordered=True),
                       "s": ["b", "a", "c"] * 20, "x": np.r_[np.nan, np.arange(59.0)]})
    path = tmp_path / "c.parquet"
    df.to_parquet(path, row_group_size=25)
    src = open_source(path, engine)
    assert src.category_dtype("c") == pd.read_parquet(path)["c"].dtype
    assert list(src.category_dtype("c").categories) == cats and src.category_dtype("c").ordered
    assert src.category_dtype("s") is None and src.category_dtype("x") is None
    assert list(src.head_values("x", 3)) == [0.0, 1.0, 2.0]
    if engine == "duckdb":
        import duckdb
        rel = open_source(duckdb.connect().from_df(df))                 # a pandas Categorical -> ENUM
        assert list(rel.category_dtype("c").categories) == cats
