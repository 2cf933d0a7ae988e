"""Audio sources against real components: files through ffmpeg, raw PCM on stdin, an
HTTP stream server that dies and comes back, and a PulseAudio virtual microphone."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrecast.daemon.backoff import Backoff
from genrecast.daemon.sources import (
    AudioSource,
    FileSource,
    MicSource,
    SourceError,
    StdinSource,
    StreamSource,
    downmix,
    list_input_devices,
    parse_source,
)

from helpers import children, free_port, wait_for

LOGGER = "genrecast.daemon.sources"
# Fixtures (pulse_server, virtual_mic) live in tests/daemon/conftest.py, stream_servers and stream_mp3s in tests/stream_services.py;
# the Pulse and StreamServers annotations below are strings only.


class Runner:
    """Runs a source in a thread and records what it delivers."""

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.blocks: list[tuple[np.ndarray, int]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _deliver(self, block: np.ndarray, rate: int) -> None:
        assert block.dtype == np.float32 and block.ndim == 1
        with self.lock:
            self.blocks.append((block, rate))

    def _run(self) -> None:
        try:
            self.source.run(self._deliver, self.stop)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def __enter__(self) -> "Runner":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), f"{self.source.name}: run() did not return after stop"

    def samples(self, rate: int | None = None, since: int = 0) -> int:
        with self.lock:
            return sum(len(b) for b, r in self.blocks[since:] if rate is None or r == rate)

    def count(self) -> int:
        with self.lock:
            return len(self.blocks)

    def audio(self, since: int = 0) -> np.ndarray:
        with self.lock:
            parts = [b for b, _ in self.blocks[since:]]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def run_to_end(source: AudioSource) -> tuple[np.ndarray, set[int]]:
    runner = Runner(source)
    runner.thread.start()
    runner.thread.join(timeout=60)
    assert not runner.thread.is_alive()
    if runner.error:
        raise runner.error
    return runner.audio(), {r for _, r in runner.blocks}


def ffmpeg_children() -> list[int]:
    """PIDs of ffmpeg processes whose parent is this process."""
    return [pid for pid, comm, _ in children(os.getpid()) if comm == "ffmpeg"]


def messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


# -- parse_source and bad inputs ------------------------------------------------------

def test_parse_source_kinds(gtzan_sample: Path) -> None:
    clip = gtzan_sample / "blues" / "blues.00000.wav"
    assert isinstance(parse_source(f"file:{clip}"), FileSource)
    assert parse_source(f"file:{clip}").name == "file-blues.00000"
    assert isinstance(parse_source(str(clip)), FileSource)  # a bare existing path
    assert parse_source(f"file:{clip}", loop=True).finite is False
    assert parse_source("-").name == "stdin" and parse_source("-").finite
    mic = parse_source("mic")
    assert isinstance(mic, MicSource) and mic.name == "mic" and mic.device is None and not mic.finite
    assert parse_source("mic:3").device == 3
    assert parse_source("mic:USB Audio").device == "USB Audio"
    stream = parse_source("http://127.0.0.1:9/radio", name="radio", stall_seconds=3)
    assert isinstance(stream, StreamSource) and stream.name == "radio" and stream.stall_seconds == 3
    assert isinstance(parse_source("rtsp://127.0.0.1:9/x"), StreamSource)
    for source in (mic, stream, parse_source("-")):
        assert isinstance(source, AudioSource)


@pytest.mark.parametrize("spec", ["nonsense", "", "file:"])
def test_unknown_spec_is_a_source_error(spec: str) -> None:
    with pytest.raises(SourceError, match="mic, mic:NAME_OR_INDEX, file:PATH"):
        parse_source(spec)


def test_a_url_ffmpeg_can_never_open_and_a_missing_bare_path_are_named() -> None:
    """'htp://' was retried forever ('unsupported protocol'); a missing bare path was an 'unknown source'."""
    with pytest.raises(SourceError, match=r"htp://u:\*+@x/y: 'htp' is not a protocol genrecast streams; use one of http"):
        parse_source("htp://u:secret@x/y")
    with pytest.raises(SourceError, match=r"no such file: music/nothere.mp3 \(a path must exist"):
        parse_source("music/nothere.mp3")
    with pytest.raises(SourceError, match=r"http://: no host in the URL"):
        parse_source("http://")


def test_a_source_name_that_cannot_be_one_is_named_as_such() -> None:
    """`--source a/b=file:x.wav` said "no such file: a/b=file:x.wav" (the config file's form named the rule)."""
    for given, name in (("a/b=file:x.wav", "a/b"), ("=file:x.wav", ""), ("k:tchen=http://r.example/live", "k:tchen")):
        with pytest.raises(SourceError, match=re.escape(
                f"a source's NAME in NAME=SPEC must be a non-empty name without = : / or \\ (not {name!r}); e.g. kitchen=")):
            parse_source(given)
    with pytest.raises(SourceError, match=r"^source 'a/b=http://u:\*+@r.example/live'"):  # no password in the message
        parse_source("a/b=http://u:secret@r.example/live")
    with pytest.raises(SourceError, match=r"no such file: music/a=b.mp3"):  # a file name with "=" is still a path
        parse_source("music/a=b.mp3")


def test_missing_file_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="no such file"):
        parse_source("file:/nonexistent/clip.wav")


