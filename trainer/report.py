"""Evaluation that does not fool its user: metrics.json, report.md and plots.

Per-window and per-track accuracy (a track's prediction is the mean of its
windows' probabilities), per-genre precision/recall/F1, the confusion matrix,
and the split with its sizes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from genrecast.trainer.out_dir import write_whole

log = logging.getLogger(__name__)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Rows: true label, columns: predicted label."""
    cm = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def per_label_scores(cm: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every label from a confusion matrix."""
    out = {}
    for i, label in enumerate(labels):
        tp = float(cm[i, i])
        predicted = float(cm[:, i].sum())
        actual = float(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": int(actual)}
    return out


def track_level(track_ids: np.ndarray, y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Average window probabilities per track: (true labels, mean probabilities, track ids)."""
    track_ids = np.asarray(track_ids)
    unique = sorted(set(track_ids.tolist()))
    index = {t: i for i, t in enumerate(unique)}
    rows = np.array([index[t] for t in track_ids])
    probs = np.zeros((len(unique), y_prob.shape[1]))
    np.add.at(probs, rows, y_prob)
    counts = np.bincount(rows, minlength=len(unique))[:, None]
    truth = np.zeros(len(unique), dtype=int)
    truth[rows] = y_true
    return truth, probs / counts, unique


def compute_metrics(
    labels: list[str], y_true: np.ndarray, y_prob: np.ndarray, track_ids: np.ndarray | None = None
) -> dict[str, Any]:
    """Per-window metrics, and per-track metrics when ``track_ids`` is given."""
    y_true = np.asarray(y_true, int)
    y_prob = np.asarray(y_prob, float)
    y_pred = y_prob.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    metrics: dict[str, Any] = {
        "window_accuracy": round(float((y_pred == y_true).mean()), 4) if len(y_true) else 0.0,
        "windows": int(len(y_true)),
        "per_genre_window": per_label_scores(cm, labels),
        "confusion_window": cm.tolist(),
    }
    if track_ids is not None:
        t_true, t_prob, _ = track_level(track_ids, y_true, y_prob)
        t_pred = t_prob.argmax(axis=1)
        t_cm = confusion_matrix(t_true, t_pred, len(labels))
        metrics.update(
            track_accuracy=round(float((t_pred == t_true).mean()), 4) if len(t_true) else 0.0,
            tracks=int(len(t_true)),
            per_genre_track=per_label_scores(t_cm, labels),
            confusion_track=t_cm.tolist(),
        )
    return metrics


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Save the confusion matrix as a PNG (counts in each cell)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > peak / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    """Training curves as the tutorial's ``plot_history``: accuracy and loss, train vs validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        if key in history:
            top.plot(history[key], label=label)
    top.set_ylabel("accuracy")
    top.legend(loc="lower right")
    top.set_title("training curves")
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history:
            bottom.plot(history[key], label=label)
    bottom.set_ylabel("loss")
    bottom.set_xlabel("epoch")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _scores_table(scores: dict[str, dict[str, float]], predicted: dict[str, int]) -> list[str]:
    """The per-genre rows; a genre with no test item has no recall or F1 (—, not a measured 0.00), and
    a precision only where something was predicted as it (``predicted``: counts per label)."""
    lines = ["| genre | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, s in scores.items():
        if s["support"]:
            lines.append(f"| {label} | {s['precision']:.2f} | {s['recall']:.2f} | {s['f1']:.2f} | {s['support']} |")
        else:
            precision = f"{s['precision']:.2f}" if predicted.get(label) else "—"
            lines.append(f"| {label} | {precision} | — | — | 0 (not tested) |")
    return lines


def render_markdown(metrics: dict[str, Any], labels: list[str], title: str = "genrecast evaluation") -> str:
    """A short human report of ``metrics``."""
    split = metrics.get("split", {})
    lines = [f"# {title}", ""]
    lines.append(f"Split: **{split.get('name', '?')}** — sizes: " + ", ".join(f"{k} {v}" for k, v in split.get("sizes", {}).items()))
    lines.append("")
    lines.append(f"- per-window accuracy: **{metrics['window_accuracy']:.3f}** ({metrics['windows']} windows)")
    if "track_accuracy" in metrics:
        lines.append(f"- per-track accuracy: **{metrics['track_accuracy']:.3f}** ({metrics['tracks']} tracks; a track's verdict is the mean of its windows' probabilities)")
    for key, value in metrics.get("extra", {}).items():
        lines.append(f"- {key}: {json.dumps(value) if not isinstance(value, (int, float, str)) else value}")
    if split.get("warning"):
        lines += ["", f"> **Warning:** {split['warning']}"]
    scores = metrics.get("per_genre_track") or metrics["per_genre_window"]
    lines += ["", "## Per genre (" + ("tracks" if "per_genre_track" in metrics else "windows") + ")", ""]
    cm = metrics.get("confusion_track") or metrics["confusion_window"]
    lines += _scores_table(scores, {label: sum(row[i] for row in cm) for i, label in enumerate(labels)})
    lines += ["", "## Confusion matrix (rows true, columns predicted)", "", "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, cm):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "Plots: `confusion.png`" + (", `curves.png`" if metrics.get("has_curves") else "") + "."]
    return "\n".join(lines) + "\n"


def write_report(
    out_dir: Path,
    *,
    labels: list[str],
    y_true: np.ndarray,
    y_prob: np.ndarray,
    split_name: str,
    split_sizes: dict[str, int],
    track_ids: np.ndarray | None = None,
    history: dict[str, list[float]] | None = None,
    extra: dict[str, Any] | None = None,
    warning: str | None = None,
    title: str = "genrecast evaluation",
) -> dict[str, Any]:
    """Write ``metrics.json``, ``report.md``, ``confusion.png`` (and ``curves.png``
    when ``history`` is given) into ``out_dir``; return the metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(labels, y_true, y_prob, track_ids)
    metrics["split"] = {"name": split_name, "sizes": split_sizes, **({"warning": warning} if warning else {})}
    if extra:
        metrics["extra"] = extra
    if history:
        metrics["has_curves"] = True
    # metrics.json first, whole: a report cut short (a full disk, Ctrl-C) leaves it with its plot,
    # so `evaluate --out` run again knows the folder for its own (check_report_dir)
    write_whole(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    cm = np.asarray(metrics.get("confusion_track") or metrics["confusion_window"])
    plot_confusion(cm, labels, out_dir / "confusion.png", f"{split_name} split, " + ("tracks" if "confusion_track" in metrics else "windows"))
    if history:
        plot_history(history, out_dir / "curves.png")
    # a name that is not UTF-8 (a Latin-1 file or folder name from an old disk) is written as \udcXX
    (out_dir / "report.md").write_text(render_markdown(metrics, labels, title), encoding="utf-8", errors="backslashreplace")
    return metrics
