"""ffmpeg and ffprobe children: starting them safely, naming local files so that
ffmpeg cannot mistake them for URLs, probing a file, and watching a child's progress.

Every child gets ``PR_SET_PDEATHSIG`` (the kernel kills it when the daemon dies), no
stdin, and its stderr read line by line on a thread (the last 40 lines kept).
"""

from __future__ import annotations

import collections
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from genrecast.daemon.sources.base import READ_BYTES, SourceError, log
from genrecast.daemon.sources.ffmpeg_errors import explain

_PR_SET_PDEATHSIG = 1
_prctl: Any = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        _prctl = None


def child_setup(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when its parent dies."""

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


def require_ffmpeg(what: str) -> None:
    """Raise :class:`SourceError` naming the fix when ffmpeg or ffprobe is missing."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise SourceError(f"{what} needs {tool}, which is not installed: apt-get install ffmpeg")


def local_input(path: str | Path) -> str:
    """How to hand a local file to ffmpeg or ffprobe unambiguously: ``file:`` and the
    absolute path. A bare ``take:01.wav`` or ``2024-05-01T12:00:00.wav`` would be read
    as a protocol (``take:``), and ``-`` or ``pipe:0`` as standard input."""
    return "file:" + os.path.abspath(os.fspath(path))


class FFmpegChild:
    """One ffmpeg child writing raw audio to a pipe; stderr kept (last lines) and
    optionally passed line by line to ``on_line`` (after ``redact``). :meth:`close`
    always kills and reaps it. ``pass_fds`` are handed to the child (then closed here)."""

    def __init__(self, args: list[str], on_line: Callable[[str], None] | None = None, *,
                 pass_fds: tuple[int, ...] = (), redact: Callable[[str], str] = lambda s: s) -> None:
        self.on_line = on_line
        self.redact = redact
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                close_fds=True, pass_fds=pass_fds, preexec_fn=child_setup(os.getpid()),
            )
        finally:
            for fd in pass_fds:
                os.close(fd)
        self._fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="ffmpeg-stderr", daemon=True)
        self._stderr_thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = self.redact(raw.decode(errors="replace").rstrip())
            if not line:
                continue
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)

    def read(self, timeout: float) -> bytes | None:
        """Up to 64 KiB of stdout; ``b""`` at end of output; None when nothing came within ``timeout``."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return None
        return os.read(self._fd, READ_BYTES)

    def finish(self, timeout: float = 5.0) -> int | None:
        """Wait for the exit after end of output; returns the exit code (None if it hangs)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._stderr_thread.join(timeout)
        return code

    def last_error(self) -> str:
        """ffmpeg's last meaningful stderr line (or a placeholder)."""
        for line in reversed(self.lines):
            if not line.startswith(("size=", "video:", "  ")):
                return line.strip()
        return "no message from ffmpeg"

    def reason(self) -> str:
        """Why ffmpeg failed, in words a user understands (see :func:`explain`); the raw
        lines are logged at debug level."""
        for line in self.lines:
            log.debug("ffmpeg %d: %s", self.proc.pid, line)
        return explain(list(self.lines))

    def close(self) -> None:
        """Kill (if still running) and reap the child, then close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stderr_thread.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def probe_audio(path: Path, label: str | None = None) -> tuple[int, int, float | None]:
    """``(sample_rate, channels, duration_seconds or None)`` of the first audio stream of
    ``path``. Raises :class:`SourceError` (its message starts with ``label``, default
    ``file:PATH``) when the file is missing, empty, unreadable, not audio or has no audio stream."""
    from genrecast.daemon.install import path_problem, sandbox_note

    label = label or f"file:{path}"
    if problem := path_problem(path, "it"):  # a folder on the way this user may not enter
        raise SourceError(f"{label}: {problem}")
    if not path.exists():
        if str(path) == "-":  # `classify -` or `--source file:-`: stdin is neither
            raise SourceError(f"{label}: no such file; for audio on standard input run `genrecast run --source -` "
                              "(raw PCM), and for a list of paths there `genrecast classify --list -`")
        note = sandbox_note(path)
        raise SourceError(f"{label}: no such file for the service: {note}" if note else f"{label}: no such file; give the path of an audio file")
    if not path.is_file():
        raise SourceError(f"{label}: not a regular file; give the path of an audio file")
    if path.stat().st_size == 0:
        raise SourceError(f"{label}: the file is empty (0 bytes); give a non-empty audio file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{label}: permission denied; make the file readable by the user genrecast runs as")
    require_ffmpeg(label)
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels:format=duration", "-of", "json", local_input(path)]
    try:
        # surrogateescape: ffprobe's error names the file, whose name may not be UTF-8 (Latin-1 from an old disk)
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="surrogateescape", timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"{label}: ffprobe did not finish reading it; is it a regular audio file?") from exc
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["ffprobe failed"]
        log.debug("ffprobe %s: %s", path, lines)
        raw = lines[-1].removeprefix(f"{local_input(path)}: ")
        raise SourceError(f"{label}: not an audio file ffmpeg can decode ({raw})")
    try:
        info = json.loads(proc.stdout or "{}")
        stream = (info.get("streams") or [])[0]
        rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SourceError(f"{label}: contains no audio stream; give an audio file") from exc
    if rate <= 0 or channels <= 0:
        raise SourceError(f"{label}: reports {rate} Hz and {channels} channels; not usable audio")
    try:
        duration: float | None = float(info.get("format", {}).get("duration"))
    except (TypeError, ValueError):
        duration = None
    return rate, channels, duration
