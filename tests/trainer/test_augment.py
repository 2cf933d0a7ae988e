"""`genrecast train --augment N`: copies of the training files under random capture
conditions, in the training windows only, with features unlike the clean ones."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli, sample_clips
from genrecast.daemon.features import FeatureConfig
from genrecast.trainer.augment import augment_training
from genrecast.trainer.dataset import scan_dataset
from genrecast.trainer.extract import extract_dataset
from genrecast.trainer.splits import track_split

pytestmark = pytest.mark.slow

GENRES = ("blues", "classical", "jazz")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, gtzan_sample: Path) -> Path:
    """Three genres of three real GTZAN clips, cut to their first 6.5 s (two 3-s windows)."""
    root = tmp_path_factory.mktemp("tiny")
    for genre in GENRES:
        clips = [c for c in sample_clips(gtzan_sample) if c.parent.name == genre][:3]
        assert len(clips) == 3, genre
        (root / genre).mkdir()
        for clip in clips:
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(clip), "-t", "6.5", "-ac", "1",
                            str(root / genre / f"{clip.stem}.wav")], check=True)
    return root


def test_copies_are_training_windows_with_other_features(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))
    cfg = FeatureConfig(window_seconds=3.0)
    dataset = scan_dataset(tiny_dataset)
    clean = extract_dataset(dataset, cfg, workers=1, use_cache=False, progress=False)
    split = track_split(clean.y, clean.track_ids, seed=0)
    out = augment_training(dataset, clean, split, cfg, 2, seed=0, workers=1, progress=False)

    n = len(clean.y)
    train_ids = set(clean.track_ids[split.train].tolist())
    assert out.augmented[:n].sum() == 0 and out.augmented[n:].all()
    assert out.split.train[out.augmented].all()
    assert not out.split.valid[out.augmented].any() and not out.split.test[out.augmented].any()
    assert set(out.features.track_ids[out.augmented].tolist()) == train_ids  # only training tracks, every one
    assert out.augmented.sum() == 2 * split.train.sum()  # two copies, as many windows as the clean file
    assert np.array_equal(out.split.valid[:n], split.valid) and np.array_equal(out.split.test[:n], split.test)
    assert len({(r["track_id"], r["copy"]) for r in out.conditions}) == 2 * len(train_ids)
    for track in train_ids:
        x_clean = clean.x[clean.track_ids == track]
        copies = out.features.x[out.augmented & (out.features.track_ids == track)].reshape(2, *x_clean.shape)
        for copy in copies:  # another capture: features move by more than rounding
            assert np.max(np.abs(copy - x_clean)) > 0.5
        assert np.max(np.abs(copies[0] - copies[1])) > 0.5  # each copy its own condition
        labels = out.features.y[out.augmented & (out.features.track_ids == track)]
        assert (labels == clean.y[clean.track_ids == track][0]).all()

    again = augment_training(dataset, clean, split, cfg, 2, seed=0, workers=1, progress=False)  # from the cache
    assert np.array_equal(again.features.x, out.features.x) and again.conditions == out.conditions
    other = augment_training(dataset, clean, split, cfg, 2, seed=1, workers=1, progress=False)
    assert not np.array_equal(other.features.x[n:], out.features.x[n:])  # the seed chooses the conditions


def test_train_with_augment_records_the_copies(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    proc = run_cli("train", str(tiny_dataset), "--out", str(out), "--arch", "mlp", "--epochs", "1", "--augment", "1",
                   "--workers", "1", "--conditions", "none")
    assert proc.returncode == 0, proc.stderr[-2000:]
    prov = json.loads((out / "bundle.json").read_text())["provenance"]
    sizes, augment = prov["split_sizes"], prov["augment"]
    assert augment["copies"] == 1 and augment["applied_to"] == "train"
    assert augment["tracks"] and not set(augment["tracks"]) & set(prov["test_tracks"])
    assert len(augment["tracks"]) == sizes["train_tracks"]
    assert sizes["train_windows"] == 2 * augment["windows"]  # the clean windows and one copy of each
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["windows"] == sizes["test_windows"]  # the test figure is on clean windows only
    assert metrics["extra"]["valid_best_epoch"] == 1


def test_augment_refuses_a_negative_count(tiny_dataset: Path, tmp_path: Path) -> None:
    proc = run_cli("train", str(tiny_dataset), "--out", str(tmp_path / "b"), "--augment", "-1")
    assert proc.returncode != 0
    assert "--augment must be 0 or more" in proc.stderr and "Traceback" not in proc.stderr
