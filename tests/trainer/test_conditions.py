"""Capture conditions do what their names say, on real audio: the gain in dB, the pan law's
levels, a sample rate's round trip, a codec's lost bandwidth, the SNR of added noise, and
the same audio for the same seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from genrecast.trainer import conditions as cond

RATE = 22050


@pytest.fixture(scope="module")
def jazz(data_dir: Path) -> np.ndarray:
    from genrecast.daemon.audio import load_audio

    return load_audio(data_dir / "gtzan-sample" / "jazz" / "jazz.00000.wav", RATE)[5 * RATE : 8 * RATE]


def db(x: np.ndarray) -> float:
    """RMS level in dBFS."""
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def band_share(x: np.ndarray, low_hz: float, high_hz: float = RATE / 2) -> float:
    """Share of the power between ``low_hz`` and ``high_hz`` (Welch)."""
    f, p = scipy.signal.welch(x, fs=RATE, nperseg=2048)
    return float(p[(f >= low_hz) & (f <= high_hz)].sum() / p.sum())


def apply(name: str, y: np.ndarray, seed: int = 0) -> np.ndarray:
    return cond.BY_NAME[name].apply(y, RATE, np.random.default_rng(seed))


def test_every_condition_is_named_seeded_and_keeps_length(jazz: np.ndarray) -> None:
    names = [c.name for c in cond.SUITE]
    assert len(set(names)) == len(names) and set(cond.TARGETS) <= set(names) and set(cond.QUICK) <= set(names)
    assert cond.SUITE[: len(cond.EVALUATION)] == cond.EVALUATION  # the detector's nine come first, unchanged
    for c in cond.SUITE[len(cond.EVALUATION):]:
        a = c.apply(jazz, RATE, cond.condition_rng(3, c.name, "jazz.00000"))
        b = c.apply(jazz, RATE, cond.condition_rng(3, c.name, "jazz.00000"))
        assert a.shape == jazz.shape and a.dtype == np.float32 and np.array_equal(a, b), c.name
        if c.name != "rate-22.05k":  # a 16-bit 22.05-kHz clip is its own 16-bit 22.05-kHz file
            assert not np.array_equal(a, jazz), c.name
    for name in ("babble-10dB", "environment-10dB", "pink-noise-15dB"):  # seeded noise differs by seed
        assert not np.array_equal(apply(name, jazz, 1), apply(name, jazz, 2)), name


def test_gain_is_exact_in_db_and_clips_at_full_scale(jazz: np.ndarray) -> None:
    for name, change in (("gain-24dB", -24), ("gain-3dB", -3), ("gain+3dB", 3)):
        assert db(apply(name, jazz)) - db(jazz) == pytest.approx(change, abs=0.01), name
    loud = apply("gain+6dB", jazz / np.abs(jazz).max())  # peaks at full scale: +6 dB clips them
    assert np.abs(loud).max() == 1.0 and db(loud) - db(jazz / np.abs(jazz).max()) < 6


def test_constant_power_pan_law() -> None:
    left, right = cond.pan_gains(0.0)
    assert 20 * np.log10(left) == pytest.approx(-3.0103, abs=1e-3) and left == pytest.approx(right)
    for pan in (-1.0, -0.4, 0.3, 1.0):
        assert sum(g**2 for g in cond.pan_gains(pan)) == pytest.approx(1.0)
    assert cond.pan_gains(-1.0) == pytest.approx((1.0, 0.0), abs=1e-12)
    with pytest.raises(ValueError, match="pan"):
        cond.pan_gains(1.5)


def test_stereo_comes_back_as_the_daemon_downmixes_it(jazz: np.ndarray) -> None:
    back = apply("stereo", jazz)
    # both channels at -3.01 dB, averaged: the mono audio at -3.01 dB, to 16-bit precision
    assert np.max(np.abs(back - jazz * cond.pan_gains(0.0)[0])) < 2 / 32768
    assert db(back) - db(jazz) == pytest.approx(-3.01, abs=0.01)


def test_sample_rate_round_trips_keep_the_band_they_can(jazz: np.ndarray) -> None:
    assert np.array_equal(apply("rate-22.05k", jazz), jazz)  # 16-bit 22.05 kHz already: nothing changes
    for name in ("rate-44.1k", "rate-48k"):
        back = apply(name, jazz)
        assert np.corrcoef(back, jazz)[0, 1] > 0.999 and abs(db(back) - db(jazz)) < 0.05, name
    assert band_share(jazz, 8500) > 1e-4  # the clip has content above 8 kHz ...
    assert band_share(apply("wideband-16k", jazz), 8500) < band_share(jazz, 8500) / 100  # ... that 16 kHz loses
    assert band_share(apply("rate-8k", jazz), 4200) < band_share(jazz, 4200) / 100
    phone = apply("telephone-8k", jazz)
    assert band_share(phone, 4200) < 1e-4 and band_share(phone, 0, 250) < band_share(jazz, 0, 250) / 10


def test_lossy_codecs_cut_the_top_band(jazz: np.ndarray) -> None:
    top = band_share(jazz, 10000)
    assert top > 1e-4
    for name in ("mp3-48k", "opus-32k"):
        coded = apply(name, jazz)
        assert band_share(coded, 10000) < top / 3, name
        assert abs(db(coded) - db(jazz)) < 1, name  # the level stays
    for name in ("mp3-128k-stereo-44.1k", "aac-96k-stereo-44.1k"):  # stereo: -3 dB, the band kept
        coded = apply(name, jazz)
        assert db(coded) - db(jazz) == pytest.approx(-3.0, abs=0.6) and np.corrcoef(coded, jazz)[0, 1] > 0.98, name


def test_small_speaker_band(jazz: np.ndarray) -> None:
    out = apply("speaker", jazz)
    assert band_share(out, 0, 100) < band_share(jazz, 0, 100) / 10


@pytest.mark.parametrize("name, snr_db", [("pink-noise-15dB", 15), ("babble-10dB", 10), ("environment-10dB", 10)])
def test_added_noise_is_at_the_stated_snr(jazz: np.ndarray, name: str, snr_db: float) -> None:
    noisy = apply(name, jazz)
    assert db(jazz) - db(noisy - jazz) == pytest.approx(snr_db, abs=0.01)


def test_babble_is_speech_from_the_data(jazz: np.ndarray, data_dir: Path) -> None:
    voices = cond.recordings(("speech", "music-speech/speech"), RATE, str(cond.noise_data_root()))
    assert len(voices) >= 100  # 77 + 32 recordings (some too short are still kept, looped)
    sounds = cond.recordings(("environment",), RATE, str(cond.noise_data_root()))
    assert len(sounds) == len([p for p in (data_dir / "environment").iterdir() if p.suffix != ".csv"]) - 4  # no tones


def test_noise_never_comes_from_excluded_recordings(jazz: np.ndarray, data_dir: Path) -> None:
    """The music detector passes its held-out speech and environment files as ``exclude``."""
    root = str(cond.noise_data_root())
    files = sorted(str(p.resolve()) for p in (data_dir / "environment").iterdir()
                   if p.suffix in cond.AUDIO_SUFFIXES and not any(t in p.stem.lower() for t in cond.SYNTHETIC_SOUNDS))
    assert len(cond.recordings(("environment",), RATE, root, tuple(files[:3]))) == len(files) - 3
    kept = files[-1]  # everything else excluded: the pool is that one recording
    assert len(cond.recordings(("environment",), RATE, root, tuple(files[:-1]))) == 1
    noisy = cond.environment(jazz, RATE, np.random.default_rng(0), 10.0, exclude=tuple(files[:-1]))
    assert db(jazz) - db(noisy - jazz) == pytest.approx(10.0, abs=0.01)
    with pytest.raises(ValueError, match="no recordings"):
        cond.recordings(("environment",), RATE, root, tuple(files))
    voices = sorted(str(p.resolve()) for p in (data_dir / "music-speech" / "speech").iterdir() if p.suffix == ".flac")
    assert len(cond.recordings(("music-speech/speech",), RATE, root, tuple(voices[:5]))) == len(voices) - 5
    babble = cond.babble(jazz, RATE, np.random.default_rng(0), 10.0, folders=("music-speech/speech",), exclude=tuple(voices[1:]))
    assert db(jazz) - db(babble - jazz) == pytest.approx(10.0, abs=0.01)  # one voice left: still babble at the SNR
    drawn = [cond.random_capture(np.random.default_rng(seed), exclude=(kept,)) for seed in range(60)]
    noise = [s for c in drawn for s in c.kwargs["steps"] if s.name in ("babble", "environment")]
    assert noise and all(s.kwargs["exclude"] == (kept,) for s in noise)


def test_named_lists() -> None:
    assert [c.name for c in cond.named("all")] == [c.name for c in cond.SUITE]
    assert [c.name for c in cond.named("mp3-48k,gain-3dB")] == ["clean", "mp3-48k", "gain-3dB"]
    assert [c.name for c in cond.named("targets")] == list(cond.TARGETS)
    with pytest.raises(ValueError, match="unknown condition.*nope"):
        cond.named("clean,nope")


def test_random_capture_draws_every_kind() -> None:
    drawn = [cond.random_capture(np.random.default_rng(seed)).name for seed in range(60)]
    text = " ".join(drawn)
    for kind in ("capture", "room", "babble", "environment", "gain"):
        assert kind in text, kind
    assert cond.random_capture(np.random.default_rng(5)).name == cond.random_capture(np.random.default_rng(5)).name


def test_random_draws_apply(jazz: np.ndarray) -> None:
    second = jazz[:RATE]
    for c in cond.random_draws(12):  # each draws its own chain from the clip's generator
        out = c.apply(second, RATE, cond.condition_rng(0, c.name, "jazz.00000"))
        assert out.shape == second.shape and np.isfinite(out).all(), c.name
    for rate in (22050, 44100):  # Opus codes other rates at 48 kHz
        out = cond.capture(second, RATE, np.random.default_rng(0), rate=rate, codec="opus", kbps=64)
        assert out.shape == second.shape and abs(db(out) - db(second)) < 1


def test_evaluate_help_names_every_condition() -> None:
    import re

    from genrecast.trainer.cli import EVALUATE_HELP

    listed = [n.strip() for n in re.search(r"Names: (.*?); or all", EVALUATE_HELP, re.S).group(1).split(",")]
    assert len(listed) == len(set(listed)) and set(listed) == set(cond.BY_NAME)
