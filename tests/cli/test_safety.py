"""Issue 11 from the command line: raw data never destroyed (items 1-2), kills stop the
worker (item 4), hostile input is one message with exit 2 (items 9-13), and a fuzz test
over codebooks, targets and project files (hypothesis)."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diaspora_survey.cli import main

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def _copy_example(dest: Path) -> Path:
    if not (REPO / "diaspora-survey.toml").exists():
        pytest.skip("example project not present")
    for name in ("raw", "codebooks"):
        shutil.copytree(REPO / name, dest / name)
    shutil.copy(REPO / "diaspora-survey.toml", dest / "diaspora-survey.toml")
    return dest


@pytest.fixture
def example(tmp_path):
    return _copy_example(tmp_path / "proj")


def _fingerprint(root: Path) -> dict:
    """sha256 and mtime (ns) of every file under the project's inputs."""
    out = {}
    for sub in ("raw", "codebooks"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(),
                                                 p.stat().st_mtime_ns)
    f = root / "diaspora-survey.toml"
    out[f.name] = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
    return out


# ---- item 1: outputs never over inputs; raw files never change -------------------------------

OVER_INPUTS = [
    ["report", "-f", "md", "-o", "raw/2022-11_wave2.csv"],
    ["report", "-f", "md", "-o", "raw/new-file.md"],
    ["report", "-f", "md", "-o", "diaspora-survey.toml"],
    ["report", "-f", "md", "-o", "codebooks/claims.yaml"],
    ["harmonise", "-o", "raw/2024-05_wave3.zsav"],
    ["harmonise", "-o", "codebooks/2022-03_wave1.yaml"],
    ["harmonise", "-o", "raw/harmonised.parquet"],
    ["weight", "-o", "raw/2022-03_wave1.sav"],
    ["weight", "-o", "codebooks/targets.yaml"],
    ["codebook", "draft", "raw/2022-03_wave1.sav", "-o", "raw/2022-03_wave1.sav", "--force"],
    ["codebook", "draft", "raw/2022-03_wave1.sav", "-o", "codebooks/2022-03_wave1.yaml", "--force"],
    ["report", "-f", "md", "-o", "/dev/null"],
    ["harmonise", "-o", "/dev/null"],
]


@pytest.mark.parametrize("args", OVER_INPUTS, ids=lambda a: " ".join(a))
def test_outputs_over_inputs_are_refused(example, monkeypatch, capsys, args):
    monkeypatch.chdir(example)
    before = _fingerprint(example)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert any(c in err for c in ("output.is_input", "output.in_raw", "output.not_regular"))
    assert _fingerprint(example) == before
    assert sorted(p.name for p in (example / "raw").iterdir()) == sorted(
        p.name for p in (REPO / "raw").iterdir())


def test_project_settings_cannot_write_into_raw(example, capsys):
    toml = example / "diaspora-survey.toml"
    toml.write_text(toml.read_text().replace('[harmonise]\n', '[harmonise]\noutput = "raw/2022-03_wave1.sav"\n'))
    before = _fingerprint(example)
    assert main(["harmonise", "-p", str(example)]) == 2
    assert "output.is_input" in capsys.readouterr().err
    assert _fingerprint(example) == before


def test_raw_files_never_change_whatever_the_command_line(example, monkeypatch, capsys):
    """Every command (valid or hostile) leaves raw/, codebooks/ and the project file unchanged:
    same sha256, same mtime."""
    monkeypatch.chdir(example)
    before = _fingerprint(example)
    commands = [
        ["harmonise"], ["weight"], ["report", "-f", "md"], ["report", "-f", "csv", "-o", "out/r.csv"],
        ["codebook", "check"], ["codebook", "draft", "raw/2022-11_wave2.csv"],
        ["codebook", "draft", "raw/2022-11_wave2.csv", "-o", "build/draft.yaml"],
        ["inspect", "raw/2022-03_wave1.sav"], ["estimate", "--mean", "age", "--by", "wave"],
        ["compare", "--by", "wave"],
        *OVER_INPUTS,
        ["harmonise", "-o", "raw"], ["report", "-o", "raw", "-f", "md"], ["weight", "-i", "raw/2022-03_wave1.sav"],
        ["weight", "-t", "raw/2022-03_wave1.sav"], ["estimate", "--mean", "resp_id"],
    ]
    for args in commands:
        rc = main(args)
        assert rc in (0, 1, 2), args
        assert _fingerprint(example) == before, args
    assert "Traceback" not in capsys.readouterr().err


# ---- item 2: devices ----------------------------------------------------------------------------

def test_report_to_a_device_creates_nothing(example, capsys):
    assert main(["report", "-p", str(example), "-f", "csv", "-o", "/dev/null"]) == 2
    assert "output.not_regular" in capsys.readouterr().err
    assert not Path("/dev/null_csv").exists() and not Path("/dev/null_charts").exists()


# ---- item 3: a full disk during `run` --------------------------------------------------------

def test_a_full_disk_is_one_message_and_old_outputs_stay(example, monkeypatch, capsys):
    import errno

    import pandas as pd

    assert main(["harmonise", "-p", str(example)]) == 0
    build = example / "build"
    old = {p.name: p.read_bytes() for p in build.iterdir()}

    def full(self, path, *a, **k):
        Path(path).write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    capsys.readouterr()
    assert main(["run", "-p", str(example)]) == 2
    err = capsys.readouterr().err
    assert "output.disk_full" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in build.iterdir()} == old     # nothing new, no temp file
    assert not (example / "reports").exists()


# ---- item 4: kill forwarding ------------------------------------------------------------------

def _start(example: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("DIASPORA_SURVEY_NO_FORK", None)
    return subprocess.Popen([sys.executable, "-c", "import sys; from diaspora_survey.cli import main; "
                             "sys.exit(main(['run', '-p', sys.argv[1]]))", str(example)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _child_of(pid: int, timeout: float = 30) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    pytest.fail("the worker did not start")


def _gone(pid: int, timeout: float = 10) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork + /proc: Linux")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_killing_the_command_stops_the_worker(example, sig):
    """kill / kill -9 / kill -INT of the visible PID: the forked worker stops too, and no
    report is written afterwards (the worker would otherwise finish and write)."""
    proc = _start(example)
    child = _child_of(proc.pid)
    time.sleep(1.0)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert _gone(child), "the worker survived its parent"
    time.sleep(0.5)
    assert not (example / "reports" / "diaspora-report.pdf").exists()
    assert "Traceback" not in err
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM and "command.stopped" in err
    elif sig == signal.SIGINT:
        assert proc.returncode == 130
    leftovers = [p for p in example.rglob(".*") if p.name.endswith(".ds-tmp")]
    if sig != signal.SIGKILL:                  # unwound: it removed its temporary files itself
        assert leftovers == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork + /proc: Linux")
def test_a_worker_killed_by_sigkill_is_not_a_corrupt_spss_file(example):
    proc = _start(example)
    child = _child_of(proc.pid)
    time.sleep(1.0)
    os.kill(child, signal.SIGKILL)             # what the out-of-memory killer does
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL
    assert "command.killed" in err and "out-of-memory" in err
    assert "corrupt" not in err and "SPSS" not in err and "Traceback" not in err
