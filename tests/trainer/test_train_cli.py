"""`genrecast train` as a user meets it: without the trainer's extras one line and exit 1; with
--table, progress lines while it works and one summary line at the end; evaluate's errors name
the positional BUNDLE, not a flag."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TABLE_BUNDLE, REPO, fill_disk, run_cli, small_tmpfs

#: Run the CLI with tensorflow, keras and matplotlib unimportable, as after the daemon-only `pip install .`.
WITHOUT_TRAINER = (
    "import sys\n"
    "for name in ('tensorflow', 'keras', 'matplotlib', 'librosa', 'numba', 'sklearn'):\n"
    "    sys.modules[name] = None\n"
    "from genrecast.daemon.cli import main\n"
    "sys.argv = ['genrecast', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.parametrize("how", ["table", "audio"])
def test_train_without_the_trainer_extras_is_one_line(how: str, tmp_path: Path, data_dir: Path) -> None:
    source = ["--table", str(data_dir / "reference" / "features_30_sec.csv")] if how == "table" else [str(data_dir / "gtzan-sample")]
    proc = subprocess.run([sys.executable, "-c", WITHOUT_TRAINER, "train", *source, "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "genrecast: error: `genrecast train` needs tensorflow, keras, matplotlib, librosa: pip install 'genrecast[train]' "
        "(the daemon-only install has no tensorflow)"]
    assert not (tmp_path / "b").exists()


def test_the_daemon_runs_without_the_trainer_extras(data_dir: Path) -> None:
    """`pip install .` pulled in librosa (and numba, llvmlite, scikit-learn: 270 MB) that only the
    trainer uses; the daemon-only install has none of them now, and classify and run need none."""
    clip = str(data_dir / "gtzan-sample" / "metal" / "metal.00000.wav")
    for args in (["classify", "--json", clip], ["run", "--json", "--source", f"file:{clip}"]):
        proc = subprocess.run([sys.executable, "-c", WITHOUT_TRAINER, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        genres = [json.loads(line).get("genre") for line in proc.stdout.splitlines()]
        assert genres.count("metal") >= 9, genres


def test_evaluate_without_the_trainer_extras_stops_before_any_work(tmp_path: Path, data_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", WITHOUT_TRAINER, "evaluate", "daemon/default_bundle",
                           str(data_dir / "gtzan-sample"), "--conditions", "quick", "--out", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "genrecast: error: `genrecast evaluate` needs tensorflow, keras, matplotlib, librosa: pip install 'genrecast[train]' "
        "(the daemon-only install has no tensorflow)"]
    assert not (tmp_path / "c").exists()


def test_the_blocking_really_hides_keras() -> None:
    """The simulation above is real: keras cannot be imported under it."""
    code = WITHOUT_TRAINER.split("from genrecast")[0] + "import keras\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


@pytest.mark.slow
def test_table_training_shows_progress_and_ends_with_a_summary(tmp_path: Path, data_dir: Path) -> None:
    """A 100-row slice of the real table (10 tracks per genre), through the real command (3 folds: each
    fit takes seconds whatever the rows, so 10 folds would take minutes)."""
    with open(data_dir / "reference" / "features_30_sec.csv", newline="") as f:
        rows = list(csv.reader(f))
    per_genre: dict[str, int] = {}
    kept = [rows[0]]
    for row in rows[1:]:
        genre = row[-1]
        if per_genre.get(genre, 0) < 10:
            per_genre[genre] = per_genre.get(genre, 0) + 1
            kept.append(row)
    small = tmp_path / "small.csv"
    with open(small, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    out = tmp_path / "bundle"
    proc = run_cli("train", "--table", str(small), "--out", str(out), "--cv-folds", "3", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folds = re.findall(r"fold (\d+)/3: accuracy", proc.stderr)
    assert folds == ["1", "2", "3"], proc.stderr[-3000:]
    assert "final model: training on all 100" in proc.stderr
    assert "Traceback" not in proc.stderr and "Assets written" not in proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(rf"bundle written to {re.escape(str(out))} \(model id (table-mlp-[0-9a-f]+)\): "
                         r"CV (0\.\d{3}) ± (0\.\d{3}) over 3 folds of 100 tracks, track test (\d\.\d{3}) \(10 tracks\); "
                         rf"report: {re.escape(str(out / 'report.md'))}", summary)
    assert match, summary
    metrics = json.loads((out / "metrics.json").read_text())
    assert float(match.group(2)) == pytest.approx(metrics["extra"]["cv"]["mean"], abs=5e-4)
    assert float(match.group(4)) == pytest.approx(metrics["extra"]["test_accuracy"], abs=5e-4)
    assert json.loads((out / "bundle.json").read_text())["model_id"] == match.group(1)
    # the robustness table: the gtzan-sample clips this slice never trained on, reserved ids left out
    from genrecast.trainer.splits import reserved_ids_near
    from genrecast.trainer.table import ids_in_dir
    from conditions_checks import assert_conditions_table

    trained = {row[0].rsplit(".", 1)[0] for row in kept[1:]}
    sample = data_dir / "gtzan-sample"
    assert_conditions_table(out, sorted(ids_in_dir(sample) - trained - reserved_ids_near(sample)))


def test_evaluate_a_missing_bundle_names_no_flag(tmp_path: Path, data_dir: Path) -> None:
    proc = run_cli("evaluate", str(tmp_path / "no-bundle"), str(data_dir / "gtzan-sample"), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"genrecast: error: model bundle {tmp_path / 'no-bundle'} is not a directory; "
        "give the folder of a bundle made by `genrecast train`"]


@pytest.mark.parametrize("args, says", [
    (["@D/gtzan-sample", "--table", "TABLE"], "give a DATASET folder (a model from audio) or --table FILE.csv"),
    (["@D/gtzan-sample", "--exclude-dir", "@D/gtzan-sample"], "--exclude-dir only goes with --table FILE.csv"),
    (["--table", "TABLE", "--epochs", "5", "--split", "segment"], "--split, --epochs only go with a DATASET of audio"),
    (["--table", "@D/nope.csv"], "--table @D/nope.csv: no such file"),
    (["--table", "TABLE", "--selection", "@D"], "--selection @D: no such file (a folder; give the file)"),
    (["--table", "@D/README.md"], "@D/README.md lacks 54 of the feature table's columns (filename, label, "),
    (["@D/gtzan-sample", "--seed", "-5"], "--seed must be 0 to 4294967295 (got -5)"),  # it failed only after extraction
    (["@D/gtzan-sample", "--seed", "4294967296"], "--seed must be 0 to 4294967295 (got 4294967296)"),  # numpy's, after it
    (["@D/gtzan-sample", "--window-seconds", "inf"], "--window-seconds must be 0.25 to 60 seconds (got inf)"),  # a traceback
    (["@D/gtzan-sample", "--window-seconds", "nan"], "--window-seconds must be 0.25 to 60 seconds (got nan)"),
    (["@D/gtzan-sample", "--conditions", ","], "--conditions ',' names no condition; give names"),  # ran clean only
    (["@D/gtzan-sample", "--split", "tracks"], "--split 'tracks' is not a split; choose track or segment, or --split-lists DIR"),
    (["@D/gtzan-sample/pop/pop.00000.wav"], "no such folder (a file; give the folder of genre sub-folders that holds it)"),
    # a list file, or a file of the data folder, was answered with the hint for a DATASET: "the folder of genre sub-folders"
    (["@D/gtzan-sample", "--split-lists", "@D/splits/jongpillee_music_dataset_split/GTZAN_split/test_filtered.txt"],
     "test_filtered.txt: no such folder (a file; give the folder of train/valid/test lists that holds it)"),
    (["--table", "TABLE", "--shifts-from", "@D/reserved-ids.txt"],
     "--shifts-from @D/reserved-ids.txt: no such folder (a file; give the folder laid out as ../shared/data that holds it)"),
    (["--detector-data", "@D/no-such-data"], "--detector-data @D/no-such-data: no such folder"),  # it "lacked music-speech/"
])
def test_train_refuses_options_it_cannot_use(args: list[str], says: str, data_dir: Path, tmp_path: Path) -> None:
    """Options of the other kind of model were silently ignored (--table trained the table model whatever --split
    or DATASET said); missing paths gave a raw [Errno 2]; a table without its columns listed all 54."""
    table = data_dir / "reference" / "features_30_sec.csv"
    args = [a.replace("@D", str(data_dir)).replace("TABLE", str(table)) for a in args]
    proc = run_cli("train", *args, "--out", str(tmp_path / "o"))
    says = says.replace("@D", str(data_dir))
    assert proc.returncode == 2 and says in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("genrecast: error:")
    assert "Traceback" not in proc.stderr and [line for line in proc.stderr.splitlines() if "error" in line] == [
        proc.stderr.strip().splitlines()[-1]], proc.stderr
    assert not (tmp_path / "o").exists()


def test_evaluate_checks_its_split_lists_before_any_work(tmp_path: Path, trained_bundle: Path, gtzan_sample: Path,
                                                        data_dir: Path, monkeypatch) -> None:
    """evaluate --split-lists found a missing folder (or a list file given for it, which it called missing)
    only after extracting the features of every file of the dataset."""
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))
    lists = data_dir / "splits" / "jongpillee_music_dataset_split" / "GTZAN_split"
    for given, says in ((lists / "test_filtered.txt", "no such folder (a file; give the folder of train/valid/test lists "
                         "that holds it)"), (tmp_path / "lists", "no such folder")):
        proc = run_cli("evaluate", str(trained_bundle), str(gtzan_sample), "--split-lists", str(given), timeout=120)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [f"genrecast: error: --split-lists {given}: {says}"]
    assert not (tmp_path / "cache").exists()  # no file was read


def test_train_checks_its_out_folder_before_any_work(tmp_path: Path, data_dir: Path) -> None:
    """`--out` a file, or a folder of other things, used to fail (or be written into) only after
    training; both are refused at once now, in one line, and the folder is left as it was."""
    table = str(data_dir / "reference" / "features_30_sec.csv")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine")
    for out, says in ((tmp_path / "afile", "is a file; give a folder"),
                      (tmp_path / "notes", "is a folder that holds no genrecast bundle, and it is not empty")):
        proc = run_cli("train", "--table", table, "--out", str(out), timeout=120)
        assert proc.returncode == 2 and says in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
        assert "accuracy" not in proc.stderr  # no fold was trained
    assert (tmp_path / "notes" / "notes.txt").read_text() == "mine" and (tmp_path / "afile").read_text() == "x"


def _small_table(path: Path, data_dir: Path, rows: dict[str, int]) -> Path:
    """A feature table of the real table's first ``rows[genre]`` rows of each genre named."""
    with open(data_dir / "reference" / "features_30_sec.csv", newline="") as f:
        table = list(csv.reader(f))
    kept = [table[0]]
    for row in table[1:]:
        if sum(r[-1] == row[-1] for r in kept[1:]) < rows.get(row[-1], 0):
            kept.append(row)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    return path


