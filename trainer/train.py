"""``genrecast train DATASET``: extract, split, fit, evaluate and export a bundle."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from genrecast.daemon.bundle import Bundle
from genrecast.daemon.features import FeatureConfig
from genrecast.trainer.archs import DEFAULT_ARCH, build_model
from genrecast.trainer.dataset import Dataset, scan_dataset
from genrecast.trainer.extract import FeatureSet, extract_dataset
from genrecast.trainer.report import write_report
from genrecast.trainer.splits import (
    RESERVED_IDS_FILE, TRAIN_SPLITS, Split, choices, list_split, reserved_ids_near, segment_split, track_split,
)

log = logging.getLogger(__name__)
SPLITS = ("track", "segment")


@dataclass(frozen=True)
class TrainSettings:
    """Everything one training run depends on."""

    arch: str = DEFAULT_ARCH
    """Model architecture (``cnn`` or ``mlp``)."""
    split: str = "track"
    """``track`` or ``segment``; ignored when ``split_lists`` is given."""
    split_lists: Path | None = None
    """Folder with train/valid/test list files."""
    epochs: int = 100
    """Upper bound on epochs; early stopping on validation loss usually ends sooner."""
    patience_epochs: int = 15
    """Epochs without a better validation loss before stopping."""
    batch_size: int = 32
    seed: int = 0
    """Seed of the split, weight initialisation and shuffling."""
    workers: int | None = None
    """Processes for feature extraction (all cores by default)."""
    conditions: str = "quick"
    """Capture conditions of the report's robustness table (names for
    :func:`genrecast.trainer.conditions.named`; ``none`` skips it)."""
    scheduler: str | None = None
    """Extract the features on the Dask cluster at this scheduler address instead."""
    augment: int = 0
    """Augmented copies of every training file, each under a random capture condition
    (:mod:`genrecast.trainer.augment`); validation and test tracks are never augmented."""


def make_split(features: FeatureSet, settings: TrainSettings, labels: Sequence[str] | None = None) -> Split:
    """The split the settings ask for; prints a warning for ``segment``."""
    if settings.split_lists is not None:
        split, missing = list_split(features.y, features.track_ids, settings.split_lists, seed=settings.seed)
        if any(missing.values()):
            log.info("split lists name tracks this dataset lacks: %s", missing)
        unlisted = sorted(set(features.track_ids[~(split.train | split.valid | split.test)].tolist()))
        if unlisted:
            print(f"WARNING: {len(unlisted)} tracks of the dataset are in none of the lists in {settings.split_lists} "
                  f"({', '.join(unlisted[:3])}{', ...' if len(unlisted) > 3 else ''}), so they are left out; add them "
                  "to a list to use them", file=sys.stderr)
        return split
    if settings.split == "segment":
        split = segment_split(len(features.y), seed=settings.seed)
        print(f"WARNING: {split.warning}", file=sys.stderr)
        return split
    if settings.split != "track":
        raise ValueError(f"unknown split {settings.split!r}; choose {choices(TRAIN_SPLITS)}, or --split-lists DIR")
    split = track_split(features.y, features.track_ids, seed=settings.seed, labels=labels)
    if split.warning:
        print(f"WARNING: {split.warning}", file=sys.stderr)
    return split


def normalisation(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over every axis but the last, on the training windows only."""
    axes = tuple(range(x_train.ndim - 1))
    mean = x_train.mean(axis=axes)
    std = x_train.std(axis=axes)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def fit(
    x: np.ndarray, y: np.ndarray, split: Split, n_labels: int, settings: TrainSettings
) -> tuple[Any, np.ndarray, np.ndarray, dict[str, list[float]]]:
    """Train a model on the split's train windows, early-stopped on its validation windows.

    Returns the model, the normalisation mean and std, and the training history.
    """
    from genrecast.trainer.export import quiet_tensorflow

    quiet_tensorflow()
    import keras

    keras.utils.set_random_seed(settings.seed)
    mean, std = normalisation(x[split.train])
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    model = build_model(settings.arch, x.shape[1:], n_labels)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience_epochs, restore_best_weights=True)
    history = model.fit(
        norm(x[split.train]), y[split.train],
        validation_data=(norm(x[split.valid]), y[split.valid]),
        epochs=settings.epochs, batch_size=settings.batch_size, callbacks=[stop],
        verbose=1 if sys.stdout.isatty() else 2, shuffle=True,
    )
    return model, mean, std, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def validation_summary(history: dict[str, list[float]]) -> dict[str, float | int]:
    """The epoch early stopping kept (lowest validation loss, 1-based) with its validation loss
    and per-window accuracy: what settings are chosen by (never the test split)."""
    losses = history.get("val_loss") or []
    if not losses:
        return {}
    best = int(np.argmin(losses))
    out: dict[str, float | int] = {"valid_best_epoch": best + 1, "valid_loss": round(float(losses[best]), 4)}
    if history.get("val_accuracy"):
        out["valid_window_accuracy"] = round(float(history["val_accuracy"][best]), 4)
    return out


