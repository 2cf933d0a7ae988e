"""A fleet of daemons: two real `genrecast run --shard K/2` members share the sources of one config,
publish to one real Mosquitto under one prefix, and `genrecast tail` follows both; a member whose
share is empty idles healthy; the health endpoints the Kubernetes probes use."""

from __future__ import annotations

import os
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from helpers import EXE, PCM_RATE, Daemon, free_port, need, scrape_metrics, terminate, wait_for
from mqtt_services import Recorder

from genrecast.daemon.shard import owner

pytestmark = [pytest.mark.service, pytest.mark.slow]

GENRES = ["blues", "classical", "country", "jazz", "metal", "reggae"]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _fleet_config(tmp_path: Path, gtzan_sample: Path, broker, prefix: str) -> Path:
    """Six real GTZAN clips as named file sources, the mqtt sink on the test broker."""
    lines = ['sinks = ["mqtt"]', "", "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}", f'prefix = "{prefix}"',
             "discovery = false", "reconnect_min_seconds = 0.2", "reconnect_max_seconds = 1", ""]
    for genre in GENRES:
        clip = need(gtzan_sample / genre / f"{genre}.00000.wav")
        lines += ["[[sources]]", f'name = "{genre}"', f'spec = "file:{clip}"', ""]
    config = tmp_path / "fleet.toml"
    config.write_text("\n".join(lines))
    return config


