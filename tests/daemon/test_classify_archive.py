"""`genrecast classify` over archives: folders, globs and list files, on a real local Dask cluster of
worker processes on 127.0.0.1 (``--workers``) or a running one (``--scheduler``).

Real short clips (gtzan-excerpts, 2-3 s; one 30-s MP3 for the ffmpeg path), linked into a folder.
Worker kills and interruptions are timed by conditions: the list of files is a named pipe the test
writes, so the run cannot end before the test lets it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from helpers import EXE, children, ffmpeg_processes_mentioning, file_lines, free_port, run_cli, wait_for

pytestmark = pytest.mark.slow

#: The numeric setting of Dask's worker processes (its nanny's pre-spawn environment): the
#: single-process reference runs with it too, so their floats are the same to the last bit.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
GENRES = ("blues", "classical", "jazz", "metal", "rock")


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in file_lines(path)]


def closing(rows: list[dict]) -> list[dict]:
    """The verdict and error lines (one per file done)."""
    return [r for r in rows if r["type"] in ("verdict", "error")]


def assert_each_once(rows: list[dict], files: list[str]) -> None:
    """Every file has exactly one verdict (or error) line, and exactly its verdict's count of window lines."""
    done = Counter(r["file"] for r in closing(rows))
    assert sorted(done) == sorted(files) and set(done.values()) == {1}, done
    windows = Counter(r["file"] for r in rows if r["type"] == "window")
    for r in closing(rows):
        assert windows.get(r["file"], 0) == r.get("windows", 0), (r["file"], windows.get(r["file"]), r)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, data_dir: Path) -> Path:
    """archive/GENRE/*.wav: 4 real excerpts of each of 5 genres (links), a 30-s MP3 and a broken file."""
    root = tmp_path_factory.mktemp("archive")
    for genre in GENRES:
        (root / genre).mkdir()
        for clip in sorted((data_dir / "gtzan-excerpts" / genre).glob("*.wav"))[:4]:
            (root / genre / clip.name).symlink_to(clip)
    (root / "blues" / "blues.00099.mp3").symlink_to(data_dir / "gtzan-sample" / "blues" / "blues.00099.mp3")
    (root / "rock" / "broken.mp3").write_bytes(b"this is not audio\n" * 200)
    (root / "notes.txt").write_text("not audio, and not an audio name: a folder walk leaves it out\n")
    return root


def audio_files(archive: Path) -> list[str]:
    return sorted(str(p) for p in archive.rglob("*") if p.suffix in (".wav", ".mp3"))


@pytest.fixture(scope="module")
def reference(archive: Path, tmp_path_factory) -> dict[str, dict]:
    """Verdicts (and error lines) of a single-process run over the archive, by file."""
    out = tmp_path_factory.mktemp("ref") / "reference.jsonl"
    proc = run_cli("classify", str(archive), "-o", str(out), env={**os.environ, **ONE_THREAD})
    assert proc.returncode == 1, proc.stderr[-2000:]  # the broken file
    rows = records(out)
    assert_each_once(rows, audio_files(archive))
    return {r["file"]: r for r in closing(rows)}


def test_workers_give_the_verdicts_of_one_process_and_report_the_broken_file(archive: Path, reference, tmp_path: Path) -> None:
    """A folder, a glob and a list file that overlap it: every file once, verdicts identical to
    the single-process run, the broken file an error line, counted in the summary, exit 1."""
    listed = tmp_path / "list.txt"
    listed.write_text("# a comment\n" + "\n".join(audio_files(archive)[:6]) + "\n\n")
    out = tmp_path / "out.jsonl"
    proc = run_cli("classify", str(archive / "jazz"), f"{archive}/**/*.mp3", str(archive), "--list", str(listed),
                   "-o", str(out), "--workers", "2")
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = records(out)
    assert_each_once(rows, audio_files(archive))
    assert {r["file"]: r for r in closing(rows)} == reference
    [error] = [r for r in rows if r["type"] == "error"]
    assert error["file"].endswith("broken.mp3") and "broken.mp3" in error["error"]
    summary = proc.stderr.strip().splitlines()[-1]
    n = len(audio_files(archive))
    assert summary.startswith(f"genrecast: classified {n - 1} files (") and "; 1 could not be read" in summary, summary
    assert "Traceback" not in proc.stderr


