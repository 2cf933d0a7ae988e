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


def test_keras_and_litert_give_sklearns_calibrated_probabilities(rows, tmp_path: Path) -> None:
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from genrecast.trainer.export import export_tflite

    x, y, unseen = rows
    svc = fit_svc(x, y, 3.0, 10)
    reference = svc.predict_proba(unseen)
    inp = keras.Input((x.shape[1],))
    model = keras.Model(inp, svc_branch(inp, svc))
    ours = np.asarray(model(unseen.astype(np.float32)))
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert (ours.argmax(axis=1) == reference.argmax(axis=1)).all()

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
