"""The music detector: its gate's hysteresis, its level-invariant features, bundles with and
without it, and the version-2 event schema."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from genrecast.daemon.bundle import BundleError, default_bundle_path, load_bundle
from genrecast.daemon.detector import DETECTOR_LABELS, GateSettings, MusicGate
from genrecast.daemon.events import GenreEvent, load_schema, utc_now
from genrecast.daemon.music_features import DETECTOR_COLUMNS, detector_config, music_features


def _states(gate: GateSettings, values: list[float]) -> list[bool]:
    g = MusicGate(gate)
    return [g.update(v)[0] for v in values]


def test_gate_hysteresis_holds_between_thresholds_and_follows_clear_changes() -> None:
    gate = GateSettings(enter=0.6, leave=0.3, windows=3)
    # music, a DJ talking over the intro for one window, music again: never leaves music
    assert _states(gate, [0.9, 0.9, 0.9, 0.1, 0.9, 0.9]) == [True] * 6
    # values wandering between the thresholds keep whatever state holds
    assert _states(gate, [0.9, 0.45, 0.4, 0.5, 0.35, 0.45]) == [True] * 6
    assert _states(gate, [0.1, 0.45, 0.5, 0.55, 0.4, 0.5]) == [False] * 6
    # talk: leaves on the third sure window (means 0.67, 0.33, then 0 < 0.3), comes back on the second music window
    states = _states(gate, [1, 1, 1, 0, 0, 0, 0, 1, 1, 1])
    assert states == [True, True, True, True, True, False, False, False, True, True]


def test_gate_start_follows_the_midpoint_until_the_smoothing_is_full() -> None:
    gate = GateSettings(enter=0.6, leave=0.3, windows=3)
    # one unsure first window (a quiet intro): music from the second window (mean 0.5 >= midpoint 0.45),
    # not only once the mean of three reaches 0.6
    assert _states(gate, [0.0, 1.0, 1.0, 1.0]) == [False, True, True, True]
    assert _states(gate, [1.0, 0.0, 0.0, 0.0]) == [True, True, True, False]  # 0.33 is not under 0.3 yet
    # once three values are held, hysteresis: 0.5 keeps the state either way
    assert _states(gate, [0.9, 0.9, 0.9, 0.2, 0.4]) == [True] * 5


def test_gate_forgets_the_sound_before_a_silence_as_long_as_its_smoothing() -> None:
    gate = GateSettings(enter=0.45, leave=0.35, windows=3)

    def states(values: list[float | None]) -> list[bool | None]:
        g, out = MusicGate(gate), []
        for v in values:
            if v is None:  # a window under the silence gate
                g.silent()
                out.append(None)
            else:
                out.append(g.update(v)[0])
        return out

    # a song, 3 silent windows, talk: the talk's first window is not music (its mean held the song: 0.67)
    assert states([1, 1, 1, None, None, None, 0.0, 0.0]) == [True] * 3 + [None] * 3 + [False, False]
    # talk, 3 silent windows, a song: music from the song's first window (the talk's mean held it back)
    assert states([0, 0, 0, None, None, None, 1.0]) == [False] * 3 + [None] * 3 + [True]
    # a silence shorter than the smoothing span keeps what came before it: one silent window in a song
    assert states([1, 1, 1, None, 0.0]) == [True, True, True, None, True]
    assert states([1, 1, 1, None, None, 0.0]) == [True, True, True, None, None, True]
    # the first window judged after the gate forgot is marked, so the genre is found afresh too
    g, marks = MusicGate(gate), []
    for v in (1, 1, None, None, None, 1, 1, None, None, 1):
        if v is None:
            g.silent()
        else:
            g.update(v)
            marks.append(g.after_silence)
    assert marks == [False, False, True, False, False]


def test_gate_settings_validate_and_state_their_delay() -> None:
    with pytest.raises(ValueError, match="leave"):
        GateSettings(enter=0.3, leave=0.6)
    with pytest.raises(ValueError, match="windows"):
        GateSettings(windows=0)
    assert GateSettings(enter=0.6, leave=0.3, windows=3).delay_windows() == 3  # as the hysteresis test shows
    assert GateSettings(enter=0.6, leave=0.4, windows=3).delay_windows() == 2
    assert GateSettings(enter=0.5, leave=0.5, windows=1).delay_windows() == 1
    assert GateSettings(enter=0.95, leave=0.05, windows=3).delay_windows() == 3


def test_gate_changed_flag_marks_only_the_turning_window() -> None:
    g = MusicGate(GateSettings(enter=0.5, leave=0.5, windows=1))
    assert [g.update(v)[1] for v in (0.9, 0.9, 0.1, 0.1, 0.9)] == [True, False, True, False, True]


def test_music_features_ignore_gain_and_have_the_declared_shape(data_dir: Path) -> None:
    from genrecast.daemon.audio import load_audio

    cfg = detector_config()
    clip = load_audio(data_dir / "music-speech" / "speech" / "comedy1.flac", cfg.sample_rate)[: cfg.window_samples]
    reference = music_features(clip, cfg)
    assert reference.shape == (len(DETECTOR_COLUMNS),) and reference.dtype == np.float32
    for db in (-30.0, -12.0, 6.0):
        quieter = music_features(clip * np.float32(10 ** (db / 20)), cfg)
        np.testing.assert_allclose(quieter, reference, rtol=1e-3, atol=2e-3)
    with pytest.raises(ValueError, match="at least"):
        music_features(clip[:1000], cfg)


def test_a_detector_config_cannot_drop_columns() -> None:
    from genrecast.daemon.features import FeatureConfig

    with pytest.raises(ValueError, match="DETECTOR_COLUMNS"):
        FeatureConfig(kind="detector", columns=DETECTOR_COLUMNS[:-1])


@pytest.mark.parametrize("count", [52, 55])
def test_an_older_detector_still_gets_its_columns(data_dir: Path, count: int) -> None:
    """Bundles whose detector was trained before the room columns (52) or the tuning columns (55)
    keep working: their config names a prefix of the columns, and music_features gives exactly
    those values."""
    from dataclasses import replace

    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.music_features import DETECTOR_COLUMN_SETS

    columns = next(c for c in DETECTOR_COLUMN_SETS if len(c) == count)
    cfg = detector_config()
    old = replace(cfg, columns=columns)
    assert DETECTOR_COLUMNS[:count] == columns and len(DETECTOR_COLUMNS) == 57
    clip = load_audio(data_dir / "gtzan-sample" / "jazz" / "jazz.00016.wav", cfg.sample_rate)[: cfg.window_samples]
    np.testing.assert_array_equal(music_features(clip, old), music_features(clip, cfg)[:count])


@pytest.mark.parametrize("count", [52, 55])
def test_an_older_detector_does_not_pay_for_columns_it_never_reads(count: int, monkeypatch) -> None:
    from dataclasses import replace

    import genrecast.daemon.music_features as mf

    def never(*args, **kwargs):
        raise AssertionError("computed a column the detector does not use")

    monkeypatch.setattr(mf, "_tuning", never)
    if count == 52:
        monkeypatch.setattr(mf, "_harmonic_motion", never)
    columns = next(c for c in mf.DETECTOR_COLUMN_SETS if len(c) == count)
    window = np.random.default_rng(0).normal(0, 0.1, detector_config().window_samples).astype(np.float32)
    assert mf.music_features(window, replace(detector_config(), columns=columns)).shape == (count,)


def _tuning_columns(samples: np.ndarray) -> np.ndarray:
    cfg = detector_config()
    return music_features(samples.astype(np.float32), cfg)[[DETECTOR_COLUMNS.index("log_tuning_concentration"),
                                                            DETECTOR_COLUMNS.index("log_tuning_consistency")]]


def test_tuning_columns_see_notes_on_one_grid_whatever_the_reference() -> None:
    """Held notes of an equal-tempered scale (a 432-Hz reference, not 440) with their partials sit
    on one grid; the same partials gliding as a voice's pitch does do not; and a window of silence
    has no peaks at all (the logarithm's floor, not a NaN)."""
    sr, cfg = 22050, detector_config()
    t = np.arange(cfg.window_samples) / sr
    notes = np.zeros_like(t)
    for k, semitone in enumerate((0, 4, 7, 12, 9, 5)):  # half-second notes of a scale
        f0 = 432.0 * 2 ** ((semitone - 12) / 12)
        part = (t >= k * 0.5) & (t < (k + 1) * 0.5)
        notes[part] = sum(np.sin(2 * np.pi * h * f0 * t[part]) / h for h in (1, 2, 4))
    glide = 180.0 * 2 ** (np.sin(2 * np.pi * 0.7 * t) * 0.5)  # +-6 semitones, slowly, as intonation moves
    phase = 2 * np.pi * np.cumsum(glide) / sr
    voice = sum(np.sin(h * phase) / h for h in (1, 2, 3, 4))
    held, glided = _tuning_columns(0.3 * notes), _tuning_columns(0.3 * voice)
    assert held[0] > np.log(0.5) and held[1] > np.log(0.5)
    assert glided[0] < held[0] - 1.0 and glided[1] < held[1]
    np.testing.assert_allclose(_tuning_columns(np.zeros(cfg.window_samples)), np.log(0.01), rtol=1e-6)


def test_tuning_columns_tell_real_speech_from_real_music(data_dir: Path) -> None:
    """On real recordings: a sung or played window's peaks sit on a grid far more than a talker's."""
    from genrecast.daemon.audio import load_audio

    cfg = detector_config()

    def concentration(path: Path) -> float:
        y = load_audio(path, cfg.sample_rate)
        return float(np.median([_tuning_columns(y[i:i + cfg.window_samples])[0]
                                for i in range(0, len(y) - cfg.window_samples, cfg.window_samples)]))

    speech = [concentration(data_dir / "music-speech" / "speech" / name) for name in ("comedy1.flac", "allison.flac")]
    music = [concentration(data_dir / "gtzan-sample" / g / f"{g}.00000.wav") for g in ("classical", "jazz", "country")]
    assert max(speech) < min(music)


def test_default_bundle_ships_a_detector_with_validated_thresholds() -> None:
    bundle = load_bundle(default_bundle_path())
    assert bundle.format_version == 2
    spec = bundle.detector
    assert spec is not None and spec.labels == DETECTOR_LABELS
    assert spec.features.columns == DETECTOR_COLUMNS
    assert 0 < spec.gate.leave <= spec.gate.enter < 1
    assert spec.metrics["test"]["clean"]["speech"]["windows"] > 0


def test_the_daemon_gates_silence_where_the_default_detector_was_chosen_and_evaluated() -> None:
    from genrecast.daemon.config import KEYS
    from genrecast.daemon.smoothing import SmoothingSettings

    metrics = load_bundle(default_bundle_path()).detector.metrics
    assert metrics["silence_dbfs"] == SmoothingSettings().silence_dbfs == KEYS["smoothing.silence_dbfs"].default
    assert "validation" in metrics["silence_choice"]


def test_silence_gate_is_chosen_on_validation_music_levels() -> None:
    from genrecast.trainer.detector_eval import FileWindows, choose_silence_gate, with_silence_gate

    def file(label: str, levels: list[float]) -> FileWindows:
        return FileWindows("f", label, "music", "clean", np.zeros((len(levels), 3), np.float32),
                           np.zeros(len(levels), bool), levels=np.array(levels, np.float32))

    # quietest music -37.4 dBFS: 24 dB quieter is -61.4, less 3 dB of margin -64.4: the grid's -65
    gate, rule = choose_silence_gate([file("music", [-20.0, -37.4]), file("other", [-90.0])])
    assert gate == -65.0 and "-37.4" in rule
    assert choose_silence_gate([file("music", [-10.0])])[0] == -50.0  # never above the former fixed gate
    assert choose_silence_gate([file("music", [-70.0])])[0] == -80.0  # nor below the grid
    with pytest.raises(ValueError, match="no music"):
        choose_silence_gate([file("speech", [-20.0])])
    gated = with_silence_gate([file("music", [-64.0, -66.0])], gate)
    assert gated[0].silent.tolist() == [False, True]


def _copy_default(tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), out)
    return out


