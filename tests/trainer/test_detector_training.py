"""Training the music detector: named seeded conditions, the file-group split, and
`genrecast train --detector-data` adding a detector to a bundle from real recordings."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from genrecast.daemon.bundle import default_bundle_path, load_bundle
from genrecast.trainer import conditions as cond
from genrecast.trainer.detector_data import inventory, reserved_ids
from genrecast.trainer.detector import TEST_CONDITIONS


def test_conditions_are_named_seeded_and_keep_the_length(data_dir: Path) -> None:
    from genrecast.daemon.audio import load_audio

    y = load_audio(data_dir / "gtzan-sample" / "jazz" / "jazz.00000.wav", 22050)[: 22050 * 4]
    names = [c.name for c in cond.EVALUATION]
    assert len(set(names)) == len(names) and names[0] == "clean"
    for c in cond.EVALUATION:
        a = c.apply(y, 22050, np.random.default_rng(7))
        b = c.apply(y, 22050, np.random.default_rng(7))
        assert a.shape == y.shape and a.dtype == np.float32 and np.array_equal(a, b), c.name
        if c.name != "clean":
            assert not np.array_equal(a, y), c.name
    loud = cond.BY_NAME["gain+6dB"].apply(y * 4, 22050, np.random.default_rng(0))
    assert np.abs(loud).max() == 1.0  # clipped at full scale
    drawn = {cond.random_condition(np.random.default_rng(seed)).name for seed in range(30)}
    assert len(drawn) > 3 and all(name.endswith("gain") for name in drawn)


def test_feature_cache_keys_are_the_same_in_every_process(data_dir: Path) -> None:
    """A condition's cache key must not hold a memory address (a Condition's repr does), or the
    next build never finds the windows the last one stored."""
    import subprocess
    import sys

    code = ("import sys; from genrecast.trainer.detector_windows import _cache_key, RandomCapture; "
            "from genrecast.trainer.detector import TEST_CONDITIONS; from genrecast.trainer.singing import SUNG; "
            "from genrecast.daemon.music_features import detector_config; "
            "print(*[_cache_key((sys.argv[1], c, 7, detector_config(), 100)) for c in (*TEST_CONDITIONS, SUNG, RandomCapture(('/x',)))])")
    clip = str(data_dir / "gtzan-sample" / "jazz" / "jazz.00000.wav")
    keys = [subprocess.run([sys.executable, "-c", code, clip], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)]
    assert keys[0] == keys[1] and len(set(keys[0].split())) == len(TEST_CONDITIONS) + 2


def test_split_is_by_group_and_never_touches_reserved_ids(data_dir: Path) -> None:
    items = inventory(data_dir)
    splits_of = defaultdict(set)
    for item in items:
        splits_of[item.group].add(item.split)
    assert all(len(s) == 1 for s in splits_of.values()), {g: s for g, s in splits_of.items() if len(s) > 1}
    reserved = reserved_ids(data_dir)
    assert reserved and not any(item.group.removeprefix("gtzan/") in reserved for item in items)
    test = [i for i in items if i.split == "test"]
    assert {i.genre for i in test if i.kind == "gtzan"} == {
        "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"}
    assert {i.kind for i in test} >= {"speech", "environment", "music", "gtzan"}
    assert any("vocadito" in str(i.path) for i in test) and any("maestro" in str(i.path) for i in test)
    for split in ("train", "valid"):
        assert {i.label for i in items if i.split == split} == {"music", "speech", "other"}


def _tiny_data(data_dir: Path, root: Path) -> Path:
    """A folder laid out as ../shared/data with a few real files of every class on every side: two to
    train on, one to choose the gate on, one to test (each is read clean and under many conditions, so
    every file costs seconds of feature extraction; the checks below hold for any number of them)."""
    items = inventory(data_dir)
    picked: dict[tuple[str, str], int] = defaultdict(int)
    wanted = {"train": 2, "valid": 1, "test": 1}
    for item in sorted(items, key=lambda i: (i.path.stat().st_size, str(i.path))):  # small files first
        key = (item.label, item.split)
        if item.path.stat().st_size < 100_000:  # long enough for a few 3-s windows
            continue
        if item.kind == "gtzan" and item.split == "test" and item.genre != "rock":
            continue
        if picked[key] >= wanted[item.split]:
            continue
        picked[key] += 1
        target = root / item.path.relative_to(data_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(item.path)
    for folder in ("music-speech/music", "music-speech/speech", "speech", "environment", "gtzan-sample"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(data_dir / "reserved-ids.txt", root / "reserved-ids.txt")
    return root


@pytest.mark.slow
def test_train_adds_a_detector_to_a_format_1_bundle(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    tiny = _tiny_data(data_dir, tmp_path / "data")
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    doc = json.loads((bundle / "bundle.json").read_text())
    doc["format_version"] = 1
    del doc["detector"]
    (bundle / "bundle.json").write_text(json.dumps(doc))
    for name in ("detector.tflite", "detector.keras"):
        (bundle / name).unlink()
    assert load_bundle(bundle).detector is None
    env_cache = tmp_path / "cache"  # a fresh feature cache: the features are really computed
    proc = run_cli("train", "--detector-data", str(tiny), "--out", str(bundle), "--workers", "2",
                   env={**os.environ, "GENRECAST_CACHE_DIR": str(env_cache)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "music detector" in proc.stdout and "added to" in proc.stdout
    loaded = load_bundle(bundle)
    assert loaded.format_version == 2 and loaded.detector is not None
    assert loaded.model_id == doc["model_id"]  # the genre model is untouched
    gate = loaded.detector.gate
    assert 0 <= gate.leave <= gate.enter <= 1
    metrics = loaded.detector.metrics
    assert set(metrics["test"]) == {c.name for c in TEST_CONDITIONS}
    assert "## Music detector" in (bundle / "report.md").read_text()
    assert list(env_cache.glob("detector/*.npz"))
    # the bundle runs: classify gives every heard window a music probability
    speech = next(p for p in tiny.rglob("*.flac") if "music-speech/speech" in str(p))
    out = run_cli("classify", str(speech), "--bundle", str(bundle), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    windows = [json.loads(line) for line in out.stdout.splitlines()][:-1]
    assert windows and all(w["music_probability"] is not None for w in windows if w["state"] != "silence")


def test_train_detector_bad_inputs_are_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli("train", "--detector-data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"genrecast: error: --detector-data {tmp_path / 'nowhere'}: no such folder"], proc.stderr
    (tmp_path / "data").mkdir()
    shutil.copytree(default_bundle_path(), tmp_path / "bundle")
    proc = run_cli("train", "--detector-data", str(tmp_path / "data"), "--out", str(tmp_path / "bundle"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "lacks music-speech/" in proc.stderr and "../shared/data" in proc.stderr


def _files(condition: str, label: str, kind: str, p_music: list[float], n: int = 4) -> list:
    from genrecast.trainer.detector_eval import FileWindows

    out = []
    for k in range(n):
        probs = np.array([[p, (1 - p) * (label == "speech"), (1 - p) * (label != "speech")] for p in p_music], np.float32)
        out.append(FileWindows(f"{kind}{k}", label, kind, condition, probs, np.zeros(len(p_music), bool)))
    return out


def test_the_gate_is_chosen_so_that_every_condition_meets_the_speech_target() -> None:
    """Clean and codec speech is easy (P(music) 0.05); in the room one of its two talkers reads 0.6,
    and its music only 0.55. Pooled over the conditions the talker is under 5 % of the speech
    windows, inside a 95 % target, so the rule that maximised the music kept on the pooled shares let
    him through to keep the room's music (the gate below shows such a pair); the rule must keep every
    condition's talk out, at the room music's expense."""
    from genrecast.daemon.detector import GateSettings
    from genrecast.trainer.detector_eval import choose_gate, target_figures

    valid = []
    for condition, music_p in (("clean", 0.9), ("mp3-48k", 0.9), ("room", 0.55)):
        valid += _files(condition, "other", "environment", [0.02] * 6)
        valid += _files(condition, "music", "gtzan", [music_p] * 6)
        valid += _files(condition, "speech", "speech", [0.05] * 6, n=10 if condition != "room" else 1)
    valid += _files("room", "speech", "speech", [0.6, 0.6, 0.6, 0.6, 0.6, 0.6], n=1)

    def speech(gate: GateSettings, condition: str | None = None) -> float:
        files = [f for f in valid if condition in (None, f.condition)]
        return target_figures(files, gate)["speech"]["share"]

    loose = GateSettings(enter=0.5, leave=0.3)
    assert speech(loose) >= 0.95 and speech(loose, "room") < 0.95  # pooled passes, the room does not
    gate, choice = choose_gate(valid)
    assert all(speech(gate, c) >= 0.95 for c in ("clean", "mp3-48k", "room"))
    shares = choice["validation_accuracy"]
    assert set(shares) == {"clean", "mp3-48k", "room"}
    assert shares["clean"]["music"] == shares["mp3-48k"]["music"] == 1.0
    assert all(s["environment"] == 1.0 for s in shares.values())
    assert "every condition" in choice["rule"]


def test_the_gate_never_takes_more_than_two_windows_to_follow() -> None:
    """Music that reads P(music) 0.34 throughout is kept only by a gate that leaves below 0.30 or
    less, and such a gate needs 3 windows (9 s) of talk to turn: the rule takes a 6-s gate instead,
    at that music's expense (README: Delay)."""
    from genrecast.daemon.detector import GateSettings
    from genrecast.trainer.detector_eval import MAX_DELAY_WINDOWS, choose_gate, target_figures

    valid = []
    for condition in ("clean", "room"):
        valid += _files(condition, "other", "environment", [0.02] * 6)
        valid += _files(condition, "music", "gtzan", [0.9] * 6, n=3)
        valid += _files(condition, "music", "gtzan", [0.34] * 6, n=1)
        valid += _files(condition, "speech", "speech", [0.05] * 6, n=4)
    slow = GateSettings(enter=0.35, leave=0.3)
    assert slow.delay_windows() == 3 and target_figures(valid, slow)["music"]["share"] == 1.0
    gate, choice = choose_gate(valid)
    assert gate.delay_windows() <= MAX_DELAY_WINDOWS == 2
    assert target_figures(valid, gate)["music"]["share"] < 1.0
    assert "delay of at most 2 windows" in choice["rule"]


