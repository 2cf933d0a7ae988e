"""The music detector's windows and their features, cached on disk.

A file is cut into 3-s windows as the daemon cuts it (:func:`cut_windows`), under a capture
condition, and each window becomes :func:`genrecast.daemon.music_features.music_features`;
:func:`extract_all` does this for many (file, condition) pairs in worker processes and keeps
every result under ``~/.cache/genrecast/detector``, keyed on the file's bytes, the condition
(:func:`describe`) and its seed, the feature config and the code of the feature and condition
modules. The recordings a condition mixes in (babble, environment sounds, music beds) enter the
key by path, not by their bytes: edit one of those and clear the cache. Used by
:mod:`genrecast.trainer.detector`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genrecast.daemon.detector import DETECTOR_LABELS
from genrecast.daemon.features import FeatureConfig
from genrecast.daemon.music_features import music_features
from genrecast.daemon.smoothing import level_dbfs
from genrecast.trainer import conditions as cond
from genrecast.trainer.detector_data import Item, generated_noise
from genrecast.trainer.detector_eval import FileWindows

#: The name of a training / validation copy's random condition (:class:`RandomCapture`).
RANDOM = "random-capture"


@dataclass(frozen=True)
class RandomCapture:
    """A fresh :func:`genrecast.trainer.conditions.random_capture` draw per (file, copy), whose
    babble and environment sounds never come from ``exclude`` (resolved paths of held-out files)."""

    exclude: tuple[str, ...] = ()
    name: str = RANDOM


def cut_windows(y: np.ndarray, cfg: FeatureConfig, min_samples: int) -> list[tuple[np.ndarray, float]]:
    """(real audio, level in dBFS) per window, as the daemon cuts a file: full windows every window
    length, then the rest if it holds ``min_samples``; the level is measured once zero-padded to
    a full window (as the daemon measures it against its silence gate)."""
    n = cfg.window_samples
    out = []
    for start in range(0, len(y), n):
        real = y[start : start + n]
        if len(real) < n and (len(real) < min_samples or len(real) < cfg.n_fft):
            break
        padded = real if len(real) == n else np.pad(real, (0, n - len(real)))
        out.append((real, level_dbfs(padded)))
    return out


def _cache_key(task: tuple) -> str:
    """Changes with the file's bytes, the condition and its seed, the config and the feature / condition code."""
    import genrecast.daemon.music_features as features_module

    path, condition, seed, cfg, min_samples = task
    digest = hashlib.sha256(Path(path).read_bytes())
    modules = [features_module, cond]
    transform_module = getattr(getattr(condition, "transform", None), "__module__", cond.__name__)
    if transform_module != cond.__name__:  # a transform of its own (sung speech): its code too
        modules.append(sys.modules[transform_module])
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    digest.update(f"levels|{describe(condition)}|{seed}|{cfg.cache_key()}|{min_samples}".encode())
    return digest.hexdigest()[:32]


def describe(condition: Any) -> str:
    """A condition as text that is the same in every process: its name, its transform's qualified
    name and its arguments, nested conditions (a chain's steps) described alike. (A Condition's
    ``repr`` holds its function's memory address, which differs from process to process, so a
    key built on it never found its cache entry again.)"""
    if isinstance(condition, cond.Condition):
        transform = f"{condition.transform.__module__}.{condition.transform.__qualname__}"
        args = ",".join(f"{k}={describe(v)}" for k, v in sorted(condition.kwargs.items()))
        return f"{condition.name}:{transform}({args})"
    if isinstance(condition, (tuple, list)):
        return "(" + ",".join(describe(v) for v in condition) + ")"
    return repr(condition)


