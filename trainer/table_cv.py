"""Cross-validation and model selection on a feature table's rows.

Rows are tracks, so stratified folds are track-disjoint (:func:`stratified_folds`);
:func:`select` runs repeated 10-fold CV over :data:`~genrecast.trainer.table_model.SELECTION_GRID`
and :func:`choose` takes the best configuration small enough to ship.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from genrecast.trainer.shifts import Augmentation
from genrecast.trainer.table_data import Table
from genrecast.trainer.table_model import MAX_PARAMETERS, SELECTION_GRID, SELECTION_SEEDS, MLPConfig, fit, predict
from genrecast.trainer.table_svc import CALIBRATION_FOLDS

log = logging.getLogger(__name__)


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


def fewest_rows(n_folds: int, kept: int = CALIBRATION_FOLDS) -> int:
    """Fewest rows of a genre that leave ``kept`` of them on the training side of each of ``n_folds``
    :func:`stratified_folds` (a fold holds at most ceil(rows / n_folds) of them)."""
    rows = kept
    while rows - -(-rows // n_folds) < kept:
        rows += 1
    return rows


def check_rows(table: Table, source: str = "the table", *, cv_folds: int = 0, holdout_folds: int | None = None,
               svc: bool = True) -> None:
    """Refuse, before any fit, rows that cannot be trained on: more ``cv_folds`` (0: none) than the
    rows of the smallest genre (a fold would lack it, or hold no row at all), or, with the ``svc``
    member, a genre with too few rows for its :data:`CALIBRATION_FOLDS`-fold calibration in every fit:
    the CV folds' training sides, that of a held-out fold of ``holdout_folds`` stratified folds (None:
    none) and the final fit on every row. Raises ``ValueError``, one line naming ``source``, the
    genre, its rows and the fix."""
    counts = np.bincount(table.y, minlength=len(table.labels))
    smallest = int(counts.argmin())
    genre, rows = table.labels[smallest], int(counts[smallest])
    why = f"the SVC member calibrates on {CALIBRATION_FOLDS} folds of each fit's training rows"
    need = max(CALIBRATION_FOLDS, fewest_rows(holdout_folds) if holdout_folds else 0) if svc else 1
    if rows < need:  # whatever the folds
        held = f", less the held-out 1/{holdout_folds}" if holdout_folds else ""
        raise ValueError(f"each genre needs at least {need} rows in {source} ({why}{held}); {genre} has {rows}: "
                         f"give a table with more {genre} rows, or leave {genre} out of it")
    if cv_folds > rows:
        raise ValueError(f"--cv-folds {cv_folds}: every fold needs a row of every genre, and {genre} has {rows} "
                         f"row{'s' * (rows != 1)} in {source}; give --cv-folds {rows} or fewer, or 0 (no cross-validation)")
    if svc and cv_folds and rows < fewest_rows(cv_folds):
        more = next((k for k in range(cv_folds + 1, rows + 1) if fewest_rows(k) <= rows), None)
        fix = f"--cv-folds {more} to {rows} (smaller test folds), or 0" if more else "--cv-folds 0"
        raise ValueError(f"each genre needs at least {fewest_rows(cv_folds)} rows in {source} for --cv-folds {cv_folds} "
                         f"({why}, less a test fold); {genre} has {rows}: give {fix} (no cross-validation), or a table "
                         f"with more {genre} rows")


def standardise_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of training rows (std floored so no column divides by zero)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


def fit_rows(cfg: MLPConfig, x: np.ndarray, y: np.ndarray, n_labels: int, *, seed: int, test_ids: Iterable[str] = (),
             augmentation: Augmentation | None = None, validation: tuple[np.ndarray, np.ndarray] | None = None,
             columns: tuple[str, ...] = ()):
    """Standardise level-normalised rows ``x`` (rows x ``columns``; stats of these clean rows), add the
    shifted copies of ``augmentation`` (never shifts measured on ``test_ids``) and :func:`fit`. Returns
    (model, history, mean, std); ``validation`` is given unstandardised."""
    mean, std = standardise_stats(x)
    if augmentation is not None:
        x, y = augmentation.rows(x, y, test_ids, std, seed, cfg.kept(tuple(columns)) if cfg.left_out else None)
        cfg = replace(cfg, epochs=augmentation.epochs)
    val = ((validation[0] - mean) / std, validation[1]) if validation is not None else None
    model, history = fit(cfg, (x - mean) / std, y, n_labels, seed=seed, columns=columns, validation=val)
    return model, history, mean, std


def cross_validate(cfg: MLPConfig, table: Table, *, n_folds: int = 10, seed: int = 0,
                   augmentation: Augmentation | None = None) -> dict[str, Any]:
    """Stratified k-fold CV (rows are tracks, so folds are track-disjoint); normalisation per fold.
    Raises ``ValueError`` (before any fit) when the rows cannot be dealt into ``n_folds``
    (:func:`check_rows`)."""
    check_rows(table, cv_folds=n_folds, svc=bool(cfg.svc_c))
    folds = stratified_folds(table.y, n_folds, seed)
    accuracies = []
    started = time.monotonic()
    for k in range(n_folds):
        train, test = folds != k, folds == k
        model, _, mean, std = fit_rows(cfg, table.x[train], table.y[train], len(table.labels), seed=seed + k,
                                       test_ids=table.ids[test].tolist(), augmentation=augmentation, columns=table.columns)
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
    every fit seeds itself, so the results do not depend on ``jobs``. Raises ``ValueError`` first
    when the rows cannot be dealt into ``n_folds`` (:func:`check_rows`).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    grid, seeds = tuple(grid), tuple(seeds)
    check_rows(table, cv_folds=n_folds, svc=any(cfg.svc_c for cfg in grid))
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


#: What a selection file is, for the errors of :func:`read_selection`.
SELECTION_FORMAT = ("the JSON list that `python -m genrecast.trainer.table select` writes (selection.json: an object "
                    "per configuration with its config, cv_mean and parameters)")


def read_selection(path: str | Path) -> list[dict[str, Any]]:
    """The results of :func:`select` saved at ``path``: a non-empty JSON list of objects, each with
    ``config`` (a label of :data:`SELECTION_GRID`), ``cv_mean`` (accuracy, 0-1) and ``parameters``
    (a count). Raises ``ValueError``, one line naming the file and the expected format, otherwise."""
    def bad(problem: str) -> ValueError:
        return ValueError(f"--selection {path}: {problem}; expected {SELECTION_FORMAT}")

    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except OSError as exc:
        raise ValueError(f"--selection {path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(results, list):
        kind = {dict: "an object", str: "a string", bool: "true/false", type(None): "null"}.get(type(results), "a number")
        raise bad(f"holds {kind}, not a list")
    if not results:
        raise bad("an empty list")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    for n, entry in enumerate(results):
        if not isinstance(entry, dict):
            raise bad(f"entry {n} is not an object")
        problems = [key for key, ok in (("config", isinstance(entry.get("config"), str)), ("cv_mean", number(entry.get("cv_mean"))),
                                        ("parameters", number(entry.get("parameters")))) if not ok]
        if problems:
            raise bad(f"entry {n} has no valid {' or '.join(problems)}")
    known = {cfg.label() for cfg in SELECTION_GRID}
    if not any(entry["config"] in known for entry in results):
        raise bad(f"no entry names a configuration of SELECTION_GRID (e.g. {SELECTION_GRID[0].label()})")
    return results


def choose(results: list[dict[str, Any]], grid: Iterable[MLPConfig] = SELECTION_GRID, max_parameters: int = MAX_PARAMETERS) -> MLPConfig:
    """The configuration with the best CV mean among those small enough to ship."""
    by_label = {cfg.label(): cfg for cfg in grid}
    eligible = [r for r in results if r["parameters"] <= max_parameters and r["config"] in by_label]
    if not eligible:
        raise ValueError(f"no configuration in the selection has at most {max_parameters} parameters")
    best = max(eligible, key=lambda r: (r["cv_mean"], -r["parameters"]))
    return by_label[best["config"]]
