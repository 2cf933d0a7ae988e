"""The ``genrecast`` command runs OpenBLAS single-threaded (see ``single_threaded_blas``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = (
    "from genrecast.daemon.cli import single_threaded_blas; single_threaded_blas(); "
    "import json, numpy, threadpoolctl; "
    "print(json.dumps([p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']))"
)


def _blas_threads(**env: str) -> list[int]:
    e = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | env
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=e).stdout
    return json.loads(out)


def test_blas_gets_one_thread_per_caller() -> None:
    threads = _blas_threads()
    assert threads and all(n == 1 for n in threads), threads


def test_a_users_setting_wins() -> None:
    assert _blas_threads(OPENBLAS_NUM_THREADS="2") == [2] or os.cpu_count() == 1
