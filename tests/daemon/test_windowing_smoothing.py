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