def test_prepare_keeps_held_out_recordings_out_of_noise_and_beds(data_dir: Path, monkeypatch) -> None:
    """The wiring of the detector's data (features stubbed, the plan checked): every random copy's
    babble and environment sounds leave out the validation and test speech and environment files,
    and a speech file's music bed comes from music of its own split only."""
    from genrecast.trainer import detector as D
    from genrecast.trainer.detector_eval import FileWindows
    from genrecast.trainer.detector_windows import RandomCapture

    monkeypatch.setenv("GENRECAST_TEST_DATA", str(data_dir))
    calls = []

    def planned(items, conditions, cfg, seed, min_samples, jobs, what):
        out = []
        for item in items:
            for c in (conditions(item) if callable(conditions) else conditions):
                calls.append((item, c))
                out.append(FileWindows(item.path.name, item.label, item.kind, c.name, np.zeros((1, 3), np.float32),
                                       np.zeros(1, bool), features=np.zeros((1, len(cfg.columns)), np.float32),
                                       levels=np.array([-20.0], np.float32)))
        return out

    monkeypatch.setattr(D, "extract_all", planned)
    D.prepare(data_dir, jobs=1)
    items = inventory(data_dir)
    held_out = {str(i.path.resolve()) for i in items if i.split != "train" and i.label in ("speech", "other")}
    split_of = {str(i.path): i.split for i in items if i.label == "music"}
    randoms = [c for _, c in calls if isinstance(c, RandomCapture)]
    assert randoms and all(set(c.exclude) == held_out for c in randoms)
    beds = [(item, c) for item, c in calls if c.name.startswith("music-bed")]
    assert {item.split for item, _ in beds} == {"train", "valid"} and all(item.label == "speech" for item, _ in beds)
    for item, c in beds:
        assert c.kwargs["beds"] and {split_of[b] for b in c.kwargs["beds"]} == {item.split}
        if c.kwargs.get("capture"):
            assert set(c.kwargs["exclude"]) == held_out


