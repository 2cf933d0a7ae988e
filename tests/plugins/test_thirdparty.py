"""A third-party sink installed with pip is found through the entry-point group and gets events."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genrecast.daemon.events import GenreEvent
from genrecast.plugins.dispatcher import Dispatcher
from genrecast.plugins.manager import list_plugins, make_plugin_manager
from genrecast.plugins.sinks import build_sinks
from helpers import run_cli

PACKAGE = Path(__file__).parent / "thirdparty_sink"
DIST = "genrecast-testrecorder"


@pytest.fixture(scope="session")
def thirdparty_installed():
    """pip-installs tests/plugins/thirdparty_sink into this environment; uninstalls it afterwards."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    proc = subprocess.run(pip + ["install", "--no-deps", "--no-build-isolation", str(PACKAGE)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    importlib.invalidate_caches()
    try:
        yield "testrecorder"
    finally:
        subprocess.run(pip + ["uninstall", "-y", DIST], capture_output=True, timeout=120)
        for leftover in [PACKAGE / "build", *PACKAGE.glob("*.egg-info")]:
            shutil.rmtree(leftover, ignore_errors=True)
        sys.modules.pop("genrecast_testrecorder", None)
        importlib.invalidate_caches()


def test_thirdparty_sink_is_loaded_and_receives_events(thirdparty_installed, tmp_path, event_factory, monkeypatch):
    monkeypatch.delenv("GENRECAST_PLUGINS", raising=False)
    pm = make_plugin_manager()
    info = {i.name: i for i in list_plugins(pm)}[thirdparty_installed]
    assert not info.builtin and info.sink and info.version == "0.0.1" and info.distribution == DIST
    out = tmp_path / "recorded.jsonl"
    dispatcher = Dispatcher(build_sinks([thirdparty_installed, "stdout"], {thirdparty_installed: {"path": str(out)}},
                                        ["rock"], pm=pm))
    dispatcher.start()
    events = [event_factory(seq) for seq in range(5)]
    for event in events:
        dispatcher.publish(event)
    dispatcher.stop(10.0)
    assert [GenreEvent.from_json(line) for line in out.read_text().splitlines()] == events


def test_genrecast_plugins_env_limits_loading(thirdparty_installed, monkeypatch):
    monkeypatch.setenv("GENRECAST_PLUGINS", "something-else")
    assert not make_plugin_manager().has_plugin(thirdparty_installed)
    monkeypatch.setenv("GENRECAST_PLUGINS", DIST)  # a distribution name works as well as the plugin name
    assert make_plugin_manager().has_plugin(thirdparty_installed)
    proc = run_cli("plugins", "--json", timeout=60, env={**os.environ, "GENRECAST_PLUGINS": thirdparty_installed})
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows[thirdparty_installed]["hooks"] == ["genrecast_sink_event", "genrecast_sink_start"]
    assert rows[thirdparty_installed]["version"] == "0.0.1" and "stdout" in rows


@pytest.mark.slow
def test_daemon_delivers_to_the_thirdparty_sink(thirdparty_installed, trained_bundle, gtzan_sample, tmp_path, monkeypatch):
    """`genrecast run --sink testrecorder`, its settings from the config file's own section."""
    monkeypatch.delenv("GENRECAST_PLUGINS", raising=False)
    out = tmp_path / "recorded.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(f'sinks = ["testrecorder"]\n[testrecorder]\npath = "{out}"\n')
    clip = gtzan_sample / "pop" / "pop.00000.wav"
    proc = run_cli("run", "--config", str(config), "--bundle", str(trained_bundle), "--source", f"file:{clip}", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [GenreEvent.from_json(line) for line in out.read_text().splitlines()]
    assert [e.seq for e in events] == list(range(10)) and {e.source for e in events} == {"file-pop.00000"}
