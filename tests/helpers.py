"""Helpers shared by the tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The table model (v7, a rolling 30-s summary context): tests of that context use it, since the
#: default bundle's musicnn model judges each window alone.
TABLE_BUNDLE = REPO / "daemon" / "table_bundle"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXE = str(Path(sys.executable).parent / "genrecast")
"""The installed ``genrecast`` console command of this environment."""
#: Sample rate of the 16-bit PCM the tests pipe into ``genrecast run --source -`` (``rock_pcm``).
PCM_RATE = 22050
GTZAN_LABELS = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


def data_root() -> Path:
    return Path(os.environ.get("GENRECAST_TEST_DATA", REPO.parent / "shared" / "data"))


def unavailable(message: str) -> None:
    """Skip, or fail under CI, when a test's data or service cannot be had here."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def need(path: Path) -> Path:
    """Return ``path``, or skip (fail under CI) when the shared test data is absent."""
    if not path.exists():
        unavailable(f"test data {path} is absent (set GENRECAST_TEST_DATA to ../shared/data)")
    return path



def sample_clips(root: Path) -> list[Path]:
    """Every audio clip under a gtzan-sample style folder."""
    return sorted(p for p in root.glob("*/*.*") if p.suffix in (".wav", ".mp3", ".au"))


def run_cli(*args: str, timeout: float = 300, **kwargs):
    """Run the installed ``genrecast`` command; returns the CompletedProcess."""
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, **kwargs)




class Daemon:
    """A running ``genrecast run`` whose stdout JSON events and stderr log lines are
    collected by reader threads; wait on them with deadlines."""

    def __init__(self, args: list[str], env: dict | None = None, stdin=None, **popen_kwargs) -> None:
        import threading

        self.proc = subprocess.Popen([EXE, "run", *args], stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, **popen_kwargs)
        self.events: list[dict] = []
        self.stdout_lines: list[str] = []
        self.log: list[str] = []
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, pipe, is_stdout: bool) -> None:
        import json

        for line in pipe:
            with self._changed:
                if is_stdout:
                    self.stdout_lines.append(line)
                    try:
                        self.events.append(json.loads(line))
                    except ValueError:
                        pass
                else:
                    self.log.append(line)
                self._changed.notify_all()

    def wait(self, predicate, deadline_seconds: float, what: str):
        """Wait until ``predicate(self)`` is truthy; fail with the log tail at the deadline."""
        import time

        end = time.monotonic() + deadline_seconds
        with self._changed:
            while not (result := predicate(self)):
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not predicate(self)):
                    if self.proc.poll() is not None:
                        self._changed.wait(0.5)
                        if (result := predicate(self)):
                            return result
                    raise AssertionError(f"timed out waiting for {what}; log tail:\n{''.join(self.log[-15:])}")
                self._changed.wait(min(left, 0.5))
        return result

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the exit code."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        for t in self._threads:
            t.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Terminal:
    """``command`` run by the shell in the one pane (``width`` x ``height``) of a detached tmux
    server on a private socket, for tests of what a terminal shows; skips when tmux is not
    installed. When the command ends the pane shows ``EXIT=<status>`` and stays a minute to
    be read. A context manager: the tmux server is killed on leaving."""

    def __init__(self, command: str, width: int, height: int) -> None:
        import shutil
        import uuid

        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed")
        self.tmux = ["tmux", "-L", f"gctest{uuid.uuid4().hex[:6]}"]
        self.command = f"{command}; echo EXIT=$?; sleep 60"
        self.width, self.height = width, height

    def __enter__(self) -> "Terminal":
        subprocess.run(self.tmux + ["new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height),
                                    self.command], check=True)
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run(self.tmux + ["kill-server"], capture_output=True)

    def screen(self) -> str:
        """The pane's text as it shows now (``tmux capture-pane``)."""
        return subprocess.run(self.tmux + ["capture-pane", "-p", "-t", "t"], capture_output=True, text=True).stdout

    def interrupt(self, what: str = "the command to exit") -> str:
        """Press Ctrl-C in the pane; return the screen once it shows ``EXIT=``."""
        subprocess.run(self.tmux + ["send-keys", "-t", "t", "C-c"], check=True)
        return wait_for(lambda: "EXIT=" in (text := self.screen()) and text, what=what)


def children(pid: int) -> list[tuple[int, str, str]]:
    """(pid, command name, state letter) of ``pid``'s direct children, zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append((int(entry.name), comm, fields[0]))
    return found


def ffmpeg_processes_mentioning(text: str) -> list[int]:
    """PIDs of running ffmpeg processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"ffmpeg") and any(text.encode() in part for part in cmdline):
            found.append(int(entry.name))
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(proc: subprocess.Popen, grace_seconds: float, group: bool = False) -> None:
    """Stop a test's service by its PID: SIGTERM, then SIGKILL (to its process group with
    ``group``) if it is still there after ``grace_seconds``; reaped either way."""
    import signal

    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        (os.killpg if group else os.kill)(proc.pid, signal.SIGKILL)
        proc.wait(10)


def file_lines(path: Path) -> list[str]:
    """The lines of a text file, none if it does not exist yet."""
    return path.read_text().splitlines() if path.exists() else []


def wait_for(condition, timeout_seconds: float = 20.0, what: str = "condition", interval: float = 0.02):
    """Poll ``condition`` until it returns something truthy and return that; fail naming
    ``what`` after ``timeout_seconds`` (a deadline, never a fixed sleep)."""
    import time

    deadline = time.monotonic() + timeout_seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds:g} s waiting for {what}")
        time.sleep(interval)


def scrape_metrics(port: int) -> dict[str, float]:
    """A daemon's Prometheus metrics as ``{'name{labels}': value}``."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


@contextlib.contextmanager
def small_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's ``-o size=``, e.g. ``64k``, ``2m``) mounted on the existing
    folder ``mount_point`` for the body, unmounted after; skips the test where it cannot be
    mounted (not root, no mount permission)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill_disk(directory: Path) -> Path:
    """Write ``directory/filler`` until its filesystem is full (ENOSPC); returns the filler's path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler
