"""Streams people really have (issue 17, items 5, 7 and 8): credentials in the URL, a
camera with its audio off, a missing stream, and a live stream that takes ffmpeg longer to
probe than the stall limit. The streams are made here with ffmpeg and served by
``stream_server.py`` on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon.redact import REDACTED, redact_text, redact_url, url_secrets
from genrecast.daemon.sources import StreamSource
from genrecast.daemon.sources.ffmpeg_errors import explain

from helpers import Daemon, children, free_port, run_cli, scrape_metrics, wait_for

LOGGER = "genrecast.daemon.sources"
PASSWORD = "s3cret-Pa55"
TOKEN = "tok-9f8e7d"


def messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


class Collect:
    """Runs a stream source in a thread, counting the samples it delivers."""

    def __init__(self, source: StreamSource) -> None:
        self.source, self.samples, self.stop = source, 0, threading.Event()
        self.thread = threading.Thread(target=source.run, args=(self._deliver, self.stop), daemon=True)

    def _deliver(self, block: np.ndarray, rate: int) -> None:
        self.samples += len(block)

    def __enter__(self) -> "Collect":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def fast(url: str, stall_seconds: float = 10.0) -> StreamSource:
    return StreamSource(url, stall_seconds=stall_seconds, backoff_initial_seconds=0.1, backoff_max_seconds=0.5)


# -- 5. secrets in stream URLs -------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    (f"http://radio:{PASSWORD}@127.0.0.1:8000/live.mp3", f"http://radio:{REDACTED}@127.0.0.1:8000/live.mp3"),
    (f"rtsp://admin:{PASSWORD}@cam.local:554/stream1", f"rtsp://admin:{REDACTED}@cam.local:554/stream1"),
    (f"https://cdn.example/live.m3u8?session=abc&token={TOKEN}",
     f"https://cdn.example/live.m3u8?session={REDACTED}&token={REDACTED}"),
    (f"https://h.example/s?x-amz-signature={TOKEN}&format=mp3", f"https://h.example/s?x-amz-signature={REDACTED}&format=mp3"),
    ("http://radio@127.0.0.1/live.mp3", "http://radio@127.0.0.1/live.mp3"),
    ("http://127.0.0.1/live.mp3?format=mp3", "http://127.0.0.1/live.mp3?format=mp3"),
])
def test_redact_url_hides_passwords_and_secret_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    said = f"[concat @ 0x5] Impossible to open '{url}'"
    assert all(secret not in redact_text(said, url_secrets(url)) for secret in (PASSWORD, TOKEN))


def test_config_show_redacts_source_credentials(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'sources = ["http://radio:{PASSWORD}@127.0.0.1/live.mp3", "https://h/s?token={TOKEN}"]\n')
    config.chmod(0o644)
    for args in ([], ["--json"]):
        proc = run_cli("config", "show", "--config", str(config), *args)
        assert proc.returncode == 0, proc.stderr
        assert PASSWORD not in proc.stdout + proc.stderr and TOKEN not in proc.stdout + proc.stderr
        assert f"http://radio:{REDACTED}@127.0.0.1/live.mp3" in proc.stdout
    check = run_cli("config", "check", "--config", str(config))
    assert "holds credentials in a source URL and is readable by every user" in check.stderr
    env = {**os.environ, "GENRECAST_SOURCES": f"http://radio:{PASSWORD}@127.0.0.1/live.mp3"}
    proc = run_cli("config", "show", "--config", str(config), env=env)
    assert PASSWORD not in proc.stdout and REDACTED in proc.stdout


def _ffmpeg_cmdlines(pid: int) -> list[bytes]:
    return [Path(f"/proc/{kid}/cmdline").read_bytes() for kid, comm, state in children(pid)
            if comm == "ffmpeg" and state != "Z" and Path(f"/proc/{kid}/cmdline").exists()]


@pytest.mark.slow
@pytest.mark.service
def test_credentials_reach_the_server_but_no_log_metric_or_command_line(stream_servers, stream_mp3s,
                                                                        tmp_path: Path) -> None:
    port, server = stream_servers.start("auth", stream_mp3s[22050], arg=f"radio:{PASSWORD}")
    metrics_port = free_port()
    url = f"http://radio:{PASSWORD}@127.0.0.1:{port}/live.mp3?token={TOKEN}"
    env = {**os.environ, "GENRECAST_METRICS_ENABLED": "true", "GENRECAST_METRICS_PORT": str(metrics_port)}
    daemon = Daemon(["--source", url, "--json", "--verbose", "--stall-seconds", "5"], env=env)
    try:
        daemon.wait(lambda d: len(d.events) >= 2, 60, "events from the password-protected stream")
        cmdlines = wait_for(lambda: _ffmpeg_cmdlines(daemon.proc.pid), what="the stream's ffmpeg")
        assert all(PASSWORD.encode() not in c and TOKEN.encode() not in c for c in cmdlines), cmdlines
        metrics = json.dumps(scrape_metrics(metrics_port))
        assert "genrecast_source_restarts" in metrics and PASSWORD not in metrics and TOKEN not in metrics
        stream_servers.kill(server)  # "ended", then refused reconnects, all logged
        daemon.wait(lambda d: any("ended (" in line for line in d.log), 30, "the stream's end in the log")
        daemon.wait(lambda d: any("connection refused" in line for line in d.log), 30, "a refused reconnect")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    log = "".join(daemon.log)
    assert f"receiving http://radio:{REDACTED}@127.0.0.1:{port}/live.mp3?token={REDACTED}" in log
    assert "ffmpeg" in log.lower() and "DEBUG" in log  # the raw ffmpeg lines were logged too, at debug
    assert PASSWORD not in log and TOKEN not in log
    assert all(PASSWORD not in json.dumps(e) for e in daemon.events)


@pytest.mark.service
def test_a_wrong_password_is_unauthorised_in_words_and_never_shown(stream_servers, stream_mp3s,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    port, _ = stream_servers.start("auth", stream_mp3s[22050], arg="radio:right")
    source = fast(f"http://radio:{PASSWORD}@127.0.0.1:{port}/live.mp3")
    with Collect(source) as run:
        wait_for(lambda: source.restarts >= 2, 30, "two refused attempts")
    assert run.samples == 0
    text = messages(caplog)
    assert f"stream http://radio:{REDACTED}@127.0.0.1:{port}/live.mp3 ended (unauthorised" in text
    assert "401" in text  # ffmpeg's own line, at debug level
    assert PASSWORD not in text and PASSWORD not in repr(source)


# -- 7. the reason, in words ---------------------------------------------------------

@pytest.mark.parametrize("lines, reason", [
    (["Stream map '0:a:0' matches no streams.", "To ignore this, add a trailing '?' to the map."], "no audio stream"),
    (["[http @ 0x1] HTTP error 401 Unauthorized", "http://u:x@h/s: Server returned 401 Unauthorized (authorization failed)"],
     "unauthorised"),
    (["[http @ 0x1] HTTP error 403 Forbidden", "Error opening input files: Server returned 403 Forbidden (access denied)"],
     "forbidden"),
    (["[http @ 0x1] HTTP error 404 Not Found", "http://h/s: Server returned 404 Not Found"], "not found"),
    (["[rtsp @ 0x1] method DESCRIBE failed: 404 Not Found"], "not found"),
    (["[tcp @ 0x1] Connection to tcp://127.0.0.1:9 failed: Connection refused", "Error opening input file"],
     "connection refused"),
    (["[tcp @ 0x1] Connection to tcp://10.1.1.1:80 failed: Connection timed out"], "timed out"),
    (["[tcp @ 0x1] Failed to resolve hostname radio.invalid: Name or service not known"], "host not found"),
    (["/dev/fd/3: Invalid data found when processing input"], "not decodable"),
    (["[http @ 0x1] Stream ends prematurely at 1000, should be 5000"], "connection lost"),
    (["Input #0, mp3, from 'http://h/forbidden-404.mp3':", "  Metadata:", "    icy-name        : Forbidden Radio",
      "Something new went wrong"], "ffmpeg said: Something new went wrong"),
    # ffmpeg writes a 500 reply as "5XX", and a memory address is not for users (both were shown as they came)
    (["http://h/s: Server returned 5XX Server Error reply"], "server error (HTTP 5xx)"),
    (["[mp3 @ 0x55d4c0a1b2c0] invalid concatenated file detected - using bitrate for duration"],
     "ffmpeg said: invalid concatenated file detected - using bitrate for duration"),
])
def test_ffmpeg_failures_are_explained_in_words(lines: list[str], reason: str) -> None:
    assert explain(lines).startswith(reason)


@pytest.fixture(scope="module")
def video_only(tmp_path_factory) -> Path:
    """Five seconds of MPEG-TS video without audio, like a camera with its microphone off."""
    out = tmp_path_factory.mktemp("camera") / "camera.ts"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25",
                    "-t", "5", "-c:v", "mpeg1video", "-f", "mpegts", str(out)], check=True, timeout=60)
    return out


@pytest.mark.service
@pytest.mark.parametrize("mode, reason", [("video", "no audio stream"), ("missing", "not found")])
def test_a_stream_that_cannot_work_is_retried_with_the_reason_in_words(
        stream_servers, video_only: Path, caplog: pytest.LogCaptureFixture, mode: str, reason: str) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    port, _ = stream_servers.start("mp3" if mode == "video" else "missing", video_only if mode == "video" else None)
    source = fast(f"http://127.0.0.1:{port}/camera")
    with Collect(source) as run:
        wait_for(lambda: source.restarts >= 2, 30, "two attempts")
    assert run.samples == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert warnings and all(f"({reason}" in w and "reconnecting in" in w for w in warnings), warnings
    assert "trailing '?'" not in "\n".join(warnings)
    if mode == "video":  # the raw line is still there for whoever debugs
        debug = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.DEBUG]
        assert any("matches no streams" in line for line in debug)


# -- 8. a stall limit below ffmpeg's start-up ------------------------------------------

@pytest.fixture(scope="module")
def broadcast_ts(tmp_path_factory) -> Path:
    """20 s of MPEG-TS with 64 kbit/s MP2 audio, as a DVB or IPTV feed carries it."""
    out = tmp_path_factory.mktemp("broadcast") / "feed.ts"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=20", "-ar", "44100",
                    "-ac", "2", "-c:a", "mp2", "-b:a", "64k", "-f", "mpegts", str(out)], check=True, timeout=60)
    return out


@pytest.mark.service
def test_a_live_stream_slower_to_probe_than_the_stall_limit_is_not_a_stall(
        stream_servers, broadcast_ts: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An MPEG-TS feed served at real time: ffmpeg reads ~5 s of it before its first
    output. With a 2-s stall limit the stream starts and is never called stalled, while
    a server that sends nothing still is (tests/daemon/test_sources.py)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    bytes_per_second = broadcast_ts.stat().st_size // 20
    port, _ = stream_servers.start("live", broadcast_ts, arg=str(bytes_per_second))
    source = fast(f"http://127.0.0.1:{port}/feed.ts", stall_seconds=2.0)
    with Collect(source) as run:
        wait_for(lambda: run.samples >= 3 * 44100, 40, "3 s of audio from the live stream")
    assert source.stalls == 0 and source.restarts == 0, messages(caplog)
    assert "stalled" not in messages(caplog)