def test_two_members_split_the_sources_and_tail_follows_both(tmp_path: Path, gtzan_sample: Path, broker) -> None:
    prefix = f"fleet{uuid.uuid4().hex[:6]}"
    config = _fleet_config(tmp_path, gtzan_sample, broker, prefix)
    expected = {genre: f"member-{owner(genre, 2)}" for genre in GENRES}
    assert set(expected.values()) == {"member-1", "member-2"}  # both members have work with these names
    recorder = Recorder(broker, [f"{prefix}/+/+/event"]).start()
    tail = subprocess.Popen([EXE, "tail", "--broker", f"{broker.host}:{broker.port}", "--prefix", prefix],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    frames: list[str] = []
    threading.Thread(target=lambda: [frames.append(line) for line in tail.stdout], daemon=True).start()
    members = []
    try:
        wait_for(lambda: any("subscribed to" in line for line in frames), 30, "tail to subscribe")
        members = [subprocess.Popen([EXE, "run", "--config", str(config), "--shard", f"{k}/2", "--daemon-id", f"member-{k}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for k in (1, 2)]
        logs = [m.communicate(timeout=240)[1] for m in members]
        assert [m.returncode for m in members] == [0, 0], logs
        for k, log in zip((1, 2), logs):
            mine = [g for g in GENRES if expected[g] == f"member-{k}"]
            assert f"shard {k}/2: listening to {len(mine)} of the 6 configured sources ({', '.join(mine)})" in log

        def by_source() -> dict[str, set[str]]:
            seen: dict[str, set[str]] = {}
            with recorder.lock:
                for message in recorder.messages:
                    _, member, source, _ = message.topic.split("/")
                    seen.setdefault(source, set()).add(member)
            return seen

        wait_for(lambda: set(by_source()) == set(GENRES), 30, "events of every source")
        assert {source: members_seen for source, members_seen in by_source().items()} == \
            {genre: {member} for genre, member in expected.items()}  # each source from exactly one member
        events = len(recorder.messages)
        wait_for(lambda: any(line.startswith(f"events {events} ") for line in frames), 30, "tail to show every event")
        text = "".join(frames[-60:])
        assert "members 2" in text
        for genre, member in expected.items():
            assert f"{genre} @ {member}" in text
    finally:
        for proc in members:
            if proc.poll() is None:
                terminate(proc, 10)
        tail.send_signal(2)
        tail.wait(20)
        recorder.stop()


def test_a_member_with_no_sources_idles_healthy_until_stopped(gtzan_sample: Path) -> None:
    """Member 2 of 2 with the one source member 1 owns: it says so, stays up and healthy, exits 0 on SIGTERM."""
    name = next(f"radio{i}" for i in range(100) if owner(f"radio{i}", 2) == 1)
    clip = need(gtzan_sample / "jazz" / "jazz.00000.wav")
    port = free_port()
    env = {**os.environ, "GENRECAST_METRICS_ENABLED": "true", "GENRECAST_METRICS_PORT": str(port)}
    daemon = Daemon(["--source", f"{name}=file:{clip}", "--shard", "2/2"], env=env)
    try:
        daemon.wait(lambda d: any("none of the 1 configured sources falls to this member" in line for line in d.log), 60,
                    "the empty-share warning")
        wait_for(lambda: _get(port, "/readyz")[0] == 200, 30, "/readyz")
        assert _get(port, "/healthz")[0] == 200
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
        assert daemon.events == [] and not any("Traceback" in line for line in daemon.log)
    finally:
        daemon.kill()


def test_health_endpoints_follow_the_pipeline(rock_pcm: bytes) -> None:
    """/readyz: 503 before audio, 200 after; /healthz: 200 while audio flows, 503 once the source stalls
    past the watchdog limit (WATCHDOG_USEC, 2 s here); /metrics still served beside them."""
    port = free_port()
    env = {**os.environ, "GENRECAST_METRICS_ENABLED": "true", "GENRECAST_METRICS_PORT": str(port), "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    daemon = Daemon(["--source", "-", "--format", "s16le", "--rate", str(PCM_RATE), "--json"], env=env, stdin=subprocess.PIPE)
    try:
        wait_for(lambda: _get(port, "/readyz")[0] != 0, 60, "the health server")
        status, body = _get(port, "/readyz")
        assert status == 503 and body.startswith("not ready")
        daemon.proc.stdin.buffer.write(rock_pcm[: 2 * PCM_RATE * 4])  # 4 s of 16-bit mono
        daemon.proc.stdin.buffer.flush()
        wait_for(lambda: _get(port, "/readyz")[0] == 200, 30, "/readyz to turn 200")
        daemon.wait(lambda d: d.events, 30, "the first event")
        status, body = _get(port, "/healthz")
        assert status == 200 and body.startswith("ok: 1 source(s): stdin")
        assert scrape_metrics(port)["genrecast_windows_classified_total"] >= 1
        wait_for(lambda: _get(port, "/healthz")[0] == 503, 30, "/healthz to turn 503 when the audio stops")
        assert _get(port, "/healthz")[1].startswith("unhealthy")
        daemon.proc.stdin.close()
        assert daemon.proc.wait(30) == 0
    finally:
        daemon.kill()


def test_home_assistant_sees_each_member_with_its_share_only(broker, recorder) -> None:
    """Each member's mqtt sink is given only its share: discovery configs under its own device, for its sources."""
    from genrecast.daemon.config import load_config
    from genrecast.plugins.publisher import open_sink_publisher

    names = ["blues", "classical", "jazz", "metal"]
    rec = recorder(broker, ["homeassistant/#"])
    publishers = []
    try:
        for k in (1, 2):
            flags = {"sources": [f"{n}=file:/nowhere/{n}.wav" for n in names], "shard": f"{k}/2", "sinks": ["mqtt"],
                     "daemon_id": f"member-{k}", "mqtt.host": broker.host, "mqtt.port": broker.port,
                     "mqtt.prefix": f"fleet{uuid.uuid4().hex[:6]}", "mqtt.client_id": f"member-{k}-{uuid.uuid4().hex[:6]}"}
            publishers.append(open_sink_publisher(load_config(None, flags, env={}), ["jazz", "metal"]))

        def devices() -> dict[str, set[str]]:
            seen: dict[str, set[str]] = {}
            for m in list(rec.messages):
                if m.payload and m.topic.endswith("_genre/config") and m.topic.startswith("homeassistant/sensor/"):
                    _, _, device, entity, _ = m.topic.split("/")
                    seen.setdefault(device, set()).add(entity.removesuffix("_genre"))
            return seen

        expected = {f"genrecast_member-{k}": {n for n in names if owner(n, 2) == k} for k in (1, 2)}
        wait_for(lambda: devices() == expected, 30, f"discovery of {expected}")
    finally:
        for publisher in publishers:
            publisher.stop(5.0)


def test_a_member_whose_share_empties_deletes_its_home_assistant_entities(broker, recorder) -> None:
    """A member whose share became empty (a source moved to another member, or more members than
    sources) kept its retained discovery configs: Home Assistant showed the moved source twice, once
    under this member for ever unavailable."""
    from genrecast.daemon.config import load_config
    from genrecast.plugins.publisher import open_sink_publisher

    mine = next(f"radio{i}" for i in range(100) if owner(f"radio{i}", 2) == 2)
    theirs = next(f"radio{i}" for i in range(100) if owner(f"radio{i}", 2) == 1)
    prefix, daemon_id = f"fleet{uuid.uuid4().hex[:6]}", f"member-{uuid.uuid4().hex[:6]}"
    config_topic = f"homeassistant/sensor/genrecast_{daemon_id}/{mine}_genre/config"
    rec = recorder(broker, [config_topic])

    def member(*names: str):
        flags = {"sources": [f"{n}=file:/nowhere/{n}.wav" for n in names], "shard": "2/2", "sinks": ["mqtt"],
                 "daemon_id": daemon_id, "mqtt.host": broker.host, "mqtt.port": broker.port, "mqtt.prefix": prefix}
        return open_sink_publisher(load_config(None, flags, env={}), ["jazz", "metal"])

    publisher = member(mine, theirs)
    try:
        wait_for(lambda: any(m.payload for m in list(rec.messages)), 30, f"the discovery config of {mine}")
    finally:
        publisher.stop(5.0)
    publisher = member(theirs)  # the restart with an empty share
    try:
        wait_for(lambda: list(rec.messages)[-1].payload == b"", 30, f"{mine}'s discovery config deleted")
    finally:
        publisher.stop(5.0)
