"""Shared paths to real traces: the bundled samples and the real files in ../shared/traces."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED_TRACES = ROOT.parent / "shared" / "traces"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    assert SHARED_TRACES.is_dir(), f"{SHARED_TRACES} is missing: CI lays ../shared beside the clone"
    return SHARED_TRACES


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
