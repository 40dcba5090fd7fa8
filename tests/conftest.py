"""Shared fixtures. Tests that need ../shared skip without it, but fail under CI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DEEPFAKE_SHARED_DIR", ROOT.parent / "shared"))
AASIST_OFFICIAL = SHARED / "weights" / "aasist-official"
MINISPOOF = SHARED / "data" / "minispoof"
DEMOSPOOF = SHARED / "data" / "demospoof"


def require_shared(path: Path) -> Path:
    """Return path; skip (or fail under CI) when the read-only ../shared is absent."""
    if not path.exists():
        msg = f"{path} not found: ../shared (reference weights and minispoof) is absent"
        if os.environ.get("CI"):
            pytest.fail(msg + " - CI must have it")
        pytest.skip(msg)
    return path


@pytest.fixture
def aasist_official_dir() -> Path:
    return require_shared(AASIST_OFFICIAL)


@pytest.fixture
def minispoof_dir() -> Path:
    return require_shared(MINISPOOF)


@pytest.fixture
def demospoof_dir() -> Path:
    return require_shared(DEMOSPOOF)


@pytest.fixture
def official_weights_dir(tmp_path, monkeypatch, aasist_official_dir) -> Path:
    """A weights directory with the published AASIST checkpoints installed by fetch."""
    from core.detectors.registry import WEIGHTS_ENV, fetch_weights

    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    fetch_weights("aasist-official", source_dir=aasist_official_dir)
    return tmp_path


@pytest.fixture
def sine_wave():
    """1 s of a 1 kHz tone at 16 kHz, float32, amplitude 0.5"""
    t = np.arange(16_000) / 16_000
    return (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_cuda: needs a CUDA device")
    config.addinivalue_line("markers", "browser: drives a real Chromium")
