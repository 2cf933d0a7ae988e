"""Raw PCM on standard input (``--source -``)."""

from __future__ import annotations

import os
import select
import stat
import sys
import threading
from typing import IO, Callable

import numpy as np

from genrecast.daemon.sources.base import POLL_SECONDS, Deliver, SampleSplitter, SourceError, log

STDIN_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}

#: The first bytes of audio files (a container or a tagged MP3) that can be piped in by mistake:
#: ``--source -`` takes raw PCM, and a file read as PCM is loud noise of no genre.
FILE_SIGNATURES = ((b"ID3", "an MP3 file (an ID3 tag)"), (b"RIFF", "a WAV file (RIFF)"), (b"fLaC", "a FLAC file"),
                   (b"OggS", "an Ogg file"), (b"FORM", "an AIFF file"), (b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
                   (b".snd", "an AU file"))


def file_signature(head: bytes) -> str | None:
    """What file ``head`` (the first bytes of the input) starts, or None for anything else (raw PCM):
    :data:`FILE_SIGNATURES`, and MP4/M4A's ``ftyp`` box at byte 4."""
    if head[4:8] == b"ftyp":
        return "an MP4/M4A file"
    return next((what for magic, what in FILE_SIGNATURES if head.startswith(magic)), None)


def _is_dev_null(stream) -> bool:
    """Whether ``stream`` (a text stream such as ``sys.stdin``) reads from /dev/null."""
    try:
        here, null = os.fstat(stream.fileno()), os.stat(os.devnull)
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISCHR(here.st_mode) and here.st_rdev == null.st_rdev


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
        if stream is None and _is_dev_null(sys.stdin):  # a service's (systemd's StandardInput=null) or `< /dev/null`
            raise SourceError("--source -: standard input is /dev/null (as in a systemd service), so there is no audio "
                              "to read; pipe raw PCM into it, e.g. ffmpeg -i song.mp3 -f f32le -ac 1 -ar 22050 - | "
                              "genrecast run --source -, or give the service a mic, file: or URL source")
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
        head = b""
        while not stop.is_set():
            chunk = read(want, stop)
            if chunk is None:
                continue
            if not chunk:
                break
            if len(head) < 8:
                head += chunk[: 8 - len(head)]
                if (what := file_signature(head)) is not None:
                    raise SourceError(f"standard input holds {what}, but --source - takes raw PCM ({self.format}, "
                                      f"{self.rate} Hz, {self.channels} ch); decode it on the way: ffmpeg -i FILE -f "
                                      f"{self.format} -ac {self.channels} -ar {self.rate} - | genrecast run --source -, "
                                      "or give the file itself: --source file:FILE")
            block = splitter.feed(chunk)
            if len(block):
                deliver(block, self.rate)
                delivered += len(block)
        if splitter.pending and not stop.is_set():
            log.warning("%s: dropped a partial trailing frame of %d bytes (frames are %d bytes)",
                        self.name, len(splitter.pending), splitter.frame_bytes)
        log.info("%s: end of input (%.1f s of audio)", self.name, delivered / self.rate)
