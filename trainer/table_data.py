"""Reading a GTZAN feature table and the lists that say which of its tracks to use.

:func:`read_table` reads the Kaggle ``features_30_sec.csv`` layout (one row per 30-s GTZAN
track, Tzanetakis & Cook 2002); :func:`read_filtered_split` the artist-filtered lists of
Kereliuk, Sturm & Larsen (2015); :func:`training_exclusions` the ids never to train on
(our test clips and the data folder's ``reserved-ids.txt``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import numpy as np

from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS
from genrecast.daemon.level import LEVEL_MODES, normalise_level
from genrecast.trainer.dataset import AUDIO_SUFFIXES, normalise_track_id
from genrecast.trainer.splits import RESERVED_IDS_FILE, read_list, reserved_ids_near

log = logging.getLogger(__name__)

#: Table columns the daemon cannot compute from audio yet (HPSS and tempo).
EXPENSIVE_COLUMNS = ("harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var", "tempo")

#: Where the artist-filtered lists live in the shared data folder, relative to it.
FILTERED_SPLIT_SUBDIR = Path("splits/jongpillee_music_dataset_split/GTZAN_split")


@dataclass(frozen=True)
class Table:
    """Rows of a feature table: track ids, features, sorted labels and label indices."""

    ids: np.ndarray
    """Track ids such as ``blues.00000`` (one per row)."""
    x: np.ndarray
    """rows x columns, float64."""
    y: np.ndarray
    """Label index of every row (into ``labels``)."""
    labels: tuple[str, ...]
    """Sorted genre names."""
    columns: tuple[str, ...]
    """Feature column names, in ``x`` order."""
    sha256: str
    """Digest of the CSV file's bytes."""

    def subset(self, mask: np.ndarray) -> "Table":
        return replace(self, ids=self.ids[mask], x=self.x[mask], y=self.y[mask])

    def without(self, ids: Iterable[str]) -> "Table":
        """The rows whose track ids are not in ``ids``."""
        return self.subset(~np.isin(self.ids, sorted(ids)))


track_id = normalise_track_id  # one rule for table rows, split lists and file names


def check_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """Validate requested columns: known to the daemon's summary features, no duplicates."""
    columns = tuple(columns)
    expensive = [c for c in columns if c in EXPENSIVE_COLUMNS]
    if expensive:
        raise ValueError(
            f"columns {expensive} (harmonic/percussive and tempo) are in the table but the daemon cannot compute "
            "them from audio yet, so a bundle trained on them could not run; leave them out"
        )
    unknown = [c for c in columns if c not in DEFAULT_SUMMARY_COLUMNS]
    if unknown:
        raise ValueError(f"unknown summary columns {unknown}; choose from genrecast.daemon.features.DEFAULT_SUMMARY_COLUMNS")
    if len(set(columns)) != len(columns) or not columns:
        raise ValueError("columns must be a non-empty list without duplicates")
    return columns


def read_table(csv_path: str | Path, columns: Iterable[str] = DEFAULT_SUMMARY_COLUMNS, level: str = "absolute") -> Table:
    """Read a GTZAN-style feature table (``filename``, feature columns, ``label``); with
    ``level="normalised"`` its rows go through the daemon's own
    :func:`genrecast.daemon.level.normalise_level` (exact: see there)."""
    csv_path = Path(csv_path)
    columns = check_columns(columns)
    raw = csv_path.read_bytes()
    try:  # utf-8-sig: a table saved again by Excel or Notepad ("CSV UTF-8") starts with a byte-order mark
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{csv_path} is not UTF-8 text (byte {exc.start}); give the GTZAN feature table as CSV, "
                         "e.g. ../shared/data/reference/features_30_sec.csv") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in ("filename", "label", *columns) if c not in header]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ValueError(f"{csv_path} lacks {len(missing)} of the feature table's columns ({shown}); give the GTZAN "
                         "feature table, e.g. ../shared/data/reference/features_30_sec.csv")
    ids, rows, names = [], [], []
    for n, row in enumerate(reader, start=2):
        try:
            rows.append([float(row[c]) for c in columns])
        except (TypeError, ValueError):
            raise ValueError(f"{csv_path} line {n}: a feature value is not a number") from None
        ids.append(track_id(row["filename"]))
        names.append(row["label"].strip())
    if len(set(ids)) != len(ids):
        raise ValueError(f"{csv_path} names a track twice; expected one row per track (features_30_sec.csv)")
    x = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{csv_path} holds non-finite feature values")
    if level == "normalised":
        x = normalise_level(x, columns)
    elif level != "absolute":
        raise ValueError(f"level must be one of {LEVEL_MODES}, not {level!r}")
    labels = tuple(sorted(set(names)))
    if len(labels) < 2:
        raise ValueError(f"{csv_path} has fewer than 2 labels")
    index = {label: i for i, label in enumerate(labels)}
    return Table(
        ids=np.asarray(ids),
        x=x,
        y=np.asarray([index[name] for name in names], dtype=np.int64),
        labels=labels,
        columns=columns,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def ids_in_dir(directory: str | Path) -> set[str]:
    """Track ids of every audio file in a genre-folder tree (e.g. ``gtzan-sample``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"exclude folder {directory} does not exist")
    return {track_id(p.name) for p in directory.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES}


def training_exclusions(table: Path, exclude_dir: Path | None) -> set[str]:
    """Ids never to train on: the tracks in ``exclude_dir`` (our test clips) and the
    reserved ids of the data folder that holds ``table`` (:func:`splits.reserved_ids_near`)."""
    exclude = ids_in_dir(exclude_dir) if exclude_dir is not None else set()
    reserved = reserved_ids_near(table)
    if reserved:
        log.info("leaving out the %d reserved ids of %s", len(reserved), RESERVED_IDS_FILE)
    return exclude | reserved


def read_filtered_split(splits_dir: str | Path) -> tuple[set[str], set[str]]:
    """(train, test) track ids of the artist-filtered lists: train + valid → train, test → test."""
    splits_dir = Path(splits_dir)
    parts = {}
    for part in ("train", "valid", "test"):
        path = splits_dir / f"{part}_filtered.txt"
        if not path.is_file():
            raise ValueError(f"{splits_dir} lacks {path.name} (the artist-filtered GTZAN lists)")
        parts[part] = read_list(path)
    train = parts["train"] | parts["valid"]
    if train & parts["test"]:
        raise ValueError(f"the lists in {splits_dir} put {len(train & parts['test'])} tracks on both sides")
    return train, parts["test"]



def default_splits_dir(table: Path) -> Path | None:
    """The artist-filtered lists beside a table in the shared data layout, if there."""
    candidate = Path(table).resolve().parent.parent / FILTERED_SPLIT_SUBDIR
    return candidate if candidate.is_dir() else None
