"""Accuracy under capture conditions: ``genrecast evaluate --conditions`` and the table in
every trained bundle's report.

Each held-out clip is decoded once (the daemon's decoder, at the bundle's rate), put
through each condition of :mod:`genrecast.trainer.conditions` with a generator seeded
from (seed, condition, clip) (:func:`~genrecast.trainer.conditions.condition_rng`), and
classified as ``genrecast classify`` classifies a file (:func:`genrecast.daemon.classify.classify_file`,
the conditioned audio written as a 32-bit float WAV so that it decodes to the same
samples): the track's verdict is the mean of its windows' probabilities, for summary
bundles over the windows whose statistics cover the full context. A window is right when
the argmax of its probabilities is the clip's genre (a window without a genre, under the
silence gate or ``not_music``, is wrong); a clip whose verdict is not a genre
(``not_music``, no music heard) counts as wrong. "Differs from clean" counts the tracks
whose verdict under the condition is not their verdict on the clean audio.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from genrecast.trainer.conditions import Condition, condition_rng
from genrecast.trainer.out_dir import write_whole
from genrecast.trainer.splits import CONDITION_SPLITS, choices

log = logging.getLogger(__name__)

#: Files written by :func:`write_conditions` (and into every trained bundle).
JSON_FILE, MARKDOWN_FILE, PLOT_FILE = "conditions.json", "conditions.md", "conditions.png"
#: The plot's size in pixels (width, height).
PLOT_PIXELS = (1000, 500)
#: A GTZAN track id (``genre.NNNNN``).
GTZAN_ID = re.compile(r"[a-z]+\.\d{5}")


@dataclass(frozen=True)
class Clip:
    """One full clip to evaluate: its file, its id (``blues.00000``) and its true genre."""

    path: Path
    track_id: str
    label: str


def dataset_clips(dataset_dir: Path, labels: Sequence[str]) -> list[Clip]:
    """The clips of a genre-folder dataset (see :func:`genrecast.trainer.dataset.scan_dataset`),
    without the ids reserved for evaluation outside the project (``reserved-ids.txt`` of
    the data folder, :func:`genrecast.trainer.splits.reserved_ids_near`). Raises ValueError
    for a genre the bundle does not know, or a folder without audio."""
    from genrecast.trainer.dataset import scan_dataset
    from genrecast.trainer.splits import reserved_ids_near

    dataset = scan_dataset(dataset_dir, min_genres=1)  # one genre is enough to measure a trained bundle on
    unknown = sorted(set(dataset.labels) - set(labels))
    if unknown:
        raise ValueError(f"dataset {dataset_dir} has genre folders {unknown} that the bundle does not know "
                         f"(its labels: {', '.join(labels)}); evaluate on folders named after its genres")
    return [Clip(t.path, t.track_id, t.label) for t in dataset.without(reserved_ids_near(dataset_dir)).tracks]


def held_out_clips(bundle, dataset_dir: Path, split: str = "recorded") -> tuple[list[Clip], str]:
    """The clips of ``dataset_dir`` to evaluate ``bundle`` on, and a description of them.

    ``split``: ``recorded`` takes the clips the bundle never trained on: for a bundle
    trained on audio, its recorded test tracks; for a table bundle, the clips whose rows
    it left out (``excluded_ids``) and clips that are no GTZAN track, except those whose audio
    gave its feature shifts (``augmentation.clip_ids``). ``all`` takes every
    clip. Reserved ids are always left out. Raises ValueError when none is left.
    """
    clips = dataset_clips(dataset_dir, bundle.labels)
    prov = bundle.provenance
    if split not in CONDITION_SPLITS:
        raise ValueError(f"unknown split {split!r} for --conditions; choose {choices(CONDITION_SPLITS)}")
    if bundle.features.kind == "summary":
        excluded = set(prov.get("excluded_ids", []))
        shifted = set((prov.get("augmentation") or {}).get("clip_ids", []))  # audio that gave feature shifts
        held = [c for c in clips if (c.track_id in excluded or not GTZAN_ID.fullmatch(c.track_id))
                and c.track_id not in shifted]
        trained = len(clips) - len(held)  # a GTZAN id whose row it kept, or whose audio gave shifts
        what = f"the clips of {dataset_dir} whose table rows and audio the bundle never trained on"
    else:
        tests = set(prov.get("test_tracks") or []) if prov.get("split") != "segment" else set()
        held = [c for c in clips if c.track_id in tests]
        if prov.get("split") != "segment" and "trained_tracks" in prov:  # what it trained and validated on
            trained = len({c.track_id for c in clips} & set(prov["trained_tracks"]))
        else:  # a segment split trained on windows of every track; an older bundle does not say
            trained = len(clips) - len(held)
        what = f"the bundle's test tracks in {dataset_dir}"
    chosen = held
    if split == "all":
        chosen = clips
        what = f"every clip of {dataset_dir}" + (f" ({trained} of the {len(clips)} trained on or gave feature shifts: "
                                                 "their figures flatter the bundle)" if trained else "")
    if not chosen:
        raise ValueError(f"none of the clips of {dataset_dir} was left out of this bundle's training; "
                         "pass --split all to evaluate on every clip")
    return chosen, what


def classify_audio(y: np.ndarray, classifier, settings, tmp: Path):
    """``genrecast classify`` on mono float32 audio at the bundle's rate: the
    :class:`~genrecast.daemon.classify.FileResult` (events kept)."""
    import soundfile

    from genrecast.daemon.classify import classify_file

    path = tmp / "conditioned.wav"
    soundfile.write(path, y, classifier.bundle.features.sample_rate, subtype="FLOAT")
    return classify_file(path, classifier, settings)


def evaluate_conditions(classifier, clips: Sequence[Clip], conditions: Sequence[Condition], *, seed: int = 0,
                        progress: bool = True) -> dict[str, Any]:
    """Per-condition accuracy of ``classifier`` on ``clips``.

    Returns ``{"seed", "clips": [ids], "labels": {id: genre}, "conditions": [{"name",
    "tracks", "right", "track_accuracy", "windows", "window_accuracy",
    "differs_from_clean"}], "verdicts": {condition: {id: genre or None}}, "skipped": {id: why}}``;
    the first condition is the reference of ``differs_from_clean`` (``clean`` from
    :func:`~genrecast.trainer.conditions.named`). A clip that does not decode, or is shorter
    than one window, is skipped (logged, listed in ``skipped``), as the trainer skips it.
    """
    from genrecast.daemon.audio import AudioDecodeError, load_audio
    from genrecast.daemon.windowing import MIN_FINAL_FRACTION
    from genrecast.daemon.pipeline import PipelineSettings
    from genrecast.daemon.progress import Progress

    rate = classifier.bundle.features.sample_rate
    settings = PipelineSettings(warn_band_limited=False)  # 16 kHz and the small speaker band-limit on purpose
    verdicts: dict[str, dict[str, str | None]] = {c.name: {} for c in conditions}
    windows = {c.name: [0, 0] for c in conditions}  # right, total
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="genrecast-conditions-") as tmp, \
            Progress(progress, len(clips) * len(conditions), "clips × conditions") as advance:
        for clip in clips:
            try:
                y = load_audio(clip.path, rate)
            except AudioDecodeError as exc:
                skipped[clip.track_id] = str(exc)
            else:
                if len(y) < MIN_FINAL_FRACTION * classifier.bundle.features.window_samples:  # classify's "too short"
                    skipped[clip.track_id] = f"{clip.path}: {len(y) / rate:.2f} s of audio is shorter than one window"
            if clip.track_id in skipped:
                log.warning("skipped %s", skipped[clip.track_id])
                advance(len(conditions))
                continue
            for condition in conditions:
                audio = condition.apply(y, rate, condition_rng(seed, condition.name, clip.track_id))
                result = classify_audio(audio, classifier, settings, Path(tmp))
                verdicts[condition.name][clip.track_id] = result.verdict[0]
                for event in result.events:  # a window with no genre (silence, not_music) is wrong
                    probs = event.probabilities
                    windows[condition.name][0] += bool(probs) and max(probs, key=probs.get) == clip.label
                    windows[condition.name][1] += 1
                advance(1)
    truth = {c.track_id: c.label for c in clips if c.track_id not in skipped}
    if not truth:
        raise ValueError(f"none of the {len(clips)} clips could be measured (every one was skipped: "
                         f"{next(iter(skipped.values()))}); give audio that ffmpeg decodes, one window long or more")
    reference = verdicts[conditions[0].name]
    rows = []
    for condition in conditions:
        got = verdicts[condition.name]
        right = sum(got[t] == truth[t] for t in truth)
        right_windows, total_windows = windows[condition.name]
        rows.append({
            "name": condition.name, "tracks": len(truth), "right": right,
            "track_accuracy": round(right / len(truth), 4) if truth else 0.0,
            "windows": total_windows, "window_accuracy": round(right_windows / total_windows, 4) if total_windows else 0.0,
            "differs_from_clean": sum(got[t] != reference[t] for t in truth),
        })
    return {"seed": seed, "clips": sorted(truth), "labels": truth, "conditions": rows, "verdicts": verdicts,
            "skipped": skipped}


def clips_counted(results: dict[str, Any]) -> str:
    """"N clips", and the skipped ones by name, of :func:`evaluate_conditions`' results."""
    skipped = results["skipped"]
    return f"{len(results['clips'])} clips" + (f"; {len(skipped)} skipped: {', '.join(sorted(skipped))}" if skipped else "")


