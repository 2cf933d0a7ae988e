"""The ``mqtt`` sink: the client thread, its connection and its queue. What it publishes after
each connect and for each event is in :mod:`genrecast.plugins.mqtt_publishing`; topics, payloads
and Home Assistant discovery in :mod:`genrecast.plugins.ha_discovery`; its settings in
:mod:`genrecast.plugins.mqtt_settings`; size limits and disconnect reasons in
:mod:`genrecast.plugins.mqtt_guard`; reading back what it left retained in
:mod:`genrecast.plugins.mqtt_readback`.

One thread owns the paho client (MQTT 5: network loop, reconnects, publishing), so paho is
never used from two threads. While the broker is away, events wait in a bounded queue
(``queue_size``; beyond it the oldest are dropped and counted) and are published in order
after the reconnect: at most ``INFLIGHT_WINDOW`` events are ever handed to paho
unacknowledged; paho re-sends those first on reconnect, and new ones follow only when they
are acknowledged, so order holds across outages.

After each connect the sink reads back what it left retained last time: configs of sources
no longer configured (and of the pre-``daemon_id`` layout of this host) are deleted, and the
last genre of each source is remembered, so a restart does not announce a genre change that
did not happen. States and genre changes wait for that read-back (at most a few seconds).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from typing import Any

from genrecast.daemon.backoff import Backoff
from genrecast.daemon.events import GenreEvent
from genrecast.plugins import hookimpl
from genrecast.plugins.ha_discovery import Topics
from genrecast.plugins.dispatcher import DEFAULT_ERROR_LOG_INTERVAL_SECONDS, RateLimitedLog
from genrecast.plugins.mqtt_guard import ConnectionWatch
from genrecast.plugins.mqtt_publishing import INFLIGHT_WINDOW, MqttPublishing
from genrecast.plugins.mqtt_readback import ReadBack, legacy_configs
from genrecast.plugins.mqtt_throttle import StateThrottle
from genrecast.plugins.mqtt_settings import MqttSettings

__all__ = ["INFLIGHT_WINDOW", "MqttSettings", "MqttSink"]

log = logging.getLogger(__name__)

LOOP_SECONDS = 0.05
"""Longest wait of one network-loop turn (bounds the latency of a queued event)."""
NOT_CONNECTED_YET = "not connected yet"
"""Why events wait before any connection was made."""
STABLE_SECONDS = 10.0
"""A connection up this long resets the reconnect backoff (quickly lost ones keep backing off)."""


class MqttSink(MqttPublishing):
    """Publishes events to an MQTT broker (paho-mqtt 2.x, MQTT 5); never raises on broker trouble."""

    def __init__(self) -> None:
        self.settings: MqttSettings | None = None
        self.topics: Topics | None = None
        self.labels: list[str] = []
        self.sources: list[str] = []
        self._sources_known = False
        self.daemon_id = ""
        self._queue: deque[GenreEvent] = deque()
        self._queue_lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._stop_deadline_monotonic = float("inf")
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._socket_open = False
        self.connected = False
        self._just_connected = False
        self._resync = False
        self._resend_discovery = False
        self._pending_mids: dict[int, tuple[str, int]] = {}
        self._early_acks: set[int] = set()
        self._latest: dict[str, GenreEvent] = {}
        self._throttle: StateThrottle[GenreEvent] = StateThrottle(1.0)
        self._fresh: set[str] = set()
        self._discovered: set[str] = set()
        self._readback: ReadBack | None = None
        self._max_packet_bytes: int | None = None
        self._reported_sizes: set[str] = set()
        self._watch = ConnectionWatch("")
        self._last_error: str | None = None
        self._error_repeats = 0
        self.connections = 0
        self.connect_attempts = 0
        self.events_published = 0
        self.offline_dropped = 0
        self._drops_log = RateLimitedLog(log, DEFAULT_ERROR_LOG_INTERVAL_SECONDS)
        self.refused = 0
        self.events_unsent = 0
        """Events the broker never got: too large for it, refused by it, or failed to publish."""
        self._offline_reason = NOT_CONNECTED_YET
        """Why the sink is not connected, in words, for the closing line."""

    # -- hooks -------------------------------------------------------------------------
    @hookimpl
    def genrecast_sink_check(self, config: dict[str, Any]) -> None:
        MqttSettings.from_dict(config)

    @hookimpl
    def genrecast_sink_start(self, config: dict[str, Any], labels: list[str], sources: list[str], daemon_id: str) -> None:
        self.start(MqttSettings.from_dict(config), labels, sources, daemon_id)

    @hookimpl
    def genrecast_sink_event(self, event: GenreEvent) -> None:
        with self._queue_lock:
            if len(self._queue) >= (self.settings.queue_size if self.settings else 1):
                self._queue.popleft()
                self.offline_dropped += 1
                self._drops_log.log(logging.WARNING, "MQTT: the queue of %d events waiting for the broker is full, so "
                                    "the oldest are dropped (%d so far; raise mqtt.queue_size to keep more)",
                                    self.settings.queue_size, self.offline_dropped)
            self._queue.append(event)

    @hookimpl
    def genrecast_sink_stop(self, deadline_seconds: float) -> None:
        self.stop(deadline_seconds)

    @hookimpl
    def genrecast_sink_stats(self) -> dict[str, Any]:
        waiting = self._events_waiting()
        return {"connected": self.connected, "reconnects": max(0, self.connections - 1),
                "connect_attempts": self.connect_attempts, "published": self.events_published,
                "waiting": waiting, "offline_dropped": self.offline_dropped, "refused": self.refused,
                "events_unsent": self.events_unsent,
                "takeovers": self._watch.takeovers,
                # added to the dispatcher's own counters (genrecast_sink_dropped / genrecast_sink_queue_depth)
                "dropped": self.offline_dropped + self.events_unsent, "queue_depth": waiting}

    def _events_waiting(self) -> int:
        """Events queued or handed to paho and not yet acknowledged (states and the like not counted)."""
        return len(self._queue) + sum(1 for topic, _ in list(self._pending_mids.values()) if topic.endswith("/event"))

    # -- life cycle --------------------------------------------------------------------
    def start(self, settings: MqttSettings, labels: list[str], sources: list[str] | None = None, daemon_id: str = "") -> None:
        """Start the client thread; it connects (and reconnects) in the background.
        ``sources``: the configured source names (their discovery goes out at once, and other
        sources' retained configs are deleted; none at all, a fleet member whose share is empty:
        every retained config of this daemon is deleted; None, not known: neither). ``daemon_id``:
        see :func:`genrecast.daemon.naming.default_daemon_id` (its default when empty)."""
        if self._thread is not None:
            raise RuntimeError("this MQTT sink is already started")
        from genrecast.daemon.naming import default_daemon_id

        self.settings, self.labels, self.sources = settings, list(labels), list(sources or [])
        self._sources_known = sources is not None
        self.daemon_id = daemon_id or default_daemon_id()
        self.topics = Topics(settings.prefix, self.daemon_id, settings.discovery_prefix)
        self._throttle = StateThrottle(settings.state_interval_seconds)
        self._watch = ConnectionWatch(settings.effective_client_id(self.daemon_id), explicit=bool(settings.client_id))
        self._readback = ReadBack(self.topics, legacy_configs(settings.discovery_prefix, settings.client_id),
                                  settings.discovery)
        self._thread = threading.Thread(target=self._run, name="mqtt-sink", daemon=True)
        self._thread.start()
        log.info("MQTT sink: publishing to %s:%d under %s/ as client %s", settings.host, settings.port,
                 self.topics.root, self._watch.client_id)

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

    # -- client thread: connection -----------------------------------------------------
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

        s, t = self.settings, self.topics
        assert s is not None and t is not None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._watch.client_id, protocol=mqtt.MQTTv5)
        client.enable_logger(logging.getLogger("genrecast.plugins.mqtt_sink.paho"))
        client.max_inflight_messages_set(INFLIGHT_WINDOW)
        client.max_queued_messages_set(0)  # unbounded in paho; our window keeps it at INFLIGHT_WINDOW + a few
        client.connect_timeout = s.connect_timeout_seconds
        client.will_set(t.status, "offline", qos=1, retain=True)
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
            self._offline_reason = f"the broker refused the connection: {reason_code}"
            self._report(logging.ERROR, f"MQTT broker {s.host}:{s.port} refused the connection: {reason_code}"
                         f" (check username/password/client_id); retrying")
            return
        self.connected, self._just_connected = True, True
        self.connections += 1
        self._last_error = None
        self._max_packet_bytes = getattr(properties, "MaximumPacketSize", None)
        self._watch.connected()
        log.info("MQTT: connected to %s:%d%s", s.host, s.port, " (reconnected)" if self.connections > 1 else "")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        s = self.settings
        assert s is not None
        was = self.connected
        self.connected = False
        if not was or self._stop_requested.is_set():
            return
        why = self._watch.disconnected(getattr(reason_code, "value", None))
        # paho gives "Unspecified error" (128) for a socket the broker or the network closed
        said = "the broker went away or the network dropped" if getattr(reason_code, "value", None) == 128 else reason_code
        self._offline_reason = f"the connection was lost ({said})"
        log.log(logging.DEBUG if self._watch.flapping else logging.WARNING,
                "MQTT: lost the connection to %s:%d (%s); reconnecting, events wait in a queue of %d",
                s.host, s.port, said, s.queue_size)
        if why:
            log.error("MQTT: %s", why)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        info = self._pending_mids.pop(mid, None)
        if info is None:
            self._early_acks.add(mid)
        elif getattr(reason_code, "is_failure", False):
            self.refused += 1
            topic, size = info
            self.events_unsent += topic.endswith("/event")
            self._report_once(f"refused:{topic.rsplit('/', 1)[-1]}",
                              f"MQTT: the broker refused the {size}-byte message to {topic}: {reason_code}; skipped")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        assert self._readback is not None
        if self._readback.is_own(message.topic):
            if self._readback.handle(message):  # the marker: everything retained is in
                current = {topic for source in self.sources for topic in self._discovery(source)}
                self._readback.finish(self._client, self._publish, current if self._sources_known else None)
        elif message.payload.strip().lower() == b"online":
            log.info("MQTT: Home Assistant came online; re-sending discovery")
            self._resend_discovery = True

    def _connect_once(self) -> bool:
        s = self.settings
        assert s is not None
        self.connect_attempts += 1
        if self._client is None:
            try:
                self._client = self._make_client()
            except (OSError, ValueError) as exc:  # unreadable or invalid CA, certificate or key file
                self._offline_reason = f"TLS setup failed: {exc}"
                self._report(logging.ERROR, f"MQTT: TLS setup failed (ca_file {s.ca_file or '-'}, cert_file "
                             f"{s.cert_file or '-'}, key_file {s.key_file or '-'}): {exc}; retrying")
                self._client = None
                return False
        try:
            s.connect(self._client)
        except (OSError, ValueError) as exc:
            what = "TLS handshake failed with" if isinstance(exc, ssl.SSLError) else "cannot connect to"
            self._offline_reason = f"{what} {s.host}:{s.port}: {exc}"
            self._report(logging.ERROR, f"MQTT: {what} {s.host}:{s.port}: {exc}; retrying")
            return False
        self._socket_open = True
        if self._offline_reason == NOT_CONNECTED_YET:  # until the CONNACK: a broker that takes the socket and hangs
            self._offline_reason = f"{s.host}:{s.port} took the connection but never answered it (no CONNACK)"
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
                    if self._watch.lasted() >= STABLE_SECONDS:
                        backoff.reset()
                        self._watch.stable()
                    if self._just_connected:
                        self._after_connect()
                    self._pump()
            self._shutdown()
        except Exception:  # never let the client thread die silently
            log.exception("MQTT sink thread failed")
            self.connected = False

    def _shutdown(self) -> None:
        s, t = self.settings, self.topics
        assert s is not None and t is not None
        deadline = self._stop_deadline_monotonic
        client = self._client
        if client is not None and self._socket_open:
            while self.connected and (self._queue or self._pending_mids or self._resync
                                      or not self._readback.done) \
                    and time.monotonic() < deadline:
                if client.loop(timeout=LOOP_SECONDS) != 0:
                    break
                if self.connected:
                    self._pump()
            if self.connected:
                self._publish_due_states(everything=True)
                self._publish(t.status, "offline", qos=1, retain=True)
                while self.connected and self._pending_mids and time.monotonic() < deadline:
                    if client.loop(timeout=LOOP_SECONDS) != 0:
                        break
                client.disconnect()
                flush_until = time.monotonic() + 1.0
                while client.want_write() and time.monotonic() < flush_until:
                    if client.loop(timeout=LOOP_SECONDS) != 0:
                        break
        left = self._events_waiting()
        if left:
            log.warning("MQTT: stopped with %d events undelivered (%s)", left,
                        "still connected when the shutdown deadline passed" if self.connected else self._offline_reason)
        self.connected = False
        self._socket_open = False
