"""The worked ESS example of docs/examples/ess5-russia (issue 15, items 1-4, another part of
the work) through compare and report: method none, the summary on page 1. Skipped without
the example folder or without ../shared."""
from __future__ import annotations

import re
import shutil

import pytest

import report_helpers as h
from conftest import REPO, SHARED
from diaspora_survey.cli import main

EXAMPLE = REPO / "docs" / "examples" / "ess5-russia"
ESS = SHARED / "testdata" / "spss" / "Bor_Littvay_TIER_Protocol__ESS5RU.sav"


def test_ess_example_report_answers_first(tmp_path, capsys):
    if not (EXAMPLE / "diaspora-survey.toml").exists():
        pytest.skip("docs/examples/ess5-russia not in this checkout")
    if not ESS.exists():
        pytest.skip(f"ESS test file not found: {ESS}")
    root = tmp_path / "ess5-russia"
    shutil.copytree(EXAMPLE, root)
    # the folder points at ../shared relative to the repository; point at the file itself
    for f in [root / "diaspora-survey.toml", *root.glob("codebooks/*.yaml")]:
        text = f.read_text(encoding="utf-8")
        text = re.sub(r'(?m)^(\s*file\s*[=:]\s*)"?[^"\n#]*ESS5RU\.sav"?', lambda m: f'{m.group(1)}"{ESS}"', text)
        f.write_text(text, encoding="utf-8")
    assert main(["report", "-p", str(root), "-q"]) == 0, capsys.readouterr().err
    pdf = next((root / "reports").glob("*.pdf")).read_bytes()
    one = " ".join(h.pdf_pages_text(pdf)[0].split())
    assert "Summary" in one and "Claims and verdicts" in one
    assert any(m in one for m in ("✓", "✗", "?"))
    assert "mmigrant" not in one
