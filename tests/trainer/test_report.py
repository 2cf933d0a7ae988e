"""The bundle report's text."""

from __future__ import annotations

import numpy as np

from genrecast.trainer.report import compute_metrics, render_markdown


def test_a_genre_without_test_tracks_is_not_tested_rather_than_zero() -> None:
    """report.md showed `0.00 | 0.00 | 0.00 | 0` for a genre no test track had, which reads as a
    measured zero."""
    labels = ["jazz", "metal", "pop"]
    y_true = np.array([0, 0, 1, 1])
    y_prob = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.1, 0.7, 0.2]])
    metrics = compute_metrics(labels=labels, y_true=y_true, y_prob=y_prob)
    text = render_markdown(metrics, labels)
    per_genre = text[text.index("## Per genre"):text.index("## Confusion")]
    rows = {line.split(" | ")[0].strip("| "): line for line in per_genre.splitlines() if line.startswith("| ")}
    assert rows["pop"] == "| pop | 0.00 | — | — | 0 (not tested) |"  # one window was called pop: a precision of 0
    assert rows["jazz"].startswith("| jazz | 1.00 | 0.50 |")
    labels_b = ["jazz", "metal", "rock"]
    untested_unpredicted = render_markdown(compute_metrics(labels=labels_b, y_true=y_true, y_prob=y_prob[:, [0, 1, 1]] * [1, 1, 0]),
                                           labels_b)
    assert "| rock | — | — | — | 0 (not tested) |" in untested_unpredicted