def test_cache_key_follows_a_condition_argument() -> None:
    from genrecast.trainer.detector_windows import describe
    from genrecast.trainer.music_bed import bed_conditions

    plain, captured = bed_conditions(("a.wav",), ("x.flac",))
    assert describe(plain) != describe(bed_conditions(("b.wav",))[0])
    assert describe(captured) != describe(bed_conditions(("a.wav",), ("y.flac",))[1])
    assert describe(cond.BY_NAME["gain-24dB"]) != describe(cond.BY_NAME["gain+6dB"])


def test_the_report_names_every_target_missed() -> None:
    """Speech >= 95 % and environment >= 90 % under every condition, music >= 97 % clean, and every
    kind within 3 points of its clean figure under the conditions (the stricter reading of the
    issue's last row): room speech 4 points under a clean 100 % is a miss though above 95 %."""
    from genrecast.trainer.detector_eval import misses

    def fig(speech: float, environment: float, music: float) -> dict:
        return {"speech": {"share": speech}, "environment": {"share": environment},
                "music": {"share": music, "of_heard": music}}

    assert misses({"clean": fig(1.0, 1.0, 0.975), "mp3-48k": fig(0.98, 0.98, 0.96)}) == []
    assert misses({"clean": fig(1.0, 1.0, 0.975), "room": fig(0.96, 1.0, 0.99)}) == [
        "speech under room 4.0 points below clean (limit 3)"]
    missed = misses({"clean": fig(0.96, 1.0, 0.975), "mp3-48k": fig(0.94, 0.85, 0.935)})
    assert [m.split(" (")[0] for m in missed] == [
        "speech mp3-48k 94.0 % < 95 %", "environment mp3-48k 85.0 % < 90 %", "environment under mp3-48k 15.0 points below clean",
        "music under mp3-48k 4.0 points below clean", "music above the silence gate under mp3-48k 4.0 points below clean"]
    assert misses({"clean": fig(1.0, 0.85, 0.96)}) == [
        "environment clean 85.0 % < 90 % (by 5.0 points)", "music clean 96.0 % < 97 % (by 1.0 points)"]