def markdown_table(results: dict[str, Any]) -> str:
    """The per-condition table as Markdown (one row per condition)."""
    n = len(results["clips"])
    lines = [f"| condition | right of {n} | per-track accuracy | per-window accuracy (windows) | verdicts unlike clean |",
             "|---|---|---|---|---|"]
    for row in results["conditions"]:
        lines.append(f"| {row['name']} | {row['right']} | {row['track_accuracy']:.3f} | "
                     f"{row['window_accuracy']:.3f} ({row['windows']}) | {row['differs_from_clean']} |")
    return "\n".join(lines)


def plot_conditions(results: dict[str, Any], path: Path, title: str) -> None:
    """Per-track accuracy (bars) and per-window accuracy (dots) against condition, as a PNG
    of :data:`PLOT_PIXELS`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["conditions"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(PLOT_PIXELS[0] / 100, PLOT_PIXELS[1] / 100), dpi=100)
    ax.bar(x, [r["track_accuracy"] for r in rows], color="tab:blue", label="per track (verdict = mean over windows)")
    ax.plot(x, [r["window_accuracy"] for r in rows], "o", color="tab:orange", label="per window")
    ax.set_xticks(x, [r["name"] for r in rows], rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.subplots_adjust(bottom=0.32, top=0.92, left=0.07, right=0.98)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_conditions(out_dir: Path, results: dict[str, Any], title: str) -> None:
    """Write :data:`JSON_FILE`, :data:`MARKDOWN_FILE` and :data:`PLOT_FILE` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_whole(out_dir / JSON_FILE, json.dumps(results, indent=2) + "\n")  # first and whole: check_report_dir knows it
    (out_dir / MARKDOWN_FILE).write_text(f"# {title}\n\n{results.get('description', '')}\n\n{markdown_table(results)}\n",
                                         encoding="utf-8", errors="backslashreplace")  # a Latin-1 file name: \udcXX
    plot_conditions(results, out_dir / PLOT_FILE, title)


