"""The folder a trainer command writes a bundle into: checked before any work starts, and
cleared of an older bundle's leftovers only once the new bundle is written.

A new bundle is written into a staging folder inside ``--out`` (:func:`staged_bundle`) and moved
into place only when the whole run has succeeded, so a run that fails or is interrupted leaves
the folder's older bundle as it was (it used to leave a report and a model of one run beside the
``bundle.json`` and ``.tflite`` of another, which the loader took for one bundle).

``genrecast train --out DIR`` used to find out only after training that DIR was a file or
on a read-only file system (a raw ``[Errno 30]``), and training into a folder that held
another bundle left that bundle's music detector and evaluation model beside the new one.
:func:`check_bundle_dir` settles the first up front; :func:`clear_stale_bundle_files` the
second, after a successful run, so a run that fails leaves the old bundle's files alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

from genrecast.daemon.bundle import BUNDLE_JSON, DETECTOR_KERAS, DETECTOR_TFLITE, KERAS_FILE, TFLITE_FILE
from genrecast.daemon.paths import nearest_existing, replace_whole

log = logging.getLogger(__name__)

#: Files the trainer writes into a bundle folder (``selection.json`` is not among them: the trainer
#: only reads it, and ``scripts/make_default_bundle.sh`` puts it there before training).
BUNDLE_FILES = (BUNDLE_JSON, KERAS_FILE, TFLITE_FILE, DETECTOR_KERAS, DETECTOR_TFLITE, "metrics.json", "report.md",
                "confusion.png", "curves.png", "conditions.png")
#: Sub-directory of a table bundle holding the evaluation model (trained without the test tracks).
EVALUATION_SUBDIR = "evaluation"
#: Name prefix of the staging folder a run writes its bundle into (:func:`staged_bundle`).
STAGING_PREFIX = ".genrecast-partial-"
#: What else a bundle folder may hold without being "a folder of other things".
_BUNDLE_EXTRAS = ("selection.json", EVALUATION_SUBDIR)


def writable_problem(path: Path, flag: str = "--out") -> str | None:
    """Why a folder cannot be written at ``path`` (created if missing), or None: a file in the way,
    or a nearest existing folder that is read-only or not ours to write."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{flag} {path} is a file; give a folder (it is created if missing)"
    existing = nearest_existing(path)
    if not existing.is_dir():
        return f"{flag} {path}: {existing} is a file, so no folder can be made there; give another path"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{flag} {path}: cannot write in {existing} (read-only file system or no permission); "
                "choose a folder you can write to")
    return None


def _is_bundle_folder(out: Path) -> bool:
    """``out`` holds a genrecast bundle (a bundle.json with its format version and labels), or only
    what a bundle run writes (an interrupted one leaves no bundle.json)."""
    meta = out / BUNDLE_JSON
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and "format_version" in doc and "labels" in doc
    return all(p.name in BUNDLE_FILES or p.name in _BUNDLE_EXTRAS or p.name.startswith(STAGING_PREFIX)
               for p in out.iterdir())


def check_bundle_dir(out: Path, flag: str = "--out") -> None:
    """Before any work: ``out`` must be writable and missing, empty or a bundle folder (which the
    new bundle then replaces). Raises ``ValueError`` with a one-line reason otherwise; nothing is
    touched either way."""
    out = Path(out)
    problem = writable_problem(out, flag)
    if problem:
        raise ValueError(problem)
    if out.is_dir() and any(out.iterdir()) and not _is_bundle_folder(out):
        raise ValueError(f"{flag} {out} is a folder that holds no genrecast bundle, and it is not empty; give a new or "
                         "empty folder (nothing there was touched)")


#: Files ``genrecast evaluate --out`` writes (its report; with ``--conditions``, the conditions table).
EVALUATION_FILES = ("metrics.json", "report.md", "confusion.png", "conditions.json", "conditions.md", "conditions.png")


