"""The retry loop shared by the stream and microphone sources."""

from __future__ import annotations

import threading
import time

from genrecast.daemon.backoff import Backoff
from genrecast.daemon.sources.base import Deliver, log


class _Reconnecting:
    """The retry loop of the stream and microphone sources: :meth:`run` calls
    ``_attempt(deliver, stop, first)`` until ``stop`` is set, logging why each attempt
    ended (``NAME: REASON; <_retry_verb> in X s (failure N)``) and waiting with backoff.
    ``restarts`` counts attempts after the first; :meth:`loop_alive` tells the watchdog
    that the loop is working although no audio flows (a missing device, a server down).
    After an attempt that ended (not by ``stop``), ``deliver.broken()`` is called where
    ``deliver`` has it: the pipeline then classifies the audio before the break at once."""

    name: str
    _retry_verb = "retrying"

    def __init__(self, backoff_initial_seconds: float, backoff_max_seconds: float) -> None:
        self.backoff = Backoff(backoff_initial_seconds, backoff_max_seconds)
        self.restarts = 0
        self.stalls = 0
        self.rate: int | None = None
        self.connected = False
        self._phase: tuple[str, float] = ("idle", time.monotonic())  # idle, attempt or waiting; since when

    @property
    def waiting_to_retry(self) -> bool:
        """Between two attempts: the last one failed and the backoff wait runs."""
        return self._phase[0] == "waiting"

    def loop_alive(self, within_seconds: float) -> bool:
        """True while waiting to retry (a wait cannot hang) or when the current attempt
        began less than ``within_seconds`` ago."""
        phase, since = self._phase
        return phase == "waiting" or (phase == "attempt" and time.monotonic() - since < within_seconds)

    def _attempt(self, deliver: Deliver, stop: threading.Event, first: bool) -> str:
        """Deliver audio until it fails or ``stop`` is set; returns why it ended."""
        raise NotImplementedError

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        self.backoff.reset()
        failures = 0
        first = True
        while not stop.is_set():
            if not first:
                self.restarts += 1
            self._phase = ("attempt", time.monotonic())
            reason = self._attempt(deliver, stop, first)
            first = False
            self.connected = False
            if stop.is_set():
                return
            broken = getattr(deliver, "broken", None)
            if broken is not None:  # the audio before the break is classified now, not when the source is back
                broken()
            failures += 1
            delay = self.backoff.next_delay()
            log.warning("%s: %s; %s in %.1f s (failure %d)", self.name, reason, self._retry_verb, delay, failures)
            self._phase = ("waiting", time.monotonic())
            if self.backoff.wait(stop, delay):
                return

    def _now_receiving(self, rate: int) -> str:
        """Mark the source connected at ``rate`` (warning when the rate changed); returns
        `` (recovered after N restarts)`` after a restart, else ``""``, for the caller's log."""
        if self.rate is not None and rate != self.rate:
            log.warning("%s: rate changed from %d to %d Hz", self.name, self.rate, rate)
        self.rate = rate
        self.connected = True
        return f" (recovered after {self.restarts} restarts)" if self.restarts else ""
