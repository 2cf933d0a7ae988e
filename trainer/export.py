"""Write a trained Keras model as a complete, validated bundle directory."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from genrecast.daemon.bundle import KERAS_FILE, TFLITE_FILE, Bundle, load_bundle, write_bundle_json
from genrecast.daemon.features import FeatureConfig

log = logging.getLogger(__name__)


def quiet_tensorflow() -> None:
    """Silence tensorflow's C++ start-up chatter (call before importing it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def export_tflite(model, path: Path) -> None:
    """Convert a Keras model to a float32 ``.tflite`` file at ``path``."""
    quiet_tensorflow()
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel signature
        path.write_bytes(converter.convert())


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a bundle, for its provenance."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("genrecast", "numpy", "librosa", "keras", "tensorflow", "tensorflow-cpu"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def save_bundle(
    model,
    out: Path,
    *,
    labels: list[str],
    features: FeatureConfig,
    mean: np.ndarray,
    std: np.ndarray,
    metrics: dict[str, Any],
    provenance: dict[str, Any],
) -> Bundle:
    """Save ``model`` (.keras and .tflite) with its ``bundle.json`` into ``out`` and validate it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / KERAS_FILE)
    export_tflite(model, out / TFLITE_FILE)
    digest = hashlib.sha256((out / TFLITE_FILE).read_bytes()).hexdigest()[:12]
    model_id = f"{provenance.get('arch', 'model')}-{digest}"
    provenance = {**provenance, "libraries": library_versions()}
    write_bundle_json(
        out, model_id=model_id, labels=labels, features=features, mean=mean, std=std,
        metrics=metrics, provenance=provenance,
    )
    return load_bundle(out)
