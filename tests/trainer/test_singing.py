"""Sung speech (the music detector's stand-in for a cappella) on a real recording: the voice's
pitch is held on notes where the speech glides, vowels are longer, the level is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon.audio import load_audio
from genrecast.trainer.singing import MIN_SECONDS, SUNG, sing

RATE = 22050


def _held_share(y: np.ndarray) -> float:
    """Share of consecutive voiced 5-ms frames whose F0 moves less than 0.1 semitone (WORLD DIO)."""
    import pyworld

    x = y.astype(np.float64)
    f0, t = pyworld.dio(x, RATE, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, RATE)
    both = (f0[1:] > 0) & (f0[:-1] > 0)
    steps = np.abs(np.diff(12 * np.log2(np.where(f0 > 0, f0, 1.0))))[both]
    return float(np.mean(steps < 0.1))


@pytest.fixture(scope="module")
def speech(data_dir: Path) -> np.ndarray:
    return load_audio(data_dir / "music-speech" / "speech" / "acomic2.flac", RATE)


def test_sung_speech_holds_notes_keeps_the_level_and_lasts_longer(speech: np.ndarray) -> None:
    sung = sing(speech, RATE, np.random.default_rng(3))
    assert sung.dtype == np.float32 and len(sung) > 1.3 * len(speech)
    assert np.sqrt(np.mean(sung**2)) == pytest.approx(np.sqrt(np.mean(speech**2)), rel=1e-3)
    assert _held_share(speech) < 0.45 < 0.6 < _held_share(sung)


def test_the_condition_is_seeded_and_skips_what_cannot_be_sung(speech: np.ndarray) -> None:
    a = SUNG.apply(speech[: 5 * RATE], RATE, np.random.default_rng(7))
    b = SUNG.apply(speech[: 5 * RATE], RATE, np.random.default_rng(7))
    c = SUNG.apply(speech[: 5 * RATE], RATE, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a[: len(c)], c[: len(a)])
    assert len(sing(speech[: int(MIN_SECONDS * RATE) - 1], RATE, np.random.default_rng(0))) == 0
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * RATE).astype(np.float32)
    assert len(sing(noise, RATE, np.random.default_rng(0))) == 0


def _grid_concentration(f0_hz: np.ndarray, tonic_semitones: float) -> float:
    """How closely the voiced frames' pitch sits on the tonic's semitone grid (1: exactly)."""
    semis = 12 * np.log2(f0_hz[f0_hz > 0] / 440.0) - tonic_semitones
    return float(np.abs(np.mean(np.exp(2j * np.pi * semis))))


def test_the_melody_is_sung_out_of_tune_as_people_sing(monkeypatch) -> None:
    """Each note misses its scale degree and the tonic drifts: the sung copies must not sit on an
    exact grid, or the detector learns that a voice off the grid (real a cappella) is talk."""
    from genrecast.trainer import singing

    voiced = np.ones(2000, bool)  # 10 s of voice at 5-ms frames
    sung = [_grid_concentration(singing._melody(voiced, 0.0, np.random.default_rng(s)), 0.0) for s in range(5)]
    monkeypatch.setattr(singing, "NOTE_ERROR_SEMITONES", (0.0, 0.0))
    monkeypatch.setattr(singing, "DRIFT_SEMITONES", 0.0)
    exact = [_grid_concentration(singing._melody(voiced, 0.0, np.random.default_rng(s)), 0.0) for s in range(5)]
    assert min(exact) > 0.35  # vibrato alone spreads the pitch but keeps it centred on the grid
    assert max(sung) < min(exact) - 0.15