def _extract(task: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Worker: one file under one condition → (windows x features, levels in dBFS), cached on disk."""
    from genrecast.daemon.cache import cache_dir, save_npz

    cache = cache_dir() / "detector" / f"{_cache_key(task)}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return data["x"], data["levels"]
    x, levels = _compute(task)
    save_npz(cache, x=x, levels=levels)
    return x, levels


def _compute(task: tuple) -> tuple[np.ndarray, np.ndarray]:
    from genrecast.daemon.audio import load_audio

    path, condition, seed, cfg, min_samples = task
    y = load_audio(path, cfg.sample_rate)
    rng = np.random.default_rng(seed)
    if isinstance(condition, RandomCapture):
        condition = cond.random_capture(rng, exclude=condition.exclude)
    y = condition.apply(y, cfg.sample_rate, rng)
    windows = cut_windows(y, cfg, min_samples)
    feats = [music_features(real, cfg) for real, _ in windows]
    width = len(cfg.columns)
    return (np.stack(feats) if feats else np.zeros((0, width), np.float32)), np.array([v for _, v in windows], dtype=np.float32)


def task_seed(*parts: Any) -> int:
    """A stable 32-bit seed from ``parts`` (sha256 of their ``/``-joined text; independent of PYTHONHASHSEED)."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def extract_all(items: list[Item], conditions, cfg: FeatureConfig, seed: int, min_samples: int,
                jobs: int, what: str) -> list[FileWindows]:
    """Features of every (item, condition) pair, in order; ``conditions`` is a list, or a function
    of the item giving one, whose entries are a :class:`Condition` or a :class:`RandomCapture`
    (a fresh draw per item and copy). Every window is marked not silent until :func:`with_silence_gate`."""
    tasks, meta = [], []
    for item in items:
        for copy, c in enumerate(conditions(item) if callable(conditions) else conditions):
            name = c if isinstance(c, str) else c.name
            tasks.append((item.path, c, task_seed(seed, item.group, item.path.name, copy, name), cfg, min_samples))
            meta.append((item, f"{name}{copy}" if name == RANDOM else name))
    results = _run(tasks, jobs, what)
    return [FileWindows(item.path.name, item.label, item.kind, condition, probabilities=np.zeros((len(x), 3), np.float32),
                        silent=np.zeros(len(x), bool), genre=item.genre, features=x, levels=levels)
            for (item, condition), (x, levels) in zip(meta, results)]


def _run(tasks: list, jobs: int, what: str) -> list:
    from genrecast.daemon.progress import Progress

    out = []
    with Progress(True, len(tasks), what) as advance:
        if jobs > 1:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                for result in pool.map(_extract, tasks, chunksize=4):
                    out.append(result)
                    advance()
        else:
            for task in tasks:
                out.append(_extract(task))
                advance()
    return out


def generated_windows(n: int, cfg: FeatureConfig, seed: int, name: str) -> FileWindows:
    """``n`` windows of generated hiss / hum / fan (:func:`genrecast.trainer.detector_data.generated_noise`)
    as one ``other`` file called ``name``, with their features and levels (dBFS)."""
    windows = generated_noise(n, cfg.window_samples, cfg.sample_rate, seed)
    feats = np.stack([music_features(w, cfg) for w in windows])
    levels = np.array([level_dbfs(w) for w in windows], dtype=np.float32)
    return FileWindows(name, "other", "generated", "clean", probabilities=np.zeros((len(feats), 3), np.float32),
                       silent=np.zeros(len(feats), bool), features=feats, levels=levels)


def window_labels(files: list[FileWindows]) -> np.ndarray:
    """The class index (:data:`DETECTOR_LABELS`) of every non-silent window of ``files``, in order."""
    return np.concatenate([np.full(int((~f.silent).sum()), DETECTOR_LABELS.index(f.label)) for f in files]).astype(np.int64)


def training_matrix(files: list[FileWindows]) -> tuple[np.ndarray, np.ndarray]:
    """Non-silent windows' features and class indices (the daemon never runs the detector on silence)."""
    return np.concatenate([f.features[~f.silent] for f in files]).astype(np.float32), window_labels(files)
