"""The pipeline over real audio: classify, finite sources, bad samples, schema-valid events."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from helpers import TABLE_BUNDLE, run_cli
from genrecast.daemon.audio import load_audio
from genrecast.daemon.classifier import open_classifier
from genrecast.daemon.events import load_schema
from genrecast.daemon.pipeline import Pipeline, PipelineSettings

SCHEMA = load_schema()


class ArraySource:
    """A finite in-memory source delivering ``audio`` in blocks (for pipeline logic tests)."""

    finite = True

    def __init__(self, name: str, audio: np.ndarray, rate: int, block: int = 4096) -> None:
        self.name, self.audio, self.rate, self.block = name, audio, rate, block

    def run(self, deliver, stop: threading.Event) -> None:
        for i in range(0, len(self.audio), self.block):
            if stop.is_set():
                return
            deliver(self.audio[i : i + self.block], self.rate)


def _run(bundle: Path, sources, **settings):
    events = []
    pipeline = Pipeline(open_classifier(bundle), sources, events.append, PipelineSettings(**settings))
    pipeline.run()
    for e in events:
        jsonschema.validate(e.to_dict(), SCHEMA)
    return pipeline, events


def test_two_sources_cover_their_audio(trained_bundle: Path, gtzan_sample: Path) -> None:
    jazz = load_audio(gtzan_sample / "jazz" / "jazz.00000.wav", 44100)[: 44100 * 10]  # resampled by the pipeline
    metal = load_audio(gtzan_sample / "metal" / "metal.00000.wav", 22050)[: 22050 * 7]
    pipeline, events = _run(trained_bundle, [ArraySource("jazz", jazz, 44100), ArraySource("metal", metal, 22050)])
    by_source = {name: [e for e in events if e.source == name] for name in ("jazz", "metal")}
    assert [e.audio_start_seconds for e in by_source["jazz"]] == [0.0, 3.0, 6.0]  # 1 s left over: not classified
    assert [e.audio_start_seconds for e in by_source["metal"]] == [0.0, 3.0]
    assert [e.seq for e in by_source["jazz"]] == [0, 1, 2]
    assert all(e.state in ("music", "uncertain") and e.genre and len(e.probabilities) == 10 for e in events)
    assert pipeline.dropped_windows == 0


def test_silence_and_non_finite_windows_are_never_music(trained_bundle: Path) -> None:
    rate = 22050
    loud = np.random.default_rng(1).standard_normal(rate * 3).astype(np.float32) * 0.2
    garbage = loud.copy()
    garbage[::100] = np.nan
    infinite = loud.copy()
    infinite[5] = np.inf
    audio = np.concatenate([np.zeros(rate * 3, np.float32), garbage, infinite, loud])
    _, events = _run(trained_bundle, [ArraySource("s", audio, rate)])
    assert [e.state for e in events[:3]] == ["silence", "uncertain", "uncertain"]
    assert all(e.genre is None and e.probabilities == {} for e in events[:3])
    assert events[3].genre is not None


def test_classify_cli_table_json_and_bad_files(trained_bundle: Path, gtzan_sample: Path, tmp_path: Path) -> None:
    clip = gtzan_sample / "blues" / "blues.00099.mp3"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    empty = tmp_path / "empty.wav"
    empty.touch()
    proc = run_cli("classify", "--bundle", str(trained_bundle), "--json", str(not_audio), str(clip), str(empty))
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    windows = [line for line in lines if line["type"] == "window"]
    verdicts = [line for line in lines if line["type"] == "verdict"]
    assert len(windows) == 10 and len(verdicts) == 1 and verdicts[0]["file"] == str(clip)
    assert windows[-1]["audio_end_seconds"] == pytest.approx(30.0, abs=0.1)
    for w in windows:
        jsonschema.validate({k: v for k, v in w.items() if k not in ("type", "file")}, SCHEMA)
    assert "notes.wav: not an audio file ffmpeg can decode" in proc.stderr and "empty.wav: the file is empty" in proc.stderr
    assert "Traceback" not in proc.stderr
    table = run_cli("classify", "--bundle", str(trained_bundle), str(clip))
    assert table.returncode == 0 and "verdict:" in table.stdout and "27.0s" in table.stdout


def test_a_finite_source_waits_for_a_slow_model_and_loses_nothing(trained_bundle: Path, gtzan_sample: Path) -> None:
    """A file or stdin is not real time: when classification falls behind, it waits for room in
    the queue instead of dropping its oldest windows (a live source still drops, to keep up)."""
    from helpers import wait_for

    classifier = open_classifier(trained_bundle)
    release, predict = threading.Event(), classifier.predict

    def slow_predict(features):
        release.wait(60)  # the model is stuck until the queue has filled up
        return predict(features)

    classifier.predict = slow_predict
    audio = load_audio(gtzan_sample / "jazz" / "jazz.00000.wav", 22050)[: 22050 * 30]
    events = []
    pipeline = Pipeline(classifier, [ArraySource("jazz", audio, 22050)], events.append,
                        PipelineSettings(max_pending_windows=2, max_batch=1))
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    wait_for(lambda: len(pipeline._pending) == 2, 60, "the queue to fill up while the model is stuck")
    release.set()
    runner.join(120)
    assert not runner.is_alive()
    assert pipeline.dropped_windows == 0 and [e.audio_start_seconds for e in events] == [3.0 * k for k in range(10)]


class ReconnectingSource(ArraySource):
    """Delivers ``audio``, breaks (``deliver.broken()``, as a reconnecting source does) and then,
    as a new connection (``restarts`` + 1), delivers ``after``."""

    finite = True

    def __init__(self, name: str, audio: np.ndarray, after: np.ndarray, rate: int) -> None:
        super().__init__(name, audio, rate)
        self.after, self.restarts = after, 0

    def run(self, deliver, stop: threading.Event) -> None:
        super().run(deliver, stop)
        deliver.broken()
        self.restarts += 1
        self.audio = self.after
        super().run(deliver, stop)


def test_a_reconnect_starts_the_windows_and_the_context_afresh(gtzan_sample: Path) -> None:
    """7.5 s of jazz, then a reconnect to metal: no window holds both, the jazz before the break
    is classified as a file's end is, and the metal windows are those of the metal alone (their
    context held the old connection's jazz for 30 s, and one window mixed the two)."""
    jazz = load_audio(gtzan_sample / "jazz" / "jazz.00016.wav", 22050)[: int(22050 * 7.5)]
    metal = load_audio(gtzan_sample / "metal" / "metal.00000.wav", 22050)[: 22050 * 15]
    _, events = _run(TABLE_BUNDLE, [ReconnectingSource("radio", jazz, metal, 22050)])  # a 30-s context
    _, alone = _run(TABLE_BUNDLE, [ArraySource("radio", metal, 22050)])
    assert [(e.audio_start_seconds, e.audio_end_seconds) for e in events[:3]] == [(0.0, 3.0), (3.0, 6.0), (6.0, 7.5)]
    after = events[3:]
    assert [e.audio_start_seconds for e in after] == [7.5 + 3.0 * k for k in range(5)]
    assert [e.context_seconds for e in after] == [e.context_seconds for e in alone] and after[0].context_seconds == 3.0
    for a, b in zip(after, alone, strict=True):
        assert a.probabilities == b.probabilities


