"""The dispatcher: one bounded queue and one worker thread per sink.

:meth:`Dispatcher.publish` never waits on a sink: it appends the event to every
sink's queue (each sink its own copy; dropping, counting and logging that queue's oldest
event when it is full) and returns. Each sink's worker calls the sink, counts deliveries
and errors, and logs errors at most once per ``error_log_interval_seconds`` per sink,
with the number suppressed. A sink that raises, blocks or is slow affects only its own queue.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from typing import Any, Mapping, Protocol, Sequence

from genrecast.daemon.events import GenreEvent
from genrecast.plugins import SinkConfigError

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000
"""Events each sink's queue holds before the oldest is dropped."""
DEFAULT_ERROR_LOG_INTERVAL_SECONDS = 10.0
"""At most one error log line per sink in this many seconds."""
_IDLE_POLL_SECONDS = 0.5
"""How often an idle worker looks for a reopen request (set without locks by a signal handler)."""
START_WARNING_SECONDS = 10.0
"""A sink whose start has not returned after this long is named in a warning (start must not block)."""


class Sink(Protocol):
    """What the dispatcher drives (see :class:`genrecast.plugins.sinks.PluginSink`)."""

    name: str

    def start(self) -> None: ...

    def handle(self, event: GenreEvent) -> None: ...

    def stop(self, deadline_seconds: float) -> None: ...

    def reopen(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class RateLimitedLog:
    """Logs at most one line per ``interval_seconds``, reporting how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_seconds: float) -> None:
        self.logger, self.interval_seconds = logger, interval_seconds
        self._last_monotonic: float | None = None
        self.suppressed = 0

    def log(self, level: int, message: str, *args: Any, exc_info: BaseException | None = None) -> bool:
        """Log now or count as suppressed; returns True if a line was written."""
        now = time.monotonic()
        if self._last_monotonic is not None and now - self._last_monotonic < self.interval_seconds:
            self.suppressed += 1
            return False
        if self.suppressed:
            message += f" ({self.suppressed} more suppressed in the last {self.interval_seconds:g} s)"
        self.logger.log(level, message, *args, exc_info=exc_info)
        self._last_monotonic, self.suppressed = now, 0
        return True


class _Worker:
    """One sink's bounded queue, thread and counters."""

    def __init__(self, sink: Sink, queue_size: int, error_log_interval_seconds: float) -> None:
        self.sink = sink
        self.queue_size = queue_size
        self._queue: deque[GenreEvent] = deque()
        self._cond = threading.Condition(threading.Lock())
        self.delivered = 0
        self.errors = 0
        self.dropped = 0
        self.in_hand = 0
        """1 while the sink handles an event (so a sink abandoned mid-event still counts it)."""
        self._stopping = False
        self._deadline_monotonic = float("inf")
        self.reopen_requested = False
        self._errors_log = RateLimitedLog(log, error_log_interval_seconds)
        self._drops_log = RateLimitedLog(log, error_log_interval_seconds)
        self.thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    def put(self, event: GenreEvent) -> None:
        """Queue ``event`` (this sink's own copy of its one mutable field, so a plugin that changes
        ``event.probabilities`` changes no other sink's event); when the queue is full, drop the
        oldest and log it (rate limited) here, so a sink stuck in one event is reported too."""
        event = dataclasses.replace(event, probabilities=dict(event.probabilities))
        with self._cond:
            full = len(self._queue) >= self.queue_size
            if full:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()
        if full:  # a drop happened just now: the rate limit alone decides whether it is logged
            self._drops_log.log(logging.WARNING, "sink %s is falling behind: %d events dropped so far (queue of %d full)",
                                self.sink.name, self.dropped, self.queue_size)

    def request_stop(self, deadline_monotonic: float) -> None:
        with self._cond:
            self._stopping = True
            self._deadline_monotonic = deadline_monotonic
            self._cond.notify()

    @property
    def queue_depth(self) -> int:
        """Events queued or in the sink's hands, not yet delivered."""
        return len(self._queue) + self.in_hand

    def _next(self) -> GenreEvent | None:
        """The next event, or None when stopping with an empty queue (or past the deadline)."""
        with self._cond:
            while not self._queue and not self._stopping and not self.reopen_requested:
                self._cond.wait(_IDLE_POLL_SECONDS)
            if self._stopping and (not self._queue or time.monotonic() >= self._deadline_monotonic):
                return None
            return self._queue.popleft() if self._queue else None

    def _run(self) -> None:
        name = self.sink.name
        while True:
            if self.reopen_requested:
                self.reopen_requested = False
                try:
                    self.sink.reopen()
                except BaseException as exc:  # a plugin's failure (even sys.exit) must not end its worker
                    # an OSError (a folder gone) is the world's doing: one line, no traceback
                    log.error("sink %s: reopen failed: %s: %s", name, type(exc).__name__, exc,
                              exc_info=None if isinstance(exc, OSError) else exc)
            event = self._next()
            if event is None:
                if self._stopping:
                    break
                continue
            self.in_hand = 1
            try:
                self.sink.handle(event)
                self.delivered += 1
            except BaseException as exc:  # isolate the plugin (even its sys.exit): count, log (rate limited), go on
                self.errors += 1
                # an OSError (full disk, lost connection) is the world's doing: one line, no traceback
                self._errors_log.log(logging.ERROR, "sink %s failed on an event (%d errors so far): %s: %s",
                                     name, self.errors, type(exc).__name__, exc,
                                     exc_info=None if isinstance(exc, OSError) else exc)
            finally:
                self.in_hand = 0
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            self.dropped += left
        if left:
            log.warning("sink %s: shutdown deadline passed with %d events undelivered", name, left)
        try:
            self.sink.stop(max(0.0, self._deadline_monotonic - time.monotonic()))
        except BaseException as exc:
            log.error("sink %s: stop failed: %s", name, exc, exc_info=exc)
        # what the sink took but never delivered: dropped itself, or still held when it stopped (an
        # event it kept after raising, as the logfile sink on a full disk does, was never delivered)
        values, own_dropped, own_depth = sink_stats(self.sink)
        lost = own_dropped + own_depth
        # a sink that keeps what it raised on (it reports a queue_depth: the logfile sink on a full disk)
        # writes it later, so every event it took is delivered unless it is among the lost
        took = self.delivered + (self.errors if "queue_depth" in values else 0)
        log.info("sink %s: %d delivered, %d errors, %d dropped", name, max(0, took - lost), self.errors, self.dropped + lost)


def sink_stats(sink) -> tuple[dict[str, Any], int, int]:
    """A sink's own ``stats()`` (empty if it fails), and the events it dropped itself and still
    holds (its ``dropped`` and ``queue_depth``, 0 where not integers): a sink that buffers events
    (the MQTT sink while its broker is away) counts them there."""
    try:
        values = dict(sink.stats() or {})
    except Exception as exc:
        log.debug("sink %s: stats failed: %s", sink.name, exc)
        return {}, 0, 0
    dropped, depth = values.get("dropped", 0), values.get("queue_depth", 0)
    return values, dropped if isinstance(dropped, int) else 0, depth if isinstance(depth, int) else 0


class Dispatcher:
    """Fans each event out to every sink through its own bounded queue and worker thread.

    ``start()`` starts the sinks (raising :class:`~genrecast.plugins.SinkConfigError` on
    bad settings) and their workers; ``publish(event)`` never blocks; ``stop(deadline_seconds)``
    drains the queues and stops the sinks within the deadline; ``reopen()`` is safe to call
    from a signal handler; ``stats()`` returns per-sink counters.
    """

    def __init__(self, sinks: Sequence[Sink], queue_size: int = DEFAULT_QUEUE_SIZE,
                 error_log_interval_seconds: float = DEFAULT_ERROR_LOG_INTERVAL_SECONDS,
                 queue_sizes: Mapping[str, int] | None = None) -> None:
        """``queue_size`` events per sink queue (``queue_sizes`` overrides it per sink name)."""
        sizes = {s.name: (queue_sizes or {}).get(s.name, queue_size) for s in sinks}
        if any(size < 1 for size in sizes.values()):
            raise ValueError("queue sizes must be at least 1")
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise SinkConfigError(f"a sink is named twice in {names}")
        self.sinks = list(sinks)
        self._workers = [_Worker(s, sizes[s.name], error_log_interval_seconds) for s in self.sinks]
        self._started = False
        self._stopped = False

    def start(self) -> None:
        """Check every sink's settings (``genrecast_sink_check``, where a sink has it), then start
        every sink, then the workers. Idempotent. A bad setting stops the start before any sink has
        started; third-party sinks start first, so one that refuses its settings only when it starts
        stops the start before a built-in one has done anything outside (the MQTT sink publishes
        Home Assistant discovery as soon as it connects)."""
        if self._started:
            return
        for sink in self.sinks:  # every sink's settings first: nothing starts (nor tells Home Assistant) on a bad one
            check = getattr(sink, "check", None)
            try:
                if check is not None:
                    check()
            except SinkConfigError:
                raise
            except (Exception, SystemExit) as exc:
                raise SinkConfigError(f"sink {sink.name}: its settings check failed: {type(exc).__name__}: {exc}") from exc
        started: list[Sink] = []
        for sink in sorted(self.sinks, key=lambda s: bool(getattr(s, "builtin", False))):
            slow = threading.Timer(START_WARNING_SECONDS, log.warning, ("sink %s is still starting after %g s (a sink's "
                                   "genrecast_sink_start must not block: it should connect in the background)",
                                   sink.name, START_WARNING_SECONDS))
            slow.daemon = True
            slow.start()
            try:
                sink.start()
            except (Exception, SystemExit) as exc:
                for other in started:
                    try:
                        other.stop(1.0)
                    except Exception as stop_exc:
                        log.error("sink %s: stop failed: %s", other.name, stop_exc)
                if isinstance(exc, SinkConfigError):
                    raise
                raise SinkConfigError(f"sink {sink.name} failed to start: {type(exc).__name__}: {exc}") from exc
            finally:
                slow.cancel()
            started.append(sink)
        for worker in self._workers:
            worker.thread.start()
        self._started = True
        log.info("sinks started: %s", ", ".join(s.name for s in self.sinks) or "none")

    def publish(self, event: GenreEvent) -> None:
        """Queue ``event`` for every sink; never waits on a sink."""
        for worker in self._workers:
            worker.put(event)

    def drain(self, idle_seconds: float, interrupted: threading.Event) -> None:
        """Wait while the sinks work through what they hold (:meth:`stats`' ``queue_depth``: the
        dispatcher's queues and a sink's own, as the MQTT sink's while its broker is away): until
        nothing is held, nothing has moved for ``idle_seconds`` (a stuck sink or a broker that
        stays away, not a slow one or one back in a moment), or ``interrupted`` is set. A run
        whose sources ended calls this before :meth:`stop`, so no event is lost to a slow sink."""
        progress, last_change = None, time.monotonic()
        while not interrupted.is_set():
            stats = self.stats()
            if not any(values["queue_depth"] for values in stats.values()):
                return
            now_progress = {name: (v["queue_depth"], v["delivered"], v["errors"]) for name, v in stats.items()}
            if now_progress != progress:
                progress, last_change = now_progress, time.monotonic()
            elif time.monotonic() - last_change > idle_seconds:
                return
            interrupted.wait(_IDLE_POLL_SECONDS)

    def stop(self, deadline_seconds: float) -> None:
        """Deliver what is queued and stop every sink, all within ``deadline_seconds``.

        A sink still busy at the deadline is abandoned (its thread is a daemon thread)."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + deadline_seconds
        for worker in self._workers:
            worker.request_stop(deadline)
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()) + 0.2)
            if worker.thread.is_alive():
                log.warning("sink %s did not stop within %.1f s; abandoning it with %d events undelivered (%d delivered, "
                            "%d errors, %d dropped before)", worker.sink.name, deadline_seconds, worker.queue_depth,
                            worker.delivered, worker.errors, worker.dropped)

    def reopen(self) -> None:
        """Ask every sink to reopen its files; takes no lock, so a signal handler may call it."""
        for worker in self._workers:
            worker.reopen_requested = True

    def stats(self) -> dict[str, dict[str, Any]]:
        """``{sink: {"delivered", "errors", "dropped", "queue_depth", "lost_to_errors", ...the sink's own}}``.

        A sink that buffers events itself (the MQTT sink while its broker is away) may
        report its own ``dropped`` and ``queue_depth``; they are added to the dispatcher's,
        so both numbers cover every event the sink has not delivered or has lost.
        ``queue_depth`` includes an event the sink is handling. ``lost_to_errors``: events the
        sink raised on that it does not hold for a retry (``errors``, for a sink that reports no
        ``queue_depth`` of its own; 0 for one that does, as it counts those it keeps there)."""
        result: dict[str, dict[str, Any]] = {}
        for worker in self._workers:
            values, own_dropped, own_depth = sink_stats(worker.sink)
            holds_failed = "queue_depth" in values  # such a sink keeps an event it raised on, and counts it there
            values.update(delivered=worker.delivered, errors=worker.errors,
                          dropped=worker.dropped + own_dropped, queue_depth=worker.queue_depth + own_depth,
                          lost_to_errors=0 if holds_failed else worker.errors)
            result[worker.sink.name] = values
        return result
