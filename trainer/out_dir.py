"""The folder a trainer command writes a bundle into: checked before any work starts.

``genrecast train --out DIR`` used to find out only after training that DIR was a file or
on a read-only file system (a raw ``[Errno 30]``), and training into a folder that held
another bundle left that bundle's detector, selection and evaluation model beside the new
one. :func:`prepare_bundle_dir` settles all of it up front.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from genrecast.daemon.bundle import BUNDLE_JSON, DETECTOR_KERAS, DETECTOR_TFLITE, KERAS_FILE, TFLITE_FILE

log = logging.getLogger(__name__)

#: What a bundle folder may hold that the trainer writes (files, and the table model's evaluation folder).
BUNDLE_FILES = (BUNDLE_JSON, KERAS_FILE, TFLITE_FILE, DETECTOR_KERAS, DETECTOR_TFLITE, "metrics.json", "report.md",
                "selection.json", "confusion.png", "curves.png", "conditions.png")
#: Sub-directory of a table bundle holding the evaluation model (trained without the test tracks).
EVALUATION_SUBDIR = "evaluation"


def writable_problem(path: Path, flag: str = "--out") -> str | None:
    """Why a folder cannot be written at ``path`` (created if missing), or None: a file in the way,
    or a nearest existing folder that is read-only or not ours to write."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{flag} {path} is a file; give a folder (it is created if missing)"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{flag} {path}: {existing} is a file, so no folder can be made there; give another path"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{flag} {path}: cannot write in {existing} (read-only file system or no permission); "
                "choose a folder you can write to")
    return None


def prepare_bundle_dir(out: Path, flag: str = "--out") -> None:
    """Check ``out`` before training writes a new bundle there: it must be writable and either
    missing, empty, or a bundle folder, whose bundle files are then removed (so none of the old
    bundle's files stays beside the new one; other files are kept). Raises ``ValueError`` with a
    one-line reason otherwise; a non-empty folder without a bundle is never touched."""
    out = Path(out)
    problem = writable_problem(out, flag)
    if problem:
        raise ValueError(problem)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / BUNDLE_JSON).is_file():
        raise ValueError(f"{flag} {out} is a folder that holds no bundle, and it is not empty; give a new or empty folder "
                         "(nothing there was touched)")
    removed = [name for name in BUNDLE_FILES if (out / name).is_file()]
    for name in removed:
        (out / name).unlink()
    if (out / EVALUATION_SUBDIR / BUNDLE_JSON).is_file():
        shutil.rmtree(out / EVALUATION_SUBDIR)
        removed.append(EVALUATION_SUBDIR + "/")
    log.info("replacing the bundle in %s (removed %s)", out, ", ".join(removed))
    others = sorted(p.name for p in out.iterdir())
    if others:
        log.warning("%s also holds %s, which are not bundle files: kept", out, ", ".join(others[:5]) + (" ..." if len(others) > 5 else ""))
