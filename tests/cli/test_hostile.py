"""Hostile input from the command line (issue 11, items 9-13): every crafted file is one
message and exit status 2, quickly — never a traceback, a hang or a silent wrong result.
Includes the hypothesis fuzz test over codebooks, targets and project files."""
from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from diaspora_survey.cli import main

REPO = Path(__file__).resolve().parents[2]

CODEBOOK = """\
wave: "w1"
file: raw/w1.csv
id: rid
variables:
  sex:
    source: sex
    map: {f: female, m: male}
  age:
    source: age
    valid_range: [14, 100]
  country:
    source: country
    crosswalk: country
"""

TARGETS = """\
kind: shares
margins:
  sex: {female: 0.5, male: 0.5}
"""

PROJECT = """\
[project]
title = "tiny"

[[waves]]
id = "w1"
file = "raw/w1.csv"
codebook = "codebooks/w1.yaml"

[weighting]
targets = "codebooks/targets.yaml"
method = "rake"
"""


def _rows(n: int = 40) -> str:
    lines = ["rid,sex,age,country"]
    for i in range(n):
        lines.append(f"r{i:03d},{'fm'[i % 2]},{20 + i % 50},{'Грузия' if i % 3 else 'Армения'}")
    return "\n".join(lines) + "\n"


def make_tiny(root: Path) -> Path:
    (root / "raw").mkdir(parents=True)
    (root / "codebooks").mkdir()
    (root / "raw" / "w1.csv").write_text(_rows(), encoding="utf-8")
    (root / "codebooks" / "w1.yaml").write_text(CODEBOOK, encoding="utf-8")
    (root / "codebooks" / "targets.yaml").write_text(TARGETS, encoding="utf-8")
    (root / "diaspora-survey.toml").write_text(PROJECT, encoding="utf-8")
    return root


@pytest.fixture
def tiny(tmp_path):
    return make_tiny(tmp_path / "tiny")


def test_the_tiny_project_works(tiny, capsys):
    assert main(["weight", "-p", str(tiny)]) == 0
    assert (tiny / "build" / "weighted.parquet").exists()


LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def _fifo(p: Path) -> None:
    p.unlink()
    os.mkfifo(p)


def _dir(p: Path) -> None:
    p.unlink()
    p.mkdir()


def _loop(p: Path) -> None:
    p.unlink()
    (p.parent / "l1").symlink_to(p.parent / "l2")
    (p.parent / "l2").symlink_to(p.parent / "l1")
    p.symlink_to(p.parent / "l1")


MUTATIONS = {
    "billion laughs": lambda p: p.write_text(LAUGHS),
    "recursive alias": lambda p: p.write_text("a: &a [1, *a]\n"),
    "deep nesting": lambda p: p.write_text("x: " + "[" * 3000 + "]" * 3000),
    "5000-digit integer": lambda p: p.write_text("x: " + "9" * 5000 + "\n"),
    "binary": lambda p: p.write_bytes(b"\x00\x01\x02PK\x03\x04" * 50),
    "latin-1": lambda p: p.write_bytes(p.read_bytes() + "# café\n".encode("latin-1")),
    "folder": _dir,
    "fifo": _fifo,
    "symlink loop": _loop,
    "empty": lambda p: p.write_text(""),
    "duplicate key": lambda p: p.write_text(p.read_text() + p.read_text().splitlines()[0] + "\n"),
}
FILES = {"codebook": ("codebooks/w1.yaml", ["harmonise"]),
         "targets": ("codebooks/targets.yaml", ["weight"])}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("which", sorted(FILES))
