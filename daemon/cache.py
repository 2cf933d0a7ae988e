"""Where genrecast keeps caches (the numba JIT cache, feature caches)."""

from __future__ import annotations

import os
from pathlib import Path


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
