"""Local audio files, decoded by ffmpeg: the one decoder behind ``run --source file:``,
``classify``, ``evaluate`` and training, so all four see the same samples."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from genrecast.daemon.sources.base import POLL_SECONDS, Deliver, SampleSplitter, SourceError, log
from genrecast.daemon.sources.ffmpeg import FFmpegChild, local_input, probe_audio


class FileDecodeError(SourceError):
    """A file probed as audio but ffmpeg could not decode it, or it decoded to nothing."""


def decode_blocks(path: Path, rate: int, channels: int, block_frames: int, *, label: str | None = None,
                  stop: threading.Event | None = None,
                  on_child: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block_frames`` samples (the last may be shorter) of the
    file at ``path``, decoded by ffmpeg at its own ``rate`` and downmixed as the mean
    of its ``channels``. Memory stays at one block whatever the file's length.

    Raises :class:`FileDecodeError` (message starting with ``label``, default
    ``file:PATH``) when ffmpeg fails or the file holds no samples. Ends early, without
    error, when ``stop`` is set. ``on_child`` is told the ffmpeg child's PID.
    """
    label = label or f"file:{path}"
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-i", local_input(path),
           "-map", "0:a:0", "-f", "f32le", "-ar", str(rate), "-"]
    child = FFmpegChild(cmd)
    if on_child is not None:
        on_child(child.pid)
    splitter = SampleSplitter(np.dtype("<f4"), channels)
    parts: list[np.ndarray] = []
    held = produced = 0
    try:
        while stop is None or not stop.is_set():
            chunk = child.read(POLL_SECONDS)
            if chunk is None:
                continue
            if chunk:
                block = splitter.feed(chunk)
                parts.append(block)
                held += len(block)
            while held >= block_frames or (not chunk and held):
                audio = np.concatenate(parts) if len(parts) > 1 else parts[0]
                out, rest = audio[:block_frames], audio[block_frames:]
                parts, held = ([rest] if len(rest) else []), len(rest)
                produced += len(out)
                yield out
            if not chunk:
                break
        else:
            return
        code = child.finish()
        if code != 0:
            raise FileDecodeError(f"{label}: ffmpeg could not decode it ({child.reason()})")
        if produced == 0:
            raise FileDecodeError(f"{label}: decoded to no audio samples")
    finally:
        child.close()


class FileSource:
    """A file decoded by ffmpeg at its native rate; finite unless ``loop``.

    ``realtime`` paces delivery at the audio's own speed. The file is probed when the
    source is made (:class:`SourceError` for a missing, empty or non-audio file).
    """

    def __init__(self, path: str | Path, *, name: str | None = None, realtime: bool = False,
                 loop: bool = False, block_seconds: float = 0.1) -> None:
        self.path = Path(path)
        self.name = name or f"file-{self.path.stem}"
        self.realtime, self.loop = realtime, loop
        self.finite = not loop
        self.rate, self.channels, self.duration_seconds = probe_audio(self.path)
        self.block_frames = max(1, int(self.rate * block_seconds))
        self.restarts = 0  # for the metrics; a file never reconnects
        self.loops = 0
        self.ffmpeg_pid: int | None = None

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        while not stop.is_set():
            self._play_once(deliver, stop)
            if not self.loop:
                return
            self.loops += 1
            log.debug("%s: looping %s (pass %d)", self.name, self.path, self.loops + 1)

    def _play_once(self, deliver: Deliver, stop: threading.Event) -> None:
        delivered = 0
        started = time.monotonic()
        blocks = decode_blocks(self.path, self.rate, self.channels, self.block_frames, stop=stop,
                               on_child=lambda pid: setattr(self, "ffmpeg_pid", pid))
        try:
            for part in blocks:
                if self.realtime:
                    due = started + (delivered + len(part)) / self.rate
                    if stop.wait(max(0.0, due - time.monotonic())):
                        return
                deliver(part, self.rate)
                delivered += len(part)
        finally:
            blocks.close()
        if not stop.is_set():
            log.info("%s: end of %s (%.1f s of audio)", self.name, self.path, delivered / self.rate)
