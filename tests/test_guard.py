"""The worker of a command (``_guard.run_isolated``) never commits an output once it was asked
to stop — even when Python swallowed the stop (a signal handler that ran inside ``__del__``)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from diaspora_survey import _files, _guard
    from diaspora_survey._util import atomic_path

    out = Path(sys.argv[1])

    class Dropped:
        def __del__(self):              # the handler runs here: Python prints and goes on
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))

    def work():
        d = Dropped()
        del d
        sys.stderr.write("still running\\n")   # the swallowed stop did not end the work
        sys.stderr.flush()
        if sys.argv[2] == "publish":
            _files.publish({out: b"late"})
        else:
            with atomic_path(out) as tmp:
                tmp.write_bytes(b"late")

    rc = _guard.run_isolated(work, path="test", on_error=lambda ex: 1)
    sys.exit(rc)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux")
@pytest.mark.parametrize("writer", ["publish", "atomic"])
def test_a_swallowed_stop_still_commits_nothing(tmp_path, writer):
    target = tmp_path / "out.bin"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("DIASPORA_SURVEY_NO_FORK", None)
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(target), writer], env=env,
                       capture_output=True, text=True, timeout=60)
    assert "still running" in p.stderr                  # the case under test happened
    assert p.returncode == 128 + 15, p.stderr
    assert not target.exists()
    assert [q.name for q in tmp_path.iterdir()] == []   # no temporary file left either
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr
