"""GenreEvent's JSON form and its schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from genrecast.daemon.events import GenreEvent, load_schema, utc_now


def make_event(**overrides) -> GenreEvent:
    base = dict(
        source="mic", seq=3, utc=utc_now(), audio_start_seconds=9.0, audio_end_seconds=12.0, state="music",
        genre="jazz", probability=0.8, probabilities={"jazz": 0.8, "rock": 0.2}, smoothed_genre="jazz",
        smoothed_probability=0.7, changed=False, level_dbfs=-18.5, model_id="cnn-abc",
    )
    return GenreEvent(**{**base, **overrides})


def test_round_trip_and_schema() -> None:
    event = make_event()
    line = event.to_json()
    assert "\n" not in line
    jsonschema.validate(json.loads(line), load_schema())
    assert GenreEvent.from_json(line) == event


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\xff\xfe", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"schema_version": 7}', "schema_version"),
        ('{"schema_version": 1, "source": "x"}', "missing"),
    ],
)
def test_malformed_payloads_raise_value_error(payload, message) -> None:
    with pytest.raises(ValueError, match=message):
        GenreEvent.from_json(payload)


def test_schema_rejects_a_bad_state() -> None:
    data = make_event().to_dict()
    data["state"] = "loud"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, load_schema())