def _open_writer(fifo: Path) -> int:
    """The write end of a named pipe, once the command has opened its read end."""
    def attempt():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            return None
    return wait_for(attempt, 180, "classify to open its --list pipe")


def _worker_pids(pid: int) -> list[int]:
    """The Dask worker processes a `classify --workers` process started (multiprocessing spawn children)."""
    return [c for c, _, state in children(pid) if state != "Z"
            and b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _classify_from_pipe(archive: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int, Path]:
    fifo = tmp_path / "files.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([EXE, "classify", "--list", str(fifo), "-o", str(out), *extra], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "stderr.txt", "w"), text=True, start_new_session=True)
    return proc, _open_writer(fifo), out


@pytest.fixture(scope="module")
def long_mp3(tmp_path_factory, data_dir: Path) -> Path:
    """10 minutes of real music (metal.00000 20 times) as an MP3: decoded by an ffmpeg child for seconds."""
    out = tmp_path_factory.mktemp("long") / "long.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-stream_loop", "19", "-i", str(data_dir / "gtzan-sample" / "metal" / "metal.00000.wav"),
                    "-ac", "1", "-ar", "22050", "-b:a", "64k", str(out)], check=True, timeout=120)
    return out


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def test_a_worker_killed_mid_task_leaves_every_file_done_once(archive: Path, reference, long_mp3: Path, tmp_path: Path) -> None:
    """The worker decoding a 10-minute MP3 (its ffmpeg child running) is killed with SIGKILL while
    the list is still open: Dask gives the task to another worker, and every file, that one too,
    is written exactly once."""
    files = audio_files(archive)
    proc, fd, out = _classify_from_pipe(archive, tmp_path, "--workers", "2")
    try:
        os.write(fd, "".join(f + "\n" for f in [str(long_mp3), *files[:-4]]).encode())
        [decoder] = wait_for(lambda: ffmpeg_processes_mentioning(str(long_mp3)), 180, "a worker decoding the long file")
        worker = _parent(decoder)
        assert worker in _worker_pids(proc.pid)
        os.kill(worker, signal.SIGKILL)  # mid-task, and mid-run: the list is still open
        try:
            os.kill(decoder, signal.SIGKILL)  # the orphan would end at its closed pipe anyway
        except ProcessLookupError:
            pass
        os.write(fd, "".join(f + "\n" for f in files[-4:]).encode())
    finally:
        os.close(fd)
    try:
        proc.wait(300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, (tmp_path / "stderr.txt").read_text()[-2000:]  # the broken file, nothing else
    rows = records(out)
    assert_each_once(rows, [*files, str(long_mp3)])
    by_file = {r["file"]: r for r in closing(rows)}
    assert by_file.pop(str(long_mp3))["windows"] == 200
    assert by_file == reference


def test_an_interrupted_run_resumed_gives_every_file_once(archive: Path, reference, tmp_path: Path) -> None:
    """The classify process (and its workers) killed after some verdicts, a line cut short as a kill
    mid-write leaves it, then the same command with --resume."""
    files = audio_files(archive)
    proc, fd, out = _classify_from_pipe(archive, tmp_path, "--workers", "2")
    try:
        os.write(fd, "".join(f + "\n" for f in files[:8]).encode())
        wait_for(lambda: len(closing(records(out))) >= 3, 180, "three verdicts")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        os.close(fd)
    first = {r["file"] for r in closing(records(out))}
    unfinished = next(f for f in files if f not in first and f.endswith(".wav"))
    window = {"type": "window", "file": unfinished, "audio_start_seconds": 0.0}
    with open(out, "a") as f:  # a window line of a file whose verdict never came, and half a line
        f.write(json.dumps(window) + "\n" + json.dumps({"type": "verdict", "file": unfinished})[:25])
    listed = tmp_path / "all.txt"
    listed.write_text("\n".join(files) + "\n")
    proc = run_cli("classify", "--list", str(listed), "-o", str(out), "--resume", "--workers", "1")
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = records(out)
    assert_each_once(rows, files)
    assert {r["file"]: r for r in closing(rows)} == reference
    assert f"{len(first)} skipped, already in {out}" in proc.stderr.strip().splitlines()[-1]


def test_joins_a_running_cluster_by_its_address_and_loads_the_bundle_once_per_worker(archive: Path, reference) -> None:
    from distributed import Client, LocalCluster

    from genrecast.daemon.cluster import bundle_loads

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        proc = run_cli("classify", "--json", str(archive / "metal"), str(archive / "jazz"), "--scheduler", address)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
        expected = [f for f in audio_files(archive) if "/metal/" in f or "/jazz/" in f]
        assert_each_once(rows, expected)
        assert {r["file"]: r for r in closing(rows)} == {f: reference[f] for f in expected}
        assert list(client.run(bundle_loads).values()) == [1]  # 8 files, one load
        # a relative path, from a folder that is not the workers' own: they get its absolute path (they
        # looked for it in their folder: "no such file")
        here = archive.parent
        proc = run_cli("classify", "--json", os.path.relpath(archive / "metal", here), "--scheduler", address, cwd=here)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
        assert {r["file"]: r for r in closing(rows)} == {f: reference[f] for f in expected if "/metal/" in f}


def test_bad_options_are_one_line(tmp_path: Path, archive: Path) -> None:
    existing = tmp_path / "out.jsonl"
    existing.write_text('{"type": "verdict", "file": "x.wav"}\n')
    cases = [
        (["--resume", str(archive)], "genrecast: error: --resume needs --output FILE (a file, not -): the JSON lines it reads to skip the files already done"),
        (["-o", str(existing), str(archive)], f"genrecast: error: --output {existing} exists: add --resume to go on with it, or choose a new file"),
        ([f"{archive}/*.flac"], f"genrecast: error: {archive}/*.flac: the pattern matches no file (quote it so that the shell "
                                "leaves it to genrecast, and check the folder)"),
        (["--workers", "0", str(archive)], "genrecast: error: --workers must be at least 1 (got 0)"),
        (["-o", str(tmp_path), str(archive)], f"genrecast: error: --output {tmp_path} is a folder; give a file in it, "
         f"e.g. {tmp_path / 'verdicts.jsonl'}"),
        (["--list", str(tmp_path), str(archive)], f"genrecast: error: --list {tmp_path}: cannot read it (give a text file "
         "with one audio path a line, or - for stdin)"),
        (["--plot", str(existing), str(archive)], f"genrecast: error: --plot {existing} is a file; give a folder for the "
         "timeline PNGs (it is created if missing)"),
        (["-o", str(tmp_path / "missing" / "x.jsonl"), str(archive)],
         f"genrecast: error: --output {tmp_path / 'missing' / 'x.jsonl'}: the folder {tmp_path / 'missing'} does not exist; "
         "create it or choose another file"),
        (["--plot", str(existing / "plots"), str(archive)], f"genrecast: error: --plot {existing / 'plots'}: cannot create "
         "the folder (Not a directory); give a folder you can write to"),
        (["-o", str(existing / "x.jsonl"), str(archive)],
         f"genrecast: error: --output {existing / 'x.jsonl'}: the folder {existing} is a file, not a folder; "
         "create it or choose another file"),
    ]
    # a link to a folder that is gone (an unmounted disk): a raw "[Errno 2] No such file or directory" without the fix
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "unmounted" / "verdicts.jsonl")
    cases.append((["-o", str(tmp_path / "gone.jsonl"), str(archive)], f"genrecast: error: --output {tmp_path / 'gone.jsonl'}: "
                  "cannot write it (No such file or directory); choose a file in a folder you can write to"))
    # --resume cut any file back to its last classify verdict: an event log, even the audio itself, was wiped
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "verdict", "file": "x.wav"}\n{"seq": 0, "genre": "rock"}\n')
    cases.append((["-o", str(events), "--resume", str(archive)], f"genrecast: error: --output {events}: line 2 is not one "
                  "genrecast classify writes; --resume goes on only with classify's own output (it cuts the file back to "
                  "its last verdict), so choose a new file"))
    cases.append((["http://127.0.0.1:9/nope.mp3"], "genrecast: error: http://127.0.0.1:9/nope.mp3: classify reads local "
                  "files, not URLs; for a stream run `genrecast run --source http://127.0.0.1:9/nope.mp3`, or download the "
                  "file first"))  # it said 'http:/127.0.0.1:9/nope.mp3: no such file'
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    cases.append((["--list", str(tmp_path / "empty.txt")],
                  f"genrecast: error: nothing to classify: --list {tmp_path / 'empty.txt'} named no file; give audio paths, one a line"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here\n")
    proc = run_cli("classify", str(tmp_path / "notes"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"genrecast: error: {tmp_path / 'notes'}: the folder holds no audio files")
    for args, message in cases:
        proc = run_cli("classify", *args)
        assert (proc.returncode, proc.stderr.strip().splitlines()) == (2, [message]), args
    assert events.read_text() == '{"type": "verdict", "file": "x.wav"}\n{"seq": 0, "genre": "rock"}\n'  # untouched
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_cli("classify", "--scheduler", address, str(archive))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"genrecast: error: --scheduler {address}: no scheduler with a worker answered")


#: Run the CLI with dask's distributed and matplotlib unimportable, as after `pip install .`.
WITHOUT_EXTRAS = (
    "import sys\n"
    "for name in ('distributed', 'matplotlib'):\n"
    "    sys.modules[name] = None\n"
    "from genrecast.daemon.cli import main\n"
    "sys.argv = ['genrecast', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.parametrize("flag,message", [
    (["--workers", "2"], "genrecast: error: --workers and --scheduler need dask.distributed: pip install 'genrecast[cluster]'"),
    (["--plot", "plots"], "genrecast: error: --plot needs matplotlib: pip install 'genrecast[plot]'"),
])
def test_a_missing_extra_is_one_line(flag: list[str], message: str, archive: Path, tmp_path: Path) -> None:
    import sys

    proc = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, "classify", *flag, str(archive)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr.strip().splitlines()) == (2, [message])
    assert not (tmp_path / "plots").exists()


