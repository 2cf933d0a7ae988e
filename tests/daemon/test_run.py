"""`genrecast run` end to end, each source kind for real: file, HTTP stream, microphone,
and bad sources beside good ones. Every event is checked against the JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from helpers import Daemon, ffmpeg_processes_mentioning
from genrecast.daemon.events import load_schema

pytestmark = [pytest.mark.slow, pytest.mark.service]
SCHEMA = load_schema()


def _valid(events: list[dict]) -> list[dict]:
    for event in events:
        jsonschema.validate(event, SCHEMA)
    return events


def _of(daemon: Daemon, source: str) -> list[dict]:
    return [e for e in daemon.events if e["source"] == source]


def test_file_source_covers_the_clip_and_exits_0(trained_bundle: Path, gtzan_sample: Path) -> None:
    clip = gtzan_sample / "classical" / "classical.00000.wav"
    daemon = Daemon(["--bundle", str(trained_bundle), "--source", f"file:{clip}", "--json"])
    assert daemon.proc.wait(timeout=120) == 0, "".join(daemon.log[-10:])
    daemon.stop()
    events = _valid(daemon.events)
    assert [e["audio_start_seconds"] for e in events] == [3.0 * i for i in range(10)]
    assert events[-1]["audio_end_seconds"] == pytest.approx(30.0, abs=0.05)
    assert {e["source"] for e in events} == {"file-classical.00000"}


def test_stream_reconnects_after_server_restart_and_leaves_no_ffmpeg(
    trained_bundle: Path, stream_servers, stream_mp3s: dict[int, Path]
) -> None:
    port, server = stream_servers.start("mp3", stream_mp3s[22050])
    url = f"http://127.0.0.1:{port}/radio.mp3"
    daemon = Daemon(["--bundle", str(trained_bundle), "--source", url, "--json", "--stall-seconds", "3"])
    try:
        daemon.wait(lambda d: len(d.events) >= 3, 60, "3 events from the stream")
        stream_servers.kill(server)
        daemon.wait(lambda d: any("stream-" in line and ("retry" in line.lower() or "refused" in line.lower()) for line in d.log),
                    30, "the stream failure in the log")
        before = len(daemon.events)
        stream_servers.start("mp3", stream_mp3s[22050], port=port)
        daemon.wait(lambda d: len(d.events) >= before + 3, 60, "events after the server came back")
        assert ffmpeg_processes_mentioning(url), "the stream's ffmpeg should be running"
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    _valid(daemon.events)
    seqs = [e["seq"] for e in daemon.events]
    assert seqs == list(range(len(seqs)))
    assert ffmpeg_processes_mentioning(url) == []


def test_microphone_vanishes_and_comes_back(trained_bundle: Path, virtual_mic, gtzan_sample: Path) -> None:
    clip = gtzan_sample / "rock" / "rock.00000.wav"
    virtual_mic.play(clip)
    daemon = Daemon(["--bundle", str(trained_bundle), "--source", "mic", "--json", "--stall-seconds", "2"],
                    env={**virtual_mic.env})
    try:
        daemon.wait(lambda d: any(e["state"] != "silence" for e in d.events), 60, "a non-silent window from the mic")
        virtual_mic.remove_virtual_mic()
        daemon.wait(lambda d: any("mic" in line and ("gone" in line or "cannot open" in line) for line in d.log),
                    30, "the lost microphone in the log")
        assert daemon.proc.poll() is None, "the daemon must stay up"
        before = len(daemon.events)
        virtual_mic.add_virtual_mic()
        virtual_mic.play(clip)
        daemon.wait(lambda d: any(e["state"] != "silence" for e in d.events[before:]), 90, "audio after the mic came back")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    _valid(daemon.events)


def test_bad_sources_beside_a_good_one(trained_bundle: Path, gtzan_sample: Path, tmp_path: Path) -> None:
    """An unreachable URL and an unknown microphone are retried and logged; the file is still served."""
    clip = gtzan_sample / "jazz" / "jazz.00000.wav"
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-such-server"}
    daemon = Daemon(["--bundle", str(trained_bundle), "--source", "http://127.0.0.1:9/none.mp3",
                     "--source", "mic:nosuchdevice", "--source", f"file:{clip}", "--json"], env=env)
    try:
        daemon.wait(lambda d: len(_of(d, "file-jazz.00000")) == 10, 90, "every window of the file")
        daemon.wait(lambda d: any("stream-" in line for line in d.log) and any("nosuchdevice" in line for line in d.log),
                    30, "both bad sources in the log")
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert "Traceback" not in "".join(daemon.log)


@pytest.mark.parametrize("spec, message", [("file:/nonexistent.wav", "nonexistent.wav"), ("gopher", "gopher")])
def test_unusable_spec_is_one_clear_line(trained_bundle: Path, spec: str, message: str) -> None:
    daemon = Daemon(["--bundle", str(trained_bundle), "--source", spec])
    code = daemon.proc.wait(timeout=60)
    daemon.stop()
    errors = [line for line in daemon.log if line.startswith("genrecast: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0]
    assert "Traceback" not in "".join(daemon.log)


@pytest.mark.parametrize("feed", ["empty", "partial frame"])
def test_a_source_that_ends_without_audio_is_a_warning_and_exit_1(feed: str) -> None:
    """`ffmpeg -i wrong-path ... | genrecast run --source -`: the pipe ends before any audio."""
    import subprocess

    from helpers import EXE

    data = b"" if feed == "empty" else b"\x01"  # one byte of an s16le frame: still no sample
    proc = subprocess.run([EXE, "run", "--source", "-", "--format", "s16le"], input=data, capture_output=True, timeout=120)
    log = proc.stderr.decode()
    assert proc.returncode == 1, log
    warnings = [line for line in log.splitlines() if "WARNING" in line and "without any audio" in line]
    assert len(warnings) == 1 and "source stdin ended without any audio" in warnings[0]
    assert proc.stdout == b"" and "Traceback" not in log


def test_a_closed_stdin_is_one_line_and_exit_2() -> None:
    """`genrecast run --source - <&-` (stdin closed, not empty) died in a traceback."""
    import subprocess

    from helpers import EXE

    proc = subprocess.run(["sh", "-c", f'exec "{EXE}" run --source - <&-'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "genrecast: error: --source -: standard input is closed; pipe raw PCM into it, e.g. ffmpeg -i song.mp3 -f f32le "
        "-ac 1 -ar 22050 - | genrecast run --source -"], proc.stderr


def test_stdin_from_dev_null_is_one_line_and_exit_2() -> None:
    """`sources = ["-"]` in a systemd service (whose standard input is /dev/null) ended at once
    without audio, exit 1, and the unit restarted every 5 s for ever."""
    import subprocess

    from helpers import EXE

    proc = subprocess.run([EXE, "run", "--source", "-"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "genrecast: error: --source -: standard input is /dev/null (as in a systemd service), so there is no audio to "
        "read; pipe raw PCM into it, e.g. ffmpeg -i song.mp3 -f f32le -ac 1 -ar 22050 - | genrecast run --source -, "
        "or give the service a mic, file: or URL source"], proc.stderr


@pytest.mark.parametrize("clip, what", [(("gtzan-sample", "blues", "blues.00099.mp3"), "an MP3 file (an ID3 tag)"),
                                        (("gtzan-sample", "jazz", "jazz.00016.wav"), "a WAV file (RIFF)")])
def test_a_file_piped_into_stdin_is_named_with_the_fix(data_dir: Path, clip: tuple[str, ...], what: str) -> None:
    """`cat song.mp3 | genrecast run --source -` read the file as raw PCM: uncertain windows of
    noise, a NaN warning and exit 0. And `classify -` / `--source file:-` said only "no such file"."""
    import subprocess

    from helpers import EXE

    proc = subprocess.run([EXE, "run", "--source", "-"], input=data_dir.joinpath(*clip).read_bytes(),
                          capture_output=True, timeout=120)
    log = proc.stderr.decode()
    assert proc.returncode == 1 and proc.stdout == b"", log
    assert (f"source stdin stopped: standard input holds {what}, but --source - takes raw PCM (f32le, 22050 Hz, 1 ch); "
            "decode it on the way: ffmpeg -i FILE -f f32le -ac 1 -ar 22050 - | genrecast run --source -, or give the "
            "file itself: --source file:FILE") in log
    for args in (["classify", "-"], ["run", "--source", "file:-"]):
        proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "for audio on standard input run `genrecast run --source -` (raw PCM), and " \
            "for a list of paths there `genrecast classify --list -`" in proc.stderr, proc.stderr


def test_a_truncated_file_is_an_error_line_and_exit_1(tmp_path: Path, data_dir: Path) -> None:
    """A FLAC cut to its first 20 kB (an interrupted download): the run says why it stopped and
    exits 1, so a service of such sources is restarted (Restart=on-failure), not called a success."""
    import subprocess

    from helpers import EXE

    cut = tmp_path / "cut.flac"
    cut.write_bytes((data_dir / "music-speech" / "music" / "bartok.flac").read_bytes()[:20_000])
    proc = subprocess.run([EXE, "run", "--source", f"file:{cut}"], capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(errors) == 1 and "source file-cut stopped" in errors[0] and "Traceback" not in proc.stderr
    # a WAV cut to 2.3 s of its 30 (libsndfile reads what is there as if it were all): the same, and the
    # audio it did hold is classified, its last partial window too
    wav = tmp_path / "cut.wav"
    wav.write_bytes((data_dir / "gtzan-sample" / "rock" / "rock.00000.wav").read_bytes()[:100_000])
    proc = subprocess.run([EXE, "run", "--json", "--source", f"file:{wav}"], capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
    assert errors[0].endswith(f"source file-cut stopped: file:{wav}: the file ends after 2.3 s, though its header "
                              "promises 30.0 s (cut short, or changed while being read)")
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(e["audio_start_seconds"], e["state"]) for e in events] == [(0.0, "music")], events


def test_events_a_sink_never_delivered_make_the_run_exit_1(gtzan_sample: Path) -> None:
    """A file run whose MQTT broker never answers: every event is lost, and the exit status says so."""
    import subprocess

    from helpers import EXE, free_port

    clip = gtzan_sample / "classical" / "classical.00000.wav"
    env = {**os.environ, "GENRECAST_MQTT_PORT": str(free_port()), "GENRECAST_MQTT_CONNECT_TIMEOUT_SECONDS": "0.5"}
    proc = subprocess.run([EXE, "run", "--source", f"file:{clip}", "--sink", "mqtt"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "ERROR genrecast.daemon: sink mqtt: 10 events were never delivered" in proc.stderr


def test_a_reader_that_goes_away_is_not_a_failure(gtzan_sample: Path) -> None:
    """`genrecast run | head -n 2`: the stdout sink stops printing at the broken pipe, says so once,
    and the run still exits 0 (events are not 'undelivered': the reader did not want them)."""
    import subprocess

    from helpers import EXE

    clip = gtzan_sample / "classical" / "classical.00000.wav"
    # ~290 JSON events of ~1 kB: more than a pipe holds, so the pipe surely breaks while the run writes
    proc = subprocess.Popen([EXE, "run", "--source", f"file:{clip}", "--json", "--hop-seconds", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(2)]
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert all(line.startswith("{") for line in lines)
    assert stderr.count("stdout: the reader went away (broken pipe)") == 1 and "Traceback" not in stderr
    # and at the end it says how many events it did not print (the pipe broke on one, at least)
    import re

    assert int(re.search(r"stdout: (\d+) events were not printed after the reader went away", stderr).group(1)) >= 1


def test_classify_into_a_reader_that_goes_away_exits_0(gtzan_sample: Path) -> None:
    """`classify ... | head -n 2` ended with 'genrecast: error: [Errno 32] Broken pipe', exit 2."""
    import subprocess

    from helpers import EXE

    clip = gtzan_sample / "classical" / "classical.00000.wav"
    proc = subprocess.Popen([EXE, "classify", "--json", "--hop-seconds", "0.1", str(clip)],  # more than a pipe holds
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(2)]
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and stderr == "" and all(line.startswith("{") for line in lines), stderr
