"""The musicnn genre model: its rebuilt layers, its head, its features and the shipped default bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon.bundle import default_bundle_path, load_bundle

pytestmark = pytest.mark.usefixtures("data_dir")

MSD_LABELS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s', 'alternative rock',
              'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul', 'indie rock', 'Mellow',
              'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies', 'blues', 'hard rock',
              'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop', '70s', 'party', 'country',
              'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal', 'Progressive rock', '60s', 'rnb',
              'indie pop', 'sad', 'House', 'happy']  # musicnn's configuration.MSD_LABELS, the tagger's outputs


@pytest.fixture(scope="module")
def checkpoint():
    from genrecast.daemon.cache import cache_dir
    from genrecast.trainer import musicnn

    try:
        folder = musicnn.fetch_checkpoint(cache_dir() / "musicnn")
    except RuntimeError as exc:  # pip cannot reach PyPI: a failure under CI, which installs from it
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    return musicnn.read_checkpoint(folder)


def _clip_maps(path: Path) -> np.ndarray:
    from genrecast.daemon.audio import load_audio
    from genrecast.trainer.musicnn_train import _windows, feature_config

    cfg = feature_config()
    return _windows(load_audio(path, cfg.sample_rate), cfg)


def test_the_rebuilt_layers_tag_music_as_musicnn_does(checkpoint, data_dir: Path) -> None:
    """Our Keras rebuild of musicnn's layers, with the tagger's own dense layers put back
    (models.py's backend: batch norm, dense 200 + ReLU, batch norm, dense 50 + sigmoid, on the
    max and mean interleaved), tags real GTZAN clips with their genre's Last.fm tag: a layer in
    the wrong order, a wrong padding or pooling would not."""
    from genrecast.trainer.musicnn import BN_EPSILON, build_backbone

    backbone = build_backbone(checkpoint)

    def bn(x, name):
        w = {k: checkpoint[f"{name}/{k}"] for k in ("gamma", "beta", "moving_mean", "moving_variance")}
        return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + BN_EPSILON) * w["gamma"] + w["beta"]

    def tags(path: Path) -> list[str]:
        pooled = backbone.predict(_clip_maps(path), verbose=0)
        flat = np.stack([pooled[:, :753], pooled[:, 753:]], axis=2).reshape(len(pooled), -1)  # tf's flatten of (753, 2)
        dense = bn(np.maximum(bn(flat, "batch_normalization_9") @ checkpoint["dense/kernel"] + checkpoint["dense/bias"], 0),
                   "batch_normalization_10")
        logits = dense @ checkpoint["dense_1/kernel"] + checkpoint["dense_1/bias"]
        mean = (1 / (1 + np.exp(-logits))).mean(axis=0)
        return [MSD_LABELS[i] for i in np.argsort(mean)[::-1][:5]]

    sample = data_dir / "gtzan-sample"
    assert {"metal", "heavy metal"} & set(tags(sample / "metal" / "metal.00000.wav"))
    assert "jazz" in tags(sample / "jazz" / "jazz.00054.wav")
    assert tags(sample / "blues" / "blues.00053.wav")[0] == "blues"
    assert tags(sample / "pop" / "pop.00000.wav")[0] == "pop"


def test_the_folded_head_gives_the_regressions_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    from genrecast.trainer.musicnn import Head

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (300, 12))
    y = (x[:, 0] + x[:, 1] > 6).astype(int) + (x[:, 2] > 3)
    head = Head.fit(x, y, 0.1, 3)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    expected = LogisticRegression(C=0.1, max_iter=5000).fit((x - mean) / std, y).predict_proba((x - mean) / std)
    np.testing.assert_allclose(head.predict(x), expected, atol=1e-5)
    with pytest.raises(ValueError, match="every genre"):
        Head.fit(x, np.minimum(y, 1), 0.1, 3)


def test_logmel_features_do_not_move_with_the_level(data_dir: Path) -> None:
    """The level is taken out before the log-mel map (genrecast.daemon.logmel): a gain from −24 to
    +6 dB leaves a window's features as they were, to float32 rounding."""
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.features import window_features
    from genrecast.trainer.musicnn_train import feature_config

    cfg = feature_config()
    y = load_audio(data_dir / "gtzan-sample" / "jazz" / "jazz.00054.wav", cfg.sample_rate)[: cfg.window_samples]
    reference = window_features(y, cfg)
    assert reference.shape == cfg.input_shape == (187, 96)
    for db in (-24.0, -3.0, 3.0, 6.0):
        np.testing.assert_allclose(window_features(y * np.float32(10 ** (db / 20)), cfg), reference, atol=2e-4)
    assert np.abs(window_features(y * 0.5, cfg) - window_features(y[::-1].copy(), cfg)).max() > 0.5  # not constant


