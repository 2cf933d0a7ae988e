"""The window model (3-s MFCC windows, ``cnn`` and ``mlp``) with and without capture-condition
augmentation, on the 13 evaluation clips under the robustness issue's conditions.

Run through ``scripts/window_model_conditions.sh`` (which trains the bundles); this file has
two jobs:

* ``prepare DATA WORK``: make ``WORK/train-data``, a genre-folder dataset of links to the
  full GTZAN clips (``gtzan-more``, ``gtzan-sample``) and the excerpts (``gtzan-excerpts``)
  in DATA, without the reserved ids (``reserved-ids.txt``) and without any file of the 13
  evaluation clips' ids; and ``WORK/eval-data`` with links to the 13 clips. An excerpt and
  the full clip of one id keep the same track id (``genre.NNNNN``), so every split keeps
  them on one side (where both would be ``.wav``, the full clip's link ends in ``.WAV``).
* ``evaluate WORK BUNDLE...``: each evaluation clip under each condition of
  :data:`genrecast.trainer.conditions.TARGETS`, seeded as ``genrecast evaluate --conditions``
  seeds it (:func:`~genrecast.trainer.conditions.condition_rng` of seed 0, condition, clip),
  classified as ``genrecast classify`` does (verdict = mean over windows) by every bundle;
  the conditioned audio is made once and shared by the bundles. Writes
  ``WORK/conditions.json`` and ``WORK/conditions.md`` (right verdicts of 13 per condition and
  bundle, the held-out per-track accuracy of each bundle's own test split, and the misses).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

#: The 13 evaluation clips of the robustness issue (never trained on here).
EVAL_IDS = ("blues.00000", "blues.00053", "blues.00099", "classical.00000", "country.00000", "disco.00000",
            "hiphop.00000", "jazz.00000", "jazz.00054", "metal.00000", "pop.00000", "reggae.00000", "rock.00000")


def prepare(data: Path, work: Path) -> None:
    from genrecast.trainer.dataset import scan_dataset
    from genrecast.trainer.splits import reserved_ids_near

    reserved = reserved_ids_near(data / "gtzan-sample")
    train_dir, eval_dir = work / "train-data", work / "eval-data"
    for folder in (train_dir, eval_dir):
        if folder.exists():
            for link in sorted(folder.glob("*/*")):
                link.unlink()
    counts = {"full": 0, "excerpt": 0, "eval": 0, "reserved_left_out": 0}
    names: set[Path] = set()
    for source, kind in (("gtzan-excerpts", "excerpt"), ("gtzan-more", "full"), ("gtzan-sample", "full")):
        for track in scan_dataset(data / source).tracks:
            if track.track_id in EVAL_IDS:
                if kind == "full":
                    target = eval_dir / track.label / track.path.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(track.path.resolve())
                    counts["eval"] += 1
                continue
            if track.track_id in reserved:
                counts["reserved_left_out"] += 1
                continue
            target = train_dir / track.label / track.path.name
            if target in names:  # the excerpt of this id is already linked as .wav
                target = target.with_suffix(target.suffix.upper())
            names.add(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(track.path.resolve())
            counts[kind] += 1
    if counts["eval"] != len(EVAL_IDS):
        raise SystemExit(f"found {counts['eval']} of the {len(EVAL_IDS)} evaluation clips in {data}/gtzan-sample")
    print(json.dumps(counts))


def evaluate(work: Path, bundles: list[Path]) -> None:
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.classifier import open_classifier
    from genrecast.daemon.pipeline import PipelineSettings
    from genrecast.daemon.progress import Progress
    from genrecast.trainer.conditions import TARGETS, condition_rng, named
    from genrecast.trainer.robustness import classify_audio, dataset_clips

    conditions = named(list(TARGETS))
    paths = {b.name: b for b in bundles}
    classifiers = {b.name: open_classifier(b, "litert") for b in bundles}
    rates = {c.bundle.features.sample_rate for c in classifiers.values()}
    if len(rates) != 1:
        raise SystemExit(f"the bundles use several sample rates {rates}; evaluate them separately")
    rate = rates.pop()
    clips = dataset_clips(work / "eval-data", next(iter(classifiers.values())).bundle.labels)
    settings = PipelineSettings()
    verdicts = {b: {c.name: {} for c in conditions} for b in classifiers}
    with tempfile.TemporaryDirectory(prefix="genrecast-winmodel-") as tmp, \
            Progress(True, len(clips) * len(conditions), "clips × conditions") as advance:
        for clip in clips:
            y = load_audio(clip.path, rate)
            for condition in conditions:
                audio = condition.apply(y, rate, condition_rng(0, condition.name, clip.track_id))
                for name, classifier in classifiers.items():
                    verdicts[name][condition.name][clip.track_id] = classify_audio(audio, classifier, settings, Path(tmp)).verdict[0]
                advance(1)
    truth = {c.track_id: c.label for c in clips}
    results = {"clips": sorted(truth), "conditions": [c.name for c in conditions], "bundles": {}}
    for name in classifiers:
        metrics = json.loads((paths[name] / "metrics.json").read_text())
        right = {c: sum(verdicts[name][c][t] == truth[t] for t in truth) for c in verdicts[name]}
        misses = {c: sorted(f"{t}→{verdicts[name][c][t]}" for t in truth if verdicts[name][c][t] != truth[t])
                  for c in verdicts[name]}
        results["bundles"][name] = {
            "right": right, "misses": misses, "verdicts": verdicts[name],
            "held_out_track_accuracy": metrics.get("track_accuracy"), "held_out_tracks": metrics.get("tracks"),
            "held_out_window_accuracy": metrics.get("window_accuracy"),
            "valid_loss": metrics.get("extra", {}).get("valid_loss"),
            "valid_window_accuracy": metrics.get("extra", {}).get("valid_window_accuracy"),
            "augment": json.loads((paths[name] / "bundle.json").read_text()).get("provenance", {}).get("augment", {}).get("copies"),
        }
    (work / "conditions.json").write_text(json.dumps(results, indent=2) + "\n")
    names = list(classifiers)
    lines = [f"| condition (right of {len(truth)}) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for c in results["conditions"]:
        lines.append(f"| {c} | " + " | ".join(str(results["bundles"][n]["right"][c]) for n in names) + " |")
    lines.append("| validation per-window accuracy (chooses) | " + " | ".join(
        f"{results['bundles'][n]['valid_window_accuracy']}" for n in names) + " |")
    lines.append("| held-out per-track accuracy (own test split) | " + " | ".join(
        f"{results['bundles'][n]['held_out_track_accuracy']:.3f} ({results['bundles'][n]['held_out_tracks']})"
        if results["bundles"][n]["held_out_track_accuracy"] is not None else "—" for n in names) + " |")
    text = "\n".join(lines) + "\n\nMisses on clean:\n" + "\n".join(
        f"- {n}: {', '.join(results['bundles'][n]['misses']['clean']) or 'none'}" for n in names) + "\n"
    (work / "conditions.md").write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "prepare":
        prepare(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "evaluate":
        evaluate(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
    else:
        raise SystemExit("usage: window_model_conditions.py prepare DATA WORK | evaluate WORK BUNDLE...")
