"""The MQTT sink against a real Mosquitto: delivery, state, status, discovery, outages, bad settings."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from genrecast.daemon.events import GenreEvent
from genrecast.plugins.mqtt_sink import MqttSettings

pytestmark = [pytest.mark.service]

from helpers import free_port
HERE = Path(__file__).parent


def seqs(messages) -> list[int]:
    return [GenreEvent.from_json(m.payload).seq for m in messages]


def test_events_in_order_state_and_status(broker, recorder, mqtt_dispatcher, event_factory, waiter):
    dispatcher, sink = mqtt_dispatcher(broker)
    prefix = sink.topics.root  # <prefix>/<daemon_id>
    assert prefix == f"{sink.settings.prefix}/kitchen"
    rec = recorder(broker, [f"{prefix}/#"])
    waiter(lambda: sink.connected, what="the sink to connect")
    n = 300
    events = [event_factory(seq, genre="rock" if seq < 150 else "jazz") for seq in range(n)]
    for event in events:
        dispatcher.publish(event)
    waiter(lambda: len(rec.on(f"{prefix}/radio/event")) >= n, what="every event")
    got = rec.on(f"{prefix}/radio/event")
    assert seqs(got) == list(range(n)), "QoS 1 events arrive once each, in order"
    assert [GenreEvent.from_json(m.payload) for m in got] == events
    assert not any(m.retain for m in got)
    # retained state and status, seen by a newcomer
    late = recorder(broker, [f"{prefix}/radio/state", f"{prefix}/status"])
    state = waiter(lambda: late.on(f"{prefix}/radio/state"), what="retained state")[-1]
    assert state.retain and state.json()["genre"] == "jazz" and state.json()["source"] == "radio"
    assert 0 < state.json()["probability"] <= 1
    status = waiter(lambda: late.on(f"{prefix}/status"))[-1]
    assert status.retain and status.payload == b"online"
    # state changes were published (rock, then jazz), not one per event
    genres = [m.json()["genre"] for m in rec.on(f"{prefix}/radio/state")]
    assert genres[:2] == ["rock", "jazz"] and len(genres) < 10
    dispatcher.stop(5.0)
    waiter(lambda: rec.on(f"{prefix}/status") and rec.on(f"{prefix}/status")[-1].payload == b"offline",
           what="offline on a clean stop")
    final = recorder(broker, [f"{prefix}/status"])
    assert waiter(lambda: final.on(f"{prefix}/status"))[-1].payload == b"offline"
    assert final.on(f"{prefix}/status")[-1].retain


def test_talk_publishes_the_not_music_state_home_assistant_knows(broker, recorder, mqtt_dispatcher, event_factory, waiter):
    import dataclasses

    dispatcher, sink = mqtt_dispatcher(broker)
    prefix = sink.topics.root  # <prefix>/<daemon_id>
    rec = recorder(broker, [f"{prefix}/dj/state", "homeassistant/sensor/genrecast_kitchen/#"])
    music = dataclasses.replace(event_factory(0, source="dj", genre="rock"), music_probability=0.97, smoothed_music_probability=0.96)
    talk = GenreEvent(**{**music.to_dict(), "seq": 1, "state": "not_music", "genre": None, "probability": 0.0,
                         "probabilities": {}, "smoothed_genre": None, "smoothed_probability": 0.0,
                         "music_probability": 0.02, "smoothed_music_probability": 0.2})
    dispatcher.publish(music)
    dispatcher.publish(talk)
    states = waiter(lambda: len(rec.on(f"{prefix}/dj/state")) >= 2 and rec.on(f"{prefix}/dj/state"), what="two states")
    assert [m.json()["genre"] for m in states] == ["rock", "not_music"]
    assert states[-1].json()["probability"] == 0.0 and states[-1].json()["music_probability"] == 0.2
    config = waiter(lambda: rec.on("homeassistant/sensor/genrecast_kitchen/dj_genre/config"), what="discovery")[-1].json()
    assert "not_music" in config["options"]


def test_last_will_when_the_holder_is_killed(broker, recorder, waiter):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    rec = recorder(broker, [f"{prefix}/child/status"])
    child = subprocess.Popen([sys.executable, str(HERE / "child_sink.py"), "mqtt", broker.host, str(broker.port),
                              prefix, f"child-{uuid.uuid4().hex[:6]}"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "connected"
        waiter(lambda: [m for m in rec.on(f"{prefix}/child/status") if m.payload == b"online"])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    waiter(lambda: rec.on(f"{prefix}/child/status")[-1].payload == b"offline", what="the last will")


@pytest.mark.slow
def test_broker_outage_loses_no_event(start_broker, recorder, mqtt_dispatcher, event_factory, waiter):
    broker = start_broker(persistence=True)
    dispatcher, sink = mqtt_dispatcher(broker)
    prefix = sink.topics.root  # <prefix>/<daemon_id>
    # a persistent session, so the broker keeps our subscription and queues for us across its restart
    rec = recorder(broker, [f"{prefix}/+/event"], client_id=f"rec-{uuid.uuid4().hex[:6]}", clean_session=False)
    waiter(lambda: sink.connected)
    for seq in range(50):
        dispatcher.publish(event_factory(seq))
    waiter(lambda: len(rec.messages) >= 50)
    broker.stop()
    waiter(lambda: not sink.connected, what="the sink to notice the outage")
    for seq in range(50, 120):  # produced while the broker is away
        dispatcher.publish(event_factory(seq))
    waiter(lambda: dispatcher.stats()["mqtt"]["waiting"] >= 70, what="events to queue up")
    attempts = sink.connect_attempts
    waiter(lambda: sink.connect_attempts >= attempts + 3, what="three failed reconnects during the outage")
    broker.start()
    waiter(lambda: sink.connected, what="the reconnect")
    for seq in range(120, 150):
        dispatcher.publish(event_factory(seq))
    waiter(lambda: len({GenreEvent.from_json(m.payload).seq for m in rec.messages}) >= 150, what="every event")
    got = seqs(rec.messages)
    first_seen = list(dict.fromkeys(got))  # QoS 1 may repeat one that was in flight; never reorder or lose
    assert first_seen == list(range(150))
    stats = dispatcher.stats()["mqtt"]
    assert stats["reconnects"] >= 1 and stats["offline_dropped"] == 0


@pytest.mark.slow
def test_a_broker_restarted_without_persistence_gets_availability_again(start_broker, recorder, mqtt_dispatcher,
                                                                         event_factory, waiter):
    """The eclipse-mosquitto image keeps nothing across a restart: the retained `online` of a source
    that has a state is sent again on the reconnect, or Home Assistant's entities (availability
    mode `all`) stay unavailable until the daemon restarts."""
    broker = start_broker(persistence=False)
    dispatcher, sink = mqtt_dispatcher(broker, sources=["radio", "idle"])
    root = sink.topics.root
    waiter(lambda: sink.connected)
    dispatcher.publish(event_factory(0))  # radio has a state in this run; idle has none
    waiter(lambda: "radio" in sink._fresh, what="radio's first state")
    broker.stop()
    waiter(lambda: not sink.connected, what="the sink to notice the outage")
    broker.start()
    waiter(lambda: sink.connected, what="the reconnect")
    rec = recorder(broker, [f"{root}/+/availability"])  # what a subscriber now gets retained
    waiter(lambda: {m.topic: m.payload for m in rec.messages} == {f"{root}/radio/availability": b"online",
                                                                   f"{root}/idle/availability": b"offline"},
           what="radio online and idle offline, retained on the restarted broker")


def test_a_full_outage_queue_is_logged_and_the_closing_line_says_why(start_broker, mqtt_dispatcher, event_factory,
                                                                     waiter, caplog):
    """Drops while the broker is away are logged (rate-limited), not only counted; the closing line
    names the reason the events stayed (a refused login is not 'unreachable')."""
    broker = start_broker(users={"genrecast": "right"})
    with caplog.at_level(logging.INFO, logger="genrecast.plugins.mqtt_sink"):
        dispatcher, sink = mqtt_dispatcher(broker, username="genrecast", password="wrong", queue_size=2)
        waiter(lambda: sink.connect_attempts >= 1, what="a first attempt")
        for seq in range(5):
            dispatcher.publish(event_factory(seq))
        waiter(lambda: sink.offline_dropped == 3, what="three drops")
        dispatcher.stop(0.5)
    assert "MQTT: the queue of 2 events waiting for the broker is full, so the oldest are dropped (1 so far" in caplog.text
    assert caplog.text.count("the oldest are dropped") == 1, "rate-limited"
    assert "MQTT: stopped with 2 events undelivered (the broker refused the connection: Not authorized)" in caplog.text


def test_wrong_password_logs_and_retries(start_broker, mqtt_dispatcher, waiter, caplog):
    broker = start_broker(users={"genrecast": "right"})
    with caplog.at_level(logging.INFO, logger="genrecast.plugins.mqtt_sink"):
        dispatcher, sink = mqtt_dispatcher(broker, username="genrecast", password="wrong")
        waiter(lambda: sink.connect_attempts >= 3, what="retries")
    assert not sink.connected
    assert "refused the connection" in caplog.text and "retrying" in caplog.text
    assert caplog.text.count("refused the connection") == 1, "a repeated failure is logged once"
    dispatcher.stop(2.0)


def test_password_file_and_credentials(start_broker, mqtt_dispatcher, tmp_path, waiter, monkeypatch):
    broker = start_broker(users={"genrecast": "s3cret"})
    secret = tmp_path / "mqtt_password"
    secret.write_text("s3cret\n")
    _, sink = mqtt_dispatcher(broker, username="genrecast", password_file=str(secret))
    waiter(lambda: sink.connected, what="login with password_file")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert MqttSettings(username="genrecast").resolve_password() == "s3cret"
    monkeypatch.setenv("GENRECAST_MQTT_PASSWORD", "fromenv")
    assert MqttSettings().resolve_password() == "fromenv"


@pytest.mark.parametrize("case", ["unreachable", "bad-ca"])
def test_bad_settings_log_and_retry_without_raising(case, broker, mqtt_dispatcher, tmp_path, waiter, caplog,
                                                   event_factory):
    if case == "unreachable":
        settings = {"port": free_port()}  # a port nobody listens on
        expected = "cannot connect to 127.0.0.1"
    else:
        bad = tmp_path / "ca.pem"
        bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        settings = {"tls": True, "ca_file": str(bad)}
        expected = "TLS setup failed"
    with caplog.at_level(logging.ERROR, logger="genrecast.plugins.mqtt_sink"):
        dispatcher, sink = mqtt_dispatcher(broker, **settings)
        dispatcher.publish(event_factory(0))
        waiter(lambda: sink.connect_attempts >= 3, what="retries")
    assert expected in caplog.text and not sink.connected
    dispatcher.stop(0.5)
    assert dispatcher.stats()["mqtt"]["waiting"] == 1  # kept, reported, never raised


def test_settings_validation():
    with pytest.raises(ValueError, match="qos must be 0, 1 or 2"):
        MqttSettings.from_dict({"qos": 3})
    with pytest.raises(ValueError, match="prefix"):
        MqttSettings.from_dict({"prefix": "a/#"})


def test_a_broker_that_takes_the_socket_and_never_answers_is_named_in_the_closing_line(mqtt_dispatcher, event_factory,
                                                                                       waiter, caplog):
    """A frozen broker (the TCP connection is accepted, no CONNACK ever comes) is not 'not connected yet'."""
    import socket
    import types

    with socket.create_server(("127.0.0.1", 0)) as server:  # listens and accepts (the kernel's backlog), never answers
        port = server.getsockname()[1]
        with caplog.at_level(logging.INFO, logger="genrecast.plugins.mqtt_sink"):
            dispatcher, sink = mqtt_dispatcher(types.SimpleNamespace(host="127.0.0.1", port=port))
            waiter(lambda: sink._socket_open, what="the socket open")
            dispatcher.publish(event_factory(0))
            dispatcher.stop(0.5)
    assert (f"MQTT: stopped with 1 events undelivered (127.0.0.1:{port} took the connection but never answered it "
            "(no CONNACK))") in caplog.text
