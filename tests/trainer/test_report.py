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


def test_a_report_cut_short_by_a_full_disk_is_still_its_own(tmp_path, monkeypatch) -> None:
    """`evaluate --out DIR` on a full disk failed in the plot, leaving a partial confusion.png and no
    metrics.json; once space was freed, the same command was refused: DIR "holds confusion.png that
    genrecast evaluate did not write". metrics.json is written first (whole or not at all), so what a
    cut-short report leaves is known for evaluate's own."""
    import errno
    from pathlib import Path

    import pytest

    from genrecast.trainer import report
    from genrecast.trainer.out_dir import check_report_dir

    def full(path: Path) -> None:
        Path(path).write_bytes(b"\x89PNG")  # what a savefig cut short leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "plot_confusion", lambda cm, labels, path, title: full(path))
    out = tmp_path / "eval"
    with pytest.raises(OSError):
        report.write_report(out, labels=["a", "b"], y_true=np.array([0, 1]), y_prob=np.array([[0.9, 0.1], [0.2, 0.8]]),
                            split_name="all", split_sizes={"test": 2})
    assert (out / "confusion.png").exists() and not (out / "metrics.json.tmp").exists()
    check_report_dir(out)  # the retry is not refused

