"""Two file-system helpers shared by the daemon and the trainer: the nearest folder of a path
that exists (to ask its disk about a path not made yet), and writing a file whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def nearest_existing(path: os.PathLike | str) -> Path:
    """``path`` made absolute, or its nearest parent that exists (``/`` at the worst)."""
    where = Path(os.path.abspath(path))
    while not where.exists() and where != where.parent:
        where = where.parent
    return where


def replace_whole(path: Path, tmp: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)``, then rename ``tmp`` over ``path``: readers see the old file or the whole new
    one. A write that fails or is interrupted (a full disk, Ctrl-C) removes ``tmp`` and raises as it
    was raised (``OSError``, ``KeyboardInterrupt``)."""
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
