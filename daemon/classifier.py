"""Classifier backends: run a bundle's model on a batch of feature arrays.

``litert`` (default) runs ``model.tflite`` through ai-edge-litert and never
imports tensorflow; ``keras`` loads ``model.keras`` (needs ``genrecast[train]``).
Either way the bundle's music detector, when it has one, runs on LiteRT.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from genrecast.daemon.bundle import Bundle, BundleError, default_bundle_path, load_bundle
from genrecast.daemon.detector import MusicDetector
from genrecast.daemon.litert import LiteRTModel

log = logging.getLogger(__name__)
BACKENDS = ("litert", "keras")


class Classifier(Protocol):
    """Turns a batch of raw (un-normalised) features into label probabilities."""

    bundle: Bundle
    detector: MusicDetector | None
    """The bundle's music detector (always on LiteRT), or None when the bundle has none."""

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``features``: batch x input_shape; returns batch x labels, rows summing to 1."""
        ...


class LiteRTClassifier:
    """The bundle's ``.tflite`` model on the LiteRT interpreter."""

    def __init__(self, bundle: Bundle, num_threads: int = 1) -> None:
        self.bundle = bundle
        self.detector = MusicDetector(bundle.detector) if bundle.detector is not None else None
        # a window-map model (musicnn: ~90 MB of XNNPACK working memory for one window) runs one
        # window at a time, so a batch does not multiply its memory
        self._model = LiteRTModel(bundle.tflite_path, num_threads, max_batch=1 if bundle.features.kind == "logmel" else None)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self._model.run(self.bundle.normalise(np.asarray(features)))


class KerasClassifier:
    """The bundle's ``.keras`` model (imports tensorflow)."""

    def __init__(self, bundle: Bundle) -> None:
        try:
            import keras
        except ImportError:
            raise BundleError("the keras backend needs tensorflow: pip install 'genrecast[train]', or use --backend litert") from None
        self.bundle = bundle
        self.detector = MusicDetector(bundle.detector) if bundle.detector is not None else None
        self._model = keras.saving.load_model(bundle.keras_path, compile=False)
        outputs = int(self._model.output_shape[-1])
        if outputs != len(bundle.labels):
            raise BundleError(
                f"model bundle {bundle.path}: model.keras has {outputs} outputs but bundle.json lists {len(bundle.labels)} labels"
            )

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = self.bundle.normalise(np.asarray(features))
        return np.asarray(self._model(x, training=False), dtype=np.float32)


def open_classifier(bundle_path=None, backend: str = "litert") -> Classifier:
    """Load and validate a bundle (``None``/empty: the built-in one) and return a classifier for ``backend``."""
    if backend not in BACKENDS:
        raise BundleError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    bundle = load_bundle(bundle_path or default_bundle_path(), require="tflite" if backend == "litert" else "keras")
    return LiteRTClassifier(bundle) if backend == "litert" else KerasClassifier(bundle)