def _is_evaluation(path: Path) -> bool:
    """``path`` is a metrics.json or conditions.json that ``genrecast evaluate`` wrote."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and ({"window_accuracy", "split"} <= doc.keys() or {"conditions", "verdicts"} <= doc.keys())


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all: into ``PATH.tmp``, then renamed over
    ``path``; the partial ``PATH.tmp`` of a failed write (a full disk) is removed. Raises the
    ``OSError`` of the write. For the file :func:`check_report_dir` knows an evaluation by, which
    is written first: a report cut short leaves it whole, or leaves nothing."""
    replace_whole(path, path.with_name(path.name + ".tmp"), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_report_dir(out: Path, flag: str = "--out") -> None:
    """Before any work: ``out`` (``evaluate --out``) must not hold files of the names evaluate writes
    unless an earlier evaluation wrote them there, since it replaces them (a report.md of one's own
    was overwritten without a word). Raises ``ValueError`` with a one-line reason; touches nothing."""
    out = Path(out)
    if not out.is_dir() or any(_is_evaluation(out / name) for name in ("metrics.json", "conditions.json")):
        return
    clashing = [name for name in EVALUATION_FILES if (out / name).exists()]
    if clashing:
        raise ValueError(f"{flag} {out} holds {', '.join(clashing)} that genrecast evaluate did not write, and would "
                         "replace; give a new or empty folder (nothing there was touched)")


def clear_stale_bundle_files(out: Path, since: float) -> list[str]:
    """After a successful run that started at ``since`` (``time.time()``): remove the bundle files
    of ``out`` (and of its ``evaluation/`` folder) that the run did not write, i.e. an older bundle's
    leftovers such as its music detector, and the staging folders of runs that no longer run (on this
    host: the folder's name holds the run's process id). Other
    files are kept. Returns what was removed."""
    out = Path(out)
    removed = []
    for folder, prefix in ((out, ""), (out / EVALUATION_SUBDIR, EVALUATION_SUBDIR + "/")):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for name in BUNDLE_FILES:
            path = folder / name
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < since:
                path.unlink()
                removed.append(prefix + name)
    evaluation = out / EVALUATION_SUBDIR
    if evaluation.is_dir() and not evaluation.is_symlink() and not any(evaluation.iterdir()):
        evaluation.rmdir()
    # a run killed outright (SIGKILL, a power cut) left its staging folder; its process id is this host's
    # (a run into the same folder from another container or host is not seen: give each run its own --out)
    for stage in sorted(out.glob(f"{STAGING_PREFIX}*")):
        if stage.is_dir() and not stage.is_symlink() and not _running(stage.name[len(STAGING_PREFIX):]):
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage.name)
    leftovers = [name for name in removed if not name.startswith(STAGING_PREFIX)]
    if leftovers:
        log.info("removed the previous bundle's %s from %s", ", ".join(leftovers), out)
    if stages := [name for name in removed if name.startswith(STAGING_PREFIX)]:
        log.info("removed the unfinished bundle of a run that was killed (%s) from %s", ", ".join(stages), out)
    return removed


def _running(pid: str) -> bool:
    """Whether the process ``pid`` (a staging folder's suffix) still runs (and may still be writing there)."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it runs
        return True
    return True


@contextlib.contextmanager
def staged_bundle(out: Path) -> Iterator[Path]:
    """A new, empty staging folder inside ``out`` (created if missing) to write a bundle into.
    When the ``with`` block succeeds, the staged files replace ``out``'s own of the same names
    (each ``os.replace``, atomic) and the staging folder goes; when it raises (an error, Ctrl-C),
    the staging folder is removed, ``out`` is left as it was (removed again if this made it) and
    the exception propagates."""
    out = Path(out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f"{STAGING_PREFIX}{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if nothing else appeared there meanwhile
        raise
    _move_into(stage, out)
    stage.rmdir()


def _move_into(source: Path, target: Path) -> None:
    """Move the files of ``source`` into ``target``, folder by folder, replacing files of the same name."""
    for entry in sorted(source.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            (target / entry.name).mkdir(exist_ok=True)
            _move_into(entry, target / entry.name)
            entry.rmdir()
        else:
            os.replace(entry, target / entry.name)
