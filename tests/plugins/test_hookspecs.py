"""Hook specifications, the plugin manager and build_sinks."""

from __future__ import annotations

import inspect
import json
import logging

import pluggy
import pytest

from genrecast.plugins import SinkConfigError, hookimpl, hookspecs
from genrecast.plugins.manager import BUILTIN_PLUGINS, _check_pending, allowed_plugins, list_plugins, make_plugin_manager
from genrecast.plugins.sinks import build_sinks
from helpers import run_cli


def _specs():
    return [(name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "genrecast_spec")]


def test_every_hookspec_is_prefixed_typed_and_documented():
    specs = _specs()
    assert {"genrecast_sink_start", "genrecast_sink_event", "genrecast_sink_stop"} <= {n for n, _ in specs}
    for name, fn in specs:
        assert name.startswith("genrecast_"), name
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, f"{name} needs a docstring"
        signature = inspect.signature(fn)
        assert signature.return_annotation is not inspect.Signature.empty, name
        for param in signature.parameters.values():
            assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}) needs a type"


def test_hookimpl_is_the_genrecast_marker():
    assert isinstance(hookimpl, pluggy.HookimplMarker)
    assert hookimpl.project_name == "genrecast"


def test_builtins_are_registered_like_plugins():
    pm = make_plugin_manager(load_entrypoints=False)
    infos = {i.name: i for i in list_plugins(pm)}
    assert set(BUILTIN_PLUGINS) <= set(infos)
    for name in BUILTIN_PLUGINS:
        assert infos[name].builtin and infos[name].sink
        assert "genrecast_sink_event" in infos[name].hooks
    assert "genrecast_sink_reopen" in infos["logfile"].hooks


def test_plugin_with_unknown_hook_is_left_out(caplog):
    pm = make_plugin_manager(load_entrypoints=False)

    class Bogus:
        @hookimpl
        def genrecast_no_such_hook(self):
            pass

    pm.register(Bogus(), name="bogus")
    with caplog.at_level(logging.ERROR):
        _check_pending(pm)
    assert not pm.has_plugin("bogus")
    assert "bogus" in caplog.text


def test_allowed_plugins_from_env():
    assert allowed_plugins({}) is None
    assert allowed_plugins({"GENRECAST_PLUGINS": " "}) is None
    assert allowed_plugins({"GENRECAST_PLUGINS": "a, b,"}) == {"a", "b"}


def test_build_sinks_errors_name_the_problem():
    with pytest.raises(SinkConfigError, match="unknown sink 'nope'.*stdout"):
        build_sinks(["nope"], {}, ["rock"])
    with pytest.raises(SinkConfigError, match="twice"):
        build_sinks(["stdout", "stdout"], {}, ["rock"])
    sinks = build_sinks(["stdout", "logfile"], {"logfile": {"path": "x"}}, ["rock"])
    assert [s.name for s in sinks] == ["stdout", "logfile"]
    with pytest.raises(SinkConfigError, match=r"\[stdout\] unknown setting 'jsn' \(did you mean 'json'\?\)"):
        build_sinks(["stdout"], {"stdout": {"jsn": True}}, ["rock"])[0].start()
    with pytest.raises(SinkConfigError, match=r"\[mqtt\] port must be int"):
        build_sinks(["mqtt"], {"mqtt": {"port": "1883"}}, ["rock"])[0].start()


def test_plugins_command_lists_builtins():
    proc = run_cli("plugins", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert {"stdout", "mqtt", "logfile"} <= set(rows)
    assert rows["mqtt"]["version"] and "genrecast_sink_event" in rows["mqtt"]["hooks"]
    table = run_cli("plugins", timeout=60)
    assert table.returncode == 0 and "logfile" in table.stdout and "sink_event" in table.stdout
