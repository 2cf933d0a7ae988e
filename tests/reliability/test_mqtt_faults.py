"""The daemon against a misbehaving Mosquitto: absent at start, restarted twice, frozen
(SIGSTOP: it accepts but stops reading). Events are produced by a real ``genrecast run``
fed real audio on stdin; what the daemon printed on stdout is the list every other sink
is compared with."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest

from genrecast.plugins.mqtt_sink import INFLIGHT_WINDOW
from helpers import wait_for
from mqtt_services import mqtt_env
from reliability.support import STDIN_SOURCE, first_seen_seqs

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _persistent_recorder(recorder, broker, prefix: str):
    """A recorder with a persistent session: the broker keeps its subscription (on disk,
    across its own restarts) and queues what is published while the recorder is away."""
    return recorder(broker, [f"{prefix}/test/#"], client_id=f"rec-{prefix}", clean_session=False)


def _every_event_on_the_broker(run, rec, prefix: str) -> tuple[list[dict], str]:
    """Wait until every event the daemon printed is on the broker, and check they came once each, in
    order (a QoS 1 repeat counted once); returns the printed events and their topic."""
    events = run.events()
    topic = f"{prefix}/test/{STDIN_SOURCE}/event"
    wait_for(lambda: len(set(first_seen_seqs(rec.on(topic)))) >= len(events), what="every event on the broker")
    assert first_seen_seqs(rec.on(topic)) == [e["seq"] for e in events] == list(range(len(events)))
    return events, topic


def test_broker_absent_at_start_then_appears_delivers_every_event_in_order(start_broker, recorder, start_daemon):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    broker = start_broker(persistence=True)
    rec = _persistent_recorder(recorder, broker, prefix)
    broker.stop()  # no broker when the daemon starts
    run = start_daemon(sinks=["stdout", "mqtt"], env=mqtt_env(broker.host, broker.port, prefix), prefix=prefix)
    run.wait_log("MQTT: cannot connect to 127.0.0.1")
    run.wait_events(10, what="10 events while there is no broker")
    assert run.daemon.proc.poll() is None
    broker.start()
    run.wait_log("MQTT: connected to")
    run.wait_events(len(run.events()) + 5, what="5 more events after the broker appeared")
    run.close_stdin()  # the input ends: the daemon delivers what is queued and exits
    assert run.daemon.proc.wait(timeout=60) == 0, run.log_text()[-2000:]
    _every_event_on_the_broker(run, rec, prefix)
    assert [m.payload for m in rec.on(f"{prefix}/test/status") if not m.retain][-1] == b"offline"


def test_a_run_whose_input_ends_while_the_broker_is_away_waits_for_it(start_broker, recorder, start_daemon):
    """The input ended during an outage: the run gave up on the MQTT sink's queue at once ('10 events
    undelivered', exit 1) though the broker was back a second later; now it waits while the broker
    may come back (8 s without progress), and delivers every event."""
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    broker = start_broker(persistence=True)
    rec = _persistent_recorder(recorder, broker, prefix)
    broker.stop()
    run = start_daemon(sinks=["stdout", "mqtt"], env=mqtt_env(broker.host, broker.port, prefix), prefix=prefix)
    run.wait_log("MQTT: cannot connect to 127.0.0.1")
    run.wait_events(5, what="5 events while there is no broker")
    run.close_stdin()
    run.wait_log("end of input")
    broker.start()
    assert run.daemon.proc.wait(timeout=60) == 0, run.log_text()[-2000:]
    _every_event_on_the_broker(run, rec, prefix)
    assert "undelivered" not in run.log_text()


def test_broker_restarted_twice_loses_no_event_and_status_follows(start_broker, recorder, start_daemon):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    broker = start_broker(persistence=True)
    rec = _persistent_recorder(recorder, broker, prefix)
    run = start_daemon(sinks=["stdout", "mqtt"], env=mqtt_env(broker.host, broker.port, prefix), prefix=prefix,
                       metrics=True)
    run.wait_log("MQTT: connected to")
    for outage in (1, 2):
        run.wait_events(len(run.events()) + 3)
        broker.stop()
        run.wait_log("MQTT: lost the connection", count=outage)
        wait_for(lambda: run.metrics()["genrecast_mqtt_connected"] == 0, what="connected gauge 0")
        run.wait_events(len(run.events()) + 10, what="10 events while the broker is down")  # the outage's length
        broker.start()
        run.wait_log("(reconnected)", count=outage)
        wait_for(lambda: run.metrics()["genrecast_mqtt_connected"] == 1, what="connected gauge 1")
    assert run.metrics()["genrecast_mqtt_reconnects_total"] == 2
    run.wait_events(len(run.events()) + 3)
    run.close_stdin()
    assert run.daemon.proc.wait(timeout=60) == 0, run.log_text()[-2000:]
    events, topic = _every_event_on_the_broker(run, rec, prefix)
    assert [json.loads(m.payload) for m in rec.on(topic)][-1] == events[-1]
    # Status as a subscriber sees it live (retained copies re-sent on its re-subscription left
    # out, a QoS 1 repeat counted once): Mosquitto sends our last will "offline" as it shuts
    # down, we say "online" after each reconnection and "offline" at the clean stop.
    live = [m.payload.decode() for m in rec.on(f"{prefix}/test/status") if not m.retain]
    collapsed = [s for i, s in enumerate(live) if i == 0 or s != live[i - 1]]
    assert collapsed == ["online", "offline"] * 3, live


def test_broker_that_stops_reading_bounds_the_mqtt_queue_and_spares_other_sinks(start_broker, recorder, start_daemon,
                                                                              tmp_path):
    queue_size = 30
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    broker = start_broker()
    rec = recorder(broker, [f"{prefix}/test/+/event"])
    log_path = tmp_path / "events.jsonl"
    env = mqtt_env(broker.host, broker.port, prefix, GENRECAST_MQTT_QUEUE_SIZE=str(queue_size))
    run = start_daemon(sinks=["stdout", "logfile", "mqtt"], env=env, prefix=prefix, log_path=log_path, metrics=True,
                       speed=20)
    topic = f"{prefix}/test/{STDIN_SOURCE}/event"
    wait_for(lambda: len(rec.on(topic)) >= 3, what="events on the broker")
    os.kill(broker.proc.pid, signal.SIGSTOP)  # the broker holds its connections but reads nothing
    try:
        frozen_at = len(run.events())
        classified_before = run.metrics()["genrecast_windows_classified_total"]
        more = queue_size + INFLIGHT_WINDOW + 30  # more than the MQTT queue and paho's window hold
        run.wait_events(frozen_at + more, what=f"{more} events on stdout while the broker is frozen")
        metrics = wait_for(lambda: (m := run.metrics())['genrecast_sink_dropped_total{sink="mqtt"}'] > 0 and m,
                           what="the MQTT sink to drop and count")
        assert metrics['genrecast_sink_queue_depth{sink="mqtt"}'] <= queue_size + INFLIGHT_WINDOW
        assert metrics["genrecast_windows_classified_total"] > classified_before  # capture goes on
        for sink in ("stdout", "logfile"):
            assert metrics[f'genrecast_sink_dropped_total{{sink="{sink}"}}'] == 0
            assert metrics[f'genrecast_sink_errors_total{{sink="{sink}"}}'] == 0
        wait_for(lambda: len(log_path.read_text().splitlines()) >= frozen_at + more, what="the log to keep up")
        assert run.daemon.proc.poll() is None
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    # thawed: the connection carries on with the newest events, in order
    newest = run.wait_events(len(run.events()) + 3)[-1]["seq"]
    wait_for(lambda: newest in first_seen_seqs(rec.on(topic)), what="events after the broker thawed")
    assert run.stop() == 0
    got = first_seen_seqs(rec.on(topic))
    assert got == sorted(got), "never out of order"
    events = run.events()
    assert len(got) < len(events), "the frozen broker's share was dropped (and counted)"
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert logged == events  # the log lost nothing


def test_second_sigint_exits_at_once_while_the_first_waits_on_a_frozen_broker(start_broker, recorder, start_daemon):
    """The first SIGINT starts the graceful stop, which waits (up to its deadline) for the frozen
    broker to acknowledge; a second SIGINT ends the process at once, with status 130."""
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    broker = start_broker()
    rec = recorder(broker, [f"{prefix}/test/+/event"])
    run = start_daemon(sinks=["stdout", "mqtt"], env=mqtt_env(broker.host, broker.port, prefix), prefix=prefix)
    wait_for(lambda: len(rec.on(f"{prefix}/test/{STDIN_SOURCE}/event")) >= 2, what="events on the broker")
    os.kill(broker.proc.pid, signal.SIGSTOP)
    try:
        run.wait_events(len(run.events()) + 3, what="events the frozen broker will not acknowledge")
        run.daemon.proc.send_signal(signal.SIGINT)
        run.wait_log("received SIGINT: stopping")
        assert run.daemon.proc.poll() is None  # still delivering: the graceful stop is under way
        run.daemon.proc.send_signal(signal.SIGINT)
        assert run.daemon.proc.wait(timeout=30) == 130
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    assert "undelivered" not in run.log_text()  # the graceful stop never got to its end
