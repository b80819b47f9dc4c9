"""Harmonising in chunks (harmonise/chunked.py) equals harmonising the whole wave: the same
rows, values, dtypes, categories and order, the same issues (counted once, with the wave's
totals), exclusions, summary and rule counts — for chunks of 1 row, a size that does not divide
the row count, and more than the rows; duplicates split across chunks, open category sets whose
values appear late, ids that are whole numbers until a late one is not, strict mode."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diaspora_survey import example
from diaspora_survey.errors import CodebookError, HarmonisationError
from diaspora_survey.harmonise.apply import harmonise
from diaspora_survey.harmonise.chunked import harmonise_chunked
from diaspora_survey.harmonise.codebook import Codebook
from diaspora_survey.io import read_wave
from diaspora_survey.project import Project

from conftest import REPO, SHARED
from harmonise_helpers import cb, make_wave

ESS = SHARED / "testdata" / "spss" / "Bor_Littvay_TIER_Protocol__ESS5RU.sav"






def issue_rows(issues):
    return [(i.wave, i.variable, i.kind, i.count, i.message, i.values, i.where) for i in issues]


def assert_chunked_equal(wave, codebook, ks, **kw):
    """Chunked == whole for each chunk size in ``ks``; returns the whole-wave result."""
    ref = harmonise(wave, codebook, **kw)
    for k in ks:
        run = harmonise_chunked(wave, codebook, chunk_rows=k, **kw)
        empty = run.empty()
        parts = list(run)
        h = run.finish()
        got = pd.concat(parts) if parts else empty
        pd.testing.assert_frame_equal(got, ref.data, check_index_type=True)
        pd.testing.assert_frame_equal(empty, ref.data.iloc[:0])
        pd.testing.assert_frame_equal(h.exclusions, ref.exclusions)
        pd.testing.assert_frame_equal(h.summary, ref.summary)
        assert issue_rows(h.issues) == issue_rows(ref.issues), k
        assert h.rules == ref.rules
        assert (h.rows, h.rows_read) == (ref.rows, ref.rows_read)
    return ref


CRAFTED = """
wave: w
id: id
eligibility: ["age >= 18"]
design: {weight: w, strata: st}
variables:
  sex: {source: sex, map: {1: female, 2: male}}
  age: {source: by, transform: age_from_birth_year, interview_date: 2022-06-01, valid_range: [14, 100]}
  country: {source: land, crosswalk: country}
  birth_country: {source: club, custom: true, type: category, crosswalk: country}
  departure_date: {source: mes, transform: month}
  employment_status:
    source: [a, b]
    rules:
      - when: {a: 1}
        to: employee
      - when: {a: 2, b: 1}
        to: employer
