"""Configuration: built-in defaults < TOML file < ``GENRECAST_*`` environment < flags.

:func:`load_config` is the one place the layers merge. Every value remembers
where it came from, so ``genrecast config show`` can say so (secrets redacted),
and ``genrecast config check`` lists every problem at once.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from genrecast.daemon.config_keys import DEFAULT_CONFIG_PATH, ENV_PREFIX, KEYS, REDACTED  # noqa: F401 - re-exported


class ConfigError(ValueError):
    """The configuration has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Config:
    """The merged configuration: values and where each came from."""

    values: dict[str, Any]
    origins: dict[str, str]
    path: Path | None = None
    problems: list[str] = field(default_factory=list)
    plugin_sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Settings of third-party sinks, passed through as they are (:mod:`genrecast.daemon.plugin_config`)."""
    plugin_origins: dict[str, str] = field(default_factory=dict)
    """Where each plugin setting (``section.key``) came from."""
    warnings: list[str] = field(default_factory=list)
    """Things that are not wrong for certain: a ``GENRECAST_*`` variable one typo from a setting's,
    TLS files given while TLS is off."""

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def section(self, name: str) -> dict[str, Any]:
        """The keys of one section, without the section prefix (e.g. ``mqtt`` for a sink)."""
        prefix = name + "."
        own = {k[len(prefix):]: v for k, v in self.values.items() if k.startswith(prefix)}
        return own or dict(self.plugin_sections.get(name, {}))

    def shown(self, key: str, value: Any) -> str:
        """``value`` of ``key`` as ``config show`` prints it: as text, with what an empty or 0 value
        stands for (``(empty: the host name)``, ``0 (never rotates)``)."""
        means = KEYS[key].empty_means if key in KEYS else ""
        if means and value == "":
            return f"(empty: {means})"
        text = value if isinstance(value, str) else repr(value)
        return f"{text} ({means})" if means and value == 0 and not isinstance(value, bool) else text

    def show(self) -> list[tuple[str, Any, str]]:
        """(key, value, origin) rows with secrets redacted (passwords, plugin keys named like
        secrets, and credentials in source URLs and in plugins' URL values); values as the
        configuration holds them (str, int, float, bool, list)."""
        from genrecast.daemon.redact import redact_text

        rows = []
        for key in KEYS:
            value = self.values[key]
            if KEYS[key].secret and value:
                value = REDACTED
            elif key == "sources" and isinstance(value, list):  # NAME=URL too
                value = [redact_text(v) if isinstance(v, str) else v for v in value]
            rows.append((key, value, self.origins[key]))
        from genrecast.daemon.plugin_config import is_secret

        for section, values in sorted(self.plugin_sections.items()):
            for leaf, value in sorted(values.items()):
                key = f"{section}.{leaf}"
                shown = REDACTED if is_secret(key) and value else redact_text(value) if isinstance(value, str) else value
                rows.append((key, shown, self.plugin_origins.get(key, "")))
        return rows


def _flatten(doc: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in doc.items():
        if name == "sources" and isinstance(value, list):
            specs = []
            for item in value:
                spec = item.get("spec") if isinstance(item, dict) else item
                given = item.get("name") if isinstance(item, dict) else None
                extra = sorted(set(item) - {"name", "spec"}) if isinstance(item, dict) else []
                if extra:  # a typo (nmae) would rename the source, and its MQTT topics with it, without a word
                    shared = [f"input.{k}" for k in extra if f"input.{k}" in KEYS]
                    problems.append(f"sources: a [[sources]] entry takes name and spec only, not {', '.join(map(repr, extra))}"
                                    + (f" ({' and '.join(shared)} {'are' if len(shared) > 1 else 'is'} set for every source "
                                       f"under [input])" if shared else ""))
                    continue
                if not isinstance(spec, str):
                    problems.append("sources: each entry needs a spec string, e.g. [[sources]] spec = \"mic\"")
                elif given is not None and (not isinstance(given, str) or not given.strip() or any(c in given for c in "=:/\\")):
                    problems.append(f"sources: name {given!r} of {spec!r} must be a non-empty string without = : / or \\")
                else:
                    specs.append(f"{given.strip()}={spec}" if given else spec)
            flat["sources"] = specs
        elif isinstance(value, dict):
            for key, inner in value.items():
                flat[f"{name}.{key}"] = inner
        else:
            flat[name] = value
    return flat


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(path: Path | None, key: str) -> str:
    """The problem with a file key that is neither genrecast's nor a plugin's: a likely typo of one
    of genrecast's keys, or the section of a sink plugin that is not installed."""
    section, _, leaf = key.partition(".")
    if suggestion := _suggest(key):
        return f"{path}: unknown key {key!r}{suggestion}"
    if leaf and section not in {k.partition(".")[0] for k in KEYS}:
        return (f"{path}: unknown key {key!r}: [{section}] is not a section of genrecast's, and no installed sink plugin "
                f"is called {section!r}; install the plugin it is for (`genrecast plugins` lists them) or remove the section")
    return f"{path}: unknown key {key!r}"


def _coerce_env(key: str, raw: str) -> Any:
    kind = KEYS[key].type
    types = kind if isinstance(kind, tuple) else (kind,)
    if list in types:
        if raw.lstrip().startswith("["):  # a TOML array: entries may hold commas
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"is not a TOML array of strings ({exc}); e.g. '[\"a.wav\", \"b,c.wav\"]'") from None
            if not all(isinstance(v, str) for v in value):
                raise ValueError("expects an array of strings")
            return value
        return [part.strip() for part in raw.split(",") if part.strip()]
    if bool in types:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expects true or false, not {raw!r}")
    number = int if int in types and float not in types else float if float in types else None
    if number is None:
        return raw
    try:
        return number(raw)
    except ValueError:
        raise ValueError(f"expects {'a whole number' if number is int else 'a number'}, not {raw!r}") from None


