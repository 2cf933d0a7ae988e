"""How much the 13-clip check of the default bundle depends on the training seed.

For a table configuration, trains the shipped model (every table row but the test clips'
and the reserved ids, level-normalised columns as the shipped bundle) with
seeds 0..N-1 and classifies the 13 full gtzan-sample clips (ids outside 00001-00050) from
their audio, through the daemon's own feature code (whole-clip statistics, which the
rolling 30-s context reproduces). Nothing here chooses a model: it shows the spread of the
check for a configuration fixed beforehand, next to the same models on the table's own
rows of those clips.

    .venv/bin/python scripts/clip_seed_spread.py --config h256x128-d0.3-l20.001-n0-m5-e100 --seeds 10
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from genrecast.daemon.audio import load_audio
from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig, clip_summary
from genrecast.trainer.table import (
    SELECTION_GRID, fit, predict, read_table, standardise_stats, track_id, training_exclusions,
)

DATA = Path(os.environ.get("GENRECAST_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def full_clips(sample_dir: Path) -> dict[str, Path]:
    """The gtzan-sample clips whose ids are outside the excerpt ids 00001-00050."""
    clips = {track_id(p.name): p for p in sorted(sample_dir.glob("*/*.*"))}
    return {t: p for t, p in clips.items() if not 1 <= int(t.split(".")[1]) <= 50}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a label from SELECTION_GRID")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    config = {cfg.label(): cfg for cfg in SELECTION_GRID}[args.config]
    csv = DATA / "reference" / "features_30_sec.csv"
    table = read_table(csv, level="normalised")
    sample = DATA / "gtzan-sample"
    pool = table.without(training_exclusions(csv, sample))
    clips = full_clips(sample)
    cfg = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, context_seconds=30.0, window_seconds=3.0,
                        level="normalised")
    audio_rows = np.stack([clip_summary(load_audio(p, cfg.sample_rate), cfg) for p in clips.values()]).astype(np.float64)
    table_rows = table.x[[int(np.flatnonzero(table.ids == t)[0]) for t in clips]]
    truth = np.array([table.labels.index(t.split(".")[0]) for t in clips])
    mean, std = standardise_stats(pool.x)
    scores = {"audio": [], "table rows": []}
    for seed in range(args.seeds):
        model, _ = fit(config, (pool.x - mean) / std, pool.y, len(table.labels), seed=seed)
        right = {name: predict(model, (rows - mean) / std).argmax(axis=1) == truth
                 for name, rows in (("audio", audio_rows), ("table rows", table_rows))}
        for name, ok in right.items():
            scores[name].append(int(ok.sum()))
        missed = [t for t, ok in zip(clips, right["audio"]) if not ok]
        print(f"seed {seed}: {scores['audio'][-1]}/13 from audio, {scores['table rows'][-1]}/13 from table rows; missed {missed}", flush=True)
    for name, got in scores.items():
        print(f"{config.label()} {name}: mean {np.mean(got):.2f}/13, range {min(got)}-{max(got)}, "
              f"at least 8 in {sum(g >= 8 for g in got)} of {len(got)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
