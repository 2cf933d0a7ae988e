"""Per-source windowing: resample a stream of blocks and cut it into windows.

Memory is bounded whatever the input rate: the buffer never holds more than
one window plus one incoming block, because windows leave as soon as they are full.
With a band stage (``FeatureConfig.band_stage_hz``), a source at or below the target rate has
each window band-limited as it leaves, with the audio around it as context: a window leaves
once :data:`BAND_LOOKAHEAD` samples after it have arrived (93 ms at 22.05 kHz), or at the end
of a finite source, so its samples are the same whatever blocks the source delivers in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from genrecast.daemon.audio import RESAMPLER, band_limit, make_resampler

log = logging.getLogger(__name__)

#: A finite source's last, partial window is classified (zero-padded) when it holds at
#: least this fraction of a window of new audio; a shorter input makes no window at all.
MIN_FINAL_FRACTION = 0.5
#: Samples (at the target rate) before a window that its band stage sees (soxr's 2x filters
#: reach about 1200 samples either side).
BAND_HISTORY = 4096
#: Samples after a window that its band stage sees: the window waits for them, except at the end
#: of a finite source, where its end is mirrored (:func:`genrecast.daemon.audio.band_limit`).
BAND_LOOKAHEAD = 2048


@dataclass(frozen=True)
class Window:
    """One window of mono audio at the target rate, placed on the source's audio clock."""

    samples: np.ndarray
    start_seconds: float
    end_seconds: float

    def real(self, rate: int) -> np.ndarray:
        """The window's audio without a final window's zero padding (``rate``: its sample rate)."""
        return self.samples[: int(round((self.end_seconds - self.start_seconds) * rate))]


