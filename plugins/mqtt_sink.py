"""The ``mqtt`` sink: the client thread and its queue. What it publishes (topics, payloads,
Home Assistant discovery) is in :mod:`genrecast.plugins.ha_discovery`; its settings in
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
from genrecast.plugins.ha_discovery import (ENTITY_KINDS, Topics, discovery_messages, genre_change_payload,
                                            state_payload)
from genrecast.plugins.manager import genrecast_version
from genrecast.plugins.mqtt_guard import ConnectionWatch, fit_payload
from genrecast.plugins.mqtt_readback import ReadBack, legacy_configs
from genrecast.plugins.mqtt_throttle import StateThrottle
from genrecast.plugins.mqtt_settings import MqttSettings

__all__ = ["INFLIGHT_WINDOW", "MqttSettings", "MqttSink"]

log = logging.getLogger(__name__)

INFLIGHT_WINDOW = 20
"""Messages handed to paho and not yet acknowledged, at most (paho's own queue stays this small)."""
LOOP_SECONDS = 0.05
"""Longest wait of one network-loop turn (bounds the latency of a queued event)."""
STABLE_SECONDS = 10.0
"""A connection up this long resets the reconnect backoff (quickly lost ones keep backing off)."""


class MqttSink:
    """Publishes events to an MQTT broker (paho-mqtt 2.x, MQTT 5); never raises on broker trouble."""

    def __init__(self) -> None:
        self.settings: MqttSettings | None = None
        self.topics: Topics | None = None
        self.labels: list[str] = []
        self.sources: list[str] = []
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
        self.refused = 0

    # -- hooks -------------------------------------------------------------------------
    @hookimpl
    def genrecast_sink_start(self, config: dict[str, Any], labels: list[str], sources: list[str], daemon_id: str) -> None:
        self.start(MqttSettings.from_dict(config), labels, sources, daemon_id)

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
        waiting = self._events_waiting()
        return {"connected": self.connected, "reconnects": max(0, self.connections - 1),
                "connect_attempts": self.connect_attempts, "published": self.events_published,
                "waiting": waiting, "offline_dropped": self.offline_dropped, "refused": self.refused,
                "takeovers": self._watch.takeovers,
                # added to the dispatcher's own counters (genrecast_sink_dropped / genrecast_sink_queue_depth)
                "dropped": self.offline_dropped, "queue_depth": waiting}

    def _events_waiting(self) -> int:
        """Events queued or handed to paho and not yet acknowledged (states and the like not counted)."""
        return len(self._queue) + sum(1 for topic, _ in list(self._pending_mids.values()) if topic.endswith("/event"))

    # -- life cycle --------------------------------------------------------------------
    def start(self, settings: MqttSettings, labels: list[str], sources: list[str] = (), daemon_id: str = "") -> None:
        """Start the client thread; it connects (and reconnects) in the background.
        ``sources``: the configured source names (their discovery goes out at once, and other
        sources' retained configs are deleted; empty: neither). ``daemon_id``: see
        :func:`genrecast.daemon.naming.default_daemon_id` (its default when empty)."""
        if self._thread is not None:
            raise RuntimeError("this MQTT sink is already started")
        from genrecast.daemon.naming import default_daemon_id

        self.settings, self.labels, self.sources = settings, list(labels), list(sources)
        self.daemon_id = daemon_id or default_daemon_id()
        self.topics = Topics(settings.prefix, self.daemon_id, settings.discovery_prefix)
        self._throttle = StateThrottle(settings.state_interval_seconds)
        self._watch = ConnectionWatch(settings.effective_client_id(self.daemon_id))
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
        log.log(logging.DEBUG if self._watch.flapping else logging.WARNING,
                "MQTT: lost the connection to %s:%d (%s); reconnecting, events wait in a queue of %d",
                s.host, s.port, reason_code, s.queue_size)
        if why:
            log.error("MQTT: %s", why)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        info = self._pending_mids.pop(mid, None)
        if info is None:
            self._early_acks.add(mid)
        elif getattr(reason_code, "is_failure", False):
            self.refused += 1
            topic, size = info
            self._report_once(f"refused:{topic.rsplit('/', 1)[-1]}",
                              f"MQTT: the broker refused the {size}-byte message to {topic}: {reason_code}; skipped")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        assert self._readback is not None
        if self._readback.is_own(message.topic):
            if self._readback.handle(message):  # the marker: everything retained is in
                current = {topic for source in self.sources for topic in self._discovery(source)}
                self._readback.finish(self._client, self._publish, current if self.sources else None)
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

    # -- client thread: publishing -------------------------------------------------------
    def _report_once(self, key: str, message: str) -> None:
        if key not in self._reported_sizes:
            self._reported_sizes.add(key)
            log.warning("%s", message)

    def _publish(self, topic: str, payload: Any, qos: int, retain: bool) -> bool:
        """Publish ``payload`` (str, or a dict sent as JSON), shrunk or skipped if it is over the
        broker's size limit (logged once per kind of topic, with the reason and the size)."""
        fitted = fit_payload(topic, payload, qos, self._max_packet_bytes)
        data, dropped = fitted.data, ", ".join(fitted.dropped)
        kind = topic.rsplit("/", 2)[-2] if topic.endswith("/config") else topic.rsplit("/", 1)[-1]
        kind = next((k for k in ENTITY_KINDS[::-1] if kind.endswith(k)), kind)
        if data is None:
            self.refused += 1
            self._report_once(f"skip:{kind}", f"MQTT: a {fitted.packet_bytes}-byte message to {topic} is over the "
                              f"broker's maximum packet size of {self._max_packet_bytes} bytes even without "
                              f"{dropped or 'optional parts'}; skipped (raise max_packet_size on the broker)")
            return False
        if dropped:
            self._report_once(f"shrink:{kind}", f"MQTT: a {fitted.packet_bytes}-byte message to {topic} is over the "
                              f"broker's maximum packet size of {self._max_packet_bytes} bytes; sent without {dropped} "
                              f"(raise max_packet_size on the broker to keep them)")
        info = self._client.publish(topic, data, qos=qos, retain=retain)
        if info.rc not in (0, 4):  # MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN (kept by paho for QoS > 0)
            log.warning("MQTT: publish to %s failed (rc %s)", topic, info.rc)
            return False
        if info.mid in self._early_acks:
            self._early_acks.discard(info.mid)
        elif qos > 0 or info.rc == 0:
            self._pending_mids[info.mid] = (topic, len(data))
        return True

    def _after_connect(self) -> None:
        s, t = self.settings, self.topics
        assert s is not None and t is not None
        self._just_connected = False
        self._resync = True  # paho re-sends unacknowledged events first; new ones wait for them
        self._discovered.clear()
        for source in self.sources:
            if source not in self._fresh:  # no state of this run yet: Home Assistant shows it unavailable
                self._publish(t.source(source, "availability"), "offline", qos=1, retain=True)
        self._publish(t.status, "online", qos=1, retain=True)
        assert self._readback is not None
        self._readback.start(self._client, self._publish)
        if s.discovery:
            self._client.subscribe(f"{s.discovery_prefix}/status", qos=1)
        self._republish_states()

    def _discovery(self, source: str) -> dict[str, dict[str, Any]]:
        s, t = self.settings, self.topics
        assert s is not None and t is not None
        return discovery_messages(t, source, self.labels, genrecast_version(), s.expire_after_seconds())

    def _publish_state(self, event: GenreEvent, force: bool = False) -> None:
        """The retained state: at once on a change of genre, else at most every state_interval_seconds;
        a state held back goes out when the interval is over (:meth:`_publish_due_states`)."""
        s, t = self.settings, self.topics
        assert s is not None and t is not None
        payload = state_payload(event)
        if payload is None:
            return
        if not self._throttle.offer(event.source, payload["genre"], event, time.monotonic(), force):
            return
        self._publish(t.source(event.source, "state"), payload, qos=s.qos, retain=True)
        if event.source not in self._fresh:
            self._fresh.add(event.source)
            self._publish(t.source(event.source, "availability"), "online", qos=1, retain=True)

    def _publish_due_states(self, everything: bool = False) -> None:
        """Held-back states whose interval is over (``everything``: all of them, at shutdown)."""
        for event in self._throttle.due(time.monotonic(), everything):
            self._publish_state(event, force=True)

    def _announce_change(self, event: GenreEvent) -> None:
        """A genre-change event when the smoothed genre differs from the last one announced
        (in this run or, read back from the retained state, the last)."""
        s, t = self.settings, self.topics
        assert s is not None and t is not None
        genre = event.smoothed_genre
        assert self._readback is not None
        previous = self._readback.last_genres.get(event.source)
        if genre is None or genre == previous:
            return
        self._readback.last_genres[event.source] = genre
        self._publish(t.source(event.source, "genre_change"), genre_change_payload(event, previous), qos=s.qos,
                      retain=False)

    def _republish_states(self) -> None:
        """Publish every source's latest state again (after a reconnect, for Home Assistant)."""
        for event in list(self._latest.values()):
            self._publish_state(event, force=True)

    def _discover(self, source: str) -> None:
        for topic, payload in self._discovery(source).items():
            self._publish(topic, payload, qos=1, retain=True)
        self._discovered.add(source)

    def _pump(self) -> None:
        """Hand queued events to paho, in order, keeping at most INFLIGHT_WINDOW unacknowledged."""
        s, t = self.settings, self.topics
        assert s is not None and t is not None
        assert self._readback is not None
        if not self._readback.done and not self._readback.timed_out():
            return  # the last genres are not known yet
        if self._resend_discovery:
            self._resend_discovery = False
            self._discovered.clear()
            self._republish_states()
        if s.discovery:
            for source in [src for src in [*self.sources, *self._latest] if src not in self._discovered]:
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
            if self._publish(t.source(event.source, "event"), event.to_dict(), qos=s.qos, retain=False):
                self.events_published += 1
            self._publish_state(event)
            self._announce_change(event)
        self._publish_due_states()

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
            log.warning("MQTT: stopped with %d events undelivered (broker %s)", left,
                        "connected" if self.connected else "unreachable")
        self.connected = False
        self._socket_open = False
