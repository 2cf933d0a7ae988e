"""HTTP "radio" servers on 127.0.0.1 (``daemon/stream_server.py`` subprocesses) for the
stream tests; the fixture ``stream_servers`` is loaded for every test by the root conftest.
Every server is stopped by its PID at teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from helpers import free_port

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

    def start(self, mode: str, payload: Path | None = None, port: int | None = None) -> tuple[int, subprocess.Popen]:
        port = port or free_port()
        cmd = [sys.executable, str(STREAM_SERVER), str(port), mode] + ([str(payload)] if payload else [])
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
