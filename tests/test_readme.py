"""README.md stays true: its Python example runs and its quick start names the two commands."""
from __future__ import annotations

import re

import pytest


def test_quick_start_is_the_two_make_commands(repo_dir):
    text = (repo_dir / "README.md").read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text


def test_readme_commands_exist(repo_dir):
    """Every command in the README's table is a registered CLI command."""
    from diaspora_survey.cli import app
    import typer.main

    names = set(typer.main.get_command(app).commands)
    text = (repo_dir / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Commands"):text.index("## In Python")]
    listed = set(re.findall(r"^\| `([a-z]+)", section, flags=re.M))
    assert listed and listed <= names, listed - names


def test_readme_python_example_runs(repo_dir, monkeypatch):
    if not (repo_dir / "diaspora-survey.toml").exists():
        pytest.skip("example project not present")
    text = (repo_dir / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) == 1
    monkeypatch.chdir(repo_dir)
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    assert {"estimate", "se", "ci_low", "ci_high"} <= set(ns["design"].mean("age").columns)
