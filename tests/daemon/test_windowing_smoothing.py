"""Windowing (bounded buffer, hop, resampling, audio clock) and smoothing (gates, hysteresis)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from genrecast.daemon.smoothing import Smoother, SmoothingSettings, level_dbfs
from genrecast.daemon.windowing import Windower


def test_windows_cover_the_audio_without_overlap() -> None:
    w = Windower("t", 100, window_samples=300, hop_samples=300)
    audio = np.arange(1000, dtype=np.float32)
    windows = []
    for i in range(0, 1000, 7):
        windows += w.push(audio[i : i + 7], 100)
    assert [x.start_seconds for x in windows] == [0.0, 3.0, 6.0]
    assert np.array_equal(np.concatenate([x.samples for x in windows]), audio[:900])
    assert w.buffered_samples == 100
    last = w.flush(min_fraction=0.3)
    assert len(last) == 1 and last[0].start_seconds == 9.0 and last[0].end_seconds == 10.0
    assert np.array_equal(last[0].samples[:100], audio[900:]) and len(last[0].samples) == 300


def test_a_band_stage_gives_every_rate_the_same_band_limit() -> None:
    """With a 44.1-kHz stage, 22.05-kHz audio gets soxr's anti-alias cut as 44.1-kHz audio does:
    a 10.8-kHz tone (in the cut's transition band, below 11.025 kHz) is 30 dB down or more in
    both (the staged path has the up-stage's filter too, so it is lower still); a 1-kHz tone passes."""
    rate = 22050
    t = np.arange(3 * rate) / rate
    low, high = np.sin(2 * np.pi * 1000 * t).astype(np.float32), np.sin(2 * np.pi * 10800 * t).astype(np.float32)
    plain = Windower("plain", rate, window_samples=rate, hop_samples=rate)
    staged = Windower("staged", rate, window_samples=rate, hop_samples=rate, band_stage_hz=44100)
    t44 = np.arange(3 * 44100) / 44100
    from_44k = Windower("44k", rate, window_samples=rate, hop_samples=rate)

    def rms(w: Windower, audio: np.ndarray, at: int) -> float:
        return float(np.sqrt(np.mean(w.push(audio, at)[1].samples ** 2)))  # the middle second, past the filters' start

    assert rms(plain, high, rate) > 0.7  # without the stage the top of the band stays
    assert rms(staged, high, rate) < 0.7 * 10 ** (-30 / 20)
    assert rms(from_44k, np.sin(2 * np.pi * 10800 * t44).astype(np.float32), 44100) < 0.7 * 10 ** (-30 / 20)
    assert rms(Windower("s", rate, rate, rate, band_stage_hz=44100), low, rate) == pytest.approx(np.sqrt(0.5), rel=1e-3)


def test_band_staged_windows_are_the_same_whatever_the_blocks() -> None:
    """Each window is band-limited with the audio around it as context, so windows join without
    a seam: it waits for BAND_LOOKAHEAD samples after it (93 ms at 22.05 kHz), so its samples
    never depend on how the source cut its blocks (a file source's 0.1-s blocks against classify's
    10-s ones moved a metal clip's window by 0.09 when it did not wait); at the end of a finite
    source the last windows leave at flush, their ends mirrored."""
    from genrecast.daemon.audio import band_limit
    from genrecast.daemon.windowing import BAND_LOOKAHEAD

    rate = 22050
    audio = (np.random.default_rng(0).standard_normal(3 * rate) * 0.1).astype(np.float32)
    whole = band_limit(audio, rate, 44100)

    def cut(block: int) -> list:
        w = Windower("staged", rate, window_samples=rate, hop_samples=rate, band_stage_hz=44100)
        out = [x for start in range(0, len(audio), block) for x in w.push(audio[start:start + block], rate)]
        return out + w.flush()

    reference = cut(len(audio))
    assert len(reference) == 3
    for k, w in enumerate(reference):
        np.testing.assert_allclose(w.samples, whole[k * rate:(k + 1) * rate], atol=1e-5)
        assert not np.allclose(w.samples, audio[k * rate:(k + 1) * rate], atol=1e-3)  # the stage did something
    for block in (rate // 10, 4096, rate, rate + 1):
        assert all(np.array_equal(a.samples, b.samples) for a, b in zip(cut(block), reference, strict=True))
    waiting = Windower("waiting", rate, window_samples=rate, hop_samples=rate, band_stage_hz=44100)
    assert waiting.push(audio[:rate], rate) == []  # a full window waits for the audio after it
    assert len(waiting.push(audio[rate:rate + BAND_LOOKAHEAD], rate)) == 1


def test_overlapping_hop_and_bounded_buffer() -> None:
    w = Windower("t", 100, window_samples=300, hop_samples=150)
    windows = w.push(np.zeros(100_000, np.float32), 100)
    assert len(windows) == 1 + (100_000 - 300) // 150
    assert windows[1].start_seconds == 1.5
    assert w.buffered_samples < 300
    for _ in range(50):
        w.push(np.zeros(1234, np.float32), 100)
        assert w.buffered_samples < 300  # never more than a window waits


def test_hop_longer_than_window_skips_the_gap() -> None:
    w = Windower("t", 100, window_samples=100, hop_samples=250)
    audio = np.arange(1000, dtype=np.float32)
    windows = []
    for i in range(0, 1000, 33):
        windows += w.push(audio[i : i + 33], 100)
    assert [x.start_seconds for x in windows] == [0.0, 2.5, 5.0, 7.5]
    assert windows[1].samples[0] == 250


def test_resampling_is_reported_and_keeps_the_clock(caplog) -> None:
    w = Windower("radio", 22050, window_samples=22050, hop_samples=22050)
    with caplog.at_level(logging.INFO):
        windows = w.push(np.random.default_rng(0).standard_normal(44100 * 3).astype(np.float32) * 0.1, 44100)
        windows += w.push(np.zeros(48000, np.float32), 48000)
    assert "delivers 44100 Hz; resampling to 22050 Hz with soxr_hq" in caplog.text
    assert "changed rate from 44100 Hz to 48000 Hz" in caplog.text
    assert abs(w.consumed_seconds - 4.0) < 0.05
    assert len(windows) >= 3 and all(len(x.samples) == 22050 for x in windows)


def test_level_dbfs() -> None:
    assert level_dbfs(np.zeros(100)) == -120.0
    assert level_dbfs(np.ones(100)) == pytest.approx(0.0)
    assert level_dbfs(np.full(100, 0.1)) == pytest.approx(-20.0)
    assert np.isnan(level_dbfs(np.array([0.1, np.nan])))


def _p(i: int, n: int = 3, top: float = 0.8) -> np.ndarray:
    p = np.full(n, (1 - top) / (n - 1))
    p[i] = top
    return p


def test_hysteresis_needs_m_windows_and_one_odd_window_does_not_flap() -> None:
    s = Smoother(3, SmoothingSettings(windows=1, hold_windows=2))
    assert s.update(_p(0)) == (None, 0.0, False)
    genre, _, changed = s.update(_p(0))
    assert (genre, changed) == (0, True)
    assert s.update(_p(1))[0:3:2] == (0, False)  # one odd window: no change
    assert s.update(_p(0))[0:3:2] == (0, False)
    s.update(_p(2))
    genre, _, changed = s.update(_p(2))
    assert (genre, changed) == (2, True)


def test_mean_over_k_windows() -> None:
    s = Smoother(3, SmoothingSettings(windows=3, hold_windows=1))
    s.update(_p(0, top=0.9))
    s.update(_p(1, top=0.9))
    genre, prob, _ = s.update(_p(1, top=0.9))
    assert genre == 1 and prob == pytest.approx((0.05 + 0.9 + 0.9) / 3)
    assert s.update(None)[0] == 1  # a silent window keeps the state


def test_windows_too_unsure_to_name_a_genre_do_not_change_the_smoothed_one() -> None:
    """Every window under --min-confidence (uncertain): the smoothed genre neither appears nor
    changes, however long a genre leads; a confident lead then takes over after M windows."""
    s = Smoother(3, SmoothingSettings(windows=1, hold_windows=2, min_confidence=0.5))
    for _ in range(4):
        assert s.update(_p(0, top=0.45)) == (None, 0.0, False)
    s.update(_p(0, top=0.8))
    genre, _, changed = s.update(_p(0, top=0.8))
    assert (genre, changed) == (0, True)
    for _ in range(4):  # another genre leads, unsure: the confident one stays
        assert s.update(_p(1, top=0.45))[0:3:2] == (0, False)
    assert s.update(_p(1, top=0.45))[1] == pytest.approx(0.275)  # its own mean probability now
    s.update(_p(1, top=0.6))
    assert s.update(_p(1, top=0.6))[0:3:2] == (1, True)
