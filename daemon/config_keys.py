"""The configuration's keys: each one's type, default, allowed values and meaning (:data:`KEYS`),
and the names of the file and variables they come from. :mod:`genrecast.daemon.config` merges
their layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from genrecast.daemon.smoothing import DEFAULT_SILENCE_DBFS

DEFAULT_CONFIG_PATH = Path("/etc/genrecast/config.toml")
ENV_PREFIX = "GENRECAST_"
REDACTED = "********"


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default, allowed range and meaning."""

    type: type | tuple[type, ...]
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None
    secret: bool = False
    must_exist: str = ""
    """For paths: ``"file"`` or ``"folder"``, what a non-empty value must name."""
    empty_means: str = ""
    """What an empty (or 0) value stands for, as ``config show`` prints it beside the value."""


def _range(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _zero_or_range(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if v == 0 or lo <= v <= hi else f"must be 0 or between {lo} and {hi}"


def _choice(*options: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _daemon_id(value: str) -> str | None:
    from genrecast.daemon.naming import daemon_id_problem

    return daemon_id_problem(value)


def _shard(value: str) -> str | None:
    from genrecast.daemon.shard import shard_problem

    return shard_problem(value)


#: Range of ``windowing.hop_seconds`` (and ``--hop-seconds``) apart from 0 (the window length):
#: below 0.1 s a source makes windows faster than they can be classified.
MIN_HOP_SECONDS, MAX_HOP_SECONDS = 0.1, 60.0


#: Every key, as "section.key" ("" section for top-level keys). Sink sections are
#: validated here too, so one check covers the whole file; their defaults are the sink
#: settings' own (a test keeps them equal) and their ranges allow what the sinks allow.
KEYS: dict[str, Key] = {
    "sinks": Key(list, ["stdout"], "Sinks events go to, by name: stdout, mqtt, logfile or a plugin's."),
    "sources": Key(list, ["mic"], "Audio sources: SPEC or NAME=SPEC; SPEC is mic, mic:NAME_OR_INDEX, file:PATH, - or a URL "
                   "(or [[sources]] tables of name = \"...\" and spec = \"...\")."),
    "daemon_id": Key(str, "", "This daemon's id: namespaces its MQTT topics, client id and Home Assistant device "
                     "(empty: the host name; give each daemon on one host its own).", _daemon_id,
                     empty_means="the host name"),
    "shard": Key(str, "", "This member's share of the sources in a fleet: K/N (member K of N, by rendezvous hashing of "
                 "the source names), auto/N (K from a StatefulSet pod's ordinal), empty: every source.", _shard,
                 empty_means="every source"),
    "model.bundle": Key(str, "", "Model bundle directory; empty for the built-in model.", must_exist="folder",
                        empty_means="the built-in model"),
    "model.backend": Key(str, "litert", "Classifier backend: litert (no tensorflow) or keras.", _choice("litert", "keras")),
    "windowing.hop_seconds": Key((int, float), 0.0, "Seconds between window starts; 0 means the window length (a longer "
                                  "hop skips the audio between windows, and the 30-s statistics cover the windows' audio only).",
                                  _zero_or_range(MIN_HOP_SECONDS, MAX_HOP_SECONDS),
                                  empty_means="the window length"),
    "smoothing.silence_dbfs": Key((int, float), DEFAULT_SILENCE_DBFS, "Windows below this RMS level (dBFS) are 'silence'.", _range(-200, 0)),
    "smoothing.min_confidence": Key((int, float), 0.25, "Windows whose top probability is lower are 'uncertain'.", _range(0, 1)),
    "smoothing.windows": Key(int, 5, "K: windows averaged for the smoothed genre.", _range(1, 1000)),
    "smoothing.hold_windows": Key(int, 2, "M: windows a new genre must lead before 'changed'.", _range(1, 1000)),
    "input.realtime": Key(bool, False, "file: sources play at real-time speed."),
    "input.loop": Key(bool, False, "file: sources start again at their end."),
    "input.format": Key(str, "f32le", "stdin source sample format.", _choice("s16le", "f32le")),
    "input.rate": Key(int, 22050, "stdin source sample rate (Hz).", _range(1000, 384000)),
    "input.channels": Key(int, 1, "stdin source channels.", _range(1, 32)),
    "input.stall_seconds": Key((int, float), 10.0, "Restart a source that delivers no audio for this long.", _range(0.5, 3600)),
    "stdout.json": Key(bool, False, "stdout sink prints JSON lines instead of readable lines."),
    "mqtt.host": Key(str, "localhost", "MQTT broker host."),
    "mqtt.port": Key(int, 1883, "MQTT broker port.", _range(1, 65535)),
    "mqtt.username": Key(str, "", "MQTT user name (empty: anonymous).", empty_means="anonymous"),
    "mqtt.password": Key(str, "", "MQTT password (prefer password_file or the systemd credential mqtt_password).", secret=True),
    "mqtt.password_file": Key(str, "", "File holding the MQTT password.", must_exist="file"),
    "mqtt.client_id": Key(str, "", "MQTT client id (empty: genrecast-<daemon_id>).", empty_means="genrecast-<daemon_id>"),
    "mqtt.prefix": Key(str, "genrecast", "Topic prefix."),
    "mqtt.qos": Key(int, 1, "QoS of event and state messages.", _range(0, 2)),
    "mqtt.keepalive_seconds": Key(int, 60, "MQTT keepalive.", _range(5, 65535)),
    "mqtt.tls": Key(bool, False, "Connect with TLS."),
    "mqtt.ca_file": Key(str, "", "CA certificate file for TLS (empty: system CAs).", must_exist="file",
                          empty_means="the system's CAs"),
    "mqtt.cert_file": Key(str, "", "Client certificate for TLS.", must_exist="file"),
    "mqtt.key_file": Key(str, "", "Client key for TLS.", must_exist="file"),
    "mqtt.insecure": Key(bool, False, "Skip TLS host-name verification (never in production)."),
    "mqtt.discovery": Key(bool, True, "Publish Home Assistant discovery."),
    "mqtt.discovery_prefix": Key(str, "homeassistant", "Home Assistant discovery prefix."),
    "mqtt.state_interval_seconds": Key((int, float), 5.0, "Publish each source's state at most this often (a genre change at once).", _range(1, 86400)),
    "mqtt.queue_size": Key(int, 10000, "Events kept while the broker is away; older ones are dropped.", _range(1, 10_000_000)),
    "mqtt.reconnect_min_seconds": Key((int, float), 1.0, "First wait before reconnecting to the broker.", _range(0.05, 3600)),
    "mqtt.reconnect_max_seconds": Key((int, float), 30.0, "Longest wait between reconnects (the backoff doubles up to it).", _range(0.1, 86400)),
    "mqtt.connect_timeout_seconds": Key((int, float), 5.0, "Give up one connection attempt after this long.", _range(0.5, 600)),
    "logfile.path": Key(str, "genrecast-events.jsonl", "Event log file (JSON lines); relative paths go under $LOGS_DIRECTORY if set."),
    "logfile.max_bytes": Key(int, 10_000_000, "Rotate the log at this size; 0 never rotates.", _zero_or_range(1000, 10**12),
                                empty_means="never rotates"),
    "logfile.backups": Key(int, 5, "Rotated logs kept.", _range(0, 1000)),
    "metrics.enabled": Key(bool, False, "Serve Prometheus metrics."),
    "metrics.host": Key(str, "127.0.0.1", "Metrics listen address."),
    "metrics.port": Key(int, 9464, "Metrics listen port.", _range(1, 65535)),
}
