"""One source's side of the pipeline, in its own thread: its audio cut into windows
(:class:`~genrecast.daemon.windowing.Windower`), each window's level, its music detector verdict
through the source's gate, its genre context (:class:`~genrecast.daemon.context.GenreContext`,
which keeps what is not music out) and its features, ready for the classifier
(:class:`PendingWindow`)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from genrecast.daemon.bandwidth import BandwidthMonitor, BandwidthState
from genrecast.daemon.classifier import Classifier
from genrecast.daemon.context import GenreContext
from genrecast.daemon.detector import MusicGate
from genrecast.daemon.features import WINDOW_KINDS, window_features
from genrecast.daemon.music_features import MIN_SECONDS, music_features
from genrecast.daemon.smoothing import Smoother, level_dbfs
from genrecast.daemon.windowing import MIN_FINAL_FRACTION, Window, Windower

if TYPE_CHECKING:
    from genrecast.daemon.pipeline import PipelineSettings

log = logging.getLogger("genrecast.daemon.pipeline")  # the pipeline's lines, as before the split


@dataclass
class PendingWindow:
    """A window with its features, waiting to be classified."""

    source: "SourceState"
    window: Window
    features: np.ndarray | None
    """None when the audio is not finite or silent (no classification needed)."""
    level_dbfs: float
    context_seconds: float | None
    gate: "GateResult | None" = None
    """The music detector's verdict on this window, through the source's gate (None without a detector)."""
    bandwidth: BandwidthState = BandwidthState(None, None)
    """The source's bandwidth estimate after this window."""