def test_a_format_1_bundle_still_loads_and_says_it_has_no_detector(tmp_path: Path, caplog) -> None:
    out = _copy_default(tmp_path)
    doc = json.loads((out / "bundle.json").read_text())
    doc["format_version"] = 1
    del doc["detector"]
    (out / "bundle.json").write_text(json.dumps(doc))
    (out / "detector.tflite").unlink()
    with caplog.at_level(logging.INFO, logger="genrecast.daemon.bundle"):
        bundle = load_bundle(out)
    assert bundle.detector is None and bundle.format_version == 1
    assert "has no music detector" in caplog.text


@pytest.mark.parametrize("damage, message", [
    (lambda d, out: (out / "detector.tflite").unlink(), "missing detector.tflite"),
    (lambda d, out: d["detector"]["gate"].update(enter=0.1, leave=0.9), "detector entry is invalid"),
    (lambda d, out: d["detector"].update(labels=["music", "talk", "other"]), "detector entry is invalid"),
    (lambda d, out: d["detector"]["normalisation"]["std"].pop(), "detector entry is invalid"),
])
def test_a_broken_detector_entry_is_named(tmp_path: Path, damage, message) -> None:
    out = _copy_default(tmp_path)
    doc = json.loads((out / "bundle.json").read_text())
    damage(doc, out)
    (out / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=message):
        load_bundle(out)