def env_name(key: str) -> str:
    """``mqtt.host`` → ``GENRECAST_MQTT_HOST``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def _validate(key: str, value: Any, origin: str, problems: list[str]) -> None:
    spec = KEYS[key]
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        problems.append(f"{key} ({origin}): expected {' or '.join(t.__name__ for t in types)}, got {type(value).__name__} {value!r}")
        return
    if spec.type is list and not all(isinstance(v, str) for v in value):
        problems.append(f"{key} ({origin}): expected a list of strings")
        return
    if spec.check and (message := spec.check(value)):
        problems.append(f"{key} ({origin}): {value!r} {message}")
    if spec.must_exist and value:
        from genrecast.daemon.install import path_problem, sandbox_note

        if problem := path_problem(value):  # a folder on the way this user may not enter
            problems.append(f"{key} ({origin}): {problem}")
        elif not Path(value).exists():
            note = sandbox_note(value)
            problems.append(f"{key} ({origin}): {value} does not exist" + (f" for the service: {note}" if note else ""))
        elif spec.must_exist == "file" and not Path(value).is_file():
            problems.append(f"{key} ({origin}): {value} is not a file; give the file's path")
        elif spec.must_exist == "folder" and not Path(value).is_dir():
            problems.append(f"{key} ({origin}): {value} is not a folder; give the bundle's folder")


def _unreadable(path: Path, exc: OSError) -> str:
    """The problem with a config file this user may not read (or whose folder it may not enter)."""
    return (f"config file {path}: cannot read it ({exc.strerror}); run as a user who may read it (e.g. sudo), "
            "or give another with --config FILE")


def load_config(path: Path | None = None, flags: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Config:
    """Merge defaults, the TOML file at ``path`` (default :data:`DEFAULT_CONFIG_PATH` if it
    exists), ``GENRECAST_*`` variables and ``flags`` (``None`` values are ignored).

    Problems are collected in ``Config.problems``; :func:`require_valid` raises them.
    """
    env = os.environ if env is None else env
    values = {k: spec.default for k, spec in KEYS.items()}
    origins = {k: "default" for k in KEYS}
    problems: list[str] = []
    explicit = path is not None or bool(env.get(ENV_PREFIX + "CONFIG"))
    path = Path(path or env.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_PATH)
    used_path = None
    unknown: dict[str, Any] = {}
    try:
        is_file = path.is_file()
    except OSError as exc:  # a folder this user may not enter
        problems.append(_unreadable(path, exc))
        is_file = explicit = False
    if is_file:
        used_path = path
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # the byte-order mark Notepad writes is no TOML error
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: not valid TOML ({exc})")
            doc = {}
        except OSError as exc:
            problems.append(_unreadable(path, exc))
            doc = {}
        for key, value in _flatten(doc, problems).items():
            if key not in KEYS:
                unknown[key] = value
                continue
            values[key], origins[key] = value, f"file {path}"
    elif explicit:
        given_by = "unset GENRECAST_CONFIG" if env.get(ENV_PREFIX + "CONFIG") and path == Path(env[ENV_PREFIX + "CONFIG"]) else "drop --config"
        if path.is_dir():
            problems.append(f"config file {path} is a folder; give the TOML file in it (e.g. {path / 'config.toml'})")
        elif path.exists():
            problems.append(f"config file {path} is not a regular file; give a TOML file (see systemd/config.example.toml)")
        else:
            problems.append(f"config file {path} does not exist; create it (see systemd/config.example.toml) or {given_by}")
    for key in KEYS:
        name = env_name(key)
        if name in env:
            try:
                values[key], origins[key] = _coerce_env(key, env[name]), f"env {name}"
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
    for key, value in (flags or {}).items():
        if value is not None:
            values[key], origins[key] = value, "flag"
    from genrecast.daemon.plugin_config import env_prefix, merge_plugin_settings, plugin_names

    plugins = plugin_names(values["sinks"], {k.partition(".")[0] for k in KEYS})
    plugin = merge_plugin_settings(unknown, f"file {path}", plugins, env, ENV_PREFIX)
    problems += [_unknown_key(path, key) for key in plugin.unknown]
    problems += plugin.problems
    plugin_env = tuple(env_prefix(name, ENV_PREFIX) for name in plugins)
    for key in KEYS:
        _validate(key, values[key], origins[key], problems)
    if not values["sources"]:
        problems.append("sources: at least one source is needed")
    elif isinstance(values["sources"], list) and all(isinstance(v, str) for v in values["sources"]):
        from genrecast.daemon.naming import source_name_problems

        problems += source_name_problems(values["sources"])
    shared_client_id = [
        f"mqtt.client_id ({origins['mqtt.client_id']}) is {values['mqtt.client_id']!r} in a fleet (shard {values['shard']}): "
        "a broker keeps one connection per client id, so members that share it knock each other off; leave it empty "
        "(each member gets genrecast-<daemon_id>) unless every member sets its own"
    ] if values["shard"] and values["mqtt.client_id"] and "mqtt" in (values["sinks"] or ()) else []
    unused_tls = [k for k in ("mqtt.ca_file", "mqtt.cert_file", "mqtt.key_file") if values[k]] if values["mqtt.tls"] is False else []
    tls_warning = [f"{', '.join(unused_tls)} set but mqtt.tls is false, so unused: set mqtt.tls = true "
                   "(GENRECAST_MQTT_TLS=true) to connect with TLS"] if unused_tls else []
    env_warnings = [w for w in unknown_env_warnings(env) if not w.startswith(plugin_env)]  # a plugin's own variable
    return Config(values=values, origins=origins, path=used_path, problems=problems, plugin_sections=plugin.sections,
                  plugin_origins=plugin.origins,
                  warnings=env_warnings + tls_warning + shared_client_id + _missing_credential(values, env))


def _missing_credential(values: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """A warning when the MQTT login has a user name, no password is set anywhere else, and
    ``$CREDENTIALS_DIRECTORY`` (systemd's, or a mounted Kubernetes Secret) holds no ``mqtt_password``:
    a Secret key named otherwise was ignored, and the broker then refused the login as "Not authorized"."""
    from genrecast.plugins.mqtt_settings import CREDENTIAL_NAME

    creds, sinks = env.get("CREDENTIALS_DIRECTORY"), values["sinks"]
    if (not isinstance(sinks, (list, tuple)) or "mqtt" not in sinks  # (a wrong type is a problem of its own)
            or not values["mqtt.username"] or values["mqtt.password"]
            or values["mqtt.password_file"] or not creds or not os.path.isdir(creds)
            or os.path.exists(os.path.join(creds, CREDENTIAL_NAME))):
        return []
    try:
        held = sorted(n for n in os.listdir(creds) if not n.startswith(".."))  # kubelet's ..data, ..timestamp
    except OSError:
        held = []
    holds = f"it holds {', '.join(held)}" if held else "it is empty"
    return [f"mqtt.username is set but no password: $CREDENTIALS_DIRECTORY ({creds}) holds no {CREDENTIAL_NAME} ({holds}); "
            f"name the Secret's key (or the LoadCredential= credential) {CREDENTIAL_NAME}"]


#: ``GENRECAST_*`` variables that are not configuration keys but mean something elsewhere.
OTHER_ENV = ("CONFIG", "CACHE_DIR", "PLUGINS", "BUNDLE", "LOG_LEVEL", "TEST_DATA", "HA_VERSION", "HA_VENV")


def unknown_env_warnings(env: dict[str, str] | os._Environ) -> list[str]:
    """One line per ``GENRECAST_*`` variable that is neither a key's (:func:`env_name`) nor one of
    :data:`OTHER_ENV` but close to one of them (a typo, ignored otherwise), naming the nearest.
    Names close to none are left alone: a plugin may read its own variables."""
    known = {env_name(k) for k in KEYS} | {ENV_PREFIX + name for name in OTHER_ENV}
    lines = []
    for name in sorted(n for n in env if n.startswith(ENV_PREFIX) and n not in known):
        if close := difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8):
            lines.append(f"{name} is not a genrecast setting and is ignored; did you mean {close[0]}?")
    return lines


def world_readable_secret(config: Config) -> str | None:
    """A warning if the config file holds a secret (a password, or credentials in a source
    URL) and other users can read it."""
    from genrecast.daemon.naming import split_named
    from genrecast.daemon.redact import has_secret

    in_file = [k for k, s in KEYS.items() if config.values[k] and config.origins[k].startswith("file")
               and (s.secret or (k == "sources" and any(isinstance(v, str) and has_secret(split_named(v)[1])
                                                      for v in config.values[k])))]
    if config.path is None or not in_file:
        return None
    if config.path.stat().st_mode & 0o004:
        if in_file == ["sources"]:
            return f"{config.path} holds credentials in a source URL and is readable by every user; chmod 640 it"
        return (f"{config.path} holds a password and is readable by every user: move it to mqtt.password_file, or for "
                "the service to /etc/genrecast/mqtt_password (mode 600, handed over by LoadCredential=), and leave "
                "the config without secrets (the service's dynamic user must read it, so chmod 640 would stop it)")
    return None


def require_valid(config: Config) -> Config:
    """Raise :class:`ConfigError` listing every problem, if any."""
    if config.problems:
        raise ConfigError(config.problems)
    return config
