"""The ``logfile`` sink: one JSON line per event, appended, with size-based rotation.

Each line is written with a single ``os.write`` on an ``O_APPEND`` descriptor (no
Python buffering, so nothing is half-held in memory at a crash). A file found not
ending in a newline (a line cut by a power loss) is first closed with one, so later
lines always parse. A write the file refuses (a full disk, a file-size limit) is cut
back off, the line waits in a bounded backlog and is written first once writes succeed
again; the ``OSError`` goes to the dispatcher, which counts and logs it. ``reopen()``
(SIGHUP) reopens the path, for logrotate.

Settings (``[logfile]``): ``path`` (relative paths go under ``$LOGS_DIRECTORY`` when
set), ``max_bytes`` (rotate before a line would make the file larger; 0 = never),
``backups`` (rotated files kept: ``PATH.1`` newest … ``PATH.N``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genrecast.daemon.events import GenreEvent
from genrecast.plugins import SinkConfigError, hookimpl
from genrecast.plugins.settings import settings_from_dict

log = logging.getLogger(__name__)

BACKLOG_LINES = 10_000
"""Lines kept while the file refuses writes (a full disk); beyond this the oldest are dropped."""


@dataclass(frozen=True)
class LogfileSettings:
    """Settings of the log-file sink."""

    path: str = "genrecast-events.jsonl"
    """Event log file; a relative path goes under ``$LOGS_DIRECTORY`` if set."""
    max_bytes: int = 10_000_000
    """Rotate before a line would take the file past this size (bytes); 0 never rotates."""
    backups: int = 5
    """Rotated files kept (``PATH.1`` … ``PATH.N``); 0 starts the file afresh on rotation."""

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path must not be empty")
        if self.max_bytes < 0:
            raise ValueError(f"max_bytes must be 0 (never rotate) or positive, not {self.max_bytes}")
        if self.backups < 0:
            raise ValueError(f"backups must be 0 or more, not {self.backups}")

    def resolved_path(self) -> Path:
        path = Path(self.path).expanduser()
        if not path.is_absolute() and os.environ.get("LOGS_DIRECTORY"):
            path = Path(os.environ["LOGS_DIRECTORY"].split(":")[0]) / path
        return path


class LogfileSink:
    """Appends ``event.to_json()`` lines to a file, rotating by size."""

    def __init__(self) -> None:
        self.settings = LogfileSettings()
        self.path: Path | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()
        self.rotations = 0
        self.lines_written = 0
        self.lines_dropped = 0
        self._backlog: deque[bytes] = deque()

    @hookimpl
    def genrecast_sink_check(self, config: dict[str, Any]) -> None:
        """The settings, and the folder of an absolute path (a relative one is the working
        directory's, or ``$LOGS_DIRECTORY``'s under systemd, which ``config check`` may not share)."""
        path = settings_from_dict(LogfileSettings, config, "logfile").resolved_path()
        if not path.is_absolute():
            return
        if not path.parent.is_dir():
            raise SinkConfigError(f"[logfile] path {path}: its folder {path.parent} does not exist; create it or choose "
                                  "another path (under systemd a relative path goes to the service's log directory)")
        if path.is_dir():
            raise SinkConfigError(f"[logfile] path {path} is a folder; give a file in it, e.g. {path / 'events.jsonl'}")
        if not os.access(path if path.exists() else path.parent, os.W_OK):
            where = f"the file {path}" if path.exists() else f"its folder {path.parent}"
            raise SinkConfigError(f"[logfile] path {path}: {where} is not writable by this user (read-only or no "
                                  "permission); fix its permissions or choose another path")

    @hookimpl
    def genrecast_sink_start(self, config: dict[str, Any], labels: list[str]) -> None:
        self.settings = settings_from_dict(LogfileSettings, config, "logfile")
        self.path = self.settings.resolved_path()
        try:
            self._open()
        except OSError as exc:
            where = "" if self.path.is_absolute() else f" (relative to the working folder: {Path.cwd() / self.path})"
            raise SinkConfigError(f"[logfile] cannot open {self.path}{where}: {exc.strerror or exc}; set [logfile] path "
                                  "(GENRECAST_LOGFILE_PATH) to a file in a folder this user may write") from None
        log.info("logging events to %s", self.path)

    def _open(self) -> None:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":  # a line cut short by a crash: end it so the next one parses
                        os.write(fd, b"\n")
        except OSError:
            os.close(fd)  # e.g. the disk is full: no descriptor leaks while we retry
            raise
        self._fd = fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rotate(self) -> None:
        assert self.path is not None
        self._close()
        backups = self.settings.backups
        if backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
            if self.path.exists():
                os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self.rotations += 1
        self._open()

    def write_line(self, line: str) -> None:
        """Append one line (newline added) with one ``write``, rotating first if needed.

        If the file refuses the write (a full disk, a file-size limit), the part of the
        line that made it is cut off again, so the file never holds a partial line; the
        line waits in a backlog (at most ``BACKLOG_LINES``, then the oldest are dropped and
        counted), is written first on the next call, and ``OSError`` says what happened."""
        with self._lock:
            self._backlog.append((line + "\n").encode("utf-8"))
            if len(self._backlog) > BACKLOG_LINES:
                self._backlog.popleft()
                self.lines_dropped += 1
            while self._backlog:
                try:
                    self._write(self._backlog[0])
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot write {self.path}: {exc.strerror or exc}; "
                                  f"{len(self._backlog)} line(s) kept to retry") from None
                self._backlog.popleft()
                self.lines_written += 1

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self._open()
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if self.settings.max_bytes and size and size + len(data) > self.settings.max_bytes:
            self._rotate()
            assert self._fd is not None
            size = os.fstat(self._fd).st_size
        written = 0
        try:
            while written < len(data):  # more than one write only on a full disk or a signal
                written += os.write(self._fd, data[written:])
        except OSError:
            if written:
                try:
                    os.ftruncate(self._fd, size)  # take back the cut line (single writer, O_APPEND)
                except OSError as exc:
                    log.error("cannot take back a partial line at the end of %s: %s", self.path, exc)
            raise

    @hookimpl
    def genrecast_sink_event(self, event: GenreEvent) -> None:
        self.write_line(event.to_json())

    @hookimpl
    def genrecast_sink_reopen(self) -> None:
        with self._lock:
            self._close()
            try:
                self._open()
            except OSError as exc:  # each event tries again; what cannot be written waits in the backlog
                log.error("[logfile] cannot reopen %s: %s; events wait (up to %d lines) and are written once it can be "
                          "opened (create its folder or fix its permissions)", self.path, exc.strerror or exc,
                          BACKLOG_LINES)
                return
        log.info("reopened %s", self.path)

    @hookimpl
    def genrecast_sink_stop(self, deadline_seconds: float) -> None:
        with self._lock:
            while self._backlog:
                try:
                    self._write(self._backlog[0])
                except OSError as exc:
                    log.warning("logfile: %d line(s) never written to %s: %s", len(self._backlog), self.path, exc)
                    self.lines_dropped += len(self._backlog)
                    self._backlog.clear()
                    break
                self._backlog.popleft()
                self.lines_written += 1
            self._close()

    @hookimpl
    def genrecast_sink_stats(self) -> dict[str, Any]:
        # dropped/queue_depth are added to the dispatcher's counters for this sink
        return {"rotations": self.rotations, "lines_written": self.lines_written,
                "dropped": self.lines_dropped, "queue_depth": len(self._backlog)}
