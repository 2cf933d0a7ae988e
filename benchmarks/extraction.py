"""Feature-extraction throughput for training: clips per second over all cores, on real clips."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path


def run(data: Path, repeats: int) -> list[dict]:
    """Extract MFCC windows of the 19 real gtzan-sample clips (30 s each) on all cores, no cache."""
    from genrecast.daemon.features import FeatureConfig
    from genrecast.trainer.dataset import scan_dataset
    from genrecast.trainer.extract import extract_dataset

    dataset = scan_dataset(data / "gtzan-sample")
    cfg = FeatureConfig()
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["GENRECAST_CACHE_DIR"] = cache
            start = time.perf_counter()
            extract_dataset(dataset, cfg, use_cache=False, progress=False)
            rates.append(len(dataset.tracks) / (time.perf_counter() - start))
    os.environ.pop("GENRECAST_CACHE_DIR", None)
    return [{
        "figure": f"feature extraction, all {os.cpu_count()} cores (clips/s)",
        "median": statistics.median(rates), "unit": "clips/s", "runs": rates,
    }]
