"""The ``mqtt`` sink: events, retained state, status and Home Assistant discovery.

Topics (``prefix`` defaults to ``genrecast``; ``<source>`` is the source name with any
character outside ``A-Za-z0-9_-`` replaced by ``_``):

* ``<prefix>/<source>/event``  every event, ``event.to_json()``, QoS ``qos``, not retained;
* ``<prefix>/<source>/state``  the smoothed state (:func:`state_payload`), retained,
  published when the state genre changes and every ``state_interval_seconds``;
* ``<prefix>/status``          ``online`` (retained) on connect; ``offline`` as the last
  will and on a clean stop;
* ``<discovery_prefix>/sensor/<node>/<source>_genre/config`` and ``..._confidence/config``
  Home Assistant discovery (retained), re-sent when ``<discovery_prefix>/status`` says ``online``.

One thread owns the paho client (network loop, reconnects, publishing), so paho is
never used from two threads. While the broker is away, events wait in a bounded
queue (``queue_size``; beyond it the oldest are dropped and counted) and are
published in order after the reconnect: at most ``INFLIGHT_WINDOW`` events are ever
handed to paho unacknowledged; paho re-sends those first on reconnect, and new ones
follow only when they are acknowledged, so order holds across outages.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from genrecast.daemon.backoff import Backoff
from genrecast.daemon.events import GenreEvent
from genrecast.plugins import hookimpl
from genrecast.plugins.manager import genrecast_version
from genrecast.plugins.settings import settings_from_dict

log = logging.getLogger(__name__)

INFLIGHT_WINDOW = 20
"""Messages handed to paho and not yet acknowledged, at most (paho's own queue stays this small)."""
LOOP_SECONDS = 0.05
"""Longest wait of one network-loop turn (bounds the latency of a queued event)."""
SUPPORT_URL = "https://github.com/genrecast/genrecast"
EXTRA_STATES = ("silence", "not_music", "uncertain")
ENV_PREFIX = "GENRECAST_MQTT_"
CREDENTIAL_NAME = "mqtt_password"


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker and what to publish. Keys mirror ``[mqtt]`` in the config file."""

    host: str = "localhost"
    """Broker host name or address."""
    port: int = 1883
    """Broker port (8883 is usual with TLS)."""
    username: str = ""
    """User name; empty connects anonymously."""
    password: str = ""
    """Password; prefer ``password_file``, ``GENRECAST_MQTT_PASSWORD`` or the systemd credential ``mqtt_password``."""
    password_file: str = ""
    """File whose first line is the password (read at every connection attempt)."""
    client_id: str = ""
    """MQTT client id; empty means ``genrecast-<hostname>``. Also names the Home Assistant device."""
    prefix: str = "genrecast"
    """Topic prefix."""
    qos: int = 1
    """QoS of event and state messages (0, 1 or 2)."""
    keepalive_seconds: int = 60
    """MQTT keepalive; the broker sends the last will after 1.5 times this of silence."""
    tls: bool = False
    """Connect with TLS."""
    ca_file: str = ""
    """CA certificate file for TLS; empty uses the system CAs."""
    cert_file: str = ""
    """Client certificate file for TLS (with ``key_file``)."""
    key_file: str = ""
    """Client key file for TLS."""
    insecure: bool = False
    """Skip the TLS host-name check (tests only, never in production)."""
    discovery: bool = True
    """Publish Home Assistant discovery messages."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix."""
    state_interval_seconds: float = 60.0
    """Re-publish each source's retained state this often."""
    queue_size: int = 10000
    """Events kept while the broker is away; beyond this the oldest are dropped."""
    reconnect_min_seconds: float = 1.0
    """First reconnect delay; doubles after each failure."""
    reconnect_max_seconds: float = 30.0
    """Longest reconnect delay."""
    connect_timeout_seconds: float = 5.0
    """Longest wait for one TCP/TLS connection attempt."""

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, not {self.port}")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {self.qos}")
        for name in ("prefix", "discovery_prefix"):
            value = getattr(self, name)
            if not value or any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
                raise ValueError(f"{name} {value!r} must be a non-empty topic without + # or a leading/trailing /")
        if not 5 <= self.keepalive_seconds <= 65535:
            raise ValueError(f"keepalive_seconds must be between 5 and 65535, not {self.keepalive_seconds}")
        if self.state_interval_seconds <= 0 or self.queue_size < 1:
            raise ValueError("state_interval_seconds must be positive and queue_size at least 1")
        if not 0 < self.reconnect_min_seconds <= self.reconnect_max_seconds or self.connect_timeout_seconds <= 0:
            raise ValueError("need 0 < reconnect_min_seconds <= reconnect_max_seconds and connect_timeout_seconds > 0")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "MqttSettings":
        """Validated settings from a ``[mqtt]`` section; raises :class:`SinkConfigError`."""
        return settings_from_dict(cls, values, "mqtt")

    def effective_client_id(self) -> str:
        return self.client_id or f"genrecast-{socket.gethostname()}"

    def configure_tls(self, client: Any) -> None:
        """TLS on a paho client when ``tls`` is set (raises ``OSError``/``ValueError`` for a bad file)."""
        if self.tls:
            client.tls_set(ca_certs=self.ca_file or None, certfile=self.cert_file or None, keyfile=self.key_file or None,
                           cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(self.insecure)

    def connect(self, client: Any) -> None:
        """Log in (the password is read anew each time) and connect a paho client."""
        password = self.resolve_password()
        if self.username or password:
            client.username_pw_set(self.username or None, password)
        client.connect(self.host, self.port, self.keepalive_seconds)

    def resolve_password(self, env: Mapping[str, str] | None = None) -> str | None:
        """``password``, else ``password_file``, else ``$GENRECAST_MQTT_PASSWORD``, else the
        systemd credential ``$CREDENTIALS_DIRECTORY/mqtt_password``; None if none is set.
        Raises ``OSError`` if a named file cannot be read."""
        env = os.environ if env is None else env
        if self.password:
            return self.password
        if self.password_file:
            text = Path(self.password_file).read_text()
            return text.splitlines()[0] if text else ""
        if env.get(ENV_PREFIX + "PASSWORD"):
            return env[ENV_PREFIX + "PASSWORD"]
        creds = env.get("CREDENTIALS_DIRECTORY")
        if creds and (Path(creds) / CREDENTIAL_NAME).is_file():
            return (Path(creds) / CREDENTIAL_NAME).read_text().strip("\r\n")
        return None


def topic_name(source: str) -> str:
    """A source name made safe as one topic level."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", source) or "_"


def state_genre(event: GenreEvent) -> str:
    """The state's genre: ``silence`` for a silent window, ``not_music`` while the music
    detector's gate is closed, else the smoothed genre (``uncertain`` until there is one)."""
    if event.state in ("silence", "not_music"):
        return event.state
    return event.smoothed_genre or "uncertain"


def state_payload(event: GenreEvent) -> dict[str, Any]:
    """The retained state of a source after ``event``.

    ``genre`` (a label, ``silence``, ``not_music`` or ``uncertain``), ``probability`` (its smoothed
    probability, 0 for silence/uncertain), ``state`` and ``window_genre``/``window_probability``
    of the latest window, ``utc``, ``seq``, ``model_id`` and ``music_probability`` (the music
    detector's smoothed P(music); null without a detector)."""
    genre = state_genre(event)
    return {
        "source": event.source, "genre": genre,
        "probability": round(event.smoothed_probability, 4) if genre not in EXTRA_STATES else 0.0,
        "state": event.state, "window_genre": event.genre, "window_probability": round(event.probability, 4),
        "utc": event.utc, "seq": event.seq, "model_id": event.model_id,
        "music_probability": event.smoothed_music_probability,
    }


def discovery_messages(settings: MqttSettings, source: str, labels: list[str]) -> dict[str, dict[str, Any]]:
    """Home Assistant discovery ``{config topic: payload}`` for one source: a genre sensor
    (``device_class: enum``) and a confidence sensor (%), both on one device per daemon."""
    node = topic_name(settings.effective_client_id())
    src = topic_name(source)
    state_topic = f"{settings.prefix}/{src}/state"
    version = genrecast_version()
    common = {
        "state_topic": state_topic,
        "json_attributes_topic": state_topic,
        "availability_topic": f"{settings.prefix}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {"identifiers": [node], "name": f"genrecast {settings.effective_client_id()}",
                   "manufacturer": "genrecast", "model": "genre listener", "sw_version": version},
        "origin": {"name": "genrecast", "sw_version": version, "support_url": SUPPORT_URL},
    }
    options = list(dict.fromkeys([*labels, *EXTRA_STATES]))
    base = f"{settings.discovery_prefix}/sensor/{node}"
    return {
        f"{base}/{src}_genre/config": {
            **common, "name": f"{source} genre", "unique_id": f"{node}_{src}_genre",
            "value_template": "{{ value_json.genre }}", "device_class": "enum", "options": options,
            "icon": "mdi:music-note",
        },
        f"{base}/{src}_confidence/config": {
            **common, "name": f"{source} genre confidence", "unique_id": f"{node}_{src}_confidence",
            "value_template": "{{ (value_json.probability * 100) | round(1) }}",
            "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent",
        },
    }