def test_logmel_features_are_musicnns_front_end(data_dir: Path) -> None:
    """The window at 16 kHz and −20 dBFS RMS through librosa.feature.melspectrogram (musicnn's
    extractor.py: n_fft 512, hop 256, 96 mels) and log10(10000·x + 1): our numpy path's values."""
    import librosa
    import soxr

    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.logmel import level_out, logmel_window
    from genrecast.trainer.musicnn_train import feature_config

    cfg = feature_config()
    y = load_audio(data_dir / "gtzan-sample" / "metal" / "metal.00000.wav", cfg.sample_rate)[: cfg.window_samples]
    y16 = level_out(soxr.resample(y, cfg.sample_rate, 16000, quality="HQ").astype(np.float32))
    mel = librosa.feature.melspectrogram(y=y16, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    np.testing.assert_allclose(logmel_window(y, cfg), np.log10(10000 * mel + 1)[:187], atol=2e-4)


def test_training_audio_leaves_out_the_reserved_and_evaluation_ids(data_dir: Path) -> None:
    from genrecast.trainer.musicnn_train import training_audio
    from genrecast.trainer.shifts import EVALUATION_CLIPS
    from genrecast.trainer.splits import reserved_ids_near

    clips = training_audio(data_dir)
    tracks = {c.track for c in clips}
    assert not tracks & set(EVALUATION_CLIPS)
    assert not tracks & reserved_ids_near(data_dir / "reference" / "features_30_sec.csv")
    assert sum(c.full for c in clips) == 56 and len(clips) > 500
    assert {c.genre for c in clips} == {t.split(".")[0] for t in EVALUATION_CLIPS}


def test_the_default_bundle_is_the_musicnn_model_and_says_what_it_trained_on(data_dir: Path) -> None:
    from genrecast.trainer.musicnn import WHEEL_SHA256
    from genrecast.trainer.musicnn_train import training_audio
    from genrecast.trainer.shifts import EVALUATION_CLIPS

    bundle = load_bundle(default_bundle_path())
    assert bundle.features.kind == "logmel" and bundle.features.input_shape == (187, 96)
    assert bundle.detector is not None
    prov = bundle.provenance
    assert prov["backbone"]["wheel_sha256"] == WHEEL_SHA256
    assert prov["test_tracks"] == list(EVALUATION_CLIPS)
    assert prov["trained_tracks"] == sorted({c.track for c in training_audio(data_dir)})
    conditions = json.loads((default_bundle_path() / "metrics.json").read_text())["conditions"]
    assert conditions["clips"] == sorted(EVALUATION_CLIPS)


def test_the_default_model_runs_a_batch_one_window_at_a_time(data_dir: Path) -> None:
    """A batch of windows gives each window's own probabilities, and the interpreter never grows
    past one window (musicnn's XNNPACK working memory is ~90 MB a window, kept once allocated)."""
    from genrecast.daemon.classifier import open_classifier

    classifier = open_classifier(None)
    maps = _clip_maps(data_dir / "gtzan-sample" / "pop" / "pop.00000.wav")[:3]
    batch = classifier.predict(maps)
    assert batch.shape == (3, 10)
    assert classifier._model._batch == 1
    for k in range(3):
        np.testing.assert_allclose(classifier.predict(maps[k:k + 1])[0], batch[k], atol=1e-6)
