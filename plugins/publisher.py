"""The daemon's entry into the plugin layer: :func:`open_sink_publisher`."""

from __future__ import annotations

from typing import Any, Sequence

from genrecast.plugins.dispatcher import Dispatcher
from genrecast.plugins.sinks import build_sinks


def open_sink_publisher(config: Any, labels: Sequence[str]) -> Dispatcher:
    """A started :class:`Dispatcher` for ``config["sinks"]``, each sink given its config
    section (``config.section(name)``). Raises :class:`~genrecast.plugins.SinkConfigError`
    (a ``ValueError``) on an unknown sink or bad settings. ``start()`` on the result is a no-op."""
    names = list(config["sinks"])
    dispatcher = Dispatcher(build_sinks(names, {name: config.section(name) for name in names}, labels))
    dispatcher.start()
    return dispatcher