def _event(**overrides) -> GenreEvent:
    base = dict(source="radio", seq=0, utc=utc_now(), audio_start_seconds=0.0, audio_end_seconds=3.0, state="not_music",
                genre=None, probability=0.0, probabilities={}, smoothed_genre=None, smoothed_probability=0.0,
                changed=False, level_dbfs=-20.0, model_id="m", music_probability=0.03, smoothed_music_probability=0.1)
    return GenreEvent(**{**base, **overrides})


def test_schema_2_and_3_events_validate_and_round_trip() -> None:
    schema = load_schema()
    assert schema["properties"]["schema_version"]["const"] == 3
    for event in (_event(), _event(state="music", genre="rock", probability=0.9, probabilities={"rock": 0.9},
                                   music_probability=0.98), _event(state="silence", music_probability=None)):
        doc = json.loads(event.to_json())
        jsonschema.validate(doc, schema)
        assert GenreEvent.from_json(event.to_json()) == event
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**json.loads(_event().to_json()), "music_probability": 1.5}, schema)
    missing = json.loads(_event().to_json())
    del missing["music_probability"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, schema)
    with pytest.raises(ValueError, match="missing"):
        GenreEvent.from_dict(missing)


def test_schema_1_events_from_older_daemons_still_parse() -> None:
    old = json.loads(_event(state="music", genre="rock").to_json())
    old["schema_version"] = 1
    del old["music_probability"], old["smoothed_music_probability"]
    event = GenreEvent.from_dict(old)
    assert event.music_probability is None and event.state == "music"