class Windower:
    """Turns blocks of mono audio at any rate into windows of ``window_samples``
    every ``hop_samples`` at ``target_rate``."""

    def __init__(self, name: str, target_rate: int, window_samples: int, hop_samples: int, band_stage_hz: int = 0) -> None:
        if not 0 < hop_samples:
            raise ValueError("hop must be positive")
        self.name = name
        self.target_rate = target_rate
        self.band_stage_hz = band_stage_hz
        """Windows of sources at or below ``target_rate`` go up to this rate and back (see
        :attr:`genrecast.daemon.features.FeatureConfig.band_stage_hz`); 0: none."""
        self._history = np.zeros(0, dtype=np.float32)  # up to BAND_HISTORY samples before _buffer[0]
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # target-rate sample index of _buffer[0]
        self._input_seconds = 0.0  # seconds of audio received so far
        self._last_end = 0  # target-rate sample index where the last window ended
        self._skip = 0  # samples still to drop before the next window (hop > window)
        self._rate: int | None = None
        self._resampler = None

    @property
    def consumed_seconds(self) -> float:
        """Seconds of audio received so far (the source's audio clock)."""
        return self._input_seconds

    @property
    def buffered_samples(self) -> int:
        return len(self._buffer)

    def _set_rate(self, rate: int) -> None:
        if self._rate is None:
            if rate != self.target_rate:
                log.info("source %s delivers %d Hz; resampling to %d Hz with %s", self.name, rate, self.target_rate, RESAMPLER)
        else:
            log.warning("source %s changed rate from %d Hz to %d Hz; resampling to %d Hz with %s",
                        self.name, self._rate, rate, self.target_rate, RESAMPLER)
        self._rate = rate
        self._history = np.zeros(0, dtype=np.float32)
        self._resampler = make_resampler(rate, self.target_rate)

    def push(self, block: np.ndarray, rate: int) -> list[Window]:
        """Add a block of mono audio at ``rate`` Hz; return the windows it completed."""
        windows: list[Window] = []
        if rate != self._rate:
            windows += self._drain_resampler()
            self._set_rate(int(rate))
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._input_seconds += len(block) / rate
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block)
        return windows + self._append(block)

    def _drain_resampler(self) -> list[Window]:
        """Push out what the streaming resampler still holds (at a rate change or the end)."""
        if self._resampler is None:
            return []
        return self._append(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))

    def _append(self, block: np.ndarray) -> list[Window]:
        if self._skip:  # hop longer than a window: drop the gap between windows
            gap = min(self._skip, len(block))
            self._remember(block[:gap])
            block = block[gap:]
            self._skip -= gap
            self._buffer_start += gap
        self._buffer = np.concatenate([self._buffer, block]) if len(self._buffer) else block.copy()
        # a band-staged window waits for the audio after it, so its samples never depend on how
        # the source cut its blocks (classify's 10-s blocks, a file source's 0.1-s ones, a stream's)
        return self._cut(self.window_samples + (BAND_LOOKAHEAD if self._band_staged() else 0))

    def _cut(self, needed: int) -> list[Window]:
        """The windows the buffer completes while it holds at least ``needed`` samples."""
        windows = []
        while len(self._buffer) >= max(needed, self.window_samples):
            windows.append(self._window(self._buffer[: self.window_samples],
                                        self._buffer[self.window_samples : self.window_samples + BAND_LOOKAHEAD]))
            self._last_end = self._buffer_start + self.window_samples
            drop = min(self.hop_samples, len(self._buffer))
            self._remember(self._buffer[:drop])
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
            self._skip = self.hop_samples - drop  # non-zero only when the buffer ran empty
        return windows

    def _remember(self, samples: np.ndarray) -> None:
        """Keep the last :data:`BAND_HISTORY` samples that leave the buffer (for the band stage)."""
        if self._band_staged():
            self._history = np.concatenate([self._history, samples])[-BAND_HISTORY:]

    def _band_staged(self) -> bool:
        return bool(self.band_stage_hz) and self._rate is not None and self._rate <= self.target_rate

    def _staged(self, samples: np.ndarray, after: np.ndarray) -> np.ndarray:
        """``samples`` (the start of the buffer; ``after``: the audio after them, shorter only at the
        end of a finite source) with the band stage where it applies, else a copy. With the audio
        around it as context, so consecutive windows join without a seam."""
        if not self._band_staged():
            return samples.copy()
        context = np.concatenate([self._history, samples, after])
        return band_limit(context, self.target_rate, self.band_stage_hz)[len(self._history) : len(self._history) + len(samples)]

    def _window(self, samples: np.ndarray, after: np.ndarray) -> Window:
        start = self._buffer_start / self.target_rate
        return Window(samples=self._staged(samples, after), start_seconds=start,
                      end_seconds=start + len(samples) / self.target_rate)

    def restart(self) -> list[Window]:
        """A break in the source's audio (a stream that reconnected): the windows of the audio so
        far, as at the end of a finite source (:meth:`flush`), then a fresh start for what follows
        (no window holds audio from both sides; the resampler and band stage start anew), on the
        same audio clock."""
        windows = self.flush()
        self._buffer_start = self._last_end = int(round(self._input_seconds * self.target_rate))
        self._skip = 0
        self._history = np.zeros(0, dtype=np.float32)
        self._rate = None  # the next block sets up a new resampler (flush dropped the old one)
        return windows

    def flush(self, min_fraction: float = MIN_FINAL_FRACTION) -> list[Window]:
        """At the end of a finite source: the last partial window (zero-padded) if it
        holds at least ``min_fraction`` of a window of audio not yet classified."""
        windows = self._drain_resampler()
        self._resampler = None
        windows += self._cut(self.window_samples)  # full windows that waited for audio after them
        fresh = self._buffer_start + len(self._buffer) - max(self._buffer_start, self._last_end)
        if len(self._buffer) and fresh >= min_fraction * self.window_samples:
            start = self._buffer_start / self.target_rate
            end = start + len(self._buffer) / self.target_rate
            padded = np.pad(self._staged(self._buffer, self._buffer[:0]), (0, self.window_samples - len(self._buffer)))
            windows.append(Window(samples=padded, start_seconds=start, end_seconds=end))
        self._buffer = np.zeros(0, dtype=np.float32)
        return windows
