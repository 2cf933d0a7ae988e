"""Shared helpers of the benchmark suite: result rows, timing, bundles, daemons, datasets."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GENRECAST = str(BIN / "genrecast")


@dataclass
class Context:
    """What every figure gets: paths, repeats, quick mode and a scratch directory."""

    data: Path
    repeats: int
    quick: bool
    scratch: Path
    bundle_arg: Path | None = None
    _bundle: Path | None = field(default=None, repr=False)

    @property
    def gtzan_sample(self) -> Path:
        return self.data / "gtzan-sample"

    def wav_clips(self) -> list[Path]:
        """The real 30-s WAV clips of gtzan-sample."""
        return sorted(self.gtzan_sample.glob("*/*.wav"))

    def bundle(self) -> Path:
        """An MFCC bundle: ``--bundle`` if given, else one trained on the fly (1 epoch)."""
        if self.bundle_arg is not None:
            return self.bundle_arg
        if self._bundle is None:
            out = self.scratch / "bundle"
            proc = subprocess.run(
                [GENRECAST, "train", str(self.gtzan_sample), "--out", str(out), "--epochs", "1"],
                capture_output=True, text=True, env=env(GENRECAST_CACHE_DIR=str(self.scratch / "cache")),
            )
            if proc.returncode != 0:
                raise RuntimeError(f"training the benchmark bundle failed:\n{proc.stderr[-2000:]}")
            self._bundle = out
        return self._bundle


def env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the kept numba cache, quiet TF, plus ``extra``."""
    e = dict(os.environ)
    e.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    e.update(extra)
    return e


def row(name: str, figure: str, runs: list[float], unit: str, *, target: str | None = None,
        met: bool | None = None, p99: float | None = None, note: str = "", **extra: Any) -> dict:
    """One line of the results table (median over ``runs``)."""
    runs = [float(r) for r in runs]
    return {
        "name": name, "figure": figure, "median": statistics.median(runs) if runs else None,
        "p99": p99, "unit": unit, "target": target, "met": met, "note": note, "runs": runs, **extra,
    }


def skipped(name: str, figure: str, note: str) -> dict:
    return row(name, figure, [], "", note=f"skipped: {note}")


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


def time_ms(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pcm_s16le(clips: list[Path], seconds: float, rate: int = 22050) -> bytes:
    """``seconds`` of real music (clips one after another, looped) as mono s16le at ``rate``."""
    from genrecast.daemon.audio import load_audio

    need = int(seconds * rate)
    parts, have = [], 0
    for clip in clips:  # each clip decoded once
        if have >= need:
            break
        parts.append(load_audio(clip, rate))
        have += len(parts[-1])
    y = np.resize(np.concatenate(parts), need)  # loops the clips as long as needed
    return (np.clip(y, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes()


class NotifySocket:
    """A real datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_for(self, text: str, timeout: float) -> float | None:
        """perf_counter time when a message containing ``text`` arrived, or None."""
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(65536).decode(errors="replace")
            except socket.timeout:
                return None
            if text in msg:
                return time.perf_counter()
        return None

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


class Daemon:
    """``genrecast run ARGS`` as a child: stdin a pipe, events read from stdout by a thread
    (each line stamped with perf_counter when it arrived), stderr kept."""

    def __init__(self, args: list[str], *, extra_env: dict[str, str] | None = None, stdin: bool = True) -> None:
        self.lines: list[tuple[float, str]] = []
        self.log: list[str] = []
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [GENRECAST, "run", *args], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(**(extra_env or {})), bufsize=0,
        )
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append((time.perf_counter(), raw.decode(errors="replace")))

    def _read_err(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            self.log.append(raw.decode(errors="replace").rstrip())

    def events(self) -> list[dict]:
        out = []
        for _, line in list(self.lines):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)

    def stop(self, timeout: float = 20.0) -> int | None:
        """Close stdin, SIGTERM, wait; SIGKILL if it hangs. Returns the exit code."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.join(5)
        self._err.join(5)
        return code


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _proc_mb(path: str, field: str) -> float:
    """The ``FIELD:  N kB`` line of a /proc file in MB (NaN without it); raises ``OSError`` for a process that has gone."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB."""
    return _proc_mb(f"/proc/{pid}/status", "VmRSS")


def proc_peak_rss_mb(pid: int) -> float:
    """The high-water mark of ``pid``'s resident set in MB (``VmHWM``: since its last exec)."""
    return _proc_mb(f"/proc/{pid}/status", "VmHWM")


def proc_pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` in MB: shared pages (libraries) split among their users,
    so a sum over many ffmpeg processes does not count libavcodec once per process."""
    return _proc_mb(f"/proc/{pid}/smaps_rollup", "Pss")


def proc_children(pid: int) -> list[int]:
    """The child processes of ``pid``, started from any of its threads (none once it has gone)."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def scrape_metrics(port: int) -> dict[str, float]:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def worker_json(module: str, *args: str, cpus: set[int] | None = None, timeout: float = 600,
                extra_env: dict[str, str] | None = None) -> dict:
    """Run ``python -m MODULE ARGS`` (a worker that prints one JSON object last) and parse it."""
    cmd = [sys.executable, "-m", module, *args]
    if cpus is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", ",".join(str(c) for c in sorted(cpus)), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(**(extra_env or {})), cwd=REPO, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="genrecast-bench-"))
