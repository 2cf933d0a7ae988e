"""The table model: an ensemble of MLPs as parallel branches of one Keras model, its
configuration, the grid its configuration is chosen from, and deterministic training.

Used by :mod:`genrecast.trainer.table` (and the music detector's trainer for
:func:`setup_determinism`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from genrecast.trainer.export import quiet_tensorflow

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- #
# The model: an ensemble of MLPs as parallel branches of one Keras model


@dataclass(frozen=True)
class MLPConfig:
    """An ensemble of identical MLP branches trained together, outputs averaged."""

    hidden: tuple[int, ...] = (128, 64)
    """Units of each hidden layer (ReLU)."""
    dropout: float = 0.3
    """Dropout after each hidden layer."""
    l2: float = 1e-3
    """L2 weight decay on the hidden kernels."""
    members: int = 5
    """Parallel branches (each its own initialisation and dropout), probabilities averaged."""
    noise: float = 0.0
    """Gaussian input noise (standard deviations of the standardised features)."""
    epochs: int = 100
    """Fixed number of epochs (no early stopping: nothing is peeked at)."""
    batch_size: int = 64
    """Rows per gradient step."""
    learning_rate: float = 1e-3
    """Adam's learning rate."""
    svc_c: float = 0.0
    """C of a calibrated RBF support-vector classifier fitted on the same rows and averaged
    with the MLPs as one more member, half the weight (:mod:`genrecast.trainer.table_svc`); 0: none."""
    left_out: tuple[str, ...] = ()
    """Feature columns the model does not look at: they stay in the bundle's rows (the level
    normalisation needs ``rms_mean`` and ``rms_var``), and the model's first layer passes on the
    others only (:func:`input_selection`)."""

    def parameters(self, n_in: int, n_labels: int) -> int:
        """Trainable weights of the whole ensemble (drives the bundle's size: ~8 bytes each)."""
        sizes = (n_in, *self.hidden, n_labels)
        return self.members * sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))

    def label(self) -> str:
        return (
            f"h{'x'.join(map(str, self.hidden))}-d{self.dropout:g}-l2{self.l2:g}-n{self.noise:g}"
            f"-m{self.members}-e{self.epochs}" + (f"-svc{self.svc_c:g}" if self.svc_c else "")
            + (f"-without-{'+'.join(self.left_out)}" if self.left_out else "")
        )

    def kept(self, columns: tuple[str, ...]) -> np.ndarray:
        """Indices of the ``columns`` the model looks at. Raises ``ValueError`` when a
        :attr:`left_out` column is not among them."""
        unknown = sorted(set(self.left_out) - set(columns))
        if unknown:
            raise ValueError(f"the model leaves out {unknown}, which the feature columns do not hold")
        return np.asarray([i for i, c in enumerate(columns) if c not in self.left_out], dtype=np.int64)


#: The default bundle is package data: all its files together stay under this many bytes (the SVC
#: member's ~3,500 support vectors and pair weights take ~1.4 MB in each of its three model files).
MAX_BUNDLE_BYTES = 8_000_000

#: Largest ensemble that may ship. The bundle holds its weights three times (model.keras,
#: model.tflite and the evaluation model's .tflite, about 12.5 bytes per parameter in all,
#: plus ~110 kB of reports), so this keeps it under MAX_BUNDLE_BYTES.
MAX_PARAMETERS = 300_000

#: The shipped configuration: the MLP chosen by repeated 10-fold CV on the table (see SELECTION_GRID),
#: plus the calibrated SVC member (C = 3, scikit-learn's default gamma), chosen, with the shift
#: augmentation, before the 13 evaluation clips were looked at: 10-fold CV 0.740 against 0.729 for the
#: MLPs alone (an exploratory run of the same folds), and on the 56 held-out clips of
#: ``scripts/shift_validation.py`` (4,5,40,3 against 4,5,40,0) 333 against 321 right over its nine fixed
#: conditions, 42 against 40 clean; under its 672 random conditions 0.580 against 0.600 (the exploratory
#: run: 0.577 against 0.571), a difference within what a reseed moves.
#: It leaves out the two RMS columns (``left_out``; after level normalisation both are one number, the
#: spread of the frame RMS over the span, i.e. the dynamics, which rooms, noise and codecs move), chosen
#: the same way on 2026-12-01: on the 56 held-out clips 357 against 333 right over the nine fixed
#: conditions (46 against 42 clean), 0.619 against 0.580 under the 672 random conditions, and a 10-fold
#: CV of 0.750 against 0.741 (an exploratory run; groups of columns were compared with a quick SVC first,
#: and only this one moved the held-out figures by more than a reseed does).
DEFAULT_MLP = MLPConfig(hidden=(256, 128), dropout=0.3, l2=1e-3, members=5, noise=0.1, svc_c=3.0,
                        left_out=("rms_mean", "rms_var"))

#: Fold seeds of the selection's repeated cross-validation: each repeat deals the folds anew.
SELECTION_SEEDS = (0, 1)

