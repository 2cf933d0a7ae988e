"""Checks shared by the tests of bundles that carry a robustness table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def assert_conditions_table(bundle_dir: Path, clips: list[str]) -> None:
    """The bundle's metrics.json and report.md carry a sane table of the quick conditions on ``clips``."""
    from genrecast.trainer import conditions as cond
    from genrecast.trainer.robustness import PLOT_FILE

    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    table = metrics["conditions"]
    assert table["clips"] == clips and len(clips) >= 2
    rows = table["conditions"]
    assert [r["name"] for r in rows] == list(cond.QUICK)
    for r in rows:
        assert r["tracks"] == len(clips) and 0 <= r["right"] <= r["tracks"] and r["windows"] >= 9 * len(clips), r
        assert r["track_accuracy"] == pytest.approx(r["right"] / r["tracks"], abs=1e-4)
        assert 0 <= r["differs_from_clean"] <= r["tracks"] and 0 <= r["window_accuracy"] <= 1
        verdicts = table["verdicts"][r["name"]]
        assert r["right"] == sum(verdicts[c] == table["labels"][c] for c in clips)
    assert rows[0]["differs_from_clean"] == 0
    report = (bundle_dir / "report.md").read_text()
    assert "## Under capture conditions" in report
    for r in rows:
        assert f"| {r['name']} | {r['right']} | {r['track_accuracy']:.3f} |" in report
    assert (bundle_dir / PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
