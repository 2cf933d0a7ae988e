"""Turn a dataset's tracks into windows of features, on all cores, with a cache.

The cache is one compressed NumPy file per (feature config, dataset contents),
holding the feature arrays with their labels and track ids, so a second run
with the same settings starts training at once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from genrecast.daemon.audio import AudioDecodeError, open_audio
from genrecast.daemon.cache import cache_dir, save_npz
from genrecast.daemon.features import FeatureConfig, window_features
from genrecast.daemon.progress import Progress
from genrecast.daemon.smoothing import DEFAULT_SILENCE_DBFS, SILENCE_FLOOR_DBFS, level_dbfs
from genrecast.trainer.dataset import Dataset

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    """Windows of features with, per window, its label index and track id."""

    x: np.ndarray
    y: np.ndarray
    track_ids: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) of every file that could not be used."""
    from_cache: bool = False


def split_windows(y: np.ndarray, cfg: FeatureConfig) -> list[np.ndarray]:
    """Consecutive non-overlapping windows of ``cfg.window_samples`` (the tail is dropped)."""
    n = cfg.window_samples
    return [y[i * n : (i + 1) * n] for i in range(len(y) // n)]


def stream_windows(blocks: Iterable[np.ndarray], window_samples: int) -> Iterator[np.ndarray]:
    """The windows :func:`split_windows` cuts from the concatenated ``blocks``, made as the
    blocks come (memory: one window and one block)."""
    carry = np.zeros(0, np.float32)
    for block in blocks:
        audio = np.concatenate([carry, block]) if len(carry) else block
        whole = len(audio) // window_samples * window_samples
        for i in range(0, whole, window_samples):
            yield audio[i : i + window_samples]
        carry = audio[whole:].copy()


def track_features(path: Path, cfg: FeatureConfig) -> np.ndarray:
    """Features of every full window of one file: windows x input_shape. The file streams
    through the daemon's decoder (:func:`~genrecast.daemon.audio.open_audio`), so memory
    holds one block of audio whatever the file's length.

    Raises :class:`AudioDecodeError` for unreadable files, NaN or infinite samples, files
    shorter than one window and silent files (every window under the daemon's default silence
    gate, :data:`~genrecast.daemon.smoothing.DEFAULT_SILENCE_DBFS`: the daemon never gives such a
    window a genre, so a model must not learn one for it).
    """
    audio = open_audio(path)
    seconds = 0.0
    loudest = SILENCE_FLOOR_DBFS

    def checked() -> Iterator[np.ndarray]:
        nonlocal seconds
        for block in audio.resampled(cfg.sample_rate):
            if not np.all(np.isfinite(block)):
                raise AudioDecodeError(f"{path}: contains NaN or infinite samples")
            seconds += len(block) / cfg.sample_rate
            yield block

    features = []
    for w in stream_windows(checked(), cfg.window_samples):
        loudest = max(loudest, level_dbfs(w))
        features.append(window_features(w, cfg))
    if not features:
        raise AudioDecodeError(f"{path}: too short ({seconds:.2f} s < one {cfg.window_seconds:g}-s window)")
    if loudest < DEFAULT_SILENCE_DBFS:
        raise AudioDecodeError(f"{path}: silent (its loudest {cfg.window_seconds:g}-s window is {loudest:.1f} dBFS, under the "
                               f"silence gate's {DEFAULT_SILENCE_DBFS:g} dBFS); check the file, or leave it out")
    return np.stack(features)


def _work(args: tuple[str, dict]) -> tuple[str, np.ndarray | None, str | None]:
    path, cfg_dict = args
    try:
        return path, track_features(Path(path), FeatureConfig.from_dict(cfg_dict)), None
    except AudioDecodeError as exc:
        return path, None, str(exc)


def _code_key() -> str:
    """A short hash of the code that computes the features (the feature modules' source, the
    audio decoder's and this module's, which decides what is skipped) and of librosa's version,
    so features cached by other code are not reused."""
    import hashlib

    import librosa

    from genrecast.daemon import audio, feature_config, features, level, spectral, summary_features

    digest = hashlib.sha256(librosa.__version__.encode())
    for module in (audio, feature_config, features, level, spectral, summary_features, sys.modules[__name__]):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:8]


def _cache_path(dataset: Dataset, cfg: FeatureConfig) -> Path:
    return cache_dir() / "features" / f"{cfg.cache_key()}-{_code_key()}-{dataset.fingerprint()}.npz"


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is fast, but unsafe once tensorflow's threads exist in this process
    return multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")


def extract_dataset(
    dataset: Dataset, cfg: FeatureConfig, *, workers: int | None = None, use_cache: bool = True, progress: bool = True,
    scheduler: str | None = None,
) -> FeatureSet:
    """Features of every window of every track, computed on ``workers`` processes (all cores by default),
    or on the workers of the Dask cluster whose scheduler is at ``scheduler`` (e.g. ``tcp://HOST:8786``;
    they must see the dataset at the same path). Raises ``OSError`` when that scheduler does not answer."""
    cache = _cache_path(dataset, cfg) if use_cache else None  # the key hashes every file: only when caching
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            labels = [str(s) for s in data["labels"]]
            if labels == list(dataset.labels):
                log.info("features from cache %s", cache)
                return FeatureSet(
                    x=data["x"], y=data["y"], track_ids=data["track_ids"],
                    skipped=[tuple(s) for s in json.loads(str(data["skipped"]))], from_cache=True,
                )
    workers = workers or os.cpu_count() or 1
    jobs = [(str(t.path), cfg.to_dict()) for t in dataset.tracks]
    by_path = {str(t.path): t for t in dataset.tracks}
    xs, ys, ids, skipped = [], [], [], []
    with Progress(progress, len(jobs), "extracting features") as advance:
        if scheduler is not None:
            from distributed import Client

            from genrecast.daemon.cluster import CONNECT_SECONDS

            with Client(scheduler, timeout=CONNECT_SECONDS) as client:  # OSError (TimeoutError is one) when unreachable
                for path, feats, err in client.get_executor(pure=False).map(_work, jobs):
                    _collect(by_path[path], feats, err, dataset, xs, ys, ids, skipped)
                    advance()
        elif workers == 1:
            results = map(_work, jobs)
            for path, feats, err in results:
                _collect(by_path[path], feats, err, dataset, xs, ys, ids, skipped)
                advance()
        else:
            context = _pool_context()
            if context.get_start_method() == "fork":
                window_features(np.zeros(cfg.window_samples, np.float32), cfg)  # filterbanks and FFT: built once, inherited
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                chunksize = max(1, min(4, len(jobs) // (8 * workers)))  # small datasets: balance the workers
                for path, feats, err in pool.map(_work, jobs, chunksize=chunksize):
                    _collect(by_path[path], feats, err, dataset, xs, ys, ids, skipped)
                    advance()
    if not xs:
        raise AudioDecodeError(f"no usable audio in {dataset.root}: every file was skipped ({skipped[0][1] if skipped else ''})")
    result = FeatureSet(x=np.concatenate(xs), y=np.concatenate(ys), track_ids=np.concatenate(ids), skipped=skipped)
    if cache is not None:
        try:
            save_npz(cache, compressed=True, x=result.x, y=result.y, track_ids=result.track_ids,
                     labels=np.array(dataset.labels), skipped=np.array(json.dumps(skipped)))
        except OSError as exc:  # the features are here: a cache we cannot write only costs the next run
            log.warning("could not cache the features in %s (%s); going on without the cache (set GENRECAST_CACHE_DIR "
                        "to a writable folder to keep them for the next run)", cache.parent, exc.strerror or exc)
    return result


def _collect(track, feats, err, dataset, xs, ys, ids, skipped) -> None:
    if feats is None:
        skipped.append((str(track.path), err or "unreadable"))
        log.warning("skipped %s", err)
        return
    xs.append(feats)
    ys.append(np.full(len(feats), dataset.label_index(track.label), dtype=np.int64))
    ids.append(np.array([track.track_id] * len(feats)))