class MqttSink:
    """Publishes events to an MQTT broker (paho-mqtt 2.x); never raises on broker trouble."""

    def __init__(self) -> None:
        self.settings: MqttSettings | None = None
        self.labels: list[str] = []
        self._queue: deque[GenreEvent] = deque()
        self._queue_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._stop_deadline_monotonic = float("inf")
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._socket_open = False
        self.connected = False
        self._just_connected = False
        self._resync = False
        self._resend_discovery = False
        self._pending_mids: set[int] = set()
        self._early_acks: set[int] = set()
        self._latest: dict[str, GenreEvent] = {}
        self._published_state: dict[str, str] = {}
        self._discovered: set[str] = set()
        self._next_state_monotonic = 0.0
        self._last_error: str | None = None
        self._error_repeats = 0
        self.connections = 0
        self.connect_attempts = 0
        self.events_published = 0
        self.offline_dropped = 0

    # -- hooks -------------------------------------------------------------------------
    @hookimpl
    def genrecast_sink_start(self, config: dict[str, Any], labels: list[str]) -> None:
        self.start(MqttSettings.from_dict(config), labels)

    @hookimpl
    def genrecast_sink_event(self, event: GenreEvent) -> None:
        with self._queue_lock:
            if len(self._queue) >= (self.settings.queue_size if self.settings else 1):
                self._queue.popleft()
                self.offline_dropped += 1
            self._queue.append(event)

    @hookimpl
    def genrecast_sink_stop(self, deadline_seconds: float) -> None:
        self.stop(deadline_seconds)

    @hookimpl
    def genrecast_sink_stats(self) -> dict[str, Any]:
        waiting = len(self._queue) + len(self._pending_mids)
        return {"connected": self.connected, "reconnects": max(0, self.connections - 1),
                "connect_attempts": self.connect_attempts, "published": self.events_published,
                "waiting": waiting, "offline_dropped": self.offline_dropped,
                # added to the dispatcher's own counters (genrecast_sink_dropped / genrecast_sink_queue_depth)
                "dropped": self.offline_dropped, "queue_depth": waiting}

    # -- life cycle --------------------------------------------------------------------
    def start(self, settings: MqttSettings, labels: list[str]) -> None:
        """Start the client thread; it connects (and reconnects) in the background."""
        if self._thread is not None:
            raise RuntimeError("this MQTT sink is already started")
        self.settings, self.labels = settings, list(labels)
        # the periodic re-publish refreshes states already sent; its first turn is one interval away,
        # so it never doubles the publish a first event makes anyway
        self._next_state_monotonic = time.monotonic() + settings.state_interval_seconds
        self._thread = threading.Thread(target=self._run, name="mqtt-sink", daemon=True)
        self._thread.start()
        log.info("MQTT sink: publishing to %s:%d under %s/", settings.host, settings.port, settings.prefix)

    def stop(self, deadline_seconds: float) -> None:
        """Publish what is queued (while connected), then ``offline``, then disconnect,
        all within ``deadline_seconds``."""
        if self._thread is None:
            return
        self._stop_deadline_monotonic = time.monotonic() + deadline_seconds
        self._stop_requested.set()
        self._thread.join(deadline_seconds + 1.0)
        if self._thread.is_alive():
            log.warning("MQTT sink did not stop within %.1f s", deadline_seconds)

    # -- client thread -----------------------------------------------------------------
    def _report(self, level: int, message: str) -> None:
        """Log a connection problem once, then again only when it changes or every 60 repeats."""
        if message == self._last_error:
            self._error_repeats += 1
            if self._error_repeats % 60:
                return
            message += f" (repeated {self._error_repeats} times)"
        else:
            self._last_error, self._error_repeats = message, 0
        log.log(level, "%s", message)

    def _make_client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        s = self.settings
        assert s is not None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.effective_client_id(), clean_session=True)
        client.enable_logger(logging.getLogger("genrecast.plugins.mqtt_sink.paho"))
        client.max_inflight_messages_set(INFLIGHT_WINDOW)
        client.max_queued_messages_set(0)  # unbounded in paho; our window keeps it at INFLIGHT_WINDOW + a few
        client.connect_timeout = s.connect_timeout_seconds
        client.will_set(f"{s.prefix}/status", "offline", qos=1, retain=True)
        s.configure_tls(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        s = self.settings
        assert s is not None
        if reason_code.is_failure:
            self._report(logging.ERROR, f"MQTT broker {s.host}:{s.port} refused the connection: {reason_code}"
                         f" (check username/password/client_id); retrying")
            return
        self.connected, self._just_connected = True, True
        self.connections += 1
        self._last_error = None
        log.info("MQTT: connected to %s:%d%s", s.host, s.port, " (reconnected)" if self.connections > 1 else "")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        s = self.settings
        assert s is not None
        was = self.connected
        self.connected = False
        if was and not self._stop_requested.is_set():
            log.warning("MQTT: lost the connection to %s:%d (%s); reconnecting, events wait in a queue of %d",
                        s.host, s.port, reason_code, s.queue_size)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if mid in self._pending_mids:
            self._pending_mids.discard(mid)
        else:
            self._early_acks.add(mid)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.payload.strip().lower() == b"online":
            log.info("MQTT: Home Assistant came online; re-sending discovery")
            self._resend_discovery = True

    def _publish(self, topic: str, payload: str, qos: int, retain: bool) -> bool:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (0, 4):  # MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN (kept by paho for QoS > 0)
            log.warning("MQTT: publish to %s failed (rc %s)", topic, info.rc)
            return False
        if info.mid in self._early_acks:
            self._early_acks.discard(info.mid)
        elif qos > 0 or info.rc == 0:
            self._pending_mids.add(info.mid)
        return True

    def _connect_once(self) -> bool:
        s = self.settings
        assert s is not None
        self.connect_attempts += 1
        if self._client is None:
            try:
                self._client = self._make_client()
            except (OSError, ValueError) as exc:  # unreadable or invalid CA, certificate or key file
                self._report(logging.ERROR, f"MQTT: TLS setup failed (ca_file {s.ca_file or '-'}, cert_file "
                             f"{s.cert_file or '-'}, key_file {s.key_file or '-'}): {exc}; retrying")
                self._client = None
                return False
        try:
            s.connect(self._client)
        except (OSError, ValueError) as exc:
            what = "TLS handshake failed with" if isinstance(exc, ssl.SSLError) else "cannot connect to"
            self._report(logging.ERROR, f"MQTT: {what} {s.host}:{s.port}: {exc}; retrying")
            return False
        self._socket_open = True
        return True

    def _run(self) -> None:
        s = self.settings
        assert s is not None
        backoff = Backoff(initial_seconds=s.reconnect_min_seconds, max_seconds=s.reconnect_max_seconds)
        try:
            while not self._stop_requested.is_set():
                if not self._socket_open:
                    if not self._connect_once():
                        backoff.wait(self._stop_requested)
                        continue
                rc = self._client.loop(timeout=LOOP_SECONDS)
                if rc != 0:
                    self._socket_open, self.connected = False, False
                    backoff.wait(self._stop_requested)
                    continue
                if self.connected:
                    if self._just_connected:
                        backoff.reset()
                        self._after_connect()
                    self._pump()
            self._shutdown()
        except Exception:  # never let the client thread die silently
            log.exception("MQTT sink thread failed")
            self.connected = False

    def _after_connect(self) -> None:
        s = self.settings
        assert s is not None
        self._just_connected = False
        self._resync = True  # paho re-sends unacknowledged events first; new ones wait for them
        self._discovered.clear()
        self._publish(f"{s.prefix}/status", "online", qos=1, retain=True)
        if s.discovery:
            self._client.subscribe(f"{s.discovery_prefix}/status", qos=1)
        self._republish_states()

    def _publish_state(self, event: GenreEvent, force: bool = False) -> None:
        s = self.settings
        assert s is not None
        payload = state_payload(event)
        if force or self._published_state.get(event.source) != payload["genre"]:
            self._publish(f"{s.prefix}/{topic_name(event.source)}/state", json.dumps(payload), qos=s.qos, retain=True)
            self._published_state[event.source] = payload["genre"]

    def _republish_states(self) -> None:
        """Publish every source's latest state again (after a reconnect, for Home Assistant, periodically)."""
        for event in list(self._latest.values()):
            self._publish_state(event, force=True)

    def _discover(self, source: str) -> None:
        s = self.settings
        assert s is not None
        for topic, payload in discovery_messages(s, source, self.labels).items():
            self._publish(topic, json.dumps(payload), qos=1, retain=True)
        self._discovered.add(source)

    def _pump(self) -> None:
        """Hand queued events to paho, in order, keeping at most INFLIGHT_WINDOW unacknowledged."""
        s = self.settings
        assert s is not None
        if self._resend_discovery:
            self._resend_discovery = False
            self._discovered.clear()
            self._republish_states()
        if s.discovery:
            for source in [src for src in self._latest if src not in self._discovered]:
                self._discover(source)
        if self._resync:
            if self._pending_mids:
                return
            self._resync = False
        while len(self._pending_mids) < INFLIGHT_WINDOW:
            with self._queue_lock:
                if not self._queue:
                    break
                event = self._queue.popleft()
            self._latest[event.source] = event
            if s.discovery and event.source not in self._discovered:
                self._discover(event.source)
            if self._publish(f"{s.prefix}/{topic_name(event.source)}/event", event.to_json(), qos=s.qos, retain=False):
                self.events_published += 1
            self._publish_state(event)
        now = time.monotonic()
        if now >= self._next_state_monotonic:
            self._next_state_monotonic = now + s.state_interval_seconds
            self._republish_states()

    def _shutdown(self) -> None:
        s = self.settings
        assert s is not None
        deadline = self._stop_deadline_monotonic
        client = self._client
        if client is not None and self._socket_open:
            while self.connected and (self._queue or self._pending_mids or self._resync) and time.monotonic() < deadline:
                if client.loop(timeout=LOOP_SECONDS) != 0:
                    break
                if self.connected:
                    self._pump()
            if self.connected:
                self._publish(f"{s.prefix}/status", "offline", qos=1, retain=True)
                while self.connected and self._pending_mids and time.monotonic() < deadline:
                    if client.loop(timeout=LOOP_SECONDS) != 0:
                        break
                client.disconnect()
                flush_until = time.monotonic() + 1.0
                while client.want_write() and time.monotonic() < flush_until:
                    if client.loop(timeout=LOOP_SECONDS) != 0:
                        break
        left = len(self._queue) + len(self._pending_mids)
        if left:
            log.warning("MQTT: stopped with %d events undelivered (broker %s)", left,
                        "connected" if self.connected else "unreachable")
        self.connected = False
        self._socket_open = False
