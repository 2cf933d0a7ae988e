"""Fixtures for the plugin tests: an event factory and condition waits (the Mosquitto and
recorder fixtures come from ``tests/mqtt_services.py``)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from genrecast.daemon.events import GenreEvent
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
