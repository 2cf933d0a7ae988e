"""Files people really have (issue 17, items 1-4): names ffmpeg could read as URLs, WAVs
whose recorder was killed, long files, clips shorter than one window. Each input is made
here with ffmpeg or numpy; every command that reads files (``run``, ``classify``,
training and ``evaluate``'s extraction) must read it, and read it the same way."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import tracemalloc
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf

from genrecast.daemon.audio import AudioDecodeError, load_audio, open_audio
from genrecast.daemon.classifier import open_classifier
from genrecast.daemon.classify import classify_file
from genrecast.daemon.features import FeatureConfig, window_features
from genrecast.daemon.pipeline import PipelineSettings
from genrecast.daemon.sources import FileInfo, FileSource, SourceError, decode_blocks, parse_source, probe_audio, probe_file
from genrecast.daemon.windowing import Windower
from genrecast.trainer.extract import track_features

from helpers import EXE, Terminal, data_root, need, run_cli, wait_for

RATE = 22050
CFG = FeatureConfig()  # 3-s MFCC windows at 22050 Hz


def music(seconds: float, rate: int = RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Loud, music-like test audio: a chord with a beat and some noise, ``(frames, channels)``."""
    t = np.arange(int(round(seconds * rate))) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    beat = 0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > 0)
    noise = np.random.default_rng(seed).standard_normal((len(t), channels)) * 0.05
    return (0.5 * (chord * beat)[:, None] + noise).astype(np.float32)


