"""The music detector's data: which files are music, speech or other, and which split each is on.

Reads a folder laid out as ``../shared/data`` (see its README): ``music-speech/``,
``speech/``, ``environment/``, ``gtzan-sample/``, ``gtzan-more/``, ``gtzan-excerpts/``
and ``music/``. Splits are by *group*, never by window: a GTZAN id (its full clip and
its excerpt are one group), a speaker (the spoken digits, the voice-cloning clips), a
recording with its numbered siblings (``geography`` / ``geography1``) or a source
data set (each ``music/mirdata/*`` folder). GTZAN ids in ``reserved-ids.txt`` are left
out entirely.

Rule (fixed before any model was trained):

* ``gtzan-sample`` clips → test (all ten genres; also the genre model's held-out clips);
* ``gtzan-more`` clips → validation for a quarter of the ids (by hash), else train;
* excerpts → train, unless their id is on the validation or test side;
* the a cappella and solo-piano recordings of ``music/mirdata`` (vocadito, jingju
  a cappella, maestro, the jazz-trio stems) → test, so the hard cases are tested;
* every other group → train / validation / test at 60 / 20 / 20 by a hash of its name
  (environment sounds, the scarcest: 50 / 20 / 30).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrecast.trainer.splits import RESERVED_IDS_FILE, read_list
from genrecast.trainer.dataset import AUDIO_SUFFIXES, normalise_track_id

CLASSES = ("music", "speech", "other")
SPLITS = ("train", "valid", "test")

#: music/mirdata sub-folders kept for the test side: a cappella singing and solo piano.
TEST_MUSIC_GROUPS = ("mirdata/vocadito", "mirdata/compmusic_jingju_acappella", "mirdata/maestro", "mirdata/jtd")

_GTZAN = re.compile(r"^(blues|classical|country|disco|hiphop|jazz|metal|pop|reggae|rock)\.\d{5}$")


@dataclass(frozen=True)
class Item:
    """One audio file of the detector's data."""

    path: Path
    label: str
    """``music``, ``speech`` or ``other``."""
    group: str
    """Files of one group always share a split."""
    split: str
    """``train``, ``valid`` or ``test``."""
    kind: str
    """Where it comes from, for the report: ``gtzan``, ``music``, ``speech``, ``environment``."""
    genre: str | None = None
    """GTZAN genre, for GTZAN files."""


