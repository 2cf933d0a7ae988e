"""End to end: `genrecast train` makes a valid bundle with metrics, report and plots;
`genrecast evaluate` reproduces its numbers; Keras and LiteRT agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conditions_checks import assert_conditions_table
from helpers import run_cli, sample_clips
from genrecast.daemon.audio import load_audio
from genrecast.daemon.bundle import BundleError, load_bundle
from genrecast.daemon.classifier import KerasClassifier, LiteRTClassifier
from genrecast.trainer.extract import split_windows
from genrecast.daemon.features import window_features

pytestmark = pytest.mark.slow


def test_bundle_has_everything(trained_bundle: Path) -> None:
    for name in ("model.keras", "model.tflite", "bundle.json", "metrics.json", "report.md", "confusion.png", "curves.png"):
        assert (trained_bundle / name).is_file(), name
    bundle = load_bundle(trained_bundle)
    assert bundle.labels == ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
    prov = bundle.provenance
    assert prov["split"] == "track" and prov["arch"] == "cnn" and prov["seed"] == 0
    assert len(prov["dataset_fingerprint"]) == 16 and "keras" in prov["libraries"]
    metrics = json.loads((trained_bundle / "metrics.json").read_text())
    assert {"window_accuracy", "track_accuracy", "per_genre_track", "confusion_track", "split"} <= set(metrics)
    train_tracks, test_tracks = prov["split_sizes"]["train_tracks"], prov["split_sizes"]["test_tracks"]
    assert test_tracks == len(prov["test_tracks"]) and train_tracks > test_tracks
    report = (trained_bundle / "report.md").read_text()
    assert "per-track accuracy" in report and "per-window accuracy" in report
    assert (trained_bundle / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_bundle_reports_accuracy_under_conditions(trained_bundle: Path, gtzan_sample: Path) -> None:
    from genrecast.trainer.splits import reserved_ids_near

    prov = load_bundle(trained_bundle).provenance
    held_out = sorted(set(prov["test_tracks"]) - reserved_ids_near(gtzan_sample))
    assert_conditions_table(trained_bundle, held_out)


def test_evaluate_reproduces_the_training_numbers(trained_bundle: Path, gtzan_sample: Path) -> None:
    proc = run_cli("evaluate", str(trained_bundle), str(gtzan_sample), "--json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    recorded = json.loads((trained_bundle / "metrics.json").read_text())
    assert again["track_accuracy"] == recorded["track_accuracy"]
    assert again["window_accuracy"] == recorded["window_accuracy"]
    assert again["confusion_track"] == recorded["confusion_track"]
    # The recorded split's train size is the bundle's own (not every dataset track outside its test set).
    recorded_sizes = load_bundle(trained_bundle).provenance["split_sizes"]
    assert again["split"]["sizes"]["train_tracks"] == recorded_sizes["train_tracks"]
    assert again["split"]["sizes"]["valid_tracks"] == recorded_sizes["valid_tracks"]
    assert again["split"]["sizes"]["test_tracks"] == recorded_sizes["test_tracks"]
    assert "warning" not in again["split"] and "inflated" not in proc.stderr  # its own test tracks: never trained on


def test_evaluate_warns_when_it_tests_tracks_the_bundle_trained_on(trained_bundle: Path, gtzan_sample: Path) -> None:
    prov = load_bundle(trained_bundle).provenance
    trained = set(prov["trained_tracks"])
    assert trained and not trained & set(prov["test_tracks"])
    runs = {}
    for args in (["--split", "all"], ["--split", "track", "--seed", "1"]):
        proc = runs[args[1]] = run_cli("evaluate", str(trained_bundle), str(gtzan_sample), "--json", *args)
        assert proc.returncode == 0, proc.stderr
        said = json.loads(proc.stdout)["split"]["warning"]
        assert "were in the bundle's training or validation set, so these figures are inflated" in said
        assert f"genrecast: warning: {said}" in proc.stderr
    everything = runs["all"]  # --split all: every trained track is counted
    assert f"{len(trained)} of the " in json.loads(everything.stdout)["split"]["warning"]


def test_evaluate_on_a_dataset_without_its_test_tracks_says_what_to_do(trained_bundle: Path, data_dir: Path) -> None:
    """It said only 'the chosen split has no test windows in this dataset'."""
    proc = run_cli("evaluate", str(trained_bundle), str(data_dir / "gtzan-more"))
    error = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and len(error) == 1, proc.stderr[-2000:]
    assert "recorded test tracks is in" in error[0] and "--split all" in error[0] and "Traceback" not in proc.stderr


def test_evaluate_says_when_some_recorded_test_tracks_are_missing(trained_bundle: Path, gtzan_sample: Path,
                                                                  tmp_path: Path) -> None:
    """A dataset with some of the bundle's test tracks gave figures on those alone, without a word."""
    tests = sorted(load_bundle(trained_bundle).provenance["test_tracks"])
    kept = tests[0]
    folder = tmp_path / "some"
    clip = next(gtzan_sample.glob(f"*/{kept}.*"))
    (folder / clip.parent.name).mkdir(parents=True)
    (folder / clip.parent.name / clip.name).symlink_to(clip)
    proc = run_cli("evaluate", str(trained_bundle), str(folder), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warning = json.loads(proc.stdout)["split"]["warning"]
    assert warning.startswith(f"{len(tests) - 1} of the bundle's {len(tests)} recorded test tracks ({tests[1]}")
    assert f"are not in {folder} (or could not be read), so these figures cover only the other tracks" in warning
    assert f"genrecast: warning: {warning}" in proc.stderr


def said(proc) -> list[str]:
    """The CLI's own lines on stderr (not the log's)."""
    return [line for line in proc.stderr.splitlines() if line.startswith("genrecast:")]


def test_evaluate_on_some_of_the_bundles_genres(trained_bundle: Path, gtzan_sample: Path, tmp_path: Path) -> None:
    """A folder of jazz alone, or jazz and rock, is measured (it was refused: 'only one genre', 'differ from the
    bundle's labels'), with the bundle's labels in its order; a genre the bundle does not know is one line; a
    --split that is no split is refused before any feature is extracted."""
    labels = list(load_bundle(trained_bundle).labels)
    for genres in (["jazz"], ["jazz", "rock"]):
        folder = tmp_path / "-".join(genres)
        for genre in genres:
            (folder / genre).mkdir(parents=True)
            for clip in sorted((gtzan_sample / genre).glob("*.wav")):
                (folder / genre / clip.name).symlink_to(clip)
        proc = run_cli("evaluate", str(trained_bundle), str(folder), "--json", "--split", "all")
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics = json.loads(proc.stdout)
        support = {g: v["support"] for g, v in metrics["per_genre_track"].items()}
        assert list(support) == labels and {g for g, n in support.items() if n} == set(genres)
        assert metrics["tracks"] == sum(len(list((gtzan_sample / g).glob("*.wav"))) for g in genres)
    (tmp_path / "jazz" / "techno").mkdir()
    (tmp_path / "jazz" / "techno" / "x.wav").symlink_to(sorted((gtzan_sample / "rock").glob("*.wav"))[0])
    proc = run_cli("evaluate", str(trained_bundle), str(tmp_path / "jazz"), "--split", "all")
    assert proc.returncode == 2 and said(proc) == [
        f"genrecast: error: dataset {tmp_path / 'jazz'} has genre folders the bundle does not know (techno); its genres "
        f"are {', '.join(labels)}: evaluate on folders named after them"], proc.stderr
    proc = run_cli("evaluate", str(trained_bundle), str(gtzan_sample), "--split", "tracks")
    assert proc.returncode == 2 and said(proc) == [
        "genrecast: error: --split 'tracks' is not a split; choose recorded, track, segment or all, or --split-lists DIR"]
    proc = run_cli("evaluate", str(trained_bundle), str(gtzan_sample), "--split", "track", "--conditions", "clean")
    assert proc.returncode == 2 and said(proc) == [
        "genrecast: error: --split 'track' is not a split for --conditions; choose recorded or all"]


def test_keras_and_litert_agree_on_real_clips(trained_bundle: Path, gtzan_sample: Path) -> None:
    bundle = load_bundle(trained_bundle, require="keras")
    cfg = bundle.features
    x = np.stack([window_features(w, cfg) for clip in sample_clips(gtzan_sample)[::3]
                  for w in split_windows(load_audio(clip, cfg.sample_rate), cfg)[:3]])
    lite = LiteRTClassifier(bundle).predict(x)
    keras_probs = KerasClassifier(bundle).predict(x)
    assert lite.shape == (len(x), 10)
    assert np.max(np.abs(lite - keras_probs)) <= 1e-4
    assert np.allclose(lite.sum(axis=1), 1.0, atol=1e-4)


def test_segment_split_warns(tmp_path: Path, gtzan_sample: Path) -> None:
    proc = run_cli("train", str(gtzan_sample), "--out", str(tmp_path / "seg"), "--split", "segment", "--epochs", "1", "--arch", "mlp")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WARNING: segment split" in proc.stderr
    report = (tmp_path / "seg" / "report.md").read_text()
    assert "inflated" in report
    # no robustness table measured on clips it trained on (it showed 20 of 25 'right' on its training audio)
    assert "Not measured: a segment split holds out windows, not tracks" in report
    assert json.loads((tmp_path / "seg" / "metrics.json").read_text())["conditions"] is None


def _broken_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_bundle_validation_names_the_problem(trained_bundle: Path, tmp_path: Path) -> None:
    b = _broken_copy(trained_bundle, tmp_path / "missing")
    (b / "model.tflite").unlink()
    with pytest.raises(BundleError, match="missing model.tflite"):
        load_bundle(b)

    b = _broken_copy(trained_bundle, tmp_path / "labels")
    doc = json.loads((b / "bundle.json").read_text())
    doc["labels"] = doc["labels"][:-1]
    (b / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="10 outputs but bundle.json lists 9 labels"):
        load_bundle(b)

    b = _broken_copy(trained_bundle, tmp_path / "version")
    doc = json.loads((b / "bundle.json").read_text())
    doc["format_version"] = 99
    (b / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="unknown format_version 99"):
        load_bundle(b)

    b = _broken_copy(trained_bundle, tmp_path / "features")
    doc = json.loads((b / "bundle.json").read_text())
    doc["feature_config"]["n_mfcc"] = 20
    doc["normalisation"] = {"mean": [0.0] * 20, "std": [1.0] * 20}
    (b / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"expects input \(130, 13\) but the feature config gives \(130, 20\)"):
        load_bundle(b)


def test_cli_errors_are_one_line(tmp_path: Path, trained_bundle: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_cli("train", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("genrecast: error: dataset") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    b = _broken_copy(trained_bundle, tmp_path / "bad")
    (b / "bundle.json").write_text("{not json")
    proc = run_cli("classify", "--bundle", str(b), str(tmp_path / "x.wav"))
    assert proc.returncode == 2 and "is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_a_genre_left_without_audio_stops_training(tmp_path: Path, gtzan_sample: Path) -> None:
    """Two genre folders, but jazz holds only a text file: training on blues alone must not pass as a model of two."""
    (tmp_path / "d" / "blues").mkdir(parents=True)
    (tmp_path / "d" / "jazz").mkdir()
    for clip in sorted((gtzan_sample / "blues").glob("blues.0000*.wav"))[:3]:
        (tmp_path / "d" / "blues" / clip.name).symlink_to(clip)
    (tmp_path / "d" / "jazz" / "j.wav").write_text("not audio\n")
    proc = run_cli("train", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--epochs", "1", "--conditions", "none")
    assert proc.returncode == 2 and not (tmp_path / "o" / "bundle.json").exists()
    assert proc.stderr.strip().splitlines()[-1].startswith("genrecast: error: genre folder(s) jazz kept no usable audio")


def test_an_unmeasured_bundle_keeps_no_earlier_conditions_plot(tmp_path: Path, trained_bundle: Path) -> None:
    """Retrained into the same folder with --conditions none, the old conditions.png would pass for the new model's."""
    from genrecast.trainer.robustness import PLOT_FILE, attach_to_bundle

    b = _broken_copy(trained_bundle, tmp_path / "again")
    assert (b / PLOT_FILE).is_file()
    attach_to_bundle(b, [], [], "no conditions were asked for (--conditions none)")
    assert not (b / PLOT_FILE).exists()
    assert json.loads((b / "metrics.json").read_text())["conditions"] is None


def test_evaluate_names_the_files_it_could_not_read_from_the_cache_too(trained_bundle: Path, gtzan_sample: Path,
                                                                        tmp_path: Path, monkeypatch) -> None:
    """Kaggle's jazz.00054.wav does not decode: evaluate logged it while extracting, but a second run,
    from the feature cache, measured the others without a word, and report.md did not count it."""
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "ds"
    for clip in sorted(gtzan_sample.glob("*/*.wav")):
        (folder / clip.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / clip.parent.name / clip.name).symlink_to(clip)
    broken = folder / "jazz" / "jazz.00055.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt not audio at all")
    for run in ("fresh", "cached"):
        out = tmp_path / f"eval-{run}"
        proc = run_cli("evaluate", str(trained_bundle), str(folder), "--split", "all", "--json", "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        skipped = json.loads(proc.stdout)["skipped"]
        assert len(skipped) == 1 and skipped[0].startswith(f"{broken}: not an audio file ffmpeg can decode"), skipped
        lines = proc.stderr.splitlines()
        assert lines[lines.index("skipped 1 file(s):") + 1] == f"  {skipped[0]}"
        assert "- skipped_files: 1" in (out / "report.md").read_text()
    assert "features from cache" in proc.stderr  # the second run was the cached one
