"""Reading back what this daemon left retained on the broker, once per connection, for the
``mqtt`` sink: the last genre of each source (so a restart announces no change that did not
happen) and the discovery configs to delete (sources no longer configured; this host's configs
from before daemon ids).

Retained messages arrive right after the subscription is granted; a marker message the sink
publishes to itself after subscribing arrives after all of them (a broker delivers one
client's messages in order), so :meth:`ReadBack.handle` knows when the read-back is complete.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import uuid
from typing import Any, Callable

from genrecast.plugins.ha_discovery import Topics

log = logging.getLogger("genrecast.plugins.mqtt_sink")

TIMEOUT_SECONDS = 5.0
"""Go on without the read-back if the marker has not come back by then (e.g. an ACL denies it)."""

Publish = Callable[[str, Any, int, bool], Any]


def legacy_configs(discovery_prefix: str, client_id: str) -> str:
    """Where this host's daemon put its discovery before daemon ids: the node was its client id
    (``client_id``, else ``genrecast-<hostname>``) with anything outside ``A-Za-z0-9_-`` as ``_``."""
    node = re.sub(r"[^A-Za-z0-9_-]", "_", client_id or f"genrecast-{socket.gethostname()}") or "_"
    return f"{discovery_prefix}/sensor/{node}/+/config"


class ReadBack:
    """One connection's read-back. ``last_genres`` survives reconnects (this run's genres win)."""

    def __init__(self, topics: Topics, legacy: str, discovery: bool) -> None:
        self.topics, self.legacy, self.discovery = topics, legacy, discovery
        self.last_genres: dict[str, str] = {}
        self.done = True
        self._nonce = ""
        self._deadline_monotonic = 0.0
        self._configs: dict[str, bytes] = {}

    @property
    def marker(self) -> str:
        return f"{self.topics.root}/sync"

    def subscriptions(self) -> list[str]:
        reads = [f"{self.topics.root}/+/state"]
        return reads + ([self.topics.own_configs(), self.legacy] if self.discovery else []) + [self.marker]

    def start(self, client: Any, publish: Publish) -> None:
        """Subscribe to what was retained and send the marker."""
        self.done, self._configs = False, {}
        self._nonce = uuid.uuid4().hex
        self._deadline_monotonic = time.monotonic() + TIMEOUT_SECONDS
        client.subscribe([(topic, 1) for topic in self.subscriptions()])
        publish(self.marker, self._nonce, 1, False)

    def timed_out(self) -> bool:
        """Still waiting past the deadline: give up (logged once), and count the read-back done."""
        if self.done or time.monotonic() < self._deadline_monotonic:
            return False
        log.warning("MQTT: could not read back this daemon's retained messages (is subscribing to %s/# allowed?); "
                    "not cleaning up old discovery configs", self.topics.root)
        self.done = True
        return True

    def handle(self, message: Any) -> bool:
        """Take a message if it belongs to the read-back; True when it was the marker (complete)."""
        if message.topic == self.marker:
            return message.payload.decode(errors="replace") == self._nonce and not self.done
        if not message.retain or self.done:
            return False
        if message.topic.endswith("/config"):
            self._configs[message.topic] = message.payload
        elif message.topic.endswith("/state"):
            try:
                state = json.loads(message.payload)
                source, genre = state["source"], state.get("smoothed_genre")
            except (ValueError, KeyError, TypeError):
                return False
            if isinstance(source, str) and isinstance(genre, str):
                self.last_genres.setdefault(source, genre)
        return False

    def is_own(self, topic: str) -> bool:
        """Whether ``topic`` is one the read-back subscribed to (its messages are not Home Assistant's)."""
        return topic == self.marker or topic.endswith("/config") or topic.endswith("/state")

    def finish(self, client: Any, publish: Publish, current: set[str] | None) -> None:
        """Unsubscribe; delete the retained configs not in ``current`` (None: delete nothing,
        as when the configured sources are unknown), with the state and availability they named."""
        self.done = True
        client.unsubscribe(self.subscriptions())
        if current is None:
            return
        legacy_prefix = self.legacy.rsplit("/+/", 1)[0] + "/"
        for topic, payload in self._configs.items():
            if topic in current or not payload:
                continue
            publish(topic, "", 1, True)
            try:
                old = json.loads(payload)
            except ValueError:
                old = {}
            state_topic = old.get("state_topic") if isinstance(old, dict) else None
            legacy = topic.startswith(legacy_prefix)
            if isinstance(state_topic, str) and (legacy or state_topic.startswith(self.topics.root + "/")):
                publish(state_topic, "", 1, True)
                if not legacy and state_topic.endswith("/state"):
                    publish(state_topic[: -len("state")] + "availability", "", 1, True)
            log.info("MQTT: deleted the discovery config %s (%s)", topic,
                     "from before daemon ids" if legacy else "its source is no longer configured")
