"""The PDF as a reader sees it: pages rendered with pdftoppm, fonts embedded, no overflow."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import report_helpers as h
from diaspora_survey.report import render_files
from diaspora_survey.report.content import build_report

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None,
                                reason="pdftoppm (poppler-utils) not installed")

DPI = 40
MARGIN_PT = 2 * 72 / 2.54            # 2 cm, as in pdf.render_pdf


@pytest.fixture(scope="module")
def pdf_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("pdf") / "r.pdf"
    p.write_bytes(render_files(build_report(h.inputs()), "pdf", "r")["r.pdf"])
    return p


def _pages(pdf_path):
    from PIL import Image

    out = pdf_path.parent / "page"
    subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-png", str(pdf_path), str(out)],
                   check=True)
    files = sorted(pdf_path.parent.glob("page-*.png"))
    return [np.asarray(Image.open(f)) for f in files]


def test_nothing_crosses_the_side_margins(pdf_path):
    pages = _pages(pdf_path)
    assert len(pages) >= 6
    m = int(MARGIN_PT * DPI / 72) - 2
    for i, page in enumerate(pages, 1):
        assert page.min() < 128, f"page {i} is blank"
        left, right = page[:, :m], page[:, -m:]
        assert left.min() > 240 and right.min() > 240, f"page {i}: content in the side margin"


def test_fonts_are_embedded_dejavu(pdf_path):
    if shutil.which("pdffonts") is None:
        pytest.skip("pdffonts not installed")
    out = subprocess.run(["pdffonts", str(pdf_path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[2:]
    dejavu = [line for line in out if "DejaVuSans" in line]
    assert dejavu and all(" yes yes yes " in line for line in dejavu)   # embedded subsets
    # reportlab always declares Helvetica as the canvas's initial font; nothing else may appear
    assert all("DejaVuSans" in line or line.startswith("Helvetica ") for line in out)
