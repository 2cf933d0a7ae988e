"""What the ``mqtt`` sink publishes, as data: topic names, state and genre-change payloads, and
Home Assistant discovery. No network here (the client lives in :mod:`genrecast.plugins.mqtt_sink`).

Topics (``<prefix>`` defaults to ``genrecast``; ``<id>`` is the daemon id; ``<src>`` the
source name's slug, :func:`genrecast.daemon.naming.slug`)::

    <prefix>/<id>/status              online / offline (retained; the last will)
    <prefix>/<id>/<src>/availability  online once this run published a fresh state, offline before (retained)
    <prefix>/<id>/<src>/event         every event, GenreEvent JSON (not retained)
    <prefix>/<id>/<src>/state         the smoothed state, :func:`state_payload` (retained)
    <prefix>/<id>/<src>/genre_change  {"event_type": <new genre>, ...} once per change (not retained)

Home Assistant discovery (retained) lives under ``<discovery_prefix>/<component>/genrecast_<id>/``:
per source a genre sensor (``device_class: enum``), a confidence sensor (%), a level
sensor (dBFS, diagnostic) and a genre-change ``event`` entity, all on one device per daemon.
Minimum Home Assistant versions: see :data:`FEATURE_VERSIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genrecast.daemon.events import STATES, GenreEvent
from genrecast.daemon.naming import slug

SUPPORT_URL = "https://github.com/genrecast/genrecast"

SHOWN_STATES = tuple(s for s in STATES if s not in ("music", "uncertain"))
"""Window states the genre sensor shows as themselves (``silence``; any state a detector adds),
instead of the smoothed genre. The enum options are the labels plus these."""

ENTITY_KINDS = ("genre", "confidence", "level", "genre_change")
"""The entities each source gets; their object ids are ``<src>_<kind>``."""

FEATURE_VERSIONS = {
    "everything else (sensors, event entity, availability list, expire_after, origin, precision)": "2024.3",
    "enum options on the genre sensor": "2024.9",
}
"""From which Home Assistant version each part works: 2024.3 is the oldest checked
(tests/plugins/test_ha_schema.py); older versions drop keys they do not know, silently."""


@dataclass(frozen=True)
class Topics:
    """This daemon's topic names."""

    prefix: str
    daemon_id: str
    discovery_prefix: str = "homeassistant"

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.daemon_id}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def node(self) -> str:
        """The discovery node id, also the device identifier and the unique_id prefix."""
        return f"genrecast_{self.daemon_id}"

    def source(self, source: str, leaf: str) -> str:
        """``<prefix>/<id>/<src>/<leaf>`` for a source name."""
        return f"{self.root}/{slug(source)}/{leaf}"

    def config(self, component: str, source: str, kind: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{slug(source)}_{kind}/config"

    def own_configs(self) -> str:
        """A subscription matching every discovery config of this daemon (any component)."""
        return f"{self.discovery_prefix}/+/{self.node}/+/config"


def state_genre(event: GenreEvent) -> str | None:
    """What the genre sensor shows after ``event``: a state in :data:`SHOWN_STATES` (``silence``),
    else the smoothed genre; None while there is none yet (nothing is published then, so
    Home Assistant never sees an ``uncertain`` blip between two genres)."""
    if event.state in SHOWN_STATES:
        return event.state
    return event.smoothed_genre


def state_payload(event: GenreEvent) -> dict[str, Any] | None:
    """The retained state of a source after ``event``, or None while it has no genre yet.

    ``genre`` (a label or a :data:`SHOWN_STATES` entry), ``probability`` (its smoothed
    probability, 0..1; 0 for silence), ``window_state``/``window_genre``/``window_probability``
    of the latest window, ``smoothed_genre`` (the last genre, also while ``genre`` is silence),
    ``level_dbfs``, ``utc``, ``seq``, ``model_id``, ``source`` and ``music_probability`` (the music
    detector's smoothed P(music); null without a detector).
    (``window_state``, not ``state``: Home Assistant drops an attribute named ``state``.)"""
    genre = state_genre(event)
    if genre is None:
        return None
    return {
        "source": event.source, "genre": genre,
        "probability": round(event.smoothed_probability, 4) if genre not in SHOWN_STATES else 0.0,
        "smoothed_genre": event.smoothed_genre, "window_state": event.state, "window_genre": event.genre, "window_probability": round(event.probability, 4),
        "level_dbfs": event.level_dbfs, "utc": event.utc, "seq": event.seq, "model_id": event.model_id,
        "music_probability": event.smoothed_music_probability,
    }


def genre_change_payload(event: GenreEvent, previous: str | None) -> dict[str, Any]:
    """The genre-change event (Home Assistant ``event`` entity): ``event_type`` the new smoothed
    genre, ``previous`` the one before (None on a source's first genre), ``probability``, ``utc``."""
    return {"event_type": event.smoothed_genre, "previous": previous,
            "probability": round(event.smoothed_probability, 4), "utc": event.utc}


def genre_options(labels: list[str]) -> list[str]:
    """The genre sensor's enum options: the labels, then :data:`SHOWN_STATES`."""
    return list(dict.fromkeys([*labels, *SHOWN_STATES]))


def discovery_messages(topics: Topics, source: str, labels: list[str], version: str,
                       expire_after_seconds: int) -> dict[str, dict[str, Any]]:
    """Home Assistant discovery ``{config topic: payload}`` for one source (see the module docstring).

    Entity ids come out as ``sensor.genrecast_<id>_<source>_genre`` (Home Assistant slugifies
    the device name ``genrecast <id>`` and the entity name ``<source> genre``)."""
    node, src = topics.node, slug(source)
    state_topic = topics.source(source, "state")
    device = {"identifiers": [node], "name": f"genrecast {topics.daemon_id}", "manufacturer": "genrecast",
              "model": "genre listener", "sw_version": version}
    common = {
        "availability": [{"topic": topics.status}, {"topic": topics.source(source, "availability")}],
        "availability_mode": "all", "payload_available": "online", "payload_not_available": "offline",
        "device": device, "origin": {"name": "genrecast", "sw_version": version, "support_url": SUPPORT_URL},
    }
    sensor = {**common, "state_topic": state_topic, "expire_after": expire_after_seconds}
    return {
        topics.config("sensor", source, "genre"): {
            **sensor, "name": f"{source} genre", "unique_id": f"{node}_{src}_genre",
            "json_attributes_topic": state_topic, "value_template": "{{ value_json.genre }}",
            "device_class": "enum", "options": genre_options(labels), "icon": "mdi:music-box-multiple",
        },
        topics.config("sensor", source, "confidence"): {
            **sensor, "name": f"{source} genre confidence", "unique_id": f"{node}_{src}_confidence",
            "value_template": "{{ (value_json.probability * 100) | round(1) }}", "unit_of_measurement": "%",
            "state_class": "measurement", "suggested_display_precision": 1, "icon": "mdi:gauge",
        },
        topics.config("sensor", source, "level"): {
            **sensor, "name": f"{source} level", "unique_id": f"{node}_{src}_level",
            "value_template": "{{ value_json.level_dbfs | round(1) }}", "unit_of_measurement": "dBFS",
            "state_class": "measurement", "suggested_display_precision": 0, "entity_category": "diagnostic",
            "icon": "mdi:volume-high",
        },
        topics.config("event", source, "genre_change"): {
            **common, "state_topic": topics.source(source, "genre_change"), "name": f"{source} genre change",
            "unique_id": f"{node}_{src}_genre_change", "event_types": list(labels), "icon": "mdi:swap-horizontal",
        },
    }
