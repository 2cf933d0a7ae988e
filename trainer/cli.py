"""``genrecast train`` and ``genrecast evaluate``."""

from __future__ import annotations

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

Examples:

  genrecast train ~/gtzan/genres_original --out ~/models/cnn

  genrecast train ~/gtzan --out ~/models/filtered --split-lists ../shared/data/splits/jongpillee_music_dataset_split/GTZAN_split

  genrecast train --table ../shared/data/reference/features_30_sec.csv --out ~/models/table

  genrecast train --detector-data ../shared/data --out ~/models/table
"""


def register(app: typer.Typer) -> None:
    """Add the trainer's commands to the ``genrecast`` app."""

    @app.command(help=TRAIN_HELP)
    def train(
        dataset: Optional[Path] = typer.Argument(None, help="Folder of genre sub-folders with audio files."),
        out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
        table: Optional[Path] = typer.Option(None, "--table", help="Train from a feature table CSV instead of audio."),
        exclude_dir: Optional[Path] = typer.Option(None, "--exclude-dir", help="(--table) leave out the rows of the clips in this genre folder."),
        window_seconds: float = typer.Option(3.0, help="Seconds of audio per window."),
        n_mfcc: int = typer.Option(13, help="MFCC coefficients per frame."),
        arch: str = typer.Option(DEFAULT_ARCH, help=f"Architecture: {', '.join(ARCHS)} (mlp is the tutorial's network)."),
        split: str = typer.Option("track", help="track (grouped by track, honest) or segment (the tutorial's inflated random split of windows)."),
        split_lists: Optional[Path] = typer.Option(None, help="Folder with train/valid/test lists of file names (overrides --split)."),
        epochs: int = typer.Option(100, min=1, help="Most epochs; early stopping on validation loss ends sooner."),
        seed: int = typer.Option(0, help="Seed of split, initialisation and shuffling."),
        workers: Optional[int] = typer.Option(None, min=1, help="Processes for feature extraction (default: all cores)."),
        detector_data: Optional[Path] = typer.Option(
            None, "--detector-data", help="Also train the music detector on this folder (laid out as ../shared/data) "
            "and add it to the bundle; alone, add it to the existing bundle at --out."),
    ) -> None:
        from genrecast.daemon.cli import fail

        try:
            if table is not None:
                from genrecast.trainer.table import table_command

                table_command(table=table, out=out, exclude_dir=exclude_dir, splits_dir=split_lists, seed=seed)
            elif dataset is not None:
                _train_audio(dataset, out, window_seconds, n_mfcc, arch, split, split_lists, epochs, seed, workers)
            elif detector_data is None:
                fail("give a DATASET folder, --table FILE.csv, or --detector-data DIR to add a music detector to --out")
            if detector_data is not None:
                _train_detector(detector_data, out, seed, workers)
        except (ValueError, OSError) as exc:
            fail(str(exc))

    @app.command()
    def evaluate(
        bundle: Path = typer.Argument(..., help="Bundle directory made by `genrecast train`."),
        dataset: Path = typer.Argument(..., help="Folder of genre sub-folders with audio files."),
        split: str = typer.Option("recorded", help="recorded (the bundle's own test tracks), track, segment or all."),
        split_lists: Optional[Path] = typer.Option(None, help="Folder with train/valid/test lists (its test list is used)."),
        seed: int = typer.Option(0, help="Seed for --split track|segment."),
        out: Optional[Path] = typer.Option(None, help="Also write metrics.json, report.md and plots here."),
        json_output: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ) -> None:
        """Re-evaluate a saved bundle on a dataset: per-window and per-track accuracy on a named split."""
        import json

        from genrecast.daemon.cli import fail
        from genrecast.trainer.evaluate import evaluate as run_evaluate

        try:
            metrics = run_evaluate(bundle, dataset, split=split, split_lists=split_lists, seed=seed, out=out)
        except (ValueError, OSError) as exc:
            fail(str(exc))
        if json_output:
            typer.echo(json.dumps(metrics))
            return
        typer.echo(summary_line(metrics))


def summary_line(metrics: dict) -> str:
    split = metrics.get("split", {})
    sizes = split.get("sizes", {})
    return (
        f"split {split.get('name')}: per-window accuracy {metrics['window_accuracy']:.3f} ({metrics['windows']} windows), "
        f"per-track accuracy {metrics.get('track_accuracy', float('nan')):.3f} ({metrics.get('tracks', 0)} tracks)"
        + (f"; train {sizes.get('train_tracks')} tracks" if sizes.get("train_tracks") else "")
    )


def _train_audio(dataset, out, window_seconds, n_mfcc, arch, split, split_lists, epochs, seed, workers) -> None:
    from genrecast.daemon.features import FeatureConfig
    from genrecast.trainer.train import TrainSettings, train

    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    cfg = FeatureConfig(window_seconds=window_seconds, n_mfcc=n_mfcc)
    settings = TrainSettings(arch=arch, split=split, split_lists=split_lists, epochs=epochs, seed=seed, workers=workers)
    bundle, features = train(dataset, out, cfg, settings)
    if features.skipped:
        typer.echo(f"skipped {len(features.skipped)} file(s):", err=True)
        for path, reason in features.skipped:
            typer.echo(f"  {reason}", err=True)
    typer.echo(summary_line(json_load(out / "metrics.json")))
    typer.echo(f"bundle written to {out} (model id {bundle.model_id}); report: {out / 'report.md'}")


def _train_detector(data: Path, out: Path, seed: int, workers: Optional[int]) -> None:
    from genrecast.daemon.bundle import BundleError
    from genrecast.trainer.detector import train_detector

    try:
        metrics = train_detector(data, out, seed=seed, jobs=workers)
    except BundleError as exc:
        raise ValueError(f"{exc} (--detector-data alone adds a detector to an existing bundle)") from None
    clean = metrics["test"]["clean"]
    typer.echo(
        f"music detector ({metrics['id']}) added to {out}: test windows speech→not_music {clean['speech']['share']:.3f}, "
        f"environment→not_music/silence {clean['environment']['share']:.3f}, music→music {clean['music']['share']:.3f}; "
        f"gate enter {metrics['gate']['enter']:.2f} / leave {metrics['gate']['leave']:.2f}; report: {out / 'report.md'}"
    )


def json_load(path: Path) -> dict:
    import json

    return json.loads(path.read_text())
