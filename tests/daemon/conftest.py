"""Service fixtures for the daemon tests: a private PulseAudio with a virtual microphone,
and the MP3s that the HTTP "radio" servers of ``tests/stream_services.py`` play. Every
process is stopped by its PID at teardown."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from helpers import IN_CI
from stream_services import stop_process


def _unavailable(message: str) -> None:
    """Skip, or fail under CI, when a service cannot be started here."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


# -- PulseAudio ---------------------------------------------------------------------

@dataclass
class Pulse:
    """A private PulseAudio server; ``pactl`` runs against it."""

    runtime: Path
    proc: subprocess.Popen
    players: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PULSE_RUNTIME_PATH": str(self.runtime), "PULSE_SERVER": f"unix:{self.runtime}/native"}

    def pactl(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=20)
        if check and proc.returncode != 0:
            raise AssertionError(f"pactl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def module_ids(self, name: str) -> list[str]:
        return [line.split("\t")[0] for line in self.pactl("list", "short", "modules").splitlines()
                if line.split("\t")[1:2] == [name]]

    def add_virtual_mic(self) -> None:
        """``vsink`` (a null sink) and ``vmic`` (its monitor, remapped), the default source."""
        self.pactl("load-module", "module-null-sink", "sink_name=vsink")
        self.pactl("load-module", "module-remap-source", "master=vsink.monitor", "source_name=vmic")
        self.pactl("set-default-source", "vmic")

    def remove_virtual_mic(self) -> None:
        """Unload the remap source and the null sink: no capture device is left."""
        for module in ("module-remap-source", "module-null-sink"):
            for mid in self.module_ids(module):
                self.pactl("unload-module", mid, check=False)

    def play(self, clip: Path) -> subprocess.Popen:
        """``paplay -d vsink CLIP`` in the background (stopped at teardown)."""
        player = subprocess.Popen(["paplay", "-d", "vsink", str(clip)], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.players.append(player)
        return player


def reinit_portaudio() -> None:
    """PortAudio caches the device list; make it look again (if sounddevice is loaded)."""
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


@pytest.fixture(scope="module")
def pulse_server(tmp_path_factory) -> Iterator[Pulse]:
    """A PulseAudio daemon of our own (foreground child, so we hold its PID), with this
    process's environment pointed at it for the module's tests."""
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils)")
    runtime = tmp_path_factory.mktemp("pulse")
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(runtime), "PULSE_STATE_PATH": str(runtime / "state")}
    log_file = open(runtime / "pulseaudio.log", "wb")
    proc = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-n",
         "--use-pid-file=no", "--disable-shm=yes", "--log-target=stderr",
         "--load=module-native-protocol-unix auth-anonymous=1"],
        env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    pulse = Pulse(runtime, proc)
    saved = {k: os.environ.get(k) for k in ("PULSE_RUNTIME_PATH", "PULSE_SERVER")}
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["pactl", "info"], env=pulse.env, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                log_file.flush()
                _unavailable(f"pulseaudio did not start: {(runtime / 'pulseaudio.log').read_text()[-800:]}")
            time.sleep(0.05)
        os.environ.update({"PULSE_RUNTIME_PATH": str(runtime), "PULSE_SERVER": f"unix:{runtime}/native"})
        reinit_portaudio()
        yield pulse
    finally:
        for player in pulse.players:
            stop_process(player)
        stop_process(proc)
        log_file.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # No PortAudio re-initialisation here: with the server gone, libpulse could autospawn one.


@pytest.fixture()
def virtual_mic(pulse_server: Pulse) -> Iterator[Pulse]:
    """The ``vsink``/``vmic`` pair loaded for one test, and PortAudio told about it."""
    pulse_server.add_virtual_mic()
    reinit_portaudio()
    try:
        yield pulse_server
    finally:
        for player in pulse_server.players:
            stop_process(player)
        pulse_server.players.clear()
        pulse_server.remove_virtual_mic()


# -- HTTP streams -------------------------------------------------------------------

@pytest.fixture(scope="session")
def stream_mp3s(tmp_path_factory, gtzan_sample: Path) -> dict[int, Path]:
    """12-s MP3s (no tags, so they loop cleanly) of a GTZAN clip at 22050 and 44100 Hz."""
    if shutil.which("ffmpeg") is None:
        _unavailable("ffmpeg is not installed (apt-get install ffmpeg)")
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
