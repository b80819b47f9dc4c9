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
