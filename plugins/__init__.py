"""genrecast.plugins: hook specifications, the plugin manager, the dispatcher and the built-in sinks.

Plugin authors need only :data:`hookimpl` (and :class:`SinkConfigError` to reject settings)::

    from genrecast.plugins import hookimpl

    @hookimpl
    def genrecast_sink_event(event):
        print(event.smoothed_genre)

Importing this package is cheap: paho-mqtt and the CLI load only when used.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "genrecast"
"""The pluggy project name, and the entry-point group third-party plugins register under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a hook specification (used by :mod:`genrecast.plugins.hookspecs`)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's implementation of a ``genrecast_*`` hook."""


class SinkConfigError(ValueError):
    """A sink's settings are invalid; the message says which setting and how to fix it."""


__all__ = ["PROJECT_NAME", "SinkConfigError", "hookimpl", "hookspec"]