class StuckSource(ArraySource):
    """Delivers ``audio``, then hangs in a call that ignores ``stop`` (a frozen sound server, a hung decoder)."""

    finite = False

    def __init__(self, name: str, audio: np.ndarray, rate: int) -> None:
        super().__init__(name, audio, rate)
        self.release = threading.Event()

    def run(self, deliver, stop: threading.Event) -> None:
        super().run(deliver, stop)
        self.release.wait()


def test_a_stop_leaves_a_stuck_source_behind_after_the_grace(gtzan_sample: Path, monkeypatch, caplog) -> None:
    """A source stuck in a call held `run` (and with it SIGTERM) for as long as the call took."""
    import logging

    from genrecast.daemon import pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "STOP_GRACE_SECONDS", 0.5)
    jazz = load_audio(gtzan_sample / "jazz" / "jazz.00016.wav", 22050)[: 22050 * 7]  # two windows and the band stage's lookahead
    stuck = StuckSource("radio", jazz, 22050)
    events = []
    pipeline = Pipeline(open_classifier(None), [stuck], events.append, PipelineSettings())
    runner = threading.Thread(target=pipeline.run)
    try:
        with caplog.at_level(logging.WARNING, logger="genrecast.daemon.pipeline"):
            runner.start()
            from helpers import wait_for

            wait_for(lambda: len(events) >= 2, 60, "its two windows (then it hangs)")
            pipeline.stop()
            runner.join(30)
            assert not runner.is_alive(), "run did not return after the grace"
        assert "source radio did not stop within 0.5 s (stuck in its device, server or decoder); leaving it" in caplog.text
        assert [e.audio_start_seconds for e in events] == [0.0, 3.0]
    finally:
        stuck.release.set()
        runner.join(30)


def test_the_audio_before_a_break_is_classified_at_the_break(gtzan_sample: Path) -> None:
    """A stream that drops: the windows of its audio before the break came only when it was back
    (or never, were the daemon stopped meanwhile), stamped with the later time."""
    from helpers import wait_for

    from genrecast.daemon.sources.reconnect import _Reconnecting

    jazz = load_audio(gtzan_sample / "jazz" / "jazz.00016.wav", 22050)[: int(22050 * 7.5)]
    metal = load_audio(gtzan_sample / "metal" / "metal.00000.wav", 22050)[: 22050 * 6]
    back = threading.Event()

    class DroppingStream(_Reconnecting):
        finite = False
        name = "radio"

        def __init__(self) -> None:
            super().__init__(0.01, 0.01)

        def _attempt(self, deliver, stop, first):
            if not first:
                back.wait(60)  # the server is away until the test has seen the windows before the break
            audio = jazz if first else metal
            for i in range(0, len(audio), 4096):
                deliver(audio[i : i + 4096], 22050)
            if first:
                return "the server closed the connection"
            stop.wait(60)
            return "stopped"

    events = []
    pipeline = Pipeline(open_classifier(TABLE_BUNDLE), [DroppingStream()], events.append, PipelineSettings())  # a 30-s context
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    try:
        wait_for(lambda: [e.audio_start_seconds for e in events] == [0.0, 3.0, 6.0], 60, "the jazz's windows, its last too")
        assert events[-1].audio_end_seconds == 7.5
        back.set()
        wait_for(lambda: len(events) >= 4, 60, "the metal's first window")
        assert events[3].audio_start_seconds == 7.5 and events[3].context_seconds == 3.0  # its own context
    finally:
        back.set()
        pipeline.stop()
        runner.join(30)
