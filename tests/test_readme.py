"""The README works as pasted: every command of its ```sh blocks is run here from the repository
root (with .venv, as the README writes it) and its exit status and some of its output checked,
or skipped for a reason written below. A new README command without a check or a reason fails.

Also: the example event is a real event of the default model, and the sink plugin example
(its two files, exactly as printed) installs with pip and is loaded by `genrecast plugins`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from helpers import REPO

README = REPO / "README.md"
DATA = REPO.parent / "shared" / "data"
SERVICE_SECTION = "Run it as a service"
LONG = os.environ.get("GENRECAST_README_LONG") == "1"


# -- the README, parsed ---------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    section: str
    lang: str
    text: str


def blocks(text: str) -> list[Block]:
    """Fenced code blocks with the heading of the section they are in."""
    found, section, lang, lines = [], "", None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                found.append(Block(section, lang, "\n".join(lines) + "\n"))
                lang = None
        elif lang is not None:
            lines.append(line)
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
    return found


def commands(block: Block) -> list[str]:
    """The commands of a shell block: continuation lines joined, comment lines left out."""
    out, pending = [], ""
    for line in block.text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        command, pending = (pending + line).strip(), ""
        if command and not command.startswith("#"):
            out.append(command)
    return out


def key(command: str) -> str:
    """A command without its trailing comment and with single spaces: how the tables below name it."""
    return " ".join(re.sub(r"\s+#\s.*$", "", command).split())


README_BLOCKS = blocks(README.read_text())
SH_COMMANDS = [(b.section, c) for b in README_BLOCKS if b.lang == "sh" for c in commands(b)]


def block_after(section: str, lang: str, index: int = 0) -> str:
    return [b for b in README_BLOCKS if b.section == section and b.lang == lang][index].text


# -- how each command is checked ------------------------------------------------------

@dataclass
class Run:
    """The finished command: exit status, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str


@dataclass
class Check:
    """Run the command (after ``replace`` substitutions, with ``env`` added) and let ``verify`` assert."""

    verify: Callable[[Run, "Workspace"], None]
    replace: dict[str, str] = field(default_factory=dict)
    env: Callable[["Workspace"], dict[str, str]] | None = None
    timeout: float = 300
    interrupt_when: str | None = None
    """Text that, once on stdout or stderr, means the command works; then it gets SIGINT (it never ends)."""


@dataclass
class Workspace:
    """Per-session scratch space standing in for the README's /tmp paths and the plugin's folder."""

    root: Path
    done: dict[str, Run] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.root / name


def _ok(*needles: str, stream: str = "stdout") -> Callable[[Run, Workspace], None]:
    def verify(run: Run, ws: Workspace) -> None:
        assert run.returncode == 0, run.stderr[-2000:]
        text = getattr(run, stream)
        for needle in needles:
            assert needle in text, f"{needle!r} not in {stream}:\n{text[-2000:]}"
        assert "Traceback" not in run.stderr
    return verify


def _metal(run: Run, ws: Workspace) -> None:
    _ok("verdict: metal (1.00)")(run, ws)
    windows = [line.split() for line in run.stdout.splitlines() if line.strip().endswith(tuple("0123456789")) and "s " in line]
    assert len(windows) == 10 and all(w[2] == "metal" and 0.85 <= float(w[3]) <= 1.0 for w in windows), run.stdout


def _json_verdicts(run: Run, ws: Workspace) -> None:
    _ok()(run, ws)
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    verdicts = [r for r in rows if r["type"] == "verdict"]
    assert len(verdicts) == 3 and all(v["genre"] for v in verdicts)
    assert sum(r["type"] == "window" for r in rows) >= 30


def _rock_events(run: Run, ws: Workspace) -> None:
    import jsonschema

    from genrecast.daemon.events import load_schema

    _ok()(run, ws)
    events = [json.loads(line) for line in run.stdout.splitlines()]
    for event in events:
        jsonschema.validate(event, load_schema())
    assert [e["seq"] for e in events] == list(range(10)) and {e["source"] for e in events} == {"file-rock.00000"}


def _stdin_events(run: Run, ws: Workspace) -> None:
    _ok("stdin  @0.0s", "stdin  @27.0s")(run, ws)
    assert "end of input (31.8 s of audio)" in run.stderr
    assert "without any audio" not in run.stderr


