"""Soak: hours of real audio, faster than real time, through the whole daemon with the
stdout, logfile (rotating) and MQTT sinks. Memory, descriptors and threads stay flat,
and every event the daemon emitted reaches the broker and the log, in order.

``GENRECAST_SOAK_HOURS`` (audio hours, default 3) and ``GENRECAST_SOAK_SPEED`` (times real
time, default 300) size the run: the defaults take under a minute; e.g.
``GENRECAST_SOAK_HOURS=24 GENRECAST_SOAK_SPEED=300`` soaks a day of audio in under an hour and a half.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path

import pytest

from helpers import wait_for
from mqtt_services import mqtt_env
from reliability.support import first_seen_seqs, open_fds, rss_bytes, threads, STDIN_SOURCE

pytestmark = [pytest.mark.slow, pytest.mark.service]

SOAK_HOURS = float(os.environ.get("GENRECAST_SOAK_HOURS", "3"))
SOAK_SPEED = float(os.environ.get("GENRECAST_SOAK_SPEED", "300"))
WARM_UP_FRACTION = 0.2
"""Resource baselines are taken once this share of the audio has been fed."""
RSS_GROWTH_LIMIT_BYTES = 5 * 1024 * 1024
EVENT_LINE_BYTES = 700
"""About one event's JSON line, to size the log rotation."""
SAMPLE_PERIOD_SECONDS = 1.0


def rotated_files(path: Path) -> list[Path]:
    """The log and its backups, oldest first."""
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return backups + ([path] if path.exists() else [])


def test_soak_hours_of_audio_keep_resources_flat_and_lose_no_event(start_daemon, start_broker, recorder, tmp_path):
    audio_seconds = SOAK_HOURS * 3600
    expected_events = int(audio_seconds / 3)
    max_bytes = max(1000, expected_events * EVENT_LINE_BYTES // 8)  # about 8 rotations
    backups = math.ceil(expected_events * EVENT_LINE_BYTES * 1.5 / max_bytes) + 2  # keep every line
    broker = start_broker()
    prefix = "soak"
    rec = recorder(broker, [f"{prefix}/test/#"])
    log_path = tmp_path / "events.jsonl"
    env = mqtt_env(broker.host, broker.port, prefix, GENRECAST_LOGFILE_MAX_BYTES=str(max_bytes),
                   GENRECAST_LOGFILE_BACKUPS=str(backups))
    run = start_daemon(sinks=["stdout", "logfile", "mqtt"], env=env, speed=SOAK_SPEED, total_seconds=audio_seconds,
                       log_path=log_path, prefix=prefix)
    pid = run.pid
    samples: list[tuple[float, int, int, int]] = []  # (audio seconds fed, rss, fds, threads)
    while not run.feeder.done:
        try:
            samples.append((run.feeder.seconds_written, rss_bytes(pid), open_fds(pid), threads(pid)))
        except OSError:
            break  # the daemon is gone; the exit code below says why
        time.sleep(SAMPLE_PERIOD_SECONDS)  # the sampling period, not a synchronisation
    assert run.feeder.error is None, run.feeder.error
    assert run.daemon.proc.wait(timeout=120) == 0, run.log_text()[-3000:]
    run.daemon.stop()

    # resources: flat after the warm-up
    steady = [s for s in samples if s[0] >= WARM_UP_FRACTION * audio_seconds]
    assert len(steady) >= 10, f"too few samples after the warm-up: {len(steady)}"
    base_fds, base_threads = steady[0][2:]
    # RSS moves a few MB with the queues and numpy's buffers; a leak moves its level: compare
    # the median of the first and last thirds after the warm-up.
    third = len(steady) // 3
    base_rss = statistics.median(s[1] for s in steady[:third])
    rss_growth = statistics.median(s[1] for s in steady[-third:]) - base_rss
    assert rss_growth < RSS_GROWTH_LIMIT_BYTES, f"RSS grew {rss_growth / 1e6:.1f} MB after the warm-up"
    assert {s[2] for s in steady} <= {base_fds, base_fds + 1}, f"open fds moved: {sorted({s[2] for s in steady})}"
    assert {s[3] for s in steady} == {base_threads}, f"threads moved: {sorted({s[3] for s in steady})}"

    # every event the daemon emitted, in order, on stdout, the broker and the log
    events = run.events()
    assert events and [e["seq"] for e in events] == list(range(len(events)))
    topic = f"{prefix}/test/{STDIN_SOURCE}/event"
    wait_for(lambda: len(rec.on(topic)) >= len(events), timeout_seconds=60, what="every event on the broker")
    on_broker = rec.on(topic)
    assert first_seen_seqs(on_broker) == [e["seq"] for e in events]
    assert [json.loads(m.payload) for m in on_broker][: len(events)] == events
    files = rotated_files(log_path)
    assert len(files) >= 4, f"the log should have rotated several times: {files}"
    logged = [json.loads(line) for f in files for line in f.read_text().splitlines()]  # every line parses
    assert logged == events
    assert rec.on(f"{prefix}/test/status")[-1].payload == b"offline"
    dropped = [line for line in run.daemon.log if "dropped" in line and "windows" in line]
    print(f"soak: {audio_seconds / 3600:g} h of audio at {SOAK_SPEED:g}x, {len(events)} events "
          f"({expected_events} windows fed), RSS {base_rss / 1e6:.1f} MB + {rss_growth / 1e6:.2f} MB "
          f"(peak {max(s[1] for s in steady) / 1e6:.1f} MB), "
          f"fds {base_fds}, threads {base_threads}, {len(files)} log files; {dropped[-1].strip() if dropped else 'no drops'}")
