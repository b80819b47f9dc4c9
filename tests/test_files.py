"""Safe file handling (issue 11, items 1-3, 9-10): the output guard, publishing several files
as one unit (journal, stale temporary files, a full disk, kills at every rename) and the
input guard (regular files only, size limit, permissions)."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diaspora_survey import _files
from diaspora_survey._files import (check_input, guard_output, note_input, protect_dir, publish,
                                    read_text_input, recover)
from diaspora_survey._util import atomic_path, atomic_write_bytes
from diaspora_survey.errors import InputFileError, OutputError, ProjectError

SRC = Path(__file__).resolve().parents[1] / "src"


# ---- item 1: outputs never replace inputs ------------------------------------------------------

def test_an_input_is_never_an_output(tmp_path):
    raw = tmp_path / "wave.csv"
    raw.write_text("a\n1\n")
    note_input(raw)
    with pytest.raises(OutputError) as e:
        atomic_write_bytes(raw, b"overwritten")
    assert e.value.code == "output.is_input"
    with pytest.raises(OutputError):
        publish({tmp_path / "ok.md": b"x", raw: b"y"})
    assert raw.read_text() == "a\n1\n"
    assert not (tmp_path / "ok.md").exists()          # nothing written when one target is refused


def test_a_symlink_to_an_input_is_refused(tmp_path):
    raw = tmp_path / "wave.csv"
    raw.write_text("a\n1\n")
    note_input(raw)
    link = tmp_path / "out.md"
    link.symlink_to(raw)
    with pytest.raises(OutputError, match="input"):
        guard_output(link)
    assert raw.read_text() == "a\n1\n"


def test_nothing_is_written_inside_a_raw_folder(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    protect_dir(raw)
    for target in (raw / "new.md", raw / "sub" / "x.parquet"):
        with pytest.raises(OutputError) as e:
            atomic_write_bytes(target, b"x")
        assert e.value.code == "output.in_raw"
    assert list(raw.iterdir()) == []


def test_the_example_generator_may_write_raw_files(tmp_path):
    """``inputs=False`` (the generator) skips only the input check, never the device check."""
    p = tmp_path / "raw.csv"
    p.write_text("old")
    note_input(p)
    atomic_write_bytes(p, b"new", inputs=False)
    assert p.read_text() == "new"


# ---- item 2: devices, FIFOs, folders ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_non_regular_targets_are_refused(tmp_path, kind):
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "folder":
        target = tmp_path / "dir"
        target.mkdir()
    else:
        target = Path("/dev/null")
    before = set(target.parent.iterdir()) if kind != "device" else None
    with pytest.raises(OutputError) as e:
        publish({target: b"x", target.with_name(target.name + "_charts") / "c.png": b"y"})
    assert e.value.code in ("output.not_regular", "output.cannot_write")
    assert not Path(str(target) + "_charts").exists()
    if before is not None:
        assert set(target.parent.iterdir()) == before


# ---- item 3: one unit, stale temporary files, a full disk ---------------------------------------

def test_publish_writes_all_files_and_leaves_nothing_else(tmp_path):
    files = {tmp_path / "r.md": b"md", tmp_path / "r_csv" / "t1.csv": b"1", tmp_path / "r.xlsx": b"x"}
    assert publish(files) == list(files)
    for p, data in files.items():
        assert p.read_bytes() == data
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []


def test_a_full_disk_is_one_error_and_changes_nothing(tmp_path, monkeypatch):
    """ENOSPC while writing the third file: old outputs intact, no new file, no temporary file."""
    old = {tmp_path / "r.md": b"old md", tmp_path / "r.csv": b"old csv"}
    for p, d in old.items():
        p.write_bytes(d)
    real = _files._write_bytes
    calls = {"n": 0}

    def full(path, data):
        calls["n"] += 1
        if calls["n"] == 3:
            with open(path, "wb") as fh:      # a partial write, then the disk is full
                fh.write(data[:2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(_files, "_write_bytes", full)
    new = {tmp_path / "r.md": b"new md", tmp_path / "r.csv": b"new csv", tmp_path / "r.xlsx": b"new"}
    with pytest.raises(OutputError) as e:
        publish(new)
    assert e.value.code == "output.disk_full" and "unchanged" in e.value.message
    for p, d in old.items():
        assert p.read_bytes() == d
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.md"]


def test_a_full_disk_inside_a_writer_callback(tmp_path):
    def parquet(tmp):
        tmp.write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="disk is full"):
        publish({tmp_path / "h.parquet": parquet, tmp_path / "e.parquet": b"x"})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="disk is full"):
        with atomic_path(tmp_path / "w.parquet") as tmp:
            tmp.write_bytes(b"PAR1")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_of_dead_runs_are_removed(tmp_path):
    pid = _dead_pid()
    stale = tmp_path / f".harmonised.parquet.{pid}-0123abcd.ds-tmp"
    stale.write_bytes(b"respondent-level data")
    mine = tmp_path / f".other.parquet.{os.getpid()}-0123abcd.ds-tmp"   # a live run's: kept
    mine.write_bytes(b"in progress")
    legacy = tmp_path / ".weighted.parquet.ab12_x9z.tmp"                 # an older version's
    legacy.write_bytes(b"old temp")
    os.utime(legacy, (1e9, 1e9))
    unrelated = tmp_path / ".hidden.tmp"
    unrelated.write_bytes(b"not ours")
    atomic_write_bytes(tmp_path / "weighted.parquet", b"new")
    assert not stale.exists() and not legacy.exists()
    assert mine.exists() and unrelated.exists()


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {src!r})
    from pathlib import Path
    from diaspora_survey import _files
    k = int(sys.argv[1])
    def hook(i, tmp, target):
        if i == k:
            os.kill(os.getpid(), signal.SIGKILL)
    _files.before_rename = hook
    d = Path({d!r})
    _files.publish({{d / "report.md": b"new md", d / "report_csv" / "t1.csv": b"new 1",
                    d / "report_csv" / "t2.csv": b"new 2", d / "report.xlsx": b"new xlsx",
                    d / "report_charts" / "c.png": b"new png"}})
""")


