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


def test_bandwidth_fields_validate_and_are_optional() -> None:
    schema = load_schema()
    limited = make_event(bandwidth_hz=3962.0, band_limited=True)
    doc = json.loads(limited.to_json())
    assert doc["bandwidth_hz"] == 3962.0 and doc["band_limited"] is True and doc["schema_version"] == 3
    jsonschema.validate(doc, schema)
    assert GenreEvent.from_json(limited.to_json()) == limited
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "band_limited": "yes"}, schema)
    with pytest.raises(ValueError, match="band_limited"):
        GenreEvent.from_dict({**doc, "band_limited": "yes"})
    older = {k: v for k, v in doc.items() if k not in ("bandwidth_hz", "band_limited")}
    older["schema_version"] = 2  # a daemon from before the bandwidth estimate
    event = GenreEvent.from_dict(older)
    assert event.bandwidth_hz is None and event.band_limited is None
