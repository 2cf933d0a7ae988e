"""Per-window features + inference on the default path, against the tutorial's path."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np


def _time_ms(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(data: Path, repeats: int) -> list[dict]:
    """Median and p99 of one window's MFCC + LiteRT inference (a bundle trained on the fly is not
    needed: the default bundle's classifier is used when it is an MFCC bundle, else features alone)."""
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.features import FeatureConfig, window_features

    cfg = FeatureConfig()
    audio = load_audio(data / "gtzan-sample" / "blues" / "blues.00000.wav", cfg.sample_rate)
    window = audio[: cfg.window_samples]
    window_features(window, cfg)
    ours = _time_ms(lambda: window_features(window, cfg), 200 * repeats)
    import librosa

    librosa.feature.mfcc(y=window, sr=cfg.sample_rate, n_mfcc=13)
    tutorial = _time_ms(lambda: librosa.feature.mfcc(y=window, sr=cfg.sample_rate, n_mfcc=13), 50 * repeats)
    return [
        {"figure": "window MFCC, genrecast (ms)", "median": statistics.median(ours), "p99": float(np.percentile(ours, 99)), "unit": "ms"},
        {"figure": "window MFCC, librosa.feature.mfcc (ms)", "median": statistics.median(tutorial), "p99": float(np.percentile(tutorial, 99)), "unit": "ms"},
    ]
