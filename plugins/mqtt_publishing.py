"""What the ``mqtt`` sink publishes, on its client thread: events in order with at most
:data:`INFLIGHT_WINDOW` unacknowledged, retained states (rate-bounded), genre changes,
availability and Home Assistant discovery, each payload fitted to the broker's packet size.
:class:`MqttPublishing` is the half of :class:`genrecast.plugins.mqtt_sink.MqttSink` that
decides what goes out; the sink itself owns the connection, the queue and the thread."""

from __future__ import annotations

import logging
import time
from typing import Any

from genrecast.daemon.events import GenreEvent
from genrecast.plugins.ha_discovery import ENTITY_KINDS, discovery_messages, genre_change_payload, state_payload
from genrecast.plugins.manager import genrecast_version
from genrecast.plugins.mqtt_guard import fit_payload

log = logging.getLogger("genrecast.plugins.mqtt_sink")  # one logger for the sink's lines

INFLIGHT_WINDOW = 20
"""Messages handed to paho and not yet acknowledged, at most (paho's own queue stays this small)."""


class MqttPublishing:
    """Publishing for :class:`~genrecast.plugins.mqtt_sink.MqttSink` (a mixin: it uses the sink's
    ``settings``, ``topics``, ``labels``, ``sources``, paho ``_client``, event ``_queue`` and the
    bookkeeping that :meth:`MqttSink.__init__` sets up). Every method runs on the client thread."""

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
        for source in dict.fromkeys([*self.sources, *self._fresh]):
            # a source with a state of this run is available again (a broker that restarted without
            # persistence lost the retained "online"); one without stays unavailable
            self._publish(t.source(source, "availability"), "online" if source in self._fresh else "offline",
                          qos=1, retain=True)
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
            for source in dict.fromkeys([*self.sources, *self._latest]):  # once each: a source is in both
                if source not in self._discovered:
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
            else:  # too large for the broker, or paho refused it: never delivered, so counted as dropped
                self.events_unsent += 1
            self._publish_state(event)
            self._announce_change(event)
        self._publish_due_states()
