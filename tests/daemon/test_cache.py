"""Cache files are written whole or not at all (genrecast.daemon.cache.save_npz)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon import cache


def test_a_cache_file_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "features" / "key.npz"
    cache.save_npz(path, compressed=True, x=np.arange(6.0).reshape(2, 3), name=np.array("room"))
    with np.load(path) as data:
        assert data["x"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and str(data["name"]) == "room"
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.npz"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_interrupted_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch, error) -> None:
    """Ctrl-C (or a full disk) during a feature-cache write left `<key>.tmp.npz` behind, and two runs
    filling one cache wrote the same temporary file."""
    path = tmp_path / "key.npz"
    seen = []

    def partial_write(file, **arrays):
        Path(file).write_bytes(b"PK\x03\x04 half a zip")  # what np.savez had written so far
        seen.append(Path(file).name)
        raise error

    monkeypatch.setattr(np, "savez", partial_write)
    with pytest.raises(type(error) if isinstance(error, BaseException) else error):
        cache.save_npz(path, x=np.zeros(3))
    assert seen == [f"key.{os.getpid()}.tmp.npz"]  # this process's own temporary name
    assert list(tmp_path.iterdir()) == []
