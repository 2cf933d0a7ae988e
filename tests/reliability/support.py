"""Helpers of the reliability tests: the real daemon fed paced PCM on stdin (:class:`Feeder`,
:class:`Run`), test certificates, /proc readers, the daemon's Prometheus endpoint.

The Mosquitto and stream-server classes live in ``tests/mqtt_services.py`` and
``tests/stream_services.py``. Every process a fixture starts is stopped by its PID at
teardown (see conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from helpers import PCM_RATE, Daemon, scrape_metrics
from mqtt_services import Message

RATE = PCM_RATE  # what the rock_pcm fixture holds
STDIN_SOURCE = "stdin"
"""The name (and topic level) of the ``-`` source."""


# -- processes ----------------------------------------------------------------------

def proc_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a dict (``VmRSS``, ``Threads``, ``State``, ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def rss_bytes(pid: int) -> int:
    return int(proc_status(pid)["VmRSS"].split()[0]) * 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


# -- audio --------------------------------------------------------------------------

class Feeder:
    """Writes a looped PCM clip into a daemon's stdin at ``speed`` times real time from a
    thread, until ``total_seconds`` of audio (then closes stdin: the run ends) or ``stop()``."""

    def __init__(self, stdin, pcm: bytes, speed: float, total_seconds: float | None = None,
                 block_seconds: float = 0.25) -> None:
        self.stdin, self.pcm, self.speed, self.total_seconds = stdin, pcm, speed, total_seconds
        self.block_bytes = int(RATE * block_seconds) * 2
        self.seconds_written = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        offset = 0
        try:
            while not self._stop.is_set():
                if self.total_seconds is not None and self.seconds_written >= self.total_seconds:
                    break
                block = self.pcm[offset : offset + self.block_bytes]
                if len(block) < self.block_bytes:
                    block += self.pcm[: self.block_bytes - len(block)]
                offset = (offset + self.block_bytes) % len(self.pcm)
                self.stdin.write(block)
                self.stdin.flush()
                self.seconds_written += len(block) / 2 / RATE
                # pacing the audio clock against the wall clock, not a synchronisation
                self._stop.wait(max(0.0, started + self.seconds_written / self.speed - time.monotonic()))
        except (BrokenPipeError, ValueError, OSError) as exc:
            if not self._stop.is_set():
                self.error = exc
        finally:
            try:
                self.stdin.close()
            except OSError:
                pass

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


# -- the daemon ---------------------------------------------------------------------

@dataclass
class Run:
    """One ``genrecast run`` reading PCM from stdin, with its feeder and settings."""

    daemon: Daemon
    stdin: Any
    feeder: Feeder | None
    env: dict[str, str]
    prefix: str
    log_path: Path | None
    metrics_port: int | None

    @property
    def pid(self) -> int:
        return self.daemon.proc.pid

    def events(self) -> list[dict]:
        with self.daemon._changed:
            return list(self.daemon.events)

    def log_text(self) -> str:
        with self.daemon._changed:
            return "".join(self.daemon.log)

    def wait_events(self, count: int, deadline_seconds: float = 60.0, what: str | None = None) -> list[dict]:
        return self.daemon.wait(lambda d: len(d.events) >= count and d.events, deadline_seconds,
                                what or f"{count} events on stdout")

    def wait_log(self, text: str, deadline_seconds: float = 30.0, count: int = 1) -> None:
        self.daemon.wait(lambda d: sum(text in line for line in d.log) >= count, deadline_seconds,
                         f"{count} x {text!r} in the log")

    def metrics(self) -> dict[str, float]:
        assert self.metrics_port is not None
        return scrape_metrics(self.metrics_port)

    def stop(self, deadline_seconds: float = 30.0) -> int:
        """Stop feeding (closing stdin), SIGTERM, and return the exit code."""
        self.close_stdin()
        return self.daemon.stop(timeout=deadline_seconds)

    def close_stdin(self) -> None:
        if self.feeder is not None:
            self.feeder.stop()
        try:
            self.stdin.close()
        except OSError:
            pass


def _answers(port: int) -> bool:
    try:
        scrape_metrics(port)
        return True
    except OSError:
        return False


# -- Mosquitto ----------------------------------------------------------------------

def make_certificates(directory: Path) -> Path:
    """With ``openssl``: a CA, a server certificate for 127.0.0.1 and a client certificate
    signed by it, and a second, unrelated CA (``other-ca.crt``)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN=genrecast test {ca}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        (directory / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n" + ext)
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=genrecast-{name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    for path in directory.glob("*.key"):
        path.chmod(0o600)
    return directory


def first_seen_seqs(messages: list[Message]) -> list[int]:
    """Event seqs in arrival order, a QoS 1 re-delivery counted once."""
    return list(dict.fromkeys(json.loads(m.payload)["seq"] for m in messages))
