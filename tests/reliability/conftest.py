"""Fixtures for the reliability tests (their helpers live in support.py; Mosquitto,
the MQTT recorder and the stream servers come from the root conftest).
Every process a fixture starts is stopped by its PID at teardown."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from helpers import Daemon, free_port, wait_for
from reliability.support import RATE, Feeder, Run, _answers


@pytest.fixture
def start_daemon(trained_bundle: Path, rock_pcm: bytes, tmp_path_factory) -> Iterator[Callable[..., Run]]:
    """Factory: ``start_daemon(sinks=[...], env={...}, speed=10, total_seconds=None, metrics=False,
    extra_args=[])`` → a :class:`Run` of ``genrecast run --source - --format s16le --rate 22050 --json``
    fed by a :class:`Feeder` (``speed=None``: no feeder, stdin stays open). Killed at teardown."""
    runs: list[Run] = []

    def start(sinks: list[str] = ("stdout",), env: dict[str, str] | None = None, speed: float | None = 10.0,
              total_seconds: float | None = None, metrics: bool = False, extra_args: list[str] = (),
              log_path: Path | None = None, prefix: str | None = None, preexec_fn=None) -> Run:
        work = tmp_path_factory.mktemp("daemon")
        config = work / "config.toml"
        config.write_text("")  # hermetic: never /etc/genrecast/config.toml
        prefix = prefix or f"gc{uuid.uuid4().hex[:6]}"
        full_env = {**os.environ, "GENRECAST_CONFIG": str(config), **(env or {})}
        if log_path is not None:
            full_env["GENRECAST_LOGFILE_PATH"] = str(log_path)
        port = None
        if metrics:
            port = free_port()
            full_env.update(GENRECAST_METRICS_ENABLED="true", GENRECAST_METRICS_PORT=str(port))
        args = ["--bundle", str(trained_bundle), "--source", "-", "--format", "s16le", "--rate", str(RATE), "--json"]
        for sink in sinks:
            args += ["--sink", sink]
        args += list(extra_args)
        read_fd, write_fd = os.pipe()  # a binary pipe (the Daemon's own pipes are text)
        try:
            daemon = Daemon(args, env=full_env, stdin=read_fd, preexec_fn=preexec_fn)
        finally:
            os.close(read_fd)
        stdin = os.fdopen(write_fd, "wb")
        feeder = Feeder(stdin, rock_pcm, speed, total_seconds) if speed else None
        run = Run(daemon, stdin, feeder, full_env, prefix, log_path, port)
        runs.append(run)
        if metrics:
            wait_for(lambda: _answers(port), timeout_seconds=60, what="the metrics endpoint")
        return run

    yield start
    for run in runs:
        run.close_stdin()
        run.daemon.kill()
        for t in run.daemon._threads:
            t.join(timeout=5)
