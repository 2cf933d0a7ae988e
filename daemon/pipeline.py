"""The listening pipeline: sources → windows → features → music detector → classifier → events.

Each source runs in its own thread and turns its audio into windows, runs the music detector
(when the bundle has one) through the source's gate, and computes the features
(:mod:`genrecast.daemon.source_state`); one classifier thread takes the waiting windows
(batched across sources), classifies those that are music, applies the smoothing, and hands
each :class:`GenreEvent` to ``publish``. If classification falls behind a live source, the
oldest waiting windows are dropped and counted, so memory stays bounded (a file or stdin waits).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from genrecast.daemon.classifier import Classifier
from genrecast.daemon.events import GenreEvent, utc_now
from genrecast.daemon.smoothing import SmoothingSettings
from genrecast.daemon.source_state import GateResult, PendingWindow, SourceState
from genrecast.daemon.sources.base import SourceError

log = logging.getLogger(__name__)

#: Seconds a stopped daemon waits for its sources to end before it leaves one that does not behind
#: (a microphone whose sound server froze, a decoder that hangs): within systemd's stop timeout.
STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class PipelineSettings:
    """Windowing, smoothing and queueing settings of the pipeline."""

    hop_seconds: float | None = None
    """Seconds between window starts; default: the bundle's window length (no overlap)."""
    smoothing: SmoothingSettings = field(default_factory=SmoothingSettings)
    max_pending_windows: int = 64
    """Windows waiting for classification before the oldest are dropped."""
    max_batch: int = 16
    """Most windows classified in one call."""
    warn_band_limited: bool = True
    """Log once per source when its audio turns out band-limited; ``evaluate --conditions`` turns it off,
    as it band-limits on purpose (its events still say ``band_limited``)."""


def _unit(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 5)


class EventMaker:
    """Classifies pending windows in batches and turns them into events."""

    def __init__(self, classifier: Classifier, settings: PipelineSettings) -> None:
        self.classifier = classifier
        self.labels = classifier.bundle.labels
        self.model_id = classifier.bundle.model_id
        self.settings = settings
        self.classified = 0
        """Windows a model ran on: the music detector (talk stays ``not_music`` there), the genre model, or both."""
        self.on_batch: Callable[[int, float], None] | None = None
        """Called with (windows, seconds of the genre model) after each batch (metrics; the music detector
        runs as each window is cut, in its source's thread)."""

    def events(self, pending: list[PendingWindow]) -> list[GenreEvent]:
        """Events for ``pending`` windows, in order."""
        started = time.perf_counter()
        music = {id(p): p.gate for p in pending if p.gate is not None}  # judged as each window was cut
        todo = [p for p in pending if p.features is not None and (id(p) not in music or music[id(p)].is_music)]
        probs: dict[int, np.ndarray] = {}
        if todo:
            out = self.classifier.predict(np.stack([p.features for p in todo]))
            probs = {id(p): row for p, row in zip(todo, out)}
        judged = len(set(map(id, todo)) | set(music))  # windows a model ran on: the detector, the genre model or both
        if judged:
            self.classified += judged
            if self.on_batch is not None:
                self.on_batch(judged, time.perf_counter() - started)
        return [self._event(p, probs.get(id(p)), music.get(id(p))) for p in pending]

    def _event(self, p: PendingWindow, prob: np.ndarray | None, music: GateResult | None) -> GenreEvent:
        settings = self.settings.smoothing
        if prob is not None and not np.all(np.isfinite(prob)):
            prob = None
        if music is not None and (music.left_music or music.after_silence):
            p.source.smoother.reset()  # the genre is found afresh after talk, or after a silence the gate forgot over
        if music is not None and not music.is_music:
            state, genre, top, probabilities = "not_music", None, 0.0, {}
        elif prob is None:
            state, genre, top, probabilities = ("silence" if math.isfinite(p.level_dbfs) else "uncertain"), None, 0.0, {}
        else:
            best = int(np.argmax(prob))
            top = float(prob[best])
            state = "music" if top >= settings.min_confidence else "uncertain"
            genre = self.labels[best]
            probabilities = {label: round(float(v), 5) for label, v in zip(self.labels, prob)}
        smoothed, smoothed_p, changed = p.source.smoother.update(prob)
        event = GenreEvent(
            source=p.source.name,
            seq=p.source.seq,
            utc=utc_now(),
            audio_start_seconds=round(p.window.start_seconds, 3),
            audio_end_seconds=round(p.window.end_seconds, 3),
            state=state,
            genre=genre,
            probability=round(min(1.0, max(0.0, top)), 5),
            probabilities=probabilities,
            smoothed_genre=self.labels[smoothed] if smoothed is not None and state != "not_music" else None,
            smoothed_probability=round(min(1.0, max(0.0, smoothed_p)), 5) if state != "not_music" else 0.0,
            changed=changed,
            level_dbfs=round(p.level_dbfs, 2) if math.isfinite(p.level_dbfs) else -200.0,
            model_id=self.model_id,
            context_seconds=p.context_seconds,
            music_probability=_unit(music.p_music) if music is not None else None,
            smoothed_music_probability=_unit(music.smoothed) if music is not None else None,
            bandwidth_hz=p.bandwidth.bandwidth_hz,
            band_limited=p.bandwidth.band_limited,
        )
        p.source.seq += 1
        return event


