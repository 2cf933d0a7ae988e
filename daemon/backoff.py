"""Capped exponential backoff whose waits a stop event interrupts."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of ``initial_seconds`` doubling (``factor``) up to ``max_seconds``.

    :meth:`wait` sleeps on a :class:`threading.Event`, so setting it ends the wait at once.
    """

    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    factor: float = 2.0
    _next_seconds: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_seconds <= 0 or self.max_seconds <= 0 or self.factor < 1:
            raise ValueError("backoff needs initial_seconds > 0, max_seconds > 0 and factor >= 1")
        self.reset()

    def reset(self) -> None:
        """Start again from ``initial_seconds`` (call after a healthy period)."""
        self._next_seconds = min(self.initial_seconds, self.max_seconds)

    def next_delay(self) -> float:
        """The delay to wait now, in seconds; the following one grows by ``factor``."""
        delay = self._next_seconds
        self._next_seconds = min(self._next_seconds * self.factor, self.max_seconds)
        return delay

    def wait(self, stop: threading.Event, delay: float | None = None) -> bool:
        """Wait ``delay`` (default :meth:`next_delay`) seconds or until ``stop`` is set;
        returns True when ``stop`` is set."""
        return stop.wait(self.next_delay() if delay is None else delay)
