"""Capture-condition augmentation of a window model's training tracks (``genrecast train --augment N``).

Every file of a TRAINING track gets ``N`` extra copies, each under its own random capture
condition (:func:`genrecast.trainer.conditions.random_capture`: gain −30..+12 dB, rooms
with or without a small speaker, MP3/AAC/Opus, stereo, 8-48 kHz, coloured noise, babble
or environment sounds). The condition is applied to the decoded audio (mono float32 at
the feature rate) before the features, so the model sees what the daemon computes from
such a capture. Validation and test tracks are never augmented: model selection and the
reported accuracy rest on clean audio of tracks the model never saw in any form.

Seeding: copy ``k`` of track ``T`` draws its condition from
:func:`~genrecast.trainer.conditions.condition_rng` ``(seed, "augment", T, file name, k)``,
so a copy does not depend on which other tracks are in the run. Each copy's features are
cached under the cache directory (``augment/``), keyed by the feature config, the
file's SHA-1, the seed and ``k``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genrecast.daemon.cache import cache_dir, save_npz
from genrecast.daemon.features import FeatureConfig, window_features
from genrecast.daemon.progress import Progress
from genrecast.trainer.dataset import Dataset, file_digest
from genrecast.trainer.extract import FeatureSet, _pool_context, split_windows
from genrecast.trainer.splits import Split

log = logging.getLogger(__name__)

#: Changes whenever the augmentation would give other audio for the same seed (part of the cache key).
AUGMENT_VERSION = "random_capture-1"


@dataclass(frozen=True)
class Augmented:
    """The training features with the augmented copies appended, and what was added."""

    features: FeatureSet
    split: Split
    """The split over ``features``: the copies are in ``train`` only."""
    augmented: np.ndarray
    """Boolean mask over ``features``' windows: True for the windows of an augmented copy."""
    conditions: list[dict[str, str | int]]
    """One record per copy: ``track_id``, ``file``, ``copy`` and the ``condition`` name."""


def copy_features(path: Path, track_id: str, copy: int, cfg: FeatureConfig, seed: int) -> tuple[np.ndarray, str]:
    """Features of copy ``copy`` of one file: windows x ``cfg.input_shape`` (possibly zero
    windows), and the name of the condition drawn. Cached (see the module docstring).
    Raises :class:`~genrecast.daemon.audio.AudioDecodeError` for a file that does not decode."""
    from genrecast.daemon.audio import load_audio
    from genrecast.trainer.conditions import condition_rng, random_capture

    key = f"{cfg.cache_key()}-{file_digest(path)[:16]}-{seed}-{copy}-{AUGMENT_VERSION}"
    cache = cache_dir() / "augment" / f"{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return data["x"], str(data["condition"])
    rng = condition_rng(seed, "augment", track_id, path.name, str(copy))
    condition = random_capture(rng)
    audio = condition.apply(load_audio(path, cfg.sample_rate), cfg.sample_rate, rng)
    windows = [window_features(w, cfg) for w in split_windows(audio, cfg)]
    x = np.stack(windows) if windows else np.zeros((0, *cfg.input_shape), np.float32)
    save_npz(cache, compressed=True, x=x, condition=np.array(condition.name))
    return x, condition.name


def _work(args: tuple[str, str, int, dict, int]) -> tuple[str, int, np.ndarray, str]:
    path, track_id, copy, cfg_dict, seed = args
    x, name = copy_features(Path(path), track_id, copy, FeatureConfig.from_dict(cfg_dict), seed)
    return path, copy, x, name


def augment_training(dataset: Dataset, features: FeatureSet, split: Split, cfg: FeatureConfig, copies: int, *,
                     seed: int = 0, workers: int | None = None, progress: bool = True) -> Augmented:
    """``features`` with ``copies`` augmented copies of every file of the split's training
    tracks appended (labels and track ids of the original), and the split extended so
    that the copies are training windows only. ``copies`` 0 returns the input unchanged.
    Files the clean extraction skipped are not augmented. Raises ValueError for a negative
    ``copies``."""
    if copies < 0:
        raise ValueError(f"--augment must be 0 or more copies (got {copies})")
    none = np.zeros(len(features.y), dtype=bool)
    if copies == 0:
        return Augmented(features, split, none, [])
    train_ids = set(features.track_ids[split.train].tolist())
    skipped = {p for p, _ in features.skipped}
    tracks = [t for t in dataset.tracks if t.track_id in train_ids and str(t.path) not in skipped]
    jobs = [(str(t.path), t.track_id, k, cfg.to_dict(), seed) for t in tracks for k in range(copies)]
    by_path = {str(t.path): t for t in tracks}
    xs, ys, ids, records = [], [], [], []
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with Progress(progress, len(jobs), "augmenting training tracks") as advance:
        if workers == 1:
            results = map(_work, jobs)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context())
            results = pool.map(_work, jobs)
        try:
            for path, copy, x, name in results:
                track = by_path[path]
                xs.append(x)
                ys.append(np.full(len(x), dataset.label_index(track.label), dtype=np.int64))
                ids.append(np.array([track.track_id] * len(x), dtype=str))
                records.append({"track_id": track.track_id, "file": Path(path).name, "copy": copy, "condition": name})
                advance()
        finally:
            if pool is not None:
                pool.shutdown()
    x_new = np.concatenate([features.x, *xs]).astype(features.x.dtype)
    y_new = np.concatenate([features.y, *ys])
    id_new = np.concatenate([features.track_ids, *ids])  # numpy widens the string type as needed
    added = len(y_new) - len(features.y)
    extra_false = np.zeros(added, dtype=bool)
    new_split = replace(split, train=np.concatenate([split.train, ~extra_false]),
                        valid=np.concatenate([split.valid, extra_false]), test=np.concatenate([split.test, extra_false]))
    log.info("augmented %d training files x %d copies: %d windows", len(tracks), copies, added)
    return Augmented(replace(features, x=x_new, y=y_new, track_ids=id_new), new_split,
                     np.concatenate([none, ~extra_false]), records)
