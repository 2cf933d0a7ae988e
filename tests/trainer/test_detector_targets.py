"""The shipped music detector on its test files (never trained on; its settings chosen on validation),
recomputed from the real audio as the trainer cuts it, under every test condition (each file's
room, codec and noise drawn from the same seeds): the figures are the ones its report states, and
the issue's window-level targets hold but for what the report names (speech in the room, 3.9
points under its clean figure though above 95 %)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon.bundle import default_bundle_path, load_bundle
from genrecast.daemon.detector import MusicDetector
from genrecast.trainer import detector as D
from genrecast.trainer.detector_data import inventory
from genrecast.trainer.detector_eval import figures_by_condition, misses, with_silence_gate


@pytest.mark.slow
def test_the_shipped_detector_meets_its_targets_on_the_test_files(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))  # a fresh cache: really computed
    spec = load_bundle(default_bundle_path()).detector
    cfg = spec.features
    items = [i for i in inventory(data_dir) if i.split == "test"]
    assert {i.label for i in items} == {"music", "speech", "other"}
    files = D.test_windows(items, cfg, 0, 2)  # as the build cuts and seeds them
    model = MusicDetector(spec)  # LiteRT, as the daemon runs it (the trainer judged the Keras model)
    files = [dataclasses.replace(f, probabilities=model.predict(f.features) if len(f.features) else np.zeros((0, 3)))
             for f in files]
    figures = figures_by_condition(with_silence_gate(files, spec.metrics["silence_dbfs"]), spec.gate)
    assert list(figures) == [c.name for c in D.TEST_CONDITIONS]
    for name, fig in figures.items():
        recorded = spec.metrics["test"][name]
        for kind in ("speech", "environment", "music"):
            assert fig[kind]["windows"] == recorded[kind]["windows"] > 0, (name, kind)
            # the same windows; LiteRT against Keras may turn at most one borderline window
            assert abs(fig[kind]["share"] - recorded[kind]["share"]) <= 1.01 / fig[kind]["windows"], (name, kind)
    # the targets: speech and environment kept out under every condition, music kept clean and
    # within 3 points of that under every condition (report.md names what else misses: the
    # stricter reading's room speech, 3.9 points under its clean figure)
    clean_music = figures["clean"]["music"]["share"]
    assert clean_music >= 0.97
    for name, fig in figures.items():
        assert fig["speech"]["share"] >= 0.95 and fig["environment"]["share"] >= 0.90, name
        assert clean_music - fig["music"]["share"] <= 0.03, name
    assert [m for m in misses(figures) if not m.startswith(("speech under", "environment under"))] == []