def _devices(run: Run, ws: Workspace) -> None:
    assert run.returncode == 0 and run.stdout.strip() and "Traceback" not in run.stderr


def _tail_service_log(run: Run, ws: Workspace) -> None:
    folder = Path("/var/log/genrecast")
    if folder.is_dir():  # a service runs here: the view waits for or follows its log
        assert run.returncode == 0 and ("waiting for" in run.stdout or "following" in run.stdout), run.stdout
    else:
        assert run.returncode == 1
        assert run.stderr.strip() == (f"genrecast: error: cannot follow {folder}/genrecast-events.jsonl: the folder "
                                      f"{folder} does not exist (check the path, or the logfile sink's [logfile] path)")


def _plugin_env(ws: Workspace) -> dict[str, str]:
    return {"PYTHONPATH": str(ws.path("site"))}


def _installed(run: Run, ws: Workspace) -> None:
    _ok()(run, ws)
    assert list(ws.path("site").glob("genrecast_beep-0.1.0.dist-info")), list(ws.path("site").iterdir())


def _beep_listed(run: Run, ws: Workspace) -> None:
    _ok()(run, ws)
    rows = [line.split() for line in run.stdout.splitlines()]
    assert ["beep", "0.1.0", "genrecast-beep", "yes", "sink_event,", "sink_start"] in rows, run.stdout


BEEP_RUN = ".venv/bin/genrecast run --sink beep --source file:../shared/data/gtzan-sample/jazz/jazz.00016.wav"


def _beeps(run: Run, ws: Workspace) -> None:
    _ok("\a now playing: jazz on file-jazz.00016")(run, ws)
    # the README's plain-text form of the variable: one genre (it was taken as its letters, and nothing beeped)
    for genre, beeps in (("jazz", True), ("rock", False)):
        proc = subprocess.run(["bash", "-c", BEEP_RUN], cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, **_plugin_env(ws), "GENRECAST_BEEP_GENRES": genre})
        assert proc.returncode == 0 and ("now playing: jazz" in proc.stdout) == beeps, (genre, proc.stdout, proc.stderr[-2000:])


def _small_bundle(run: Run, ws: Workspace) -> None:
    _ok(f"bundle written to {ws.path('m')}")(run, ws)
    assert (ws.path("m") / "model.tflite").is_file()


def _evaluate_small(run: Run, ws: Workspace) -> None:
    provenance = json.loads((ws.path("m") / "bundle.json").read_text())["provenance"]
    trained = provenance["split_sizes"]["train_tracks"]
    _ok(f"train {trained} tracks", "(3 tracks)", "split track")(run, ws)


def _conditions_table(run: Run, ws: Workspace) -> None:
    _ok("(13 clips; seed 0)", "| condition | right of 13 |", str(ws.path("conditions") / "conditions.png"))(run, ws)
    for name in ("clean", "gain-24dB", "stereo", "mp3-128k-stereo-44.1k"):
        assert f"| {name} | " in run.stdout, name
    assert (ws.path("conditions") / "conditions.json").is_file()


def _table_bundle(run: Run, ws: Workspace) -> None:
    _ok("bundle written to", "CV 0.750 ± 0.035 over 10 folds of 963 tracks", "artist-filtered test 0.514")(run, ws)
    assert "fold 10/10" in run.stderr  # progress
    # bundle.json and report.md gain the music detector's entry and section in make_table_bundle.sh's next step
    for name in ("model.tflite", "model.keras", "metrics.json", "evaluation/model.tflite"):
        ours = hashlib.sha256((ws.path("table-model") / name).read_bytes()).hexdigest()
        shipped = hashlib.sha256((REPO / "daemon" / "table_bundle" / name).read_bytes()).hexdigest()
        assert ours == shipped, name


def _redacted_sources(run: Run, ws: Workspace) -> None:
    _ok("http://listener:********@radio.example/live.mp3", "(env GENRECAST_SOURCES)")(run, ws)
    assert "secret" not in run.stdout + run.stderr


def _config_show(run: Run, ws: Workspace) -> None:
    _ok("(file systemd/config.example.toml)", "mqtt.host")(run, ws)


def _jsonl(ws: Workspace, name: str) -> list[dict]:
    return [json.loads(line) for line in ws.path(name).read_text().splitlines()]


def _archive(count: int, name: str, skipped: int = 0) -> Callable[[Run, Workspace], None]:
    """Every one of ``count`` files once in ``name`` (a verdict each), and the summary line says so."""
    def verify(run: Run, ws: Workspace) -> None:
        _ok()(run, ws)
        verdicts = [r["file"] for r in _jsonl(ws, name) if r["type"] == "verdict"]
        assert len(verdicts) == len(set(verdicts)) == count, verdicts
        summary = run.stderr.strip().splitlines()[-1]
        done = f"genrecast: classified {count - skipped} file"
        assert summary.startswith(done) and (not skipped or f"{skipped} skipped, already in" in summary), summary
    return verify


def _plotted(run: Run, ws: Workspace) -> None:
    _ok()(run, ws)
    clip = os.path.abspath(REPO / "../shared/data/music-speech/speech/comedy1.flac")  # as plot_path: links kept
    png = ws.path("plots") / (str(clip).lstrip("/") + ".png")
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fleet_member(k: int, sources: set[str]) -> Callable[[Run, Workspace], None]:
    def verify(run: Run, ws: Workspace) -> None:
        _ok()(run, ws)
        assert f"shard {k}/2: listening to 2 of the 4 configured sources" in run.stderr, run.stderr[-2000:]
        from genrecast.daemon.events import GenreEvent

        events = [GenreEvent.from_json(line) for line in ws.path(f"member-{k}.jsonl").read_text().splitlines()]
        assert {e.source for e in events} == sources and len(events) == 20  # its 2 clips of 30 s, 10 windows each
    return verify


def _fleet_report(run: Run, ws: Workspace) -> None:
    _ok("40 events")(run, ws)
    rows = {line.split()[0] for line in run.stdout.splitlines()[1:5]}
    assert rows == {"blues", "classical", "jazz", "metal"}, run.stdout
    assert ws.path("fleet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


FLEET_SOURCES = ("--source jazz=file:../shared/data/gtzan-sample/jazz/jazz.00016.wav --source metal=file:../shared/data/gtzan-sample/metal/metal.00000.wav "
                 "--source blues=file:../shared/data/gtzan-sample/blues/blues.00000.wav --source classical=file:../shared/data/gtzan-sample/classical/classical.00000.wav")
FLEET = "A fleet: more sources than one daemon"
FLEET_IN_TMP = {"/tmp/member-": "{ws}/member-", "/tmp/fleet.png": "{ws}/fleet.png"}
SMALL_TRAIN = ".venv/bin/genrecast train ../shared/data/gtzan-sample --out /tmp/m --epochs 20"
CONDITIONS_EXAMPLE = (".venv/bin/genrecast evaluate daemon/default_bundle ../shared/data/gtzan-sample "
                      "--conditions gain-24dB,stereo,mp3-128k-stereo-44.1k --out /tmp/conditions")
PLUGIN = "Write a sink plugin (under 20 lines)"
ARCHIVES = "Archives: folders, lists and a Dask cluster"
IN_ARCHIVE_TMP = {"/tmp/archive.jsonl": "{ws}/archive.jsonl"}
OWN_SCHEDULER = ("starts a Dask scheduler and workers in the background on the fixed port 8786 and leaves them running; "
                 "tests/daemon/test_classify_archive.py runs classify --scheduler against a cluster of its own on a free port")
IN_MODEL_TMP = {"/tmp/m": "{ws}/m"}

CHECKS: dict[tuple[str, str], Check] = {
    ("Classify files", ".venv/bin/genrecast classify ../shared/data/gtzan-sample/metal/metal.00000.wav"): Check(_metal),
    ("Classify files", ".venv/bin/genrecast classify --json ../shared/data/music/bensound/*.mp3"): Check(_json_verdicts),
    (ARCHIVES, ".venv/bin/genrecast classify ../shared/data/gtzan-sample --workers 2 -o /tmp/archive.jsonl"):
        Check(_archive(19, "archive.jsonl"), replace=IN_ARCHIVE_TMP),
    (ARCHIVES, ".venv/bin/genrecast classify ../shared/data/gtzan-sample --workers 2 -o /tmp/archive.jsonl --resume"):
        Check(_archive(19, "archive.jsonl", skipped=19), replace=IN_ARCHIVE_TMP),
    (ARCHIVES, ".venv/bin/genrecast classify '../shared/data/music/**/*.mp3' -o /tmp/mp3.jsonl"):
        Check(_archive(len(list(DATA.glob("music/**/*.mp3"))), "mp3.jsonl"), replace={"/tmp/mp3.jsonl": "{ws}/mp3.jsonl"}),
    (ARCHIVES, "find ../shared/data/music-speech/speech -name '*.flac' | .venv/bin/genrecast classify --list - -o /tmp/speech.jsonl"):
        Check(_archive(len(list(DATA.glob("music-speech/speech/*.flac"))), "speech.jsonl"),
              replace={"/tmp/speech.jsonl": "{ws}/speech.jsonl"}),
    (ARCHIVES, ".venv/bin/genrecast classify --plot /tmp/plots ../shared/data/music-speech/speech/comedy1.flac"):
        Check(_plotted, replace={"/tmp/plots": "{ws}/plots"}),
    ("Listen", ".venv/bin/genrecast run --source file:../shared/data/gtzan-sample/rock/rock.00000.wav --json"): Check(_rock_events),
    ("Listen", ".venv/bin/genrecast devices"): Check(_devices),
    ("Listen", "ffmpeg -loglevel error -i ../shared/data/music/bensound/bensound-actionable.mp3 -f s16le -ac 1 -ar 22050 - "
               "| .venv/bin/genrecast run --source - --format s16le --rate 22050"): Check(_stdin_events),
    ("Sinks: where events go", ".venv/bin/genrecast plugins"): Check(_ok("stdout", "mqtt", "logfile", "(built-in)")),
    ("Watch live: `genrecast tail`", ".venv/bin/genrecast tail --file /var/log/genrecast/genrecast-events.jsonl"):
        Check(_tail_service_log, timeout=60, interrupt_when="events 0"),
    (PLUGIN, ".venv/bin/pip install ../genrecast-beep"): Check(
        _installed, replace={".venv/bin/pip install ../genrecast-beep":
                             ".venv/bin/pip install -q --no-deps --no-build-isolation --target {ws}/site {ws}/genrecast-beep"}),
    (PLUGIN, ".venv/bin/genrecast plugins"): Check(_beep_listed, env=_plugin_env),
    (PLUGIN, BEEP_RUN):
        Check(_beeps, env=_plugin_env),
    ("Train your own model", SMALL_TRAIN): Check(_small_bundle, replace=IN_MODEL_TMP, timeout=600),
    ("Accuracy under capture conditions", CONDITIONS_EXAMPLE):
        Check(_conditions_table, replace={"/tmp/conditions": "{ws}/conditions"}, timeout=1200),
    ("Train your own model", ".venv/bin/genrecast evaluate /tmp/m ../shared/data/gtzan-sample"):
        Check(_evaluate_small, replace=IN_MODEL_TMP),
    ("Train your own model", ".venv/bin/genrecast train --table ../shared/data/reference/features_30_sec.csv --exclude-dir "
                             "../shared/data/gtzan-sample --selection daemon/table_bundle/selection.json --shifts-from ../shared/data "
                             "--out /tmp/table-model"):
        Check(_table_bundle, replace={"/tmp/table-model": "{ws}/table-model"}, timeout=2400),
    ("Music or not", ".venv/bin/genrecast classify ../shared/data/music-speech/speech/comedy1.flac"):
        Check(_ok("verdict: not_music (1.00)")),
    ("Sources", ".venv/bin/genrecast devices"): Check(_devices),
    ("Sources", "GENRECAST_SOURCES='http://listener:secret@radio.example/live.mp3' .venv/bin/genrecast config show "
                "| grep '^sources'"): Check(_redacted_sources),
    ("Configuration", ".venv/bin/genrecast config show --config systemd/config.example.toml"): Check(_config_show),
    ("Configuration", ".venv/bin/genrecast config check --config systemd/config.example.toml"):
        Check(_ok("configuration OK (systemd/config.example.toml)")),
    (FLEET, f"GENRECAST_LOGFILE_PATH=/tmp/member-1.jsonl .venv/bin/genrecast run --shard 1/2 --sink logfile {FLEET_SOURCES}"):
        Check(_fleet_member(1, {"jazz", "metal"}), replace=FLEET_IN_TMP),
    (FLEET, f"GENRECAST_LOGFILE_PATH=/tmp/member-2.jsonl .venv/bin/genrecast run --shard 2/2 --sink logfile {FLEET_SOURCES}"):
        Check(_fleet_member(2, {"blues", "classical"}), replace=FLEET_IN_TMP),
    (FLEET, ".venv/bin/genrecast report /tmp/member-1.jsonl /tmp/member-2.jsonl --plot /tmp/fleet.png"):
        Check(_fleet_report, replace=FLEET_IN_TMP),
    ("Kubernetes", ".venv/bin/kubernetes-validate --strict deploy/kubernetes/genrecast.yaml"):
        Check(_ok("passed for resource statefulset/genrecast")),
}

MIC_NO_END = "listens to the default microphone and never ends (tests/daemon/test_run.py runs `run --source mic` on a PulseAudio virtual microphone)"
OWN_GTZAN = "needs your own copy of GTZAN (1.2 GB, not here); the same commands on the clips beside the repository are checked"
BROKER_1883 = ("follows the broker on the fixed port 1883 until Ctrl-C; tests/plugins/test_tail.py runs tail against "
               "a Mosquitto of its own on a free port")
DETECTOR_TRAINING = ("minutes of detector training on every recording of ../shared/data (scripts/make_table_bundle.sh "
                     "runs the same step); tests/trainer/test_detector_training.py trains it on a small real data folder")
SYSTEMD_FLEET = ("needs a booted systemd with genrecast installed as a service; tests/test_systemd_real.py starts "
                 "genrecast@1-of-2 and genrecast@2-of-2 in a booted Debian 12 and checks each member's share")
BENCHMARK = "minutes of timing runs that write benchmarks/results.json; tests/test_benchmarks_smoke.py runs the benchmarks"

SKIPS: dict[tuple[str, str], str] = {
    ("genrecast", "bash scripts/setup.sh && .venv/bin/genrecast run"):
        "setup.sh made the .venv these checks use; then the default microphone, no end (" + MIC_NO_END + ")",
    ("genrecast", "bash scripts/test.sh"): "runs the whole suite, this test included",
    ("Install without the trainer", "pip install ."):
        "installs into whichever environment's pip is first on PATH; tests/test_packaging.py installs the project "
        "with pip into a --target, and tests/trainer/test_train_cli.py runs train without tensorflow",
    ("Install without the trainer", "pip install '.[train]'"): "what scripts/setup.sh installed into .venv (with [test])",
    ("Listen", ".venv/bin/genrecast run"): MIC_NO_END,
    ("Sinks: where events go", ".venv/bin/genrecast run --sink stdout --sink mqtt"):
        MIC_NO_END + "; tests/plugins/test_daemon_mqtt.py runs the daemon with the MQTT sink and a real broker",
    ("Watch live: `genrecast tail`", ".venv/bin/genrecast tail --broker localhost:1883"): BROKER_1883,
    ("Watch live: `genrecast tail`", ".venv/bin/genrecast tail --json | jq .genre"): BROKER_1883,
    ("Train your own model", ".venv/bin/genrecast train ~/gtzan --out ~/models/gtzan-cnn"): OWN_GTZAN,
    ("Train your own model", ".venv/bin/genrecast evaluate ~/models/gtzan-cnn ~/gtzan"): OWN_GTZAN,
    ("Train your own model", ".venv/bin/genrecast run --bundle ~/models/gtzan-cnn"): OWN_GTZAN + "; and " + MIC_NO_END,
    (ARCHIVES, ".venv/bin/dask scheduler --host 127.0.0.1 --port 8786 &"): OWN_SCHEDULER,
    (ARCHIVES, ".venv/bin/dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1 &"): OWN_SCHEDULER,
    (ARCHIVES, ".venv/bin/genrecast classify ../shared/data/gtzan-sample --scheduler tcp://127.0.0.1:8786 -o /tmp/on-a-cluster.jsonl"):
        OWN_SCHEDULER,
    ("The window model under capture conditions", "scripts/window_model_conditions.sh ../shared/data /tmp/genrecast-winmodel"):
        "about 25 min of training and evaluation on 2 cores; tests/trainer/test_augment.py trains with --augment on a "
        "small real data folder and checks that the copies are training windows only",
    ("Benchmarks", ".venv/bin/python -m benchmarks"): BENCHMARK,
    ("Benchmarks", ".venv/bin/python -m benchmarks --quick"): BENCHMARK,
    ("Benchmarks", ".venv/bin/python -m benchmarks --only window,startup --repeats 5"): BENCHMARK,
    ("Benchmarks", ".venv/bin/python -m benchmarks --only longfile --repeats 1"): BENCHMARK,
    ("Music or not", "cp -r daemon/default_bundle /tmp/with-detector"): DETECTOR_TRAINING,
    ("Music or not", ".venv/bin/genrecast train --detector-data ../shared/data --out /tmp/with-detector"): DETECTOR_TRAINING,
    (FLEET, ".venv/bin/genrecast tail --broker localhost:1883 --daemon-id genrecast-0"): BROKER_1883,
    ("Several members on one host: `genrecast@K-of-N`", "systemctl disable --now genrecast"): SYSTEMD_FLEET,
    ("Several members on one host: `genrecast@K-of-N`", "systemctl enable --now genrecast@1-of-2 genrecast@2-of-2"): SYSTEMD_FLEET,
    ("Several members on one host: `genrecast@K-of-N`",
     ".venv/bin/genrecast report /var/log/genrecast/genrecast-events-*.jsonl --since 24h"):
        SYSTEMD_FLEET + "; the report of logs is checked on the fleet example above and by tests/daemon/test_report.py",
    ("Kubernetes", "docker build -f deploy/Dockerfile -t genrecast:0.1.0 ."): "no Docker on the test machines: the image build is not tested",
    ("Kubernetes", "kubectl apply -f deploy/kubernetes/genrecast.yaml"):
        "no Kubernetes cluster here; tests/test_deploy.py validates the manifest offline and checks it against the daemon",
}

#: Checked only with GENRECAST_README_LONG=1 (why: the value).
LONG_CHECKS = {
    ("Accuracy under capture conditions", CONDITIONS_EXAMPLE):
        "13 clips under 4 conditions, about 1.5 minutes on 2 cores; tests/trainer/test_evaluate_conditions.py runs the same "
        "command on 2 of the clips (its table, files, plot size and clean verdicts equal to classify's)",
    ("Train your own model", ".venv/bin/genrecast train --table ../shared/data/reference/features_30_sec.csv --exclude-dir "
                             "../shared/data/gtzan-sample --selection daemon/table_bundle/selection.json --shifts-from ../shared/data "
                             "--out /tmp/table-model"):
        "about 8 minutes of training on 2 cores (and 15 to measure the shifts, once); GENRECAST_README_LONG=1 runs it and compares the bundle byte for byte "
        "with daemon/table_bundle's genre model (the shift-augmented model's same training, rerun 2026-11-30 with the shifts cached: model.tflite, model.keras, evaluation/model.tflite and metrics.json equal). Its progress lines and summary are tested on a small "
        "table by tests/trainer/test_train_cli.py",
}


# -- running them ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    if not (DATA / "gtzan-sample").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the README's data {DATA} is missing")
        pytest.skip(f"the README's commands read {DATA}, which is not here")
    ws = Workspace(tmp_path_factory.mktemp("readme"))
    package = ws.path("genrecast-beep")
    package.mkdir()
    (package / "genrecast_beep.py").write_text(block_after(PLUGIN, "python"))
    (package / "pyproject.toml").write_text(block_after(PLUGIN, "toml"))
    return ws


def run_command(section: str, command: str, ws: Workspace) -> Run:
    """Run a README command as a user would (bash, repository root), once per session."""
    check = CHECKS[section, key(command)]
    if command in ws.done:
        return ws.done[command]
    if (section, key(command)) == (PLUGIN, ".venv/bin/genrecast plugins") or "--sink beep" in command:
        run_command(PLUGIN, ".venv/bin/pip install ../genrecast-beep", ws)
    if "--resume" in command and "/tmp/archive.jsonl" in command:
        first = next(c for s, c in SH_COMMANDS if s == ARCHIVES and key(c) == key(command).replace(" --resume", ""))
        run_command(ARCHIVES, first, ws)  # the run it goes on with
    if "evaluate /tmp/m" in command:
        run_command("Train your own model", SMALL_TRAIN, ws)
    if section == FLEET and "genrecast report" in command:
        for member in (c for s, c in SH_COMMANDS if s == FLEET and "--shard" in c):
            run_command(FLEET, member, ws)
    line = command
    for old, new in check.replace.items():
        line = line.replace(old, new.format(ws=ws.root))
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba")),
           **(check.env(ws) if check.env else {})}
    proc = subprocess.Popen(["bash", "-c", line], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    if check.interrupt_when is None:
        try:
            out, err = proc.communicate(timeout=check.timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    else:
        out, err = _interrupt_once(proc, check.interrupt_when, check.timeout)
    ws.done[command] = Run(proc.returncode, out, err)
    return ws.done[command]


def _interrupt_once(proc: subprocess.Popen, marker: str, timeout: float) -> tuple[str, str]:
    """Collect output until the command ends or ``marker`` appears (then SIGINT and collect the rest)."""
    import threading
    import time

    chunks = {"out": [], "err": []}
    readers = [threading.Thread(target=lambda name, pipe: [chunks[name].append(line) for line in pipe], args=args, daemon=True)
               for args in (("out", proc.stdout), ("err", proc.stderr))]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not any(marker in "".join(c) for c in chunks.values()):
            if time.monotonic() > deadline:
                raise AssertionError(f"neither an end nor {marker!r} within {timeout} s: {''.join(chunks['err'])[-1000:]}")
            readers[0].join(0.1)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for reader in readers:
        reader.join(10)
    return "".join(chunks["out"]), "".join(chunks["err"])


@pytest.mark.slow
@pytest.mark.parametrize("section, command", SH_COMMANDS, ids=[f"{s}: {key(c)[:60]}" for s, c in SH_COMMANDS])
def test_readme_command(section: str, command: str, workspace: Workspace) -> None:
    name = (section, key(command))
    if section == SERVICE_SECTION:
        pytest.skip("tested by tests/test_systemd_real.py")
    if name in SKIPS:
        pytest.skip(SKIPS[name])
    if name in LONG_CHECKS and not LONG:
        pytest.skip(LONG_CHECKS[name])
    assert name in CHECKS, f"README command without a check or a reasoned skip in tests/test_readme.py: {name}"
    CHECKS[name].verify(run_command(section, command, workspace), workspace)


def test_every_check_and_skip_names_a_readme_command() -> None:
    present = {(s, key(c)) for s, c in SH_COMMANDS}
    stale = (set(CHECKS) | set(SKIPS) | set(LONG_CHECKS)) - present
    assert not stale, f"entries for commands the README no longer has: {sorted(stale)}"
    assert not set(CHECKS) & set(SKIPS)


@pytest.mark.slow
def test_readme_event_is_a_real_event_of_the_default_model(workspace: Workspace) -> None:
    """The example event is the window the README says it is, with the default model (utc aside)."""
    text = [b for b in README_BLOCKS if b.section == "The event" and b.lang == "json"][0].text
    shown = json.loads(text)
    readme = README.read_text()
    prose = readme[readme.index("### The event"):readme.index("```json")].replace("\n", " ")
    command = re.search(r"`(\.venv/bin/genrecast run --source file:\S+ --json)`", prose).group(1)
    proc = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = {e["seq"]: e for e in map(json.loads, proc.stdout.splitlines())}
    real = events[shown["seq"]]
    assert {k: v for k, v in real.items() if k != "utc"} == {k: v for k, v in shown.items() if k != "utc"}
    from genrecast.daemon.bundle import default_bundle_path, load_bundle

    assert shown["model_id"] == load_bundle(default_bundle_path()).model_id