def evaluate_command(bundle_path: Path, dataset_dir: Path, names: str, *, split: str = "recorded", seed: int = 0,
                     out: Path = Path("genrecast-conditions"), backend: str = "litert") -> dict[str, Any]:
    """``genrecast evaluate BUNDLE DATASET --conditions NAMES``: evaluate, write the files into
    ``out`` and return the results with ``text`` (the table and where the files are).
    Raises ValueError for unknown names, a split without held-out clips or a bundle that
    cannot be read."""
    from genrecast.daemon.classifier import open_classifier
    from genrecast.trainer.conditions import named

    conditions = named(names)
    classifier = open_classifier(bundle_path, backend)
    clips, description = held_out_clips(classifier.bundle, dataset_dir, split)
    results = evaluate_conditions(classifier, clips, conditions, seed=seed)
    results["description"] = f"{description} ({clips_counted(results)}; seed {seed})"
    results["bundle"] = classifier.bundle.model_id
    title = f"{classifier.bundle.model_id} under capture conditions"
    write_conditions(out, results, title)
    results["text"] = (f"{title}: {results['description']}\n{markdown_table(results)}\n"
                       f"wrote {out / JSON_FILE}, {out / MARKDOWN_FILE}, {out / PLOT_FILE}")
    return results


def attach_to_bundle(bundle_dir: Path, clips: Sequence[Clip], conditions: Sequence[Condition], description: str,
                     *, seed: int = 0) -> dict[str, Any] | None:
    """Evaluate the bundle at ``bundle_dir`` under ``conditions`` on ``clips`` and add the table
    to its ``metrics.json`` (key ``conditions``), ``report.md`` (a section) and
    :data:`PLOT_FILE`. With no clips or no conditions the report says why and metrics.json
    records ``conditions: null``. Returns the results (None when skipped)."""
    from genrecast.daemon.classifier import open_classifier

    bundle_dir = Path(bundle_dir)
    metrics_path, report_path = bundle_dir / "metrics.json", bundle_dir / "report.md"
    metrics = json.loads(metrics_path.read_text())
    section = ["", "## Under capture conditions", ""]
    results = None
    if clips and conditions:
        log.info("evaluating under %d conditions on %d held-out clips", len(conditions), len(clips))
        results = evaluate_conditions(open_classifier(bundle_dir, "litert"), clips, conditions, seed=seed)
        results["description"] = description
        plot_conditions(results, bundle_dir / PLOT_FILE, f"{bundle_dir.name} under capture conditions")
        section += [f"On {description} ({clips_counted(results)}; seed {seed}; plot: `{PLOT_FILE}`), classified as "
                    "`genrecast classify` does (verdict = mean over windows), by the model as trained here: a music "
                    "detector added afterwards is not in these figures (`genrecast evaluate --conditions` measures the "
                    "bundle as it is).", "", markdown_table(results)]
    else:
        section.append(f"Not measured: {description}.")
        (bundle_dir / PLOT_FILE).unlink(missing_ok=True)  # an earlier bundle's plot in this folder would mislead
    metrics["conditions"] = results
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    report_path.write_text(report_path.read_text(encoding="utf-8").rstrip("\n") + "\n" + "\n".join(section) + "\n",
                           encoding="utf-8", errors="backslashreplace")
    return results


