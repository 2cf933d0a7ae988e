"""The distribution: one import root, no tensorflow in the daemon, no clash with python-daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, **kwargs)


def test_daemon_import_does_not_import_tensorflow() -> None:
    code = (
        "import sys, genrecast.daemon, genrecast.daemon.cli, genrecast.daemon.pipeline, genrecast.daemon.classifier, "
        "genrecast.daemon.bundle, genrecast.daemon.features, genrecast.daemon.cli_daemon; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_import_roots_are_under_genrecast() -> None:
    proc = _python("import genrecast.daemon, genrecast.trainer, genrecast.plugins; print(genrecast.daemon.__name__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "genrecast.daemon"


@pytest.mark.slow
def test_wheel_install_beside_python_daemon(tmp_path: Path) -> None:
    """`pip install .` gives the genrecast.* packages and the console script,
    and python-daemon's top-level `daemon` module installs beside it without a clash."""
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    proc = subprocess.run([*pip, str(REPO), "python-daemon", "lockfile"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (target / "bin" / "genrecast").exists()
    assert (target / "genrecast" / "daemon" / "sources" / "stream.py").exists()  # the sources subpackage
    shipped = target / "genrecast" / "daemon"
    for data in ("default_bundle/model.tflite", "default_bundle/bundle.json", "default_bundle/detector.tflite",
                 "table_bundle/model.tflite", "table_bundle/evaluation/bundle.json", "schema/genre-event.schema.json"):
        assert (shipped / data).is_file(), data  # the data folders ship
    code = (
        "import daemon, daemon.pidfile, genrecast.daemon, genrecast.daemon.cli; "
        "print(daemon.__file__); print(genrecast.daemon.__file__)"
    )
    proc = _python(code, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    python_daemon, ours = proc.stdout.split()
    assert python_daemon.startswith(str(target / "daemon"))
    assert ours.startswith(str(target / "genrecast" / "daemon"))
    help_proc = subprocess.run(
        [sys.executable, str(target / "bin" / "genrecast"), "--help"],
        capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
    )
    assert help_proc.returncode == 0, help_proc.stderr
    assert "classify" in help_proc.stdout and "train" in help_proc.stdout
