"""What every audio source shares: the protocol the pipeline runs, the error for
misconfiguration, downmixing and the splitting of raw PCM bytes into frames."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol, runtime_checkable

import numpy as np

#: One logger for every source module, so a log filter on it sees them all.
log = logging.getLogger("genrecast.daemon.sources")

Deliver = Callable[[np.ndarray, int], None]

#: Seconds a source's reading loop waits for data before it checks ``stop`` again.
POLL_SECONDS = 0.25
#: Bytes read from a child's pipe at a time.
READ_BYTES = 65536


class SourceError(ValueError):
    """A source is misconfigured in a way no retry can fix; the message names the fix."""


@runtime_checkable
class AudioSource(Protocol):
    """What the pipeline runs, one thread per source."""

    name: str
    finite: bool

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        """Call ``deliver(block, sample_rate)`` with mono float32 blocks until the audio
        ends (finite sources) or ``stop`` is set."""


def downmix(frames: np.ndarray) -> np.ndarray:
    """Mono float32 from ``(frames, channels)`` (mean over channels) or from 1-D audio."""
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
    return np.ascontiguousarray(frames, dtype=np.float32)


class SampleSplitter:
    """Turns a byte stream of interleaved PCM into mono float32 frames, carrying a
    partial frame over to the next chunk. Integer samples are scaled to [-1, 1)."""

    def __init__(self, dtype: np.dtype, channels: int) -> None:
        self.dtype, self.channels = dtype, channels
        self.frame_bytes = dtype.itemsize * channels
        self.pending = b""

    def feed(self, chunk: bytes) -> np.ndarray:
        data = self.pending + chunk if self.pending else chunk
        usable = len(data) - len(data) % self.frame_bytes
        self.pending = data[usable:]
        samples = np.frombuffer(data[:usable], dtype=self.dtype).reshape(-1, self.channels)
        if self.dtype.kind == "i":
            return downmix(samples.astype(np.float32) / float(np.iinfo(self.dtype).max + 1))
        return downmix(samples) if self.channels > 1 else samples[:, 0].copy()
