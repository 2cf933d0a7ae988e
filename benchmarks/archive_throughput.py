"""Figure ``archive``: ``genrecast classify`` on a local Dask cluster (the default bundle, music detector
included), through the same code as ``--workers N`` (:func:`genrecast.daemon.cluster.cluster_outcomes`).

* Hours of audio classified per hour per core, with one worker process and with two, on the 30-s
  WAV clips of gtzan-sample (repeated); decoding included, cluster start-up and the first files
  (bundle load, warm-up) left out. Per core = the rate divided by the workers (one core each).
* The scheduler's overhead per file: the seconds per file on a one-worker cluster minus the seconds
  per file in this process (:func:`genrecast.daemon.classify.classify_one`), on short excerpts.

The worker (``python -m benchmarks.archive_throughput REPEATS QUICK DATA``) prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import ONE_CORE_ENV, Context, row, worker_json


def run(ctx: Context) -> list[dict]:
    res = worker_json("benchmarks.archive_throughput", str(ctx.repeats), "1" if ctx.quick else "0", str(ctx.data), timeout=1200,
                      extra_env=ONE_CORE_ENV)  # as Dask's workers run: one BLAS/OpenMP thread
    rows = []
    for workers in ("1", "2"):
        rates = res["per_core"][workers]
        rows.append(row("archive", f"classify --workers {workers}: hours of audio per hour per core", rates, "h/h",
                        note=f"{res['clips']} 30-s clips ({res['clip_hours']:.2f} h) per run, default bundle; "
                             f"total {statistics.median(res['total'][workers]):.0f} h/h with {workers} worker(s)"))
    rows.append(row("archive", "classify on Dask: scheduler overhead per file (1 worker vs in-process)", res["overhead_ms"], "ms",
                    note=f"{res['short_files']} excerpts of 2-3 s; in-process {res['local_ms']:.1f} ms per file"))
    return rows


def _clips(data: Path, quick: bool) -> tuple[list[str], list[str]]:
    long = [str(p) for p in sorted((data / "gtzan-sample").glob("*/*.wav"))] * (1 if quick else 4)
    short = [str(p) for p in sorted((data / "gtzan-excerpts").glob("*/*.wav"))][: 40 if quick else 200]
    return long, short


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _worker(repeats: int, quick: bool, data: Path) -> dict:
    from genrecast.daemon.classify import ClassifyJob, classify_one
    from genrecast.daemon.cluster import cluster_outcomes, connect

    job = ClassifyJob(bundle=None)
    long, short = _clips(data, quick)
    unique = sorted(set(long))
    seconds = sum(classify_one(f, job).audio_seconds for f in unique)  # and a warm-up of this process
    clip_hours = seconds * len(long) / len(unique) / 3600
    local = [_timed(lambda: [classify_one(f, job) for f in short]) for _ in range(repeats)]
    per_core, total, overhead = {}, {}, []
    for workers in (1, 2):
        client, cluster = connect(workers, None)
        try:
            list(cluster_outcomes(short[:8], job, client))  # warm-up: every worker has loaded the bundle
            runs = [_timed(lambda: list(cluster_outcomes(long, job, client))) for _ in range(repeats)]
            total[str(workers)] = [clip_hours / (t / 3600) for t in runs]
            per_core[str(workers)] = [r / workers for r in total[str(workers)]]
            if workers == 1:
                on_cluster = [_timed(lambda: list(cluster_outcomes(short, job, client))) for _ in range(repeats)]
                overhead = [(c - statistics.median(local)) / len(short) * 1000 for c in on_cluster]
        finally:
            client.close()
            cluster.close()
    return {"per_core": per_core, "total": total, "overhead_ms": overhead, "clips": len(long), "clip_hours": clip_hours,
            "short_files": len(short), "local_ms": statistics.median(local) / len(short) * 1000}


if __name__ == "__main__":
    out = _worker(max(1, int(sys.argv[1])), sys.argv[2] == "1", Path(sys.argv[3]))
    sys.stdout.write("\n" + json.dumps(out) + "\n")
