"""Sound-server sources by name (issue 17, item 6): a second microphone that ``pactl list
sources`` shows (here ``usbmic``, beside the default ``vmic``) is listed by ``genrecast
devices`` and opened by ``--source mic:usbmic``, and what is played into it reaches the
daemon from that source, not from the other. Runs against the test PulseAudio
(tests/daemon/conftest.py); the audio is made here with numpy."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrecast.daemon.backoff import Backoff
from genrecast.daemon.sources import MicSource, list_server_sources, parse_source

from helpers import EXE, Daemon, wait_for

pytestmark = pytest.mark.service


@pytest.fixture()
def two_mics(virtual_mic):
    """``vmic`` (the default, fed by ``vsink``) and ``usbmic`` ("USB-PnP-Microphone", fed by ``usbsink``)."""
    virtual_mic.add_source("usbsink", "usbmic", "USB-PnP-Microphone")
    return virtual_mic


@pytest.fixture(scope="module")
def loud_clip(tmp_path_factory) -> Path:
    """30 s of a loud chord with a beat, 44.1 kHz stereo."""
    rate = 44100
    t = np.arange(30 * rate) / rate
    tone = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3 * (0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > 0))
    path = tmp_path_factory.mktemp("clips") / "chord.wav"
    sf.write(path, np.stack([tone, tone], axis=1).astype(np.float32) * 0.5, rate)
    return path


def rms(blocks: list[np.ndarray]) -> float:
    audio = np.concatenate(blocks[-20:]) if blocks else np.zeros(1, np.float32)
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


class Capture:
    def __init__(self, source) -> None:
        self.source, self.blocks, self.stop = source, [], threading.Event()
        self.thread = threading.Thread(target=source.run, args=(lambda b, r: self.blocks.append(b), self.stop), daemon=True)

    def __enter__(self) -> "Capture":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def test_server_sources_are_listed_with_their_names(two_mics) -> None:
    sources = {s.name: s for s in list_server_sources()}
    assert {"vmic", "usbmic", "vsink.monitor", "usbsink.monitor"} <= set(sources)
    assert sources["usbmic"].description == "USB-PnP-Microphone" and not sources["usbmic"].is_monitor
    assert sources["vmic"].is_default and not sources["usbmic"].is_default
    assert sources["usbsink.monitor"].is_monitor
    import subprocess

    listed = json.loads(subprocess.run([EXE, "devices", "--json"], capture_output=True, text=True, timeout=60,
                                       env=two_mics.env, check=True).stdout)
    usb = [d for d in listed if d["name"] == "usbmic"]
    assert usb and usb[0]["kind"] == "sound-server" and usb[0]["spec"] == "mic:usbmic"
    assert any(d["kind"] == "portaudio" and d["name"] == "pulse" for d in listed)
    text = subprocess.run([EXE, "devices"], capture_output=True, text=True, timeout=60, env=two_mics.env).stdout
    assert "sound-server sources" in text and "usbmic  USB-PnP-Microphone" in text


@pytest.mark.parametrize("spec", ["mic:usbmic", "mic:USB-PnP-Microphone", "mic:pnp-micro"])
def test_a_named_server_source_records_what_is_played_into_it_and_only_that(two_mics, loud_clip: Path,
                                                                           spec: str) -> None:
    wanted, other = parse_source(spec), parse_source("mic:vmic")
    two_mics.play(loud_clip, sink="usbsink")
    with Capture(wanted) as usb, Capture(other) as default:
        wait_for(lambda: rms(usb.blocks) > 0.05, 30, "the clip from usbmic")
        wait_for(lambda: len(default.blocks) >= 20, 30, "blocks from vmic")
        assert rms(default.blocks) < 1e-4  # nothing was played into vsink
    assert wanted.rate == 44100 and wanted.connected is False


def test_an_unknown_name_lists_the_server_sources(two_mics, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="genrecast.daemon.sources")
    source = MicSource("nosuchmic")
    source.backoff = Backoff(0.1, 0.2)
    with Capture(source):
        wait_for(lambda: source.restarts >= 1, 20, "a retry")
    text = caplog.text
    assert "no input device matching 'nosuchmic'" in text and "sound-server sources: vmic, usbmic" in text


@pytest.mark.slow
def test_one_daemon_hears_the_clip_from_usbmic_and_silence_from_vmic(two_mics, loud_clip: Path) -> None:
    two_mics.play(loud_clip, sink="usbsink")
    daemon = Daemon(["--source", "mic:usbmic", "--source", "mic:vmic", "--json"], env=two_mics.env)
    try:
        daemon.wait(lambda d: sum(e["source"] == "mic-usbmic" for e in d.events) >= 2
                    and sum(e["source"] == "mic-vmic" for e in d.events) >= 2, 60, "events from both sources")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    usb = [e for e in daemon.events if e["source"] == "mic-usbmic"]
    default = [e for e in daemon.events if e["source"] == "mic-vmic"]
    assert all(e["state"] == "silence" for e in default)
    assert any(e["state"] != "silence" and e["level_dbfs"] > -30 for e in usb)
    assert "capturing from 'usbmic (sound server)'" in "".join(daemon.log)


@pytest.mark.slow
def test_a_frozen_sound_server_is_a_stall_and_does_not_hold_a_stop(virtual_mic) -> None:
    """The sound server stops answering (SIGSTOP: hung, or a suspended session): the microphone's
    stall is reported after --stall-seconds and retried, and SIGTERM stops the daemon while the
    server is still frozen. Closing the stream waited on the server: no stall was ever logged,
    and the daemon ignored SIGTERM until the server came back."""
    import os
    import signal
    import time

    daemon = Daemon(["--source", "mic:vmic", "--stall-seconds", "3"], env=virtual_mic.env)
    frozen = False
    try:
        daemon.wait(lambda d: any("capturing from 'vmic (sound server)'" in line for line in d.log), 60, "the capture")
        os.kill(virtual_mic.proc.pid, signal.SIGSTOP)
        frozen = True
        daemon.wait(lambda d: any("(stalled); retrying" in line for line in d.log), 30, "the stall to be reported")
        assert any("the sound server does not answer" in line for line in daemon.log), "".join(daemon.log[-10:])
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=60) == 0, "".join(daemon.log[-10:])
        assert virtual_mic.proc.poll() is None and frozen  # it stopped while the server was still frozen
        print(f"stopped {time.monotonic() - started:.1f} s after SIGTERM")
    finally:
        if frozen:
            os.kill(virtual_mic.proc.pid, signal.SIGCONT)
        daemon.kill()
