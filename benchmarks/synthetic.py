"""A GTZAN-sized synthetic dataset: ``genre/genre.NNNNN.wav``, 30-s mono 16-bit WAVs at 22050 Hz.

Each "genre" is a recipe of tones, noise and a pulse whose parameters overlap between
genres (so a model has something to learn but cannot be perfect). Written once with
soundfile and kept under ``.cache/benchmarks/`` (keyed by size), since it is deterministic.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import REPO

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
RATE = 22050
SECONDS = 30.0


def _clip(genre_index: int, clip_index: int) -> np.ndarray:
    rng = np.random.default_rng(1000 * genre_index + clip_index)
    n = int(RATE * SECONDS)
    t = np.arange(n) / RATE
    f0 = 80.0 * 2 ** ((genre_index + rng.normal(0, 1.5)) / 3)  # overlapping pitch ranges
    y = np.zeros(n)
    for h in range(1, 6):
        y += rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    beat_hz = rng.uniform(1.0, 3.0) * (1 + 0.1 * genre_index)
    pulse = 0.5 + 0.5 * np.sin(2 * np.pi * beat_hz * t) ** (2 * (1 + genre_index % 4))
    noise = rng.normal(0, 1, n)
    tilt = 0.2 + 0.07 * genre_index + rng.normal(0, 0.1)  # crude colour: one-pole low-pass share
    from scipy.signal import lfilter

    colored = lfilter([1 - min(0.98, max(0.0, tilt))], [1, -min(0.98, max(0.0, tilt))], noise)
    y = y * pulse + rng.uniform(0.2, 1.5) * colored * (1 - pulse * 0.5)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def _write(args: tuple[Path, int, int]) -> None:
    import soundfile as sf

    root, g, i = args
    path = root / GENRES[g] / f"{GENRES[g]}.{i:05d}.wav"
    tmp = path.with_suffix(".tmp.wav")
    sf.write(tmp, _clip(g, i), RATE, subtype="PCM_16")
    tmp.replace(path)


def synthetic_dataset(clips: int) -> Path:
    """The dataset of ``clips`` clips (a multiple of 10 is best), created on first use."""
    per_genre = max(1, clips // len(GENRES))
    root = REPO / ".cache" / "benchmarks" / f"synthetic-{per_genre * len(GENRES)}"
    done = root / ".complete"
    if done.is_file():
        return root
    for genre in GENRES:
        (root / genre).mkdir(parents=True, exist_ok=True)
    jobs = [(root, g, i) for g in range(len(GENRES)) for i in range(per_genre)
            if not (root / GENRES[g] / f"{GENRES[g]}.{i:05d}.wav").is_file()]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_write, jobs, chunksize=8))
    done.write_text("ok\n")
    return root