def _one_error_line(proc) -> str:
    """The error line of a refused run, checked to be its only one, with exit 2 and no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert [line for line in lines if "error" in line.lower()] == lines[-1:], proc.stderr[-3000:]
    return lines[-1]


@pytest.mark.parametrize("rows, folds, says", [
    ({"blues": 10, "classical": 10}, "11", "--cv-folds 11: every fold needs a row of every genre, and blues has 10 rows in "
     "@T; give --cv-folds 10 or fewer, or 0 (no cross-validation)"),
    ({"blues": 10, "classical": 3}, "50", "each genre needs at least 6 rows in @T (the SVC member calibrates on 5 folds of "
     "each fit's training rows, less the held-out 1/10); classical has 3: give a table with more classical rows, or "
     "leave classical out of it"),
    ({"blues": 10, "classical": 4}, "0", "each genre needs at least 6 rows in @T (the SVC member calibrates on 5 folds of "
     "each fit's training rows, less the held-out 1/10); classical has 4: give a table with more classical rows, or "
     "leave classical out of it"),
    ({"blues": 7, "classical": 9}, "3", "each genre needs at least 8 rows in @T for --cv-folds 3 (the SVC member calibrates "
     "on 5 folds of each fit's training rows, less a test fold); blues has 7: give --cv-folds 4 to 7 (smaller test "
     "folds), or 0 (no cross-validation), or a table with more blues rows"),
])
def test_train_refuses_a_table_too_small_for_its_folds_before_any_fit(rows: dict[str, int], folds: str, says: str,
                                                                      tmp_path: Path, data_dir: Path) -> None:
    """--cv-folds beyond a genre's rows trained fold after fold, then died in TensorFlow ("Biases must be 1D:
    [0,3]", an empty fold); a genre of fewer than 5 rows failed even with --cv-folds 0, in sklearn's words
    about a 5-fold cross-validation nobody asked for (the SVC member's calibration). Both are one line now,
    before any fit."""
    table = _small_table(tmp_path / "small.csv", data_dir, rows)
    out = tmp_path / "o"
    proc = run_cli("train", "--table", str(table), "--out", str(out), "--cv-folds", folds, "--conditions", "none", timeout=300)
    assert _one_error_line(proc) == "genrecast: error: " + says.replace("@T", str(table))
    assert "accuracy" not in proc.stderr and not out.exists()


@pytest.mark.parametrize("content, says", [
    ("[1, 2]", "entry 0 is not an object"),
    ('{"results": 5}', "holds an object, not a list"),
    ("garbage", "not JSON (Expecting value at line 1 column 1)"),
    ("{}", "holds an object, not a list"),
    ("[]", "an empty list"),
    ('[{"config": "h8-d0", "cv_mean": 0.5}]', "entry 0 has no valid parameters"),
    ('[{"config": "h8-d0", "cv_mean": 0.5, "parameters": 100}]', "no entry names a configuration of SELECTION_GRID (e.g. h128x64-d0.3-l20.001-n0-m5-e100)"),
])
def test_train_refuses_a_malformed_selection_file(content: str, says: str, tmp_path: Path, data_dir: Path) -> None:
    """A selection file that is not select's list of results gave a TypeError traceback, a JSON error that named
    no file, or (``{}``) was silently ignored; now one line names the file and the format, before any work."""
    selection = tmp_path / "selection.json"
    selection.write_text(content + "\n")
    table = _small_table(tmp_path / "small.csv", data_dir, {"blues": 10, "classical": 10})
    out = tmp_path / "o"
    proc = run_cli("train", "--table", str(table), "--selection", str(selection), "--out", str(out), "--cv-folds", "0",
                   "--conditions", "none", timeout=300)
    assert _one_error_line(proc) == (
        f"genrecast: error: --selection {selection}: {says}; expected the JSON list that `python -m "
        "genrecast.trainer.table select` writes (selection.json: an object per configuration with its config, "
        "cv_mean and parameters)")
    assert "accuracy" not in proc.stderr and not out.exists()


def test_an_old_bundles_leftovers_go_only_after_a_successful_run(tmp_path: Path, gtzan_sample: Path) -> None:
    """Training into a folder that holds a bundle replaces it: once the run has succeeded, none of
    the old bundle's files that it did not rewrite (its detector, its evaluation model) stays beside
    the new one; other files (notes, selection.json, a file in evaluation/) are kept. A run that
    fails touches nothing. Folders of other things are refused, a half-written bundle folder is not."""
    import json
    import os
    import shutil
    import time

    from genrecast.trainer.out_dir import check_bundle_dir, clear_stale_bundle_files, writable_problem

    out = tmp_path / "b"
    shutil.copytree(TABLE_BUNDLE, out)  # a bundle with an evaluation/ model
    (out / "notes.txt").write_text("mine")
    (out / "evaluation" / "my_notes.txt").write_text("mine too")
    before = sorted(p.name for p in out.rglob("*"))
    failed = run_cli("train", str(gtzan_sample), "--out", str(out), "--arch", "nope", timeout=300)
    assert failed.returncode == 2 and sorted(p.name for p in out.rglob("*")) == before

    check_bundle_dir(out)  # a bundle folder: fine
    started = time.time()
    for old in out.rglob("*"):  # the old bundle's files were written long ago
        os.utime(old, (started - 60, started - 60))
    (out / "model.tflite").write_bytes(b"new")  # what the new run wrote
    (out / "bundle.json").write_text(json.dumps({"format_version": 2, "labels": ["a", "b"]}))
    removed = clear_stale_bundle_files(out, started)
    assert "detector.tflite" in removed and "evaluation/model.tflite" in removed and "model.tflite" not in removed
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "evaluation", "model.tflite", "notes.txt", "selection.json"]
    assert sorted(p.name for p in (out / "evaluation").iterdir()) == ["my_notes.txt"]

    half = tmp_path / "half"  # an interrupted run: bundle files, no bundle.json yet
    (half / "evaluation").mkdir(parents=True)
    (half / "metrics.json").write_text("{}")
    check_bundle_dir(half)
    other = tmp_path / "other"  # another tool's bundle.json
    other.mkdir()
    (other / "bundle.json").write_text('{"name": "my-web-app"}')
    with pytest.raises(ValueError, match="holds no genrecast bundle"):
        check_bundle_dir(other)
    check_bundle_dir(tmp_path / "new" / "deeper")  # missing: fine, nothing made yet
    assert not (tmp_path / "new").exists()
    assert "is a file" in writable_problem(out / "notes.txt")
    assert "no folder can be made there" in writable_problem(out / "notes.txt" / "sub")


def test_noise_conditions_without_their_recordings_stop_before_any_work(tmp_path: Path, data_dir: Path,
                                                                       monkeypatch) -> None:
    """Babble and environment noise mix in recordings of the data folder; without them, `train
    --conditions all` (or --augment) failed only after the training, leaving a bundle without its
    conditions table, and `evaluate --conditions` after the clean runs."""
    import os

    from genrecast.daemon.bundle import default_bundle_path

    env = {**os.environ, "GENRECAST_TEST_DATA": str(tmp_path / "nowhere")}
    says = (f"genrecast: error: no recordings in {tmp_path / 'nowhere' / 'speech'} for the noise conditions (babble, "
            "environment); set GENRECAST_TEST_DATA to a folder laid out as ../shared/data, or leave those conditions out")
    for args in (["train", str(data_dir / "gtzan-sample"), "--conditions", "all"],
                 ["train", str(data_dir / "gtzan-sample"), "--conditions", "none", "--augment", "1"],
                 ["evaluate", str(default_bundle_path()), str(data_dir / "gtzan-sample"), "--conditions", "babble-10dB"]):
        proc = run_cli(*args, "--out", str(tmp_path / "o"), env=env, timeout=120)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [says], proc.stderr[-2000:]
        assert not (tmp_path / "o").exists()
    from genrecast.trainer.conditions import named
    from genrecast.trainer.robustness import noise_data_problem

    monkeypatch.setenv("GENRECAST_TEST_DATA", str(tmp_path / "nowhere"))
    assert noise_data_problem(named("stereo,speaker-room-noise15dB")) is None  # no recordings needed
    assert noise_data_problem(named("quick")) is None
    assert noise_data_problem(named("environment-10dB")).startswith(f"no recordings in {tmp_path / 'nowhere' / 'environment'}")


def test_a_staged_bundle_replaces_the_old_one_only_when_the_run_succeeds(tmp_path: Path, caplog) -> None:
    """A run writes into a staging folder inside --out: a failure or Ctrl-C removes it and leaves
    the old bundle whole (it used to leave one run's report and model beside another's bundle.json
    and .tflite); success moves the new files in, other files staying."""
    from genrecast.trainer.out_dir import STAGING_PREFIX, check_bundle_dir, staged_bundle

    out = tmp_path / "b"
    (out / "evaluation").mkdir(parents=True)
    old_json = json.dumps({"format_version": 2, "labels": ["a", "b"]})
    for name, text in (("bundle.json", old_json), ("model.tflite", "old"), ("notes.txt", "mine"),
                       ("evaluation/model.tflite", "old")):
        (out / name).write_text(text)
    before = {p.relative_to(out): p.read_text() for p in out.rglob("*") if p.is_file()}
    for error in (ValueError("bad"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with staged_bundle(out) as where:
                assert where.parent == out and where.name.startswith(STAGING_PREFIX)
                (where / "report.md").write_text("new")
                (where / "model.tflite").write_text("new")
                raise error
        assert {p.relative_to(out): p.read_text() for p in out.rglob("*") if p.is_file()} == before
    with staged_bundle(out) as where:
        (where / "evaluation").mkdir()
        (where / "evaluation" / "model.tflite").write_text("new")
        (where / "model.tflite").write_text("new")
        (where / "report.md").write_text("new")
    after = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert after == {"bundle.json": old_json, "model.tflite": "new", "notes.txt": "mine", "report.md": "new",
                     "evaluation/model.tflite": "new"}
    assert not any(p.name.startswith(STAGING_PREFIX) for p in out.iterdir())
    with pytest.raises(RuntimeError):
        with staged_bundle(tmp_path / "fresh"):
            raise RuntimeError
    assert not (tmp_path / "fresh").exists()  # made for the run, gone with it
    (out / f"{STAGING_PREFIX}999").mkdir()  # a run killed with SIGKILL leaves its staging folder
    check_bundle_dir(out)  # still a bundle folder to train into
    import subprocess
    import time

    from genrecast.trainer.out_dir import clear_stale_bundle_files

    gone = subprocess.Popen(["true"])
    gone.wait()
    (out / f"{STAGING_PREFIX}{gone.pid}").mkdir()  # a run that no longer runs
    (out / f"{STAGING_PREFIX}{os.getpid()}").mkdir()  # one still running (this process)
    import logging

    with caplog.at_level(logging.INFO, logger="genrecast.trainer.out_dir"):
        removed = clear_stale_bundle_files(out, time.time())
    assert f"{STAGING_PREFIX}{gone.pid}" in removed and not (out / f"{STAGING_PREFIX}{gone.pid}").exists()
    assert (out / f"{STAGING_PREFIX}{os.getpid()}").is_dir()
    # said as what it is: not "the previous bundle's .genrecast-partial-NNN", which the bundle never held
    stages = ", ".join(sorted([f"{STAGING_PREFIX}999", f"{STAGING_PREFIX}{gone.pid}"]))
    assert caplog.messages[-1] == f"removed the unfinished bundle of a run that was killed ({stages}) from {out}"
    assert all(STAGING_PREFIX not in message for message in caplog.messages[:-1])


def test_sigterm_stops_training_as_ctrl_c_does(tmp_path: Path, data_dir: Path) -> None:
    """A batch job's SIGTERM killed `train` outright: its staging folder stayed in --out, and no
    line said what happened."""
    import signal
    import subprocess

    from helpers import EXE, wait_for
    from genrecast.trainer.out_dir import STAGING_PREFIX

    out = tmp_path / "model"
    proc = subprocess.Popen([EXE, "train", "--table", str(data_dir / "reference" / "features_30_sec.csv"), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: out.is_dir() and any(p.name.startswith(STAGING_PREFIX) for p in out.iterdir()), 120,
                 "the run to stage its bundle")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == f"genrecast: error: stopped by SIGTERM; nothing was written to {out}"
    assert "Traceback" not in stderr and not out.exists()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs mounted for the test (root only), unmounted at teardown."""
    (tmp_path / "disk").mkdir()
    with small_tmpfs(tmp_path / "disk", "2m") as mount_point:
        yield mount_point


def _two_genres(tmp_path: Path, gtzan_sample: Path) -> Path:
    """A dataset of 3 blues and 3 classical clips (links to the shared data) in ``tmp_path/ds``."""
    dataset = tmp_path / "ds"
    for genre in ("blues", "classical"):
        (dataset / genre).mkdir(parents=True)
        for clip in sorted((gtzan_sample / genre).glob("*.wav"))[:3]:
            (dataset / genre / clip.name).symlink_to(clip)
    return dataset


@pytest.fixture(scope="module")
def small_training(tmp_path_factory, gtzan_sample: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(dataset, bundle, run) of one `genrecast train` of :func:`_two_genres`'s clips (--epochs 1 --conditions
    clean; a TensorFlow start and a fit), made once for the tests that read its log or copy its bundle; its
    GENRECAST_CACHE_DIR is the dataset's sibling ``cache``."""
    root = tmp_path_factory.mktemp("small-training")
    dataset, out = _two_genres(root, gtzan_sample), root / "bundle"
    proc = run_cli("train", str(dataset), "--out", str(out), "--epochs", "1", "--conditions", "clean",
                   env={**os.environ, "GENRECAST_CACHE_DIR": str(root / "cache")})
    return dataset, out, proc


def test_a_full_disk_names_the_folder_and_the_fix(small_disk: Path, small_training, monkeypatch) -> None:
    """train, evaluate --out and classify --output on a full disk ended with a bare
    `genrecast: error: [Errno 28] No space left on device`: no path, no fix (a write's error names no file)."""
    import shutil

    dataset, bundle, first = small_training
    assert first.returncode == 0, first.stderr[-3000:]
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(dataset.parent / "cache"))
    out = small_disk / "bundle"
    shutil.copytree(bundle, out)  # a bundle on the small disk, as a first training there leaves one
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fill_disk(small_disk)  # the disk is full from here on
    again = run_cli("train", str(dataset), "--out", str(out), "--epochs", "1", "--conditions", "none")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.splitlines()[-1] == (
        f"genrecast: error: --out {out}: no space left on its disk (No space left on device); free some space there "
        f"or choose another --out (nothing was written to {out})")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old bundle as it was

    evaluated = run_cli("evaluate", str(out), str(dataset), "--out", str(small_disk / "eval"))
    assert evaluated.returncode == 2 and evaluated.stderr.splitlines()[-1] == (
        f"genrecast: error: --out {small_disk / 'eval'}: no space left on its disk (No space left on device); free some "
        f"space there or choose another --out")

    output = small_disk / "out.jsonl"
    classified = run_cli("classify", "--bundle", str(out), str(dataset), "-o", str(output))
    assert classified.returncode == 2 and classified.stderr.splitlines()[-1] == (
        f"genrecast: error: --output {output}: no space left on its disk (No space left on device); free some space "
        f"there and run the same command with --resume, which goes on where this run stopped")
    (small_disk / "filler").unlink()  # room again: --resume finishes the batch, each file once
    resumed = run_cli("classify", "--bundle", str(out), str(dataset), "-o", str(output), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    verdicts = [line for line in output.read_text().splitlines() if '"verdict"' in line]
    assert len(verdicts) == 6


def test_a_full_cache_disk_is_named_not_the_temporary_folder(small_disk: Path, tmp_path: Path, data_dir: Path,
                                                            trained_bundle: Path, monkeypatch) -> None:
    """The detector's windows (and --augment's copies) are cached under GENRECAST_CACHE_DIR; with that
    disk full and --out's disk roomy, train blamed the temporary folder and said to set TMPDIR, which
    changes nothing."""
    import shutil

    out = tmp_path / "bundle"
    shutil.copytree(trained_bundle, out)
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(small_disk / "cache"))
    fill_disk(small_disk)  # the cache's disk is full from here on
    proc = run_cli("train", "--detector-data", str(data_dir), "--out", str(out), timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == (
        f"genrecast: error: no space left on a disk (No space left on device), though the disk of --out {out} has room: "
        f"the cache folder {small_disk / 'cache'} is full; free some space there or set GENRECAST_CACHE_DIR to a folder "
        "with room")


def test_evaluate_out_keeps_files_it_did_not_write(tmp_path: Path, trained_bundle: Path, gtzan_sample: Path) -> None:
    """`evaluate --out .` in one's own project folder replaced its report.md (and metrics.json,
    confusion.png) without a word; an earlier evaluation's files it still replaces."""
    from genrecast.trainer.out_dir import check_report_dir

    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "report.md").write_text("# my thesis notes\n")
    (mine / "notes.txt").write_text("kept\n")
    for args in ([], ["--conditions", "clean"]):
        proc = run_cli("evaluate", str(trained_bundle), str(gtzan_sample), "--out", str(mine), *args, timeout=300)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [
            f"genrecast: error: --out {mine} holds report.md that genrecast evaluate did not write, and would replace; "
            "give a new or empty folder (nothing there was touched)"]
    assert (mine / "report.md").read_text() == "# my thesis notes\n" and sorted(p.name for p in mine.iterdir()) == [
        "notes.txt", "report.md"]
    earlier = tmp_path / "earlier"  # an earlier evaluation's folder: evaluate writes there again
    earlier.mkdir()
    (earlier / "conditions.json").write_text(json.dumps({"conditions": {}, "verdicts": {}, "seed": 0}))
    (earlier / "conditions.md").write_text("# cnn-1 under capture conditions\n")
    (earlier / "report.md").write_text("# genrecast evaluation of cnn-1\n")
    check_report_dir(earlier)
    check_report_dir(tmp_path / "new")  # new, or without any of its files: fine
    check_report_dir(tmp_path)
    (earlier / "conditions.json").write_text("{}")  # not genrecast's
    with pytest.raises(ValueError, match="holds report.md, conditions.json, conditions.md that genrecast evaluate did not write"):
        check_report_dir(earlier)


