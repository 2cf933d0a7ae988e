"""Talk over a music bed (the music detector's speech-over-music copies) on real recordings: the
speech is all there, the bed is a looped stretch of the music at the drawn speech-to-music ratio,
and a bed only ever comes from the speech file's own side of the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve

from genrecast.daemon.audio import load_audio
from genrecast.trainer.detector_data import inventory
from genrecast.trainer.music_bed import BED_SNR_DB, bed_conditions, beds_by_split, over_music_bed

RATE = 22050


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64))))


def test_the_bed_lies_under_the_speech_at_the_drawn_ratio(data_dir: Path) -> None:
    speech_path = data_dir / "music-speech" / "speech" / "acomic2.flac"
    music_path = data_dir / "gtzan-sample" / "jazz" / "jazz.00054.wav"
    speech, music = load_audio(speech_path, RATE), load_audio(music_path, RATE)
    ratios = []
    for seed in range(6):
        out = over_music_bed(speech, RATE, np.random.default_rng(seed), (str(music_path),))
        assert out.dtype == np.float32 and len(out) == len(speech)
        bed = out.astype(np.float64) - speech
        ratios.append(_db(speech) - _db(bed))
        # the bed is the music itself, looped from some start, at one gain
        head = bed[:4096]  # where it starts: the highest normalised cross-correlation with the music
        energy = fftconvolve(np.square(music, dtype=np.float64), np.ones(len(head)), "valid")
        start = int(np.argmax(fftconvolve(music, head[::-1], "valid") / np.sqrt(np.maximum(energy, 1e-12))))
        looped = np.resize(np.roll(music, -start), len(bed)).astype(np.float64)
        gain = float(bed @ looped / (looped @ looped))
        assert np.allclose(bed, gain * looped, atol=1e-5)
    assert all(BED_SNR_DB[0] - 0.01 <= r <= BED_SNR_DB[1] + 0.01 for r in ratios)
    assert max(ratios) - min(ratios) > 3  # drawn, not fixed
    captured = bed_conditions((str(music_path),))[1].apply(speech, RATE, np.random.default_rng(0))
    assert len(captured) == len(speech) and not np.allclose(captured, over_music_bed(speech, RATE, np.random.default_rng(0), (str(music_path),)))


def test_beds_come_from_the_same_split(data_dir: Path) -> None:
    items = inventory(data_dir)
    beds = beds_by_split(items)
    by_path = {str(i.path): i for i in items}
    for split in ("train", "valid"):
        assert beds[split], split
        assert all(by_path[b].split == split and by_path[b].label == "music" for b in beds[split])


def test_no_bed_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="music bed needs at least one music file"):
        over_music_bed(np.zeros(RATE, np.float32), RATE, np.random.default_rng(0), ())