@pytest.mark.parametrize("k", range(5))
def test_killed_at_any_rename_the_next_run_completes_the_unit(tmp_path, k):
    """SIGKILL before rename k (0..4) of a 5-file report: after the next run's recovery the
    folder holds either all old or all new files — never a mix — and no temporary file."""
    d = tmp_path
    names = ["report.md", "report_csv/t1.csv", "report_csv/t2.csv", "report.xlsx", "report_charts/c.png"]
    for n in names:
        (d / n).parent.mkdir(parents=True, exist_ok=True)
        (d / n).write_bytes(b"old")
    script = _KILL_SCRIPT.format(src=str(SRC), d=str(d))
    proc = subprocess.run([sys.executable, "-c", script, str(k)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    recover([d, d / "report_csv", d / "report_charts"])
    contents = {(d / n).read_bytes() for n in names}
    assert contents == {b"new md", b"new 1", b"new 2", b"new xlsx", b"new png"}
    leftovers = [p for p in d.rglob(".*")]
    assert leftovers == []


def test_killed_before_the_commit_keeps_the_old_outputs(tmp_path):
    """A kill while the temporary files are written (no journal yet): old files stay, and the
    next write into the folder removes the dead run's temporary files."""
    (tmp_path / "report.md").write_bytes(b"old")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(SRC)!r})
        from pathlib import Path
        from diaspora_survey import _files
        real = _files._write_bytes
        n = [0]
        def write(p, data):
            n[0] += 1
            real(p, data)
            if n[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        _files._write_bytes = write
        d = Path({str(tmp_path)!r})
        _files.publish({{d / "report.md": b"new", d / "report.xlsx": b"new", d / "report.tex": b"new"}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob(".*.ds-tmp"))) == 2      # what the kill left behind
    recover([tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    assert (tmp_path / "report.md").read_bytes() == b"old"


# ---- items 9-11: the input guard ----------------------------------------------------------------

def test_a_fifo_is_never_opened(tmp_path):
    fifo = tmp_path / "codebook.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError) as e:
        read_text_input(fifo, what="codebook")          # would block forever if opened
    assert e.value.code == "input.not_regular" and "FIFO" in e.value.message


def test_a_device_and_a_folder_are_refused(tmp_path):
    with pytest.raises(InputFileError, match="device"):
        check_input("/dev/zero")
    with pytest.raises(InputFileError, match="folder"):
        check_input(tmp_path)


def test_size_limit(tmp_path):
    p = tmp_path / "targets.yaml"
    p.write_bytes(b"a: 1\n" * 1000)
    with pytest.raises(ProjectError) as e:
        read_text_input(p, what="targets file", error=ProjectError, code="project", max_bytes=100)
    assert e.value.code == "project.too_large"


def test_binary_and_non_utf8_name_no_content(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"root:*:20228:0:99999:7:::\n\xff\xfe secret\n")
    with pytest.raises(InputFileError) as e:
        read_text_input(p)
    assert "20228" not in e.value.message and "secret" not in e.value.render()
    assert e.value.where.endswith(":2")
    p.write_bytes(b"\x00\x01PK")
    with pytest.raises(InputFileError, match="binary"):
        read_text_input(p)


def test_permission_denied_is_one_error(tmp_path, monkeypatch):
    p = tmp_path / "claims.yaml"
    p.write_text("claims: []\n")
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == p else real(path, mode))
    with pytest.raises(InputFileError) as e:
        read_text_input(p, what="claims file")
    assert e.value.code == "input.permission"


def test_a_symlink_loop_is_one_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InputFileError, match="loop"):
        check_input(tmp_path / "a")
    with pytest.raises(OutputError, match="loop"):
        guard_output(tmp_path / "a")
