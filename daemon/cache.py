"""Where genrecast keeps caches (the numba JIT cache, feature caches), and how a cache file is written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def cache_dir() -> Path:
    """The genrecast cache directory: ``$GENRECAST_CACHE_DIR``, systemd's
    ``$CACHE_DIRECTORY``, ``$XDG_CACHE_HOME/genrecast`` or ``~/.cache/genrecast``; for a
    user with no home (a ``DynamicUser=`` unit without ``CacheDirectory=``),
    ``<temp dir>/genrecast-cache-<uid>``."""
    for var in ("GENRECAST_CACHE_DIR", "CACHE_DIRECTORY"):
        if os.environ.get(var):
            return Path(os.environ[var].split(":")[0])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "genrecast"
    try:
        return Path.home() / ".cache" / "genrecast"
    except RuntimeError:  # no $HOME and no passwd entry
        import tempfile

        return Path(tempfile.gettempdir()) / f"genrecast-cache-{os.getuid()}"


def ensure_numba_cache() -> Path:
    """Point ``NUMBA_CACHE_DIR`` at a kept, writable directory (unless already set)
    so that librosa's JIT-compiled functions are compiled once, not per process.
    Must run before librosa is imported."""
    current = os.environ.get("NUMBA_CACHE_DIR")
    if current:
        return Path(current)
    path = cache_dir() / "numba"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return path
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    return path


def save_npz(path: Path, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to the cache file ``path`` (``.npz``) whole or not at all: into a temporary
    file of this process (``NAME.PID.tmp.npz``: two runs filling one cache never write the same
    one), then renamed over ``path``. A write that fails or is interrupted (a full disk, Ctrl-C)
    removes its temporary file and raises as it was raised (``OSError``, ``KeyboardInterrupt``).
    (numpy is imported here, not with the module: ``genrecast.daemon.cli`` imports this module
    before it sets OpenBLAS to one thread, which must happen before numpy loads OpenBLAS.)"""
    import numpy as np

    from genrecast.daemon.paths import replace_whole

    path.parent.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    replace_whole(path, path.with_suffix(f".{os.getpid()}.tmp.npz"), lambda tmp: save(tmp, **arrays))
