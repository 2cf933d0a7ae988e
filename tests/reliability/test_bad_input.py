"""What other publishers put on our MQTT topics: ``genrecast tail`` skips and counts what
it cannot parse (fuzzed with hypothesis here; the real run against Mosquitto is in
tests/plugins/test_tail.py), and the
daemon is unaffected by garbage on the topics it subscribes to or publishes on.

Fuzzing of audio buffers, configuration files and bundle.json: tests/daemon/test_fuzz.py.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from genrecast.daemon.events import GenreEvent
from genrecast.plugins.tail import Tail, TailView
from helpers import GTZAN_LABELS as LABELS, wait_for
from mqtt_services import mqtt_env, publish
from reliability.support import STDIN_SOURCE, first_seen_seqs

VALID = {
    "source": "radio", "seq": 3, "utc": "2024-05-01T12:00:09.000Z", "audio_start_seconds": 9.0,
    "audio_end_seconds": 12.0, "state": "music", "genre": "rock", "probability": 0.8,
    "probabilities": {label: (0.8 if label == "rock" else 0.02) for label in LABELS}, "smoothed_genre": "rock",
    "smoothed_probability": 0.7, "changed": False, "level_dbfs": -20.0, "model_id": "m", "context_seconds": None,
    "schema_version": 1,
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_events(draw) -> bytes:
    """A valid event with some fields dropped or replaced by any JSON value."""
    event = dict(VALID)
    for key in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=4, unique=True)):
        if draw(st.booleans()):
            del event[key]
        else:
            event[key] = draw(json_values)
    return json.dumps(event).encode()


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_events(),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def _handle(payload: bytes, json_output: bool) -> tuple[Tail, str]:
    out = io.StringIO()
    tail = Tail(TailView("fuzz"), json_output, out)
    tail.handle(payload)
    if not json_output:
        tail.draw(force=True)  # the live view renders whatever was accepted
    return tail, out.getvalue()


@FUZZ
@given(payload=payloads, json_output=st.booleans())
@example(payload=json.dumps({**VALID, "probability": "high"}).encode(), json_output=False)
@example(payload=json.dumps({**VALID, "probabilities": [1, 2]}).encode(), json_output=False)
@example(payload=json.dumps({**VALID, "seq": None, "level_dbfs": "loud"}).encode(), json_output=False)
@example(payload=b"\xff\xfe" + json.dumps(VALID).encode(), json_output=True)
@example(payload=json.dumps(VALID).encode(), json_output=True)
def test_tail_skips_and_counts_what_it_cannot_parse(payload: bytes, json_output: bool) -> None:
    tail, out = _handle(payload, json_output)
    assert tail.view.events + tail.view.skipped == 1
    try:
        event = GenreEvent.from_json(payload)
    except ValueError:
        assert tail.view.skipped == 1
        assert out == "" if json_output else "events 0  skipped 1" in out
        return
    assert tail.view.events == 1
    if json_output:
        assert GenreEvent.from_json(out) == event
    else:
        assert event.source in out


@pytest.mark.slow
@pytest.mark.service
def test_daemon_is_unaffected_by_garbage_on_its_topics(start_broker, recorder, start_daemon):
    broker = start_broker()
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    rec = recorder(broker, [f"{prefix}/test/#"])
    run = start_daemon(sinks=["stdout", "mqtt"], env=mqtt_env(broker.host, broker.port, prefix), prefix=prefix)
    topic = f"{prefix}/test/{STDIN_SOURCE}/event"
    wait_for(lambda: len(rec.on(topic)) >= 3, what="events on the broker")
    junk = [b"", b"\x00\xff" * 50, b"ONLINE\x00", "onlïne".encode(), b"x" * 300_000, b'{"online": true}', b"offline"]
    targets = ["homeassistant/status", f"{prefix}/test/status", topic, f"{prefix}/test/{STDIN_SOURCE}/state",
               f"homeassistant/sensor/genrecast_test/{STDIN_SOURCE}_genre/config"]
    publish(broker, [(t, payload, False) for t in targets for payload in junk])
    publish(broker, [("homeassistant/status", b"online", False)])  # a real Home Assistant restart, amid the junk
    run.wait_log("Home Assistant came online")
    run.wait_events(len(run.events()) + 5)
    assert run.daemon.proc.poll() is None
    assert run.stop() == 0
    events = run.events()
    wait_for(lambda: len(set(first_seen_seqs([m for m in rec.on(topic) if m.payload not in junk]))) >= len(events),
             what="every event on the broker")
    mine = [m for m in rec.on(topic) if m.payload not in junk]
    assert first_seen_seqs(mine) == [e["seq"] for e in events]
    assert "Traceback" not in run.log_text()
