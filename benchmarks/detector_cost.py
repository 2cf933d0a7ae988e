"""The music detector's cost per window, on one core (one BLAS thread, pinned to CPU 0): its
level-invariant features + LiteRT alone, and the default bundle's whole window with the
detector minus without it (the cost on top of the genre model).

The worker (``python -m benchmarks.detector_cost CLIP N``) runs in its own process so that
the one-thread environment holds; OpenBLAS's default threads make these small products
slower and noisier on a busy machine.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from benchmarks.common import ONE_CORE_ENV, Context, p99, row, skipped, time_ms, worker_json

TARGET_MS = 1.0


def detector_rows(ctx: Context, clip: Path, n: int) -> list[dict]:
    from genrecast.daemon.bundle import default_bundle_path, load_bundle

    figure = "music detector per window (its features + LiteRT), one core"
    if load_bundle(default_bundle_path()).detector is None:
        return [skipped("window", figure, "the default bundle has no music detector")]
    res = worker_json("benchmarks.detector_cost", str(clip), str(n * ctx.repeats), cpus={0}, extra_env=ONE_CORE_ENV)
    alone, extra = res["alone_ms"], res["extra_ms"]
    return [
        row("window", figure, alone, "ms", p99=p99(alone), target=f"<= {TARGET_MS} ms",
            met=statistics.median(alone) <= TARGET_MS, note=f"detector {res['detector']}"),
        row("window", "  default bundle's window with the detector minus without", extra, "ms",
            target=f"<= {TARGET_MS} ms", met=statistics.median(extra) <= TARGET_MS,
            note=f"per interleaved round; medians {res['with_ms']:.2f} vs {res['without_ms']:.2f} ms a window"),
    ]


def _worker(clip: str, n: int) -> dict:
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.classifier import open_classifier
    from genrecast.daemon.music_features import music_features
    from genrecast.daemon.pipeline import EventMaker, PipelineSettings, SourceState

    clf = open_classifier(None)
    detector = clf.detector
    cfg = detector.spec.features
    audio = load_audio(clip, cfg.sample_rate)
    blocks = [audio[i * cfg.window_samples : (i + 1) * cfg.window_samples] for i in range(len(audio) // cfg.window_samples)]
    turn = iter(range(10**9))
    alone = lambda: detector.predict(music_features(blocks[next(turn) % len(blocks)], cfg)[None])  # noqa: E731
    time_ms(alone, 20)
    alone_ms = time_ms(alone, n)

    def live(with_detector: bool):
        c = open_classifier(None)
        if not with_detector:
            c.detector = None
        settings = PipelineSettings()
        state, maker = SourceState("bench", c, settings), EventMaker(c, settings)
        for block in blocks:  # fill the 30-s context first
            maker.events(state.windows(block, cfg.sample_rate))
        order = iter(range(10**9))
        return lambda: maker.events(state.windows(blocks[next(order) % len(blocks)], cfg.sample_rate))

    with_fn, without_fn = live(True), live(False)
    extra, with_all, without_all = [], [], []
    for _ in range(max(3, n // 100)):  # interleaved rounds
        a, b = time_ms(with_fn, 30), time_ms(without_fn, 30)
        with_all += a
        without_all += b
        extra.append(statistics.median(a) - statistics.median(b))
    return {"alone_ms": alone_ms, "extra_ms": extra, "with_ms": statistics.median(with_all),
            "without_ms": statistics.median(without_all), "detector": detector.spec.metrics.get("id", "?")}


if __name__ == "__main__":
    sys.stdout.write("\n" + json.dumps(_worker(sys.argv[1], int(sys.argv[2]))) + "\n")
