"""Figure 1: one window's features + inference on the default path (MFCC + LiteRT), against
the tutorial's path (``librosa.feature.mfcc`` + Keras ``model.predict``), measured side by
side in one worker process; and the path of the default bundle (its features, music detector and model).

The worker (``python -m benchmarks.window_latency BUNDLE CLIP N``) imports tensorflow, so it
runs in its own process and the rest of the suite stays tensorflow-free.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from benchmarks.common import Context, p99, row, skipped, time_ms, worker_json

TARGET_MS = 1.5
TARGET_SPEEDUP = 50.0
#: The default bundle's window, music detector included: the robustness issue's
#: cost target (median; an MFCC bundle's window keeps :data:`TARGET_MS`).
DEFAULT_BUNDLE_TARGET_MS = 5.0


def run(ctx: Context) -> list[dict]:
    bundle = ctx.bundle()
    clip = ctx.gtzan_sample / "blues" / "blues.00000.wav"
    n = 100 if ctx.quick else 400
    res = worker_json("benchmarks.window_latency", str(bundle), str(clip), str(n), str(ctx.repeats))
    ours, full, tut = res["ours_ms"], res["pipeline_ms"], res["tutorial_ms"]
    speedups = res["speedups"]
    alone = _ours_without_tensorflow(bundle, clip, n * ctx.repeats)
    med = statistics.median(alone)
    rows = [
        row("window", "window features + LiteRT inference (MFCC bundle)", alone, "ms", p99=p99(alone),
            target=f"<= {TARGET_MS} ms", met=med <= TARGET_MS,
            note=f"{len(alone)} windows, as in the daemon (no tensorflow in the process)"),
        row("window", "  same, in the tutorial's process (tensorflow loaded)", ours, "ms", p99=p99(ours),
            note="the numerator of the speed-up below"),
        row("window", "window through the pipeline (features, model, smoothing, event)", full, "ms", p99=p99(full),
            note="SourceState + EventMaker, one window per call"),
        row("window", "tutorial path: librosa.feature.mfcc + Keras model.predict", tut, "ms", p99=p99(tut),
            note="same window, same model, same process"),
        row("window", "speed-up over the tutorial path (x)", speedups, "x",
            target=f">= {TARGET_SPEEDUP:g}x", met=statistics.median(speedups) >= TARGET_SPEEDUP,
            note="ratio of medians per interleaved round"),
    ]
    rows.append(default_bundle_row(ctx, clip, n))
    from benchmarks.detector_cost import detector_rows

    rows += detector_rows(ctx, clip, n)
    return rows


def _ours_without_tensorflow(bundle: Path, clip: Path, n: int) -> list[float]:
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.classifier import open_classifier
    from genrecast.daemon.features import window_features

    clf = open_classifier(bundle)
    cfg = clf.bundle.features
    window = load_audio(clip, cfg.sample_rate)[: cfg.window_samples]
    run_once = lambda: clf.predict(window_features(window, cfg)[None])  # noqa: E731
    time_ms(run_once, 20)
    return time_ms(run_once, n)


def default_bundle_row(ctx: Context, clip: Path, n: int) -> dict:
    """The path of the built-in bundle (features, music detector, model) (``daemon/default_bundle``), if it exists."""
    from genrecast.daemon.bundle import default_bundle_path

    figure = "window on the default bundle's path (features + detector + LiteRT)"
    path = default_bundle_path()
    if not (path / "bundle.json").is_file():
        return skipped("window", figure, f"{path} does not exist yet")
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.classifier import open_classifier
    from genrecast.daemon.pipeline import EventMaker, PipelineSettings, SourceState

    clf = open_classifier(path)
    cfg = clf.bundle.features
    settings = PipelineSettings()
    state = SourceState("bench", clf, settings)
    maker = EventMaker(clf, settings)
    audio = load_audio(clip, cfg.sample_rate)
    n_win = len(audio) // cfg.window_samples
    blocks = [audio[i * cfg.window_samples : (i + 1) * cfg.window_samples] for i in range(n_win)]
    for block in blocks:  # fill the 30-s context first
        maker.events(state.windows(block, cfg.sample_rate))
    turn = iter(range(10**9))

    def one_window() -> None:  # 3 s of new audio in, one event out: what every window costs live
        maker.events(state.windows(blocks[next(turn) % n_win], cfg.sample_rate))

    runs = time_ms(one_window, max(20, n * ctx.repeats // 8))
    med = statistics.median(runs)
    return row("window", figure, runs, "ms", p99=p99(runs), target=f"<= {DEFAULT_BUNDLE_TARGET_MS:g} ms",
               met=med <= DEFAULT_BUNDLE_TARGET_MS,
               note=f"kind={cfg.kind}, context {cfg.context_seconds:g} s, model {clf.bundle.model_id}")


def _worker(bundle_path: str, clip: str, n: int, repeats: int) -> dict:
    from genrecast.trainer.export import quiet_tensorflow

    quiet_tensorflow()  # before LiteRT and keras are loaded
    import numpy as np

    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.classifier import open_classifier
    from genrecast.daemon.features import window_features
    from genrecast.daemon.pipeline import EventMaker, PipelineSettings, SourceState

    clf = open_classifier(bundle_path)
    cfg = clf.bundle.features
    audio = load_audio(clip, cfg.sample_rate)
    window = audio[: cfg.window_samples]

    def ours() -> None:
        clf.predict(window_features(window, cfg)[None])

    settings = PipelineSettings()
    state = SourceState("bench", clf, settings)
    maker = EventMaker(clf, settings)
    win = state.windower.push(window, cfg.sample_rate)[0]

    def pipeline() -> None:
        maker.events([state._prepare(win)])

    import librosa
    import keras

    model = keras.saving.load_model(Path(bundle_path) / "model.keras", compile=False)

    def tutorial() -> None:
        m = librosa.feature.mfcc(y=window, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
        model.predict(m.T[np.newaxis, ...], verbose=0)

    for fn in (ours, pipeline, tutorial):  # warm up
        for _ in range(5):
            fn()
    o, p, t, speedups = [], [], [], []
    rounds = max(3, repeats)
    import time

    for _ in range(rounds):  # interleaved rounds: tutorial, then (once TF's threads are idle) ours, pipeline
        c = time_ms(tutorial, max(10, n // (4 * rounds)))
        time.sleep(0.5)
        a = time_ms(ours, n // rounds + 1)
        b = time_ms(pipeline, n // rounds + 1)
        o += a
        p += b
        t += c
        speedups.append(statistics.median(c) / statistics.median(a))
    return {"ours_ms": o, "pipeline_ms": p, "tutorial_ms": t, "speedups": speedups}


if __name__ == "__main__":
    result = _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
