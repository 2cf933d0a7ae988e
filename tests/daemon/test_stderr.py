"""No library swallows our log: sounddevice points fd 2 at /dev/null while PortAudio (re)initialises
(at import and on every microphone retry); our log lines go to a private copy of fd 2 instead.
And LiteRT's "Created TensorFlow Lite XNNPACK delegate" notice is dropped, nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXE, Daemon
from mqtt_services import mqtt_env

#: What sounddevice._initialize does around Pa_Initialize (sounddevice 0.5), with a log line in between
#: as another thread would write it at that moment.
SILENCED_FD2 = """
import logging, os, sys
from genrecast.daemon.stderr import private_stderr
if sys.argv[1] == "private":
    private_stderr()
logging.basicConfig(stream=sys.stderr, format="%(message)s")
old = os.dup(2)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 2)
os.write(2, b"ALSA lib noise that must stay hidden\\n")
logging.warning("logged while fd 2 points at /dev/null")
os.dup2(old, 2)
logging.warning("logged after")
"""


@pytest.mark.parametrize("mode", ["private", "plain"])
def test_log_lines_survive_a_library_pointing_fd2_at_devnull(mode: str) -> None:
    proc = subprocess.run([sys.executable, "-c", SILENCED_FD2, mode], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "logged after" in proc.stderr
    assert "ALSA lib noise" not in proc.stderr
    # Without the private copy the line is lost (the failure this guards against), with it it is kept.
    assert ("logged while fd 2 points at /dev/null" in proc.stderr) == (mode == "private")


def test_dropping_lines_drops_only_the_named_lines() -> None:
    code = (
        "import os\n"
        "from genrecast.daemon.stderr import dropping_lines\n"
        "with dropping_lines(lambda line: line.startswith(b'INFO: Created')):\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\nERROR: a real problem\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stderr == "ERROR: a real problem\nafter\n"


#: A process with no usable temporary folder, as in a container whose root file system is read-only
#: and that has no writable /tmp (Kubernetes' readOnlyRootFilesystem without an emptyDir there):
#: tempfile.gettempdir() raises FileNotFoundError "No usable temporary directory found in [...]".
NO_TEMP_DIR = """
import sys, tempfile
tempfile.tempdir = None
tempfile._candidate_tempdir_list = lambda: ["/nonexistent/read-only-root/tmp"]
sys.argv = ["genrecast", *sys.argv[1:]]
from genrecast.daemon.cli import main
main()
"""


def test_the_model_loads_without_a_usable_temporary_folder(gtzan_sample: Path) -> None:
    """Catching LiteRT's notice on fd 2 took a temporary file, so a read-only root without a writable
    /tmp refused to load the model: exit 2, "genrecast: error: [Errno 2] No usable temporary directory
    found in ['/tmp', ...]", which said neither that nor what to do. Nothing else needs one."""
    proc = subprocess.run([sys.executable, "-c", NO_TEMP_DIR, "classify", str(gtzan_sample / "pop" / "pop.00000.wav")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "verdict: pop" in proc.stdout
    assert "temporary" not in proc.stderr and "XNNPACK" not in proc.stderr, proc.stderr[-2000:]


def test_classify_prints_no_xnnpack_notice(gtzan_sample: Path) -> None:
    proc = subprocess.run([EXE, "classify", str(gtzan_sample / "pop" / "pop.00000.wav")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "verdict: pop" in proc.stdout
    assert "XNNPACK" not in proc.stderr and "XNNPACK" not in proc.stdout


@pytest.mark.slow
@pytest.mark.service
def test_mqtt_log_lines_survive_microphone_retries(pulse_server, start_broker, tmp_path: Path) -> None:
    """A microphone that is not there is retried, re-initialising PortAudio each time (fd 2 to
    /dev/null each time), while the MQTT sink connects, loses its broker and retries: every one of
    those log lines must reach stderr."""
    broker = start_broker()
    env = {**pulse_server.env, **mqtt_env(broker.host, broker.port, "stderrtest")}
    daemon = Daemon(["--source", "mic:nosuchdevice", "--sink", "mqtt", "--stall-seconds", "2"], env=env)
    try:
        daemon.wait(lambda d: sum("nosuchdevice" in line and "retrying" in line for line in d.log) >= 2, 60,
                    "two microphone retries in the log")
        daemon.wait(lambda d: any("MQTT: connected to" in line for line in d.log), 30, "MQTT: connected")
        broker.stop()
        daemon.wait(lambda d: any("MQTT: lost the connection" in line or "MQTT: cannot connect" in line for line in d.log),
                    30, "the lost broker in the log")
        daemon.wait(lambda d: any("MQTT: cannot connect" in line and "refused" in line for line in d.log), 30,
                    "MQTT: cannot connect ... refused")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert "Traceback" not in "".join(daemon.log)


@pytest.mark.slow
@pytest.mark.service
def test_mqtt_connected_is_logged_while_a_real_microphone_opens(virtual_mic, broker, gtzan_sample: Path) -> None:
    virtual_mic.play(gtzan_sample / "rock" / "rock.00000.wav")
    env = {**virtual_mic.env, **mqtt_env(broker.host, broker.port, "micstderr")}
    daemon = Daemon(["--source", "mic", "--sink", "mqtt", "--sink", "stdout", "--json"], env=env)
    try:
        daemon.wait(lambda d: any(e["state"] != "silence" for e in d.events), 60, "a non-silent window from the mic")
        daemon.wait(lambda d: any("MQTT: connected to" in line for line in d.log), 10, "MQTT: connected")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert "XNNPACK" not in "".join(daemon.log)
