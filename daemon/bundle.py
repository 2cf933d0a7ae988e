"""The model bundle: one directory the trainer writes and the daemon trusts.

Layout::

    bundle.json    format version, model id, labels, feature config,
                   normalisation statistics, metrics, provenance
    model.tflite   the model for the default LiteRT backend
    model.keras    the same model for the Keras backend (optional at run time)
    detector.tflite / detector.keras
                   the music detector (format 2; optional): P(music, speech, other)
                   per window, described by bundle.json's ``detector`` entry

Format 1 bundles (before the detector) still load; they have no detector and
every window that is not silent is treated as music.

:func:`load_bundle` is the one loader; it validates everything it can without
tensorflow and names what is wrong.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genrecast.daemon.features import FeatureConfig

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
#: Format versions this genrecast reads (1: no music detector).
READABLE_VERSIONS = (1, 2)
BUNDLE_JSON = "bundle.json"
TFLITE_FILE = "model.tflite"
KERAS_FILE = "model.keras"
DETECTOR_TFLITE = "detector.tflite"
DETECTOR_KERAS = "detector.keras"


def default_bundle_path() -> Path:
    """The bundle shipped inside the package (the feature-table model; see README)."""
    from importlib import resources

    return Path(str(resources.files("genrecast.daemon").joinpath("default_bundle")))


class BundleError(ValueError):
    """A model bundle is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class DetectorSpec:
    """The bundle's music detector: model, features, normalisation and gate thresholds."""

    tflite_path: Path
    """``detector.tflite`` (input batch x len(features.columns), output batch x 3)."""
    features: FeatureConfig
    """A ``detector``-kind config (see :mod:`genrecast.daemon.music_features`)."""
    labels: tuple[str, ...]
    """The outputs, in order: ``music``, ``speech``, ``other``."""
    mean: np.ndarray
    """Normalisation mean per feature column (training files only)."""
    std: np.ndarray
    """Normalisation standard deviation per feature column."""
    gate: Any
    """:class:`genrecast.daemon.detector.GateSettings` chosen on the validation files."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Validation and test figures recorded by the trainer."""

    def to_dict(self) -> dict[str, Any]:
        """The ``detector`` entry of ``bundle.json``."""
        return {
            "model": DETECTOR_TFLITE, "labels": list(self.labels), "feature_config": self.features.to_dict(),
            "normalisation": {"mean": np.asarray(self.mean, float).tolist(), "std": np.asarray(self.std, float).tolist()},
            "gate": {"enter": self.gate.enter, "leave": self.gate.leave, "windows": self.gate.windows},
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle."""

    path: Path
    """The bundle directory."""
    model_id: str
    """Short identifier carried in every event."""
    labels: tuple[str, ...]
    """Ordered genre labels; model output i is ``labels[i]``."""
    features: FeatureConfig
    """How audio becomes model input."""
    mean: np.ndarray
    """Normalisation mean over the last input axis (training set only)."""
    std: np.ndarray
    """Normalisation standard deviation over the last input axis."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Evaluation results recorded by the trainer."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Dataset fingerprint, split, architecture, epochs, seed, library versions."""
    detector: DetectorSpec | None = None
    """The music detector; None for bundles without one (format 1, or trained without it)."""
    format_version: int = FORMAT_VERSION
    """The ``format_version`` of its ``bundle.json``."""

    @property
    def tflite_path(self) -> Path:
        return self.path / TFLITE_FILE

    @property
    def keras_path(self) -> Path:
        return self.path / KERAS_FILE

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Standardise features with the training-set statistics (float32)."""
        return ((x - self.mean) / self.std).astype(np.float32)


def write_bundle_json(
    directory: Path,
    *,
    model_id: str,
    labels: list[str],
    features: FeatureConfig,
    mean: np.ndarray,
    std: np.ndarray,
    metrics: dict[str, Any],
    provenance: dict[str, Any],
) -> Path:
    """Write ``bundle.json`` (the trainer calls this after saving the models; the music detector's
    trainer adds its ``detector`` entry afterwards, see ``genrecast.trainer.detector``)."""
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "labels": list(labels),
        "feature_config": features.to_dict(),
        "normalisation": {"mean": np.asarray(mean, float).tolist(), "std": np.asarray(std, float).tolist()},
        "metrics": metrics,
        "provenance": provenance,
    }
    path = Path(directory) / BUNDLE_JSON
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def _tflite_io_shapes(path: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise BundleError(f"{path} is not a readable TFLite model ({exc}); re-export the bundle with `genrecast train`") from None
    inp = tuple(int(d) for d in interpreter.get_input_details()[0]["shape"])
    out = tuple(int(d) for d in interpreter.get_output_details()[0]["shape"])
    return inp, out


def load_bundle(path: str | Path, *, require: str = "tflite") -> Bundle:
    """Load and validate the bundle at ``path``.

    ``require`` names the model file the caller will run (``tflite`` or
    ``keras``); the TFLite file's input and output shapes are always checked
    against the feature config and labels when it is present.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model bundle {path} is not a directory; give the folder of a bundle made by `genrecast train`")
    meta_path = path / BUNDLE_JSON
    if not meta_path.is_file():
        raise BundleError(f"model bundle {path} has no {BUNDLE_JSON}; it was not written by `genrecast train`")
    try:
        doc = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc}); re-create the bundle with `genrecast train`") from None
    if not isinstance(doc, dict):
        raise BundleError(f"{meta_path} must hold a JSON object")
    version = doc.get("format_version")
    if version not in READABLE_VERSIONS:
        raise BundleError(
            f"{meta_path} has unknown format_version {version!r} (this genrecast reads {READABLE_VERSIONS}); "
            "use a matching genrecast or re-train the bundle"
        )
    for key in ("model_id", "labels", "feature_config", "normalisation"):
        if key not in doc:
            raise BundleError(f"{meta_path} lacks the key {key!r}")
    labels = doc["labels"]
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, str) and x for x in labels)
        or len(set(labels)) != len(labels)
    ):
        raise BundleError(f"{meta_path}: labels must be a list of at least 2 distinct non-empty names")
    if not isinstance(doc["model_id"], str) or not doc["model_id"]:
        raise BundleError(f"{meta_path}: model_id must be a non-empty string")
    try:
        if not isinstance(doc["feature_config"], dict):
            raise TypeError(f"an object, not {type(doc['feature_config']).__name__}")
        features = FeatureConfig.from_dict(doc["feature_config"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{meta_path}: feature_config is not valid ({exc}); restore the bundle's bundle.json "
                          "or rebuild it with `genrecast train`") from None
    norm = doc["normalisation"]
    try:
        with np.errstate(over="ignore"):  # huge values become inf and fail the check below
            mean = np.asarray(norm["mean"], dtype=np.float32)
            std = np.asarray(norm["std"], dtype=np.float32)
    except (TypeError, KeyError, ValueError, OverflowError):
        raise BundleError(f"{meta_path}: normalisation needs numeric 'mean' and 'std' lists") from None
    width = features.input_shape[-1]
    if mean.shape != (width,) or std.shape != (width,):
        raise BundleError(
            f"{meta_path}: normalisation has {mean.size} means and {std.size} stds but the feature config gives {width} features"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise BundleError(f"{meta_path}: normalisation statistics must be finite with std > 0")

    tflite = path / TFLITE_FILE
    wanted = path / (TFLITE_FILE if require == "tflite" else KERAS_FILE)
    if not wanted.is_file():
        raise BundleError(f"model bundle {path} is missing {wanted.name}; re-export it with `genrecast train`")
    if tflite.is_file():
        inp, out = _tflite_io_shapes(tflite)
        if out[-1] != len(labels):
            raise BundleError(
                f"model bundle {path}: {TFLITE_FILE} has {out[-1]} outputs but bundle.json lists {len(labels)} labels"
            )
        if tuple(inp[1:]) != features.input_shape:
            raise BundleError(
                f"model bundle {path}: {TFLITE_FILE} expects input {tuple(inp[1:])} but the feature config gives {features.input_shape}"
            )
    detector = _load_detector(path, doc, meta_path) if version >= 2 and doc.get("detector") is not None else None
    if detector is not None and (detector.features.sample_rate, detector.features.window_seconds) != (
            features.sample_rate, features.window_seconds):
        raise BundleError(f"{meta_path}: the music detector works on {detector.features.window_seconds:g}-s windows at "
                          f"{detector.features.sample_rate} Hz but the genre model on {features.window_seconds:g}-s windows at "
                          f"{features.sample_rate} Hz; train the detector for this bundle with `genrecast train --detector-data`")
    if detector is None:
        log.info("model bundle %s has no music detector (format %s): every window that is not silent counts as music",
                 path, version)
    return Bundle(
        path=path,
        model_id=doc["model_id"],
        labels=tuple(labels),
        features=features,
        mean=mean,
        std=std,
        metrics=doc.get("metrics", {}) or {},
        provenance=doc.get("provenance", {}) or {},
        detector=detector,
        format_version=version,
    )


def _load_detector(path: Path, doc: dict[str, Any], meta_path: Path) -> DetectorSpec:
    """Validate bundle.json's ``detector`` entry against ``detector.tflite``."""
    from genrecast.daemon.detector import DETECTOR_LABELS, GateSettings

    entry = doc["detector"]
    try:
        features = FeatureConfig.from_dict(entry["feature_config"])
        if features.kind != "detector":
            raise ValueError(f"its feature_config kind is {features.kind!r}, not 'detector'")
        labels = tuple(entry["labels"])
        if labels != DETECTOR_LABELS:
            raise ValueError(f"its labels are {list(labels)}, expected {list(DETECTOR_LABELS)}")
        mean = np.asarray(entry["normalisation"]["mean"], dtype=np.float32)
        std = np.asarray(entry["normalisation"]["std"], dtype=np.float32)
        width = len(features.columns)
        if mean.shape != (width,) or std.shape != (width,) or not np.all(np.isfinite(mean)) or not np.all(std > 0):
            raise ValueError(f"its normalisation needs {width} finite means and positive stds")
        gate = GateSettings(**entry["gate"])
        model = entry.get("model", DETECTOR_TFLITE)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{meta_path}: the detector entry is invalid ({exc}); re-train it with `genrecast train --detector-data`") from None
    tflite = path / Path(str(model)).name
    if not tflite.is_file():
        raise BundleError(f"model bundle {path} is missing {tflite.name} (its bundle.json lists a detector); "
                          "re-train it with `genrecast train --detector-data`")
    inp, out = _tflite_io_shapes(tflite)
    if out[-1] != len(labels) or tuple(inp[1:]) != (len(features.columns),):
        raise BundleError(f"model bundle {path}: {tflite.name} has input {tuple(inp[1:])} and {out[-1]} outputs, "
                          f"but bundle.json describes {len(features.columns)} features and {len(labels)} outputs")
    return DetectorSpec(tflite_path=tflite, features=features, labels=labels, mean=mean, std=std, gate=gate,
                        metrics=entry.get("metrics", {}) or {})