def ffmpeg_encode(source: Path, out: Path, *args: str) -> Path:
    """Encode ``source`` to ``out`` with ffmpeg (both named unambiguously with ``file:``)."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", f"file:{source}", *args, f"file:{out}"],
                   check=True, timeout=120)
    return out


def run_file(source: FileSource) -> tuple[np.ndarray, int]:
    """Everything a file source delivers, and its rate."""
    blocks: list[np.ndarray] = []
    rates: set[int] = set()
    source.run(lambda block, rate: (blocks.append(block), rates.add(rate)), threading.Event())
    assert len(rates) == 1
    return np.concatenate(blocks), rates.pop()


def run_windows(path: Path) -> list:
    """The windows ``genrecast run --source file:PATH`` classifies (hop = window), the
    padded last one included."""
    windower = Windower("t", CFG.sample_rate, CFG.window_samples, CFG.window_samples)
    windows = []
    parse_source(f"file:{path}").run(lambda block, rate: windows.extend(windower.push(block, rate)), threading.Event())
    return windows + windower.flush()


@pytest.fixture(scope="module")
def classifier():
    return open_classifier(None, "litert")


# -- 1. local paths that look like URLs ----------------------------------------------

ODD_NAMES = ["take:01.wav", "2024-05-01T12:00:00.flac", "concat:a|b.mp3", "http:not-a-url.ogg", "-dash.wav",
             "pipe:0.wav", "my song #1?.wav"]


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory) -> Path:
    """A 7-s clip under each odd name, in several formats (made with numpy, then ffmpeg)."""
    folder = tmp_path_factory.mktemp("odd names")
    plain = folder / "plain.wav"
    sf.write(plain, music(7.0), RATE, subtype="PCM_16")
    for name in ODD_NAMES:
        ffmpeg_encode(plain, folder / name)
    return folder


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_local_names_reach_ffmpeg_as_files_in_every_spelling(odd_files: Path, name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(odd_files)
    path = odd_files / name
    expected, rate = run_file(FileSource(path))
    assert abs(len(expected) / rate - 7.0) < 0.1
    uri = "file://" + quote(str(path))
    for spec in (f"file:{name}", f"file:./{name}", f"file:{path}", uri, str(path)):
        audio, spec_rate = run_file(parse_source(spec))
        assert spec_rate == rate and np.array_equal(audio, expected), spec
    if not name.startswith("-"):
        audio, _ = run_file(parse_source(name))  # a bare relative path that exists is a file, not a URL
        assert np.array_equal(audio, expected)
    assert len(load_audio(name, RATE)) == pytest.approx(7.0 * RATE, abs=RATE // 10)  # classify and training
    assert track_features(Path(name), CFG).shape[0] == 2
    rate, channels, _ = probe_audio(Path(name))  # ffprobe and ffmpeg themselves, whatever decodes it by default
    by_ffmpeg = np.concatenate(list(decode_blocks(Path(name), FileInfo(rate, channels, None, False), 4096)))
    np.testing.assert_allclose(by_ffmpeg, expected, atol=1e-6)


def test_classify_cli_reads_a_name_with_colons(odd_files: Path) -> None:
    proc = run_cli("classify", "--json", "take:01.wav", "./2024-05-01T12:00:00.flac", cwd=odd_files)
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(line) for line in proc.stdout.splitlines() if '"verdict"' in line]
    assert [v["file"] for v in verdicts] == ["take:01.wav", "2024-05-01T12:00:00.flac"]
    assert all(v["windows"] == 2 and v["genre"] for v in verdicts)


def test_missing_odd_names_say_no_such_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="file:take:02.wav: no such file"):
        parse_source("file:take:02.wav")
    with pytest.raises(AudioDecodeError, match="take:02.wav: no such file"):
        open_audio("take:02.wav")


def test_file_uri_from_another_host_is_refused() -> None:
    with pytest.raises(SourceError, match="must name a local file"):
        parse_source("file://nas/music/take.wav")


# -- 2. one decoder ------------------------------------------------------------------

def killed_recording(path: Path, audio: np.ndarray, rate: int) -> Path:
    """A WAV as a recorder killed mid-take leaves it: header sizes never written (0)."""
    sf.write(path, audio, rate, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[4:8] = bytes(4)  # RIFF size
    at = data.index(b"data")
    data[at + 4 : at + 8] = bytes(4)  # data size
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("channels, rate", [(1, 22050), (2, 44100)])
def test_a_killed_recording_is_read_in_full_by_every_command(tmp_path: Path, classifier, channels: int,
                                                             rate: int) -> None:
    clip = music(10.0, rate, channels)
    path = killed_recording(tmp_path / "killed.wav", clip, rate)
    run_audio, run_rate = run_file(FileSource(path))
    assert run_rate == rate and len(run_audio) == len(clip)
    np.testing.assert_allclose(run_audio, clip.mean(axis=1), atol=1e-4)  # 16-bit
    result = classify_file(path, classifier, PipelineSettings())
    assert result.windows == 3 and result.audio_seconds == pytest.approx(10.0, abs=0.01)
    assert track_features(path, CFG).shape[0] == 3
    proc = run_cli("classify", "--json", str(path))
    assert proc.returncode == 0 and '"windows": 3' in proc.stdout.splitlines()[-1]


def mirdata_files() -> list[Path]:
    root = data_root() / "music" / "mirdata"
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".mp3")) if root.is_dir() else []


@pytest.mark.slow
def test_run_classify_and_training_see_the_same_samples_of_every_mirdata_file(classifier) -> None:
    """Every format in music/mirdata (16/24/32-bit and float WAV, extensible WAV, FLAC,
    MP3; 1-6 channels; 22.05-48 kHz): the windows ``run`` classifies are the windows
    ``classify`` and training cut, sample for sample, and give the same features."""
    files = mirdata_files()
    if not files:
        need(data_root() / "music" / "mirdata")
    for path in files:
        from_run = run_windows(path)
        heard = np.concatenate([w.samples[: int(round((w.end_seconds - w.start_seconds) * CFG.sample_rate))]
                                for w in from_run]) if from_run else np.zeros(0, np.float32)
        decoded = load_audio(path, CFG.sample_rate)  # what classify and training decode
        assert np.array_equal(heard, decoded[: len(heard)]), path
        assert len(decoded) - len(heard) < CFG.window_samples / 2, path  # only a tail too short for a window
        full = [w.samples for w in from_run if w.end_seconds - w.start_seconds >= CFG.window_seconds]
        if full:
            np.testing.assert_array_equal(track_features(path, CFG), np.stack([window_features(w, CFG) for w in full]),
                                          err_msg=str(path))
        else:
            with pytest.raises(AudioDecodeError, match="too short"):
                track_features(path, CFG)
        result = classify_file(path, classifier, PipelineSettings())
        assert result.windows == len(from_run) and result.too_short == (not from_run), path


@pytest.mark.slow
def test_libsndfile_is_used_only_where_it_gives_ffmpegs_samples() -> None:
    """Every mirdata file libsndfile is trusted with decodes to ffmpeg's samples exactly;
    the rest (MP3, a killed recording) go to ffmpeg."""
    files = mirdata_files()
    if not files:
        need(data_root() / "music" / "mirdata")
    trusted = 0
    for path in files:
        info = probe_file(path)
        if not info.soundfile:
            assert path.suffix.lower() not in (".wav", ".flac") or info.duration_seconds, path
            continue
        trusted += 1
        rate, channels, _ = probe_audio(path)
        assert (rate, channels) == (info.rate, info.channels), path
        ours = np.concatenate(list(decode_blocks(path, info, 65536)))
        ffmpeg = np.concatenate(list(decode_blocks(path, FileInfo(rate, channels, None, False), 65536)))
        assert np.array_equal(ours, ffmpeg), (path, float(np.abs(ours - ffmpeg).max()) if len(ours) == len(ffmpeg) else "length")
    assert trusted >= 30  # (the one .mp3 in mirdata is a float WAV, rightly trusted)


def test_lossy_files_and_killed_recordings_go_to_ffmpeg(tmp_path: Path) -> None:
    fine = tmp_path / "fine.wav"
    sf.write(fine, music(2.0), RATE, subtype="PCM_16")
    assert probe_file(fine).soundfile is True
    for lossy in ("clip.mp3", "clip.ogg", "clip.m4a"):
        assert probe_file(ffmpeg_encode(fine, tmp_path / lossy)).soundfile is False
    assert probe_file(killed_recording(tmp_path / "killed.wav", music(2.0), RATE)).soundfile is False


# -- 3. long files -------------------------------------------------------------------

def _write_minutes(path: Path, minutes: int) -> Path:
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, subtype="PCM_16") as f:
        for minute in range(minutes):
            f.write(music(60.0, 8000, seed=minute)[:, 0])
    return path


def _peaks(path: Path, classifier) -> tuple[int, int, int, int]:
    """(classify windows, classify peak bytes, extracted windows, extraction peak bytes) under tracemalloc."""
    tracemalloc.start()
    try:
        result = classify_file(path, classifier, PipelineSettings(), on_event=lambda r, e: None)
        _, classify_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        features = track_features(path, CFG)
        _, extract_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.events == []  # streamed to on_event, not kept
    return result.windows, classify_peak, features.shape[0], extract_peak


def test_long_files_stream_in_bounded_memory(tmp_path: Path, classifier) -> None:
    """Two and ten minutes of 8-kHz audio: decoded in blocks, and the memory classify and
    training extraction peak at does not grow with the length (holding the whole ten
    minutes would take 53 MB at 22050 Hz float32). Hours: benchmarks/long_file.py."""
    long_file = _write_minutes(tmp_path / "long.wav", 10)
    sizes = [len(b) for b in open_audio(long_file).blocks(10.0)]
    assert len(sizes) == 60 and max(sizes) == 80_000  # 10-s blocks at 8 kHz
    short = _peaks(_write_minutes(tmp_path / "short.wav", 2), classifier)
    long = _peaks(long_file, classifier)
    assert (short[0], short[2], long[0], long[2]) == (40, 40, 200, 200)
    whole = 600 * RATE * 4
    for what, small, big in (("classify", short[1], long[1]), ("extraction", short[3], long[3])):
        assert big < 1.25 * small + 2e6 and big < whole / 2, f"{what}: {small / 1e6:.1f} MB for 2 min, {big / 1e6:.1f} MB for 10"


def test_a_long_file_shows_a_progress_bar_on_a_terminal_and_keeps_stdout_clean(tmp_path: Path) -> None:
    """stderr is the terminal, stdout the JSON lines (redirected to a file): the bar goes to stderr only."""
    long_file = tmp_path / "set.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=330:d=200",
                    "-ac", "2", "-b:a", "64k", str(long_file)], check=True, timeout=120)
    out = tmp_path / "out.jsonl"
    with Terminal(f"{EXE} classify --json {long_file} > {out}", width=120, height=20) as term:
        screen = wait_for(lambda: "EXIT=" in (text := term.screen()) and text, 120, "classify to finish")
    assert "EXIT=0" in screen and "classifying set.mp3" in screen and "100%" in screen
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[-1]["type"] == "verdict" and lines[-1]["windows"] == 67


# -- 4. shorter than one window ------------------------------------------------------

@pytest.mark.parametrize("seconds", [0.05, 0.5, 1.4])
def test_a_clip_shorter_than_a_window_is_called_too_short_not_silence(tmp_path: Path, seconds: float) -> None:
    clip = tmp_path / f"clip-{seconds}.wav"
    sf.write(clip, music(seconds), RATE, subtype="PCM_16")
    proc = run_cli("classify", str(clip))
    assert proc.returncode == 3, proc.stderr
    assert "verdict: too short" in proc.stdout and "no music heard" not in proc.stdout
    proc = run_cli("classify", "--json", str(clip))
    verdict = json.loads(proc.stdout.splitlines()[-1])
    assert proc.returncode == 3 and verdict["too_short"] is True and verdict["genre"] is None
    assert verdict["audio_seconds"] == pytest.approx(seconds, abs=0.01)
    run = subprocess.run([EXE, "run", "--source", f"file:{clip}", "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout == ""
    assert f"{seconds:.2f} s of audio is shorter than one 3-s window" in run.stderr


def test_a_clip_just_long_enough_is_classified_and_a_good_file_beside_a_short_one_still_counts(tmp_path: Path) -> None:
    enough = tmp_path / "enough.wav"
    short = tmp_path / "short.wav"
    sf.write(enough, music(1.6), RATE, subtype="PCM_16")
    sf.write(short, music(1.0), RATE, subtype="PCM_16")
    proc = run_cli("classify", "--json", str(enough), str(short))
    verdicts = [json.loads(line) for line in proc.stdout.splitlines() if '"verdict"' in line]
    assert proc.returncode == 3
    assert verdicts[0]["too_short"] is False and verdicts[0]["windows"] == 1 and verdicts[0]["genre"]
    assert verdicts[1]["too_short"] is True


def test_training_skips_a_short_file_with_its_length(tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, music(1.0), RATE, subtype="PCM_16")
    with pytest.raises(AudioDecodeError, match=r"too short \(1.00 s < one 3-s window\)"):
        track_features(short, CFG)


def test_the_pipeline_logs_a_short_stdin_input(caplog: pytest.LogCaptureFixture, classifier) -> None:
    import io

    from genrecast.daemon.pipeline import Pipeline
    from genrecast.daemon.sources import StdinSource

    pcm = (music(0.8)[:, 0] * 32767).astype("<i2").tobytes()
    caplog.set_level(logging.WARNING, logger="genrecast.daemon.pipeline")
    events = []
    Pipeline(classifier, [StdinSource(format="s16le", rate=RATE, stream=io.BytesIO(pcm))], events.append).run()
    assert events == []
    assert "source stdin ended: 0.80 s of audio is shorter than one 3-s window" in caplog.text


def test_a_source_stopped_before_any_audio_is_not_called_too_short(caplog: pytest.LogCaptureFixture, classifier) -> None:
    """A microphone or stream that never delivered (missing device, server down) and is stopped:
    no "0.00 s of audio is shorter than one window" (that is for short inputs)."""
    from genrecast.daemon.pipeline import Pipeline

    class Silent:
        name = "mic"

        def run(self, deliver, stop) -> None:
            stop.wait(5)

    caplog.set_level(logging.INFO, logger="genrecast.daemon.pipeline")
    pipeline = Pipeline(classifier, [Silent()], [].append)
    pipeline.stop_event.set()
    pipeline.run()
    assert "shorter than one" not in caplog.text and "ended without any audio" not in caplog.text
    assert "source mic stopped before any audio arrived" in caplog.text


def test_a_file_that_fails_mid_way_is_logged_with_its_reason_not_a_traceback(caplog: pytest.LogCaptureFixture,
                                                                          classifier) -> None:
    """The file source raises its decode error from run(); the pipeline logs it in one line."""
    from genrecast.daemon.pipeline import Pipeline
    from genrecast.daemon.sources import FileDecodeError

    class Breaks:
        name, finite = "file-broken", True

        def run(self, deliver, stop) -> None:
            deliver(music(4.0)[:, 0], RATE)
            raise FileDecodeError("file:broken.mp3: ffmpeg could not decode it (not decodable: ...)")

    caplog.set_level(logging.INFO, logger="genrecast.daemon.pipeline")
    events = []
    pipeline = Pipeline(classifier, [Breaks()], events.append)
    pipeline.run()
    assert len(events) == 1  # the window before the break, and no flush of the broken rest
    assert pipeline.failed_sources == ["file-broken"]  # `genrecast run` exits 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "source file-broken stopped: file:broken.mp3: ffmpeg could not decode it (not decodable: ...)"]
    assert errors[0].exc_info is None


def test_text_named_mp3_is_one_line_without_decoder_noise(tmp_path: Path) -> None:
    """libsndfile would hand a .mp3 to mpg123, whose 'Note: Illegal Audio-MPEG-Header' lines went to stderr first."""
    fake = tmp_path / "notes.mp3"
    fake.write_text("not audio at all\n")
    proc = run_cli("classify", str(fake))
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        f"genrecast: error: {fake}: not an audio file ffmpeg can decode (Invalid argument)"], proc.stderr