def test_train_names_no_staging_folder(small_training) -> None:
    """The log said "model bundle OUT/.genrecast-partial-PID has no music detector", twice with --conditions
    (and a table run "wrote OUT/.genrecast-partial-PID: ..."): a folder that is gone when the run ends."""
    from genrecast.trainer.out_dir import STAGING_PREFIX

    _, out, proc = small_training
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert STAGING_PREFIX not in proc.stderr + proc.stdout, proc.stderr
    assert (f"the bundle has no music detector (every window that is not silent counts as music); add one with "
            f"`genrecast train --detector-data DIR --out {out}`") in proc.stderr
    assert proc.stdout.splitlines()[-1].startswith(f"bundle written to {out} (model id cnn-")


@pytest.mark.parametrize("sig,code,says", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "stopped by SIGTERM")])
def test_evaluate_says_it_was_interrupted(sig: str, code: int, says: str, tmp_path: Path, data_dir: Path) -> None:
    """Ctrl-C ended evaluate with exit 130 and no line at all; a batch job's SIGTERM killed it outright."""
    import signal

    from helpers import EXE, wait_for

    out = tmp_path / "cond"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([EXE, "evaluate", "daemon/default_bundle", str(data_dir / "gtzan-sample"), "--split", "all",
                                 "--conditions", "clean,gain-24dB,gain-3dB,gain+3dB,stereo,mp3-128k", "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO)
        try:
            wait_for(lambda: "clips × conditions:" in log.read_text(), 120, "the first clips to be classified")
            proc.send_signal(getattr(signal, sig))
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert proc.returncode == code, text[-2000:]
    assert text.strip().splitlines()[-1] == f"genrecast: error: {says}" and "Traceback" not in text
    assert not out.exists()
