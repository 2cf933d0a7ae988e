"""The event log's disk refuses writes (a full tmpfs; a file-size limit), and ``kill -9``
of the daemon mid-write followed by a restart."""

from __future__ import annotations

import json
import os
import resource
import signal
import uuid
from pathlib import Path

import pytest

from helpers import file_lines, fill_disk, small_tmpfs, wait_for
from mqtt_services import mqtt_env
from reliability.support import STDIN_SOURCE

pytestmark = [pytest.mark.slow, pytest.mark.service]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 64 KiB tmpfs mounted for the test (root only), unmounted at teardown."""
    (tmp_path / "disk").mkdir()
    with small_tmpfs(tmp_path / "disk", "64k") as mount_point:
        yield mount_point


def test_full_disk_logfile_reports_keeps_lines_and_catches_up(small_disk: Path, start_daemon):
    log_path = small_disk / "events.jsonl"
    run = start_daemon(sinks=["stdout", "logfile"], log_path=log_path, metrics=True)
    wait_for(lambda: len(file_lines(log_path)) >= 3, what="events in the log")
    filler = fill_disk(small_disk)
    run.wait_log("No space left on device")
    full_at = len(run.events())
    run.wait_events(full_at + 10, what="10 events on stdout while the disk is full")  # the outage's length
    metrics = run.metrics()
    assert metrics['genrecast_sink_errors_total{sink="logfile"}'] > 0
    assert metrics['genrecast_sink_queue_depth{sink="logfile"}'] > 0  # kept to retry
    assert metrics['genrecast_sink_errors_total{sink="stdout"}'] == 0
    assert run.daemon.proc.poll() is None
    assert all(json.loads(line) for line in file_lines(log_path))  # no cut line was left behind
    filler.unlink()  # space again
    wait_for(lambda: len(file_lines(log_path)) >= full_at + 10, what="the log to catch up")
    run.close_stdin()
    assert run.daemon.proc.wait(timeout=60) == 0, run.log_text()[-2000:]
    assert [json.loads(line) for line in file_lines(log_path)] == run.events()  # nothing lost, nothing twice
    errors = [line for line in run.daemon.log if "sink logfile failed" in line]
    assert errors and "cannot write" in errors[0] and "kept to retry" in errors[0]
    assert "Traceback" not in run.log_text()


def test_file_size_limit_is_reported_and_other_sinks_go_on(tmp_path: Path, start_daemon):
    """RLIMIT_FSIZE on the daemon: writes past it fail with EFBIG (CPython ignores SIGXFSZ,
    so the process is not killed); the log keeps only whole lines."""
    limit = 20_000
    log_path = tmp_path / "events.jsonl"
    run = start_daemon(sinks=["stdout", "logfile"], log_path=log_path, metrics=True,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    run.wait_log("File too large")
    at_limit = len(run.events())
    run.wait_events(at_limit + 10, what="10 more events on stdout past the limit")
    metrics = run.metrics()
    assert metrics['genrecast_sink_errors_total{sink="logfile"}'] > 0
    assert metrics['genrecast_sink_errors_total{sink="stdout"}'] == 0
    data = log_path.read_bytes()
    assert data.endswith(b"\n") and len(data) <= limit
    logged = [json.loads(line) for line in data.decode().splitlines()]
    assert logged == run.events()[: len(logged)]
    assert run.stop() == 0
    assert "Traceback" not in run.log_text()
    assert "never written" in run.log_text()  # what was kept is reported at the end


def test_kill_9_mid_write_then_restart_keeps_the_log_parseable(start_broker, recorder, start_daemon, tmp_path: Path):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    broker = start_broker()
    rec = recorder(broker, [f"{prefix}/test/#"])
    log_path = tmp_path / "events.jsonl"
    env = mqtt_env(broker.host, broker.port, prefix)
    first = start_daemon(sinks=["stdout", "logfile", "mqtt"], env=env, prefix=prefix, log_path=log_path, speed=40)
    wait_for(lambda: len(file_lines(log_path)) >= 30, what="the log to fill")
    os.kill(first.pid, signal.SIGKILL)  # while it writes several lines a second
    first.daemon.proc.wait(timeout=10)
    status = f"{prefix}/test/status"
    wait_for(lambda: rec.on(status) and rec.on(status)[-1].payload == b"offline", what="the last will")
    killed_at = log_path.stat().st_size
    before = file_lines(log_path)
    complete = before if log_path.read_bytes().endswith(b"\n") else before[:-1]  # at most the last line is cut
    first_logged = [json.loads(line) for line in complete]
    printed = first.events()
    shorter = min(len(first_logged), len(printed))
    assert first_logged[:shorter] == printed[:shorter] and shorter >= 30

    second = start_daemon(sinks=["stdout", "logfile", "mqtt"], env=env, prefix=prefix, log_path=log_path, speed=40)
    second.wait_events(10)
    wait_for(lambda: rec.on(status)[-1].payload == b"online", what="online again")
    assert second.stop() == 0
    wait_for(lambda: rec.on(status)[-1].payload == b"offline", what="offline at the clean stop")
    after = log_path.read_bytes()[killed_at:].decode()
    assert [json.loads(line) for line in after.splitlines() if line] == second.events()
    on_broker = [json.loads(m.payload) for m in rec.on(f"{prefix}/test/{STDIN_SOURCE}/event")]
    assert second.events()[-1] in on_broker