def training_dataset(dataset_path: Path) -> Dataset:
    """The dataset at ``dataset_path`` (:func:`scan_dataset`) less the files of the reserved ids
    of its data folder (:func:`reserved_ids_near`): those are kept for evaluation outside the
    project, so they are neither trained on nor in the run's own test split. Raises
    :class:`DatasetError` as :func:`scan_dataset` does."""
    dataset = scan_dataset(dataset_path)
    reserved = {t.track_id for t in dataset.tracks} & reserved_ids_near(dataset_path)
    if reserved:
        log.info("leaving out the %d files of %d reserved ids (%s above %s); genrecast evaluate measures them",
                 sum(t.track_id in reserved for t in dataset.tracks), len(reserved), RESERVED_IDS_FILE, dataset_path)
        dataset = dataset.without(reserved)
    return dataset


def train(dataset_path: Path, out: Path, cfg: FeatureConfig, settings: TrainSettings) -> tuple[Bundle, FeatureSet]:
    """The whole run: returns the saved bundle and the features it was trained on."""
    from genrecast.trainer.export import save_bundle

    dataset = training_dataset(dataset_path)
    features = extract_dataset(dataset, cfg, workers=settings.workers, scheduler=settings.scheduler)
    if empty := [label for k, label in enumerate(dataset.labels) if not (features.y == k).any()]:
        raise ValueError(f"genre folder(s) {', '.join(empty)} kept no usable audio once unreadable or too short files were "
                         f"skipped ({len(features.skipped)} skipped; see the lines above); fix or remove them")
    split = make_split(features, settings, dataset.labels)
    for part in ("train", "valid", "test"):
        if not getattr(split, part).any():
            raise ValueError(f"the {split.name} split has no {part} windows; use a larger dataset or other split lists")
    if settings.split == "segment" and settings.augment and settings.split_lists is None:
        raise ValueError("--augment needs a split by track (--split track or --split-lists): with --split segment "
                         "copies of test windows' tracks would be trained on")
    from genrecast.trainer.augment import augment_training

    augmented = augment_training(dataset, features, split, cfg, settings.augment, seed=settings.seed, workers=settings.workers)
    features, split = augmented.features, augmented.split
    model, mean, std, history = fit(features.x, features.y, split, len(dataset.labels), settings)
    probs = np.asarray(model.predict(((features.x[split.test] - mean) / std).astype(np.float32), verbose=0))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = write_report(
        out, labels=list(dataset.labels), y_true=features.y[split.test], y_prob=probs,
        split_name=split.name, split_sizes=split.sizes(features.track_ids),
        track_ids=features.track_ids[split.test], history=history, warning=split.warning,
        extra={"skipped_files": len(features.skipped), **validation_summary(history)},
        title=f"genrecast evaluation: {settings.arch} on {dataset.root.name}",
    )
    provenance = {
        "kind": "audio",
        "dataset": str(dataset.root),
        "dataset_fingerprint": dataset.fingerprint(),
        "split": split.name,
        "split_sizes": split.sizes(features.track_ids),
        "test_tracks": split.test_tracks(features.track_ids),
        "trained_tracks": split.trained_tracks(features.track_ids),
        "arch": settings.arch,
        "epochs_run": len(history.get("loss", [])),
        "epochs_max": settings.epochs,
        "seed": settings.seed,
        "skipped": [path for path, _ in features.skipped],
        "augment": {
            "copies": settings.augment,
            "windows": int(augmented.augmented.sum()),
            "tracks": sorted({r["track_id"] for r in augmented.conditions}),
            "conditions": augmented.conditions,
            "applied_to": "train",
        },
    }
    summary = {k: metrics[k] for k in ("window_accuracy", "track_accuracy", "windows", "tracks") if k in metrics}
    summary["split"] = split.name
    bundle = save_bundle(model, out, labels=list(dataset.labels), features=cfg, mean=mean, std=std, metrics=summary, provenance=provenance)
    from genrecast.trainer.robustness import attach_test_tracks

    attach_test_tracks(out, dataset, provenance["test_tracks"], settings.conditions, split.name, seed=settings.seed)
    return bundle, features
