"""Raw PCM on standard input (``--source -``)."""

from __future__ import annotations

import os
import select
import sys
import threading
from typing import IO, Callable

import numpy as np

from genrecast.daemon.sources.base import POLL_SECONDS, Deliver, SampleSplitter, SourceError, log

STDIN_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


class StdinSource:
    """Raw interleaved PCM (s16le or f32le) at a given rate and channel count, from
    ``stream`` (default ``sys.stdin.buffer``); finite: ends at end of input. A partial
    trailing frame is dropped with a warning."""

    finite = True

    def __init__(self, *, name: str | None = None, format: str = "f32le", rate: int = 22050,
                 channels: int = 1, stream: IO[bytes] | None = None, block_frames: int = 4096) -> None:
        if format not in STDIN_FORMATS:
            raise SourceError(f"stdin format {format!r} is not supported; use one of {', '.join(STDIN_FORMATS)}")
        if int(rate) <= 0:
            raise SourceError(f"stdin rate must be a positive number of Hz (got {rate})")
        if int(channels) <= 0:
            raise SourceError(f"stdin channels must be 1 or more (got {channels})")
        if stream is None and sys.stdin is None:  # started with stdin closed (`<&-`): nothing could ever be read
            raise SourceError("--source -: standard input is closed; pipe raw PCM into it, e.g. ffmpeg -i song.mp3 -f "
                              "f32le -ac 1 -ar 22050 - | genrecast run --source -")
        self.name = name or "stdin"
        self.format, self.rate, self.channels = format, int(rate), int(channels)
        self.stream = stream
        self.block_frames = block_frames
        self.restarts = 0

    def _reader(self, stream: IO[bytes]) -> Callable[[int, threading.Event], bytes | None]:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:
            read = getattr(stream, "read1", stream.read)
            return lambda n, stop: read(n)

        def read_fd(n: int, stop: threading.Event) -> bytes | None:
            ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
            return os.read(fd, n) if ready else None

        return read_fd

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        splitter = SampleSplitter(STDIN_FORMATS[self.format], self.channels)
        read = self._reader(stream)
        want = self.block_frames * splitter.frame_bytes
        delivered = 0
        while not stop.is_set():
            chunk = read(want, stop)
            if chunk is None:
                continue
            if not chunk:
                break
            block = splitter.feed(chunk)
            if len(block):
                deliver(block, self.rate)
                delivered += len(block)
        if splitter.pending and not stop.is_set():
            log.warning("%s: dropped a partial trailing frame of %d bytes (frames are %d bytes)",
                        self.name, len(splitter.pending), splitter.frame_bytes)
        log.info("%s: end of input (%.1f s of audio)", self.name, delivered / self.rate)
