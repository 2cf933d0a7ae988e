"""What the genre model sees, through the real `classify` and `run` and the table bundle (whose
30-s context these tests are about; the default bundle judges each window alone):
silence does not enter its 30-s context (genrecast.daemon.context), so a clip after silence is
classified as the clip alone; and `run` and `classify` see the same samples, window for window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import TABLE_BUNDLE, run_cli

from genrecast.daemon.context import GenreContext
from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig
from genrecast.daemon.windowing import Window

RATE = 22050


def _windows(path: Path, bundle: Path | None = TABLE_BUNDLE) -> list[dict]:
    proc = run_cli("classify", *(["--bundle", str(bundle)] if bundle else []), "--json", str(path), timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [row for row in map(json.loads, proc.stdout.splitlines()) if row.get("type") == "window"]


@pytest.fixture(scope="module")
def jazz(gtzan_sample: Path) -> np.ndarray:
    samples, rate = sf.read(gtzan_sample / "jazz" / "jazz.00016.wav", dtype="float32")
    assert rate == RATE and samples.ndim == 1
    return samples


@pytest.mark.parametrize("lead", ["digital silence", "hiss under the gate"])
def test_a_clip_after_silence_is_classified_as_the_clip_alone(jazz, tmp_path, lead):
    """9 s of silence (or of hiss at -75 dBFS, under the -65 dBFS gate) before a jazz clip: the
    windows after it get the clip's own probabilities (10 s of digital silence made them
    'classical 0.89' for 20 s when silence was part of the context); within 0.002, as the band
    stage's resampling of each window sees the audio around it."""
    rng = np.random.default_rng(0)
    quiet = np.zeros(9 * RATE, np.float32) if lead == "digital silence" else \
        (rng.standard_normal(9 * RATE) * 10 ** (-75 / 20)).astype(np.float32)
    alone, after = tmp_path / "alone.wav", tmp_path / "after.wav"
    sf.write(alone, jazz, RATE, subtype="FLOAT")
    sf.write(after, np.concatenate([quiet, jazz]), RATE, subtype="FLOAT")
    own, shifted = _windows(alone), _windows(after)
    assert [w["state"] for w in shifted[:3]] == ["silence"] * 3
    for a, b in zip(own, shifted[3:], strict=True):
        assert a["genre"] == b["genre"] == "jazz" and a["probability"] == pytest.approx(b["probability"], abs=2e-3)


def test_the_context_starts_where_the_sound_does_and_afresh_after_a_gap():
    cfg = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, context_seconds=30.0, window_seconds=3.0)
    rng = np.random.default_rng(1)
    sound = (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32)
    window = lambda samples, start: Window(samples=samples, start_seconds=start, end_seconds=start + 3.0)  # noqa: E731

    context = GenreContext(cfg, silence_dbfs=-65.0)
    half = np.concatenate([np.zeros(RATE + RATE // 2, np.float32), sound[: RATE + RATE // 2]])
    context.take(window(half, 0.0))
    # 1.5 s of silence left out, to the hop (512 samples): the context holds 1.5 s and a few samples
    assert 1.5 <= context.covered_seconds < 1.5 + cfg.hop_length / RATE
    context.take(window(sound, 3.0))
    assert context.covered_seconds == pytest.approx(4.5, abs=0.03)
    context.take(window(np.zeros(3 * RATE, np.float32), 6.0), gap=True)  # silence: a gap
    assert context.features() is None
    context.take(window(sound, 9.0))
    assert context.covered_seconds == pytest.approx(3.0)


@pytest.mark.parametrize("clip", ["metal/metal.00006.flac", "country/country.00004.flac"])
def test_run_and_classify_give_the_same_windows(data_dir, clip):
    """`run --source file:` (0.1-s blocks) and `classify` (10-s blocks) on a 22.05-kHz file: the
    same probabilities, window for window (they differed by up to 0.09 before band-staged
    windows waited for the audio after them), with the default bundle."""
    path = data_dir / "gtzan-more" / clip
    proc = run_cli("run", "--json", "--source", f"file:{path}", timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = [json.loads(line) for line in proc.stdout.splitlines()]
    offline = _windows(path, bundle=None)
    assert len(live) == len(offline) == 10
    for a, b in zip(live, offline):
        assert a["probabilities"] == b["probabilities"] and a["audio_start_seconds"] == b["audio_start_seconds"]


def test_a_final_window_is_not_made_quieter_by_its_padding(tmp_path):
    """A 4.6-s file at -63.5 dBFS: its last window (3.0-4.6 s) is heard at its own level, not
    with the zero padding counted (which put it at -66.7 dBFS, under the -65 dBFS gate: silence)."""
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(int(4.6 * RATE))
    noise *= 10 ** (-63.5 / 20) / np.sqrt(np.mean(noise ** 2))
    path = tmp_path / "quiet.wav"
    sf.write(path, noise.astype(np.float32), RATE, subtype="FLOAT")
    last = _windows(path)[-1]
    assert last["audio_start_seconds"] == 3.0 and last["state"] != "silence"
    assert last["level_dbfs"] == pytest.approx(-63.5, abs=0.3)


def test_talk_before_music_stays_out_of_the_music_context(data_dir, jazz, tmp_path):
    """9 s of talk (well above the silence gate) and then the jazz clip: the gate keeps the talk
    `not_music`, and the music's windows are those of the clip heard from where the gate let it in,
    not statistics of talk and jazz together (the talk used to sway the song's first 30 s)."""
    import librosa

    talk, _ = librosa.load(data_dir / "music-speech" / "speech" / "comedy1.flac", sr=RATE, mono=True)
    talk = talk[: 9 * RATE].astype(np.float32)
    mix, alone = tmp_path / "talk-then-jazz.wav", tmp_path / "jazz-from-3s.wav"
    sf.write(mix, np.concatenate([talk, jazz]), RATE, subtype="FLOAT")
    windows = _windows(mix)
    assert [w["state"] for w in windows[:3]] == ["not_music"] * 3
    first = next(k for k, w in enumerate(windows) if w["state"] == "music")
    assert windows[first]["context_seconds"] == 3.0, "the context starts with the music the gate let in"
    sf.write(alone, jazz[(first - 3) * 3 * RATE:], RATE, subtype="FLOAT")
    for a, b in zip(windows[first:], _windows(alone)):
        assert a["genre"] == b["genre"] and a["probability"] == pytest.approx(b["probability"], abs=2e-3)
