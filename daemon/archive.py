"""``genrecast classify`` over archives: which files (directories, globs, list files), which
are already done (``--resume``), and the tally, progress and summary of a run.

Inputs are expanded lazily, so a list of a million paths is read one line at a time; only
the set of paths already seen is kept (to classify each file once when inputs overlap).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

#: File name endings a directory is searched for (globs and lists take whatever they name).
AUDIO_SUFFIXES = frozenset({
    ".wav", ".wave", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff",
    ".aifc", ".au", ".snd", ".mka", ".mp2", ".ac3", ".amr", ".caf", ".w64", ".webm",
})
#: JSON line types that close a file in the output (``--resume`` counts such a file as done).
CLOSING_TYPES = ("verdict", "error")


class InputError(ValueError):
    """An input names nothing that can be read (the message says which and why)."""


def _is_glob(text: str) -> bool:
    return glob.has_magic(text)


def walk_audio(folder: Path) -> Iterator[str]:
    """Audio files under ``folder``, recursively, in a stable order (sorted per directory).
    Linked folders are followed (a folder of links to a music library is common); a folder
    reached twice, as a link back to a parent makes it, is read once. Hidden files and folders
    (a name starting with ``.``) are left out, as a shell's ``*`` leaves them: a disk that a Mac
    wrote holds a ``._NAME.mp3`` of metadata beside every ``NAME.mp3``, and none of them decodes."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                yield os.path.join(root, name)


def _list_lines(list_file: str) -> Iterator[str]:
    """Paths of a list file (``-``: stdin), one a line; blank lines and ``#`` comments skipped.
    UTF-8, with or without the byte-order mark that Windows editors write; a name that is not
    UTF-8 (a Latin-1 name from an old disk) stays the bytes it names, as in ``sys.argv``."""
    if list_file == "-":
        stream = sys.stdin
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    else:
        stream = open(list_file, encoding="utf-8", errors="surrogateescape")
    try:
        for number, line in enumerate(stream):
            line = (line.removeprefix("\ufeff") if number == 0 else line).strip()
            if line and not line.startswith("#"):
                yield line
    finally:
        if stream is not sys.stdin:
            stream.close()


def check_inputs(items: Iterable[str], lists: Iterable[str]) -> None:
    """Raise :class:`InputError` for a folder without audio files, a glob that matches nothing or a
    list file that cannot be opened (checked before any work starts; a missing plain file is that
    file's error line)."""
    for item in items:
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", item) and not Path(item).exists():
            raise InputError(f"{item}: classify reads local files, not URLs; for a stream run "
                             f"`genrecast run --source {item}`, or download the file first")
        if Path(item).is_dir() and next(walk_audio(Path(item)), None) is None:
            raise InputError(f"{item}: the folder holds no audio files (searched recursively, hidden ones left "
                             f"out, for {', '.join(sorted(AUDIO_SUFFIXES))}); give a folder with audio, or the files themselves")
        if _is_glob(item) and not Path(item).exists():
            if next(glob.iglob(item, recursive=True), None) is None:
                raise InputError(f"{item}: the pattern matches no file (quote it so that the shell leaves it to genrecast, "
                                 f"and check the folder)")
    for list_file in lists:
        if list_file != "-" and (Path(list_file).is_dir() or not os.access(list_file, os.R_OK)):
            raise InputError(f"--list {list_file}: cannot read it (give a text file with one audio path a line, or - for stdin)")


def _glob_files(pattern: str) -> Iterator[str]:
    """The matches of ``pattern`` (``**`` recurses) that are not folders, as :func:`glob.iglob`
    yields them, nor a loop of links (ELOOP: the depth where a ``**`` glob round a link back to a
    parent stops). A match that cannot be looked up otherwise (a dangling link) is kept, for its
    error line."""
    for path in glob.iglob(pattern, recursive=True):
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                continue
        yield path


def path_key(path: str) -> str:
    """What makes two names of a file one (``a.mp3``, ``./a.mp3``, ``dir/../a.mp3``): the absolute,
    normalised path (against the working directory; links are not followed)."""
    return os.path.normpath(os.path.abspath(path))


