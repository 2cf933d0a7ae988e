"""Fixtures for the plugin tests: an event factory and condition waits (the Mosquitto and
recorder fixtures come from ``tests/mqtt_services.py``)."""

from __future__ import annotations

import uuid
from typing import Any, Callable

import pytest

from genrecast.daemon.events import GenreEvent
from genrecast.plugins.dispatcher import Dispatcher
from genrecast.plugins.mqtt_sink import MqttSink
from genrecast.plugins.sinks import build_sinks
from helpers import GTZAN_LABELS as LABELS, wait_for



def make_event(seq: int = 0, source: str = "radio", genre: str | None = "rock", state: str = "music",
               probability: float = 0.8, smoothed_genre: str | None = None, changed: bool = False,
               level_dbfs: float = -20.0, window_seconds: float = 3.0) -> GenreEvent:
    """A valid GenreEvent; the other labels share the rest of the probability."""
    if state == "silence":
        genre, probability, probabilities = None, 0.0, {}
    else:
        rest = (1.0 - probability) / (len(LABELS) - 1)
        probabilities = {label: (probability if label == genre else rest) for label in LABELS}
    return GenreEvent(
        source=source, seq=seq, utc=f"2024-05-01T12:{seq // 20 % 60:02d}:{seq * 3 % 60:02d}.000Z",
        audio_start_seconds=seq * window_seconds, audio_end_seconds=(seq + 1) * window_seconds,
        state=state, genre=genre, probability=probability, probabilities=probabilities,
        smoothed_genre=smoothed_genre if smoothed_genre is not None else genre,
        smoothed_probability=probability * 0.9 if genre else 0.0, changed=changed,
        level_dbfs=-70.0 if state == "silence" else level_dbfs, model_id="test-model")


@pytest.fixture
def event_factory() -> Callable[..., GenreEvent]:
    return make_event


@pytest.fixture
def waiter() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def mqtt_dispatcher():
    """Factory: ``mqtt_dispatcher(broker, sources=(), daemon_id="kitchen", **mqtt_settings)`` → a started
    Dispatcher around one mqtt sink (fast reconnects, a fresh prefix and client id), and the sink;
    stopped at teardown."""
    made: list[Dispatcher] = []

    def make(broker, sources=(), daemon_id="kitchen", **settings):
        values = {"host": broker.host, "port": broker.port, "client_id": f"test-{uuid.uuid4().hex[:8]}",
                  "prefix": f"gc{uuid.uuid4().hex[:6]}", "reconnect_min_seconds": 0.1, "reconnect_max_seconds": 0.5}
        values.update(settings)
        dispatcher = Dispatcher(build_sinks(["mqtt"], {"mqtt": values}, LABELS, sources=list(sources),
                                            daemon_id=daemon_id))
        dispatcher.start()
        made.append(dispatcher)
        sink: MqttSink = dispatcher.sinks[0].plugin  # type: ignore[attr-defined]
        return dispatcher, sink

    yield make
    for dispatcher in made:
        dispatcher.stop(5.0)
