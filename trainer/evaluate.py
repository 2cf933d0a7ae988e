"""``genrecast evaluate BUNDLE DATASET``: re-evaluate a saved bundle with the daemon's own classifier."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from genrecast.daemon.classifier import open_classifier
from genrecast.trainer.dataset import scan_dataset
from genrecast.trainer.extract import extract_dataset
from genrecast.trainer.report import compute_metrics, write_report
from genrecast.trainer.splits import EVALUATE_SPLITS, Split, choices, list_split, segment_split, track_split, tracks_split


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


def trained_on(bundle, dataset, track_ids: np.ndarray) -> set[str] | None:
    """The tracks of ``track_ids`` the bundle had in training or validation: its recorded
    ``trained_tracks``, else (older bundles), on the very dataset it was trained on (same
    fingerprint), every track but its recorded test tracks; None when it cannot be known."""
    prov = bundle.provenance
    if prov.get("split") == "segment":  # windows of every track went to training
        return set(track_ids.tolist())
    if "trained_tracks" in prov:
        return set(prov["trained_tracks"]) & set(track_ids.tolist())
    if prov.get("dataset_fingerprint") and prov.get("dataset_fingerprint") == dataset.fingerprint() and "test_tracks" in prov:
        return set(track_ids.tolist()) - set(prov["test_tracks"])
    return None


def overlap_warning(tested: set[str], trained: set[str] | None) -> str | None:
    """A warning when some tested tracks were trained on (their figures flatter the model)."""
    seen = sorted(tested & (trained or set()))
    if not seen:
        return None
    examples = ", ".join(seen[:3]) + (", ..." if len(seen) > 3 else "")
    return (f"{len(seen)} of the {len(tested)} test tracks ({examples}) were in the bundle's training or validation set, "
            "so these figures are inflated; evaluate on tracks it never saw (the default --split recorded of a "
            "track split, or another dataset)")


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

    The dataset's genre folders are the bundle's genres or some of them (a genre the bundle does
    not know raises ``ValueError``); metrics are over the bundle's labels in its order.

    ``split``: ``recorded`` (the test tracks stored in the bundle), ``track``,
    ``segment`` or ``all`` (every track); ``split_lists`` overrides it. Where test tracks were
    in the bundle's training or validation set (:func:`trained_on`), or the split mixes one
    track's windows, ``metrics["split"]["warning"]`` says so (and report.md, with ``out``).
    """
    classifier = open_classifier(bundle_path, backend)
    bundle = classifier.bundle
    if bundle.features.kind == "summary":
        raise ValueError(f"bundle {bundle_path} was trained on a feature table, not on windows of this audio: measure it on "
                         "audio with --conditions (e.g. --conditions clean), or classify files with `genrecast classify`")
    dataset = scan_dataset(dataset_path, min_genres=1)  # any of the bundle's genres, one or all
    if unknown := [g for g in dataset.labels if g not in bundle.labels]:
        raise ValueError(f"dataset {dataset_path} has genre folders the bundle does not know ({', '.join(unknown)}); "
                         f"its genres are {', '.join(bundle.labels)}: evaluate on folders named after them")
    features = extract_dataset(dataset, bundle.features)
    to_bundle = np.array([bundle.labels.index(g) for g in dataset.labels], dtype=int)
    features = dataclasses.replace(features, y=to_bundle[np.asarray(features.y, dtype=int)])  # the bundle's label order
    if split_lists is not None:
        chosen, _ = list_split(features.y, features.track_ids, split_lists, seed=seed)
    elif split == "recorded":
        tests = bundle.provenance.get("test_tracks")
        if not tests:
            raise ValueError(f"bundle {bundle_path} records no test tracks; pass --split track|segment|all")
        chosen = tracks_split(features.track_ids, tests, bundle.provenance.get("split", "recorded"))
    elif split == "track":
        chosen = track_split(features.y, features.track_ids, seed=seed, labels=list(bundle.labels))
    elif split == "segment":
        chosen = segment_split(len(features.y), seed=seed)
    elif split == "all":
        everything = np.ones(len(features.y), dtype=bool)
        chosen = Split("all", ~everything, ~everything, everything)
    else:
        raise ValueError(f"unknown split {split!r}; choose {choices(EVALUATE_SPLITS)}, or --split-lists DIR")
    if not chosen.test.any():
        if split == "recorded" and split_lists is None:
            raise ValueError(f"none of the bundle's {len(bundle.provenance.get('test_tracks') or [])} recorded test tracks "
                             f"is in {dataset_path}; give the dataset it was trained on, or --split all to measure "
                             "every track here (the output says if it trained on any)")
        raise ValueError(f"the chosen split has no test windows in {dataset_path}; try another --split or more tracks")
    tested = set(features.track_ids[chosen.test].tolist())
    missing = None
    if split == "recorded" and split_lists is None:
        absent = sorted(set(bundle.provenance.get("test_tracks") or []) - tested)
        if absent:
            missing = (f"{len(absent)} of the bundle's {len(absent) + len(tested)} recorded test tracks "
                       f"({', '.join(absent[:3])}{', ...' if len(absent) > 3 else ''}) are not in {dataset_path} (or "
                       "could not be read), so these figures cover only the other tracks")
    trained = trained_on(bundle, dataset, features.track_ids)
    warning = "; ".join(w for w in (chosen.warning, missing, overlap_warning(tested, trained)) if w) or None
    probs = predict_batched(classifier, features.x[chosen.test])
    kwargs = dict(
        labels=list(bundle.labels), y_true=features.y[chosen.test], y_prob=probs,
        track_ids=features.track_ids[chosen.test],
    )
    sizes = chosen.sizes(features.track_ids)
    if split_lists is None and split == "recorded":
        sizes = recorded_sizes(sizes, bundle.provenance.get("split_sizes", {}))
    # files that could not be read are measured by nobody: say which (from the feature cache too, which
    # keeps them, and which logs no line per file as a fresh extraction does)
    skipped = [reason for _, reason in features.skipped]
    if out is None:
        metrics = compute_metrics(**kwargs)
        metrics["split"] = {"name": chosen.name, "sizes": sizes, **({"warning": warning} if warning else {})}
    else:
        metrics = write_report(
            out, split_name=chosen.name, split_sizes=sizes, warning=warning,
            title=f"genrecast evaluation of {bundle.model_id}", extra={"skipped_files": len(skipped)}, **kwargs,
        )
    metrics["skipped"] = skipped
    return metrics
