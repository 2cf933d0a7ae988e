"""Figure 11: robustness. The default bundle on the 13 full clips of gtzan-sample that no
model of the project trains on (ids outside the excerpts' 00001-00050, none reserved),
clean and under each target condition of the robustness issue (seed 0, verdict = mean
over windows, as ``genrecast classify``): how many verdicts are right and how many are
the same as clean, next to the tutorial's path (the tutorial's MLP on MFCC windows,
trained here on the excerpts, reserved ids left out). Then accuracy under many random
capture conditions (:func:`genrecast.trainer.conditions.random_draws`), grouped by clip:
the mean over clips of each clip's share of right verdicts, and the spread between clips.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

from benchmarks.common import GENRECAST, Context, env, row

#: The 13 clips of the robustness issue's table.
CLIPS = ("blues.00000", "blues.00053", "blues.00099", "classical.00000", "country.00000", "disco.00000", "hiphop.00000",
         "jazz.00000", "jazz.00054", "metal.00000", "pop.00000", "reggae.00000", "rock.00000")

#: The issue's targets on the 13 clips: (right at least, same as clean at least), per condition.
TARGETS = {"clean": (9, None), "mp3-128k-stereo-44.1k": (8, None), "aac-96k-stereo-44.1k": (8, None), "mp3-48k": (7, None),
           "wideband-16k": (7, None), "speaker-room": (7, None), "speaker-room-noise15dB": (6, None),
           **{name: (None, 12) for name in ("gain-24dB", "gain-3dB", "gain+3dB", "gain+6dB", "stereo", "rate-22.05k",
                                             "rate-44.1k", "rate-48k")}}


def clips(ctx: Context) -> list:
    from genrecast.trainer.robustness import Clip

    found = {p.stem: p for p in ctx.gtzan_sample.glob("*/*.*") if p.stem in CLIPS}
    missing = sorted(set(CLIPS) - set(found))
    if missing:
        raise RuntimeError(f"clips {missing} are missing from {ctx.gtzan_sample}")
    chosen = [Clip(found[t], t, t.split(".")[0]) for t in CLIPS]
    return chosen[::3] if ctx.quick else chosen


def tutorial_bundle(ctx: Context) -> Path:
    """The tutorial's path: its MLP on 2-s MFCC windows of the excerpts (reserved ids left out)."""
    from genrecast.trainer.splits import reserved_ids_near

    excerpts = ctx.data / "gtzan-excerpts"
    reserved = reserved_ids_near(excerpts)
    root = ctx.scratch / "excerpts-unreserved"
    for path in sorted(excerpts.glob("*/*.*")):
        if path.stem not in reserved and path.suffix != ".csv":
            (root / path.parent.name).mkdir(parents=True, exist_ok=True)
            (root / path.parent.name / path.name).symlink_to(path)
    out = ctx.scratch / "tutorial-mlp"
    cmd = [GENRECAST, "train", str(root), "--out", str(out), "--arch", "mlp", "--window-seconds", "2",
           "--conditions", "none", *(["--epochs", "5"] if ctx.quick else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(GENRECAST_CACHE_DIR=str(ctx.scratch / "cache")))
    if proc.returncode != 0:
        raise RuntimeError(f"training the tutorial's MLP failed:\n{proc.stderr[-2000:]}")
    return out


def _measure(bundle: Path | None, chosen: list, conditions: list) -> dict:
    from genrecast.daemon.classifier import open_classifier
    from genrecast.trainer.robustness import evaluate_conditions

    return evaluate_conditions(open_classifier(bundle), chosen, conditions, seed=0, progress=True)


def _by_clip(results: dict, names: list[str]) -> list[float]:
    """Each clip's share of right verdicts over the conditions ``names``."""
    labels = results["labels"]
    return [sum(results["verdicts"][n][c] == labels[c] for n in names) / len(names) for c in results["clips"]]


def run(ctx: Context) -> list[dict]:
    from genrecast.daemon.bundle import default_bundle_path
    from genrecast.trainer import conditions as cond

    chosen = clips(ctx)
    conditions = cond.named("quick" if ctx.quick else "targets")
    draws = cond.random_draws(2 if ctx.quick else 10)
    ours = _measure(default_bundle_path(), chosen, conditions + draws)
    tutorial = _measure(tutorial_bundle(ctx), chosen, conditions + draws)
    n = len(chosen)
    rows = []
    for mine, theirs in zip(ours["conditions"][: len(conditions)], tutorial["conditions"]):
        right_min, same_min = TARGETS.get(mine["name"], (None, None))
        same, tut_same = n - mine["differs_from_clean"], n - theirs["differs_from_clean"]
        target = (f">= {right_min} right" if right_min else f">= {same_min} same as clean") if not ctx.quick else None
        met = None if ctx.quick else (mine["right"] >= right_min if right_min else same >= same_min)
        rows.append(row("robustness", f"{mine['name']}: default bundle right / same as clean of {n}", [mine["right"]],
                        f"of {n}", target=target, met=met,
                        note=f"same as clean {same}; tutorial's path (MLP, 2-s MFCC windows, excerpts): right "
                             f"{theirs['right']}, same as clean {tut_same}",
                        same_as_clean=same, tutorial_right=theirs["right"], tutorial_same_as_clean=tut_same))
    names = [d.name for d in draws]
    for label, results in (("default bundle", ours), ("tutorial's path", tutorial)):
        per_clip = _by_clip(results, names)
        rows.append(row("robustness", f"random conditions, {label}: accuracy grouped by clip", [statistics.mean(per_clip)],
                        "share", note=f"{len(names)} random capture conditions per clip (random_capture, seeded per clip), "
                                      f"{n} clips; spread between clips (std) {statistics.pstdev(per_clip):.2f}",
                        per_clip=dict(zip(results["clips"], per_clip))))
    return rows
