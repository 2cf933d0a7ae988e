"""HTTP "radio" servers on 127.0.0.1 (``daemon/stream_server.py`` subprocesses) for the
stream tests, and the MP3s they play; the fixtures ``stream_servers`` and ``stream_mp3s``
are loaded for every test by the root conftest. Every server is stopped by its PID at teardown."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from helpers import free_port, unavailable

STREAM_SERVER = Path(__file__).parent / "daemon" / "stream_server.py"


def stop_process(proc: subprocess.Popen) -> None:
    """Kill by PID and reap."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@dataclass
class StreamServers:
    """Starts ``stream_server.py`` subprocesses; all are killed at teardown."""

    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, mode: str, payload: Path | None = None, port: int | None = None,
              arg: str | None = None) -> tuple[int, subprocess.Popen]:
        """Start ``stream_server.py PORT MODE [PAYLOAD [ARG]]`` (see its docstring for the modes)."""
        port = port or free_port()
        cmd = [sys.executable, str(STREAM_SERVER), str(port), mode] + ([str(payload)] if payload else [])
        cmd += [arg] if arg is not None else []
        deadline = time.monotonic() + 20
        while True:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.procs.append(proc)
            line = proc.stdout.readline()  # "ready PORT", or "" if it died (port still busy)
            if line.startswith("ready"):
                return port, proc
            stop_process(proc)
            if time.monotonic() > deadline:
                pytest.fail(f"stream server did not start on port {port}: {proc.stderr.read()[-500:]}")
            time.sleep(0.1)

    def kill(self, proc: subprocess.Popen) -> None:
        """Kill one server by PID (it stays in the list; teardown reaps it again harmlessly)."""
        stop_process(proc)

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_process(proc)
            for pipe in (proc.stdout, proc.stderr):
                if pipe:
                    pipe.close()


@pytest.fixture()
def stream_servers() -> Iterator[StreamServers]:
    servers = StreamServers()
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture(scope="session")
def stream_mp3s(tmp_path_factory, gtzan_sample: Path) -> dict[int, Path]:
    """12-s MP3s (no tags, so they loop cleanly) of a GTZAN clip at 22050 and 44100 Hz."""
    if shutil.which("ffmpeg") is None:
        unavailable("ffmpeg is not installed (apt-get install ffmpeg)")
    out = tmp_path_factory.mktemp("streams")
    clip = gtzan_sample / "blues" / "blues.00000.wav"
    made = {}
    for rate in (22050, 44100):
        path = out / f"blues-{rate}.mp3"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(clip), "-t", "12", "-ar", str(rate),
                        "-ac", "1", "-b:a", "64k", "-id3v2_version", "0", "-write_xing", "0", "-map_metadata", "-1",
                        str(path)], check=True, timeout=60)
        made[rate] = path
    return made
