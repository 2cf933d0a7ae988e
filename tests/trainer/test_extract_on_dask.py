"""Training's feature extraction on a running Dask cluster (`genrecast train --scheduler ADDRESS`): a real
local cluster of worker processes on 127.0.0.1 computes the same windows as this process, in the same order."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_features_on_a_cluster_equal_the_local_ones(gtzan_sample: Path) -> None:
    from distributed import Client, LocalCluster

    from genrecast.daemon.features import FeatureConfig
    from genrecast.trainer.dataset import scan_dataset
    from genrecast.trainer.extract import extract_dataset

    dataset = scan_dataset(gtzan_sample)
    local = extract_dataset(dataset, FeatureConfig(), workers=1, use_cache=False, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        remote = extract_dataset(dataset, FeatureConfig(), use_cache=False, progress=False, scheduler=cluster.scheduler_address)
        ran_there = client.run(lambda: "genrecast.trainer.extract" in __import__("sys").modules)
        assert list(ran_there.values()) == [True]  # the worker process ran the extraction
    assert remote.x.shape == local.x.shape and len(local.x) >= 190
    np.testing.assert_array_equal(remote.y, local.y)
    np.testing.assert_array_equal(remote.track_ids, local.track_ids)
    np.testing.assert_allclose(remote.x, local.x, rtol=1e-5, atol=1e-6)  # BLAS threads may reorder float sums
    assert remote.skipped == local.skipped


def test_train_refuses_an_unreachable_scheduler_in_one_line(gtzan_sample: Path, tmp_path: Path) -> None:
    from helpers import free_port, run_cli

    address = f"tcp://127.0.0.1:{free_port()}"
    proc = run_cli("train", str(gtzan_sample), "--out", str(tmp_path / "b"), "--epochs", "1", "--scheduler", address,
                   env={**os.environ, "GENRECAST_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("genrecast: error: ") and address in proc.stderr
