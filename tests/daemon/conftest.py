"""Service fixtures for the daemon tests: a private PulseAudio with a virtual microphone.
Every process is stopped by its PID at teardown."""

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

from helpers import unavailable
from stream_services import stop_process


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

    def add_source(self, sink: str, source: str, description: str) -> None:
        """Another null sink ``sink`` and a source ``source`` that records what is played into it."""
        self.pactl("load-module", "module-null-sink", f"sink_name={sink}")
        self.pactl("load-module", "module-remap-source", f"master={sink}.monitor", f"source_name={source}",
                   f"source_properties=device.description={description}")

    def remove_virtual_mic(self) -> None:
        """Unload the remap source and the null sink: no capture device is left."""
        for module in ("module-remap-source", "module-null-sink"):
            for mid in self.module_ids(module):
                self.pactl("unload-module", mid, check=False)

    def play(self, clip: Path, sink: str = "vsink") -> subprocess.Popen:
        """``paplay -d SINK CLIP`` in the background (stopped at teardown)."""
        player = subprocess.Popen(["paplay", "-d", sink, str(clip)], env=self.env,
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
            unavailable(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils)")
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
                unavailable(f"pulseaudio did not start: {(runtime / 'pulseaudio.log').read_text()[-800:]}")
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
