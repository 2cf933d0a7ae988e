"""The genre model's rolling context for one source: which audio enters it.

A summary bundle (the default) classifies each window from statistics over the last
``context_seconds`` (30 s) of the source's audio (:class:`genrecast.daemon.features.RollingSummary`).
Silence does not enter that context. A daemon starts in a quiet room, and files and streams
start or pause with silence; statistics over silence and music together describe neither
(10 s of digital silence before a jazz clip made its windows "classical" for 20 s). So:

- a window under the silence gate (its RMS level below ``silence_dbfs``) is a gap: it is left
  out, and the context starts afresh after it (what follows is a new piece of audio);
- while the context is empty (at the start, after a gap), the leading blocks of a window's new
  audio whose RMS level is under the gate are left out too, so the context starts where the
  sound does, to the hop (``cfg.hop_length`` samples, 23 ms at 22.05 kHz);
- a window with NaN or infinite samples starts the context afresh after it;
- so does a window that the music detector's gate calls not music (talk, room tone above the
  gate, noise): the genre of what follows is found from its own audio (the talk before a song
  no longer sways the song's first 30 s). The gate leaves music up to 3 windows into talk,
  so those windows enter the context and are dropped with it when the gate turns.

Which windows are gaps is judged once, by the caller (:class:`~genrecast.daemon.source_state.SourceState`,
which also decides from it what to classify). Audio above the gate always enters, so a gain that keeps the audio above the gate changes
nothing here (see the level-invariance design in :mod:`genrecast.daemon.features`); and since
``classify`` and ``run`` share this class, both see the same context.
"""

from __future__ import annotations

import numpy as np

from genrecast.daemon.features import FeatureConfig, RollingSummary
from genrecast.daemon.windowing import Window


class GenreContext:
    """One source's rolling summary context, fed window by window (overlapping windows' audio
    enters once). ``silence_dbfs``: the silence gate (dBFS)."""

    def __init__(self, cfg: FeatureConfig, silence_dbfs: float) -> None:
        self.cfg, self.silence_dbfs = cfg, silence_dbfs
        self._rolling = RollingSummary(cfg)
        self._empty = True
        self._until_seconds = 0.0  # audio clock up to which this source's audio was taken (or skipped)

    def take(self, window: Window, gap: bool = False) -> None:
        """Feed the window's audio not taken before. ``gap``: the window is a gap, not audio for the
        context: under the silence gate, garbage (NaN or infinite samples), or not music (the music
        detector's gate says so); the caller judges it, once, for the classification too."""
        rate = self.cfg.sample_rate
        real = len(window.real(rate))  # a final window is zero-padded
        new = int(round((window.end_seconds - max(window.start_seconds, self._until_seconds)) * rate))
        self._until_seconds = max(self._until_seconds, window.end_seconds)
        if gap:
            if not self._empty:  # the next sound starts a new context
                self._rolling, self._empty = RollingSummary(self.cfg), True
            return
        if new <= 0:
            return
        samples = window.samples[max(0, real - new) : real]
        if self._empty:
            samples = samples[self._first_sound(samples):]
        if len(samples):
            self._rolling.push(samples)
            self._empty = False

    def _first_sound(self, samples: np.ndarray) -> int:
        """Index of the first hop-long block whose RMS level reaches the gate (len if none)."""
        hop = self.cfg.hop_length
        blocks = len(samples) // hop
        if not blocks:
            return 0
        power = np.mean(np.square(samples[: blocks * hop].reshape(blocks, hop), dtype=np.float64), axis=1)
        loud = np.flatnonzero(power >= 10.0 ** (self.silence_dbfs / 10.0))
        return int(loud[0]) * hop if len(loud) else len(samples)

    def features(self) -> np.ndarray | None:
        """The summary row over the context (float32), or None while it holds no frame."""
        return self._rolling.features()

    @property
    def covered_seconds(self) -> float:
        """Seconds of audio the context covers (at most ``context_seconds``)."""
        return self._rolling.covered_seconds
