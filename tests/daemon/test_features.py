"""The shared MFCC extractor: parity with librosa and with the published GTZAN table."""

from __future__ import annotations

import csv
from pathlib import Path

import librosa
import numpy as np
import pytest

from helpers import sample_clips
from genrecast.daemon.audio import load_audio
from genrecast.daemon.features import FeatureConfig, mfcc, window_features


def test_default_config_matches_the_tutorial() -> None:
    cfg = FeatureConfig()
    assert (cfg.sample_rate, cfg.window_seconds, cfg.n_mfcc, cfg.n_fft, cfg.hop_length) == (22050, 3.0, 13, 2048, 512)
    assert cfg.frames_per_window == 130
    assert cfg.input_shape == (130, 13)


def test_config_round_trip_and_validation() -> None:
    cfg = FeatureConfig(window_seconds=2.0, n_mfcc=20)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.cache_key() != FeatureConfig().cache_key()
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureConfig(n_mfcc=0)
    with pytest.raises(ValueError, match="unknown keys"):
        FeatureConfig.from_dict({"n_mfcc": 13, "bogus": 1})


def test_band_stage_is_kept_only_where_set_and_validated() -> None:
    staged = FeatureConfig(band_stage_hz=44100)
    assert FeatureConfig.from_dict(staged.to_dict()) == staged
    assert "band_stage_hz" not in FeatureConfig().to_dict()  # older bundles and feature caches keep their keys
    assert staged.cache_key() != FeatureConfig().cache_key()
    with pytest.raises(ValueError, match="band_stage_hz"):
        FeatureConfig(band_stage_hz=16000)  # not above the model's rate


def test_mfcc_parity_with_librosa_on_real_clips(gtzan_sample: Path) -> None:
    cfg = FeatureConfig()
    for clip in sample_clips(gtzan_sample)[::4]:
        y = load_audio(clip, cfg.sample_rate)
        for start in (0, len(y) // 2):
            w = y[start : start + cfg.window_samples]
            ref = librosa.feature.mfcc(y=w, sr=cfg.sample_rate, n_mfcc=13, n_fft=2048, hop_length=512)
            ours = window_features(w, cfg)
            assert ours.shape == (130, 13)
            assert np.max(np.abs(ours - ref.T)) <= 1e-3, clip


def test_mfcc_statistics_match_published_table(gtzan_sample: Path, data_dir: Path) -> None:
    """20-MFCC means and variances over whole clips against features_30_sec.csv."""
    table = data_dir / "reference" / "features_30_sec.csv"
    rows = {r["filename"]: r for r in csv.DictReader(table.open())}
    cfg = FeatureConfig(n_mfcc=20)
    clips = sample_clips(gtzan_sample)
    assert len(clips) == 19
    errors = []
    for clip in clips:
        row = rows[clip.stem + ".wav"]
        coeffs = mfcc(load_audio(clip, cfg.sample_rate), cfg)
        ours = np.concatenate([coeffs.mean(axis=1), coeffs.var(axis=1)])
        ref = np.array([float(row[f"mfcc{i}_mean"]) for i in range(1, 21)] + [float(row[f"mfcc{i}_var"]) for i in range(1, 21)])
        errors.append(np.abs(ours - ref) / np.maximum(np.abs(ref), 1.0))
    errors = np.array(errors)
    assert np.median(errors) <= 0.005, np.median(errors)
    assert errors.max() <= 0.03, errors.max()


def test_short_window_is_padded_to_model_shape() -> None:
    cfg = FeatureConfig()
    assert window_features(np.zeros(1000, np.float32), cfg).shape == (130, 13)
