"""The musicnn genre model: a pre-trained music tagger's convolutional layers with a GTZAN genre
head, the default bundle's genre model (``logmel`` features, :mod:`genrecast.daemon.logmel`).

Source of the weights: musicnn's ``MSD_musicnn`` (Pons & Serra, "musicnn: pre-trained
convolutional neural networks for music audio tagging", ISMIR late-breaking demo 2019,
https://github.com/jordipons/musicnn, ISC licence), trained to tag the Million Song Dataset
with its 50 most frequent Last.fm tags. The weights come from its wheel on PyPI
(``musicnn==0.1.0``, :data:`WHEEL_SHA256`), fetched with pip; nothing of musicnn's code is
run. :func:`build_backbone` rebuilds its layers (``models.py``: front end of timbral and
temporal convolutions, mid end of three residual 1-D convolutions, global max and mean pooling)
in Keras 3 and loads the checkpoint into them; the tagger's own dense layers are dropped.

The genre head is a logistic regression (softmax) on the 1506 pooled values of each 3-s
window, trained on GTZAN audio under capture conditions (:func:`train`); it is folded into one
``Dense`` layer, so ``model.tflite`` maps a window's log-mel map (187 x 96) to 10 genre
probabilities.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WHEEL = "musicnn==0.1.0"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
CHECKPOINT = "MSD_musicnn"
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
#: Pooled values per window: (561 front-end + 3 x 64 mid-end) features, max and mean over time.
EMBEDDING = 1506


def fetch_checkpoint(cache: Path) -> Path:
    """The folder of musicnn's ``MSD_musicnn`` checkpoint under ``cache`` (fetched with
    ``pip download`` and unpacked on first use; the wheel's SHA-256 is checked).
    Raises RuntimeError when pip cannot fetch it or the wheel is not the known one."""
    target = Path(cache) / CHECKPOINT
    if (target / ".index").is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="genrecast-musicnn-") as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                               "-d", tmp, WHEEL], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("musicnn-*.whl"))
        if done.returncode or not wheels:
            raise RuntimeError(f"could not fetch {WHEEL} with pip ({done.stderr.strip().splitlines()[-1:]}); "
                               "give its unpacked MSD_musicnn folder with --weights")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheels[0].name} has SHA-256 {digest}, not the known {WHEEL_SHA256}")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in wheel.namelist():
                if name.startswith(f"musicnn/{CHECKPOINT}/") and not name.endswith("/"):
                    (target / Path(name).name).write_bytes(wheel.read(name))
    return target


def read_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    """The checkpoint's variables by name (float32), optimiser slots left out."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "Adam" not in k and "power" not in k}


def _name(base: str, i: int) -> str:
    return base if i == 0 else f"{base}_{i}"


def build_backbone(weights: dict[str, np.ndarray], frames: int = 187, mels: int = 96):
    """musicnn's layers up to its global pooling, as a Keras model: input (batch, frames, mels)
    log-mel maps, output (batch, :data:`EMBEDDING`): the max over time of the 753 mid-end
    features, then their mean. Layer order and shapes follow musicnn's ``models.py``
    (``build_musicnn`` with 1.6 x 128 timbral, 1.6 x 32 temporal and 64 mid-end filters)."""
    import keras
    from keras import layers

    def bn(x, i):
        layer = layers.BatchNormalization(epsilon=BN_EPSILON)
        y = layer(x)
        n = _name("batch_normalization", i)
        layer.set_weights([weights[f"{n}/gamma"], weights[f"{n}/beta"], weights[f"{n}/moving_mean"],
                           weights[f"{n}/moving_variance"]])
        return y

    def conv(x, i, padding):
        n = _name("conv2d", i)
        kernel = weights[f"{n}/kernel"]
        layer = layers.Conv2D(kernel.shape[-1], kernel.shape[:2], padding=padding, activation="relu")
        y = layer(x)
        layer.set_weights([kernel, weights[f"{n}/bias"]])
        return y

    def freq_max(x):  # max over the frequency axis: (b, t, f, c) -> (b, t, c)
        return layers.Reshape((frames, x.shape[-1]))(layers.MaxPooling2D((1, x.shape[2]))(x))

    inp = keras.Input((frames, mels))
    x = bn(layers.Reshape((frames, mels, 1))(inp), 0)
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)))(x)
    front = [freq_max(bn(conv(padded, 0, "valid"), 1)), freq_max(bn(conv(padded, 1, "valid"), 2))]
    front += [freq_max(bn(conv(x, 2 + k, "same"), 3 + k)) for k in range(3)]
    front_map = layers.Reshape((frames, -1, 1))(layers.Concatenate(axis=2)(front))  # (b, t, 561, 1)

    def mid(x, i):  # (b, t, f, 1) -> (b, t, 64, 1)
        y = bn(conv(layers.ZeroPadding2D(((3, 3), (0, 0)))(x), 5 + i, "valid"), 6 + i)  # (b, t, 1, 64)
        return layers.Permute((1, 3, 2))(y)

    m1 = mid(front_map, 0)
    m2 = layers.Add()([mid(m1, 1), m1])
    m3 = layers.Add()([mid(m2, 2), m2])
    features = layers.Reshape((frames, -1))(layers.Concatenate(axis=2)([front_map, m1, m2, m3]))  # (b, t, 753)
    pooled = layers.Concatenate()([layers.GlobalMaxPooling1D()(features), layers.GlobalAveragePooling1D()(features)])
    return keras.Model(inp, pooled, name="musicnn_backbone")


def with_head(backbone, coef: np.ndarray, intercept: np.ndarray):
    """``backbone`` followed by a softmax layer with weights ``coef`` (labels x :data:`EMBEDDING`)
    and ``intercept`` (labels): the genre model."""
    import keras
    from keras import layers

    head = layers.Dense(len(intercept), activation="softmax", name="genre")
    out = head(backbone.output)
    head.set_weights([np.asarray(coef, np.float32).T, np.asarray(intercept, np.float32)])
    return keras.Model(backbone.input, out, name="musicnn_genre")


@dataclass(frozen=True)
class Head:
    """A logistic regression on standardised embeddings, folded back to raw embeddings."""

    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, c: float, n_labels: int) -> "Head":
        """Multinomial logistic regression (scikit-learn, L-BFGS, inverse regularisation ``c``) on
        ``x`` (n x EMBEDDING) standardised with its own mean and std; every label of
        ``range(n_labels)`` must occur in ``y``."""
        from sklearn.linear_model import LogisticRegression

        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        clf = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / std, y)
        if list(clf.classes_) != list(range(n_labels)):
            raise ValueError("every genre needs training windows")
        coef = clf.coef_ / std
        return cls(coef.astype(np.float32), (clf.intercept_ - coef @ mean).astype(np.float32))

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.coef.T + self.intercept
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
