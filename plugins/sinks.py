"""Turning sink plugins into the objects the dispatcher drives, and :func:`build_sinks`."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import pluggy

from genrecast.daemon.events import GenreEvent
from genrecast.plugins import SinkConfigError

log = logging.getLogger(__name__)


class PluginSink:
    """One sink plugin with its settings; calls only that plugin's own hook implementations
    (never the whole hook, so another plugin's failure cannot stop this one)."""

    def __init__(self, name: str, plugin: object, pm: pluggy.PluginManager,
                 config: Mapping[str, Any], labels: Sequence[str], sources: Sequence[str] = (),
                 daemon_id: str = "") -> None:
        self.name, self.plugin = name, plugin
        from genrecast.plugins.manager import BUILTIN_PLUGINS

        self.builtin = name in BUILTIN_PLUGINS and name not in getattr(pm, "distributions", {})
        """One of genrecast's own sinks (started after the plugins, see :meth:`Dispatcher.start`)."""
        self.config, self.labels = dict(config), list(labels)
        self.sources = list(sources)
        if not daemon_id:
            from genrecast.daemon.naming import default_daemon_id

            daemon_id = default_daemon_id()
        self.daemon_id = daemon_id
        self._impls = {}
        for hook_name in ("genrecast_sink_check", "genrecast_sink_start", "genrecast_sink_event", "genrecast_sink_stop",
                          "genrecast_sink_reopen", "genrecast_sink_stats"):
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin is plugin:
                    self._impls[hook_name] = impl
        if "genrecast_sink_event" not in self._impls:
            raise SinkConfigError(f"plugin {name!r} is not a sink (it does not implement genrecast_sink_event)")

    def _call(self, hook_name: str, **kwargs: Any) -> Any:
        impl = self._impls.get(hook_name)
        if impl is None:
            return None
        return impl.function(*[kwargs[arg] for arg in impl.argnames])

    def check(self) -> bool:
        """Check the settings (:func:`~genrecast.plugins.hookspecs.genrecast_sink_check`);
        False when the sink has no such hook. Raises :class:`SinkConfigError` if they are wrong."""
        if "genrecast_sink_check" not in self._impls:
            return False
        self._call("genrecast_sink_check", config=dict(self.config))
        return True

    def start(self) -> None:
        self._call("genrecast_sink_start", config=dict(self.config), labels=list(self.labels),
                   sources=list(self.sources), daemon_id=self.daemon_id)

    def handle(self, event: GenreEvent) -> None:
        self._call("genrecast_sink_event", event=event)

    def stop(self, deadline_seconds: float) -> None:
        self._call("genrecast_sink_stop", deadline_seconds=deadline_seconds)

    def reopen(self) -> None:
        self._call("genrecast_sink_reopen")

    def stats(self) -> dict[str, Any]:
        return self._call("genrecast_sink_stats") or {}

    def __repr__(self) -> str:
        return f"PluginSink({self.name!r})"


def build_sinks(names: Sequence[str], settings: Mapping[str, Mapping[str, Any]], labels: Sequence[str],
                pm: pluggy.PluginManager | None = None, sources: Sequence[str] = (),
                daemon_id: str = "") -> list[PluginSink]:
    """The sinks named in ``names`` (in that order), each with ``settings[name]`` (``{}`` if
    absent), the model's ``labels``, the configured source names and the daemon id (empty: the
    host name's; see :func:`~genrecast.plugins.hookspecs.genrecast_sink_start`). Not started
    yet: :meth:`Dispatcher.start` starts them, and a sink's settings are validated then.

    ``pm`` defaults to :func:`~genrecast.plugins.manager.make_plugin_manager` (fresh
    built-in instances and the allowed entry-point plugins). Raises
    :class:`~genrecast.plugins.SinkConfigError` for an unknown or repeated name.
    """
    from genrecast.plugins.manager import make_plugin_manager

    pm = pm or make_plugin_manager()
    if not names:
        raise SinkConfigError("no sink chosen; use --sink stdout (or mqtt, logfile, a plugin's)")
    sinks = []
    for name in names:
        if any(s.name == name for s in sinks):
            raise SinkConfigError(f"sink {name!r} is named twice")
        plugin = pm.get_plugin(name)
        if plugin is None:
            raise SinkConfigError(_missing_sink(name, pm))
        sinks.append(PluginSink(name, plugin, pm, settings.get(name, {}), labels, sources, daemon_id))
    return sinks


def _missing_sink(name: str, pm: pluggy.PluginManager) -> str:
    """Why no sink ``name`` is registered, and the fix: a plugin that is installed but did not
    load, one that ``GENRECAST_PLUGINS`` leaves out, or a name nothing installed has."""
    from genrecast.plugins.manager import PLUGINS_ENV, installed_plugins, sink_names

    available = ", ".join(sink_names(pm))
    failed = getattr(pm, "failed", {})
    if name in failed:
        return f"sink {name!r} is installed but did not load ({failed[name]}); fix or reinstall it (genrecast plugins shows why)"
    if name in (installed := installed_plugins()):
        return (f"sink {name!r} (from {installed[name]}) is installed but {PLUGINS_ENV} leaves it out; "
                f"add {name} to {PLUGINS_ENV} or unset it")
    return (f"unknown sink {name!r}; available: {available} "
            "(a third-party sink must be installed into this environment: pip install it, then genrecast plugins lists it)")