def _fraction(key: str) -> float:
    """A stable number in [0, 1) from a group name (sha1), independent of PYTHONHASHSEED."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


def hash_split(group: str, train: float = 0.6, valid: float = 0.2) -> str:
    """``train`` / ``valid`` / ``test`` for a group, at the given shares (the rest is test)."""
    u = _fraction(group)
    return "train" if u < train else "valid" if u < train + valid else "test"


def reserved_ids(data: Path) -> set[str]:
    """The GTZAN ids of ``data/reserved-ids.txt`` (none if there is no such file)."""
    path = data / RESERVED_IDS_FILE
    return read_list(path) if path.is_file() else set()


def _audio(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _stem_group(prefix: str, path: Path) -> str:
    """``prefix/geography`` for geography1.flac: numbered siblings are one recording."""
    return prefix + "/" + re.sub(r"[-_]?\d+$", "", path.stem)


def _speech_group(path: Path) -> str:
    name = path.stem
    digits = re.match(r"Jakobovski_\d_([a-z]+)_\d+$", name)
    if digits:
        return f"speech/digits-{digits.group(1)}"
    voice = re.match(r"CorentinJ_rtvc_([^_]+)_", name)
    if voice:
        return f"speech/rtvc-{voice.group(1)}"
    return "speech/" + name.split("_")[0]  # one repository's samples: often one speaker


def inventory(data: str | Path) -> list[Item]:
    """Every usable file of ``data`` with its label, group and split (sorted, deterministic).
    Raises ``ValueError`` when a needed folder is missing."""
    data = Path(data)
    for needed in ("music-speech", "speech", "environment", "gtzan-sample"):
        if not (data / needed).is_dir():
            raise ValueError(f"{data} lacks {needed}/; point --detector-data at a folder laid out as ../shared/data")
    reserved = reserved_ids(data)
    items: list[Item] = []

    gtzan_split: dict[str, str] = {}
    for path in _audio(data / "gtzan-sample"):
        gtzan_split[normalise_track_id(path.name)] = "test"
    for path in _audio(data / "gtzan-more") if (data / "gtzan-more").is_dir() else []:
        tid = normalise_track_id(path.name)
        gtzan_split.setdefault(tid, "valid" if _fraction(f"gtzan/{tid}") < 0.25 else "train")
    for folder in ("gtzan-sample", "gtzan-more"):
        for path in _audio(data / folder) if (data / folder).is_dir() else []:
            tid = normalise_track_id(path.name)
            if tid in reserved or not _GTZAN.match(tid):
                continue
            items.append(Item(path, "music", f"gtzan/{tid}", gtzan_split[tid], "gtzan", tid.split(".")[0]))
    for path in _audio(data / "gtzan-excerpts") if (data / "gtzan-excerpts").is_dir() else []:
        tid = normalise_track_id(path.name)
        if tid in reserved or not _GTZAN.match(tid) or gtzan_split.get(tid, "train") != "train":
            continue
        items.append(Item(path, "music", f"gtzan/{tid}", "train", "gtzan", tid.split(".")[0]))

    for path in _audio(data / "music-speech" / "music"):
        group = _stem_group("music-speech/music", path)
        items.append(Item(path, "music", group, hash_split(group), "music"))
    if (data / "music").is_dir():
        for path in _audio(data / "music"):
            parts = path.relative_to(data / "music").parts
            group = "/".join(parts[:2]) if parts[0] == "mirdata" else parts[0]
            split = "test" if group in TEST_MUSIC_GROUPS else hash_split(f"music/{group}")
            items.append(Item(path, "music", f"music/{group}", split, "music"))

    for path in _audio(data / "music-speech" / "speech"):
        group = _stem_group("music-speech/speech", path)
        items.append(Item(path, "speech", group, hash_split(group), "speech"))
    for path in _audio(data / "speech"):
        group = _speech_group(path)
        items.append(Item(path, "speech", group, hash_split(group), "speech"))

    for path in _audio(data / "environment"):
        group = _stem_group("environment", path)
        items.append(Item(path, "other", group, hash_split(group, 0.5, 0.2), "environment"))
    return items


def generated_noise(n_windows: int, window_samples: int, sample_rate: int, seed: int) -> list[np.ndarray]:
    """Synthetic room sounds as extra ``other`` windows (never the only negatives): white, pink
    and brown noise (hiss, fan), mains hum (50 or 60 Hz and 1 to 7 harmonics, from alone to under
    pink noise half its level: a fridge, an amplifier's ground loop), and a slowly
    amplitude-modulated low-passed noise (a fan or air conditioner), at −80 to −10 dBFS. Hum alone
    came in 2026-12-02: the detector trained on hum over noise only (5 harmonics, noise 5-50 %)
    called a plain 60-Hz hum music (0.87) and gave it a genre."""
    from genrecast.trainer.conditions import coloured_noise

    rng = np.random.default_rng(seed)
    t = np.arange(window_samples) / sample_rate
    out = []
    for i in range(n_windows):
        kind = i % 5
        if kind < 3:
            y = coloured_noise(window_samples, ("white", "pink", "brown")[kind], rng)
        elif kind == 3:
            mains = rng.choice([50.0, 60.0])
            harmonics = int(rng.integers(2, 9))
            y = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 6.3))
                    for h in range(1, harmonics + 1))
            y = y + coloured_noise(window_samples, "pink", rng) * (rng.uniform(0.05, 0.5) if rng.random() < 0.5 else 0.0)
        else:
            y = coloured_noise(window_samples, "brown", rng) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
        y = np.asarray(y, dtype=np.float64)
        y *= 10 ** (rng.uniform(-80, -10) / 20) / (np.sqrt(np.mean(y**2)) + 1e-12)
        out.append(y.astype(np.float32))
    return out
