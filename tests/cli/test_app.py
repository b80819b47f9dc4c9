import subprocess
import sys

from diaspora_survey.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "diaspora-survey" in capsys.readouterr().out


def test_help_does_not_import_heavy_modules():
    """--help must stay fast: no pandas/matplotlib/statsmodels/reportlab at start-up."""
    code = ("import sys; from diaspora_survey.cli import main; "
            "rc = main(['--help']); "
            "heavy = [m for m in ('pandas', 'matplotlib', 'statsmodels', 'reportlab', 'seaborn', 'scipy') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_unknown_command_exits_2():
    assert main(["no-such-command"]) == 2


def test_no_isolate_runs_in_process(monkeypatch, tmp_path):
    """--no-isolate (and DIASPORA_SURVEY_NO_FORK=1) run the command in this process, so a
    profiler sees it: no forked child (run_isolated is not called)."""
    from diaspora_survey import _guard

    def forked(*a, **k):
        raise AssertionError("the command was run in a forked child")

    monkeypatch.setattr(_guard, "run_isolated", forked)
    assert main(["--no-isolate", "compare", "--project", str(tmp_path / "none")]) == 2
    monkeypatch.setenv("DIASPORA_SURVEY_NO_FORK", "1")
    assert main(["compare", "--project", str(tmp_path / "none")]) == 2


def test_cprofile_sees_the_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cProfile", "-s", "ncalls", "-m", "diaspora_survey.cli",
                          "--no-isolate", "compare", "--project", str(tmp_path / "none")],
                         capture_output=True, text=True)
    assert "project.py" in out.stdout and "waitpid" not in out.stdout
