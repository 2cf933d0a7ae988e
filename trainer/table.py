"""A summary-feature bundle trained on a published GTZAN feature table.

The Kaggle ``features_30_sec.csv`` has one row per 30-s GTZAN track: mean and
variance over frames of chroma, RMS, spectral centroid / bandwidth / rolloff,
zero-crossing rate and 20 MFCCs (plus harmonic/percussive and tempo columns the
daemon cannot compute yet). :func:`train_from_table` fits a small ensemble of
MLPs on the cheap columns, evaluates it honestly, and writes a bundle whose
``FeatureConfig(kind="summary")`` lets the daemon compute the same columns
from audio with :func:`genrecast.daemon.features.clip_summary`.

Evaluation:

* 10-fold cross-validation, stratified by genre (one row is one track, so the
  folds are track-disjoint), on the training rows; per-fold accuracy mean ± std.
* The artist-filtered split of Kereliuk, Sturm & Larsen (2015): a model trained
  on ``train_filtered`` + ``valid_filtered`` (minus the excluded ids), tested
  on ``test_filtered`` (290 tracks). GTZAN repeats artists, so this figure is
  the honest one; random CV is optimistic.

The architecture was chosen by cross-validation on the table alone (see
:data:`SELECTION_GRID` and ``python -m genrecast.trainer.table select``).

Reproducible: fixed seeds, deterministic TF ops, one thread; two runs write
the same ``model.tflite`` bytes.

Parts: reading the table and its lists (:mod:`genrecast.trainer.table_data`), CV and
selection (:mod:`genrecast.trainer.table_cv`), the models (:mod:`genrecast.trainer.table_model`,
:mod:`genrecast.trainer.table_svc`); this module trains, evaluates and writes the bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from genrecast.daemon.bundle import KERAS_FILE, Bundle
from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig
from genrecast.daemon.level import LEVEL_MODES
from genrecast.trainer.keras_zip import normalise_keras_zip
from genrecast.trainer.shifts import Augmentation
from genrecast.trainer.splits import reserved_ids_near
from genrecast.trainer.table_cv import (  # noqa: F401  (re-exported: the table's public API)
    check_rows,
    choose,
    cross_validate,
    read_selection,
    fit_rows,
    select,
    standardise_stats,
    stratified_folds,
)
from genrecast.trainer.table_data import (  # noqa: F401  (re-exported)
    EXPENSIVE_COLUMNS,
    FILTERED_SPLIT_SUBDIR,
    Table,
    check_columns,
    default_splits_dir,
    ids_in_dir,
    read_filtered_split,
    read_table,
    track_id,
    training_exclusions,
)
from genrecast.trainer.out_dir import EVALUATION_SUBDIR  # noqa: F401  (the evaluation model's folder; re-exported)
from genrecast.trainer.table_model import (  # noqa: F401  (re-exported)
    DEFAULT_MLP,
    MAX_BUNDLE_BYTES,
    MAX_PARAMETERS,
    SELECTION_GRID,
    SELECTION_SEEDS,
    MLPConfig,
    build_models,
    fit,
    predict,
    setup_determinism,
)
from genrecast.trainer.table_svc import CALIBRATION_FOLDS

log = logging.getLogger(__name__)

#: The windows of sources at or below 22.05 kHz go up to 44.1 kHz and back (soxr), so 22.05, 44.1
#: and 48 kHz recordings of the same music carry the same band limit (FeatureConfig.band_stage_hz).
#: The model is trained on the table's full-band rows with the shifts of 44.1/48-kHz round trips
#: among its augmentation.
BAND_STAGE_HZ = 44100

#: Without the artist-filtered lists, the evaluation model holds out one of this many stratified folds.
HOLDOUT_FOLDS = 10


def plan_rows(table: Table, source: str, exclude: set[str], splits_dir: str | Path | None, *, seed: int, cv_folds: int,
              svc: bool) -> tuple[Table, np.ndarray, np.ndarray, str]:
    """The rows each fit of :func:`train_from_table` uses: (pool of non-excluded rows, train and test
    masks over ``table``'s rows, split name), checked before any fit. Raises ``ValueError``, one line
    naming ``source`` and the fix, when a fit would lack rows (:func:`check_rows`; the lists'
    training side needs every genre, and their test side a row)."""
    pool = table.without(exclude)
    if len(pool.ids) < len(table.ids):
        source = f"{source} less its {len(table.ids) - len(pool.ids)} excluded rows"
    check_rows(pool, source, cv_folds=cv_folds, holdout_folds=None if splits_dir is not None else HOLDOUT_FOLDS, svc=svc)
    if splits_dir is None:  # no lists: hold out a stratified tenth
        folds = stratified_folds(pool.y, HOLDOUT_FOLDS, seed)
        return pool, np.isin(table.ids, pool.ids[folds != 0]), np.isin(table.ids, pool.ids[folds == 0]), "track"
    train_ids, test_ids = read_filtered_split(splits_dir)
    present = set(table.ids.tolist())
    train_mask = np.isin(table.ids, sorted((train_ids & present) - exclude))
    test_mask = np.isin(table.ids, sorted(test_ids & present))
    counts = np.bincount(table.y[train_mask], minlength=len(table.labels))
    need = CALIBRATION_FOLDS if svc else 1
    if counts.min() < need:
        genre = table.labels[int(counts.argmin())]
        raise ValueError(f"the training lists (train, valid) in {splits_dir} hold {int(counts.min())} of the {genre} rows "
                         f"of {source}; each genre needs at least {need} there: give --split-lists DIR of lists that "
                         f"hold more of them, or a table with more {genre} rows")
    if not test_mask.any():
        raise ValueError(f"the test list in {splits_dir} holds no row of {source}; give --split-lists DIR of lists "
                         "whose test list holds some of its tracks")
    return pool, train_mask, test_mask, "artist-filtered"



def train_from_table(
    csv_path: str | Path,
    out_dir: str | Path,
    *,
    columns: Iterable[str] = DEFAULT_SUMMARY_COLUMNS,
    exclude_ids: Iterable[str] = (),
    seed: int = 0,
    splits_dir: str | Path | None = None,
    config: MLPConfig = DEFAULT_MLP,
    cv_folds: int = 10,
    selection: list[dict[str, Any]] | None = None,
    level: str = "normalised",
    augmentation: Augmentation | None = None,
) -> Bundle:
    """Train a summary-feature bundle on a feature table and write it to ``out_dir``.

    ``exclude_ids`` (e.g. the clips the tests classify) are left out of every
    fit. ``splits_dir`` holds the artist-filtered lists; the model trained on
    train + valid is evaluated on test and reported (metrics.json, report.md).
    ``cv_folds`` 0 skips cross-validation (for quick tests). ``level``
    ``normalised`` (the default) takes the recording level out of the columns, in
    training and in the daemon alike; ``absolute`` keeps librosa's values. The shipped
    model is then trained on every row not excluded.
    ``augmentation`` adds shifted copies of the training rows (:mod:`genrecast.trainer.shifts`)
    in every fit, cross-validation included. Raises ``ValueError`` before any fit when a fit
    would lack rows (:func:`plan_rows`).
    """
    from genrecast.trainer.export import save_bundle
    from genrecast.trainer.report import write_report

    out_dir = Path(out_dir)
    table = read_table(csv_path, columns, level)
    exclude = {track_id(t) for t in exclude_ids}
    unknown = sorted(exclude - set(table.ids.tolist()))
    if unknown:
        log.warning("%d excluded ids are not in the table: %s", len(unknown), ", ".join(unknown[:5]))
    pool, train_mask, test_mask, split_name = plan_rows(table, str(csv_path), exclude, splits_dir, seed=seed,
                                                         cv_folds=cv_folds, svc=bool(config.svc_c))
    log.info("table %s: %d tracks, %d columns; %d excluded, %d used", csv_path, len(table.ids), len(table.columns), len(table.ids) - len(pool.ids), len(pool.ids))

    extra: dict[str, Any] = {"model": config.label(), "model_config": {**asdict(config), "hidden": list(config.hidden)}}
    if augmentation is not None:
        extra["augmentation"] = augmentation.describe()
    if cv_folds:
        cv = cross_validate(config, pool, n_folds=cv_folds, seed=seed, augmentation=augmentation)
        log.info("cross-validation: %.4f ± %.4f over %d folds", cv["mean"], cv["std"], cv_folds)
        extra["cv_accuracy_mean"] = cv["mean"]
        extra["cv_accuracy_std"] = cv["std"]
        extra["cv"] = cv
    if selection:
        extra["selection"] = {
            "method": (
                f"10-fold stratified CV repeated with fold seeds {list(SELECTION_SEEDS)} on the table's "
                "non-excluded rows; never the gtzan-sample clips"
            ),
            "grid": selection,
            "rule": f"best CV mean among configurations of at most {MAX_PARAMETERS} parameters (bundle size)",
            "chosen": config.label(),
        }

    # The honest figure: the artist-filtered split (a model that never saw the test tracks).
    if splits_dir is not None:
        extra["curves_note"] = "validation curve = the test tracks, monitored only (fixed epochs, no early stopping)"
    sizes = {"train_tracks": int(train_mask.sum()), "test_tracks": int(test_mask.sum())}
    ys = table.y[test_mask]
    log.info("%s split: training on %d tracks, testing on %d", split_name, int(train_mask.sum()), len(ys))
    model, history, mean, std = fit_rows(
        config, table.x[train_mask], table.y[train_mask], len(table.labels), seed=seed,
        test_ids=table.ids[test_mask].tolist(), augmentation=augmentation, validation=(table.x[test_mask], ys),
        columns=table.columns,
    )
    test_prob = predict(model, (table.x[test_mask] - mean) / std)
    test_acc = float((test_prob.argmax(axis=1) == ys).mean())
    log.info("%s test accuracy: %.4f", split_name, test_acc)
    test_ids = sorted(table.ids[test_mask].tolist())
    extra["test_track_ids_sha256"] = hashlib.sha256("\n".join(test_ids).encode()).hexdigest()
    features = FeatureConfig(kind="summary", columns=table.columns, context_seconds=30.0, window_seconds=3.0, level=level,
                             band_stage_hz=BAND_STAGE_HZ)
    provenance = {
        "arch": "table-mlp",
        "source": "feature-table",
        "table": Path(csv_path).name,
        "table_sha256": table.sha256,
        "table_rows": int(len(table.ids)),
        "excluded_ids": sorted(exclude),
        "seed": seed,
        "model_config": extra["model_config"],
        "input": f"standardised summary features ((x - mean) / std, stats of the trained rows), level {level}",
        "splits_dir": Path(splits_dir).name if splits_dir is not None else None,
        "augmentation": ({**augmentation.describe(), "clip_ids": sorted(augmentation.shifts.tracks.tolist())}
                         if augmentation is not None else None),  # clip_ids: their audio gave shifts
    }
    # Keep the evaluation model (LiteRT only) so anyone can re-check the test figure.
    eval_dir = out_dir / EVALUATION_SUBDIR
    save_bundle(
        model, eval_dir, labels=list(table.labels), features=features, mean=mean, std=std,
        metrics={"split": split_name, "test_accuracy": round(test_acc, 4), "test_tracks": len(test_ids)},
        provenance={**provenance, "trained_rows": int(train_mask.sum()), "role": f"evaluation model of the {split_name} split, trained without its test tracks"},
    )
    (eval_dir / KERAS_FILE).unlink()

    # The shipped model: every row that is not excluded.
    log.info("final model: training on all %d non-excluded tracks", len(pool.ids))
    final, _, mean, std = fit_rows(config, pool.x, pool.y, len(table.labels), seed=seed, augmentation=augmentation,
                                   columns=table.columns)

    out_dir.mkdir(parents=True, exist_ok=True)
    extra["test_accuracy"] = round(test_acc, 4)
    metrics = write_report(
        out_dir, labels=list(table.labels), y_true=ys, y_prob=test_prob, split_name=split_name,
        split_sizes=sizes, track_ids=table.ids[test_mask], history=history, extra=extra,
        title="genrecast bundle from the feature table",
    )
    provenance = {
        **provenance,
        "trained_rows": int(len(pool.ids)),
        "role": "shipped model, trained on every non-excluded row",
        "evaluation": {"split": split_name, "model": f"{EVALUATION_SUBDIR}/", "test_accuracy": round(test_acc, 4)},
    }
    bundle = save_bundle(
        final, out_dir, labels=list(table.labels), features=features, mean=mean, std=std,
        metrics=metrics, provenance=provenance,
    )
    normalise_keras_zip(out_dir / KERAS_FILE)  # the Bundle reads the .tflite only
    return bundle


def table_command(
    table: Path,
    out: Path,
    exclude_dir: Path | None,
    splits_dir: Path | None,
    seed: int,
    *,
    selection_file: Path | None = None,
    cv_folds: int = 10,
    level: str = "normalised",
    conditions: str = "quick",
    shifts_from: Path | None = None,
    jobs: int = 1,
) -> Bundle:
    """``genrecast train --table``: train, evaluate and write a bundle; logs a one-line summary.
    ``conditions``: the capture conditions of the report's robustness table, measured on the
    full clips left out of training (:func:`genrecast.trainer.robustness.attach_table_clips`).
    ``shifts_from``: a data folder laid out as ``../shared/data`` whose full clips give the
    feature shifts of :mod:`genrecast.trainer.shifts` (measured with ``jobs`` processes, cached).
    ``selection_file``: the JSON list that ``select`` writes (:func:`read_selection`). Raises
    ``ValueError`` before the shifts and the fits for a malformed selection or rows that cannot
    train (:func:`plan_rows`)."""
    exclude = training_exclusions(table, exclude_dir)
    if shifts_from is not None and level != "normalised":
        raise ValueError("the feature shifts are measured on level-normalised rows; use them with --level normalised")
    if splits_dir is None:
        splits_dir = default_splits_dir(table)
        if splits_dir is not None:
            log.info("using the artist-filtered lists at %s", splits_dir)
    selection = read_selection(selection_file) if selection_file else None
    # The selection chooses the MLPs; the SVC member and the left-out columns were chosen after it (see DEFAULT_MLP).
    config = replace(choose(selection), svc_c=DEFAULT_MLP.svc_c, left_out=DEFAULT_MLP.left_out) if selection else DEFAULT_MLP
    if selection and config != DEFAULT_MLP:
        log.warning("the selection chose %s, not the default %s", config.label(), DEFAULT_MLP.label())
    # Before the long work (the shifts, the fits): every fit has the rows it needs.
    plan_rows(read_table(table, level=level), str(table), exclude, splits_dir, seed=seed, cv_folds=cv_folds,
              svc=bool(config.svc_c))
    augmentation = None
    if shifts_from is not None:
        from genrecast.daemon.cache import cache_dir
        from genrecast.trainer.shifts import EVALUATION_CLIPS, measure_shifts

        features = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, context_seconds=30.0, level="normalised")
        # The audio of gtzan-sample's 6 clips with excerpt ids (left out of the table as part of
        # exclude_dir) may give shifts; the 13 evaluation clips and the reserved ids never do.
        never = reserved_ids_near(table) | set(EVALUATION_CLIPS)
        shifts = measure_shifts(Path(shifts_from), never, features, seed=seed, jobs=jobs,
                                cache_dir=cache_dir() / "shifts")
        augmentation = Augmentation(shifts)
    log.info("model: %s", config.label())
    bundle = train_from_table(
        table, out, exclude_ids=exclude, seed=seed, splits_dir=splits_dir, config=config, cv_folds=cv_folds,
        selection=selection, level=level, augmentation=augmentation,
    )
    from genrecast.trainer.robustness import attach_table_clips

    trained_ids = set(read_table(table, level=level).ids.tolist()) - exclude  # their rows
    if augmentation is not None:
        trained_ids |= set(augmentation.shifts.tracks.tolist())  # their audio
    attach_table_clips(out, table, exclude_dir, trained_ids, conditions, seed=seed)
    m = bundle.metrics
    extra = m.get("extra", {})
    cv_text = (f"CV {extra['cv_accuracy_mean']:.3f} ± {extra['cv_accuracy_std']:.3f}" if "cv_accuracy_mean" in extra
               else "no cross-validation (--cv-folds 0)")
    log.info("trained: %s, %s test %.3f (%d tracks)", cv_text, m["split"]["name"], extra["test_accuracy"],
             m.get("windows", 0))
    return bundle


def main(argv: list[str] | None = None) -> int:
    """``python -m genrecast.trainer.table {train,select} ...``"""
    parser = argparse.ArgumentParser(prog="python -m genrecast.trainer.table", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a bundle from a feature table")
    tr.add_argument("table", type=Path)
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--exclude-dir", type=Path)
    tr.add_argument("--split-lists", type=Path)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--selection", type=Path, help="JSON written by `select`, recorded in the metrics")
    tr.add_argument("--cv-folds", type=int, default=10)
    level_help = "normalised: take the recording level out of the columns (genrecast.daemon.level); absolute: as librosa"
    tr.add_argument("--level", choices=LEVEL_MODES, default="normalised", help=level_help)
    tr.add_argument("--conditions", default="quick", help="capture conditions of the report's robustness table (all, quick, none, names)")
    tr.add_argument("--shifts-from", type=Path, metavar="DATA",
                    help="augment with feature shifts measured on the full clips of this data folder (genrecast.trainer.shifts)")
    tr.add_argument("--jobs", type=int, default=1, help="worker processes for measuring the shifts")
    se = sub.add_parser("select", help="repeated 10-fold CV of SELECTION_GRID on the table (excluded rows left out)")
    se.add_argument("table", type=Path)
    se.add_argument("--out", type=Path, required=True, help="JSON file for the grid's results")
    se.add_argument("--exclude-dir", type=Path)
    se.add_argument("--jobs", type=int, default=1, help="worker processes (one per core)")
    se.add_argument("--level", choices=LEVEL_MODES, default="normalised", help=level_help)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "select":
        table = read_table(args.table, level=args.level)
        exclude = training_exclusions(args.table, args.exclude_dir)
        results = select(table.without(exclude), jobs=args.jobs)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        return 0
    table_command(
        args.table, args.out, args.exclude_dir, args.split_lists, args.seed,
        selection_file=args.selection, cv_folds=args.cv_folds, level=args.level, conditions=args.conditions,
        shifts_from=args.shifts_from, jobs=args.jobs,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
