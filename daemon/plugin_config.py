"""Third-party sinks' settings: a plugin's own section of the config file (``[beep]`` for the
``beep`` sink) and ``GENRECAST_<PLUGIN>_<KEY>`` variables, merged in that order and handed to
the plugin's ``genrecast_sink_start`` as they are (the plugin validates them).

A section counts as a plugin's when its name is one of the configured ``sinks`` or an installed
plugin's entry-point name (so a file may keep ``[beep]`` while ``--sink stdout`` turns beep off).
A variable's text is read as a TOML value where it is one (``3``, ``true``, ``["rock", "jazz"]``,
``"quoted"``) and as plain text otherwise (``rock``); text that opens an array, a table or a
quoted string (``[``, ``{``, ``"``) must be one, so a typo there is reported, not taken as text."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

#: Leaf names whose values ``config show`` hides.
SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey")


@dataclass
class PluginSettings:
    """Each plugin section's values and where each came from (``"section.key"`` → origin)."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    """File keys in sections that are neither genrecast's nor a plugin's."""
    problems: list[str] = field(default_factory=list)
    """Variables whose text opens a TOML value that does not parse (see :func:`env_value`)."""


def plugin_names(sinks: Any, builtin_sections: Iterable[str]) -> set[str]:
    """Names whose sections and variables belong to a plugin: the configured sinks and the
    installed entry-point plugins, less genrecast's own sections."""
    from genrecast.plugins.manager import installed_plugins

    names = {s for s in sinks if isinstance(s, str)} if isinstance(sinks, list) else set()
    return (names | set(installed_plugins())) - set(builtin_sections)


def env_prefix(plugin: str, prefix: str) -> str:
    """``beep`` → ``GENRECAST_BEEP_``; ``my-sink`` → ``GENRECAST_MY_SINK_``."""
    return prefix + plugin.upper().replace("-", "_") + "_"


def env_value(raw: str) -> Any:
    """A variable's text as a TOML value where it is one, else the text itself.

    Raises:
        ValueError: the text opens an array, a table or a quoted string (``[``, ``{``, ``"``) but
            is not a TOML value (``["rock", "jazz"`` was silently the plain text before).
    """
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw.lstrip().startswith(("[", "{", '"')):
            raise ValueError(f"is not a TOML value ({exc}); write an array as '[\"rock\", \"jazz\"]', and text that "
                             "starts with [, { or \" as a TOML string: '\"[kitchen] mic\"'") from None
        return raw


def merge_plugin_settings(file_keys: Mapping[str, Any], file_origin: str, names: set[str],
                          env: Mapping[str, str], prefix: str) -> PluginSettings:
    """The plugins' settings from the file's ``section.key`` entries that are not genrecast's
    (``file_keys``) and the environment; keys of other sections go to ``unknown``."""
    out = PluginSettings()
    for key, value in file_keys.items():
        section, _, leaf = key.partition(".")
        if leaf and section in names:
            out.sections.setdefault(section, {})[leaf] = value
            out.origins[key] = file_origin
        else:
            out.unknown.append(key)
    for name in sorted(names):
        start = env_prefix(name, prefix)
        for variable in sorted(v for v in env if v.startswith(start) and len(v) > len(start)):
            leaf = variable[len(start):].lower()
            try:
                out.sections.setdefault(name, {})[leaf] = env_value(env[variable])
            except ValueError as exc:
                out.problems.append(f"{variable}: {exc}")
                continue
            out.origins[f"{name}.{leaf}"] = f"env {variable}"
    return out


def is_secret(key: str) -> bool:
    """Whether ``config show`` hides a plugin key's value (its name holds a word of :data:`SECRET_WORDS`)."""
    leaf = key.partition(".")[2].lower()
    return any(word in leaf for word in SECRET_WORDS)
