"""``genrecast evaluate BUNDLE DATASET``: re-evaluate a saved bundle with the daemon's own classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genrecast.daemon.classifier import open_classifier
from genrecast.trainer.dataset import scan_dataset
from genrecast.trainer.extract import extract_dataset
from genrecast.trainer.report import compute_metrics, write_report
from genrecast.trainer.splits import Split, list_split, segment_split, track_split, tracks_split


def predict_batched(classifier, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities for every row of ``x``, in batches."""
    return np.concatenate([classifier.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def recorded_sizes(here: dict[str, int], recorded: dict[str, int]) -> dict[str, int]:
    """Split sizes for the ``recorded`` split: the train and validation sizes the bundle
    recorded when it was trained (the dataset's other tracks are not its training set;
    they may include its validation tracks or tracks it never saw), the test sizes found here."""
    sizes = {k: v for k, v in here.items() if k.startswith("test_")}
    sizes.update({k: v for k, v in recorded.items() if k.startswith(("train_", "valid_"))})
    return sizes


def evaluate(
    bundle_path: Path,
    dataset_path: Path,
    *,
    split: str = "recorded",
    split_lists: Path | None = None,
    seed: int = 0,
    out: Path | None = None,
    backend: str = "litert",
) -> dict[str, Any]:
    """Metrics of the bundle on a dataset's test tracks.

    ``split``: ``recorded`` (the test tracks stored in the bundle), ``track``,
    ``segment`` or ``all`` (every track); ``split_lists`` overrides it.
    """
    classifier = open_classifier(bundle_path, backend)
    bundle = classifier.bundle
    if bundle.features.kind != "mfcc":
        raise ValueError(f"bundle {bundle_path} was trained on a feature table; evaluate it on audio with `genrecast classify`")
    dataset = scan_dataset(dataset_path)
    if tuple(dataset.labels) != bundle.labels:
        raise ValueError(
            f"dataset genres {list(dataset.labels)} differ from the bundle's labels {list(bundle.labels)}; "
            "evaluate on a dataset with the same genre folders"
        )
    features = extract_dataset(dataset, bundle.features)
    if split_lists is not None:
        chosen, _ = list_split(features.y, features.track_ids, split_lists, seed=seed)
    elif split == "recorded":
        tests = bundle.provenance.get("test_tracks")
        if not tests:
            raise ValueError(f"bundle {bundle_path} records no test tracks; pass --split track|segment|all")
        chosen = tracks_split(features.track_ids, tests, bundle.provenance.get("split", "recorded"))
    elif split == "track":
        chosen = track_split(features.y, features.track_ids, seed=seed)
    elif split == "segment":
        chosen = segment_split(len(features.y), seed=seed)
    elif split == "all":
        everything = np.ones(len(features.y), dtype=bool)
        chosen = Split("all", ~everything, ~everything, everything)
    else:
        raise ValueError(f"unknown split {split!r}; choose recorded, track, segment or all, or --split-lists DIR")
    if not chosen.test.any():
        raise ValueError("the chosen split has no test windows in this dataset")
    probs = predict_batched(classifier, features.x[chosen.test])
    kwargs = dict(
        labels=list(bundle.labels), y_true=features.y[chosen.test], y_prob=probs,
        track_ids=features.track_ids[chosen.test],
    )
    sizes = chosen.sizes(features.track_ids)
    if split_lists is None and split == "recorded":
        sizes = recorded_sizes(sizes, bundle.provenance.get("split_sizes", {}))
    if out is None:
        metrics = compute_metrics(**kwargs)
        metrics["split"] = {"name": chosen.name, "sizes": sizes}
        return metrics
    return write_report(
        out, split_name=chosen.name, split_sizes=sizes, warning=chosen.warning,
        title=f"genrecast evaluation of {bundle.model_id}", **kwargs,
    )
