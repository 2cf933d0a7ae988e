"""``genrecast train`` and ``genrecast evaluate``."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Optional

import typer

from genrecast.trainer.archs import ARCHS, DEFAULT_ARCH

TRAIN_HELP = """Train a genre model and write a bundle directory (model.keras, model.tflite, bundle.json, metrics.json, report.md, plots).

From audio: DATASET is a folder with one sub-folder per genre (GTZAN's genres_original/ or genres/ work as they are).
Windows of one track never land on both sides of the split.

From a published feature table: --table features_30_sec.csv (no DATASET).

With --detector-data DIR (a folder laid out as ../shared/data: music, speech, environment sounds) the
bundle also gets a music detector, which gives speech and noise the state not_music instead of a genre.
Without DATASET and --table, the detector is added to the existing bundle at --out.

\bExamples:
  # a window model from GTZAN audio (Kaggle or original layout)
  genrecast train ~/gtzan/genres_original --out ~/models/cnn
  # the same with the artist-filtered split
  genrecast train ~/gtzan --out ~/models/filtered --split-lists \\
      ../shared/data/splits/jongpillee_music_dataset_split/GTZAN_split
  # a table model from the published feature table
  genrecast train --table ../shared/data/reference/features_30_sec.csv \\
      --exclude-dir ../shared/data/gtzan-sample --out ~/models/table
  # add a music detector to that bundle
  genrecast train --detector-data ../shared/data --out ~/models/table

Needs the trainer's extras: pip install 'genrecast\\[train]'.
"""

#: Modules `genrecast train` needs beyond the daemon's (the `train` extra).
TRAIN_MODULES = ("tensorflow", "keras", "matplotlib", "librosa")
TRAIN_EXTRA_HINT = "pip install 'genrecast[train]' (the daemon-only install has no tensorflow)"


def seed_problem(seed: int) -> str | None:
    """Why ``--seed`` cannot seed numpy (0 to 2**32 - 1), or None."""
    return None if 0 <= seed < 2**32 else f"--seed must be 0 to {2**32 - 1} (got {seed})"


#: The folder a folder option names, for the hint when it is given a file.
FOLDER_KINDS = {"--split-lists": "the folder of train/valid/test lists",
                "--shifts-from": "the folder laid out as ../shared/data",
                "--detector-data": "the folder laid out as ../shared/data"}


def path_problem(flag: str, path: Path, kind: str) -> str:
    """The line for a ``FLAG PATH`` that is not the file or folder (``kind``) it must be."""
    hint = (" (a folder; give the file)" if kind == "file" and path.is_dir() else
            f" (a file; give {FOLDER_KINDS.get(flag, 'the folder of genre sub-folders')} that holds it)"
            if kind == "folder" and path.is_file() else "")
    return f"{flag} {path}: no such {kind}{hint}"


def missing_train_modules() -> list[str]:
    """The modules of :data:`TRAIN_MODULES` that cannot be imported here (looked up, not imported)."""
    import importlib.util

    missing = []
    for name in TRAIN_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def register(app: typer.Typer) -> None:
    """Add the trainer's commands to the ``genrecast`` app."""

    @app.command(help=TRAIN_HELP)
    def train(
        dataset: Optional[Path] = typer.Argument(None, metavar="DATASET", help="Folder of genre sub-folders with audio files (not with --table)."),
        out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Bundle directory to write."),
        table: Optional[Path] = typer.Option(None, "--table", metavar="FILE.csv", help="Train from a feature table CSV instead of audio."),
        exclude_dir: Optional[Path] = typer.Option(None, "--exclude-dir", metavar="DIR", help="(--table) leave out the rows of the clips in this genre folder (the default model leaves out ../shared/data/gtzan-sample)."),
        cv_folds: int = typer.Option(10, "--cv-folds", metavar="K", help="(--table) folds of the cross-validation reported in metrics.json; 0 skips it (quicker, no CV figure)."),
        selection: Optional[Path] = typer.Option(None, "--selection", metavar="FILE.json", help="(--table) choose the model by this grid search's results and record them, e.g. the default bundle's selection.json. \\[default: the shipped configuration]"),
        shifts_from: Optional[Path] = typer.Option(None, "--shifts-from", metavar="DATA", help="(--table) augment with the feature shifts that capture conditions (gain, rates, codecs, rooms, noise) cause on the full clips of this data folder (the default model uses ../shared/data)."),
        window_seconds: float = typer.Option(3.0, metavar="SECONDS", help="Seconds of audio per window."),
        n_mfcc: int = typer.Option(13, metavar="N", help="MFCC coefficients per frame."),
        arch: str = typer.Option(DEFAULT_ARCH, metavar="NAME", help=f"Architecture: {', '.join(ARCHS)} (mlp is the tutorial's network)."),
        split: str = typer.Option("track", metavar="NAME", help="track (grouped by track, honest) or segment (the tutorial's inflated random split of windows)."),
        split_lists: Optional[Path] = typer.Option(None, metavar="DIR", help="Folder with train/valid/test lists of file names (overrides --split)."),
        epochs: int = typer.Option(100, metavar="N", help="Most epochs (at least 1); early stopping on validation loss ends sooner."),
        seed: int = typer.Option(0, metavar="N", help="Seed of split, initialisation and shuffling (0 or more)."),
        augment: int = typer.Option(0, "--augment", metavar="N", help="(audio) Add N copies of every TRAINING file, each "
                                    "under a random capture condition (gain, room, small speaker, codec, stereo, sample "
                                    "rate, noise; seeded by --seed), before the features. Validation and test tracks stay "
                                    "clean; provenance.augment records the copies."),
        workers: Optional[int] = typer.Option(None, metavar="N", help="Processes for feature extraction (at least 1). \\[default: all cores]"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Extract a DATASET's features on the Dask cluster at ADDRESS, e.g. tcp://10.0.0.5:8786 (needs genrecast\\[cluster]; the workers must see DATASET at the same path)."),
        detector_data: Optional[Path] = typer.Option(
            None, "--detector-data", metavar="DIR", help="Also train the music detector on this folder (laid out as ../shared/data) "
            "and add it to the bundle; alone, add it to the existing bundle at --out."),
        conditions: str = typer.Option(
            "quick", "--conditions", metavar="NAMES|quick|all|none",
            help="Capture conditions of the robustness table in report.md and metrics.json, measured on the held-out "
            "full clips (the test tracks; for --table, the clips of --exclude-dir, else of gtzan-sample in the data "
            "folder, that it never trained on; never reserved ids; not measured with --split segment, which holds out "
            "no track). quick: "
            "clean, gain-24dB, stereo, mp3-128k-stereo-44.1k, speaker-room-noise15dB; all: every condition; none: skip."),
    ) -> None:
        from genrecast.daemon.cli import fail, full_disk, setup_logging

        if table is None and dataset is None and detector_data is None:
            fail("give a DATASET folder, --table FILE.csv, or --detector-data DIR to add a music detector to --out")
        for flag, path, kind in (("--table", table, "file"), ("--selection", selection, "file"), ("--exclude-dir", exclude_dir, "folder"),
                                 ("--shifts-from", shifts_from, "folder"), ("--split-lists", split_lists, "folder"),
                                 ("DATASET", dataset, "folder"), ("--detector-data", detector_data, "folder")):
            if path is not None and not (path.is_file() if kind == "file" else path.is_dir()):
                fail(path_problem(flag, path, kind))
        if table is not None and dataset is not None:
            fail(f"give a DATASET folder (a model from audio) or --table FILE.csv (a model from the table), not both ({dataset})")
        given = {"--exclude-dir": exclude_dir is not None, "--selection": selection is not None,
                 "--shifts-from": shifts_from is not None, "--cv-folds": cv_folds != 10}
        if table is None and (flags := [f for f, on in given.items() if on]):
            fail(f"{', '.join(flags)} only {'go' if len(flags) > 1 else 'goes'} with --table FILE.csv (a table model); "
                 "a model from audio has no use for them")
        given = {"--arch": arch != DEFAULT_ARCH, "--split": split != "track", "--augment": augment != 0,
                 "--window-seconds": window_seconds != 3.0, "--n-mfcc": n_mfcc != 13, "--epochs": epochs != 100,
                 "--scheduler": scheduler is not None}
        if table is not None and (flags := [f for f, on in given.items() if on]):
            fail(f"{', '.join(flags)} only {'go' if len(flags) > 1 else 'goes'} with a DATASET of audio; a table model "
                 "(--table) is the MLP ensemble and SVC of the default model on the table's 30-s rows")
        from genrecast.trainer.splits import TRAIN_SPLITS, choices

        if split not in TRAIN_SPLITS and split_lists is None:  # before any feature is extracted
            fail(f"--split {split!r} is not a split; choose {choices(TRAIN_SPLITS)}, or --split-lists DIR")
        if augment < 0:
            fail(f"--augment must be 0 or more copies (got {augment})")
        if problem := seed_problem(seed):
            fail(problem)
        if not 0.25 <= window_seconds <= 60:  # nan and inf too
            fail(f"--window-seconds must be 0.25 to 60 seconds (got {window_seconds})")
        for flag, value in (("--epochs", epochs), ("--workers", workers)):
            if value is not None and value < 1:
                fail(f"{flag} must be at least 1 (got {value})")
        from genrecast.trainer.robustness import conditions_problem

        if problem := conditions_problem(conditions, "quick, all or none", none_ok=True, augment=augment > 0):
            fail(problem)  # not after the training
        if cv_folds == 1 or cv_folds < 0:
            fail(f"--cv-folds must be 0 (no cross-validation) or at least 2 (got {cv_folds})")
        if scheduler is not None:
            try:
                import distributed  # noqa: F401
            except ImportError:
                fail("--scheduler needs dask.distributed: pip install 'genrecast[cluster]'")
        if missing := missing_train_modules():
            fail(f"`genrecast train` needs {', '.join(missing)}: {TRAIN_EXTRA_HINT}", 1)
        from genrecast.daemon.interrupt import exit_status, how, sigterm_interrupts
        from genrecast.trainer.export import quiet_tensorflow
        from genrecast.trainer.out_dir import check_bundle_dir, clear_stale_bundle_files, staged_bundle

        quiet_tensorflow()
        setup_logging()
        logging.getLogger("tensorflow").setLevel(logging.WARNING)  # not "Assets written to /tmp/..." per export
        new_bundle = table is not None or dataset is not None
        if new_bundle:  # before any work: a new bundle goes there
            try:
                check_bundle_dir(out)
            except ValueError as exc:
                fail(str(exc))
        started = time.time()
        said: list[str] = []  # after the bundle is in place
        # the staged bundle is loaded to check it, which logged "model bundle OUT/.genrecast-partial-PID has no music
        # detector" (a folder gone by the end, and said before --detector-data added one): said once, below
        bundle_log = logging.getLogger("genrecast.daemon.bundle")
        bundle_log.setLevel(logging.WARNING)
        try:
            with sigterm_interrupts(), staged_bundle(out) if new_bundle else contextlib.nullcontext(out) as where:
                if table is not None:
                    from genrecast.trainer.table import table_command

                    bundle = table_command(table=table, out=where, exclude_dir=exclude_dir, splits_dir=split_lists,
                                           seed=seed, selection_file=selection, cv_folds=cv_folds, conditions=conditions,
                                           shifts_from=shifts_from, jobs=workers or os.cpu_count() or 1)
                    said.append(table_summary_line(bundle, out))
                elif dataset is not None:
                    said += _train_audio(dataset, where, out, window_seconds, n_mfcc, arch, split, split_lists, epochs,
                                         seed, workers, conditions, scheduler, augment)
                if detector_data is not None:
                    said.append(_train_detector(detector_data, where, out, seed, workers))
            if new_bundle:  # the run succeeded: an older bundle's leftovers (its detector, say) go
                clear_stale_bundle_files(out, started)
        except (ValueError, OSError) as exc:
            fail(isinstance(exc, OSError) and full_disk(
                exc, "--out", out, "free some space there or choose another --out"
                + (f" (nothing was written to {out})" if new_bundle else "")) or str(exc))
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (a batch job's stop)
            fail(f"{how(exc)}; nothing was written to {out}" if new_bundle else how(exc), exit_status(exc))
        finally:
            bundle_log.setLevel(logging.NOTSET)
        if new_bundle and detector_data is None:
            logging.getLogger(__name__).info(
                "the bundle has no music detector (every window that is not silent counts as music); add one with "
                "`genrecast train --detector-data DIR --out %s`", out)
        for line in said:
            typer.echo(line)

    @app.command(help=EVALUATE_HELP)
    def evaluate(
        bundle: Path = typer.Argument(..., metavar="BUNDLE", help="Bundle directory made by `genrecast train`."),
        dataset: Path = typer.Argument(..., metavar="DATASET", help="Folder of genre sub-folders with audio files."),
        split: str = typer.Option("recorded", metavar="NAME", help="recorded (the bundle's own test tracks), track, segment or all."),
        split_lists: Optional[Path] = typer.Option(None, metavar="DIR", help="Folder with train/valid/test lists: its test list replaces --split (not with --conditions)."),
        seed: int = typer.Option(0, metavar="N", help="Seed for --split track|segment, and of the --conditions (rooms, noise); 0 or more."),
        out: Optional[Path] = typer.Option(None, metavar="DIR", help="Also write metrics.json, report.md and plots here (replacing an earlier evaluation's; files of those names it did not write are refused)."),
        json_output: bool = typer.Option(False, "--json", metavar="", help="Print the metrics as JSON."),
        conditions: Optional[str] = typer.Option(
            None, "--conditions", metavar="NAMES|all",
            help="Classify every held-out clip under these capture conditions (comma-separated names, or all, "
            "targets, quick) as `genrecast classify` does; print per-condition accuracy and how many verdicts "
            "differ from clean (conditions.json lists them), and write conditions.json, conditions.md and conditions.png to --out (default ./genrecast-conditions)."),
    ) -> None:
        import json

        from genrecast.daemon.cli import fail, full_disk, setup_logging

        setup_logging()
        if missing := missing_train_modules():  # before any clip is classified
            fail(f"`genrecast evaluate` needs {', '.join(missing)}: {TRAIN_EXTRA_HINT}", 1)
        if problem := seed_problem(seed):
            fail(problem)
        from genrecast.trainer.splits import CONDITION_SPLITS, EVALUATE_SPLITS, choices

        if split_lists is not None and conditions is not None:
            fail("--split-lists does not go with --conditions, which classifies the bundle's held-out clips "
                 "(--split recorded) or every clip (--split all)")
        if split_lists is not None and not split_lists.is_dir():  # before any clip is read
            fail(path_problem("--split-lists", split_lists, "folder"))
        if split_lists is not None and split != "recorded":
            fail(f"--split-lists DIR chooses the test tracks in place of --split {split}; give one of them")
        splits = CONDITION_SPLITS if conditions is not None else EVALUATE_SPLITS
        if split not in splits and (split_lists is None or conditions is not None):  # before any clip is read
            fail(f"--split {split!r} is not a split{' for --conditions' if conditions is not None else ''}; choose "
                 f"{choices(splits)}" + (", or --split-lists DIR" if conditions is None else ""))
        if conditions is not None:
            from genrecast.trainer.robustness import conditions_problem

            if problem := conditions_problem(conditions, "targets, quick or all", none_ok=False):
                fail(problem)
        written = out or (Path("genrecast-conditions") if conditions is not None else None)
        if written is not None:
            from genrecast.trainer.out_dir import check_report_dir, writable_problem

            if problem := writable_problem(written):
                fail(problem)
            if (written / "bundle.json").is_file():
                fail(f"--out {written} holds a bundle: its own report.md and metrics.json would be overwritten; "
                     "choose another folder")
            try:
                check_report_dir(written)
            except ValueError as exc:
                fail(str(exc))
        from genrecast.daemon.interrupt import exit_status, how, sigterm_interrupts

        try:
            with sigterm_interrupts():  # a batch job's stop ends it as Ctrl-C does
                if conditions is not None:
                    from genrecast.trainer.robustness import evaluate_command

                    results = evaluate_command(bundle, dataset, conditions, split=split, seed=seed,
                                               out=out or Path("genrecast-conditions"))
                else:
                    from genrecast.trainer.evaluate import evaluate as run_evaluate

                    metrics = run_evaluate(bundle, dataset, split=split, split_lists=split_lists, seed=seed, out=out)
        except ModuleNotFoundError as exc:
            if exc.name not in TRAIN_MODULES:
                raise
            fail(f"`genrecast evaluate` needs {exc.name}: {TRAIN_EXTRA_HINT}", 1)
        except (ValueError, OSError) as exc:
            fail(isinstance(exc, OSError) and written is not None
                 and full_disk(exc, "--out", written, "free some space there or choose another --out") or str(exc))
        except KeyboardInterrupt as exc:  # it ended with no line at all (exit 130), and SIGTERM with none either
            fail(how(exc), exit_status(exc))
        if conditions is not None:
            typer.echo(json.dumps(results) if json_output else results["text"])
            return
        if skipped := metrics.get("skipped"):
            typer.echo(f"skipped {len(skipped)} file(s):", err=True)
            for reason in skipped:
                typer.echo(f"  {reason}", err=True)
        if warning := metrics.get("split", {}).get("warning"):
            typer.echo(f"genrecast: warning: {warning}", err=True)
        if json_output:
            typer.echo(json.dumps(metrics))
            return
        typer.echo(summary_line(metrics))


EVALUATE_HELP = """Re-evaluate a saved bundle on a dataset: per-window and per-track accuracy on a named split.

\bExample (after the small `genrecast train` example of the README):
  genrecast evaluate /tmp/m ../shared/data/gtzan-sample

With --conditions, the clips are classified as `genrecast classify` does (verdict = mean over windows; for table bundles over those with the full 30-s context) under named capture conditions (gain, stereo, sample rates, codecs, small speaker in a room, noise; see genrecast.trainer.conditions), for audio and feature-table bundles alike; the clips are the bundle's held-out ones (--split recorded) or all (--split all), never the reserved ids.

Names: clean, gain-24dB, gain-3dB, gain+3dB, gain+6dB, stereo, rate-22.05k, rate-44.1k, rate-48k, wideband-16k, rate-8k, telephone-8k, mp3-128k, mp3-48k, aac-96k, mp3-128k-stereo-44.1k, aac-96k-stereo-44.1k, opus-32k, speaker, room, speaker-room, speaker-room-noise15dB, pink-noise-15dB, babble-10dB, environment-10dB; or all, targets (the robustness issue's table), quick (clean, gain-24dB, stereo, mp3-128k-stereo-44.1k, speaker-room-noise15dB).

\bExamples:
  genrecast evaluate daemon/default_bundle ../shared/data/gtzan-sample \\
      --conditions clean,gain-24dB,stereo --out /tmp/cond
"""


def table_summary_line(bundle, out: Path) -> str:
    """``bundle written to OUT (model id ...): CV mean ± std over K folds, SPLIT test ACC (N tracks); report: ...``"""
    metrics = bundle.metrics
    extra = metrics.get("extra", {})
    cv = extra.get("cv")
    cv_text = f"CV {cv['mean']:.3f} ± {cv['std']:.3f} over {cv['folds']} folds of {cv['tracks']} tracks, " if cv else ""
    return (
        f"bundle written to {out} (model id {bundle.model_id}): {cv_text}"
        f"{metrics['split']['name']} test {extra['test_accuracy']:.3f} ({metrics.get('windows', 0)} tracks); "
        f"report: {out / 'report.md'}"
    )


def summary_line(metrics: dict) -> str:
    split = metrics.get("split", {})
    sizes = split.get("sizes", {})
    return (
        f"split {split.get('name')}: per-window accuracy {metrics['window_accuracy']:.3f} ({metrics['windows']} windows), "
        f"per-track accuracy {metrics.get('track_accuracy', float('nan')):.3f} ({metrics.get('tracks', 0)} tracks)"
        + (f"; train {sizes.get('train_tracks')} tracks" if sizes.get("train_tracks") else "")
    )


def _train_audio(dataset, where, out, window_seconds, n_mfcc, arch, split, split_lists, epochs, seed, workers, conditions,
                 scheduler=None, augment=0) -> list[str]:
    """Train a window model on ``dataset`` into ``where``; the lines to say once it is in ``out``."""
    from genrecast.daemon.features import FeatureConfig
    from genrecast.trainer.train import TrainSettings, train

    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    cfg = FeatureConfig(window_seconds=window_seconds, n_mfcc=n_mfcc)
    settings = TrainSettings(arch=arch, split=split, split_lists=split_lists, epochs=epochs, seed=seed, workers=workers,
                             conditions=conditions, scheduler=scheduler, augment=augment)
    bundle, features = train(dataset, where, cfg, settings)
    if features.skipped:
        typer.echo(f"skipped {len(features.skipped)} file(s):", err=True)
        for path, reason in features.skipped:
            typer.echo(f"  {reason}", err=True)
    return [summary_line(json_load(where / "metrics.json")),
            f"bundle written to {out} (model id {bundle.model_id}); report: {out / 'report.md'}"]


def _train_detector(data: Path, where: Path, out: Path, seed: int, workers: Optional[int]) -> str:
    """Train a music detector into the bundle at ``where``; the line to say once it is in ``out``."""
    from genrecast.daemon.bundle import BundleError
    from genrecast.trainer.detector import train_detector

    try:
        metrics = train_detector(data, where, seed=seed, jobs=workers)
    except BundleError as exc:
        raise ValueError(f"{exc} (--detector-data alone adds a detector to an existing bundle)") from None
    clean = metrics["test"]["clean"]
    return (
        f"music detector ({metrics['id']}) added to {out}: test windows speech→not_music {clean['speech']['share']:.3f}, "
        f"environment→not_music/silence {clean['environment']['share']:.3f}, music→music {clean['music']['share']:.3f}; "
        f"gate enter {metrics['gate']['enter']:.2f} / leave {metrics['gate']['leave']:.2f}; report: {out / 'report.md'}"
    )


def json_load(path: Path) -> dict:
    import json

    return json.loads(path.read_text())
