"""Generated bad input (hypothesis): audio buffers, configuration files and bundle.json.

No exception escapes; garbage is reported, never classified as music; bad files
give clear errors. Failing examples found here are kept as explicit examples.
"""

from __future__ import annotations

import json
import shutil
import string
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genrecast.daemon.bundle import BundleError, load_bundle
from genrecast.daemon.classifier import open_classifier
from genrecast.daemon.config import load_config
from genrecast.daemon.pipeline import EventMaker, PipelineSettings, SourceState

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

special_floats = st.sampled_from([np.nan, np.inf, -np.inf, 1e-40, -1e-40, 1.0, -1.0, 1e30, 0.0])
samples = st.one_of(st.floats(-2, 2, width=32), special_floats)


@pytest.fixture(scope="module")
def classifier(trained_bundle: Path):
    return open_classifier(trained_bundle)


@FUZZ
@given(
    audio=arrays(np.float32, st.integers(0, 3 * 22050 * 3), elements=samples, fill=samples),
    rate=st.sampled_from([8000, 11025, 22050, 44100, 48000, 96000, 192000]),
    block=st.integers(1, 50000),
    dc=st.floats(-1, 1),
)
@example(audio=np.full(22050 * 4, np.nan, np.float32), rate=22050, block=4096, dc=0.0)
@example(audio=np.full(22050 * 4, 1e-40, np.float32), rate=22050, block=4096, dc=0.0)
@example(audio=np.ones(22050 * 4, np.float32), rate=44100, block=777, dc=0.5)
def test_no_exception_escapes_and_garbage_is_never_music(classifier, audio, rate, block, dc) -> None:
    state = SourceState("fuzz", classifier, PipelineSettings())
    maker = EventMaker(classifier, PipelineSettings())
    audio = audio + np.float32(dc)
    pending = []
    with np.errstate(all="ignore"):
        for i in range(0, len(audio), block):
            pending += state.windows(audio[i : i + block], rate)
        pending += state.flush()
        events = maker.events(pending) if pending else []
    for p, event in zip(pending, events):
        finite = np.all(np.isfinite(p.window.samples))
        if not finite:
            assert event.state != "music" and event.genre is None
        if event.state == "music":
            assert finite and event.genre in classifier.bundle.labels
            assert abs(sum(event.probabilities.values()) - 1) < 1e-3
        json.loads(event.to_json())  # always serialisable (no NaN)


toml_scalars = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.booleans(),
                         st.text(string.printable, max_size=20))
key_names = st.sampled_from(["sinks", "sources", "model", "mqtt", "smoothing", "windowing", "logfile", "metrics", "input", "qos",
                             "port", "host", "windows", "bundle", "hold_windows", "bogus"])


def _toml(doc: dict) -> str:
    lines = []
    for key, value in doc.items():
        if isinstance(value, dict):
            continue
        lines.append(f"{key} = {json.dumps(value)}")
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


@FUZZ
@given(doc=st.dictionaries(key_names, st.one_of(toml_scalars, st.dictionaries(key_names, toml_scalars, max_size=4)), max_size=6),
       garbage=st.binary(max_size=64))
def test_config_files_give_problems_not_exceptions(tmp_path: Path, doc, garbage) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(_toml(doc))
    config = load_config(path, env={})
    try:
        tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError:
        assert config.problems
    assert all(isinstance(p, str) and "\n" not in p for p in config.problems)
    path.write_bytes(garbage)
    load_config(path, env={})  # never raises


mutations = st.sampled_from(["drop", "null", "string", "negative", "huge", "list", "nested"])


@FUZZ
@given(key=st.sampled_from(["format_version", "model_id", "labels", "feature_config", "normalisation"]),
       inner=st.sampled_from(["", "sample_rate", "n_mfcc", "window_seconds", "kind", "mean", "std", "hop_length"]),
       how=mutations)
def test_mutated_bundle_json_is_a_bundle_error(trained_bundle: Path, tmp_path_factory, key, inner, how) -> None:
    bundle = tmp_path_factory.mktemp("b") / "b"
    shutil.copytree(trained_bundle, bundle)
    doc = json.loads((bundle / "bundle.json").read_text())
    value = {"drop": None, "null": None, "string": "x", "negative": -1, "huge": 10**300, "list": [1, "a"], "nested": {"a": {}}}[how]
    target = doc
    if inner and isinstance(doc.get(key), dict) and inner in doc[key]:
        target, key = doc[key], inner
    if how == "drop":
        target.pop(key, None)
    else:
        target[key] = value
    (bundle / "bundle.json").write_text(json.dumps(doc))
    try:
        load_bundle(bundle)
    except BundleError as exc:
        assert str(exc) and "\n" not in str(exc)
