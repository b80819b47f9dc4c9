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
