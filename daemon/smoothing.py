"""From one window's probabilities to a stable state: gates, smoothing, hysteresis."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

SILENCE_FLOOR_DBFS = -120.0

#: The default silence gate (dBFS): the one the default bundle's music detector was chosen and
#: evaluated with (its ``silence_dbfs``, chosen on validation files so that music 24 dB under its
#: recorded level still reaches the detector; room tone and hiss above it are the detector's
#: ``not_music``). A test keeps the two equal.
DEFAULT_SILENCE_DBFS = -65.0


@dataclass(frozen=True)
class SmoothingSettings:
    """How raw window results become states and a smoothed genre."""

    silence_dbfs: float = DEFAULT_SILENCE_DBFS
    """A window whose RMS level is below this (dBFS) is ``silence``, not a genre."""
    min_confidence: float = 0.25
    """A window whose top probability is below this is ``uncertain``."""
    windows: int = 5
    """K: the smoothed genre is the argmax of the mean of the last K windows' probabilities."""
    hold_windows: int = 2
    """M: a new smoothed genre is taken (``changed``) only after it led for M windows in a row, its
    mean probability at least ``min_confidence`` each time (windows too unsure to name a genre
    do not change the smoothed one either)."""

    def __post_init__(self) -> None:
        if not -200 <= self.silence_dbfs <= 0:
            raise ValueError(f"silence_dbfs {self.silence_dbfs} is out of range -200..0")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence {self.min_confidence} is out of range 0..1")
        if self.windows < 1 or self.hold_windows < 1:
            raise ValueError("smoothing windows and hold_windows must be at least 1")


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dBFS (full scale = 1.0), floored at −120; NaN for non-finite audio."""
    if len(samples) == 0:
        return SILENCE_FLOOR_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if not math.isfinite(rms):
        return float("nan")
    return max(SILENCE_FLOOR_DBFS, 20.0 * math.log10(rms) if rms > 0 else SILENCE_FLOOR_DBFS)


class Smoother:
    """Mean over the last K windows' probabilities with an M-window hysteresis, for one source."""

    def __init__(self, n_labels: int, settings: SmoothingSettings) -> None:
        self.settings = settings
        self._history: deque[np.ndarray] = deque(maxlen=settings.windows)
        self._n_labels = n_labels
        self.current: int | None = None
        self._candidate: int | None = None
        self._streak = 0

    def reset(self) -> None:
        """Forget the history and the current genre (the audio stopped being music)."""
        self._history.clear()
        self.current, self._candidate, self._streak = None, None, 0

    def update(self, probabilities: np.ndarray | None) -> tuple[int | None, float, bool]:
        """Add a window's probabilities (``None`` for a silent or invalid window, which
        leaves the state as it is). Returns (smoothed label index, its mean probability, changed)."""
        if probabilities is not None:
            self._history.append(np.asarray(probabilities, dtype=np.float64))
        if not self._history:
            return None, 0.0, False
        mean = np.mean(self._history, axis=0)
        leader = int(np.argmax(mean))
        changed = False
        if probabilities is not None and leader != self.current and mean[leader] >= self.settings.min_confidence:
            self._streak = self._streak + 1 if leader == self._candidate else 1
            self._candidate = leader
            if self._streak >= self.settings.hold_windows:
                self.current, changed, self._streak = leader, True, 0
        elif probabilities is not None:
            self._candidate, self._streak = None, 0
        if self.current is None:
            return None, 0.0, False
        return self.current, float(mean[self.current]), changed