def test_empty_file_is_a_source_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty \(0 bytes\)"):
        parse_source(f"file:{empty}")


def test_text_file_named_wav_is_a_source_error(tmp_path: Path) -> None:
    fake = tmp_path / "notes.wav"
    fake.write_text("these are my notes, not a recording\n" * 20)
    with pytest.raises(SourceError, match=r"not an audio file ffmpeg can decode \(Invalid data"):
        parse_source(f"file:{fake}")


@pytest.mark.parametrize("kwargs, match", [
    ({"stdin_format": "s24le"}, "use one of s16le, f32le"),
    ({"stdin_rate": 0}, "positive"),
    ({"stdin_channels": 0}, "1 or more"),
])
def test_bad_stdin_settings_are_source_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        parse_source("-", **kwargs)


def test_backoff_doubles_to_a_cap_and_stop_interrupts_it() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    stop = threading.Event()
    stop.set()
    assert backoff.wait(stop, 3600) is True  # returns at once


def test_downmix_is_the_channel_mean_and_keeps_nan() -> None:
    frames = np.array([[1.0, 0.0], [0.5, -0.5], [np.nan, 1.0]], dtype=np.float32)
    mono = downmix(frames)
    assert mono.dtype == np.float32
    np.testing.assert_array_equal(mono[:2], [0.5, 0.0])
    assert np.isnan(mono[2])


# -- files ----------------------------------------------------------------------------

def test_file_delivers_every_sample_at_native_rate(gtzan_sample: Path) -> None:
    clip = gtzan_sample / "blues" / "blues.00000.wav"
    expected, rate = sf.read(str(clip), dtype="float32")
    audio, rates = run_to_end(parse_source(f"file:{clip}"))
    assert rates == {rate} == {22050}
    assert len(audio) == len(expected)
    np.testing.assert_allclose(audio, expected, atol=1e-6)


def test_a_wav_cut_while_it_is_read_ends_with_an_error_not_repeated_samples(gtzan_sample: Path, tmp_path: Path) -> None:
    """A WAV that shrinks after its header was read: SoundFile.blocks trusted the header and went on
    yielding its last buffer (a run published 8 copies of one window, exit 0). Now every sample
    delivered is the file's own, and the end is an error that names the cut."""
    from genrecast.daemon.sources.files import decode_blocks, probe_file

    clip = tmp_path / "shrinking.wav"
    clip.write_bytes((gtzan_sample / "rock" / "rock.00000.wav").read_bytes())
    expected, _ = sf.read(str(clip), dtype="float32")
    blocks = decode_blocks(clip, probe_file(clip), 22050)
    got = [next(blocks)]
    os.truncate(clip, 44 + 2 * 22050 * 2 + 1000)  # the header and 2 s and a bit of 16-bit samples are left
    with pytest.raises(SourceError, match=r"the file ends after 2\.0 s, though its header promises 30\.0 s"):
        for block in blocks:
            got.append(block)
    audio = np.concatenate(got)
    assert len(audio) == 2 * 22050 + 500
    np.testing.assert_array_equal(audio, expected[:len(audio)])
    info = probe_file(clip)  # --loop opens it again for each pass: gone by then
    clip.unlink()
    with pytest.raises(SourceError, match=r"shrinking.wav: no such file any more \(deleted or moved while genrecast read it\)"):
        list(decode_blocks(clip, info, 22050))


