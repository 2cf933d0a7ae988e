"""The daemon as a service: sd_notify on a real NOTIFY_SOCKET, the watchdog, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers import EXE, PCM_RATE, free_port, scrape_metrics



class NotifySocket:
    """A real datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, predicate, deadline_seconds: float, after: int = 0) -> str:
        """Receive until a message (after the first ``after``) satisfies ``predicate``."""
        end = time.monotonic() + deadline_seconds
        for message in self.messages[after:]:
            if predicate(message):
                return message
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                message = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append(message)
            if predicate(message):
                return message
        raise AssertionError(f"no matching sd_notify message within {deadline_seconds} s; got {self.messages[-5:]}")

    def drain(self, seconds: float) -> list[str]:
        """Every message that arrives within ``seconds`` (a scenario duration, not a synchronisation)."""
        end = time.monotonic() + seconds
        got = []
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                break
        self.messages += got
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def _stdin_daemon_args(bundle: Path) -> list[str]:
    return [EXE, "run", "--bundle", str(bundle), "--source", "-", "--format", "s16le", "--rate", str(PCM_RATE), "--json"]


def _start_stdin_daemon(bundle: Path, env: dict) -> subprocess.Popen:
    """A daemon reading 16-bit PCM at ``PCM_RATE`` from a pipe we hold."""
    return subprocess.Popen(_stdin_daemon_args(bundle), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _pcm(rock_pcm: bytes, seconds: float) -> bytes:
    """The first ``seconds`` of the rock clip as that daemon reads it (2 bytes a sample)."""
    return rock_pcm[: 2 * int(PCM_RATE * seconds)]


@pytest.mark.slow
def test_ready_watchdog_stall_and_stopping(trained_bundle: Path, rock_pcm: bytes, notify_socket: NotifySocket) -> None:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1500000"}
    env.pop("WATCHDOG_PID", None)
    proc = _start_stdin_daemon(trained_bundle, env)
    try:
        proc.stdin.write(_pcm(rock_pcm, 7))
        proc.stdin.flush()
        ready = notify_socket.wait_for(lambda m: "READY=1" in m, 60)
        assert "STATUS=" in ready
        notify_socket.wait_for(lambda m: "WATCHDOG=1" in m, 10)
        # no more audio: the pipeline stalls, so the watchdog must stop being petted
        notify_socket.wait_for(lambda m: "stalled" in m, 10, after=len(notify_socket.messages))
        quiet = notify_socket.drain(2.0)
        assert not any("WATCHDOG=1" in m for m in quiet), quiet
        # audio again: petting resumes
        proc.stdin.write(_pcm(rock_pcm, 4))
        proc.stdin.flush()
        notify_socket.wait_for(lambda m: "WATCHDOG=1" in m, 10, after=len(notify_socket.messages))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        notify_socket.wait_for(lambda m: "STOPPING=1" in m, 5)
        assert len(out.decode().splitlines()) >= 3  # the buffered windows were classified before exit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_missing_microphone_is_waited_for_not_a_stall(trained_bundle: Path, notify_socket: NotifySocket) -> None:
    """A microphone that is not there (yet): the service says READY and what it waits for,
    and goes on petting the watchdog while the source retries, so systemd does not kill and
    restart it in a loop. (A source that is connected but silent still stalls: see above.)"""
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1500000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([EXE, "run", "--bundle", str(trained_bundle), "--source", "mic:no-such-device-gc", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        ready = notify_socket.wait_for(lambda m: "READY=1" in m, 60)
        assert "waiting to retry: mic-no-such-device-gc" in ready
        for _ in range(8):  # at one pet per 0.5 s, well past the 1.5-s watchdog limit
            notify_socket.wait_for(lambda m: "WATCHDOG=1" in m, 10, after=len(notify_socket.messages))
        assert not any("stalled" in m for m in notify_socket.messages)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "no input device matching 'no-such-device-gc'" in err.decode() and "retrying in" in err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_stdin_source_ends_cleanly(trained_bundle: Path, rock_pcm: bytes) -> None:
    proc = subprocess.run(
        _stdin_daemon_args(trained_bundle),
        input=_pcm(rock_pcm, 10), capture_output=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    import json

    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [e["audio_start_seconds"] for e in events] == [0.0, 3.0, 6.0, 9.0][: len(events)]
    assert len(events) == 3  # the last second is shorter than half a window


@pytest.mark.slow
def test_prometheus_counters_move(trained_bundle: Path, rock_pcm: bytes, notify_socket: NotifySocket) -> None:
    port = free_port()
    env = {**os.environ, "GENRECAST_METRICS_ENABLED": "true", "GENRECAST_METRICS_PORT": str(port),
           "NOTIFY_SOCKET": str(notify_socket.path)}
    proc = _start_stdin_daemon(trained_bundle, env)
    try:
        proc.stdin.write(_pcm(rock_pcm, 4))
        proc.stdin.flush()
        notify_socket.wait_for(lambda m: "READY=1" in m, 60)
        notify_socket.wait_for(lambda m: "1 events" in m, 10)
        first = scrape_metrics(port)
        assert first["genrecast_windows_classified_total"] == 1
        assert first["process_resident_memory_bytes"] > 10e6
        proc.stdin.write(_pcm(rock_pcm, 6))
        proc.stdin.flush()
        notify_socket.wait_for(lambda m: "3 events" in m, 10)
        second = scrape_metrics(port)
        assert second["genrecast_windows_classified_total"] == 3
        assert second["genrecast_classification_seconds_count"] >= 1
        assert sum(v for k, v in second.items() if k.startswith("genrecast_events_total")) == 3
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_crashed_live_source_makes_the_daemon_unhealthy():
    """A stream or microphone retries what it expects; one whose thread died on an unexpected error
    is gone until the service restarts, so the watchdog stops petting (and /healthz says 503) even
    while other sources are live. A file that failed is not a reason: it has ended."""
    import time
    import types

    from genrecast.daemon.service import Watchdog

    live, other, file = (types.SimpleNamespace(name=n, finite=f) for n, f in (("radio", False), ("mic", False), ("clip", True)))
    heard = types.SimpleNamespace(last_audio_monotonic=time.monotonic())
    pipeline = types.SimpleNamespace(sources=[live, other, file], failed_sources=[], last_progress_monotonic=time.monotonic(),
                                     states={"radio": heard, "mic": heard, "clip": heard})
    watchdog = Watchdog(pipeline, notifier=None, timeout_seconds=30)
    assert watchdog.healthy()
    pipeline.failed_sources.append("clip")
    assert watchdog.healthy()
    pipeline.failed_sources.append("radio")
    assert not watchdog.healthy() and watchdog._crashed() == ["radio"]
