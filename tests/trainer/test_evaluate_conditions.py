"""`genrecast evaluate BUNDLE DATA --conditions`: the shipped bundle on two real clips under three
conditions; its clean verdicts are `genrecast classify`'s, its files and plot are written."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from helpers import TABLE_BUNDLE, run_cli
from genrecast.daemon.bundle import default_bundle_path
from genrecast.trainer.robustness import PLOT_PIXELS

CLIPS = ("jazz/jazz.00000.wav", "rock/rock.00000.wav")


@pytest.fixture(scope="module")
def two_clips(gtzan_sample: Path, tmp_path_factory) -> Path:
    """A genre-folder dataset of two real full clips (symlinks), both left out of the shipped model's training."""
    root = tmp_path_factory.mktemp("two-clips")
    for clip in CLIPS:
        (root / clip).parent.mkdir()
        (root / clip).symlink_to(gtzan_sample / clip)
    return root


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_evaluate_under_conditions(two_clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "cond"
    proc = run_cli("evaluate", str(default_bundle_path()), str(two_clips), "--conditions", "gain-24dB,stereo,wideband-16k",
                   "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "clips × conditions: 8/8" in proc.stderr  # progress
    assert "band-limited" not in proc.stderr  # 16 kHz on purpose: no warning per clip about a temporary file
    results = json.loads((out / "conditions.json").read_text())
    assert results["clips"] == ["jazz.00000", "rock.00000"]
    rows = {r["name"]: r for r in results["conditions"]}
    assert list(rows) == ["clean", "gain-24dB", "stereo", "wideband-16k"]
    for name, r in rows.items():
        assert r["tracks"] == 2 and r["windows"] == 20 and 0 <= r["right"] <= 2, r
        assert f"| {name} | {r['right']} | {r['track_accuracy']:.3f} | {r['window_accuracy']:.3f} (20) | " \
               f"{r['differs_from_clean']} |" in proc.stdout
        assert r["differs_from_clean"] == sum(results["verdicts"][name][c] != results["verdicts"]["clean"][c]
                                              for c in results["clips"])
    assert rows["clean"]["differs_from_clean"] == 0
    assert "| stereo |" in (out / "conditions.md").read_text()
    assert png_size(out / "conditions.png") == PLOT_PIXELS
    # the clean verdicts are what `genrecast classify` says of the same files
    classify = run_cli("classify", *(str(two_clips / c) for c in CLIPS), "--json", timeout=300)
    assert classify.returncode == 0, classify.stderr[-2000:]
    said = {Path(v["file"]).name.rsplit(".", 1)[0]: v["genre"]
            for v in map(json.loads, classify.stdout.splitlines()) if v["type"] == "verdict"}
    assert said == results["verdicts"]["clean"]


def test_unknown_condition_is_one_line(two_clips: Path, tmp_path: Path) -> None:
    proc = run_cli("evaluate", str(default_bundle_path()), str(two_clips), "--conditions", "clean,loud",
                   "--out", str(tmp_path / "o"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unknown condition(s) loud" in proc.stderr and not (tmp_path / "o").exists()
    (tmp_path / "f").write_text("")
    for args, says in [(["--conditions", ",,"], "--conditions ',,' names no condition"),
                       (["--conditions", "clean", "--out", str(tmp_path / "f")], f"--out {tmp_path / 'f'} is a file"),
                       (["--out", str(default_bundle_path())], "holds a bundle: its own report.md and metrics.json"),
                       # --split-lists was silently ignored with --conditions, and --split beside it
                       (["--conditions", "clean", "--split-lists", str(tmp_path)], "--split-lists does not go with --conditions"),
                       (["--split", "all", "--split-lists", str(tmp_path)],
                        "--split-lists DIR chooses the test tracks in place of --split all; give one of them")]:
        proc = run_cli("evaluate", str(default_bundle_path()), str(two_clips), *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr


def test_a_folder_of_one_genre_can_be_measured(gtzan_sample: Path, tmp_path: Path) -> None:
    """Training needs two genres; measuring a trained bundle on jazz alone is fine."""
    (tmp_path / "jazz").mkdir()
    (tmp_path / "jazz" / "jazz.00000.wav").symlink_to(gtzan_sample / CLIPS[0])
    proc = run_cli("evaluate", str(default_bundle_path()), str(tmp_path), "--conditions", "clean", "--json",
                   "--out", str(tmp_path / "o"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["clips"] == ["jazz.00000"]


def test_train_refuses_unknown_conditions_before_training(data_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("train", "--table", str(data_dir / "reference" / "features_30_sec.csv"), "--out", str(tmp_path / "b"),
                   "--conditions", "quick,loud")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--conditions: unknown condition(s) loud" in proc.stderr and not (tmp_path / "b").exists()


def test_held_out_clips_leave_out_the_audio_that_gave_shifts(gtzan_sample: Path) -> None:
    """Of gtzan-sample's 19 clips the shipped table bundle left out every table row, but 6 clips' audio
    gave its feature shifts: it is evaluated on the other 13 (the robustness issue's clips); so is the
    default bundle, which trained on those 6 clips' audio and records the 13 as its test tracks."""
    from genrecast.daemon.bundle import load_bundle
    from genrecast.trainer.robustness import held_out_clips
    from genrecast.trainer.shifts import EVALUATION_CLIPS

    default = load_bundle(default_bundle_path())
    clips, what = held_out_clips(default, gtzan_sample)
    assert sorted(c.track_id for c in clips) == sorted(EVALUATION_CLIPS) and "test tracks" in what
    every, what = held_out_clips(default, gtzan_sample, "all")
    assert len(every) == 19 and "(6 of the 19 trained on" in what
    bundle = load_bundle(TABLE_BUNDLE)
    shifted = set(bundle.provenance["augmentation"]["clip_ids"])
    clips, what = held_out_clips(bundle, gtzan_sample)
    assert sorted(c.track_id for c in clips) == sorted(EVALUATION_CLIPS)
    assert len(shifted & {p.stem for p in gtzan_sample.rglob("*.*")}) == 6
    assert "whose table rows and audio the bundle never trained on" in what
    every, what = held_out_clips(bundle, gtzan_sample, "all")
    assert len(every) == 19 and "(6 of the 19 trained on or gave feature shifts: their figures flatter the bundle)" in what


def test_held_out_clips_count_as_trained_only_what_an_audio_bundle_trained_on(gtzan_sample: Path, tmp_path: Path) -> None:
    """`--split all` on clips an audio bundle never saw said '9 of the 9 trained on': it counted
    every clip that was no recorded test track. It counts the recorded trained tracks now."""
    from types import SimpleNamespace

    from genrecast.trainer.robustness import held_out_clips

    for clip in ("jazz/jazz.00000.wav", "jazz/jazz.00016.wav", "rock/rock.00000.wav"):
        (tmp_path / clip).parent.mkdir(exist_ok=True)
        (tmp_path / clip).symlink_to(gtzan_sample / clip)
    labels = ("jazz", "rock")

    def bundle(**prov):
        return SimpleNamespace(labels=labels, provenance=prov, features=SimpleNamespace(kind="mfcc"))

    _, what = held_out_clips(bundle(split="track", test_tracks=["x.00001"], trained_tracks=["x.00002"]), tmp_path, "all")
    assert what == f"every clip of {tmp_path}"  # none of them trained on: no warning
    _, what = held_out_clips(bundle(split="track", test_tracks=["jazz.00000"], trained_tracks=["rock.00000"]), tmp_path, "all")
    assert "(1 of the 3 trained on" in what
    clips, _ = held_out_clips(bundle(split="track", test_tracks=["jazz.00000"], trained_tracks=["rock.00000"]), tmp_path)
    assert [c.track_id for c in clips] == ["jazz.00000"]
    _, what = held_out_clips(bundle(split="segment", test_tracks=["jazz.00000"]), tmp_path, "all")
    assert "(3 of the 3 trained on" in what  # a segment split trains on windows of every track


def test_clips_that_cannot_be_measured_are_skipped_and_listed(gtzan_sample: Path, tmp_path: Path) -> None:
    """A corrupt file aborted `evaluate --conditions` (so a GTZAN copy with its known-corrupt
    jazz.00054 could never run) and a 1-s file counted as a wrong verdict; both are skipped and
    listed now, as the trainer does, and the rest is measured."""
    import subprocess

    data = tmp_path / "data"
    (data / "jazz").mkdir(parents=True)
    (data / "jazz" / "jazz.00000.wav").symlink_to(gtzan_sample / CLIPS[0])
    (data / "jazz" / "jazz.00097.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    subprocess.run(["ffmpeg", "-v", "error", "-t", "1", "-i", str(gtzan_sample / CLIPS[0]), str(data / "jazz" / "jazz.00098.wav")],
                   check=True)
    proc = run_cli("evaluate", str(default_bundle_path()), str(data), "--conditions", "clean", "--split", "all", "--json",
                   "--out", str(tmp_path / "o"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    assert results["clips"] == ["jazz.00000"] and sorted(results["skipped"]) == ["jazz.00097", "jazz.00098"]
    assert "shorter than one window" in results["skipped"]["jazz.00098"]
    assert "2 skipped: jazz.00097, jazz.00098" in results["description"]
    assert "skipped" in proc.stderr and "Traceback" not in proc.stderr


def test_file_names_that_are_not_utf8_are_clips_like_any_other(gtzan_sample: Path, tmp_path: Path, monkeypatch) -> None:
    """A copy from an old disk names files in Latin-1 (caf\\xe9.wav): the dataset's fingerprint, the
    seed of a clip's condition and ffprobe's error about such a file raised UnicodeError, so train,
    evaluate and classify (the whole batch) ended with "'utf-8' codec can't ..." and no file named."""
    import os

    from genrecast.daemon.features import FeatureConfig
    from genrecast.trainer.dataset import scan_dataset
    from genrecast.trainer.extract import extract_dataset

    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "old-disk"
    for genre in ("jazz", "rock"):
        (root / genre).mkdir(parents=True)
    os.symlink(gtzan_sample / "jazz" / "jazz.00000.wav", os.path.join(os.fsencode(root / "jazz"), b"caf\xe9.wav"))
    os.symlink(gtzan_sample / "rock" / "rock.00000.wav", os.path.join(os.fsencode(root / "rock"), b"m\xf6tley.wav"))
    broken = os.path.join(os.fsencode(root / "rock"), b"br\xf6ken.wav")
    with open(broken, "wb") as f:
        f.write(b"RIFF\x24\x00\x00\x00WAVEfmt not audio")
    dataset = scan_dataset(root)
    assert dataset.fingerprint()  # the feature cache's key
    genres = tmp_path / "genres"  # a genre folder named so: refused, not a traceback of the plot after training
    (genres / "pop").mkdir(parents=True)
    (genres / "pop" / "pop.00000.wav").symlink_to(gtzan_sample / "pop" / "pop.00000.wav")
    musica = os.path.join(os.fsencode(genres), b"m\xfasica")
    os.mkdir(musica)
    os.symlink(gtzan_sample / "jazz" / "jazz.00016.wav", os.path.join(musica, b"jazz.00016.wav"))
    with pytest.raises(ValueError) as caught:
        scan_dataset(genres)
    assert str(caught.value) == (f"genre folder {os.fsdecode(musica)}: its name is not UTF-8 text, and a genre is named "
                                 "after its folder; rename the folder (convmv -f latin1 -t utf8 renames a whole disk's names)")
    features = extract_dataset(dataset, FeatureConfig(), workers=2, progress=False)
    assert sorted(set(features.track_ids.tolist())) == ["caf\udce9", "m\udcf6tley"]
    assert [Path(p).name for p, _ in features.skipped] == ["br\udcf6ken.wav"]

    import subprocess

    from helpers import EXE

    def run(*args: str) -> tuple[int, str, str]:  # bytes: a line for people names the file as the disk does, as ls would
        proc = subprocess.run([EXE, *args], capture_output=True, timeout=600)
        return proc.returncode, proc.stdout.decode("utf-8", "surrogateescape"), proc.stderr.decode("utf-8", "surrogateescape")

    out = tmp_path / "cond"
    code, stdout, stderr = run("evaluate", str(default_bundle_path()), str(root), "--conditions", "clean,gain-24dB",
                               "--split", "all", "--out", str(out))
    assert code == 0 and "Traceback" not in stderr, stderr[-3000:]
    assert json.loads((out / "conditions.json").read_text())["clips"] == ["caf\udce9", "m\udcf6tley"]
    assert "(2 clips; 1 skipped: br\udcf6ken; seed 0)" in stdout
    assert "1 skipped: br\\udcf6ken" in (out / "conditions.md").read_text(encoding="utf-8")  # UTF-8, the name escaped

    code, stdout, stderr = run("classify", "--json", str(root))
    assert code == 1, stderr[-2000:]  # one file could not be read; the others are classified
    assert "Traceback" not in stderr and f"genrecast: error: {root / 'rock'}/br\\udcf6ken.wav: not an audio file" in stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert sorted(r["file"] for r in rows if r["type"] == "verdict") == sorted(
        os.fsdecode(os.path.join(os.fsencode(root / g), n)) for g, n in (("jazz", b"caf\xe9.wav"), ("rock", b"m\xf6tley.wav")))
    errors = [r for r in rows if r["type"] == "error"]
    assert len(errors) == 1 and errors[0]["file"] == os.fsdecode(broken)
    assert errors[0]["error"].endswith("not an audio file ffmpeg can decode (Invalid data found when processing input)")
