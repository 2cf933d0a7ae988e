"""The table model's SVC member: its Keras layers (and the LiteRT model made from them) give
scikit-learn's calibrated probabilities, and a table bundle trained with it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrecast.trainer.table import read_table, standardise_stats
from genrecast.trainer.table_model import MLPConfig, fit, predict
from genrecast.trainer.table_svc import fit_svc, svc_branch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows(data_dir: Path):
    table = read_table(data_dir / "reference" / "features_30_sec.csv", level="normalised")
    order = np.random.default_rng(0).permutation(len(table.y))
    train, test = order[:500], order[500:700]
    mean, std = standardise_stats(table.x[train])
    return (table.x[train] - mean) / std, table.y[train], (table.x[test] - mean) / std


@pytest.mark.parametrize("genres", [None, (2, 9)], ids=["ten-genres", "two-genres"])
def test_keras_and_litert_give_sklearns_calibrated_probabilities(rows, genres, tmp_path: Path) -> None:
    """Ten genres, and two (country, rock): sklearn's binary case has one decision value and one
    calibrator, which the branch's layers used to be built for per class (a two-genre table failed
    with "svc_calibration weight shape (2, 2) is not compatible with ... (1, 1)")."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from genrecast.trainer.export import export_tflite

    x, y, unseen = rows
    if genres is not None:
        keep = np.isin(y, genres)
        x, y = x[keep], np.searchsorted(genres, y[keep])
    svc = fit_svc(x, y, 3.0, len(np.unique(y)))
    reference = svc.predict_proba(unseen)
    inp = keras.Input((x.shape[1],))
    model = keras.Model(inp, svc_branch(inp, svc))
    ours = np.asarray(model(unseen.astype(np.float32)))
    assert ours.shape == reference.shape == (len(unseen), len(np.unique(y)))
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert (ours.argmax(axis=1) == reference.argmax(axis=1)).all()
    if genres is not None:  # not all one side: the comparison means something
        assert 0 < reference.argmax(axis=1).sum() < len(unseen) and ((reference > 0.05) & (reference < 0.95)).any()

    export_tflite(model, tmp_path / "svc.tflite")
    interpreter = Interpreter(str(tmp_path / "svc.tflite"))
    interpreter.allocate_tensors()
    inp_detail, out_detail = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for row, expected in zip(unseen[:20].astype(np.float32), reference[:20]):
        interpreter.set_tensor(inp_detail["index"], row[None])
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(out_detail["index"])[0], expected, atol=1e-5)


def test_the_ensemble_averages_the_mlps_and_the_svc(rows) -> None:
    x, y, unseen = rows
    cfg = MLPConfig(hidden=(16,), members=2, epochs=2)
    mlp, _ = fit(cfg, x, y, 10, seed=0)
    both, _ = fit(MLPConfig(hidden=(16,), members=2, epochs=2, svc_c=3.0), x, y, 10, seed=0)
    svc = fit_svc(x, y, 3.0, 10)
    np.testing.assert_allclose(predict(both, unseen), 0.5 * (predict(mlp, unseen) + svc.predict_proba(unseen)), atol=1e-5)


def test_a_label_without_rows_is_refused(rows) -> None:
    x, y, _ = rows
    keep = y != 3
    with pytest.raises(ValueError, match="all 10 labels"):
        fit_svc(x[keep], y[keep], 3.0, 10)


def test_a_label_with_fewer_rows_than_the_calibration_folds_is_refused(rows) -> None:
    """sklearn's own words ("Requesting 5-fold cross-validation but provided less than 5 examples") spoke
    of a cross-validation the user never asked for."""
    x, y, _ = rows
    keep = (y != 3) | (np.cumsum(y == 3) <= 4)  # 4 rows of label 3
    with pytest.raises(ValueError, match="5-fold calibration needs at least 5 training rows of every label; label 3 has 4"):
        fit_svc(x[keep], y[keep], 3.0, 10)


def test_left_out_columns_reach_neither_the_mlps_nor_the_svc(rows, tmp_path: Path) -> None:
    """A left-out column (the default model's rms_mean / rms_var) may take any value: the exported
    model gives the same probabilities; every other column still matters."""
    from ai_edge_litert.interpreter import Interpreter

    from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS
    from genrecast.trainer.export import export_tflite

    x, y, unseen = rows
    columns = DEFAULT_SUMMARY_COLUMNS
    cfg = MLPConfig(hidden=(16,), members=2, epochs=2, svc_c=3.0, left_out=("rms_mean", "rms_var"))
    model, _ = fit(cfg, x, y, 10, seed=0, columns=columns)
    moved = unseen.copy()
    for name in cfg.left_out:
        moved[:, columns.index(name)] = np.random.default_rng(1).normal(0.0, 5.0, len(moved))
    np.testing.assert_array_equal(predict(model, moved), predict(model, unseen))
    kept = unseen.copy()
    kept[:, columns.index("mfcc2_mean")] += 3.0
    assert np.abs(predict(model, kept) - predict(model, unseen)).max() > 1e-3

    # the same through LiteRT, as the daemon runs it
    export_tflite(model, tmp_path / "m.tflite")
    interpreter = Interpreter(str(tmp_path / "m.tflite"))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for a, b in zip(unseen[:5].astype(np.float32), moved[:5].astype(np.float32)):
        got = []
        for row in (a, b):
            interpreter.set_tensor(inp["index"], row[None])
            interpreter.invoke()
            got.append(interpreter.get_tensor(out["index"])[0].copy())
        np.testing.assert_array_equal(got[0], got[1])


def test_a_left_out_column_must_be_a_feature_column(rows) -> None:
    x, y, _ = rows
    with pytest.raises(ValueError, match="tempo"):
        fit(MLPConfig(hidden=(8,), members=1, epochs=1, left_out=("tempo",)), x, y, 10, seed=0,
            columns=tuple(f"c{i}" for i in range(x.shape[1])))