class _ScriptedDetector:
    """A stand-in for the detector model (logic test of the pipeline's gating): P(music) from a script."""

    def __init__(self, spec, values: list[float]) -> None:
        self.spec, self._values = spec, list(values)

    def predict(self, features: np.ndarray) -> np.ndarray:
        p = np.array([self._values.pop(0) for _ in range(len(features))], dtype=np.float32)
        return np.stack([p, 1 - p, np.zeros_like(p)], axis=1)


def test_pipeline_gates_in_window_order_within_one_batch(gtzan_sample: Path) -> None:
    """One batch holds every window (as classify sends them): the gate, the smoothed P(music) and
    the genre smoother's reset must still follow the windows in order."""
    import dataclasses

    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.classifier import open_classifier
    from genrecast.daemon.pipeline import EventMaker, PipelineSettings, SourceState

    classifier = open_classifier(None)
    spec = dataclasses.replace(classifier.bundle.detector, gate=GateSettings(enter=0.6, leave=0.4, windows=2))
    script = [0.9, 0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.9, 0.9, 0.9]
    classifier.detector = _ScriptedDetector(spec, script)
    settings = PipelineSettings()
    state = SourceState("s", classifier, settings)
    audio = load_audio(gtzan_sample / "rock" / "rock.00000.wav", 22050)
    maker = EventMaker(classifier, settings)
    batches = []
    maker.on_batch = lambda windows, seconds: batches.append(windows)
    events = maker.events(state.windows(audio, 22050) + state.flush())
    # every window counts as classified (the Prometheus counter), the three not_music ones too
    assert maker.classified == 10 and batches == [10]
    # K=2: leaves on window 4 (mean 0), stays out on window 6 (mean 0.45 < enter 0.6), back on window 7
    assert [e.state == "not_music" for e in events] == [False] * 4 + [True] * 3 + [False] * 3
    assert [e.music_probability for e in events] == pytest.approx(script)
    running = [np.mean(script[max(0, i - 1) : i + 1]) for i in range(len(script))]
    assert [e.smoothed_music_probability for e in events] == pytest.approx(running, abs=1e-5)
    for e in events[4:7]:
        assert e.genre is None and e.probabilities == {} and e.smoothed_genre is None
    # the genre is found afresh after the talk: no smoothed genre on the first music window back
    assert events[7].smoothed_genre is None and events[7].genre is not None
    assert events[-1].smoothed_genre is not None


