"""Streams that fail inside one running daemon: a silent one (stalls, restarted), one that
serves garbage (a clear log line, retried) and a radio whose server is killed and comes
back. The daemon stays up, leaves no zombie ffmpeg and at most one ffmpeg per stream.

Covered elsewhere and not repeated here: tests/daemon/test_run.py
(test_stream_reconnects_after_server_restart_and_leaves_no_ffmpeg,
test_microphone_vanishes_and_comes_back, test_bad_sources_beside_a_good_one) and
tests/daemon/test_sources.py (test_stream_that_sends_nothing_is_a_stall_and_restarts,
test_stream_of_garbage_is_logged_and_retried, test_mic_survives_the_device_vanishing_and_resumes).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import Daemon, children, ffmpeg_processes_mentioning, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _ffmpeg_children_are_tidy(pid: int, streams: int) -> bool:
    kids = [(p, state) for p, comm, state in children(pid) if comm == "ffmpeg"]
    return not any(state == "Z" for _, state in kids) and len(kids) <= streams


def test_silent_garbage_and_dying_streams_in_one_daemon(trained_bundle: Path, stream_servers, stream_mp3s: dict[int, Path],
                                                        tmp_path: Path) -> None:
    hold_port, _ = stream_servers.start("hold")
    garbage_port, _ = stream_servers.start("garbage")
    radio_port, radio = stream_servers.start("mp3", stream_mp3s[22050])
    urls = [f"http://127.0.0.1:{hold_port}/silent", f"http://127.0.0.1:{garbage_port}/garbage",
            f"http://127.0.0.1:{radio_port}/radio.mp3"]
    config = tmp_path / "config.toml"
    config.write_text("")
    args = ["--bundle", str(trained_bundle), "--json", "--stall-seconds", "2"]
    for url in urls:
        args += ["--source", url]
    daemon = Daemon(args, env={**os.environ, "GENRECAST_CONFIG": str(config)})
    pid = daemon.proc.pid
    radio_name = "stream-3"

    def radio_events(d) -> int:
        return sum(e["source"] == radio_name for e in d.events)

    try:
        daemon.wait(lambda d: radio_events(d) >= 3, 60, "3 events from the radio")
        daemon.wait(lambda d: sum("stream-1" in line and "(stalled" in line for line in d.log) >= 2, 30,
                    "the silent stream to stall twice")
        daemon.wait(lambda d: sum("stream-2" in line and "not decodable" in line
                                  for line in d.log) >= 2, 30, "the garbage stream to be reported twice")
        wait_for(lambda: _ffmpeg_children_are_tidy(pid, len(urls)), what="no zombie ffmpeg, one per stream at most")
        stream_servers.kill(radio)
        daemon.wait(lambda d: any("stream-3" in line and "reconnecting in" in line for line in d.log), 30,
                    "the radio's failure in the log")
        wait_for(lambda: _ffmpeg_children_are_tidy(pid, len(urls)), what="no zombie ffmpeg after the radio died")
        before = radio_events(daemon)
        stream_servers.start("mp3", stream_mp3s[22050], port=radio_port)
        daemon.wait(lambda d: radio_events(d) >= before + 3, 60, "radio events after its server came back")
        wait_for(lambda: _ffmpeg_children_are_tidy(pid, len(urls)), what="no zombie ffmpeg after the comeback")
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    log = "".join(daemon.log)
    assert "Traceback" not in log
    seqs = [e["seq"] for e in daemon.events if e["source"] == radio_name]
    assert seqs == list(range(len(seqs)))
    assert not [e for e in daemon.events if e["source"] in ("stream-1", "stream-2") and e["state"] == "music"]
    for url in urls:
        assert ffmpeg_processes_mentioning(url) == []
