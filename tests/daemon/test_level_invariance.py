"""Level invariance by construction (genrecast.daemon.level): a gain, a pan law or another
sample rate must not change what the default model says about real music."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from helpers import GTZAN_LABELS, need
from genrecast.daemon.audio import load_audio
from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig, clip_summary
from genrecast.daemon.level import LEVEL_COLUMNS, normalise_level

#: Clips of three genres that the default model never trained on (gtzan-sample is left out).
CLIPS = ("jazz/jazz.00016.wav", "metal/metal.00000.wav", "country/country.00000.wav")
PAN_LAW_DB = -3.0  # constant-power pan law: a centred mono source at -3 dB in each channel
MAX_ABS_PROBABILITY_CHANGE = 0.02


def resample(y: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """soxr at high quality, as genrecast's decoder resamples."""
    import soxr

    return y if rate == target_rate else soxr.resample(y, rate, target_rate, quality="HQ").astype(np.float32)


@pytest.fixture(scope="module")
def default_classifier():
    from genrecast.daemon.classifier import open_classifier

    classifier = open_classifier("", "litert")
    features = classifier.bundle.features
    assert features.kind == "logmel" or features.level == "normalised", "the default bundle must take the level out"
    return classifier


@pytest.fixture(scope="module")
def clips(gtzan_sample: Path) -> dict[str, np.ndarray]:
    return {name: load_audio(need(gtzan_sample / name), 22050) for name in CLIPS}


def classify_array(audio: np.ndarray, rate: int, classifier, tmp: Path):
    """Write ``audio`` (samples or samples x channels, float32, no clipping possible) and run
    the real ``classify`` path on it: decode, downmix, resample, windows, rolling summary."""
    from genrecast.daemon.classify import classify_file
    from genrecast.daemon.pipeline import PipelineSettings

    path = tmp / f"take-{rate}-{audio.ndim}.wav"
    sf.write(path, audio.astype(np.float32), rate, subtype="FLOAT")
    return classify_file(path, classifier, PipelineSettings())


def test_normalise_level_removes_exactly_what_a_gain_adds() -> None:
    rng = np.random.default_rng(0)
    columns = DEFAULT_SUMMARY_COLUMNS
    rows = np.abs(rng.normal(size=(5, len(columns)))) + 0.1
    i_mean, i_var, i_mfcc = (columns.index(c) for c in LEVEL_COLUMNS)
    for gain_db in (-30.0, -3.0, 12.0):
        g = 10 ** (gain_db / 20)
        moved = rows.copy()
        moved[:, i_mean] *= g
        moved[:, i_var] *= g**2
        moved[:, i_mfcc] += np.sqrt(128) * gain_db
        np.testing.assert_allclose(normalise_level(moved, columns), normalise_level(rows, columns), rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError, match="rms_var"):
        normalise_level(rows[:, :3], ("chroma_stft_mean", "chroma_stft_var", "rms_mean"))


def test_normalised_summary_of_real_audio_ignores_gain(clips) -> None:
    cfg = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, level="normalised")
    for audio in clips.values():
        reference = clip_summary(audio, cfg)
        for gain_db in (-24.0, 6.0):
            moved = clip_summary(audio * np.float32(10 ** (gain_db / 20)), cfg)
            np.testing.assert_allclose(moved, reference, rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def references(default_classifier, clips, tmp_path_factory) -> dict:
    """Each clip as it is, classified once (the examples below draw the same three clips again and again)."""
    tmp = tmp_path_factory.mktemp("reference")
    return {name: classify_array(audio, 22050, default_classifier, tmp) for name, audio in clips.items()}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    clip=st.sampled_from(CLIPS),
    gain_db=st.floats(-24.0, 6.0),
    stereo=st.booleans(),
    rate=st.sampled_from([22050, 44100, 48000]),
)
def test_verdicts_survive_gain_pan_law_and_sample_rate(default_classifier, clips, references, tmp_path_factory, clip, gain_db,
                                                       stereo, rate) -> None:
    """Against the clip as it is (22.05 kHz mono): the same audio with a gain, a constant-power
    pan law and another sample rate (22.05, 44.1 or 48 kHz) changes no window's probabilities by
    more than 0.02, and no state or verdict, as long as the take stays above the silence gate.
    The rate holds because the windows of a 22.05-kHz source go up to 44.1 kHz and back
    (FeatureConfig.band_stage_hz, daemon/windowing.py): without it a 44.1-kHz file moved jazz.00000's windows by
    0.07 and pop.00000's by 0.11 (soxr's anti-alias cut, which a 22.05-kHz file lacked)."""
    from genrecast.daemon.pipeline import PipelineSettings

    assert default_classifier.bundle.features.band_stage_hz == 44100
    tmp = tmp_path_factory.mktemp("take")
    reference = references[clip]
    # Invariance holds above the noise floor: the silence gate is absolute (dBFS) by design,
    # so keep every window of the take 1 dB or more above it.
    quietest = min(e.level_dbfs for e in reference.events)
    assume(quietest + gain_db + (PAN_LAW_DB if stereo else 0.0) > PipelineSettings().smoothing.silence_dbfs + 1.0)
    take = resample(clips[clip], 22050, rate) * np.float32(10 ** (gain_db / 20))
    if stereo:
        take = np.stack([take, take], axis=1) * np.float32(10 ** (PAN_LAW_DB / 20))
    result = classify_array(take, rate, default_classifier, tmp)
    assert len(result.events) == len(reference.events)
    for ours, ref in zip(result.events, reference.events):
        assert ours.state == ref.state
        if ref.probabilities:
            worst = max(abs(ours.probabilities[g] - ref.probabilities[g]) for g in GTZAN_LABELS)
            assert worst <= MAX_ABS_PROBABILITY_CHANGE, (clip, gain_db, stereo, rate, ours.audio_start_seconds, worst)
    assert result.verdict[0] == reference.verdict[0]