class Pipeline:
    """Runs sources in threads and classifies their windows until stopped or every finite source ended."""

    def __init__(self, classifier: Classifier, sources: list, publish: Callable[[GenreEvent], None],
                 settings: PipelineSettings | None = None) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        self.settings = settings or PipelineSettings()
        self.sources = sources
        self.publish = publish
        self.maker = EventMaker(classifier, self.settings)
        self.states = {s.name: SourceState(s.name, classifier, self.settings) for s in sources}
        self.stop_event = threading.Event()
        self._stop_monotonic: float | None = None
        self._pending: deque[PendingWindow] = deque()
        self._cond = threading.Condition()
        self._running = 0
        self.dropped_windows = 0
        self.events_published = 0
        self.last_event: GenreEvent | None = None
        self.event_counts: dict[tuple[str, str | None], int] = {}
        self.last_progress_monotonic = time.monotonic()
        self.ended_without_audio: list[str] = []
        """Names of the sources that ended on their own before delivering a single sample."""
        self.failed_sources: list[str] = []
        """Sources that stopped on an error (an undecodable or truncated file, a source bug)."""

    # -- source side --------------------------------------------------------
    def _enqueue(self, items: list[PendingWindow], wait: bool = False) -> None:
        """Queue windows for the classifier. A full queue drops its oldest window (a live source
        must not fall behind real time), unless ``wait``: a finite source (a file, stdin) waits for
        room instead, so it loses nothing to a slow model."""
        if not items:
            return
        with self._cond:
            for item in items:
                while wait and len(self._pending) >= self.settings.max_pending_windows and not self.stop_event.is_set():
                    self._cond.wait(0.5)
                if len(self._pending) >= self.settings.max_pending_windows:
                    self._pending.popleft()
                    self.dropped_windows += 1
                    if self.dropped_windows == 1 or self.dropped_windows % 100 == 0:
                        log.warning("classification is behind real time: dropped %d oldest windows so far", self.dropped_windows)
                self._pending.append(item)
            self._cond.notify_all()

    def _run_source(self, source) -> None:
        state = self.states[source.name]
        heard = [0]

        finite = bool(getattr(source, "finite", False))

        def deliver(block, rate) -> None:
            heard[0] += len(block)
            self._enqueue(state.windows(block, rate), wait=finite)

        def broken() -> None:
            """A stream or microphone lost its connection (it calls this, see
            :class:`~genrecast.daemon.sources.reconnect._Reconnecting`): its audio so far is
            classified now, as a file's end is, and the next connection starts afresh."""
            self._enqueue(state.restart(), wait=finite)

        deliver.broken = broken  # type: ignore[attr-defined]

        try:
            source.run(deliver, self.stop_event)
            self._enqueue(state.flush(), wait=finite)
            if not heard[0] and not self.stop_event.is_set():
                self.ended_without_audio.append(source.name)
                log.warning("source %s ended without any audio (nothing was classified); check what feeds it", source.name)
            elif not heard[0]:  # stopped before a device or stream delivered anything: said when it failed to open
                log.info("source %s stopped before any audio arrived", source.name)
            elif (why := state.too_short_message()) is not None:
                log.warning("source %s ended: %s", source.name, why)
        except SourceError as exc:  # e.g. a file that fails mid-way: its reason, no traceback
            self.failed_sources.append(source.name)
            log.error("source %s stopped: %s", source.name, exc)
            self._enqueue(state.flush(), wait=finite)  # the audio it did deliver: its last window too
        except Exception:  # a source bug must not take the other sources down
            self.failed_sources.append(source.name)
            log.exception("source %s failed and stopped", source.name)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify()
            log.info("source %s ended", source.name)

    # -- classifier side ----------------------------------------------------
    def _take(self, timeout: float) -> list[PendingWindow] | None:
        with self._cond:
            deadline = time.monotonic() + timeout
            while not self._pending:
                if self._running == 0 or self._given_up():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            batch = [self._pending.popleft() for _ in range(min(self.settings.max_batch, len(self._pending)))]
            self._cond.notify_all()  # room for a finite source that waits
            return batch

    def _given_up(self) -> bool:
        """After :meth:`stop`, whether :data:`STOP_GRACE_SECONDS` passed with a source still running
        (stuck in a call that does not return: a frozen sound server, a hung decoder)."""
        return self._stop_monotonic is not None and time.monotonic() - self._stop_monotonic > STOP_GRACE_SECONDS

    def run(self) -> None:
        """Block until every source has ended (finite) or :meth:`stop` was called and
        the windows already buffered were classified and published. Without sources (a fleet
        member whose share is empty) block until :meth:`stop`. A source that has not ended
        :data:`STOP_GRACE_SECONDS` after :meth:`stop` is left behind (its thread is a daemon thread)."""
        while not self.sources and not self.stop_event.wait(0.5):
            self.last_progress_monotonic = time.monotonic()
        threads = []
        with self._cond:
            self._running = len(self.sources)
        for source in self.sources:
            t = threading.Thread(target=self._run_source, args=(source,), name=f"source-{source.name}", daemon=True)
            t.start()
            threads.append(t)
        while True:
            batch = self._take(timeout=0.5)
            self.last_progress_monotonic = time.monotonic()
            if batch is None:
                break
            for event in self.maker.events(batch):
                self.publish(event)
                self.events_published += 1
                self.last_event = event
                key = (event.state, event.genre)
                self.event_counts[key] = self.event_counts.get(key, 0) + 1
        for t in threads:
            t.join(timeout=0.0 if self._given_up() else 5.0)
        stuck = [t.name.removeprefix("source-") for t in threads if t.is_alive()]
        if stuck:
            log.warning("source %s did not stop within %g s (stuck in its device, server or decoder); leaving it",
                        ", ".join(stuck), STOP_GRACE_SECONDS)

    def stop(self) -> None:
        """Ask every source to stop; :meth:`run` returns once buffered windows are classified."""
        if self._stop_monotonic is None:
            self._stop_monotonic = time.monotonic()
        self.stop_event.set()