def test_a_truncated_wav_is_an_error_but_a_streamed_one_is_whole(gtzan_sample: Path, tmp_path: Path) -> None:
    """A WAV cut short before it is opened (an interrupted copy) is an error after its audio, as a
    cut FLAC is; a WAV written to a pipe (its data size a placeholder) is read to its end."""
    clip = gtzan_sample / "rock" / "rock.00000.wav"
    cut = tmp_path / "cut.wav"
    cut.write_bytes(clip.read_bytes()[:100_000])
    with pytest.raises(SourceError, match=r"cut.wav: the file ends after 2\.3 s, though its header promises 30\.0 s"):
        run_to_end(parse_source(f"file:{cut}"))
    piped = tmp_path / "piped.wav"
    with open(piped, "wb") as out:
        ffmpeg = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-i", str(clip), "-f", "wav", "-"], stdout=subprocess.PIPE)
        out.write(ffmpeg.communicate(timeout=60)[0])
    assert sf.SoundFile(str(piped)).extra_info.count("4294967295")  # the placeholder, as a pipe leaves it
    audio, _ = run_to_end(parse_source(f"file:{piped}"))
    np.testing.assert_array_equal(audio, sf.read(str(clip), dtype="float32")[0])


def test_mp3_file_decodes(gtzan_sample: Path) -> None:
    clip = gtzan_sample / "blues" / "blues.00099.mp3"
    audio, rates = run_to_end(parse_source(f"file:{clip}"))
    assert rates == {22050}
    assert abs(len(audio) / 22050 - 30.0) < 0.5
    assert np.sqrt(np.mean(audio**2)) > 0.01


def test_stereo_44k_file_is_downmixed_at_44100(data_dir: Path) -> None:
    clip = data_dir / "music" / "misc" / "float32-stereo-44k.wav"
    stereo, rate = sf.read(str(clip), dtype="float32", always_2d=True)
    assert stereo.shape[1] == 2 and rate == 44100
    audio, rates = run_to_end(parse_source(f"file:{clip}"))
    assert rates == {44100}
    assert len(audio) == len(stereo)
    np.testing.assert_allclose(audio, stereo.mean(axis=1), atol=1e-6)


def test_looping_file_restarts_until_stopped(gtzan_sample: Path) -> None:
    source = parse_source(f"file:{gtzan_sample / 'pop' / 'pop.00000.wav'}", loop=True)
    assert not source.finite
    with Runner(source) as runner:
        wait_for(lambda: runner.samples() > 2 * 30 * 22050, 30, "two passes over the clip")
    assert source.loops >= 2
    assert ffmpeg_children() == []


def test_realtime_file_stops_promptly(gtzan_sample: Path) -> None:
    source = parse_source(f"file:{gtzan_sample / 'jazz' / 'jazz.00000.wav'}", realtime=True)
    with Runner(source) as runner:
        wait_for(lambda: runner.samples() > 0, 10, "the first real-time block")
    # paced, so far from the whole 30 s clip once stopped
    assert runner.samples() < 30 * 22050
    assert ffmpeg_children() == []


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_ffmpeg_child_dies_with_a_killed_daemon(gtzan_sample: Path) -> None:
    """PR_SET_PDEATHSIG: SIGKILL the process that runs a source; its ffmpeg goes too (an MP3:
    ffmpeg decodes it; PCM WAVs are read with libsndfile)."""
    code = (
        "import sys, threading\n"
        "from genrecast.daemon.sources import parse_source\n"
        f"s = parse_source({str('file:' + str(gtzan_sample / 'blues' / 'blues.00099.mp3'))!r}, realtime=True)\n"
        "def deliver(block, rate):\n"
        "    print(s.ffmpeg_pid, flush=True)\n"
        "s.run(deliver, threading.Event())\n"
    )
    daemon = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        ffmpeg_pid = int(daemon.stdout.readline())
        assert pid_alive(ffmpeg_pid)
    finally:
        daemon.kill()
        daemon.wait(timeout=10)
        daemon.stdout.close()
    wait_for(lambda: not pid_alive(ffmpeg_pid), 10, f"ffmpeg {ffmpeg_pid} to die with its parent")