def test_hostile_yaml_files(tiny, capsys, which, mutation):
    rel, args = FILES[which]
    MUTATIONS[mutation](tiny / rel)
    t0 = time.perf_counter()
    assert main(args + ["-p", str(tiny)]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert err.startswith("error (") and "Traceback" not in err


PROJECT_MUTATIONS = {
    "empty": lambda p: p.write_text(""),
    "5000-digit integer": lambda p: p.write_text("[report]\nmin_cell_size = " + "9" * 5000 + "\n"),
    "binary": lambda p: p.write_bytes(b"\x00\xff" * 50),
    "latin-1": lambda p: p.write_bytes(p.read_bytes() + "# café\n".encode("latin-1")),
    "folder": _dir,
    "fifo": _fifo,
    "path outside": lambda p: p.write_text(PROJECT.replace('"raw/w1.csv"', '"../../../../../etc/passwd"')),
    "absolute path": lambda p: p.write_text(PROJECT.replace('"codebooks/w1.yaml"', '"/etc/shadow"')),
    "no waves": lambda p: p.write_text('[project]\ntitle = "x"\n'),
}


@pytest.mark.parametrize("mutation", sorted(PROJECT_MUTATIONS))
def test_hostile_project_files(tiny, capsys, mutation):
    PROJECT_MUTATIONS[mutation](tiny / "diaspora-survey.toml")
    assert main(["run", "-p", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error (") and "Traceback" not in err
    assert "root:" not in err                 # no file content echoed


def test_symlink_out_of_raw_is_refused_unless_allowed(tiny, capsys, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(_rows())
    (tiny / "raw" / "w1.csv").unlink()
    (tiny / "raw" / "w1.csv").symlink_to(outside)
    assert main(["harmonise", "-p", str(tiny)]) == 2
    assert "project.outside" in capsys.readouterr().err
    toml = tiny / "diaspora-survey.toml"
    toml.write_text(toml.read_text().replace('title = "tiny"', 'title = "tiny"\nallow_outside = true'))
    assert main(["harmonise", "-p", str(tiny)]) == 0


@pytest.mark.parametrize("mutation", ["fifo", "symlink loop", "folder"])
def test_hostile_raw_files(tiny, capsys, mutation):
    MUTATIONS[mutation](tiny / "raw" / "w1.csv")
    assert main(["harmonise", "-p", str(tiny)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_hostile_crosswalk(tiny, capsys):
    (tiny / "country_x.csv").write_bytes(b"label,code\n" + b"x" * 200_000 + b",GE\n")
    toml = tiny / "diaspora-survey.toml"
    toml.write_text(toml.read_text() + '\n[harmonise]\ncrosswalks = ["country_x.csv"]\n')
    assert main(["harmonise", "-p", str(tiny)]) == 2
    assert "crosswalk.bad_row" in capsys.readouterr().err


def test_sav_claiming_huge_row_count_is_refused_before_reading(tmp_path, capsys):
    """A .zsav whose header claims 134 M rows: refused at once (ReadStat would allocate them)."""
    src = REPO / "raw" / "2024-05_wave3.zsav"
    if not src.exists():
        pytest.skip("example raw file missing")
    data = bytearray(src.read_bytes())
    data[80:84] = struct.pack("<i", 134_000_000)
    p = tmp_path / "big.zsav"
    p.write_bytes(bytes(data))
    t0 = time.perf_counter()
    assert main(["inspect", str(p)]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert "134,000,000 rows" in err and "input.corrupt" in err


def test_sav_with_negative_row_count_warns(tmp_path, capsys):
    src = REPO / "raw" / "2022-03_wave1.sav"
    if not src.exists():
        pytest.skip("example raw file missing")
    from diaspora_survey.io import read_wave

    data = bytearray(src.read_bytes())
    data[80:84] = struct.pack("<i", -5)
    p = tmp_path / "neg.sav"
    p.write_bytes(bytes(data))
    w = read_wave(p)
    assert len(w.data) == 2000 and any("-5 rows" in x for x in w.warnings)


# ---- item 12: silent wrong results become errors -------------------------------------------

def _edit(p: Path, old: str, new: str) -> None:
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def test_base_weight_that_is_not_numeric(tiny, capsys):
    _edit(tiny / "diaspora-survey.toml", 'method = "rake"', 'method = "rake"\nbase_weight = "sex"')
    assert main(["weight", "-p", str(tiny)]) == 2
    assert "is not numeric" in capsys.readouterr().err


def test_targets_for_a_wave_that_does_not_exist(tiny, capsys):
    (tiny / "codebooks" / "targets.yaml").write_text(TARGETS + "waves:\n  w9:\n    restrict: {sex: [female]}\n")
    assert main(["weight", "-p", str(tiny)]) == 2
    assert "'w9'" in capsys.readouterr().err


def test_a_wave_with_no_respondents(tiny, capsys):
    (tiny / "raw" / "w1.csv").write_text("rid,sex,age,country\nr1,f,15,Грузия\n")   # under 18 → excluded
    (tiny / "codebooks" / "w1.yaml").write_text(CODEBOOK + "eligibility:\n  - age >= 18\n")
    assert main(["run", "-p", str(tiny)]) == 2
    assert "harmonise.empty_wave" in capsys.readouterr().err
    assert not (tiny / "reports").exists()


def test_explicit_claims_file_that_is_missing(tiny, capsys):
    _edit(tiny / "diaspora-survey.toml", "[weighting]", '[compare]\nclaims = "missing.yaml"\n\n[weighting]')
    assert main(["run", "-p", str(tiny)]) == 2
    assert "claims file not found" in capsys.readouterr().err


def test_report_output_naming_a_folder(tiny, capsys):
    (tiny / "reports").mkdir()
    (tiny / "diaspora-survey.toml").write_text(PROJECT + '\n[report]\noutput = "reports"\n')
    assert main(["run", "-p", str(tiny)]) == 2
    assert "names a folder" in capsys.readouterr().err
    assert not (tiny / "reports.pdf").exists()


def test_harmonise_output_must_be_parquet(tiny, capsys):
    assert main(["harmonise", "-p", str(tiny), "-o", str(tiny / "x.csv")]) == 2
    assert "parquet" in capsys.readouterr().err
    assert not (tiny / "x.csv").exists()


def test_nan_valid_range_and_nan_threshold(tiny, capsys):
    _edit(tiny / "codebooks" / "w1.yaml", "valid_range: [14, 100]", "valid_range: [.nan, .inf]")
    assert main(["harmonise", "-p", str(tiny)]) == 2
    assert "codebook.bad_range" in capsys.readouterr().err
    from diaspora_survey.compare.claims import parse_claims
    from diaspora_survey.errors import DiasporaSurveyError

    with pytest.raises(DiasporaSurveyError, match="finite"):
        parse_claims({"claims": [{"id": "c", "statement": "s", "indicator": "mean_age",
                                  "metric": "difference", "op": "<=", "threshold": float("nan")}]})


def test_estimate_on_an_identifier_is_refused_quickly(tiny, capsys):
    rows = ["rid,sex,age,country"] + [f"id{i:05d},f,30,Грузия" for i in range(3000)]
    (tiny / "raw" / "w1.csv").write_text("\n".join(rows) + "\n")
    t0 = time.perf_counter()
    assert main(["estimate", "--mean", "resp_id", "-p", str(tiny)]) == 2
    assert time.perf_counter() - t0 < 20
    assert "identifier" in capsys.readouterr().err


# ---- the fuzz test -------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

YAML_BITS = st.sampled_from(["&a ", "*a", "<<: ", "[", "]", "{", "}", ": ", "- ", "\n", "  ", "'", '"',
                             "!!python/object:os.system ", "!!binary ", "9" * 400, ".nan", ".inf",
                             "~", "null", "\x00", "\t", "#", "%YAML 1.1\n", "---\n", "...\n", "?", ","])
TOML_BITS = st.sampled_from(["[", "]", "[[waves]]\n", "=", '"', "'", "\n", "9" * 400, "inf", "nan",
                             "true", "1979-05-27T07:32:00Z", "{", "}", ",", "[report]\n",
                             "min_cell_size = ", "output = ", '"raw/w1.csv"', "\x00", "\\u0000"])


def _mutate(text: str, draws) -> str:
    for pos, bit, cut in draws:
        i = pos % (len(text) + 1)
        text = text[:i] + bit + text[i + cut:]
    return text


def _fuzz_case(tmp_path_factory, which: str, text: str) -> None:
    root = make_tiny(tmp_path_factory.mktemp("fuzz") / "p")
    rel, args = {"codebook": ("codebooks/w1.yaml", ["harmonise"]),
                 "targets": ("codebooks/targets.yaml", ["weight"]),
                 "project": ("diaspora-survey.toml", ["weight"])}[which]
    (root / rel).write_text(text, encoding="utf-8", errors="surrogatepass")
    before = (root / "raw" / "w1.csv").read_bytes()
    rc = main(args + ["-p", str(root)])          # an exception here (a traceback) fails the test
    assert rc in (0, 2)
    assert (root / "raw" / "w1.csv").read_bytes() == before


def _strategy(base: str, bits):
    draws = st.lists(st.tuples(st.integers(0, 10_000), bits, st.integers(0, 5)), min_size=1, max_size=6)
    return st.one_of(draws.map(lambda d: _mutate(base, d)), st.text(max_size=300))


FUZZ = {"codebook": (CODEBOOK, YAML_BITS), "targets": (TARGETS, YAML_BITS), "project": (PROJECT, TOML_BITS)}


def _fuzz(which: str, examples: int):
    base, bits = FUZZ[which]

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(text=_strategy(base, bits))
    def run(tmp_path_factory, capsys, text):
        _fuzz_case(tmp_path_factory, which, text)
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if err:
            assert err.startswith("error (")

    return run


@pytest.mark.parametrize("which", sorted(FUZZ))
def test_fuzz_fast(tmp_path_factory, capsys, which):
    """A quick fuzz (25 examples per kind of file): exit 0 (still valid) or 2, never a traceback."""
    _fuzz(which, 25)(tmp_path_factory, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("which", sorted(FUZZ))
def test_fuzz_long(tmp_path_factory, capsys, which):
    _fuzz(which, 400)(tmp_path_factory, capsys)


def test_all_respondent_ids_empty(tiny, capsys):
    rows = _rows().splitlines()
    (tiny / "raw" / "w1.csv").write_text("\n".join([rows[0]] + ["," + r.split(",", 1)[1] for r in rows[1:]]) + "\n")
    assert main(["harmonise", "-p", str(tiny)]) == 2
    assert "codebook.empty_id" in capsys.readouterr().err


def test_wrong_file_content_is_not_echoed(tiny, capsys):
    """A file of secrets read as a wave: the hint lists 'columns' cut to 40 characters."""
    secret = "root:$6$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH:20228:0:99999:7:::"
    (tiny / "raw" / "w1.csv").write_text(secret + "\nx\n")
    assert main(["harmonise", "-p", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and secret not in err and "20228" not in err
