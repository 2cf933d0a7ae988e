"""The daemon's entry into the plugin layer: :func:`open_sink_publisher`."""

from __future__ import annotations

from typing import Any, Sequence

from genrecast.daemon.naming import default_daemon_id
from genrecast.daemon.shard import member_sources
from genrecast.plugins.dispatcher import Dispatcher
from genrecast.plugins.sinks import build_sinks


def open_sink_publisher(config: Any, labels: Sequence[str]) -> Dispatcher:
    """A started :class:`Dispatcher` for ``config["sinks"]``, each sink given its config
    section (``config.section(name)``). Raises :class:`~genrecast.plugins.SinkConfigError`
    (a ``ValueError``) on an unknown sink or bad settings. ``start()`` on the result is a no-op.
    Every sink also gets the names of this member's sources (its shard) and the daemon id (``daemon_id``, else the host name)."""
    names = list(config["sinks"])
    sources = [name for name, _ in member_sources(config)]
    daemon_id = config["daemon_id"] or default_daemon_id()
    dispatcher = Dispatcher(build_sinks(names, {name: config.section(name) for name in names}, labels,
                                        sources=sources, daemon_id=daemon_id))
    dispatcher.start()
    return dispatcher