#: The grid searched by ``select``: width, depth, ensemble size, dropout, weight decay and input
#: noise. Every entry fits MAX_PARAMETERS. The first eight were fixed before any of them met the
#: gtzan-sample clips, except the first (the previous default, 7 of 13 there). The last two (Gaussian
#: input noise, a regulariser that also stands for the live features' small differences from the
#: table's) were added after the choice among the first eight (the fifth) had scored 7 of 13; the rule
#: stayed the same.
SELECTION_GRID: tuple[MLPConfig, ...] = (
    MLPConfig(hidden=(128, 64), dropout=0.3, l2=1e-3, members=5),
    MLPConfig(hidden=(128, 64), dropout=0.3, l2=1e-3, members=10),
    MLPConfig(hidden=(128, 64), dropout=0.2, l2=1e-3, members=10),
    MLPConfig(hidden=(256,), dropout=0.3, l2=1e-3, members=5),
    MLPConfig(hidden=(256, 128), dropout=0.3, l2=1e-3, members=5),
    MLPConfig(hidden=(256, 128), dropout=0.3, l2=1e-4, members=5),
    MLPConfig(hidden=(256, 128), dropout=0.4, l2=1e-3, members=5),
    MLPConfig(hidden=(192, 96), dropout=0.3, l2=1e-3, members=10),
    MLPConfig(hidden=(256, 128), dropout=0.3, l2=1e-3, members=5, noise=0.1),
    MLPConfig(hidden=(256, 128), dropout=0.3, l2=1e-3, members=5, noise=0.2),
)


def setup_determinism(seed: int) -> None:
    """Seed python/numpy/TF, deterministic TF ops, one thread (call before training)."""
    quiet_tensorflow()
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised in this process; deterministic ops still hold
        log.debug("TF threading already configured")
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)


def input_selection(inp, keep: np.ndarray | None):
    """The Keras tensor of the input columns ``keep`` (indices), through a frozen bias-free Dense
    layer whose kernel is the 0/1 selection matrix (exact: each output is one input times 1); the
    input itself when ``keep`` is None or every column."""
    from keras import layers

    n_in = int(inp.shape[-1])
    if keep is None or len(keep) == n_in:
        return inp
    kernel = np.zeros((n_in, len(keep)), np.float32)
    kernel[keep, np.arange(len(keep))] = 1.0
    # zeros: building it draws nothing from Keras's seed, so the members start as they would without it
    select = layers.Dense(len(keep), use_bias=False, trainable=False, kernel_initializer="zeros", name="inputs_used")
    out = select(inp)
    select.set_weights([kernel])
    return out


def _branches(cfg: MLPConfig, n_in: int, n_labels: int, keep: np.ndarray | None = None):
    """(input, stacked member probabilities batch x members x labels) as Keras tensors."""
    import keras
    from keras import layers

    inp = keras.Input((n_in,), name="features")
    used = input_selection(inp, keep)
    outs = []
    for m in range(cfg.members):
        h = layers.GaussianNoise(cfg.noise, name=f"m{m}_noise")(used) if cfg.noise > 0 else used
        for k, units in enumerate(cfg.hidden):
            h = layers.Dense(
                units, activation="relu", kernel_regularizer=keras.regularizers.l2(cfg.l2) if cfg.l2 else None,
                name=f"m{m}_dense{k}",
            )(h)
            if cfg.dropout:
                h = layers.Dropout(cfg.dropout, name=f"m{m}_dropout{k}")(h)
        prob = layers.Dense(n_labels, activation="softmax", name=f"m{m}_softmax")(h)
        outs.append(layers.Reshape((1, n_labels), name=f"m{m}_row")(prob))
    stacked = layers.Concatenate(axis=1, name="members")(outs) if len(outs) > 1 else outs[0]
    return inp, stacked


def build_models(cfg: MLPConfig, n_in: int, n_labels: int, keep: np.ndarray | None = None):
    """(training model with a per-member output, inference model averaging the members).

    Both share their layers. The training model's loss is the sum of the
    members' own cross-entropies, so the branches learn independently; the
    inference model is the one exported (its input: standardised features, all ``n_in`` columns;
    ``keep``: the indices it looks at, see :func:`input_selection`).
    """
    import keras
    from keras import layers

    inp, stacked = _branches(cfg, n_in, n_labels, keep)
    train_model = keras.Model(inp, stacked, name="mlp_ensemble_train")
    train_model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=8,  # fewer Python round trips; the same steps
    )
    mean = layers.GlobalAveragePooling1D(name="ensemble_mean")(stacked)
    infer_model = keras.Model(inp, mean, name="mlp_ensemble")
    return train_model, infer_model


def fit(
    cfg: MLPConfig,
    x: np.ndarray,
    y: np.ndarray,
    n_labels: int,
    *,
    seed: int,
    columns: tuple[str, ...] = (),
    validation: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Train on standardised ``x`` (rows x ``columns``; the names are needed only with
    ``cfg.left_out``); returns (inference model, history dict). With ``cfg.svc_c`` the inference
    model averages the MLP ensemble with a calibrated SVC fitted on the same rows. Raises
    ``ValueError`` when a left-out column is not in ``columns``."""
    keep = cfg.kept(tuple(columns)) if cfg.left_out else None
    setup_determinism(seed)
    train_model, infer_model = build_models(cfg, x.shape[1], n_labels, keep)
    tile = lambda labels: np.repeat(labels[:, None], cfg.members, axis=1)  # noqa: E731
    val = (validation[0].astype(np.float32), tile(validation[1])) if validation is not None else None
    hist = train_model.fit(
        x.astype(np.float32), tile(y), epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
        validation_data=val, verbose=0,
    )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    if cfg.svc_c:
        import keras
        from keras import layers

        from genrecast.trainer.table_svc import fit_svc, svc_branch

        used = slice(None) if keep is None else keep
        svc = fit_svc(x[:, used], y, cfg.svc_c, n_labels)
        inp = infer_model.input
        selected = infer_model.get_layer("inputs_used").output if keep is not None else inp
        infer_model = keras.Model(inp, layers.Average(name="mlp_svc_mean")([infer_model.output, svc_branch(selected, svc)]),
                                  name="mlp_svc_ensemble")
    return infer_model, history


def predict(model, x: np.ndarray) -> np.ndarray:
    """Ensemble probabilities for standardised ``x``."""
    return np.asarray(model(x.astype(np.float32), training=False), dtype=np.float64)
