"""The music detector: P(music), P(speech), P(other) per window, and the gate that
turns a stream of them into a stable ``music`` / ``not_music`` state.

The detector is a small model in the bundle (``detector.tflite``, see
:class:`genrecast.daemon.bundle.DetectorSpec`), run with LiteRT like the genre
model, on :func:`genrecast.daemon.music_features.music_features`.

:class:`MusicGate` smooths P(music) over the last ``windows`` windows (plain mean)
and applies hysteresis: the state turns ``not_music`` when the smoothed value falls
below ``leave``, and ``music`` again when it reaches ``enter`` (``enter >= leave``).
The thresholds are chosen on validation files by the trainer and stored in the bundle.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

DETECTOR_LABELS = ("music", "speech", "other")
"""The detector's outputs, in order."""


@dataclass(frozen=True)
class GateSettings:
    """Hysteresis on the smoothed P(music); stored in the bundle's ``detector`` entry."""

    enter: float = 0.5
    """The state turns ``music`` when the smoothed P(music) reaches this."""
    leave: float = 0.5
    """The state turns ``not_music`` when the smoothed P(music) falls below this."""
    windows: int = 3
    """Windows in the plain mean that smooths P(music) (the newest included)."""

    def __post_init__(self) -> None:
        if not (0 <= self.leave <= self.enter <= 1):
            raise ValueError(f"detector thresholds need 0 <= leave ({self.leave}) <= enter ({self.enter}) <= 1")
        if self.windows < 1:
            raise ValueError("detector smoothing windows must be at least 1")

    def delay_windows(self) -> int:
        """The most windows, counted from the first one wholly in the new kind of audio, until
        the state follows, when the detector is sure of each window (P(music) 0 or 1): K = ``windows``,
        enter after n windows with n/K >= enter, leave after n windows with (K-n)/K < leave."""
        k = self.windows
        n_enter = next((n for n in range(1, k + 1) if n / k >= self.enter), k)
        n_leave = next((n for n in range(1, k + 1) if (k - n) / k < self.leave), k)
        return max(n_enter, n_leave)


class MusicGate:
    """Per-source hysteresis state. Until the smoothing holds ``windows`` values, the state
    follows the smoothed P(music) against the midpoint of the two thresholds (there is no
    state to hold yet, and one unsure first window must not hold a song back for the whole
    smoothing span); after that, hysteresis. Windows under the silence gate are not judged
    (:meth:`silent`); once ``windows`` of them in a row have passed, the values before them
    are forgotten and the next sound is judged afresh, as at the start."""

    def __init__(self, settings: GateSettings) -> None:
        self.settings = settings
        self._history: deque[float] = deque(maxlen=settings.windows)
        self.is_music = False
        self.smoothed = 0.0
        self._judged = False
        self._silent_run = 0
        self.after_silence = False
        """The last window :meth:`update` took was the first after the gate forgot (see :meth:`silent`)."""
        self._forgot = False

    def silent(self) -> None:
        """One window under the silence gate. When the last ``windows`` windows were all silent,
        the smoothing forgets the P(music) of the sound before them: talk after a song and a
        silence is judged on its own (it took the song's windows in its mean, so its first
        window got a genre), and music after talk and a silence is music from its first window.
        The state (:attr:`is_music`) stays until the next window is judged, which sets
        :attr:`after_silence` (the pipeline then finds the genre afresh too)."""
        self._silent_run += 1
        if self._silent_run >= self.settings.windows:
            self._history.clear()
            self._judged = False
            self._forgot = True

    def update(self, p_music: float) -> tuple[bool, bool]:
        """Add one window's P(music). Returns (music now, changed by this window)."""
        self._silent_run = 0
        self.after_silence, self._forgot = self._forgot, False
        self._history.append(float(p_music))
        self.smoothed = float(np.mean(self._history))
        before = self.is_music
        if not self._judged or len(self._history) < self.settings.windows:
            self._judged = True
            self.is_music = self.smoothed >= (self.settings.enter + self.settings.leave) / 2
        elif self.is_music and self.smoothed < self.settings.leave:
            self.is_music = False
        elif not self.is_music and self.smoothed >= self.settings.enter:
            self.is_music = True
        return self.is_music, self.is_music != before


class MusicDetector:
    """The bundle's ``detector.tflite`` on LiteRT: features (batch x columns) → batch x 3 probabilities.
    Safe to call from several threads (the sources' threads share it; LiteRT's interpreter is not)."""

    def __init__(self, spec, num_threads: int = 1) -> None:
        from genrecast.daemon.litert import LiteRTModel

        self.spec = spec
        self._model = LiteRTModel(spec.tflite_path, num_threads)
        self._lock = threading.Lock()

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``features``: batch x len(columns), raw; returns batch x (music, speech, other), rows summing to 1."""
        inputs = ((np.asarray(features, dtype=np.float32) - self.spec.mean) / self.spec.std).astype(np.float32)
        with self._lock:
            return self._model.run(inputs)