def noise_data_problem(conditions: Sequence[Condition], augment: bool = False) -> str | None:
    """Why the recordings that ``conditions`` (or, with ``augment``, the training augmentation
    :func:`~genrecast.trainer.conditions.random_capture`) mix in are missing, checked before
    any work: babble takes speech and the environment conditions recorded sounds from
    :func:`~genrecast.trainer.conditions.noise_data_root`. None when they are there."""
    import inspect

    from genrecast.trainer import conditions as cond

    def folders(c: Condition) -> list[str]:
        if c.transform is cond.chain:
            return [f for step in c.kwargs["steps"] for f in folders(step)]
        if c.transform in (cond.babble, cond.environment):
            key = "folders" if c.transform is cond.babble else "folder"
            value = c.kwargs.get(key, inspect.signature(c.transform).parameters[key].default)
            return list(value) if isinstance(value, tuple) else [value]
        return []

    wanted = [f for c in conditions for f in folders(c)]
    if augment:  # random_capture may mix in either, from their default folders
        wanted += folders(cond.Condition("babble", cond.babble)) + folders(cond.Condition("environment", cond.environment))
    root = cond.noise_data_root()
    for folder in dict.fromkeys(wanted):
        where = root / folder
        if not (where.is_dir() and any(p.suffix.lower() in cond.AUDIO_SUFFIXES for p in where.iterdir())):
            return (f"no recordings in {where} for the noise conditions (babble, environment); set GENRECAST_TEST_DATA "
                    "to a folder laid out as ../shared/data, or leave those conditions out")
    return None


