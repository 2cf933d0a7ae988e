"""Train / validation / test splits that never put windows of one track on two sides.

* ``track`` (default): stratified by genre, grouped by track.
* split lists (``--split-lists DIR``): train/valid/test lists of file names,
  e.g. the artist-filtered GTZAN lists of Kereliuk, Sturm & Larsen (2015).
* ``segment``: the tutorial's random split of windows; siblings of every test
  window are trained on, so its accuracy is inflated. Kept only to reproduce
  that figure, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from genrecast.trainer.dataset import normalise_track_id

SEGMENT_WARNING = (
    "segment split: windows of the same track are on both sides, so this accuracy is inflated "
    "and says little about unseen music; use --split track or --split-lists for an honest figure"
)


#: The ``--split`` names of ``train``, of ``evaluate``, and of ``evaluate --conditions``.
TRAIN_SPLITS = ("track", "segment")
EVALUATE_SPLITS = ("recorded", "track", "segment", "all")
CONDITION_SPLITS = ("recorded", "all")


def choices(names: Sequence[str]) -> str:
    """``("recorded", "track", "all")`` as ``recorded, track or all``, for messages."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else list(names))


class SplitError(ValueError):
    """A split cannot be made as asked."""


@dataclass(frozen=True)
class Split:
    """Boolean masks over windows, and the split's name."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    warning: str | None = None

    def sizes(self, track_ids: np.ndarray) -> dict[str, int]:
        out = {}
        for part in ("train", "valid", "test"):
            mask = getattr(self, part)
            out[f"{part}_windows"] = int(mask.sum())
            out[f"{part}_tracks"] = len(set(track_ids[mask].tolist()))
        return out

    def test_tracks(self, track_ids: np.ndarray) -> list[str]:
        return sorted(set(track_ids[self.test].tolist()))

    def trained_tracks(self, track_ids: np.ndarray) -> list[str]:
        """Tracks with a window in training or validation (with a segment split: nearly all)."""
        return sorted(set(track_ids[self.train | self.valid].tolist()))


def _masks(track_ids: np.ndarray, parts: dict[str, set[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.isin(track_ids, sorted(parts[p])) for p in ("train", "valid", "test"))  # type: ignore[return-value]


def track_split(
    y: np.ndarray, track_ids: np.ndarray, *, test_fraction: float = 0.2, valid_fraction: float = 0.15, seed: int = 0,
    labels: Sequence[str] | None = None,
) -> Split:
    """Stratified by label, grouped by track: every track's windows on one side only. A genre gives
    test tracks only from 3 tracks; the split's ``warning`` names those that give none (by
    ``labels``, the names of ``y``'s indices, where given). Raises :class:`SplitError` when no
    genre gives test or validation tracks."""
    rng = np.random.default_rng(seed)
    parts: dict[str, set[str]] = {"train": set(), "valid": set(), "test": set()}
    track_label = {t: int(l) for t, l in zip(track_ids.tolist(), y.tolist())}
    for label in sorted(set(track_label.values())):
        tracks = sorted(t for t, l in track_label.items() if l == label)
        rng.shuffle(tracks)
        n_test = max(1, int(round(len(tracks) * test_fraction))) if len(tracks) >= 3 else 0
        n_valid = max(1, int(round(len(tracks) * valid_fraction))) if len(tracks) - n_test >= 2 else 0
        parts["test"].update(tracks[:n_test])
        parts["valid"].update(tracks[n_test : n_test + n_valid])
        parts["train"].update(tracks[n_test + n_valid :])
    if not parts["test"] or not parts["valid"]:
        raise SplitError("too few tracks for a track split: a genre gives test tracks only from 3 tracks (and validation "
                         "ones from 2 left after those), and none does here; add tracks or use --split-lists")
    untested = sorted(set(track_label.values()) - {track_label[t] for t in parts["test"]})
    warning = None
    if untested:
        names = [labels[i] if labels is not None else str(i) for i in untested]
        warning = (f"{len(untested)} of {len(set(track_label.values()))} genres have fewer than 3 tracks, so none of "
                   f"their tracks is tested ({', '.join(names)}): the test figures leave them out")
    return Split("track", *_masks(track_ids, parts), warning=warning)


def read_list(path: Path) -> set[str]:
    """Track ids named in a split list file (one file name per line; ``#`` comments). UTF-8, with or
    without the byte-order mark that Windows editors write (it made the first line's id another)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return {normalise_track_id(line) for line in lines if line.strip() and not line.lstrip().startswith("#")}


#: The file of GTZAN ids kept for evaluation outside the project (``../shared/data``):
#: never trained on, in any form (table rows, excerpts, clips).
RESERVED_IDS_FILE = "reserved-ids.txt"


def reserved_ids_near(path: Path) -> set[str]:
    """The reserved ids of the data folder that holds ``path`` (a file or folder inside it,
    such as ``reference/features_30_sec.csv``): the first ``reserved-ids.txt`` found in
    ``path``'s folder or one of its parents; none if there is no such file."""
    path = Path(path).resolve()
    for folder in [path if path.is_dir() else path.parent, *path.parents]:
        candidate = folder / RESERVED_IDS_FILE
        if candidate.is_file():
            return read_list(candidate)
    return set()


def _find_list(directory: Path, part: str) -> Path | None:
    names = {"train": ("train",), "valid": ("valid", "val", "evaluate"), "test": ("test",)}[part]
    found = sorted(
        p for p in directory.glob("*.txt") if any(p.stem.lower().startswith(n) or p.stem.lower().endswith(n) or f"{n}_" in p.stem.lower() for n in names)
        and "group" not in p.stem.lower() and "label" not in p.stem.lower()
    )
    if len(found) > 1:
        raise SplitError(f"{directory} has several {part} lists ({', '.join(p.name for p in found)}); point --split-lists at a folder with one of each")
    return found[0] if found else None


def list_split(y: np.ndarray, track_ids: np.ndarray, directory: str | Path, *, seed: int = 0) -> tuple[Split, dict[str, int]]:
    """A split from train/valid/test list files in ``directory``.

    Without a valid list, validation tracks are drawn from the train list
    (grouped by track). Returns the split and counts of listed tracks that the
    dataset lacks (per part).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SplitError(f"split lists folder {directory} does not exist")
    files = {part: _find_list(directory, part) for part in ("train", "valid", "test")}
    if files["train"] is None or files["test"] is None:
        raise SplitError(f"{directory} needs a train and a test list (*train*.txt, *test*.txt)")
    parts = {part: read_list(path) if path else set() for part, path in files.items()}
    overlap = (parts["train"] & parts["test"]) | (parts["valid"] & parts["test"]) | (parts["train"] & parts["valid"])
    if overlap:
        raise SplitError(f"split lists in {directory} name {len(overlap)} tracks on two sides, e.g. {sorted(overlap)[0]}")
    present = set(track_ids.tolist())
    missing = {part: len(ids - present) for part, ids in parts.items()}
    if not parts["valid"]:
        rng = np.random.default_rng(seed)
        train_tracks = sorted(parts["train"] & present)
        rng.shuffle(train_tracks)
        n_valid = max(1, len(train_tracks) // 7)
        parts["valid"] = set(train_tracks[:n_valid])
        parts["train"] = set(train_tracks[n_valid:])
    split = Split(f"lists:{directory.name}", *_masks(track_ids, parts))
    if not split.train.any() or not split.test.any():
        raise SplitError(f"the split lists in {directory} match no tracks of this dataset on the train or test side")
    return split, missing


def segment_split(n_windows: int, *, test_fraction: float = 0.25, valid_fraction: float = 0.2, seed: int = 0) -> Split:
    """The tutorial's random split of windows (inflated; see :data:`SEGMENT_WARNING`)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_windows)
    n_test = int(n_windows * test_fraction)
    n_valid = int((n_windows - n_test) * valid_fraction)
    masks = [np.zeros(n_windows, dtype=bool) for _ in range(3)]
    masks[2][order[:n_test]] = True
    masks[1][order[n_test : n_test + n_valid]] = True
    masks[0][order[n_test + n_valid :]] = True
    return Split("segment", *masks, warning=SEGMENT_WARNING)


def tracks_split(track_ids: np.ndarray, test_tracks: list[str], name: str) -> Split:
    """Re-create a recorded split from its test track ids (for ``genrecast evaluate``)."""
    test = np.isin(track_ids, test_tracks)
    return Split(name, ~test, np.zeros_like(test), test)
