"""Find the tracks of a genre dataset: one sub-folder per genre.

Accepts the Kaggle GTZAN layout (``genres_original/<genre>/<genre>.NNNNN.wav``),
the original (``genres/<genre>/*.au``) and any folder of genre sub-folders
holding files that ffmpeg decodes. Labels are the sorted folder names.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from genrecast.daemon.archive import AUDIO_SUFFIXES, walk_audio  # as classify searches folders

log = logging.getLogger(__name__)

KNOWN_ROOTS = ("genres_original", "genres", "Data/genres_original")


class DatasetError(ValueError):
    """The dataset folder cannot be used for training."""


@dataclass(frozen=True)
class Track:
    """One audio file of the dataset."""

    path: Path
    label: str
    track_id: str
    """:func:`normalise_track_id` of the file name, e.g. ``blues.00000`` (also for its pieces
    ``blues.00000.3.wav``): the unit splits group by (files of one genre with one id are one
    track; a name found under two genres gets its genre in front, ``country/1``, since one
    track is not two genres)."""


@dataclass(frozen=True)
class Dataset:
    root: Path
    labels: tuple[str, ...]
    tracks: tuple[Track, ...]

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def without(self, track_ids: set[str]) -> Dataset:
        """The same dataset less the files of ``track_ids`` (its labels unchanged)."""
        return Dataset(root=self.root, labels=self.labels, tracks=tuple(t for t in self.tracks if t.track_id not in track_ids))

    def fingerprint(self) -> str:
        """SHA-256 over every track's relative path and contents (short hex)."""
        digest = hashlib.sha256()
        for track in self.tracks:
            digest.update(os.fsencode(track.path.relative_to(self.root)))  # a Latin-1 name from an old disk too
            digest.update(file_digest(track.path).encode())
        return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """SHA-1 of a file's contents; for a file that cannot be read, ``unreadable:`` and the reason
    (extraction then skips and lists it, as it does an undecodable file)."""
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        return f"unreadable:{exc.strerror or exc}"
    return h.hexdigest()


def _genre_root(root: Path) -> Path:
    for name in KNOWN_ROOTS:
        if (root / name).is_dir():
            return root / name
    return root


def scan_dataset(root: str | Path, min_genres: int = 2) -> Dataset:
    """List the genre folders and their audio files (searched recursively, for the suffixes
    ``classify`` reads) under ``root``. A genre folder without audio is left out with a warning.

    Raises :class:`DatasetError` when there is no audio or fewer than ``min_genres`` genres
    (training needs two; evaluating a trained bundle, one).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset {root} is not a directory; pass a folder with one sub-folder per genre")
    base = _genre_root(root)
    found: list[tuple[Path, str, str]] = []
    for link in sorted(p for p in base.iterdir() if p.is_symlink() and not p.exists() and not p.name.startswith(".")
                       and p.suffix.lower() not in AUDIO_SUFFIXES):  # a genre folder's link to an unmounted disk
        log.warning("genre folder %s is a link to %s, which does not exist (a disk not mounted?); it is left out",
                    link, os.readlink(link))
    for genre_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (nested := _genre_root(genre_dir)) != genre_dir:  # ~/Downloads/archive/Data/genres_original: not one genre
            raise DatasetError(f"{genre_dir} is not a genre folder but a dataset of its own (its genre folders are in "
                               f"{nested}); give {genre_dir} as the dataset")
        files = [Path(f) for f in walk_audio(genre_dir)]
        if not files:
            log.warning("genre folder %s holds no audio files (its sub-folders searched too); it is left out", genre_dir)
            continue  # no genre: its name, whatever it is, is never used
        if genre_dir.name != genre_dir.name.encode("utf-8", "replace").decode():  # a lone surrogate: not UTF-8 on disk
            # a Latin-1 name from an old disk: the genre the bundle names, plots and publishes must be text
            raise DatasetError(f"genre folder {genre_dir}: its name is not UTF-8 text, and a genre is named after its "
                               "folder; rename the folder (convmv -f latin1 -t utf8 renames a whole disk's names)")
        found += [(f, genre_dir.name, normalise_track_id(f.name)) for f in files]
    genres_of: dict[str, set[str]] = {}
    for _, genre, tid in found:
        genres_of.setdefault(tid, set()).add(genre)
    tracks = [Track(path=f, label=genre, track_id=tid if len(genres_of[tid]) == 1 else f"{genre}/{tid}")
              for f, genre, tid in found]
    labels = tuple(sorted({t.label for t in tracks}))
    loose = loose_audio(base)  # a file's genre is its folder's name: these have none
    if loose and not tracks:
        genres = {normalise_track_id(name).split(".")[0] for name in loose}
        if genres == {base.name.lower()}:  # one genre's folder (genres/blues): its parent is the dataset
            raise DatasetError(
                f"dataset {root} is one genre's folder ({_count_files(loose)}, {_examples(loose)}); give the folder "
                f"that holds one such folder per genre ({base.parent})")
        example = loose[0]
        raise DatasetError(
            f"dataset {root} holds {_count_files(loose)} directly ({_examples(loose)}) but no genre sub-folders, and a "
            f"file's genre is the name of its folder; move each file into a folder named after its genre "
            f"({base / (normalise_track_id(example).split('.')[0] if _GTZAN_ID_PREFIX.match(example.lower()) else 'GENRE') / example})")
    if loose:
        log.warning("%s directly in %s (%s), in no genre folder, left out; move each into its genre's folder to use it",
                    _count_files(loose), base, _examples(loose))
    if not tracks:
        raise DatasetError(
            f"dataset {root} holds no audio files; expected <genre>/<file>.wav|.au|.mp3|... sub-folders (e.g. GTZAN's genres_original/)"
        )
    if len(labels) < min_genres:
        raise DatasetError(f"dataset {root} has only one genre ({labels[0]}); a classifier needs at least two genre folders")
    return Dataset(root=root, labels=labels, tracks=tuple(tracks))


def loose_audio(folder: Path) -> list[str]:
    """Names of the audio files right in ``folder`` (not hidden: as :func:`walk_audio` leaves them out)."""
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _count_files(names: list[str]) -> str:
    return f"{len(names)} audio file{'' if len(names) == 1 else 's'}"


def _examples(names: list[str], most: int = 3) -> str:
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


#: A GTZAN id at the start of a file name (``blues.00012``), not followed by a further digit.
_GTZAN_ID_PREFIX = re.compile(r"([a-z]+\.\d{5})(?!\d)")


def normalise_track_id(name: str) -> str:
    """The track a file, table row or list entry belongs to: ``blues/blues.00012.wav``,
    ``./blues_00012.wav`` and ``blues.00012.au`` all give ``blues.00012``, and so do the pieces
    and copies of that GTZAN clip: ``blues.00012.3.wav`` (Kaggle's 3-s segments),
    ``blues.00012 copy.wav``, ``blues.00012-2.flac``. They are one recording, so a split keeps
    them on one side. Any other name gives its stem, lower-case, ``_`` read as ``.``."""
    stem = Path(name.strip()).name
    for suffix in sorted(AUDIO_SUFFIXES, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = stem.replace("_", ".").lower()
    gtzan = _GTZAN_ID_PREFIX.match(stem)
    return gtzan.group(1) if gtzan else stem
