"""Compare music-detector settings on the validation files, as the shipped settings were chosen.

Each candidate of :data:`CANDIDATES` is trained on the detector's training windows
(:func:`genrecast.trainer.detector.prepare`, features cached) and scored by its mean
cross-entropy on the validation windows (:func:`genrecast.trainer.detector.validation_loss`):
the gated validation shares sit near 100 % for every candidate, so they cannot rank them.
The test files are not looked at. One JSON line per candidate, lowest loss wins:

    .venv/bin/python scripts/detector_selection.py ../shared/data    # about 1 min per candidate, warm cache

It runs on today's detector features (``DETECTOR_HOP`` 1024: the shipped settings score 0.259);
the figures in ``DetectorTraining``'s docstring were taken on 512-sample hops, before the hop changed.
Each candidate trains in its own process (a fit's numbers depend on what the process trained
before), with the environment of ``scripts/make_default_bundle.sh`` (one thread, fixed seeds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

from genrecast.trainer.detector import DetectorTraining, _predict, fit, prepare, validation_loss
from genrecast.trainer.detector_eval import choose_gate

ONE_THREAD = {"PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
              "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}

#: The candidates: the first detector's settings, parallel members (an ensemble in one model),
#: more dropout, wider layers, fewer epochs. The last two were added after a first round of the
#: others; the exploratory runs also printed test figures, but the rule is the validation loss.
CANDIDATES = {
    "h64x32-d0.3-m1-e100": DetectorTraining(hidden=(64, 32), dropout=0.3, members=1, epochs=100),
    "h64x32-d0.3-m5-e100": DetectorTraining(hidden=(64, 32), dropout=0.3, members=5, epochs=100),
    "h64x32-d0.5-m5-e100": DetectorTraining(hidden=(64, 32), dropout=0.5, members=5, epochs=100),
    "h128x64-d0.5-m5-e100": DetectorTraining(hidden=(128, 64), dropout=0.5, members=5, epochs=100),
    "h64x32-d0.5-m5-e60": DetectorTraining(hidden=(64, 32), dropout=0.5, members=5, epochs=60),
}


def score(data: str, name: str, seed: int = 0) -> None:
    """Train candidate ``name`` and print its validation figures as one JSON line."""
    prepared = prepare(data, seed=seed)
    model = fit(prepared.x, prepared.y, replace(CANDIDATES[name], seed=seed))
    valid = _predict(model, prepared.valid, prepared.mean, prepared.std)
    gate, choice = choose_gate(_predict(model, prepared.valid_conditions, prepared.mean, prepared.std))
    print(json.dumps({"settings": name, "validation_loss": round(validation_loss(valid), 4),
                      "gate": [gate.enter, gate.leave], "validation_shares": choice["validation_accuracy"]}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        score(sys.argv[2], sys.argv[3])
    else:
        data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
        for name in CANDIDATES:
            subprocess.run([sys.executable, __file__, "--one", data, name], env={**os.environ, **ONE_THREAD}, check=True)
