"""`--help` teaches: metavars instead of type placeholders, every default of `run` shown and taken
from the configuration's own defaults, K and M explained; `genrecast --version`."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from importlib.metadata import version

import pytest

from helpers import EXE

from genrecast.daemon.config import KEYS

COMMANDS = ["run", "classify", "train", "evaluate", "tail", "report", "plugins", "devices", "config show", "config check",
            "service install"]
PLACEHOLDERS = re.compile(r"<list\[|<float|<int>|<str>|<path>|range>|\[x>=|<bool>")


@functools.lru_cache(maxsize=None)
def _help(command: str, columns: int = 250) -> str:
    """``genrecast COMMAND --help`` at ``columns`` wide, run once per session (several tests read the same text)."""
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    proc = subprocess.run([EXE, *command.split(), "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_version() -> None:
    proc = subprocess.run([EXE, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"genrecast {version('genrecast')}"


@pytest.mark.parametrize("command", COMMANDS)
def test_options_show_metavars_not_type_placeholders(command: str) -> None:
    rows = [line for line in _help(command).splitlines() if re.search(r"│\s+[-*A-Z]", line)]
    assert rows, "no option rows found"
    assert [row for row in rows if PLACEHOLDERS.search(row)] == []


def test_run_help_shows_every_default_and_explains_k_and_m() -> None:
    text = " ".join(" ".join(line.strip("│ ").split()) for line in _help("run").splitlines())
    for key, metavar in [("smoothing.silence_dbfs", "DBFS"), ("smoothing.min_confidence", "P"), ("smoothing.windows", "K"),
                         ("smoothing.hold_windows", "M"), ("input.stall_seconds", "SECONDS"), ("input.rate", "HZ"),
                         ("input.format", "FORMAT"), ("input.channels", "N")]:
        default = KEYS[key].default
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert f"[default: {shown}]" in text, key
        assert f" {metavar} " in text, metavar
    assert "[default: mic]" in text and "[default: stdout]" in text and "[default: the window length, 3]" in text
    assert "over the last K windows" in text and "lead for M windows in a row" in text


@pytest.mark.parametrize("command, hop", [("run", "0.05"), ("classify", "inf"), ("classify", "nan"), ("run", "61")])
def test_a_hop_out_of_range_is_one_line(command: str, hop: str) -> None:
    proc = subprocess.run([EXE, command, "--hop-seconds", hop, "x.wav"][: 4 if command == "run" else 5],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"genrecast: error: --hop-seconds must be at least 0.1 and at most 60 (got {float(hop):g})"


def test_a_config_hop_below_the_minimum_is_refused(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[windowing]\nhop_seconds = 0.001\n")
    proc = subprocess.run([EXE, "config", "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "windowing.hop_seconds" in proc.stderr and "must be 0 or between 0.1 and 60" in proc.stderr


@pytest.mark.parametrize("command, extra", [("train", "genrecast[train]"), ("report", "genrecast[plot]"),
                                            ("classify", "genrecast[cluster]"), ("classify", "genrecast[plot]")])
def test_help_keeps_the_extra_in_brackets(command: str, extra: str) -> None:
    """Rich reads ``[plot]`` as a style tag and drops it unless escaped: the pip extra must show."""
    assert extra in _help(command)


@pytest.mark.parametrize("command", ["run", "classify", "report", "train", "evaluate"])
def test_examples_fit_an_80_column_terminal(command: str) -> None:
    """Each example line (a comment, a command or its continuation) stays whole on its own line."""
    text = _help(command, columns=80)
    lines = text[text.index("Examples:"):].splitlines()[1:]
    block = lines[:next(i for i, line in enumerate(lines) if not line.strip())]
    assert len(block) >= 2, text
    starts = ("# ", "genrecast ", "ffmpeg ", "--", "../")
    assert [line for line in block if not line.strip().startswith(starts)] == [], text
    assert all(len(line.rstrip()) <= 80 for line in block)


@pytest.mark.parametrize("args", [["--help"], ["config", "show"], ["report", "--help"]])
def test_output_to_a_full_disk_is_one_line(args: list[str]) -> None:
    """Standard output that cannot be written (a full disk; /dev/full) ends the command with one
    line and exit 1, as classify's does; it was a traceback."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([EXE, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["genrecast: error: cannot write to the standard output: No space left "
                                                "on device; free space where it goes, or send it elsewhere"], proc.stderr


def test_a_legacy_locale_terminal_gets_escapes_not_errors(data_dir) -> None:
    """On an ASCII stdout a source named café failed every event in the stdout sink ("2 events were
    never delivered", a traceback in the log)."""
    clip = data_dir / "gtzan-sample" / "jazz" / "jazz.00016.wav"
    proc = subprocess.run([EXE, "run", "--source", f"café=file:{clip}"], capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stdout.decode("ascii").splitlines()
    assert len(lines) == 10 and all(line.split()[1] == "caf\\xe9" for line in lines), lines
    assert b"never delivered" not in proc.stderr
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as folder:  # classify writes file names: café.wav, and a Latin-1 byte name
        shutil.copy(clip, os.path.join(folder, "café.wav"))
        shutil.copy(clip, os.path.join(os.fsencode(folder), b"caf\xe9-latin1.wav"))
        proc = subprocess.run([EXE, "classify", folder], capture_output=True, timeout=300,
                              env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr[-2000:]
    names = {line.rsplit(b"/", 1)[1] for line in proc.stdout.splitlines() if line.startswith(os.fsencode(folder))}
    assert names == {b"caf\\xe9.wav", b"caf\xe9-latin1.wav"}, names  # the escape, and the name's own byte back
