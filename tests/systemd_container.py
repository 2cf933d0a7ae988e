"""A real systemd for the service tests: a Debian 12 machine booted in a container.

The root filesystem is made once with ``debootstrap`` (about 90 s) and cached in
``$GENRECAST_CONTAINER_CACHE`` (default ``/var/cache/genrecast-test``) under a key of
the Debian packages and genrecast's runtime requirements; its ``/opt/genrecast``
virtualenv already holds those requirements, so the README's ``pip install .`` only
builds genrecast itself. Each test module boots its own copy on an overlay mount
(the cached tree is never written) with ``systemd-nspawn -b``, which needs no systemd
on the host (``--register=no --keep-unit``), and runs commands inside through
``nsenter``. The container shares the host's network, so a broker the tests start on
127.0.0.1 is reachable from the service.

Needs root, ``systemd-nspawn`` (Debian's systemd-container), ``debootstrap`` and the
Debian mirror; ``scripts/setup.sh`` installs the tools.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import tomllib
import uuid
from pathlib import Path

from helpers import REPO, children, unavailable, wait_for

CACHE = Path(os.environ.get("GENRECAST_CONTAINER_CACHE", "/var/cache/genrecast-test"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: What a Debian 12 box that runs genrecast has: systemd, Python, and the libraries
#: the README's apt line names.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "ca-certificates",
            "ffmpeg", "libportaudio2", "libsndfile1", "alsa-utils"]
BUILD_VERSION = 1  # bump to rebuild every cached root filesystem
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
       "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def requirements() -> list[str]:
    """genrecast's runtime requirements, as pyproject.toml lists them."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def _check_tools() -> None:
    if os.geteuid() != 0:
        unavailable("the real-systemd tests boot a container: run them as root")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (scripts/setup.sh installs systemd-container and debootstrap)")


def _nspawn_run(root: Path, script: str, timeout: float) -> None:
    """Run ``script`` in ``root`` without booting it (for building the image)."""
    env_args = [f"--setenv={k}={v}" for k, v in ENV.items()]
    proc = subprocess.run(["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", *env_args,
                           "/bin/sh", "-ec", script], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"building the container image: {script!r} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def base_rootfs() -> Path:
    """The cached Debian 12 root filesystem (built on first use; read-only afterwards)."""
    _check_tools()
    key = hashlib.sha256(json.dumps([SUITE, PACKAGES, requirements(), BUILD_VERSION]).encode()).hexdigest()[:12]
    root = CACHE / f"rootfs-{key}"
    if (root / ".genrecast-complete").exists():
        return root
    partial = CACHE / f"rootfs-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                           str(partial), MIRROR], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"debootstrap failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")  # pip inside needs the host's CA bundle
    if host_ca.exists():
        shutil.copyfile(host_ca, partial / "etc/ssl/certs/ca-certificates.crt")
    reqs = " ".join(shlex.quote(r) for r in requirements())
    _nspawn_run(partial, f"python3 -m venv /opt/genrecast && /opt/genrecast/bin/pip install -q {reqs}", timeout=900)
    (partial / ".genrecast-complete").touch()
    partial.rename(root)
    return root


def source_tarball(dest: Path) -> Path:
    """The checkout as a user's clone has it: every file git tracks, or would track."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    with tarfile.open(dest, "w:gz") as tar:
        for name in filter(None, listed):
            if (REPO / name).is_file():
                tar.add(REPO / name, arcname=name)
    return dest


class Container:
    """One booted copy of :func:`base_rootfs` on an overlay in ``workdir``; ``binds`` are
    ``{host path: container path}`` mounted read-only."""

    def __init__(self, workdir: Path, binds: dict[Path, str]) -> None:
        self.workdir, self.binds = workdir, binds
        self.root = workdir / "root"
        self.name = f"genrecast-test-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen | None = None
        self.leader = 0

    def start(self) -> "Container":
        lower = base_rootfs()
        for d in ("upper", "work", "root"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
                        str(self.root)], check=True, capture_output=True)
        bind_args = [f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()]
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "-b", "--console=pipe", "--register=no", "--keep-unit",
             "-M", self.name, *bind_args],
            stdin=subprocess.DEVNULL, stdout=open(self.workdir / "console.log", "wb"), stderr=subprocess.STDOUT)

        def leader() -> int:
            assert self.proc is not None and self.proc.poll() is None, (self.workdir / "console.log").read_text()[-3000:]
            found = [pid for pid, comm, _ in children(self.proc.pid) if comm == "systemd"]
            return found[0] if found else 0

        self.leader = wait_for(leader, 60, "the container's systemd")
        # Until systemd listens on its bus, systemctl prints nothing on stdout, and before it has
        # made /run/systemd/system it says "offline" (seen once on a loaded machine): ask again.
        def answer() -> str:
            state = self.sh("systemctl is-system-running --wait", check=False).stdout.strip()
            return "" if state == "offline" else state

        state = wait_for(answer, 120, "the container's systemd to answer", interval=0.2)
        assert state in ("running", "degraded"), f"container booted into {state!r}:\n{self.sh('systemctl --failed', check=False).stdout}"
        return self

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a bash script as root inside the container, with a clean environment."""
        env_args = [f"{k}={v}" for k, v in ENV.items()]
        proc = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "env", "-i", *env_args, "/bin/bash", "-c", script],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"in the container, {script!r} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def path(self, inside: str) -> Path:
        """The host path of a file inside the container (reads and writes go through the overlay)."""
        return self.root / inside.lstrip("/")

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` properties of a unit."""
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.sh(f"journalctl -u {unit} --no-pager -o cat").stdout

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.leader, signal.SIGRTMIN + 4)  # systemd as PID 1: power off
                self.proc.wait(60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        subprocess.run(["umount", str(self.root)], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