def iter_inputs(items: Iterable[str], lists: Iterable[str] = (), skip: Mapping[str, str] | None = None,
                on_skip: Callable[[str], None] | None = None) -> Iterator[str]:
    """Every file the inputs name, once (by :func:`path_key`, and by device and inode, so a file
    reached through a link, or by a quoted ``**`` glob round a loop of links, counts once),
    lazily: an existing file as given; a directory's audio files (:data:`AUDIO_SUFFIXES`),
    recursively; a glob's matches (``**`` recurses), sorted per pattern only as
    :func:`glob.iglob` yields them; then every list file's lines. Paths whose key is in ``skip``
    (done by an earlier run: :func:`resume_output`) are left out, each calling ``on_skip`` with
    the status the earlier run gave it."""
    skip = skip or {}
    seen: set[str] = set()
    files: set[tuple[int, int]] = set()  # (device, inode): one file reached through links, or a glob's ** round a loop

    def fresh(paths: Iterable[str]) -> Iterator[str]:
        for path in paths:
            key = path_key(path)
            if key in seen:
                continue
            seen.add(key)
            try:
                st = os.stat(path)
            except OSError:  # a missing file: its own error line
                pass
            else:
                if (st.st_dev, st.st_ino) in files:
                    continue
                files.add((st.st_dev, st.st_ino))
            if key in skip:
                if on_skip is not None:
                    on_skip(skip[key])
                continue
            yield path

    for item in items:
        path = Path(item)
        if path.is_dir():
            yield from fresh(walk_audio(path))
        elif _is_glob(item) and not path.exists():
            yield from fresh(_glob_files(item))
        else:
            yield from fresh([item])
    for list_file in lists:
        yield from fresh(_list_lines(list_file))


# -- --resume --------------------------------------------------------------------------

def _classify_record(raw: bytes) -> dict | None:
    """The line ``raw`` as ``genrecast classify`` writes it (a JSON object whose ``type`` is
    ``window``, ``verdict`` or ``error``, with a ``file``), or None for any other line."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("type") in ("window", *CLOSING_TYPES) and isinstance(record.get("file"), str):
        return record
    return None


def foreign_line(path: Path) -> int | None:
    """The number (from 1) of the first whole line of ``path`` that ``genrecast classify`` does
    not write (:func:`_classify_record`), or None: :func:`resume_output` must not cut back a file
    of other lines (an event log, an audio file). A last line without its newline, as a kill
    leaves it, is not judged."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                return None
            if _classify_record(raw) is None:
                return number
    return None


def resume_output(path: Path) -> dict[str, str]:
    """The files an earlier run finished in the JSON lines at ``path`` (a ``verdict`` or an
    ``error`` line), each as its :func:`path_key` (so ``./a.mp3`` matches ``a.mp3``) to the status
    it got (``ok``, ``too_short`` or ``error``, as :meth:`Tally.count` takes them), after cutting
    the file back to the end of the last such line: the window lines of a file whose verdict never
    came, and a last line cut short by a kill, are removed, so that file is classified again and
    appears once. A missing file is an empty start."""
    done: dict[str, str] = {}
    if not path.exists():
        return done
    keep = offset = 0
    with open(path, "rb") as f:
        for raw in f:
            offset += len(raw)
            if not raw.endswith(b"\n"):
                break  # the last line, cut short
            record = _classify_record(raw)
            if record is not None and record["type"] in CLOSING_TYPES:
                done[path_key(record["file"])] = _status(record)
                keep = offset
    if keep < path.stat().st_size:
        os.truncate(path, keep)
    return done


def _status(record: dict) -> str:
    """The status (as :meth:`Tally.count` takes it) of a file whose closing line is ``record``."""
    if record["type"] == "error":
        return "error"
    return "too_short" if record.get("too_short") is True else "ok"


# -- the tally and the progress of a run ---------------------------------------------

@dataclass
class Tally:
    """What a run did: files classified, too short, unreadable; seconds of audio."""

    classified: int = 0
    too_short: int = 0
    failed: int = 0
    skipped: int = 0
    """Files left out because an earlier run finished them (``--resume``)."""
    skipped_failed: int = 0
    """Of those, the ones the earlier run could not read."""
    skipped_short: int = 0
    """Of those, the ones the earlier run found too short."""
    unplotted: int = 0
    """Files classified whose ``--plot`` timeline could not be written."""
    audio_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def files(self) -> int:
        return self.classified + self.too_short + self.failed

    def count(self, status: str, audio_seconds: float, plotted: bool = True) -> None:
        """Count one file: ``status`` is ``ok``, ``too_short`` or ``error``; ``plotted`` is False for
        a file whose timeline could not be written."""
        self.unplotted += not plotted
        if status == "error":
            self.failed += 1
        elif status == "too_short":
            self.too_short += 1
        else:
            self.classified += 1
        self.audio_seconds += audio_seconds

    def count_skipped(self, status: str) -> None:
        """Count a file an earlier run finished with ``status`` (see :meth:`count`)."""
        self.skipped += 1
        self.skipped_failed += status == "error"
        self.skipped_short += status == "too_short"

    def exit_status(self) -> int:
        """The run's exit status (see :mod:`genrecast.daemon.classify_run`), the files an earlier run
        finished included: a resumed run ends as the whole run would have."""
        if self.failed or self.skipped_failed or self.unplotted:
            return 1
        return 3 if self.too_short or self.skipped_short else 0

    def summary(self, output: Path | None) -> str:
        """One line, e.g. ``classified 118 files (0.98 h of audio) in 41 s; 1 could not be read; ...``."""
        parts = [f"classified {self.classified} file{'s' * (self.classified != 1)} "
                 f"({self.audio_seconds / 3600:.2f} h of audio) in {time.monotonic() - self.started:.0f} s"]
        if self.too_short:
            parts.append(f"{self.too_short} too short")
        if self.failed:
            parts.append(f"{self.failed} could not be read (their \"error\" lines say why)" if output
                         else f"{self.failed} could not be read")
        if self.unplotted:
            parts.append(f"{self.unplotted} timeline{'s' * (self.unplotted != 1)} not written")
        if self.skipped:
            earlier = [f"{n} {what}" for n, what in ((self.skipped_failed, "could not be read"),
                                                     (self.skipped_short, "too short")) if n]
            parts.append(f"{self.skipped} skipped, already in {output}"
                         + (f" (of them {' and '.join(earlier)})" if earlier else ""))
        return "; ".join(parts)


class ArchiveProgress:
    """Progress of a run over many files on stderr: files done of the total, hours of audio,
    and the time left. A rich bar on a terminal; elsewhere a line every tenth of the files.
    The total may come later (:meth:`set_total`, from a counting thread) or never (stdin)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.total: int | None = None
        self.done = 0
        self.hours = 0.0
        self._bar = None
        self._next_line = 0
        self._lock = threading.Lock()

    def __enter__(self) -> "ArchiveProgress":
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                                 TextColumn("{task.fields[hours]:.2f} h of audio"), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("classify", total=self.total, hours=0.0)
        return self

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
            self._next_line = max(1, total // 10)
            if self._bar is not None:
                self._bar.update(self._task, total=total)

    def advance(self, audio_seconds: float) -> None:
        with self._lock:
            self.done += 1
            self.hours += audio_seconds / 3600
            if self._bar is not None:
                self._bar.update(self._task, advance=1, hours=self.hours)
            elif self.enabled and self.total and self.done >= self._next_line:
                self._next_line = self.done + max(1, self.total // 10)
                print(f"classifying: {self.done}/{self.total} files, {self.hours:.2f} h of audio", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def count_in_background(progress: ArchiveProgress, items: list[str], lists: list[str], skip: Mapping[str, str]) -> None:
    """Count the files the inputs name (a second, lazy pass) in a daemon thread and give the
    total to ``progress`` for its ETA; not done when a list comes from stdin or a pipe."""
    if any(name == "-" or not Path(name).is_file() for name in lists):
        return

    def count() -> None:
        total = sum(1 for _ in iter_inputs(items, lists, skip))
        progress.set_total(total)

    threading.Thread(target=count, name="count-inputs", daemon=True).start()