def conditions_or_none(names: str) -> list[Condition]:
    """:func:`~genrecast.trainer.conditions.named`, or none for ``none`` (the trainer's choice)."""
    from genrecast.trainer.conditions import named

    return [] if names.strip().lower() == "none" else named(names)


def conditions_problem(names: str, choices: str, *, none_ok: bool, augment: bool = False) -> str | None:
    """Why ``--conditions names`` cannot be used, checked before any work (one line, or None): it
    names no condition (``choices`` says what may be given), an unknown one, or noise conditions
    (or, with ``augment``, the training augmentation) whose recordings are missing
    (:func:`noise_data_problem`). ``none`` is a choice only with ``none_ok``."""
    from genrecast.trainer.conditions import named

    if not names.replace(",", "").strip():
        return f"--conditions {names!r} names no condition; give names (e.g. clean,stereo), {choices}"
    try:
        wanted = conditions_or_none(names) if none_ok else named(names)
    except ValueError as exc:
        return f"--conditions: {exc}"
    return noise_data_problem(wanted, augment=augment)


def attach_test_tracks(bundle_dir: Path, dataset, test_tracks: Sequence[str], names: str, split_name: str,
                       *, seed: int = 0) -> dict[str, Any] | None:
    """The robustness table of a bundle trained on audio: its test tracks of ``dataset`` (the
    :class:`~genrecast.trainer.dataset.Dataset` it trained on, from
    :func:`genrecast.trainer.train.training_dataset`, which left the reserved ids out) under ``names``."""
    tests = set(test_tracks)
    clips = [Clip(t.path, t.track_id, t.label) for t in dataset.tracks if t.track_id in tests]
    conditions = conditions_or_none(names)
    description = (f"the test tracks of the {split_name} split (full files)" if conditions
                   else "no conditions were asked for (--conditions none)")
    if split_name == "segment" and conditions:  # its test windows' tracks are training tracks too
        clips, description = [], ("a segment split holds out windows, not tracks: every full clip was trained on, "
                                  "so its figures would flatter the model (train with --split track or --split-lists)")
    return attach_to_bundle(bundle_dir, clips, conditions, description, seed=seed)


def attach_table_clips(bundle_dir: Path, table: Path, exclude_dir: Path | None, trained_ids: set[str], names: str,
                       *, seed: int = 0) -> dict[str, Any] | None:
    """The robustness table of a table bundle: the full clips in ``exclude_dir`` (else
    ``gtzan-sample`` beside the table in the ``../shared/data`` layout, else in
    :func:`~genrecast.trainer.conditions.noise_data_root`) whose ids it did not train on
    (``trained_ids``: table rows, and clips whose audio gave feature shifts), reserved ids left
    out, under ``names``."""
    from genrecast.daemon.bundle import load_bundle
    from genrecast.trainer.conditions import noise_data_root

    beside = Path(table).resolve().parent.parent / "gtzan-sample"
    folder = Path(exclude_dir) if exclude_dir is not None else beside if beside.is_dir() else noise_data_root() / "gtzan-sample"
    conditions = conditions_or_none(names)
    clips: list[Clip] = []
    if not conditions:
        description = "no conditions were asked for (--conditions none)"
    elif not folder.is_dir():
        description = f"no full clips left out of training were found (give them with --exclude-dir; {folder} is absent)"
    else:
        labels = load_bundle(bundle_dir).labels
        clips = [c for c in dataset_clips(folder, labels) if c.track_id not in trained_ids]
        description = f"the full clips of {folder.name} whose table rows and audio the bundle never trained on"
        if not clips:
            description = f"no clip of {folder} was left out of training"
    return attach_to_bundle(bundle_dir, clips, conditions, description, seed=seed)
