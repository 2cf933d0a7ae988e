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
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from genrecast.daemon.bundle import KERAS_FILE, Bundle
from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig
from genrecast.daemon.level import LEVEL_MODES, normalise_level
from genrecast.trainer.dataset import AUDIO_SUFFIXES, normalise_track_id
from genrecast.trainer.shifts import Augmentation
from genrecast.trainer.splits import RESERVED_IDS_FILE, read_list, reserved_ids_near
from genrecast.trainer.table_model import (  # noqa: F401  (re-exported: the table's public API)
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

log = logging.getLogger(__name__)

#: Table columns the daemon cannot compute from audio yet (HPSS and tempo).
EXPENSIVE_COLUMNS = ("harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var", "tempo")

#: Where the artist-filtered lists live in the shared data folder, relative to it.
FILTERED_SPLIT_SUBDIR = Path("splits/jongpillee_music_dataset_split/GTZAN_split")

#: Sub-directory of a table bundle holding the evaluation model (trained without the test tracks).
EVALUATION_SUBDIR = "evaluation"



# --------------------------------------------------------------------------- #
# The table


@dataclass(frozen=True)
class Table:
    """Rows of a feature table: track ids, features, sorted labels and label indices."""

    ids: np.ndarray
    """Track ids such as ``blues.00000`` (one per row)."""
    x: np.ndarray
    """rows x columns, float64."""
    y: np.ndarray
    """Label index of every row (into ``labels``)."""
    labels: tuple[str, ...]
    """Sorted genre names."""
    columns: tuple[str, ...]
    """Feature column names, in ``x`` order."""
    sha256: str
    """Digest of the CSV file's bytes."""

    def subset(self, mask: np.ndarray) -> "Table":
        return replace(self, ids=self.ids[mask], x=self.x[mask], y=self.y[mask])

    def without(self, ids: Iterable[str]) -> "Table":
        """The rows whose track ids are not in ``ids``."""
        return self.subset(~np.isin(self.ids, sorted(ids)))


track_id = normalise_track_id  # one rule for table rows, split lists and file names


def check_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """Validate requested columns: known to the daemon's summary features, no duplicates."""
    columns = tuple(columns)
    expensive = [c for c in columns if c in EXPENSIVE_COLUMNS]
    if expensive:
        raise ValueError(
            f"columns {expensive} (harmonic/percussive and tempo) are in the table but the daemon cannot compute "
            "them from audio yet, so a bundle trained on them could not run; leave them out"
        )
    unknown = [c for c in columns if c not in DEFAULT_SUMMARY_COLUMNS]
    if unknown:
        raise ValueError(f"unknown summary columns {unknown}; choose from genrecast.daemon.features.DEFAULT_SUMMARY_COLUMNS")
    if len(set(columns)) != len(columns) or not columns:
        raise ValueError("columns must be a non-empty list without duplicates")
    return columns


def read_table(csv_path: str | Path, columns: Iterable[str] = DEFAULT_SUMMARY_COLUMNS, level: str = "absolute") -> Table:
    """Read a GTZAN-style feature table (``filename``, feature columns, ``label``); with
    ``level="normalised"`` its rows go through the daemon's own
    :func:`genrecast.daemon.level.normalise_level` (exact: see there)."""
    csv_path = Path(csv_path)
    columns = check_columns(columns)
    raw = csv_path.read_bytes()
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    header = reader.fieldnames or []
    missing = [c for c in ("filename", "label", *columns) if c not in header]
    if missing:
        raise ValueError(f"{csv_path} lacks the columns {missing}")
    ids, rows, names = [], [], []
    for n, row in enumerate(reader, start=2):
        try:
            rows.append([float(row[c]) for c in columns])
        except (TypeError, ValueError):
            raise ValueError(f"{csv_path} line {n}: a feature value is not a number") from None
        ids.append(track_id(row["filename"]))
        names.append(row["label"].strip())
    if len(set(ids)) != len(ids):
        raise ValueError(f"{csv_path} names a track twice; expected one row per track (features_30_sec.csv)")
    x = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{csv_path} holds non-finite feature values")
    if level == "normalised":
        x = normalise_level(x, columns)
    elif level != "absolute":
        raise ValueError(f"level must be one of {LEVEL_MODES}, not {level!r}")
    labels = tuple(sorted(set(names)))
    if len(labels) < 2:
        raise ValueError(f"{csv_path} has fewer than 2 labels")
    index = {label: i for i, label in enumerate(labels)}
    return Table(
        ids=np.asarray(ids),
        x=x,
        y=np.asarray([index[name] for name in names], dtype=np.int64),
        labels=labels,
        columns=columns,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def ids_in_dir(directory: str | Path) -> set[str]:
    """Track ids of every audio file in a genre-folder tree (e.g. ``gtzan-sample``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"exclude folder {directory} does not exist")
    return {track_id(p.name) for p in directory.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES}


def training_exclusions(table: Path, exclude_dir: Path | None) -> set[str]:
    """Ids never to train on: the tracks in ``exclude_dir`` (our test clips) and the
    reserved ids of the data folder that holds ``table`` (:func:`splits.reserved_ids_near`)."""
    exclude = ids_in_dir(exclude_dir) if exclude_dir is not None else set()
    reserved = reserved_ids_near(table)
    if reserved:
        log.info("leaving out the %d reserved ids of %s", len(reserved), RESERVED_IDS_FILE)
    return exclude | reserved


def read_filtered_split(splits_dir: str | Path) -> tuple[set[str], set[str]]:
    """(train, test) track ids of the artist-filtered lists: train + valid → train, test → test."""
    splits_dir = Path(splits_dir)
    parts = {}
    for part in ("train", "valid", "test"):
        path = splits_dir / f"{part}_filtered.txt"
        if not path.is_file():
            raise ValueError(f"{splits_dir} lacks {path.name} (the artist-filtered GTZAN lists)")
        parts[part] = read_list(path)
    train = parts["train"] | parts["valid"]
    if train & parts["test"]:
        raise ValueError(f"the lists in {splits_dir} put {len(train & parts['test'])} tracks on both sides")
    return train, parts["test"]


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index of every row: each label's rows shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        rng.shuffle(rows)
        fold[rows] = (np.arange(len(rows)) + offset) % n_folds
        offset += len(rows)
    return fold


def standardise_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of training rows (std floored so no column divides by zero)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


# --------------------------------------------------------------------------- #
# Evaluation


def fit_rows(cfg: MLPConfig, x: np.ndarray, y: np.ndarray, n_labels: int, *, seed: int, test_ids: Iterable[str] = (),
             augmentation: Augmentation | None = None, validation: tuple[np.ndarray, np.ndarray] | None = None):
    """Standardise level-normalised rows ``x`` (stats of these clean rows), add the shifted copies
    of ``augmentation`` (never shifts measured on ``test_ids``) and :func:`fit`. Returns
    (model, history, mean, std); ``validation`` is given unstandardised."""
    mean, std = standardise_stats(x)
    if augmentation is not None:
        x, y = augmentation.rows(x, y, test_ids, std, seed)
        cfg = replace(cfg, epochs=augmentation.epochs)
    val = ((validation[0] - mean) / std, validation[1]) if validation is not None else None
    model, history = fit(cfg, (x - mean) / std, y, n_labels, seed=seed, validation=val)
    return model, history, mean, std


def cross_validate(cfg: MLPConfig, table: Table, *, n_folds: int = 10, seed: int = 0,
                   augmentation: Augmentation | None = None) -> dict[str, Any]:
    """Stratified k-fold CV (rows are tracks, so folds are track-disjoint); normalisation per fold."""
    folds = stratified_folds(table.y, n_folds, seed)
    accuracies = []
    started = time.monotonic()
    for k in range(n_folds):
        train, test = folds != k, folds == k
        model, _, mean, std = fit_rows(cfg, table.x[train], table.y[train], len(table.labels), seed=seed + k,
                                       test_ids=table.ids[test].tolist(), augmentation=augmentation)
        prob = predict(model, (table.x[test] - mean) / std)
        accuracies.append(float((prob.argmax(axis=1) == table.y[test]).mean()))
        log.info(
            "%s fold %d/%d: accuracy %.3f (%d test tracks, %.0f s so far)",
            cfg.label(), k + 1, n_folds, accuracies[-1], int(test.sum()), time.monotonic() - started,
        )
    acc = np.asarray(accuracies)
    return {
        "folds": n_folds,
        "fold_accuracies": [round(a, 4) for a in accuracies],
        "mean": round(float(acc.mean()), 4),
        "std": round(float(acc.std()), 4),
        "tracks": int(len(table.y)),
        "seed": seed,
    }


def _cross_validate_task(task: tuple[MLPConfig, Table, int, int]) -> tuple[str, int, dict[str, Any]]:
    """One (configuration, fold seed) cross-validation, run in a worker process."""
    cfg, table, n_folds, seed = task
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    return cfg.label(), seed, cross_validate(cfg, table, n_folds=n_folds, seed=seed)


def select(
    table: Table,
    grid: Iterable[MLPConfig] = SELECTION_GRID,
    *,
    n_folds: int = 10,
    seeds: Iterable[int] = SELECTION_SEEDS,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Repeated k-fold CV accuracy of every configuration in ``grid`` (on the table's rows only).

    Each fold seed deals new folds; a configuration's ``cv_mean`` is the mean over every
    fold of every repeat. ``jobs`` worker processes (one TF thread each) share the work;
    every fit seeds itself, so the results do not depend on ``jobs``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    grid, seeds = tuple(grid), tuple(seeds)
    tasks = [(cfg, table, n_folds, seed) for cfg in grid for seed in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(pool.map(_cross_validate_task, tasks))
    else:
        done = [_cross_validate_task(task) for task in tasks]
    runs = {(label, seed): cv for label, seed, cv in done}
    results = []
    for cfg in grid:
        repeats = [runs[cfg.label(), seed] for seed in seeds]
        acc = np.asarray([a for cv in repeats for a in cv["fold_accuracies"]])
        log.info("%s: CV accuracy %.4f ± %.4f over %d folds", cfg.label(), acc.mean(), acc.std(), len(acc))
        results.append({
            "config": cfg.label(), "cv_mean": round(float(acc.mean()), 4), "cv_std": round(float(acc.std()), 4),
            "repeat_means": {str(seed): cv["mean"] for seed, cv in zip(seeds, repeats)},
            "parameters": cfg.parameters(table.x.shape[1], len(table.labels)),
        })
    return results


def choose(results: list[dict[str, Any]], grid: Iterable[MLPConfig] = SELECTION_GRID, max_parameters: int = MAX_PARAMETERS) -> MLPConfig:
    """The configuration with the best CV mean among those small enough to ship."""
    by_label = {cfg.label(): cfg for cfg in grid}
    eligible = [r for r in results if r["parameters"] <= max_parameters and r["config"] in by_label]
    if not eligible:
        raise ValueError(f"no configuration in the selection has at most {max_parameters} parameters")
    best = max(eligible, key=lambda r: (r["cv_mean"], -r["parameters"]))
    return by_label[best["config"]]


# --------------------------------------------------------------------------- #
# Training the bundle


def _renumber_shared_objects(node: Any, ids: dict[int, int]) -> Any:
    """Replace Keras' ``shared_object_id`` values (Python ``id()``s) by their order of appearance."""
    if isinstance(node, dict):
        return {
            k: ids.setdefault(v, len(ids)) if k == "shared_object_id" else _renumber_shared_objects(v, ids)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_renumber_shared_objects(v, ids) for v in node]
    return node


def _normalise_keras_zip(path: Path) -> None:
    """Make ``model.keras`` byte-stable: fixed zip timestamps, no save date, stable object ids."""
    with zipfile.ZipFile(path) as zf:
        entries = [(info.filename, zf.read(info.filename)) for info in zf.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            if name == "metadata.json":
                meta = json.loads(data)
                meta.pop("date_saved", None)
                data = json.dumps(meta, sort_keys=True).encode()
            elif name == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())


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
    in every fit, cross-validation included.
    """
    from genrecast.trainer.export import save_bundle
    from genrecast.trainer.report import write_report

    out_dir = Path(out_dir)
    table = read_table(csv_path, columns, level)
    exclude = {track_id(t) for t in exclude_ids}
    unknown = sorted(exclude - set(table.ids.tolist()))
    if unknown:
        log.warning("%d excluded ids are not in the table: %s", len(unknown), ", ".join(unknown[:5]))
    pool = table.without(exclude)
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
        train_ids, test_ids = read_filtered_split(splits_dir)
        present = set(table.ids.tolist())
        train_mask = np.isin(table.ids, sorted((train_ids & present) - exclude))
        test_mask = np.isin(table.ids, sorted(test_ids & present))
        split_name = "artist-filtered"
        extra["curves_note"] = "validation curve = the test tracks, monitored only (fixed epochs, no early stopping)"
    else:  # no lists: hold out a stratified tenth
        folds = stratified_folds(pool.y, 10, seed)
        train_mask = np.isin(table.ids, pool.ids[folds != 0])
        test_mask = np.isin(table.ids, pool.ids[folds == 0])
        split_name = "track"
    sizes = {"train_tracks": int(train_mask.sum()), "test_tracks": int(test_mask.sum())}
    ys = table.y[test_mask]
    log.info("%s split: training on %d tracks, testing on %d", split_name, int(train_mask.sum()), len(ys))
    model, history, mean, std = fit_rows(
        config, table.x[train_mask], table.y[train_mask], len(table.labels), seed=seed,
        test_ids=table.ids[test_mask].tolist(), augmentation=augmentation, validation=(table.x[test_mask], ys),
    )
    test_prob = predict(model, (table.x[test_mask] - mean) / std)
    test_acc = float((test_prob.argmax(axis=1) == ys).mean())
    log.info("%s test accuracy: %.4f", split_name, test_acc)
    test_ids = sorted(table.ids[test_mask].tolist())
    extra["test_track_ids_sha256"] = hashlib.sha256("\n".join(test_ids).encode()).hexdigest()
    features = FeatureConfig(kind="summary", columns=table.columns, context_seconds=30.0, window_seconds=3.0, level=level)
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
        "augmentation": augmentation.describe() if augmentation is not None else None,
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
    final, _, mean, std = fit_rows(config, pool.x, pool.y, len(table.labels), seed=seed, augmentation=augmentation)

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
    _normalise_keras_zip(out_dir / KERAS_FILE)  # the Bundle reads the .tflite only
    return bundle


def default_splits_dir(table: Path) -> Path | None:
    """The artist-filtered lists beside a table in the shared data layout, if there."""
    candidate = Path(table).resolve().parent.parent / FILTERED_SPLIT_SUBDIR
    return candidate if candidate.is_dir() else None


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
    feature shifts of :mod:`genrecast.trainer.shifts` (measured with ``jobs`` processes, cached)."""
    exclude = training_exclusions(table, exclude_dir)
    augmentation = None
    if shifts_from is not None:
        if level != "normalised":
            raise ValueError("the feature shifts are measured on level-normalised rows; use them with --level normalised")
        from genrecast.daemon.cache import cache_dir
        from genrecast.trainer.shifts import EVALUATION_CLIPS, measure_shifts

        features = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, context_seconds=30.0, level="normalised")
        # The audio of gtzan-sample's 6 clips with excerpt ids (left out of the table as part of
        # exclude_dir) may give shifts; the 13 evaluation clips and the reserved ids never do.
        never = reserved_ids_near(table) | set(EVALUATION_CLIPS)
        shifts = measure_shifts(Path(shifts_from), never, features, seed=seed, jobs=jobs,
                                cache_dir=cache_dir() / "shifts")
        augmentation = Augmentation(shifts)
    if splits_dir is None:
        splits_dir = default_splits_dir(table)
        if splits_dir is not None:
            log.info("using the artist-filtered lists at %s", splits_dir)
    selection = json.loads(Path(selection_file).read_text()) if selection_file else None
    # The selection chooses the MLPs; the SVC member was chosen after it (see DEFAULT_MLP).
    config = replace(choose(selection), svc_c=DEFAULT_MLP.svc_c) if selection else DEFAULT_MLP
    if selection and config != DEFAULT_MLP:
        log.warning("the selection chose %s, not the default %s", config.label(), DEFAULT_MLP.label())
    log.info("model: %s", config.label())
    bundle = train_from_table(
        table, out, exclude_ids=exclude, seed=seed, splits_dir=splits_dir, config=config, cv_folds=cv_folds,
        selection=selection, level=level, augmentation=augmentation,
    )
    from genrecast.trainer.robustness import attach_table_clips

    attach_table_clips(out, table, exclude_dir, set(read_table(table, level=level).ids.tolist()) - exclude, conditions,
                       seed=seed)
    m = bundle.metrics
    extra = m.get("extra", {})
    log.info(
        "wrote %s: CV %.3f ± %.3f, %s test %.3f (%d tracks)",
        bundle.path, extra.get("cv_accuracy_mean", float("nan")), extra.get("cv_accuracy_std", float("nan")),
        m["split"]["name"], extra["test_accuracy"], m.get("windows", 0),
    )
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
