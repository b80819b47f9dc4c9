"""Shared fixtures. ``../shared`` (oracle, test data, reference figures) sits beside the
repository; tests that need it skip cleanly when it is absent."""
from __future__ import annotations

import json
import os
from pathlib import Path

import sys

import pytest

# tests live in folders mirroring the package (tests/survey/test_design.py …), imported with
# --import-mode=importlib; shared helpers (report_helpers, conftest.SHARED) sit here
sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIASPORA_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def oracle(shared_dir) -> dict:
    path = shared_dir / "oracle" / "expected.json"
    if not path.exists():
        pytest.skip("oracle/expected.json not found")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def oracle_cases(oracle) -> dict:
    return {c["id"]: c for c in oracle["cases"]}


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO
