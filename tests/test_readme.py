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
    _ok("verdict: metal (0.99)")(run, ws)
    windows = [line.split() for line in run.stdout.splitlines() if line.strip().endswith(tuple("0123456789")) and "s " in line]
    assert len(windows) == 10 and all(w[2] == "metal" and 0.95 <= float(w[3]) <= 1.0 for w in windows), run.stdout


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


def _beeps(run: Run, ws: Workspace) -> None:
    _ok("\a now playing: jazz on file-jazz.00016")(run, ws)


def _small_bundle(run: Run, ws: Workspace) -> None:
    _ok(f"bundle written to {ws.path('m')}")(run, ws)
    assert (ws.path("m") / "model.tflite").is_file()


def _evaluate_small(run: Run, ws: Workspace) -> None:
    provenance = json.loads((ws.path("m") / "bundle.json").read_text())["provenance"]
    trained = provenance["split_sizes"]["train_tracks"]
    _ok(f"train {trained} tracks", "(3 tracks)", "split track")(run, ws)


def _table_bundle(run: Run, ws: Workspace) -> None:
    _ok("bundle written to", "CV 0.722 ± 0.034 over 10 folds of 963 tracks", "artist-filtered test 0.541")(run, ws)
    assert "fold 10/10" in run.stderr  # progress
    for name in ("model.tflite", "model.keras", "bundle.json", "metrics.json", "report.md", "evaluation/model.tflite"):
        ours = hashlib.sha256((ws.path("table-model") / name).read_bytes()).hexdigest()
        shipped = hashlib.sha256((REPO / "daemon" / "default_bundle" / name).read_bytes()).hexdigest()
        assert ours == shipped, name


def _redacted_sources(run: Run, ws: Workspace) -> None:
    _ok("http://listener:********@radio.example/live.mp3", "(env GENRECAST_SOURCES)")(run, ws)
    assert "secret" not in run.stdout + run.stderr


def _config_show(run: Run, ws: Workspace) -> None:
    _ok("(file systemd/config.example.toml)", "mqtt.host")(run, ws)


SMALL_TRAIN = ".venv/bin/genrecast train ../shared/data/gtzan-sample --out /tmp/m --epochs 20"
PLUGIN = "Write a sink plugin (under 20 lines)"
IN_MODEL_TMP = {"/tmp/m": "{ws}/m"}

CHECKS: dict[tuple[str, str], Check] = {
    ("Classify files", ".venv/bin/genrecast classify ../shared/data/gtzan-sample/metal/metal.00000.wav"): Check(_metal),
    ("Classify files", ".venv/bin/genrecast classify --json ../shared/data/music/bensound/*.mp3"): Check(_json_verdicts),
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
    (PLUGIN, ".venv/bin/genrecast run --sink beep --source file:../shared/data/gtzan-sample/jazz/jazz.00016.wav"):
        Check(_beeps, env=_plugin_env),
    ("Train your own model", SMALL_TRAIN): Check(_small_bundle, replace=IN_MODEL_TMP, timeout=600),
    ("Train your own model", ".venv/bin/genrecast evaluate /tmp/m ../shared/data/gtzan-sample"):
        Check(_evaluate_small, replace=IN_MODEL_TMP),
    ("Train your own model", ".venv/bin/genrecast train --table ../shared/data/reference/features_30_sec.csv --exclude-dir "
                             "../shared/data/gtzan-sample --selection daemon/default_bundle/selection.json --shifts-from ../shared/data "
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
}

MIC_NO_END = "listens to the default microphone and never ends (tests/daemon/test_run.py runs `run --source mic` on a PulseAudio virtual microphone)"
OWN_GTZAN = "needs your own copy of GTZAN (1.2 GB, not here); the same commands on the clips beside the repository are checked"
BROKER_1883 = ("follows the broker on the fixed port 1883 until Ctrl-C; tests/plugins/test_tail.py runs tail against "
               "a Mosquitto of its own on a free port")
DETECTOR_TRAINING = ("minutes of detector training on every recording of ../shared/data (scripts/make_default_bundle.sh "
                     "runs the same step); tests/trainer/test_detector_training.py trains it on a small real data folder")
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
    ("Benchmarks", ".venv/bin/python -m benchmarks"): BENCHMARK,
    ("Benchmarks", ".venv/bin/python -m benchmarks --quick"): BENCHMARK,
    ("Benchmarks", ".venv/bin/python -m benchmarks --only window,startup --repeats 5"): BENCHMARK,
    ("Benchmarks", ".venv/bin/python -m benchmarks --only longfile --repeats 1"): BENCHMARK,
    ("Music or not", "cp -r daemon/default_bundle /tmp/with-detector"): DETECTOR_TRAINING,
    ("Music or not", ".venv/bin/genrecast train --detector-data ../shared/data --out /tmp/with-detector"): DETECTOR_TRAINING,
}

#: Checked only with GENRECAST_README_LONG=1 (why: the value).
LONG_CHECKS = {
    ("Train your own model", ".venv/bin/genrecast train --table ../shared/data/reference/features_30_sec.csv --exclude-dir "
                             "../shared/data/gtzan-sample --selection daemon/default_bundle/selection.json --shifts-from ../shared/data "
                             "--out /tmp/table-model"):
        "about 8 minutes of training on 2 cores (and 15 to measure the shifts, once); GENRECAST_README_LONG=1 runs it and compares the bundle byte for byte "
        "with daemon/default_bundle's genre model (the shift-augmented model's same training, rerun 2026-11-30 with the shifts cached: model.tflite, model.keras, evaluation/model.tflite and metrics.json equal). Its progress lines and summary are tested on a small "
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
    if "evaluate /tmp/m" in command:
        run_command("Train your own model", SMALL_TRAIN, ws)
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

    assert shown["model_id"] == load_bundle(default_bundle_path()).model_id and shown["context_seconds"] is not None