# -- stdin ----------------------------------------------------------------------------

def test_stdin_s16le_stereo_downmixed_and_partial_frame_dropped(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(-32768, 32767, size=(10_001, 2), dtype=np.int16)
    payload = frames.astype("<i2").tobytes() + b"\x01\x02\x03"  # a partial trailing frame
    caplog.set_level(logging.INFO, logger=LOGGER)
    source = StdinSource(format="s16le", rate=16000, channels=2, stream=io.BytesIO(payload), block_frames=1000)
    audio, rates = run_to_end(source)
    assert rates == {16000}
    np.testing.assert_allclose(audio, frames.astype(np.float32).mean(axis=1) / 32768, atol=1e-6)
    assert "partial trailing frame of 3 bytes" in messages(caplog)


def test_stdin_f32le_through_a_pipe_passes_nan(tmp_path: Path) -> None:
    samples = np.array([0.25, np.nan, -np.inf, 0.5] * 3000, dtype="<f4")
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_fd, samples.tobytes()), os.close(write_fd)))
    writer.start()
    with os.fdopen(read_fd, "rb") as stream:
        audio, rates = run_to_end(StdinSource(format="f32le", rate=8000, channels=1, stream=stream))
    writer.join()
    assert rates == {8000}
    np.testing.assert_array_equal(audio, samples)


def test_stdin_source_returns_on_stop_while_waiting() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(read_fd, "rb") as stream:
            with Runner(StdinSource(stream=stream)) as runner:
                pass  # nothing written: __exit__ sets stop and asserts run() returned
            assert runner.samples() == 0
    finally:
        os.close(write_fd)