"""


def crafted(n_rep: int = 1) -> pd.DataFrame:
    df = pd.DataFrame({
        "id": [1.0, 2, 3, 2, np.nan, 5, 6, 1, 8, 9, 10, 11],          # 2 and 1 repeat in later rows
        "sex": [1, 2, 9, 1, 2, 8, 9, 8, 1, 2, 7, 1],                  # 9 and 8 unmapped, ×2 each (a tie)
        "by": ["1990", "2010", "abc", "1985", "", "1970", "xyz", "1960", "1950", "abc", "1800", "1991"],
        "land": ["Грузия", "Армения", "Марс", "Грузия", None, "Луна", "Турция", "Марс", "Луна", "Армения",
                 "Израиль", "Грузия"],
        "club": ["AM", "GE", "TR", "AM", None, "IL", "GE", "RS", "TR", "AM", "KZ", "GE"],   # open set, first seen
        "w": [1.0, 2.0, np.nan, 1.5, 1.0, -1, 2, 1, 1, 1, 3, 2],
        "st": [1.0, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3],
        "mes": ["03.2022", "март 2022", "не помню", "2022-09", "", "13.2022", "05.2022", "не помню", "2023-01",
                "2022-02", "", "2022-10"],
        "a": [1, 2, 2, 3, 1, 2, 3, 3, 1, 2, 2, 1],
        "b": [0, 1, 0, 5, 0, 1, 5, 6, 0, 1, 0, 0],
    })
    return pd.concat([df] * n_rep, ignore_index=True) if n_rep > 1 else df


@pytest.mark.parametrize("k", [1, 5, 12, 100])
def test_crafted_wave_in_chunks(k):
    ref = assert_chunked_equal(make_wave(crafted()), cb(CRAFTED), [k])
    kinds = {i.kind for i in ref.issues}
    assert {"unmapped", "unparsed", "out_of_range", "duplicate_id", "missing_id", "missing_weight"} <= kinds
    assert (ref.exclusions["reason"] == "duplicate resp_id").sum() == 2
    assert list(ref.data["birth_country"].cat.categories) == ["AM", "GE", "TR", "IL", "RS", "KZ"]


def test_duplicates_across_many_chunks_and_text_ids():
    df = crafted(4)                                   # every id repeated in the later copies
    df["id"] = df["id"].map(lambda x: None if pd.isna(x) else f" id{int(x)} ")
    df.loc[5, "id"] = ""                              # blank ids are kept and reported
    ref = assert_chunked_equal(make_wave(df), cb(CRAFTED), [1, 7, 13, 1000])
    assert (ref.exclusions["reason"] == "duplicate resp_id").sum() > 20


def test_an_id_that_is_not_whole_in_a_late_chunk_changes_every_id():
    df = crafted()
    df.loc[11, "id"] = 11.5                           # in memory: "1.0", "2.0", … for every row
    ref = assert_chunked_equal(make_wave(df), cb(CRAFTED), [1, 5])
    assert ref.data["resp_id"].iloc[0] == "1.0"


def test_open_categories_and_country_values_that_appear_late():
    df = crafted()
    df.loc[11, "land"] = "Аргентина"                  # sorted country categories change at the end
    df.loc[11, "club"] = "AR"
    ref = assert_chunked_equal(make_wave(df), cb(CRAFTED), [1, 4])
    assert list(ref.data["country"].cat.categories) == sorted(ref.data["country"].cat.categories)


def test_every_row_excluded_in_some_chunks():
    df = crafted()
    df["by"] = ["2010"] * 6 + ["1980"] * 6           # the first chunks have nobody eligible
    assert_chunked_equal(make_wave(df), cb(CRAFTED), [3, 6])


def test_strict_error_carries_the_wave_totals():
    wave, book = make_wave(crafted()), cb(CRAFTED)
    with pytest.raises(HarmonisationError) as whole:
        harmonise(wave, book, strict=True)
    for k in (1, 5):
        run = harmonise_chunked(wave, book, chunk_rows=k, strict=True)
        run.empty()
        with pytest.raises(HarmonisationError) as chunked:
            list(run)
            run.finish()
        assert chunked.value.message == whole.value.message and chunked.value.where == whole.value.where


def test_empty_id_column_in_every_chunk():
    df = crafted()
    df["id"] = np.nan
    with pytest.raises(CodebookError) as whole:
        harmonise(make_wave(df), cb(CRAFTED))
    run = harmonise_chunked(make_wave(df), cb(CRAFTED), chunk_rows=5)
    with pytest.raises(CodebookError) as chunked:
        list(run)
        run.finish()
    assert chunked.value.code == whole.value.code == "codebook.empty_id"


def test_rules_checked_against_the_values_of_the_whole_wave():
    df = crafted()
    df["a"] = df["a"].map({1: "x", 2: "y", 3: "z"})
    book = cb(CRAFTED.replace("{a: 1}", "{a: w}"))   # 'w' is in no row
    with pytest.raises(CodebookError) as whole:
        harmonise(make_wave(df), book)
    with pytest.raises(CodebookError) as chunked:
        harmonise_chunked(make_wave(df), book, chunk_rows=2)
    assert chunked.value.message == whole.value.message


def test_bad_chunk_rows():
    with pytest.raises(Exception) as e:
        harmonise_chunked(make_wave(crafted()), cb(CRAFTED), chunk_rows=0)
    assert "positive whole number" in str(e.value)


# ---- the example waves and a real file ----------------------------------------------------------

@pytest.fixture(scope="module")
def small_example(tmp_path_factory):
    """The example project with small waves (chunks of one row stay quick)."""
    import shutil

    root = tmp_path_factory.mktemp("small")
    shutil.copytree(REPO / "codebooks", root / "codebooks")
    shutil.copy(REPO / "diaspora-survey.toml", root / "diaspora-survey.toml")
    example.generate(root / "raw", sizes=(120, 150, 90))
    return Project.load(root)


def _project_kw(proj, wid):
    return dict(crosswalks=proj.crosswalks(), age_bands=proj.config.harmonise.bands(), wave_id=wid,
                regions=proj.regions())


@pytest.mark.parametrize("wid", ["2022-03", "2022-11", "2024-05"])
def test_example_waves_in_chunks_of_one_row_and_more(small_example, wid):
    proj = small_example
    w = proj.wave(wid)
    book, kw = proj.codebook(wid), _project_kw(proj, wid)
    ref = harmonise(proj.read_wave(wid), book, **kw)
    n = ref.rows_read
    for k in (1, 7, n + 10):               # 7 divides none of 120, 150, 90
        run = harmonise_chunked(proj.path(w.file), book, chunk_rows=k, **kw)   # read from the file
        parts = list(run)
        h = run.finish()
        pd.testing.assert_frame_equal(pd.concat(parts), ref.data)
        pd.testing.assert_frame_equal(h.exclusions, ref.exclusions)
        pd.testing.assert_frame_equal(h.summary, ref.summary)
        assert issue_rows(h.issues) == issue_rows(ref.issues)
    assert len(ref.exclusions)


@pytest.mark.parametrize("wid", ["2022-03", "2022-11"])
def test_full_size_example_waves(wid):
    proj = Project.load(REPO)
    w = proj.wave(wid)
    book, kw = proj.codebook(wid), _project_kw(proj, wid)
    ref = harmonise(proj.read_wave(wid), book, **kw)
    run = harmonise_chunked(proj.path(w.file), book, chunk_rows=333, **kw)
    parts = list(run)
    h = run.finish()
    pd.testing.assert_frame_equal(pd.concat(parts), ref.data)
    pd.testing.assert_frame_equal(h.exclusions, ref.exclusions)
    assert issue_rows(h.issues) == issue_rows(ref.issues) and h.rules == ref.rules


@pytest.mark.skipif(not ESS.exists(), reason="../shared/testdata/spss/…ESS5RU.sav not found")
@pytest.mark.parametrize("k", [997, 5000])
def test_real_ess_file_in_chunks(k):
    book = Codebook.load(REPO / "docs" / "examples" / "ess5-russia" / "codebooks" / "ess5-ru.yaml")
    ref = harmonise(read_wave(ESS), book)
    run = harmonise_chunked(ESS, book, chunk_rows=k)
    parts = list(run)
    h = run.finish()
    pd.testing.assert_frame_equal(pd.concat(parts), ref.data)
    pd.testing.assert_frame_equal(h.summary, ref.summary)
    assert issue_rows(h.issues) == issue_rows(ref.issues) and h.rules == ref.rules
    assert len(ref.data) == 2595


def test_listed_values_by_count_over_the_whole_wave():
    """An unmapped value frequent only in later chunks comes first, as in memory; ties keep the
    order of first appearance; values outside the valid range are listed by value."""
    df = pd.DataFrame({"id": range(9), "sex": [9, 7, 8, 8, 1, 8, 9, 6, 6], "age": [5, 200, 30, 150, 30, 5, 1, 30, 30]})
    book = cb("wave: w\nid: id\nvariables:\n  sex: {source: sex, map: {1: female, 2: male}}\n"
              "  age: {source: age, valid_range: [14, 100]}\n")
    ref = assert_chunked_equal(make_wave(df), book, [1, 2, 4])
    sex = next(i for i in ref.issues if i.variable == "sex")
    assert list(sex.values) == ["8", "9", "6", "7"] and sex.count == 8
    age = next(i for i in ref.issues if i.variable == "age")
    assert list(age.values) == ["1", "5", "150", "200"] and age.values["5"] == 2