def test_a_detector_for_other_windows_than_the_genre_model_is_refused(tmp_path: Path) -> None:
    out = _copy_default(tmp_path)
    doc = json.loads((out / "bundle.json").read_text())
    doc["detector"]["feature_config"]["sample_rate"] = 16000
    (out / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="16000 Hz but the genre model"):
        load_bundle(out)


@pytest.mark.parametrize("hop", [1024, 512, 700])
def test_the_zero_crossing_rate_counts_every_sign_change_of_each_frame(hop: int) -> None:
    """The block-wise count equals the plain definition: sign changes between consecutive samples of
    each centred, zero-padded frame, over its n_fft - 1 pairs (700: a hop that does not divide n_fft)."""
    from dataclasses import replace

    from genrecast.daemon.music_features import _zero_crossing_rate

    cfg = replace(detector_config(), hop_length=hop)
    rng = np.random.default_rng(hop)
    for length in (cfg.window_samples, 40001, cfg.n_fft):
        y = rng.normal(size=length).astype(np.float32)
        y[rng.random(length) < 0.2] = 0.0  # zeros count as positive, as np.signbit has it
        padded = np.pad(y, cfg.n_fft // 2)
        starts = range(0, len(padded) - cfg.n_fft + 1, hop)
        expected = [np.count_nonzero(np.diff(np.signbit(padded[s:s + cfg.n_fft]).astype(int))) / (cfg.n_fft - 1)
                    for s in starts]
        np.testing.assert_array_equal(_zero_crossing_rate(y, cfg), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_means_and_spreads_equal_numpys_to_the_bit(dtype) -> None:
    """The detector's mean / std shortcut gives exactly numpy's ``mean(axis=1)`` and ``std(axis=1)``,
    so the shipped detector's inputs do not move (a rebuild from a cold cache gave the same model)."""
    from genrecast.daemon.music_features import _mean_std

    rng = np.random.default_rng(7)
    for shape in ((12, 65), (6, 130), (1, 64), (3, 1)):
        rows = (rng.normal(size=shape) * rng.uniform(1e-3, 1e3, size=(shape[0], 1)) + 5.0).astype(dtype)
        mean, spread = _mean_std(rows)
        assert mean.dtype == spread.dtype == dtype
        np.testing.assert_array_equal(mean, rows.mean(axis=1))
        np.testing.assert_array_equal(spread, rows.std(axis=1))