class SourceState:
    """Everything the pipeline keeps per source: windowing, feature context, smoothing, sequence."""

    def __init__(self, name: str, classifier: Classifier, settings: PipelineSettings) -> None:
        cfg = classifier.bundle.features
        self.name = name
        self.cfg = cfg
        hop = settings.hop_seconds or cfg.window_seconds
        self.windower = Windower(name, cfg.sample_rate, cfg.window_samples, max(1, int(round(hop * cfg.sample_rate))),
                                 cfg.band_stage_hz)
        self.smoother = Smoother(len(classifier.bundle.labels), settings.smoothing)
        detector = getattr(classifier, "detector", None)
        self._detector = detector
        self.gate = MusicGate(detector.spec.gate) if detector is not None else None
        self.silence_dbfs = settings.smoothing.silence_dbfs
        self.seq = 0
        self.windows_made = 0
        self.invalid_windows = 0
        self._context = GenreContext(cfg, self.silence_dbfs) if cfg.kind == "summary" else None
        self.last_audio_monotonic: float | None = None
        self.bandwidth = BandwidthMonitor(cfg.sample_rate)
        self.warn_band_limited = settings.warn_band_limited

    def windows(self, block: np.ndarray, rate: int) -> list[PendingWindow]:
        """Feed a block of mono audio; return the windows it completed, with features."""
        self.last_audio_monotonic = time.monotonic()
        windows = self.windower.push(block, rate)
        self.windows_made += len(windows)
        return [self._prepare(w) for w in windows]

    def flush(self) -> list[PendingWindow]:
        """The last windows of a finite source."""
        windows = self.windower.flush()
        self.windows_made += len(windows)
        return [self._prepare(w) for w in windows]

    def restart(self) -> list[PendingWindow]:
        """The source's connection broke: the windows of the audio before the break (as at the end
        of a file), then a fresh genre context and bandwidth estimate for the next connection's
        audio, which may be another programme (the smoothed genre and the music gate carry on)."""
        windows = self.windower.restart()
        self.windows_made += len(windows)
        pending = [self._prepare(w) for w in windows]  # still with the old connection's context
        if self._context is not None:
            self._context = GenreContext(self.cfg, self.silence_dbfs)
        self.bandwidth = BandwidthMonitor(self.cfg.sample_rate)
        return pending

    def too_short_message(self) -> str | None:
        """Why nothing was classified, when the audio so far is shorter than one window
        (e.g. after :meth:`flush` of a 1-s clip); None once a window was made."""
        if self.windows_made:
            return None
        return (f"{self.windower.consumed_seconds:.2f} s of audio is shorter than one {self.cfg.window_seconds:g}-s window "
                f"(at least {MIN_FINAL_FRACTION * self.cfg.window_seconds:g} s is needed); nothing was classified")

    def _prepare(self, window: Window) -> PendingWindow:
        with np.errstate(all="ignore"):  # NaN/inf audio is reported below, not warned about
            level = level_dbfs(window.real(self.cfg.sample_rate))  # a final window's zero padding is not quiet audio
        audible = math.isfinite(level) and level >= self.silence_dbfs  # talk too: it counts for the bandwidth
        pending = self._prepare_features(window, level, audible)
        pending.bandwidth = self._bandwidth(window, audible=audible)
        return pending

    def _bandwidth(self, window: Window, audible: bool) -> BandwidthState:
        """Update the bandwidth estimate with an audible window's real audio; log once when the
        source turns out band-limited."""
        state = self.bandwidth.update(window.real(self.cfg.sample_rate) if audible else None)
        if state.newly_limited and self.warn_band_limited:
            log.warning("source %s: its audio is band-limited to about %.1f kHz, below the %.1f kHz the model was "
                        "trained on (8-kHz telephone or 16-kHz audio resampled up?), so genres are less reliable; "
                        "feed it at %g kHz or more if you can (events say band_limited: true)",
                        self.name, state.bandwidth_hz / 1000, self.cfg.sample_rate / 2000, self.cfg.sample_rate / 1000)
        return state

    def _prepare_features(self, window: Window, level: float, audible: bool) -> PendingWindow:
        if not audible:  # garbage or silence: not classified, and a gap in the context
            if self.gate is not None:
                self.gate.silent()
            if self._context is not None:
                self._context.take(window, gap=True)
            if not math.isfinite(level):
                self.invalid_windows += 1
                if self.invalid_windows == 1 or self.invalid_windows % 100 == 0:
                    log.warning("source %s: window at %.1f s holds NaN or infinite samples (%d so far); not classified",
                                self.name, window.start_seconds, self.invalid_windows)
            return PendingWindow(self, window, None, level, None)
        gate = self._judge(window)
        if self.cfg.kind in WINDOW_KINDS:
            pending = PendingWindow(self, window, window_features(window.samples, self.cfg), level, None)
        else:  # talk or noise (the gate says not music) is a gap in the context too, as silence is
            self._context.take(window, gap=gate is not None and not gate.is_music)
            pending = self._summary(window, level)
        pending.gate = gate
        return pending

    def _judge(self, window: Window) -> "GateResult | None":
        """The music detector on the window's real audio (a final window's zero padding left out),
        through this source's gate (in window order, before the window's genre context is updated:
        what is not music stays out of it); None without a detector."""
        if self._detector is None:
            return None
        cfg = self._detector.spec.features
        real = len(window.real(self.cfg.sample_rate))
        samples = window.samples[: max(real, int(MIN_SECONDS * self.cfg.sample_rate) + 1, cfg.n_fft)]
        value = float(self._detector.predict(music_features(samples, cfg)[None, :])[0, 0])
        value = value if math.isfinite(value) else 0.0
        was_music = self.gate.is_music
        is_music, _ = self.gate.update(value)
        return GateResult(is_music, value, self.gate.smoothed, left_music=was_music and not is_music,
                          after_silence=self.gate.after_silence)

    def _summary(self, window: Window, level: float) -> PendingWindow:
        """Table statistics over the last ``context_seconds`` of audio, silence left out (see GenreContext)."""
        return PendingWindow(self, window, self._context.features(), level, round(self._context.covered_seconds, 3))


@dataclass(frozen=True)
class GateResult:
    """The music detector's verdict on one window, after the source's gate took it in."""

    is_music: bool
    p_music: float
    """The window's P(music)."""
    smoothed: float
    """The gate's smoothed P(music) after this window."""
    left_music: bool
    """This window turned the gate from music to not_music."""
    after_silence: bool = False
    """This is the first window judged after a silence long enough for the gate to forget the
    sound before it (:meth:`MusicGate.silent`)."""
