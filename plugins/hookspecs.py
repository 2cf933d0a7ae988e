"""The ``genrecast_*`` hooks a plugin may implement.

A plugin is a module (or an object) with :data:`~genrecast.plugins.hookimpl`-marked
functions named like the specifications below. Every plugin that implements
:func:`genrecast_sink_event` is an event *sink*, selected by its plugin name
(``genrecast run --sink NAME``; for an entry point, its name). Its settings are
the config file section of that name (``[mqtt]``, ``[logfile]``, ...).

Lifecycle of one sink, all calls made by the dispatcher from the sink's own worker
thread (except ``check`` and ``start``, made once at start-up by the daemon's main thread)::

    genrecast_sink_check(config)              # optional: before any sink starts, and by `config check`; opens nothing
    genrecast_sink_start(config, labels, sources, daemon_id)   # validate settings, open resources
    genrecast_sink_event(event)               # once per event, in order
    genrecast_sink_reopen()                   # on SIGHUP (optional)
    genrecast_sink_stop(deadline_seconds)     # flush and close (optional)

pluggy stops a hook call at the first exception, so the dispatcher never calls
``pm.hook.genrecast_sink_event(...)`` across all plugins: it calls each sink's own
implementation in that sink's thread, so one failing, slow or blocked sink never
affects another or the daemon.
"""

from __future__ import annotations

from typing import Any

from genrecast.daemon.events import GenreEvent
from genrecast.plugins import hookspec


@hookspec
def genrecast_sink_start(config: dict[str, Any], labels: list[str], sources: list[str], daemon_id: str) -> None:
    """Start the sink with its own settings.

    ``config`` is the sink's section of the configuration (e.g. ``[mqtt]``), already
    merged from defaults, file and ``GENRECAST_*`` environment; validate it and raise
    :class:`genrecast.plugins.SinkConfigError` with a clear message if it is wrong (the
    daemon then exits with that message). ``labels`` is the model's ordered genre list;
    ``sources`` the names of the configured sources (unique, in order; events carry them as
    ``event.source``); ``daemon_id`` this daemon's id (``A-Za-z0-9_-``, unique per daemon on
    one broker), to namespace what the sink shares with other daemons. An implementation
    may take only the arguments it needs (``def genrecast_sink_start(config, labels)``).
    Open files or connections here, but do not block: connect in the background.
    """


@hookspec
def genrecast_sink_check(config: dict[str, Any]) -> None:
    """Check the sink's settings without opening anything (optional).

    Called with the same ``config`` section that :func:`genrecast_sink_start` gets: by ``run``
    for every sink before any sink starts (so a bad setting stops the run before another sink has
    done anything outside), and by ``genrecast config check``. Raise
    :class:`genrecast.plugins.SinkConfigError` with a message that names the setting and the
    fix (``[beep] genres: 'jaz' is not a genre; ...``); return ``None`` when they are sound.
    A sink without this hook has its settings checked only when ``run`` starts it.
    """


@hookspec
def genrecast_sink_event(event: GenreEvent) -> None:
    """Handle one :class:`~genrecast.daemon.events.GenreEvent` (one window of one source).

    Called from this sink's own worker thread, events in the order they were made, each
    sink with its own copy (changing ``event.probabilities`` changes no other sink's).
    Serialise with ``event.to_json()``. An exception (even ``SystemExit``) is counted and
    logged (rate limited) and the next event is delivered as usual; a slow or stuck sink
    only fills its own bounded queue, whose oldest events are dropped, counted and logged.
    """


@hookspec
def genrecast_sink_stop(deadline_seconds: float) -> None:
    """Flush what is pending and close, returning within ``deadline_seconds`` seconds.

    Called once after the sink's queue has been drained (or the shared shutdown
    deadline has passed). Whatever is still undelivered after the deadline may be lost.
    """


@hookspec
def genrecast_sink_reopen() -> None:
    """Reopen files (the daemon received SIGHUP, e.g. from logrotate).

    Called from the sink's worker thread between two events, never from the signal handler.
    """


@hookspec
def genrecast_sink_stats() -> dict[str, Any]:
    """Return this sink's own counters (e.g. ``{"connected": True, "reconnects": 2}``).

    Merged into the dispatcher's per-sink counters (``delivered``, ``errors``,
    ``dropped``, ``queue_depth``) for ``/metrics``. Must be cheap and thread-safe.
    """
