"""What the broker will not take, and what its disconnects mean: pure logic for the ``mqtt`` sink.

* :func:`publish_packet_bytes` and :func:`fit_payload`: a message over the broker's
  *Maximum Packet Size* (MQTT 5 CONNACK; Mosquitto's ``max_packet_size``) is shrunk by
  dropping optional parts, or skipped, before it is sent. Sent anyway, the broker would
  disconnect us and paho would re-send it after every reconnect, blocking the queue.
* :class:`ConnectionWatch`: says what a disconnect means: ``Session taken over`` (another
  client with our client id), a refused packet, or (for brokers that give no reason) the
  pattern of connections dropped right after they were accepted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

SHRINKABLE = ("origin", "icon", "json_attributes_topic", "probabilities")
"""Optional parts dropped, in this order, from a JSON payload over the size limit
(``probabilities`` is emptied, as in a silent window's event, rather than dropped)."""

TAKEN_OVER = 142
"""MQTT 5 reason code *Session taken over*."""
PACKET_TOO_LARGE = 149
"""MQTT 5 reason code *Packet too large*."""
QUICK_DROP_SECONDS = 5.0
"""A connection lost within this long of being accepted counts towards the pattern."""
QUICK_DROPS = 3
"""This many quick drops in a row make :meth:`ConnectionWatch.disconnected` explain the pattern."""


def _varint_bytes(n: int) -> int:
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4


def publish_packet_bytes(topic: str, payload: bytes, qos: int, mqtt5: bool = True) -> int:
    """Size in bytes of the PUBLISH packet for ``payload`` on ``topic`` (MQTT 3.1.1/5 §3.3,
    no properties): fixed header + topic + packet id (QoS > 0) + property length (MQTT 5) + payload."""
    remaining = 2 + len(topic.encode("utf-8")) + (2 if qos else 0) + (1 if mqtt5 else 0) + len(payload)
    return 1 + _varint_bytes(remaining) + remaining


@dataclass(frozen=True)
class Fitted:
    """What :func:`fit_payload` made of a payload."""

    data: bytes | None
    """The payload to send; None when even its smallest form is over the limit (skip it)."""
    dropped: list[str]
    """Parts dropped (or tried) to fit, from :data:`SHRINKABLE`."""
    packet_bytes: int
    """Size of the PUBLISH packet of the payload as it was given."""


def _encode(payload: Any) -> bytes:
    if isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return str(payload).encode()


def fit_payload(topic: str, payload: Any, qos: int, limit: int | None) -> Fitted:
    """``payload`` (a JSON-able dict, sent compact, or a str) encoded to fit a PUBLISH packet
    of at most ``limit`` bytes (None: no limit), dropping :data:`SHRINKABLE` parts as needed."""
    data = _encode(payload)
    full = publish_packet_bytes(topic, data, qos)
    if limit is None or full <= limit:
        return Fitted(data, [], full)
    if not isinstance(payload, dict):
        return Fitted(None, [], full)
    smaller, dropped = dict(payload), []
    for key in SHRINKABLE:
        if key not in smaller or (key == "probabilities" and not smaller[key]):
            continue
        if key == "probabilities":
            smaller[key] = {}
        else:
            del smaller[key]
        dropped.append(key)
        data = _encode(smaller)
        if publish_packet_bytes(topic, data, qos) <= limit:
            return Fitted(data, dropped, full)
    return Fitted(None, dropped, full)


@dataclass
class ConnectionWatch:
    """Remembers when connections were accepted and lost; explains disconnects in words."""

    client_id: str
    explicit: bool = False
    """The client id is ``mqtt.client_id``'s (not genrecast-<daemon_id>): the advice names that setting."""
    quick_drops: int = 0
    """Connections lost within :data:`QUICK_DROP_SECONDS` of being accepted, in a row."""
    takeovers: int = 0
    """Disconnects with *Session taken over*, in all."""
    _connected_at: float | None = field(default=None, repr=False)
    _explained: set[str] = field(default_factory=set, repr=False)

    def connected(self, now: float | None = None) -> None:
        self._connected_at = time.monotonic() if now is None else now

    def stable(self) -> None:
        """The connection has been up a while: start counting quick drops afresh, and explain
        the next problem again."""
        self.quick_drops = 0
        self._explained.clear()

    @property
    def flapping(self) -> bool:
        """Connections keep being lost right after they were accepted."""
        return self.quick_drops >= QUICK_DROPS

    def lasted(self, now: float | None = None) -> float:
        """Seconds the current (or last) connection has been up."""
        if self._connected_at is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self._connected_at

    def disconnected(self, reason_value: int | None, now: float | None = None) -> str | None:
        """Account for a lost connection (``reason_value``: the MQTT 5 reason code the broker
        gave, if any); returns an explanation to log, or None if there is nothing (new) to say:
        each explanation is given once until the connection is :meth:`stable` again."""
        quick = self._connected_at is not None and self.lasted(now) < QUICK_DROP_SECONDS
        self._connected_at = None
        self.quick_drops = self.quick_drops + 1 if quick else 0
        if reason_value == TAKEN_OVER:
            self.takeovers += 1
            return self._once("takeover", f"another client connected with our client id {self.client_id!r} and the broker handed it "
                    f"this session (Session taken over): {self._who()}")
        if reason_value == PACKET_TOO_LARGE:
            return self._once("size", "the broker refused a packet as too large and closed the connection; "
                    "raise its max_packet_size (messages over the size it announces are shrunk or skipped)")
        if self.flapping:
            return self._once("pattern", f"the broker closed the connection right after accepting it, "
                              f"{self.quick_drops} times in a row: usually another client using our client id "
                              f"{self.client_id!r} ({self._who()}), or a message the broker refuses (size limit, ACL)")
        return None

    def _who(self) -> str:
        """Who else may hold our client id, and the fix."""
        if self.explicit:
            return ("another daemon with the same mqtt.client_id, e.g. a fleet member sharing the config? Give each its "
                    "own, or leave it empty (genrecast-<daemon_id>)")
        return "two genrecast daemons with one daemon_id? Give each its own (--daemon-id, GENRECAST_DAEMON_ID) or set mqtt.client_id"

    def _once(self, key: str, message: str) -> str | None:
        if key in self._explained:
            return None
        self._explained.add(key)
        return message
