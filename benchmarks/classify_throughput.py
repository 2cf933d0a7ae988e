"""Figure 3: ``genrecast classify`` throughput on 30-s WAV clips, one core, decoding included.

The worker (``python -m benchmarks.classify_throughput BUNDLE REPEATS CLIP...``) runs pinned to
one CPU (taskset) with one BLAS/OpenMP thread and times ``classify_file`` (decode, resample,
windows, features, model, events) over the clips after one warm-up file. The command line
end to end (process start and imports included) is reported beside it, without a target.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import GENRECAST, ONE_CORE_ENV, Context, env, row, worker_json

TARGET_X = 500.0


def run(ctx: Context) -> list[dict]:
    bundle = ctx.bundle()
    clips = ctx.wav_clips()[: 6 if ctx.quick else None]
    res = worker_json("benchmarks.classify_throughput", str(bundle), str(ctx.repeats), *map(str, clips),
                      cpus={0}, extra_env=ONE_CORE_ENV)
    rates = res["x_real_time"]
    rows = [row("classify", "genrecast classify, one core, decode included (x real time)", rates, "x",
                target=f">= {TARGET_X:g}x", met=statistics.median(rates) >= TARGET_X,
                note=f"{len(clips)} clips, {res['audio_seconds']:.0f} s of audio per run, in-process after warm-up")]
    cli = []
    for _ in range(max(1, ctx.repeats if not ctx.quick else 1)):
        start = time.perf_counter()
        proc = subprocess.run(["taskset", "-c", "0", GENRECAST, "classify", "--json", "--bundle", str(bundle), *map(str, clips)],
                              capture_output=True, env=env(**ONE_CORE_ENV))
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode()[-2000:])
        cli.append(res["audio_seconds"] / elapsed)
    rows.append(row("classify", "genrecast classify CLI end to end incl. process start (x real time)", cli, "x",
                    note=f"{len(clips)} clips in one command; start-up dominates"))
    return rows


def _worker(bundle: str, repeats: int, clips: list[str]) -> dict:
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.classifier import open_classifier
    from genrecast.daemon.classify import classify_file
    from genrecast.daemon.pipeline import PipelineSettings

    clf = open_classifier(bundle)
    settings = PipelineSettings()
    classify_file(Path(clips[0]), clf, settings)  # warm-up: filterbank, interpreter
    seconds = sum(len(load_audio(c, clf.bundle.features.sample_rate)) for c in clips) / clf.bundle.features.sample_rate
    rates = []
    for _ in range(max(3, repeats)):
        start = time.perf_counter()
        for c in clips:
            classify_file(Path(c), clf, settings)
        rates.append(seconds / (time.perf_counter() - start))
    return {"x_real_time": rates, "audio_seconds": seconds}


if __name__ == "__main__":
    out = _worker(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
    sys.stdout.write("\n" + json.dumps(out) + "\n")
