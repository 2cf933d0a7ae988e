"""Helpers shared by the tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def data_root() -> Path:
    return Path(os.environ.get("GENRECAST_TEST_DATA", REPO.parent / "shared" / "data"))


def need(path: Path) -> Path:
    """Return ``path``, or skip (fail under CI) when the shared test data is absent."""
    if not path.exists():
        message = f"test data {path} is absent (set GENRECAST_TEST_DATA to ../shared/data)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path



def sample_clips(root: Path) -> list[Path]:
    """Every audio clip under a gtzan-sample style folder."""
    return sorted(p for p in root.glob("*/*.*") if p.suffix in (".wav", ".mp3", ".au"))


def run_cli(*args: str, timeout: float = 300, **kwargs):
    """Run the installed ``genrecast`` command; returns the CompletedProcess."""
    exe = Path(sys.executable).parent / "genrecast"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, **kwargs)


