"""The daemon publishing to a real Mosquitto: every event at QoS 1, retained state,
status online/offline, the last will on `kill -9`, and `genrecast tail` on its events."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest

from helpers import EXE, Daemon, Terminal
from mqtt_services import mqtt_env
from genrecast.daemon.events import GenreEvent

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _mqtt_env(broker, prefix: str) -> dict[str, str]:
    return {**os.environ, **mqtt_env(broker.host, broker.port, prefix)}


def test_every_event_reaches_broker_and_log(broker, recorder, waiter, trained_bundle, gtzan_sample, tmp_path):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    rec = recorder(broker, [f"{prefix}/test/#", "homeassistant/#"])
    log = tmp_path / "events.jsonl"
    clip = gtzan_sample / "disco" / "disco.00000.wav"
    env = {**_mqtt_env(broker, prefix), "GENRECAST_LOGFILE_PATH": str(log)}
    # the 3-epoch bundle is rarely sure of a genre, and a smoothed genre (hence a retained state) needs a
    # lead of --min-confidence: 0 here, so that every event counts
    daemon = Daemon(["--bundle", str(trained_bundle), "--source", f"file:{clip}", "--sink", "mqtt", "--sink", "logfile",
                     "--sink", "stdout", "--json", "--min-confidence", "0"], env=env)
    assert daemon.proc.wait(timeout=120) == 0, "".join(daemon.log[-10:])
    daemon.stop()
    topic = f"{prefix}/test/file-disco_00000/event"
    received = waiter(lambda: len(rec.on(topic)) == 10 and rec.on(topic), what="10 events on the broker")
    assert [GenreEvent.from_json(m.payload).seq for m in received] == list(range(10))
    assert [m.json() for m in received] == daemon.events  # the same JSON on every sink
    assert [json.loads(line) for line in log.read_text().splitlines()] == daemon.events
    state = rec.on(f"{prefix}/test/file-disco_00000/state")
    assert state and state[-1].json()["genre"] in list(daemon.events[-1]["probabilities"]) + ["silence", "uncertain"]
    status = [m.payload for m in rec.on(f"{prefix}/test/status")]
    assert status[0] == b"online" and status[-1] == b"offline"
    assert [m for m in rec.messages if m.topic.startswith("homeassistant/sensor/")]
    late = recorder(broker, ["homeassistant/#", f"{prefix}/test/#"])  # a later subscriber gets the retained messages
    wanted = {f"{prefix}/test/file-disco_00000/state", f"{prefix}/test/status"}

    def retained_topics() -> set[str]:  # the broker sends them in no set order: wait for all that must come
        topics = {m.topic for m in late.messages if m.retain}
        done = wanted <= topics and any(t.endswith("_genre/config") for t in topics) \
            and any(t.endswith("_confidence/config") for t in topics)
        return topics if done else set()

    waiter(retained_topics, what="the retained state, status and discovery configs")


def test_last_will_on_kill_9(broker, recorder, waiter, trained_bundle, gtzan_sample):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    clip = gtzan_sample / "reggae" / "reggae.00000.wav"
    daemon = Daemon(["--bundle", str(trained_bundle), "--source", f"file:{clip}", "--realtime", "--loop", "--sink", "mqtt"],
                    env=_mqtt_env(broker, prefix))
    try:
        rec = recorder(broker, [f"{prefix}/test/#"])
        waiter(lambda: rec.on(f"{prefix}/test/status") and rec.on(f"{prefix}/test/status")[-1].payload == b"online", what="online status")
        waiter(lambda: rec.on(f"{prefix}/test/file-reggae_00000/event"), timeout_seconds=30, what="a first event")
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(timeout=10)
        waiter(lambda: rec.on(f"{prefix}/test/status")[-1].payload == b"offline", timeout_seconds=90, what="the last will")
    finally:
        daemon.kill()


def test_tail_shows_what_a_running_daemon_publishes(broker, waiter, trained_bundle, gtzan_sample):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    clip = gtzan_sample / "metal" / "metal.00000.wav"
    daemon = None
    with Terminal(f"{EXE} tail --broker {broker.host}:{broker.port} --prefix {prefix}", width=80, height=40) as term:
        try:
            waiter(lambda: "subscribed" in term.screen(), what="tail to subscribe")
            daemon = Daemon(["--bundle", str(trained_bundle), "--source", f"file:{clip}", "--sink", "mqtt", "--sink", "stdout",
                             "--json"], env=_mqtt_env(broker, prefix))
            assert daemon.proc.wait(timeout=120) == 0
            daemon.stop()
            last = daemon.events[-1]
            text = waiter(lambda: "events 10" in term.screen() and term.screen(), timeout_seconds=30,
                          what="tail to show 10 events")
            assert "file-disco" not in text and "file-metal" in text and last["genre"] in text
            assert all(len(line) <= 80 for line in text.splitlines())
            assert "EXIT=0" in term.interrupt(what="tail to exit")
        finally:
            if daemon is not None:
                daemon.kill()
