"""Feature shifts measured on our own audio, to train the table model for real captures.

The feature table holds one clean row per GTZAN track; the daemon sees those tracks
through gains, codecs, other sample rates, small speakers, rooms and noise, and over
contexts shorter than 30 s. Audio-domain augmentation needs audio, which the table has
not. So the shifts are measured where we have audio (the full clips of ``gtzan-more`` and
the non-evaluation clips of ``gtzan-sample``; never a reserved id): each clip is passed
through seeded capture conditions (:func:`capture_condition`, built on
:mod:`genrecast.trainer.conditions`), its level-normalised summary row is computed over
several context lengths (:data:`CONTEXTS`), and the shift is that row minus the clip's
clean 30-s row. Training then adds shifts to table rows (:func:`augment`), picking each
shift from one of the row's nearest measured clips (shifts depend on the music: a codec
cuts more where there is more treble).

Every number is seeded: a clip's draws depend only on (seed, clip id, draw), ffmpeg runs
single-threaded, so the measured shifts do not depend on the number of worker processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from genrecast.daemon.features import FeatureConfig, frame_statistics, summarise
from genrecast.trainer import conditions as cond

log = logging.getLogger(__name__)

#: Context lengths (seconds) over which a conditioned clip is summarised: the daemon's first
#: windows see a few seconds, later ones the full 30-s context.
CONTEXTS = (3.0, 9.0, 18.0, 30.0)

#: Random capture conditions drawn per clip for training shifts.
DRAWS_PER_CLIP = 12

#: The folders (under the data folder) whose full clips give shifts.
CLIP_FOLDERS = ("gtzan-more", "gtzan-sample")

#: The 13 full clips of ``gtzan-sample`` kept for evaluation (outside the excerpts' ids
#: 00001-00050): never a source of shifts.
EVALUATION_CLIPS = (
    "blues.00000", "blues.00053", "blues.00099", "classical.00000", "country.00000", "disco.00000",
    "hiphop.00000", "jazz.00000", "jazz.00054", "metal.00000", "pop.00000", "reggae.00000", "rock.00000",
)

#: Neighbours among the measured clips from which a table row takes its shifts.
NEIGHBOURS = 5


def resample_round_trip(y: np.ndarray, sample_rate: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    """The audio as a ``rate`` Hz file decoded back to ``sample_rate`` (soxr HQ both ways, as
    the daemon's decoder resamples): what a 44.1/48 kHz copy or 16 kHz capture leaves."""
    import soxr

    there = soxr.resample(y, sample_rate, rate, quality="HQ")
    back = soxr.resample(there, rate, sample_rate, quality="HQ").astype(np.float32)
    return back[: len(y)] if len(back) >= len(y) else np.pad(back, (0, len(y) - len(back)))


def codec_at(y: np.ndarray, sample_rate: int, rng: np.random.Generator, rate: int, codec: str, kbps: int) -> np.ndarray:
    """A lossy codec (:func:`conditions.codec`) run at ``rate`` Hz (internet radio is 44.1 kHz)."""
    import soxr

    up = soxr.resample(y, sample_rate, rate, quality="HQ").astype(np.float32)
    coded = cond.codec(up, rate, rng, codec=codec, kbps=kbps)
    back = soxr.resample(coded, rate, sample_rate, quality="HQ").astype(np.float32)
    return back[: len(y)] if len(back) >= len(y) else np.pad(back, (0, len(y) - len(back)))


def capture_condition(rng: np.random.Generator) -> cond.Condition:
    """One training condition: :func:`conditions.random_condition` (room, speaker, codec at
    22.05 kHz, noise, gain), and, each with some chance, another sample rate before it
    (16, 44.1 or 48 kHz) or a codec at 44.1 kHz after it (MP3 48-192 kbps, AAC 64-128 kbps)."""
    steps: list[cond.Condition] = []
    if rng.random() < 0.4:
        rate = int(rng.choice([16000, 44100, 48000]))
        steps.append(cond.Condition(f"rate{rate}", resample_round_trip, {"rate": rate}))
    steps.append(cond.random_condition(rng))
    if rng.random() < 0.3:
        codec = str(rng.choice(["mp3", "aac"]))
        kbps = int(rng.choice([48, 64, 96, 128, 192] if codec == "mp3" else [64, 96, 128]))
        steps.append(cond.Condition(f"{codec}{kbps}@44k", codec_at, {"rate": 44100, "codec": codec, "kbps": kbps}))
    return cond.Condition("+".join(s.name for s in steps), cond.chain, {"steps": tuple(steps)})


#: Fixed conditions for validation per condition (the robustness issue's table, on held-out clips).
VALIDATION: tuple[cond.Condition, ...] = (
    cond.CLEAN,
    cond.Condition("rate44100", resample_round_trip, {"rate": 44100}),
    cond.Condition("rate48000", resample_round_trip, {"rate": 48000}),
    cond.Condition("rate16000", resample_round_trip, {"rate": 16000}),
    cond.Condition("mp3-128k@44k", codec_at, {"rate": 44100, "codec": "mp3", "kbps": 128}),
    cond.Condition("aac-96k@44k", codec_at, {"rate": 44100, "codec": "aac", "kbps": 96}),
    cond.BY_NAME["mp3-48k"],
    cond.BY_NAME["speaker-room"],
    cond.BY_NAME["speaker-room-noise15dB"],
)


@dataclass(frozen=True)
class Clip:
    """A full clip whose audio gives shifts."""

    track: str
    genre: str
    path: Path


def shift_clips(data_dir: Path, exclude: Iterable[str]) -> list[Clip]:
    """The full clips of :data:`CLIP_FOLDERS` whose ids are not in ``exclude`` (the evaluation
    clips and the reserved ids), sorted by id."""
    from genrecast.trainer.dataset import AUDIO_SUFFIXES, normalise_track_id

    exclude = set(exclude)
    clips = {}
    for folder in CLIP_FOLDERS:
        for path in sorted((Path(data_dir) / folder).rglob("*")):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                track = normalise_track_id(path.name)
                if track not in exclude:
                    clips.setdefault(track, Clip(track, track.split(".")[0], path))
    return [clips[t] for t in sorted(clips)]


def _rows(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Level-normalised summary rows of ``audio`` over its first :data:`CONTEXTS` seconds."""
    frames = frame_statistics(audio, cfg)
    rows = []
    for seconds in CONTEXTS:
        n = 1 + int(seconds * cfg.sample_rate) // cfg.hop_length
        rows.append(summarise({k: v[:n] for k, v in frames.items()}, cfg))
    return np.asarray(rows)


def _measure_clip(task: tuple[Clip, FeatureConfig, int, int]) -> dict[str, np.ndarray]:
    """Clean row, random-condition rows and validation-condition rows of one clip."""
    from genrecast.daemon.audio import load_audio

    clip, cfg, seed, draws = task
    audio = load_audio(clip.path, cfg.sample_rate)
    clean = _rows(audio, cfg)
    key = int.from_bytes(hashlib.sha256(clip.track.encode()).digest()[:4], "little")
    random_rows, names = [], []
    for draw in range(draws):
        rng = np.random.default_rng([seed, key, draw])
        condition = capture_condition(rng)
        random_rows.append(_rows(condition.apply(audio, cfg.sample_rate, rng), cfg))
        names.append(condition.name)
    fixed = [_rows(c.apply(audio, cfg.sample_rate, np.random.default_rng([seed, key, 10_000 + i])), cfg)
             for i, c in enumerate(VALIDATION)]
    return {"clean": clean, "random": np.asarray(random_rows), "fixed": np.asarray(fixed), "names": np.asarray(names)}


@dataclass(frozen=True)
class Shifts:
    """Measured rows of the shift clips. Arrays are indexed by clip first."""

    tracks: np.ndarray
    """Clip ids (``genre.NNNNN``)."""
    genres: np.ndarray
    clean: np.ndarray
    """clips x contexts x columns: the clean rows (the last context is the full clip)."""
    random: np.ndarray
    """clips x draws x contexts x columns: rows under :func:`capture_condition` draws."""
    fixed: np.ndarray
    """clips x len(VALIDATION) x contexts x columns: rows under :data:`VALIDATION`."""
    names: np.ndarray
    """clips x draws: the drawn conditions' names."""

    def deltas(self, clips: np.ndarray) -> np.ndarray:
        """Shifts of the given clips (indices) from their clean 30-s row, clean shorter contexts
        included: clips x (draws + 1) * contexts x columns."""
        full = self.clean[clips, -1][:, None, :]
        rows = np.concatenate([self.clean[clips][:, None], self.random[clips]], axis=1)
        return rows.reshape(len(clips), -1, rows.shape[-1]) - full


def measure_shifts(data_dir: Path, exclude: Iterable[str], cfg: FeatureConfig, *, seed: int = 0,
                   draws: int = DRAWS_PER_CLIP, jobs: int = 1, cache_dir: Path | None = None) -> Shifts:
    """Measure every clip of :func:`shift_clips` under ``draws`` seeded conditions (parallel
    over ``jobs`` processes; the same values whatever ``jobs``). Cached under ``cache_dir`` by
    the clips' bytes, the config, the seed, the draws and the source of this module and of
    :mod:`genrecast.trainer.conditions`.

    Raises:
        ValueError: no clip to measure under ``data_dir``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    clips = shift_clips(data_dir, exclude)
    if not clips:
        raise ValueError(f"no full clips to measure shifts on under {data_dir} ({', '.join(CLIP_FOLDERS)})")
    digest = hashlib.sha256(json.dumps([cfg.to_dict(), seed, draws, CONTEXTS, [v.name for v in VALIDATION]]).encode())
    for module in (cond, sys.modules[__name__]):  # the conditions' code: a change there measures anew
        digest.update(Path(module.__file__).read_bytes())
    for clip in clips:
        digest.update(clip.track.encode() + hashlib.sha256(clip.path.read_bytes()).digest())
    cache = Path(cache_dir) / f"shifts-{digest.hexdigest()[:16]}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return Shifts(**{k: data[k] for k in data.files})
    tasks = [(clip, cfg, seed, draws) for clip in clips]
    log.info("measuring feature shifts on %d clips under %d conditions each (%d jobs)", len(clips), draws + len(VALIDATION), jobs)
    from genrecast.daemon.progress import Progress

    done = []
    with Progress(True, len(tasks), "measuring feature shifts") as advance, contextlib.ExitStack() as stack:
        mapper = map
        if jobs > 1:
            mapper = stack.enter_context(ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))).map
        for measured in mapper(_measure_clip, tasks):
            done.append(measured)
            advance()
    shifts = Shifts(
        tracks=np.asarray([c.track for c in clips]), genres=np.asarray([c.genre for c in clips]),
        clean=np.stack([d["clean"] for d in done]), random=np.stack([d["random"] for d in done]),
        fixed=np.stack([d["fixed"] for d in done]), names=np.stack([d["names"] for d in done]),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **shifts.__dict__)
    return shifts


def augment(x: np.ndarray, y: np.ndarray, clean: np.ndarray, deltas: np.ndarray, copies: int,
            rng: np.random.Generator, scale: np.ndarray, neighbours: int = NEIGHBOURS,
            near_by: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` shifted copies of every row of ``x`` (rows x columns): each adds one measured
    shift (``deltas``: clips x shifts x columns) of one of the ``neighbours`` clips whose clean
    row (``clean``: clips x columns) is nearest to it, distances in units of ``scale`` (the
    columns' std) over the columns ``near_by`` (indices; all when None: the model's inputs).
    Returns the originals followed by the copies, and their labels."""
    cols = slice(None) if near_by is None else near_by
    d = (((x[:, None, cols] - clean[None, :, cols]) / scale[cols]) ** 2).sum(axis=2)
    near = np.argsort(d, axis=1, kind="stable")[:, :neighbours]
    out = [x]
    for _ in range(copies):
        clip = near[np.arange(len(x)), rng.integers(0, near.shape[1], len(x))]
        shift = deltas[clip, rng.integers(0, deltas.shape[1], len(x))]
        out.append(x + shift)
    return np.concatenate(out), np.tile(y, copies + 1)


@dataclass(frozen=True)
class Augmentation:
    """Shift augmentation of table rows: ``copies`` shifted copies of every training row, the
    shifts taken from :attr:`shifts` (never from a clip whose id is on the test side of a fit)."""

    shifts: Shifts
    copies: int = 4
    neighbours: int = NEIGHBOURS
    epochs: int = 40
    """Epochs of a fit on the augmented rows (``copies + 1`` times as many rows per epoch)."""

    def rows(self, x: np.ndarray, y: np.ndarray, test_ids: Iterable[str], scale: np.ndarray,
             seed: int, near_by: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training rows ``x`` (rows x columns, level-normalised, not standardised) and their
        labels ``y``, with their shifted copies (:func:`augment`); ``scale``: the columns' std;
        ``near_by``: the columns (indices) that find a row's nearest clips, all when None."""
        usable = np.flatnonzero(~np.isin(self.shifts.tracks, sorted(set(test_ids))))
        if not self.copies or not len(usable):
            return x, y
        rng = np.random.default_rng([seed, 0x5417])
        return augment(x, y, self.shifts.clean[usable, -1], self.shifts.deltas(usable), self.copies, rng, scale,
                       min(self.neighbours, len(usable)), near_by)

    def describe(self) -> dict[str, object]:
        """Provenance for the bundle's metrics."""
        return {
            "clips": int(len(self.shifts.tracks)), "draws_per_clip": int(self.shifts.random.shape[1]),
            "contexts_seconds": list(CONTEXTS), "copies": self.copies, "neighbours": self.neighbours, "epochs": self.epochs,
            "clip_ids_sha256": hashlib.sha256("\n".join(self.shifts.tracks.tolist()).encode()).hexdigest(),
        }
