"""Decode audio files to mono float32 for ``classify``, ``evaluate`` and training.

There is one decoder, the one ``run --source file:`` uses
(:func:`genrecast.daemon.sources.decode_blocks`: libsndfile where its samples are
exactly ffmpeg's, ffmpeg for everything else), so every command sees the same samples
of a file, whatever its format or state (a WAV whose header sizes were never written is
read to its end, as ffmpeg reads it). Decoding streams: memory holds one block,
whatever the file's length. Resampling is soxr's streaming resampler, as in
the daemon's windower, whose output does not depend on how the audio is cut into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from genrecast.daemon.sources.base import SourceError
from genrecast.daemon.sources.files import FileInfo, decode_blocks, probe_file


#: The resampler used everywhere a rate differs from the bundle's (soxr, high quality).
RESAMPLER = "soxr_hq"
#: Seconds of audio decoded at a time.
BLOCK_SECONDS = 10.0


class AudioDecodeError(ValueError):
    """A file could not be decoded as audio; the message starts with its path."""


def make_resampler(rate: int, target_rate: int):
    """A soxr streaming resampler (:data:`RESAMPLER`) for mono float32 from ``rate`` to
    ``target_rate`` Hz: ``resample_chunk(block)``, then ``resample_chunk(empty, last=True)``;
    None when the rates are equal (nothing to do)."""
    import soxr

    return soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ") if rate != target_rate else None


def band_limit(y: np.ndarray, rate: int, via_hz: int, lookahead: int = 2048) -> np.ndarray:
    """``y`` (mono float32 at ``rate`` Hz, shape ``(samples,)``) up to ``via_hz`` and back with
    soxr (:data:`RESAMPLER`): the same length, with the anti-alias band limit (about 0.91 of
    ``rate``'s Nyquist frequency) that a recording made at ``via_hz`` gets on its way down to
    ``rate``. One-shot and without latency: the filters' lookahead past the end is the end's
    mirror image (``lookahead`` samples), so a cut-off stream neither fades nor clicks there;
    elsewhere the result equals soxr's streaming chain."""
    import soxr

    y = np.asarray(y, dtype=np.float32)
    mirror = y[-2 : -min(lookahead, len(y) - 1) - 2 : -1] if len(y) > 2 else y[:0]
    up = soxr.resample(np.concatenate([y, mirror]), rate, via_hz, quality="HQ")
    return soxr.resample(up, via_hz, rate, quality="HQ")[: len(y)].astype(np.float32, copy=False)


@dataclass(frozen=True)
class AudioFile:
    """A probed audio file: its own rate (Hz) and duration (seconds, None when the
    container does not say), and how it is decoded."""

    path: Path
    info: FileInfo

    @property
    def rate(self) -> int:
        return self.info.rate

    @property
    def duration_seconds(self) -> float | None:
        return self.info.duration_seconds

    def blocks(self, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
        """Mono float32 blocks of ``block_seconds`` at :attr:`rate` (channel mean), in order.
        Raises :class:`AudioDecodeError` if decoding fails or yields no samples."""
        frames = max(1, int(round(block_seconds * self.rate)))
        blocks = decode_blocks(self.path, self.info, frames, label=str(self.path))
        try:
            yield from blocks
        except SourceError as exc:
            raise AudioDecodeError(str(exc)) from exc
        finally:
            blocks.close()

    def resampled(self, sample_rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
        """Like :meth:`blocks`, resampled to ``sample_rate`` Hz (blocks of varying length)."""
        resampler = make_resampler(self.rate, sample_rate)
        if resampler is None:
            yield from self.blocks(block_seconds)
            return
        for block in self.blocks(block_seconds):
            out = resampler.resample_chunk(block)
            if len(out):
                yield out
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield tail


def open_audio(path: str | Path) -> AudioFile:
    """Probe ``path`` (libsndfile, else ffprobe). Raises :class:`AudioDecodeError` for a missing, empty or
    non-audio file, naming the problem."""
    path = Path(path)
    try:
        info = probe_file(path, label=str(path))
    except SourceError as exc:
        raise AudioDecodeError(str(exc)) from exc
    return AudioFile(path, info)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """The whole file at ``sample_rate`` Hz, mono float32 (shape ``(samples,)``). Holds all
    of it in memory: for short clips; long files go through :func:`open_audio` and
    :meth:`AudioFile.resampled`. Raises :class:`AudioDecodeError` with a clear reason."""
    parts = list(open_audio(path).resampled(sample_rate))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
