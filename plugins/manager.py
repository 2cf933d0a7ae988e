"""The plugin manager: built-in sinks and entry-point plugins, registered the same way.

Third-party plugins are found through the ``genrecast`` entry-point group::

    [project.entry-points.genrecast]
    beep = "genrecast_beep"

``GENRECAST_PLUGINS`` (comma-separated entry-point or distribution names) limits
which third-party plugins load; empty or unset loads all of them. The built-in
plugins (``stdout``, ``mqtt``, ``logfile``) are always registered; they do nothing
unless chosen as sinks.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Mapping

import pluggy

from genrecast.plugins import PROJECT_NAME, hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT_NAME
PLUGINS_ENV = "GENRECAST_PLUGINS"


def _builtin_factories() -> dict[str, Callable[[], object]]:
    from genrecast.plugins.logfile_sink import LogfileSink
    from genrecast.plugins.mqtt_sink import MqttSink
    from genrecast.plugins.stdout_sink import StdoutSink

    return {"stdout": StdoutSink, "mqtt": MqttSink, "logfile": LogfileSink}


BUILTIN_PLUGINS = ("stdout", "mqtt", "logfile")
"""Names of the built-in plugins (each one a sink)."""


def allowed_plugins(env: Mapping[str, str] | None = None) -> set[str] | None:
    """The names in ``GENRECAST_PLUGINS``, or None (load all) when it is unset or empty."""
    raw = (os.environ if env is None else env).get(PLUGINS_ENV, "")
    names = {part.strip() for part in raw.split(",") if part.strip()}
    return names or None


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering each entry-point plugin's distribution and why a plugin did
    not load (``failed``: plugin name → reason in words), for ``genrecast plugins`` and for
    ``run``'s message about a sink that is installed but broken."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.distributions: dict[str, metadata.Distribution] = {}
        self.failed: dict[str, str] = {}


def make_plugin_manager(load_entrypoints: bool = True, env: Mapping[str, str] | None = None) -> PluginManager:
    """A fresh manager with the hookspecs, new instances of the built-in sinks and the
    allowed entry-point plugins. A plugin that fails to load or implements an unknown
    ``genrecast_*`` hook is logged, recorded in ``failed`` and left out; it never stops the others."""
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for name, factory in _builtin_factories().items():
        pm.register(factory(), name=name)
    if load_entrypoints:
        _load_entrypoints(pm, allowed_plugins(env))
    _check_pending(pm)
    return pm


def installed_plugins() -> dict[str, str]:
    """Entry-point plugin name → its distribution's name, for every installed one (none loaded)."""
    return {ep.name: ep.dist.name if ep.dist is not None else "" for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_entrypoints(pm: PluginManager, allowed: set[str] | None) -> None:
    """Load each allowed entry point itself (by the entry point, not by its name: pluggy's
    ``load_setuptools_entrypoints(name=...)`` takes the first of that name from any distribution)."""
    seen: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist_name = ep.dist.name if ep.dist is not None else ""
        if allowed is not None and ep.name not in allowed and dist_name not in allowed:
            log.debug("plugin %s (%s) not loaded: not in %s", ep.name, dist_name, PLUGINS_ENV)
            continue
        seen.update((ep.name, dist_name))
        if pm.has_plugin(ep.name):
            holder = pm.distributions[ep.name].name if ep.name in pm.distributions else "genrecast (built-in)"
            why = f"the name {ep.name!r} is taken by {holder}"
            log.error("plugin %s from %s not loaded: %s; uninstall one of them, or pick one with %s=%s",
                      ep.name, dist_name, why, PLUGINS_ENV, dist_name)
            pm.failed.setdefault(f"{ep.name} ({dist_name})", why)
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken third-party plugin must not stop the daemon
            why = one_line(f"{type(exc).__name__}: {exc}")
            log.error("plugin %s from %s failed to load: %s", ep.name, dist_name, why)
            pm.failed[ep.name] = f"{dist_name} failed to load: {why}"
            continue
        if ep.dist is not None:
            pm.distributions[ep.name] = ep.dist
    for name in sorted((allowed or set()) - seen):
        log.warning("%s names %r, but no installed plugin has that name", PLUGINS_ENV, name)


def one_line(message: str) -> str:
    """A multi-line message (pluggy's validation errors are three lines) as one line, its lines
    joined by ``; ``, so the plugins table and the error lines keep one line per problem."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def _check_pending(pm: pluggy.PluginManager) -> None:
    """Unregister (with a log line) plugins that implement hooks no spec defines."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin)
            log.error("plugin %s left out: %s", name, one_line(str(exc)))
            if isinstance(pm, PluginManager):
                pm.failed[name] = f"left out: {one_line(str(exc))}"
                pm.distributions.pop(name, None)
            pm.unregister(exc.plugin)


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``genrecast plugins`` shows it."""

    name: str
    """Plugin name (the sink name, for sinks)."""
    version: str
    """Version of the distribution that provides it."""
    distribution: str
    """Distribution (package) name; ``genrecast`` for built-ins."""
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    """Names of the ``genrecast_*`` hooks it implements."""
    sink: bool = False
    """True if it implements ``genrecast_sink_event``."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "distribution": self.distribution,
                "builtin": self.builtin, "sink": self.sink, "hooks": self.hooks}


@functools.cache
def genrecast_version() -> str:
    """The installed genrecast's version (the package's own when not installed)."""
    try:
        return metadata.version("genrecast")
    except metadata.PackageNotFoundError:
        from genrecast.daemon import __version__

        return __version__


def list_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with its version and hooks, built-ins first."""
    dists = getattr(pm, "distributions", {})
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(caller.name for caller in (pm.get_hookcallers(plugin) or []))
        dist = dists.get(name)
        builtin = name in BUILTIN_PLUGINS and dist is None
        infos.append(PluginInfo(
            name=name,
            version=genrecast_version() if dist is None else str(dist.version),
            distribution="genrecast" if dist is None else str(dist.name),
            builtin=builtin, hooks=hooks, sink="genrecast_sink_event" in hooks,
        ))
    return sorted(infos, key=lambda i: (not i.builtin, i.name))


def sink_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of the registered plugins that are sinks."""
    return [info.name for info in list_plugins(pm) if info.sink]
