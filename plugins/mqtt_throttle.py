"""When the ``mqtt`` sink publishes a source's retained state: :class:`StateThrottle`."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class StateThrottle(Generic[T]):
    """At once when a source's genre changes, else at most every ``interval_seconds``; a state
    held back becomes due when its interval is over, so the latest one always goes out (the
    confidence never stays stale longer than the interval). Times are ``time.monotonic()`` seconds."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._sent: dict[str, tuple[str, float]] = {}
        self._held: dict[str, T] = {}

    def offer(self, source: str, genre: str, item: T, now: float, force: bool = False) -> bool:
        """True: publish ``item`` now (and it is counted as sent); False: it is held back."""
        sent = self._sent.get(source)
        if force or sent is None or sent[0] != genre or now - sent[1] >= self.interval_seconds:
            self._held.pop(source, None)
            self._sent[source] = (genre, now)
            return True
        self._held[source] = item
        return False

    def due(self, now: float, everything: bool = False) -> list[T]:
        """Held-back items whose interval is over (``everything``: all of them), released."""
        due = {source: item for source, item in self._held.items()
               if everything or now - self._sent[source][1] >= self.interval_seconds}
        for source in due:
            del self._held[source]
        return list(due.values())
