"""The bandwidth estimate (daemon/bandwidth.py) on real audio: full-band GTZAN clips are not
band-limited, the same clips through ``ffmpeg -ar 8000`` / ``-ar 16000`` are, and so is musicnn's
16-kHz MP3; then end to end: ``genrecast run`` and ``classify`` log it once and flag the events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon.audio import load_audio
from genrecast.daemon.bandwidth import MIN_WINDOWS, BandwidthMonitor
from genrecast.daemon.smoothing import level_dbfs

from helpers import Daemon, run_cli, sample_clips

RATE = 22050
WINDOW = 3 * RATE
#: A few clips with dark spectra (classical, jazz) and bright ones (metal, pop).
CLIPS = ["classical/classical.00000.wav", "jazz/jazz.00016.wav", "metal/metal.00000.wav", "pop/pop.00000.wav"]


def resampled(clip: Path, rate: int, folder: Path) -> Path:
    """``clip`` through ``ffmpeg -ar RATE`` (mono 16-bit WAV): band-limited to RATE/2."""
    out = folder / f"{clip.stem}-{rate}.wav"
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-ac", "1", "-ar", str(rate), str(out)],
                       check=True, timeout=60)
    return out


def monitor_over(audio: np.ndarray, silence_dbfs: float = -50.0) -> tuple[BandwidthMonitor, list[float]]:
    """Feed 3-s windows as the pipeline does (silent ones as None); the estimates after each."""
    monitor, estimates = BandwidthMonitor(RATE), []
    for start in range(0, len(audio) - WINDOW + 1, WINDOW):
        window = audio[start : start + WINDOW]
        state = monitor.update(window if level_dbfs(window) >= silence_dbfs else None)
        if state.bandwidth_hz is not None:
            estimates.append(state.bandwidth_hz)
    return monitor, estimates


@pytest.fixture(scope="module")
def converted(tmp_path_factory, gtzan_sample: Path) -> dict[int, list[Path]]:
    folder = tmp_path_factory.mktemp("band")
    return {rate: [resampled(gtzan_sample / clip, rate, folder) for clip in CLIPS] for rate in (8000, 16000)}


def test_full_band_gtzan_clips_are_not_band_limited(gtzan_sample: Path) -> None:
    lowest = {}
    for clip in sample_clips(gtzan_sample):
        monitor, estimates = monitor_over(load_audio(clip, RATE))
        assert len(estimates) >= 10 - MIN_WINDOWS and not monitor.reported, (clip.name, estimates)
        lowest[clip.name] = min(estimates)
    assert min(lowest.values()) > monitor.limit_hz, lowest  # measured: >= 9.9 kHz on every clip


@pytest.mark.parametrize("rate", [8000, 16000])
def test_the_same_clips_resampled_down_are_band_limited(converted: dict[int, list[Path]], rate: int) -> None:
    for path in converted[rate]:
        monitor, estimates = monitor_over(load_audio(path, RATE))
        assert monitor.reported, path.name
        # about the old Nyquist frequency, within two of the estimate's 43-Hz bins above it
        assert all(0.45 * rate <= e <= 0.5 * rate + 100 for e in estimates), (path.name, estimates)


def test_musicnn_16k_mp3_is_band_limited_and_its_22k_one_is_not(data_dir: Path) -> None:
    folder = data_dir / "music" / "musicnn"
    if not folder.exists():
        pytest.skip(f"{folder} is absent")
    wide = monitor_over(load_audio(folder / "joram-moments_of_clarity-08-solipsism-59-88.mp3", RATE))
    full = monitor_over(load_audio(folder / "TRWJAZW128F42760DD_test.mp3", RATE))
    assert wide[0].reported and max(wide[1]) < 8000
    assert not full[0].reported and min(full[1]) > full[0].limit_hz


def test_the_estimate_ignores_level_and_silent_windows(gtzan_sample: Path, converted: dict[int, list[Path]]) -> None:
    """A clip 40 dB down is judged as at full level (the pipeline's silence gate aside, set low
    here); silent windows between leave the estimate alone."""
    clean = load_audio(gtzan_sample / CLIPS[0], RATE)
    telephone = load_audio(converted[8000][0], RATE)
    gap = np.zeros(2 * WINDOW, np.float32)
    for audio, limited in ((clean, False), (telephone, True)):
        loud = monitor_over(audio)[1]
        cut = (MIN_WINDOWS + 1) * WINDOW  # two estimates, then the gap
        quiet_monitor, quiet = monitor_over(np.concatenate([audio[:cut], gap, audio[cut:]]) * 0.01, silence_dbfs=-100)
        assert quiet_monitor.reported is limited
        assert quiet[2:4] == [quiet[1]] * 2  # the two silent windows repeat the estimate before them
        assert quiet[:2] + quiet[4:] == pytest.approx(loud, abs=1)
    fresh = BandwidthMonitor(RATE)
    assert fresh.update(None).bandwidth_hz is None and fresh.update(np.zeros(WINDOW, np.float32)).bandwidth_hz is None


def test_a_dark_passage_between_brighter_ones_is_not_band_limited(gtzan_sample: Path) -> None:
    """9 s of a clip through a steep 3-kHz low-pass (a dark passage: a solo bass) in the middle
    leave the source full-band; the whole clip through it is band-limited."""
    from scipy.signal import butter, sosfilt

    clip = load_audio(gtzan_sample / CLIPS[0], RATE)
    dark = sosfilt(butter(12, 3000, fs=RATE, output="sos"), clip).astype(np.float32)
    passage = slice(4 * WINDOW, 7 * WINDOW)
    mixed = clip.copy()
    mixed[passage] = dark[passage]
    monitor, estimates = monitor_over(mixed)
    assert not monitor.reported and min(estimates) > monitor.limit_hz, estimates
    assert monitor_over(dark)[0].reported
    assert BandwidthMonitor(RATE).update(dark[passage][:WINDOW]).bandwidth_hz is None  # one window alone is not judged


def _flag_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "band-limited" in line]


@pytest.mark.slow
def test_run_logs_a_band_limited_source_once_and_flags_its_events(converted: dict[int, list[Path]],
                                                                   gtzan_sample: Path) -> None:
    telephone = converted[8000][1]  # jazz.00016 at 8 kHz
    daemon = Daemon(["--source", f"file:{telephone}", "--source", f"file:{gtzan_sample / CLIPS[1]}", "--json"])
    try:
        assert daemon.proc.wait(timeout=120) == 0, "".join(daemon.log[-10:])
    finally:
        daemon.stop()
    lines = _flag_lines("".join(daemon.log))
    assert len(lines) == 1 and "source file-jazz.00016-8000:" in lines[0] and "about 4.0 kHz" in lines[0], lines
    by_source = {name: [e for e in daemon.events if e["source"] == name]
                 for name in ("file-jazz.00016-8000", "file-jazz.00016")}
    limited, clean = by_source["file-jazz.00016-8000"], by_source["file-jazz.00016"]
    assert len(limited) == len(clean) == 10
    assert [e["band_limited"] for e in limited] == [None] * (MIN_WINDOWS - 1) + [True] * (11 - MIN_WINDOWS)
    assert all(3900 <= e["bandwidth_hz"] <= 4100 for e in limited[MIN_WINDOWS - 1 :])
    assert [e["band_limited"] for e in clean] == [None] * (MIN_WINDOWS - 1) + [False] * (11 - MIN_WINDOWS)


@pytest.mark.slow
def test_classify_flags_a_16k_file_in_its_window_events(converted: dict[int, list[Path]]) -> None:
    proc = run_cli("classify", "--json", str(converted[16000][0]), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    windows = [json.loads(line) for line in proc.stdout.splitlines() if json.loads(line)["type"] == "window"]
    assert windows[-1]["band_limited"] is True and 7000 < windows[-1]["bandwidth_hz"] < 8000
    assert len(_flag_lines(proc.stderr)) == 1


def test_talk_at_8k_is_band_limited_too(data_dir: Path, tmp_path: Path) -> None:
    """Windows the music detector calls not music stay out of the genre context, but not out of the
    bandwidth estimate: a talk station on a telephone-grade line is still flagged."""
    talk = tmp_path / "talk-8k.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(data_dir / "music-speech" / "speech" / "comedy1.flac"),
                    "-ar", "8000", "-ac", "1", "-t", "20", str(talk)], check=True, timeout=60)
    proc = run_cli("classify", "--json", str(talk), timeout=120)
    windows = [row for row in map(json.loads, proc.stdout.splitlines()) if row["type"] == "window"]
    assert windows and all(w["state"] == "not_music" for w in windows)
    assert windows[-1]["band_limited"] is True and windows[-1]["bandwidth_hz"] < 4500
