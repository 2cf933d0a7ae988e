"""Train the musicnn genre bundle (:mod:`genrecast.trainer.musicnn`) on GTZAN audio under capture
conditions, and measure it on held-out clips.

    python -m genrecast.trainer.musicnn_train DATA --out BUNDLE [--detector-from BUNDLE] [--jobs N]
    python -m genrecast.trainer.musicnn_train DATA --validate [--jobs N]

Training audio (``DATA`` laid out as ``../shared/data``): every clip of ``gtzan-excerpts``,
``gtzan-more`` and ``gtzan-sample``, except the reserved ids (``reserved-ids.txt``) and the 13
evaluation clips (:data:`genrecast.trainer.shifts.EVALUATION_CLIPS`), which are the bundle's
test tracks. Each clip is used clean and under :data:`DRAWS` random capture conditions
(:func:`genrecast.trainer.shifts.capture_condition`: rooms, small speakers, codecs, sample
rates, noise, gains), seeded per clip; each version is cut into whole 3-s windows (an excerpt
shorter than 3 s is repeated to 3 s, as musicnn pads). The head's regularisation :data:`C` was
chosen with ``--validate``: the 56 full clips of ``gtzan-more`` and ``gtzan-sample`` (not the
13) dealt into 5 groups by genre, as ``scripts/shift_validation.py`` does; each group is
classified by a head trained without its ids, clean and under the 9 conditions of
:data:`genrecast.trainer.shifts.VALIDATION`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FOLDERS = ("gtzan-excerpts", "gtzan-more", "gtzan-sample")
#: The bundle's labels, in output order: GTZAN's ten genres (every one must have training windows).
LABELS = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
DRAWS = 4
#: The head's inverse L2 strength; chosen on validation among 0.03, 0.1 and 0.3.
C = 0.1
VALIDATION_GROUPS = 5


def feature_config():
    """The bundle's features: 3-s windows at the pipeline's 22.05 kHz (the music detector's rate),
    musicnn's log-mel map at 16 kHz (:mod:`genrecast.daemon.logmel`)."""
    from genrecast.daemon.features import FeatureConfig

    return FeatureConfig(kind="logmel", sample_rate=22050, window_seconds=3.0, n_fft=512, hop_length=256, n_mels=96,
                         band_stage_hz=44100)


@dataclass(frozen=True)
class Audio:
    track: str
    genre: str
    path: Path
    full: bool
    """A full 30-s clip (not an excerpt)."""


def training_audio(data: Path) -> list[Audio]:
    """The clips of :data:`FOLDERS` that may be trained on, sorted (see the module docstring)."""
    from genrecast.trainer.dataset import AUDIO_SUFFIXES, normalise_track_id
    from genrecast.trainer.shifts import EVALUATION_CLIPS
    from genrecast.trainer.splits import reserved_ids_near

    never = reserved_ids_near(data / "reference" / "features_30_sec.csv") | set(EVALUATION_CLIPS)
    out = []
    for folder in FOLDERS:
        for path in sorted((data / folder).rglob("*")):
            if path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("."):
                track = normalise_track_id(path.name)
                if track not in never:
                    out.append(Audio(track, track.split(".")[0], path, folder != "gtzan-excerpts"))
    if not out:
        raise ValueError(f"no GTZAN audio under {data} ({', '.join(FOLDERS)})")
    return out


def backbone(weights: Path | None = None):
    """musicnn's layers (:func:`genrecast.trainer.musicnn.build_backbone`) with the checkpoint in
    ``weights``, or the one fetched with pip into the genrecast cache."""
    from genrecast.daemon.cache import cache_dir
    from genrecast.trainer import musicnn

    return musicnn.build_backbone(musicnn.read_checkpoint(weights or musicnn.fetch_checkpoint(cache_dir() / "musicnn")))


def _windows(y: np.ndarray, cfg) -> np.ndarray:
    from genrecast.daemon.features import window_features

    n = cfg.window_samples
    if len(y) < n:
        y = np.resize(y, n)  # repeat-pad, as musicnn pads short clips
    return np.stack([window_features(y[i * n:(i + 1) * n], cfg) for i in range(len(y) // n)])


def versions(task: tuple[Audio, tuple[str, ...], int]) -> dict[str, np.ndarray]:
    """Log-mel windows of one clip, by version name: ``clean``, ``draw0``.., and the named
    conditions of ``task[1]`` (:data:`genrecast.trainer.shifts.VALIDATION` names)."""
    from genrecast.daemon.audio import load_audio
    from genrecast.trainer import conditions as cond
    from genrecast.trainer import shifts

    audio, named, seed = task
    cfg = feature_config()
    y = load_audio(audio.path, cfg.sample_rate)
    out = {"clean": _windows(y, cfg)}
    for k in range(DRAWS):
        rng = cond.condition_rng(seed + 1, "draw", str(k), audio.track)
        condition = shifts.capture_condition(rng)
        out[f"draw{k}"] = _windows(condition.apply(np.resize(y, max(len(y), cfg.window_samples)), cfg.sample_rate, rng), cfg)
    by_name = {c.name: c for c in shifts.VALIDATION}
    for name in named:
        if name != "clean":
            out[name] = _windows(by_name[name].apply(y, cfg.sample_rate, cond.condition_rng(seed, name, audio.track)), cfg)
    return out


def embed_all(clips: list[Audio], model, *, named: tuple[str, ...] = (), seed: int = 0,
              jobs: int = 1) -> list[dict[str, np.ndarray]]:
    """Per clip, the backbone's pooled values (windows x EMBEDDING) of each version."""
    from genrecast.daemon.progress import Progress

    maps = []
    tasks = [(c, named if c.full else (), seed) for c in clips]
    with ProcessPoolExecutor(max(1, jobs)) as pool, Progress(True, len(clips), "clips under conditions") as advance:
        for versions_ in pool.map(versions, tasks, chunksize=4):
            maps.append(versions_)
            advance(1)
    keys = [(i, k, len(m[k])) for i, m in enumerate(maps) for k in m]
    stacked = np.concatenate([maps[i][k] for i, k, _ in keys])
    del maps
    pooled = np.concatenate([np.asarray(model(stacked[i:i + 32], training=False))  # 32 windows: ~0.3 GB a layer
                             for i in range(0, len(stacked), 32)])
    out: list[dict[str, np.ndarray]] = [{} for _ in clips]
    start = 0
    for i, k, n in keys:
        out[i][k] = pooled[start:start + n]
        start += n
    return out


def _training_set(clips: list[Audio], embedded: list[dict[str, np.ndarray]], labels: list[str], leave_out=frozenset()):
    x, y = [], []
    for clip, versions_ in zip(clips, embedded):
        if clip.track in leave_out:
            continue
        for name in ["clean", *(f"draw{k}" for k in range(DRAWS))]:
            x.append(versions_[name])
            y += [labels.index(clip.genre)] * len(versions_[name])
    return np.concatenate(x), np.asarray(y)


def validate(clips, embedded, labels, c_values=(0.03, 0.1, 0.3)) -> dict[str, Any]:
    """Right verdicts (mean over windows) of the 56 held-out full clips per condition, per ``C``."""
    from genrecast.trainer.musicnn import Head
    from genrecast.trainer.shifts import VALIDATION

    full = [i for i, c in enumerate(clips) if c.full]
    order = sorted(full, key=lambda i: (clips[i].genre, clips[i].track))
    group = {i: k % VALIDATION_GROUPS for k, i in enumerate(order)}
    results = {}
    for c in c_values:
        right = {cond.name: 0 for cond in VALIDATION}
        for g in range(VALIDATION_GROUPS):
            held = [i for i in full if group[i] == g]
            head = Head.fit(*_training_set(clips, embedded, labels, {clips[i].track for i in held}), c, len(labels))
            for i in held:
                for cond in VALIDATION:
                    right[cond.name] += labels[int(head.predict(embedded[i][cond.name]).mean(axis=0).argmax())] == clips[i].genre
        results[str(c)] = {"right": right, "sum": sum(right.values()), "clips": len(full)}
    return results


def _scores(head, clips, embedded, labels, test: set[str]) -> dict[str, Any]:
    """Per-window and per-track accuracy of ``head`` on the clean windows of the ``test`` tracks
    (a track's verdict: the mean over all its windows, excerpt and full clip)."""
    per_track: dict[str, list[np.ndarray]] = {}
    for clip, versions_ in zip(clips, embedded):
        if clip.track in test:
            per_track.setdefault(clip.track, []).append(head.predict(versions_["clean"]))
    window_right = windows = track_right = 0
    for track, probs in per_track.items():
        p = np.concatenate(probs)
        truth = labels.index(track.split(".")[0])
        window_right += int((p.argmax(axis=1) == truth).sum())
        windows += len(p)
        track_right += int(p.mean(axis=0).argmax() == truth)
    return {"tracks": len(per_track), "track_right": track_right, "windows": windows, "window_right": window_right}


def split_figures(clips, embedded, labels, splits_dir: Path | None, *, folds: int = 10, seed: int = 0) -> dict[str, Any]:
    """The table model's two measures, on the tracks we have audio of: 10-fold cross-validation
    (folds dealt by genre after a seeded shuffle, every window of a track on one side) and the
    artist-filtered split (Kereliuk et al. 2015, ``splits_dir``: train + valid → train, test →
    test). Each head is trained on its training tracks' clean and drawn windows, with :data:`C`."""
    from genrecast.trainer.musicnn import Head

    def accuracy(parts: list[dict[str, Any]]) -> dict[str, Any]:
        total = {k: sum(p[k] for p in parts) for k in parts[0]}
        return {**total, "track_accuracy": round(total["track_right"] / total["tracks"], 4),
                "window_accuracy": round(total["window_right"] / total["windows"], 4)}

    tracks = sorted({c.track for c in clips})
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(len(tracks)), key=lambda i: tracks[i].split(".")[0])
    fold = {tracks[i]: k % folds for k, i in enumerate(order)}
    parts = []
    for f in range(folds):
        test = {t for t in tracks if fold[t] == f}
        head = Head.fit(*_training_set(clips, embedded, labels, test), C, len(labels))
        parts.append(_scores(head, clips, embedded, labels, test))
    out: dict[str, Any] = {"cv": {"folds": folds, **accuracy(parts)}}
    if splits_dir is not None:
        from genrecast.trainer.table_data import read_filtered_split

        train_ids, test_ids = read_filtered_split(splits_dir)
        test = set(tracks) & test_ids
        head = Head.fit(*_training_set(clips, embedded, labels, set(tracks) - train_ids), C, len(labels))
        out["artist_filtered"] = {**accuracy([_scores(head, clips, embedded, labels, test)]),
                                  "trained_tracks": len(set(tracks) & train_ids), "listed_test_tracks": len(test_ids)}
    return out


def train(data: Path, out: Path, *, detector_from: Path | None, weights: Path | None = None, seed: int = 0,
          jobs: int = 1) -> dict[str, Any]:
    """Build the bundle at ``out`` (replaced): the genre model, the music detector copied from
    ``detector_from``, and the 13 evaluation clips' per-condition table in its metrics."""
    from genrecast.daemon.bundle import KERAS_FILE, load_bundle
    from genrecast.trainer import musicnn
    from genrecast.trainer.conditions import named
    from genrecast.trainer.export import save_bundle
    from genrecast.trainer.keras_zip import normalise_keras_zip
    from genrecast.trainer.robustness import attach_to_bundle, held_out_clips
    from genrecast.trainer.shifts import EVALUATION_CLIPS

    labels = list(LABELS)
    layers = backbone(weights)
    clips = training_audio(data)
    embedded = embed_all(clips, layers, seed=seed, jobs=jobs)
    x, y = _training_set(clips, embedded, labels)
    head = musicnn.Head.fit(x, y, C, len(labels))
    splits = data / "splits" / "jongpillee_music_dataset_split" / "GTZAN_split"
    figures = split_figures(clips, embedded, labels, splits if splits.is_dir() else None, seed=seed)
    log.info("cross-validation and artist-filtered split: %s", json.dumps(figures))
    cfg = feature_config()
    provenance = {
        "arch": "musicnn-logreg", "source": "audio", "backbone": {"weights": musicnn.WHEEL, "checkpoint": musicnn.CHECKPOINT,
                                                                  "wheel_sha256": musicnn.WHEEL_SHA256},
        "head": {"kind": "multinomial logistic regression", "C": C, "draws_per_clip": DRAWS, "windows": int(len(y))},
        "split": "recorded", "test_tracks": list(EVALUATION_CLIPS),
        "trained_tracks": sorted({c.track for c in clips}), "seed": seed,
        "input": "logmel windows (genrecast.daemon.logmel), level normalised; no further standardisation",
    }
    if out.exists():
        shutil.rmtree(out)
    save_bundle(musicnn.with_head(layers, head.coef, head.intercept), out, labels=labels, features=cfg,
                mean=np.zeros(cfg.n_mels), std=np.ones(cfg.n_mels), metrics={}, provenance=provenance)
    normalise_keras_zip(out / KERAS_FILE)  # fixed zip dates and order: the same bytes from the same weights
    detector_section = take_detector(detector_from, out) if detector_from is not None else ""
    (out / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n")
    (out / "report.md").write_text(report(figures) + "\n" + detector_section)
    bundle = load_bundle(out)
    clips_13, description = held_out_clips(bundle, data / "gtzan-sample")
    attach_to_bundle(out, clips_13, named("targets"), description, seed=seed)
    return {**provenance, "figures": figures}


def take_detector(source: Path, out: Path) -> str:
    """Copy the music detector of the bundle ``source`` into the bundle ``out`` (its files and
    bundle.json's ``detector`` entry); returns the "Music detector" section of ``source``'s
    report.md, or "" when it has none."""
    from genrecast.daemon.bundle import BUNDLE_JSON, DETECTOR_KERAS, DETECTOR_TFLITE

    for name in (DETECTOR_TFLITE, DETECTOR_KERAS):
        shutil.copy2(source / name, out / name)
    doc = json.loads((out / BUNDLE_JSON).read_text())
    doc["detector"] = json.loads((source / BUNDLE_JSON).read_text())["detector"]
    (out / BUNDLE_JSON).write_text(json.dumps(doc, indent=2) + "\n")
    heading = "\n## Music detector\n"
    theirs = (source / "report.md").read_text(encoding="utf-8") if (source / "report.md").is_file() else ""
    return heading + theirs.split(heading, 1)[1] if heading in theirs else ""


def report(figures: dict[str, Any]) -> str:
    """report.md's opening: the genre model and its cross-validation and artist-filtered figures."""
    lines = ["# musicnn genre model", "",
             "musicnn's MSD-tagger layers (Pons & Serra 2019) with a logistic-regression genre head trained on GTZAN "
             "audio under capture conditions (`genrecast.trainer.musicnn_train`).", "",
             "| split | tracks | per-track accuracy | windows | per-window accuracy |", "|---|---|---|---|---|"]
    for name, f in (("10-fold cross-validation", figures["cv"]), ("artist-filtered test", figures.get("artist_filtered"))):
        if f:
            lines.append(f"| {name} | {f['tracks']} | {f['track_accuracy']:.3f} | {f['windows']} | {f['window_accuracy']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m genrecast.trainer.musicnn_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the data folder (laid out as ../shared/data)")
    parser.add_argument("--out", type=Path, help="bundle folder to write (replaced)")
    parser.add_argument("--detector-from", type=Path, help="bundle whose music detector the new bundle takes")
    parser.add_argument("--weights", type=Path, help="musicnn's unpacked MSD_musicnn folder (default: fetched with pip)")
    parser.add_argument("--validate", action="store_true", help="score the head's C values on the 56 held-out clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from genrecast.trainer.export import quiet_tensorflow

    quiet_tensorflow()
    if args.validate:
        from genrecast.trainer.shifts import VALIDATION

        clips = training_audio(args.data)
        embedded = embed_all(clips, backbone(args.weights), named=tuple(c.name for c in VALIDATION), seed=args.seed,
                             jobs=args.jobs)
        print(json.dumps(validate(clips, embedded, list(LABELS)), indent=1))
        return
    if args.out is None:
        parser.error("give --out BUNDLE (or --validate)")
    print(json.dumps(train(args.data, args.out, detector_from=args.detector_from, weights=args.weights, seed=args.seed,
                           jobs=args.jobs), indent=1)[:2000])


if __name__ == "__main__":
    main()
