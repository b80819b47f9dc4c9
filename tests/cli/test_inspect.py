"""``diaspora-survey inspect``: table, --json, overrides, and exit 2 without a traceback."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pyreadstat
import pytest

from diaspora_survey.cli import main


@pytest.fixture()
def wave_sav(tmp_path):
    df = pd.DataFrame({"q_edu": [1.0, 2.0, 98.0, 99.0, None, 1.0], "w": [0.5, 1.5, 1.0, 1.0, 2.0, 1.0]})
    path = tmp_path / "wave1.sav"
    pyreadstat.write_sav(df, str(path), column_labels={"q_edu": "Образование", "w": "Вес"},
                         variable_value_labels={"q_edu": {1: "Высшее", 2: "Среднее", 98: "Затрудняюсь ответить",
                                                          99: "Отказ от ответа"}},
                         missing_ranges={"q_edu": [98, 99]})
    return path


def test_inspect_table(wave_sav, capsys):
    assert main(["inspect", str(wave_sav)]) == 0
    out = capsys.readouterr().out
    assert "wave1.sav" in out and "Образование" in out and "q_edu" in out
    assert "Высшее" in out  # example values with labels
    assert "3 (2 user)" in out  # missing n = system + user-missing


def test_inspect_json(wave_sav, capsys):
    assert main(["inspect", "--json", str(wave_sav)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["source"]["rows"] == 6 and rep["source"]["format"] == "sav"
    v = {x["name"]: x for x in rep["variables"]}
    assert v["q_edu"]["valid_n"] == 3
    assert v["q_edu"]["missing_n"] == 3
    assert v["q_edu"]["user_missing_n"] == 2 and v["q_edu"]["system_missing_n"] == 1
    assert v["q_edu"]["n_value_labels"] == 4
    assert v["q_edu"]["missing_kinds"] == {"98": "dont_know", "99": "refused"}
    assert v["q_edu"]["examples"] == [1, 2]
    assert v["w"]["type"] == "numeric" and v["w"]["label"] == "Вес"


def test_inspect_csv_with_overrides(tmp_path, capsys):
    p = tmp_path / "w.csv"
    p.write_bytes("id;страна;доход\n1;Грузия;1250,50\n2;Армения;980,00\n".encode("cp1251"))
    assert main(["inspect", "--json", "--encoding", "WINDOWS-1251", "--sep", ";", str(p)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["source"]["encoding"] == "cp1251"
    assert [x["name"] for x in rep["variables"]] == ["id", "страна", "доход"]
    assert rep["variables"][2]["examples"] == [1250.5, 980]


def test_inspect_bad_file_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "x.sav"
    bad.write_text("a,b\n1,2\n")
    r = subprocess.run([sys.executable, "-m", "diaspora_survey.cli", "inspect", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "x.sav" in r.stderr and "hint" in r.stderr
    r = subprocess.run([sys.executable, "-m", "diaspora_survey.cli", "inspect", str(tmp_path / "none.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no such file" in r.stderr


def test_inspect_shared_bad_files(shared_dir):
    for p in sorted((shared_dir / "testdata" / "bad").iterdir()) + \
            [shared_dir / "testdata" / "spss" / "bad" / "readspss__hotel-encrypted.sav"]:
        r = subprocess.run([sys.executable, "-m", "diaspora_survey.cli", "inspect", str(p)],
                           capture_output=True, text=True)
        assert r.returncode == 2, p
        assert "Traceback" not in r.stderr and p.name in r.stderr


def _bad_inputs(tmp_path, wave_sav):
    good = wave_sav.read_bytes()
    files = {}
    files["empty.sav"] = b""
    files["truncated.sav"] = good[: len(good) // 2]
    files["header_cut.sav"] = good[:120]
    files["csv_named.sav"] = b"id;q1\n1;2\n"
    files["sav_named.csv"] = good
    files["undecodable.csv"] = "id,город\n1,Тбилиси\n".encode("utf-8") + b"2,\xff\xfe\n"
    files["ragged.csv"] = b"a,b,c\n1,2,3\n4,5\n"
    files["page.csv"] = b"<!DOCTYPE html><html><body>login</body></html>"
    files["zipped.csv"] = b"\x1f\x8b\x08\x00" + b"\x00" * 40
    out = []
    for name, data in files.items():
        p = tmp_path / name
        p.write_bytes(data)
        out.append(p)
    link = tmp_path / "link.sav"
    link.symlink_to(tmp_path / "missing.sav")
    out += [link, tmp_path / "no_such_file.sav", tmp_path]
    return out


def test_inspect_every_kind_of_bad_input_exits_2_with_one_message(tmp_path, wave_sav, capsys):
    for p in _bad_inputs(tmp_path, wave_sav):
        assert main(["inspect", str(p)]) == 2, p
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines[0].startswith("error (input.") and p.name in lines[0], (p, err)
        assert len(lines) <= 4 and any("hint" in ln for ln in lines), (p, err)
        assert "Traceback" not in err


def test_inspect_file_names_with_brackets_are_not_markup(tmp_path, wave_sav, capsys):
    odd = tmp_path / "wave[bold]1[red].sav"
    odd.write_bytes(wave_sav.read_bytes())
    assert main(["inspect", str(odd)]) == 0
    assert "wave[bold]1[red].sav" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "x[/b].csv")]) == 2
    assert "x[/b].csv" in capsys.readouterr().err


def test_inspect_datetime_overflow_reads_with_warning(shared_dir, capsys):
    path = shared_dir / "testdata" / "spss" / "bad" / "haven__datetime.sav"
    assert main(["inspect", "--json", str(path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["source"]["rows"] == 2
    assert any("date.posix" in w and "raw numbers" in w for w in rep["warnings"])
    types = {v["name"]: v["type"] for v in rep["variables"]}
    assert types["date.posix"] == "numeric" and types["date"] == "date"


def test_inspect_every_good_shared_file(shared_dir, capsys):
    files = sorted((shared_dir / "testdata" / "spss").glob("*.*")) + sorted((shared_dir / "testdata" / "csv").glob("*"))
    for p in files:
        assert main(["inspect", "--json", str(p)]) == 0, p
        rep = json.loads(capsys.readouterr().out)
        assert len(rep["variables"]) == rep["source"]["columns"]
        for v in rep["variables"]:
            assert v["valid_n"] + v["missing_n"] == rep["source"]["rows"]


def test_version(capsys):
    from diaspora_survey import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"diaspora-survey {__version__}"


def _crashing_sav(path):
    """A one-variable .sav whose value-label record names variable 129: ReadStat crashes (SIGSEGV)."""
    pyreadstat.write_sav(pd.DataFrame({"q": [1.0, 2.0, 3.0]}), str(path), variable_value_labels={"q": {1: "a", 2: "b"}})
    raw = bytearray(path.read_bytes())
    i = raw.find(b"\x04\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00")   # record type 4, 1 index, variable 1
    assert i > 0
    raw[i + 8] = 0x81
    path.write_bytes(bytes(raw))
    return path


def test_inspect_reader_crash_ends_in_one_message(tmp_path):
    bad = _crashing_sav(tmp_path / "crash.sav")
    probe = subprocess.run([sys.executable, "-c", "import pyreadstat, sys; pyreadstat.read_sav(sys.argv[1])", str(bad)],
                           capture_output=True)
    if probe.returncode >= 0:
        pytest.skip("this pyreadstat does not crash on the file (ReadStat fixed?)")
    r = subprocess.run([sys.executable, "-m", "diaspora_survey.cli", "inspect", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "input.crash" in r.stderr and "crash.sav" in r.stderr and "corrupt" in r.stderr and "hint" in r.stderr
    assert "Traceback" not in r.stderr and "Fatal Python error" not in r.stderr
    # the forked child's output reaches the terminal as before: a good file, and an error
    good = tmp_path / "good.sav"
    pyreadstat.write_sav(pd.DataFrame({"q": [1.0, 2.0]}), str(good))
    r = subprocess.run([sys.executable, "-m", "diaspora_survey.cli", "inspect", "--json", str(good)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["source"]["rows"] == 2
    r = subprocess.run([sys.executable, "-m", "diaspora_survey.cli", "inspect", str(tmp_path / "nope.sav")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("error (") == 1


# ---- --variable NAME: value labels and missing codes (issue 15, item 4) ----------------------------

def test_inspect_variable_shows_labels_counts_and_missing_codes(wave_sav, capsys):
    assert main(["inspect", str(wave_sav), "--variable", "q_edu"]) == 0
    out = capsys.readouterr().out
    assert "q_edu" in out and "Образование" in out and "user-missing codes: 98, 99" in out
    lines = {ln.split("│")[0].strip(): ln for ln in out.splitlines() if "│" in ln}
    assert [c.strip() for c in lines["1"].split("│")][:3] == ["1", "Высшее", "2"]
    assert [c.strip() for c in lines["98"].split("│")] == ["98", "Затрудняюсь ответить", "1", "16.7", "dont_know"]
    assert [c.strip() for c in lines["99"].split("│")] == ["99", "Отказ от ответа", "1", "16.7", "refused"]
    assert "w" not in lines     # only the variable asked for


def test_inspect_variable_json(wave_sav, capsys):
    assert main(["inspect", "--json", str(wave_sav), "-v", "q_edu", "-v", "w"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in rep["variables"]] == ["q_edu", "w"]
    q = rep["variables"][0]
    assert q["value_labels"] == [
        {"value": 1, "label": "Высшее", "n": 2, "missing": None},
        {"value": 2, "label": "Среднее", "n": 1, "missing": None},
        {"value": 98, "label": "Затрудняюсь ответить", "n": 1, "missing": "dont_know"},
        {"value": 99, "label": "Отказ от ответа", "n": 1, "missing": "refused"}]
    assert q["user_missing"] == [98, 99] and q["summary"] == {"distinct": 2, "min": 1, "max": 2, "mean": 1.333333}
    w = rep["variables"][1]
    assert w["value_labels"] == [] and [(x["value"], x["n"]) for x in w["values"]] == [(0.5, 1), (1, 3), (1.5, 1), (2, 1)]


def test_inspect_json_lists_value_labels_of_every_variable(wave_sav, capsys):
    assert main(["inspect", "--json", str(wave_sav)]) == 0
    v = {x["name"]: x for x in json.loads(capsys.readouterr().out)["variables"]}
    assert [x["label"] for x in v["q_edu"]["value_labels"]] == ["Высшее", "Среднее", "Затрудняюсь ответить",
                                                                 "Отказ от ответа"]
    assert v["w"]["value_labels"] == [] and "values" not in v["q_edu"]


def test_inspect_unknown_variable_exits_2_with_suggestion(wave_sav, capsys):
    assert main(["inspect", str(wave_sav), "--variable", "q_edu_"]) == 2
    err = capsys.readouterr().err
    assert "no variable 'q_edu_'" in err and "did you mean q_edu" in err and "Traceback" not in err
    assert main(["inspect", str(wave_sav), "--variable", "Q_EDU"]) == 0     # case-insensitive when unique


def test_inspect_variable_on_ess(shared_dir, capsys):
    """ESS emplno: user-missing range 66666..99999 with labels; the valid values 0..172 listed with
    counts (hand count from the file: 39 zeros, 2,478 «Not applicable», 19 «Don't know»)."""
    path = shared_dir / "testdata" / "spss" / "Bor_Littvay_TIER_Protocol__ESS5RU.sav"
    assert main(["inspect", "--json", str(path), "--variable", "emplno"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["variables"]
    vals = {v["value"]: v for v in row["values"]}
    assert vals[66666] == {"value": 66666, "label": "Not applicable", "n": 2478, "missing": "not_applicable"}
    assert vals[88888]["n"] == 19 and vals[88888]["missing"] == "dont_know"
    assert vals[0]["n"] == 39 and vals[0]["missing"] is None
    assert row["missing_ranges"] == [[66666, 99999]] and row["summary"]["max"] == 172
    assert sum(v["n"] for v in row["values"]) == 2595
