"""docs/tutorial.md runs: every ```python block, in order, in one namespace."""
from __future__ import annotations

import os
import re

import pytest


def _blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_tutorial_blocks_are_found(repo_dir):
    blocks = _blocks((repo_dir / "docs" / "tutorial.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    assert any("df.survey(" in b for b in blocks) and any("ds.compare(" in b for b in blocks)


def test_tutorial_runs(repo_dir, monkeypatch, capsys):
    if not (repo_dir / "diaspora-survey.toml").exists():
        pytest.skip("example project not present")
    text = (repo_dir / "docs" / "tutorial.md").read_text(encoding="utf-8")
    monkeypatch.chdir(repo_dir)
    ns: dict = {"__name__": "tutorial"}
    for i, block in enumerate(_blocks(text), 1):
        try:
            exec(compile(block, f"docs/tutorial.md[block {i}]", "exec"), ns)
        except Exception as ex:   # noqa: BLE001 - name the block that broke
            raise AssertionError(f"tutorial block {i} failed: {ex!r}\n{block}") from ex
    assert "SYNTHETIC" in capsys.readouterr().out
    assert os.path.exists(repo_dir / "build" / "tutorial-higher-education.png")