def test_a_terminal_shows_files_hours_and_time_left(archive: Path, tmp_path: Path) -> None:
    from helpers import Terminal

    out = tmp_path / "out.jsonl"
    n = len(audio_files(archive))
    with Terminal(f"{EXE} classify {archive}/jazz {archive}/blues -o {out}", width=140, height=20) as term:
        screen = wait_for(lambda: "EXIT=" in (text := term.screen()) and text, 180, "classify to finish")
    bar = next(line for line in screen.splitlines() if line.startswith("classifying"))
    assert "9/9 files" in bar and " h of audio" in bar and "ETA" in bar, screen
    assert "genrecast: classified 9 files" in screen and "EXIT=0" in screen and "Traceback" not in screen
    assert len([r for r in records(out) if r["type"] == "verdict"]) == 9 < n


def test_two_names_of_one_file_are_one_file_and_resume_counts_what_it_skipped(gtzan_sample: Path, tmp_path: Path,
                                                                              monkeypatch) -> None:
    """`classify a.wav ./a.wav` gave two verdicts; a --resume that named it ./a.wav classified it
    again, and the summary counted every finished file as skipped, matched or not."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(gtzan_sample / "jazz" / "jazz.00016.wav", "a.wav")
    shutil.copy(gtzan_sample / "rock" / "rock.00000.wav", "b.wav")
    twice = run_cli("classify", "--json", "a.wav", "./a.wav", "sub/../a.wav", timeout=120, cwd=tmp_path)
    verdicts = lambda text: [row for row in map(json.loads, text.splitlines()) if row["type"] == "verdict"]  # noqa: E731
    assert twice.returncode == 0 and len(verdicts(twice.stdout)) == 1, twice.stdout[-500:]
    first = run_cli("classify", "a.wav", "b.wav", "-o", "out.jsonl", timeout=120, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli("classify", "./a.wav", "-o", "out.jsonl", "--resume", timeout=120, cwd=tmp_path)
    assert again.returncode == 0 and "classified 0 files" in again.stderr and "; 1 skipped" in again.stderr, again.stderr
    assert [row["file"] for row in verdicts((tmp_path / "out.jsonl").read_text())] == ["a.wav", "b.wav"]


def _heartbeat_records_kept() -> list[bool]:
    """In a worker: whether its logger keeps the shutdown-heartbeat record and an ordinary one."""
    import logging

    from genrecast.daemon.cluster import SHUTDOWN_HEARTBEAT

    logger = logging.getLogger("distributed.worker")
    make = lambda msg: logger.makeRecord(logger.name, logging.ERROR, __file__, 0, msg, (), None)  # noqa: E731
    return [logger.filter(make(SHUTDOWN_HEARTBEAT + ".")), logger.filter(make("Worker ran out of memory"))]


def test_a_local_cluster_drops_only_the_shutdown_heartbeat_traceback() -> None:
    """distributed logs a traceback when a retiring worker's heartbeat meets its closed comm (a CI
    run's README check once failed on it after every result was in); our own workers drop that
    record and keep every other."""
    from genrecast.daemon.cluster import connect

    client, cluster = connect(2, None)
    try:
        kept = client.run(_heartbeat_records_kept)
    finally:
        client.close()
        cluster.close()
    assert len(kept) == 2 and all(v == [False, True] for v in kept.values()), kept


def test_a_list_in_windows_utf8_or_with_a_latin1_name_and_a_glob_round_a_link_loop(gtzan_sample: Path, tmp_path: Path) -> None:
    """A list that Notepad saved (a byte-order mark, CRLF) broke its first path; a Latin-1 name in a
    list was a traceback; a quoted ** glob went round a link back to its parent, classifying each
    file about 40 times (the folder walk reads such a loop once)."""
    import shutil

    lib = tmp_path / "lib"
    (lib / "deep").mkdir(parents=True)
    shutil.copy(gtzan_sample / "jazz" / "jazz.00016.wav", lib / "deep" / "a.wav")
    latin1 = os.path.join(os.fsencode(lib), b"caf\xe9.wav")
    shutil.copy(gtzan_sample / "rock" / "rock.00000.wav", latin1)
    (lib / "deep" / "up").symlink_to("..")
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + os.fsencode(lib / "deep" / "a.wav") + b"\r\n" + latin1 + b"\r\n")
    proc = run_cli("classify", "--json", "--list", str(listing), timeout=180)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    files = [row["file"] for row in map(json.loads, proc.stdout.splitlines()) if row["type"] == "verdict"]
    assert files == [str(lib / "deep" / "a.wav"), os.fsdecode(latin1)]
    proc = run_cli("classify", "--json", f"{lib}/**", timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    verdicts = [row for row in map(json.loads, proc.stdout.splitlines()) if row["type"] == "verdict"]
    assert sorted(os.path.realpath(os.fsencode(row["file"])) for row in verdicts) == sorted(
        os.path.realpath(p) for p in (os.fsencode(lib / "deep" / "a.wav"), latin1))


def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes_it(archive: Path, tmp_path: Path) -> None:
    """Two runs on one -o FILE (the second with --resume) interleaved their lines and classified
    every file twice, without a word."""
    files = audio_files(archive)
    proc, fd, out = _classify_from_pipe(archive, tmp_path)
    try:
        os.write(fd, (files[0] + "\n").encode())
        wait_for(lambda: len(closing(records(out))) >= 1, 180, "the first run's first verdict")
        second = run_cli("classify", files[1], "-o", str(out), "--resume")
        assert second.returncode == 2, second.stderr[-2000:]
        assert second.stderr.strip() == (f"genrecast: error: -o {out}: another genrecast classify is writing it; wait for "
                                         "that run to end (then --resume goes on from it), or give another file")
        os.write(fd, (files[1] + "\n").encode())
    finally:
        os.close(fd)
    assert proc.wait(180) == 0
    assert_each_once(records(out), files[:2])
    after = run_cli("classify", files[2], "-o", str(out), "--resume")  # the lock went with the first run
    assert after.returncode == 0, after.stderr[-2000:]
    assert_each_once(records(out), files[:3])


def _dask(*args: str) -> subprocess.Popen:
    """``dask ARGS --no-dashboard`` from this virtualenv, quiet, in a process group of its own."""
    return subprocess.Popen([str(Path(EXE).parent / "dask"), *args, "--no-dashboard"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _dask_scheduler() -> tuple[str, subprocess.Popen]:
    """A Dask scheduler on a free local port: its address and its process."""
    port = free_port()
    return f"tcp://127.0.0.1:{port}", _dask("scheduler", "--host", "127.0.0.1", "--port", str(port))


def _dask_worker(address: str) -> subprocess.Popen:
    """One Dask worker process (one thread) for the scheduler at ``address``."""
    return _dask("worker", address, "--nworkers", "1", "--nthreads", "1")


def test_a_scheduler_that_dies_ends_the_run_and_resume_does_its_files(archive: Path, reference, long_mp3: Path,
                                                                      tmp_path: Path) -> None:
    """The scheduler killed mid-run: its cancelled tasks were error lines ("FutureCancelledError")
    that --resume counted as done, so those files never got a verdict, and the run then hung."""
    address, scheduler = _dask_scheduler()
    worker = _dask_worker(address)
    files = audio_files(archive)
    try:
        proc, fd, out = _classify_from_pipe(archive, tmp_path, "--scheduler", address)
        try:
            os.write(fd, (files[0] + "\n").encode())
            wait_for(lambda: len(closing(records(out))) >= 1, 180, "the first verdict")
            os.write(fd, f"{long_mp3}\n{files[1]}\n".encode())  # 10 minutes of MP3: in flight for seconds
            os.killpg(scheduler.pid, signal.SIGKILL)
            assert proc.wait(120) == 1
        finally:
            os.close(fd)
        stderr = (tmp_path / "stderr.txt").read_text()
        assert "did the scheduler stop?); the files in flight have no line in the output: run the same command with " \
               "--resume once the cluster is back" in stderr and "Traceback" not in stderr, stderr[-2000:]
        assert all(r["type"] != "error" for r in records(out))  # no file is called unreadable for it
    finally:
        for p in (scheduler, worker):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)
    listed = tmp_path / "three.txt"
    listed.write_text(f"{files[0]}\n{long_mp3}\n{files[1]}\n")
    again = run_cli("classify", "--list", str(listed), "-o", str(out), "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert_each_once(records(out), [files[0], str(long_mp3), files[1]])
    done = {r["file"]: r for r in closing(records(out))}
    assert done[files[0]] == reference[files[0]] and done[files[1]] == reference[files[1]]


def test_hidden_files_are_left_out_dash_is_stdout_and_resume_ends_as_the_whole_run(data_dir: Path, tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """A Mac-written disk's `._NAME.mp3` beside each song was classified and failed ("not audio"),
    so every archive run ended in errors; `-o -` wrote a file named "-"; a --resume after a run with
    an unreadable file exited 0, as if the archive had been read whole."""
    monkeypatch.chdir(tmp_path)
    lib = tmp_path / "lib"
    (lib / ".cache").mkdir(parents=True)
    clip = sorted((data_dir / "gtzan-excerpts" / "jazz").glob("*.wav"))[0]
    (lib / "song.wav").symlink_to(clip)
    (lib / "._song.wav").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 4000)  # AppleDouble metadata
    (lib / ".cache" / "copy.wav").symlink_to(clip)
    (lib / "broken.mp3").write_bytes(b"this is not audio\n" * 200)

    dash = run_cli("classify", str(lib), "-o", "-", timeout=120, cwd=tmp_path)
    assert dash.returncode == 1 and not (tmp_path / "-").exists(), dash.stderr[-2000:]
    closed = {row["file"]: row["type"] for row in map(json.loads, dash.stdout.splitlines()) if row["type"] != "window"}
    assert closed == {str(lib / "broken.mp3"): "error", str(lib / "song.wav"): "verdict"}, closed

    first = run_cli("classify", str(lib), "-o", "out.jsonl", timeout=120, cwd=tmp_path)
    assert first.returncode == 1 and "1 could not be read" in first.stderr, first.stderr[-2000:]
    again = run_cli("classify", str(lib), "-o", "out.jsonl", "--resume", timeout=120, cwd=tmp_path)
    assert again.returncode == 1, again.stderr[-2000:]
    assert "classified 0 files" in again.stderr and "2 skipped, already in out.jsonl (of them 1 could not be read)" \
        in again.stderr, again.stderr
    named = run_cli("classify", str(lib / "song.wav"), "-o", "./-", timeout=120, cwd=tmp_path)  # a file called -
    assert named.returncode == 0 and named.stdout == "" and (tmp_path / "-").read_text().count('"verdict"') == 1
    refused = run_cli("classify", str(lib), "-o", "-", "--resume", timeout=60, cwd=tmp_path)
    assert refused.returncode == 2 and "--resume needs --output FILE (a file, not -)" in refused.stderr, refused.stderr


def test_a_cluster_without_workers_says_so_and_goes_on_when_one_comes(archive: Path, reference, tmp_path: Path) -> None:
    """Its last worker gone, a --scheduler run waited for one without a word, for ever."""
    address, scheduler = _dask_scheduler()
    started = [scheduler, _dask_worker(address)]
    files = audio_files(archive)
    stderr = tmp_path / "stderr.txt"
    try:
        proc, fd, out = _classify_from_pipe(archive, tmp_path, "--scheduler", address)
        try:
            os.write(fd, (files[0] + "\n").encode())
            wait_for(lambda: len(closing(records(out))) >= 1, 180, "the first verdict")
            os.killpg(started[1].pid, signal.SIGKILL)  # the nanny and its worker: nothing restarts it
            started[1].wait(30)
            os.write(fd, (files[1] + "\n").encode())
            wait_for(lambda: "the cluster has no worker left (files in flight: 1); start `dask worker " in stderr.read_text(),
                     120, "the run to say that it waits for a worker")
            started.append(_dask_worker(address))
            wait_for(lambda: "the cluster has 1 worker again: going on" in stderr.read_text(), 180, "the new worker")
        finally:
            os.close(fd)
        assert proc.wait(180) == 0, stderr.read_text()[-2000:]
    finally:
        for p in started:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(30)
    assert_each_once(records(out), files[:2])
    assert {r["file"]: r for r in closing(records(out))} == {f: reference[f] for f in files[:2]}
    assert "Traceback" not in stderr.read_text()


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (exited, or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


@pytest.mark.parametrize("workers", [(), ("--workers", "1")], ids=["in-process", "local-cluster"])
def test_sigterm_ends_the_run_as_ctrl_c_does(archive: Path, long_mp3: Path, tmp_path: Path, workers) -> None:
    """A batch scheduler's SIGTERM ended classify with 143 and no word of how far it got."""
    files = audio_files(archive)
    proc, fd, out = _classify_from_pipe(archive, tmp_path, *workers)
    try:
        os.write(fd, f"{files[0]}\n{long_mp3}\n".encode())
        wait_for(lambda: len(closing(records(out))) >= 1 and ffmpeg_processes_mentioning(str(long_mp3)), 180,
                 "the first verdict, and the long file decoding")
        kids = [pid for pid, _, state in children(proc.pid) if state != "Z"]  # ffmpeg, or the cluster's processes
        assert kids
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        os.close(fd)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 143 and stderr.strip().splitlines()[-1] == \
        "genrecast: stopped by SIGTERM after 1 files (the same command with --resume goes on from here)", stderr[-2000:]
    assert "Traceback" not in stderr
    wait_for(lambda: not ffmpeg_processes_mentioning(str(long_mp3)) and all(_gone(pid) for pid in kids),
             60, "no decoder or worker left behind")