def test_stdin_source_in_a_child_process_reads_real_stdin() -> None:
    code = (
        "import sys, threading, numpy as np\n"
        "from genrecast.daemon.sources import parse_source\n"
        "got = []\n"
        "parse_source('-', stdin_format='s16le', stdin_rate=11025, stdin_channels=2)"
        ".run(lambda b, r: got.append((len(b), r, float(b.sum()))), threading.Event())\n"
        "print(sum(n for n, _, _ in got), {r for _, r, _ in got}.pop(), round(sum(s for _, _, s in got), 3))\n"
    )
    frames = np.full((5000, 2), [16384, 0], dtype="<i2")  # mean 0.25 per frame
    proc = subprocess.run([sys.executable, "-c", code], input=frames.tobytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().split() == ["5000", "11025", "1250.0"]


# -- streams --------------------------------------------------------------------------

def fast_stream(url: str, stall_seconds: float = 10.0) -> StreamSource:
    return StreamSource(url, stall_seconds=stall_seconds, backoff_initial_seconds=0.1, backoff_max_seconds=0.5)


@pytest.mark.service
def test_stream_reconnects_after_the_server_dies_and_reports_a_rate_change(
        stream_servers: StreamServers, stream_mp3s: dict[int, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    port, server = stream_servers.start("mp3", stream_mp3s[22050])
    source = fast_stream(f"http://127.0.0.1:{port}/live.mp3")
    with Runner(source) as runner:
        wait_for(lambda: runner.samples(22050) > 2 * 22050, 20, "2 s of stream audio")
        assert np.sqrt(np.mean(runner.audio() ** 2)) > 0.01
        stream_servers.kill(server)  # the radio goes away mid-stream
        wait_for(lambda: source.restarts >= 1 and not source.connected, 20, "the source to notice")
        wait_for(lambda: "connection refused" in messages(caplog), 20, "a failed reconnect")
        before = runner.count()
        stream_servers.start("mp3", stream_mp3s[44100], port=port)  # back, at another rate
        wait_for(lambda: runner.samples(44100, since=before) > 2 * 44100, 20, "audio after the server came back")
        assert source.rate == 44100
        assert runner.error is None
    log_text = messages(caplog)
    assert "rate changed from 22050 to 44100" in log_text
    assert "recovered after" in log_text
    assert source.ffmpeg_pid is not None and not Path(f"/proc/{source.ffmpeg_pid}").exists()
    assert ffmpeg_children() == []


@pytest.mark.service
def test_a_url_that_ends_at_once_backs_off(stream_servers: StreamServers, stream_mp3s: dict[int, Path],
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A hosted 12-s MP3 decodes in a moment and ends: the retries back off (0.1, 0.2, 0.4 s ...)
    instead of fetching it again every 0.1 s (1 s of audio used to count as a healthy connection)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    port, _ = stream_servers.start("file", stream_mp3s[22050])
    source = fast_stream(f"http://127.0.0.1:{port}/episode.mp3")
    with Runner(source):
        wait_for(lambda: "(failure 3)" in messages(caplog), 30, "three ends of the stream")
    delays = re.findall(r"ended \(end of stream\); reconnecting in ([0-9.]+) s", messages(caplog))
    assert [float(d) for d in delays[:3]] == [0.1, 0.2, 0.4], messages(caplog)


@pytest.mark.service
def test_stream_that_sends_nothing_is_a_stall_and_restarts(
        stream_servers: StreamServers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    port, _ = stream_servers.start("hold")
    source = fast_stream(f"http://127.0.0.1:{port}/silent", stall_seconds=1.0)
    with Runner(source) as runner:
        wait_for(lambda: source.stalls >= 2 and source.restarts >= 2, 30, "two stalls")
    assert runner.samples() == 0 and runner.error is None
    assert "(stalled" in messages(caplog)
    assert ffmpeg_children() == []


@pytest.mark.service
def test_stream_of_garbage_is_logged_and_retried(
        stream_servers: StreamServers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    port, _ = stream_servers.start("garbage")
    source = fast_stream(f"http://127.0.0.1:{port}/garbage", stall_seconds=5.0)
    with Runner(source) as runner:
        wait_for(lambda: source.restarts >= 2, 30, "two retries")
    assert runner.error is None and runner.samples() == 0
    assert "not decodable" in messages(caplog)
    assert ffmpeg_children() == []


@pytest.mark.service
def test_unreachable_stream_retries_and_stops_promptly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    source = StreamSource(f"http://127.0.0.1:{free_port()}/nothing", backoff_initial_seconds=0.1,
                          backoff_max_seconds=30)
    with Runner(source) as runner:
        wait_for(lambda: source.restarts >= 2, 30, "two retries")
        # the next wait grows towards the 30 s cap; stop must still end run() at once
    assert runner.error is None
    assert "connection refused: nothing listens" in messages(caplog)
    assert "reconnecting in" in messages(caplog)
    assert ffmpeg_children() == []


def test_reconnect_loop_is_alive_while_it_waits_but_not_in_a_hung_attempt() -> None:
    """What the watchdog asks a reconnecting source: a backoff wait is alive however long;
    an attempt is alive only for so long after it began."""
    from genrecast.daemon.sources import _Reconnecting

    release, attempts = threading.Event(), []

    class Hanging(_Reconnecting):
        name = "hanging"

        def _attempt(self, deliver, stop, first):
            attempts.append(first)
            if first:
                return "refused"  # fails at once: the loop waits 2 s to retry
            release.wait(30)  # the second attempt hangs
            return "released"

    source, stop = Hanging(2.0, 2.0), threading.Event()
    thread = threading.Thread(target=source.run, args=(lambda block, rate: None, stop))
    thread.start()
    try:
        wait_for(lambda: source.waiting_to_retry, 5, "the first retry wait")
        assert source.loop_alive(0.0)
        wait_for(lambda: len(attempts) == 2, 10, "the second attempt")
        assert not source.waiting_to_retry
        wait_for(lambda: not source.loop_alive(0.2), 5, "the hung attempt to stop counting as alive")
    finally:
        stop.set()
        release.set()
        thread.join(10)
    assert not thread.is_alive() and source.restarts == 1


# -- microphone (PulseAudio) ----------------------------------------------------------

def test_mic_losses_are_logged_the_first_time_and_every_100th(caplog: pytest.LogCaptureFixture) -> None:
    """The counters move in the PortAudio callback; the reading loop reports them."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    source = MicSource(None, name="mic-test")

    def report(overflows: int, dropped: int) -> list[str]:
        before = len(caplog.records)
        source.overflows, source.dropped_blocks = overflows, dropped
        source._report_losses()
        return [r.getMessage() for r in caplog.records[before:] if r.name == LOGGER]

    assert report(0, 0) == []
    assert report(1, 0) == ["mic-test: input overflow, PortAudio lost audio before it was read (1 so far)"]
    assert report(1, 0) == []  # nothing new
    assert report(99, 0) == []
    assert report(100, 0) == ["mic-test: input overflow, PortAudio lost audio before it was read (100 so far)"]
    assert report(250, 0) == ["mic-test: input overflow, PortAudio lost audio before it was read (250 so far)"]  # passed 200
    assert report(299, 0) == []
    assert report(299, 3) == ["mic-test: dropped audio, delivery is 256 blocks behind (3 blocks dropped so far)"]
    assert report(300, 100) == ["mic-test: input overflow, PortAudio lost audio before it was read (300 so far)",
                                "mic-test: dropped audio, delivery is 256 blocks behind (100 blocks dropped so far)"]
    assert report(301, 101) == []


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0


@pytest.mark.service
def test_list_input_devices_shows_pulse_and_default(virtual_mic: Pulse) -> None:
    devices = list_input_devices()
    names = {d["name"] for d in devices}
    assert {"pulse", "default"} <= names
    assert sum(d["is_default"] for d in devices) == 1
    for d in devices:
        assert set(d) == {"index", "name", "channels", "default_samplerate", "is_default"}
        assert d["channels"] > 0 and d["default_samplerate"] > 0


@pytest.mark.service
@pytest.mark.parametrize("spec", ["mic", "mic:pulse"])
def test_mic_captures_what_is_played(virtual_mic: Pulse, gtzan_sample: Path, spec: str) -> None:
    source = parse_source(spec)
    virtual_mic.play(gtzan_sample / "rock" / "rock.00000.wav")
    with Runner(source) as runner:
        wait_for(lambda: rms(runner.audio()[-22050:]) > 0.01, 20, "non-silent audio from the virtual mic")
    assert runner.error is None
    rate = source.rate
    assert rate == int(next(d for d in list_input_devices() if d["is_default"])["default_samplerate"])
    assert {r for _, r in runner.blocks} == {rate}


@pytest.mark.service
def test_mic_survives_the_device_vanishing_and_resumes(
        virtual_mic: Pulse, gtzan_sample: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clip = gtzan_sample / "rock" / "rock.00000.wav"
    source = MicSource(None, stall_seconds=2.0, backoff_initial_seconds=0.1, backoff_max_seconds=0.5)
    virtual_mic.play(clip)
    with Runner(source) as runner:
        wait_for(lambda: rms(runner.audio()[-22050:]) > 0.01, 20, "audio before the device goes")
        virtual_mic.remove_virtual_mic()
        wait_for(lambda: source.restarts >= 2, 20, "retries while the device is gone")
        assert runner.thread.is_alive() and runner.error is None
        virtual_mic.add_virtual_mic()
        virtual_mic.play(clip)
        before = runner.count()
        wait_for(lambda: rms(runner.audio(since=before)[-22050:]) > 0.01, 20, "audio after the device is back")
    text = messages(caplog)
    assert "retrying in" in text and "recovered after" in text


@pytest.mark.service
def test_unknown_mic_is_retried_not_raised(virtual_mic: Pulse, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    source = parse_source("mic:nosuchdevice")
    source.backoff = Backoff(0.1, 0.2)
    with Runner(source) as runner:
        wait_for(lambda: source.restarts >= 2, 20, "two retries")
    assert runner.error is None and runner.samples() == 0
    assert "no input device matching 'nosuchdevice'" in messages(caplog)
    assert "pulse" in messages(caplog)  # the message lists what exists
