"""Figure 9: ``genrecast train`` end to end (extract + fit + evaluate + export, default
architecture) on the synthetic GTZAN-sized set, from a cold feature cache."""

from __future__ import annotations

import re
import subprocess
import time

from benchmarks.common import GENRECAST, Context, env, row
from benchmarks.synthetic import synthetic_dataset

TARGET_SECONDS = 300.0


def run(ctx: Context) -> list[dict]:
    clips = 100 if ctx.quick else 1000
    root = synthetic_dataset(clips)
    out = ctx.scratch / "train-bench"
    cmd = [GENRECAST, "train", str(root), "--out", str(out)]
    if ctx.quick:
        cmd += ["--epochs", "3"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(GENRECAST_CACHE_DIR=str(ctx.scratch / "train-cache")))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    epochs = len(re.findall(r"^Epoch \d+/", proc.stdout + proc.stderr, flags=re.M))
    summary = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("split ")]
    return [row("train", f"genrecast train, {clips} clips, default arch (extract + fit + evaluate)", [elapsed], "s",
                target=f"<= {TARGET_SECONDS:g} s", met=elapsed <= TARGET_SECONDS,
                note=f"{epochs or '?'} epochs; " + (summary[-1] if summary else ""), epochs=epochs)]
