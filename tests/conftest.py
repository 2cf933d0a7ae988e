"""Shared fixtures: the real test data, a kept numba cache, the CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
Path(os.environ["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)

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


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (or ``$GENRECAST_TEST_DATA``)."""
    return need(data_root())


@pytest.fixture(scope="session")
def gtzan_sample(data_dir: Path) -> Path:
    return need(data_dir / "gtzan-sample")


@pytest.fixture(scope="session")
def gtzan_excerpts(data_dir: Path) -> Path:
    return need(data_dir / "gtzan-excerpts")


@pytest.fixture(scope="session")
def genrecast_exe() -> str:
    """The installed ``genrecast`` console command of this environment."""
    exe = Path(sys.executable).parent / "genrecast"
    assert exe.exists(), f"{exe} missing: install the project (scripts/setup.sh)"
    return str(exe)
