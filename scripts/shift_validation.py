"""Validation of the default model's shift augmentation on held-out audio, grouped by clip.

The 56 full clips that give shifts (genrecast.trainer.shifts: gtzan-more and gtzan-sample's
6 non-evaluation clips) are dealt into 5 groups by genre. For each group, the table model is
trained without those clips' table rows and without their shifts, then classifies their real
audio under the fixed conditions of ``shifts.VALIDATION`` and under the 12 random capture
conditions drawn per clip (verdict = mean over the contexts 3, 9, 18 and 30 s). The 13
evaluation clips are never used. Prints one JSON line per setting ``COPIES,NEIGHBOURS,EPOCHS[,SVC_C]``
(0,0,100 is the model without augmentation; SVC_C 0 is the MLPs without the SVC member, and
left out it is the default's):

    .venv/bin/python scripts/shift_validation.py 0,0,100 4,5,40 4,56,40 4,5,60 8,5,24
    .venv/bin/python scripts/shift_validation.py 4,5,40,0 4,5,40,3   # the SVC member's comparison

About 2 min per setting without augmentation, 4 with, on 2 cores, once the shifts are cached
(`scripts/make_default_bundle.sh` measures them, ~15 min cold).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from genrecast.daemon.cache import cache_dir
from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig
from genrecast.trainer import shifts as S
from genrecast.trainer import table as T
from genrecast.trainer.splits import reserved_ids_near

DATA = Path(os.environ.get("GENRECAST_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
GROUPS = 5


def validate(copies: int, neighbours: int, epochs: int, svc_c: float = T.DEFAULT_MLP.svc_c, seed: int = 0) -> dict:
    csv = DATA / "reference" / "features_30_sec.csv"
    features = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, context_seconds=30.0, level="normalised")
    sh = S.measure_shifts(DATA, reserved_ids_near(csv) | set(S.EVALUATION_CLIPS), features, seed=seed, jobs=2,
                          cache_dir=cache_dir() / "shifts")
    table = T.read_table(csv, level="normalised")
    pool = table.without(T.training_exclusions(csv, DATA / "gtzan-sample"))
    labels = list(table.labels)
    truth = np.array([labels.index(g) for g in sh.genres])
    group = np.empty(len(sh.tracks), int)
    group[np.argsort(sh.genres, kind="stable")] = np.arange(len(sh.tracks)) % GROUPS
    aug = S.Augmentation(sh, copies=copies, neighbours=neighbours, epochs=epochs) if copies else None
    fixed_right = np.zeros(len(S.VALIDATION), int)
    random_right = random_n = 0
    for g in range(GROUPS):
        held = np.flatnonzero(group == g)
        train = pool.without(sh.tracks[held].tolist())
        model, _, mean, std = T.fit_rows(replace(T.DEFAULT_MLP, svc_c=svc_c), train.x, train.y, len(labels), seed=seed + g,
                                         test_ids=sh.tracks[held].tolist(), augmentation=aug, columns=train.columns)

        def verdicts(rows: np.ndarray) -> np.ndarray:  # (..., contexts, columns) -> (...) label indices
            prob = T.predict(model, (rows.reshape(-1, rows.shape[-1]) - mean) / std)
            return prob.reshape(*rows.shape[:-1], len(labels)).mean(axis=-2).argmax(axis=-1)

        fixed_right += (verdicts(sh.fixed[held]) == truth[held][:, None]).sum(axis=0)
        right = verdicts(sh.random[held]) == truth[held][:, None]
        random_right, random_n = random_right + int(right.sum()), random_n + right.size
    return {"copies": copies, "neighbours": neighbours, "epochs": epochs, "svc_c": svc_c, "clips": int(len(sh.tracks)),
            "right_per_condition": {c.name: int(v) for c, v in zip(S.VALIDATION, fixed_right)},
            "random_conditions_accuracy": round(random_right / random_n, 4)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    for spec in sys.argv[1:] or ["0,0,100", "4,5,40"]:
        copies, neighbours, epochs, *svc = spec.split(",")
        print(json.dumps(validate(int(copies), int(neighbours), int(epochs), *map(float, svc))), flush=True)
