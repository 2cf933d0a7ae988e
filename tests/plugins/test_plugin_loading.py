"""Which plugin loads, and what a user is told when one does not: distributions installed for
real on a path (a ``*.dist-info`` with ``entry_points.txt``, as ``pip install --target`` leaves
them), found by ``importlib.metadata`` like any other."""

from __future__ import annotations

import importlib
import json
import os
import uuid
from pathlib import Path

import pytest

from genrecast.plugins import SinkConfigError
from genrecast.plugins.manager import list_plugins, make_plugin_manager
from genrecast.plugins.sinks import build_sinks
from helpers import run_cli

SINK_CODE = """from genrecast.plugins import hookimpl
WHO = {who!r}

@hookimpl
def genrecast_sink_event(event):
    pass
"""


def install(root: Path, dist: str, entry: str, code: str) -> str:
    """Install distribution ``dist`` (version 0.1.0) into ``root`` with one ``genrecast`` entry
    point ``entry`` → a new module holding ``code``; returns the module's name."""
    module = f"gc_plugin_{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text(code)
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[genrecast]\n{entry} = {module}\n")
    return module


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path (and PYTHONPATH, for the command) to install distributions into."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv("GENRECAST_PLUGINS", raising=False)
    importlib.invalidate_caches()
    yield tmp_path
    importlib.invalidate_caches()


def test_genrecast_plugins_picks_the_named_distribution_of_two_with_one_entry_name(site, monkeypatch):
    first = install(site, "gc-beep-one", "beep", SINK_CODE.format(who="one"))
    second = install(site, "gc-beep-two", "beep", SINK_CODE.format(who="two"))
    for dist, module in (("gc-beep-one", first), ("gc-beep-two", second)):
        monkeypatch.setenv("GENRECAST_PLUGINS", dist)
        pm = make_plugin_manager()
        assert pm.get_plugin("beep").__name__ == module
        assert {i.name: i.distribution for i in list_plugins(pm)}["beep"] == dist
    monkeypatch.delenv("GENRECAST_PLUGINS")
    pm = make_plugin_manager()  # both allowed: one wins, the other is named with who holds the name
    loser = next(iter(pm.failed))
    assert loser in ("beep (gc-beep-one)", "beep (gc-beep-two)")
    assert pm.failed[loser] == f"the name 'beep' is taken by {list_plugins(pm)[-1].distribution}"


def test_an_installed_plugin_that_fails_to_load_is_named_with_its_reason(site):
    install(site, "gc-broken", "broken", "raise ImportError('needs the requests package')\n")
    pm = make_plugin_manager()
    with pytest.raises(SinkConfigError, match=r"sink 'broken' is installed but did not load \(gc-broken failed to load: "
                                              r"ImportError: needs the requests package\)"):
        build_sinks(["broken"], {}, ["rock"], pm=pm)
    proc = run_cli("plugins", "--json", timeout=60, env=os.environ.copy())
    assert proc.returncode == 1, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["broken"]["loaded"] is False and "ImportError: needs the requests package" in rows["broken"]["error"]
    assert rows["stdout"]["loaded"] is True
    assert "plugin broken from gc-broken failed to load: ImportError: needs the requests package" in proc.stderr
    table = run_cli("plugins", timeout=60, env=os.environ.copy())  # the table lists it too (it was on stderr alone)
    assert table.returncode == 1
    row = next(line for line in table.stdout.splitlines() if line.startswith("broken "))
    assert row.split()[1:4] == ["-", "-", "-"] and "did not load: gc-broken failed to load: ImportError" in row


def test_a_plugin_whose_hook_takes_a_wrong_argument_is_one_row_with_the_whole_reason(site):
    """pluggy's validation error is three lines: the table showed its first line in the row and
    the reason (the argument) on lines of their own, outside the table."""
    install(site, "gc-argname", "argname", "from genrecast.plugins import hookimpl\n\n@hookimpl\n"
                                           "def genrecast_sink_event(evt):\n    pass\n")
    table = run_cli("plugins", timeout=60, env=os.environ.copy())
    assert table.returncode == 1
    row = next(line for line in table.stdout.splitlines() if line.startswith("argname "))
    assert row.endswith("PluginValidationError: Plugin 'argname' for hook 'genrecast_sink_event'; hookimpl definition: "
                        "genrecast_sink_event(evt); Argument(s) {'evt'} are declared in the hookimpl but can not be "
                        "found in the hookspec"), table.stdout
    assert len(table.stdout.splitlines()) == 5  # the header, three built-in sinks, this one


def test_a_plugin_genrecast_plugins_leaves_out_is_not_called_unknown(site, monkeypatch):
    install(site, "gc-quiet", "quiet", SINK_CODE.format(who="quiet"))
    monkeypatch.setenv("GENRECAST_PLUGINS", "something-else")
    with pytest.raises(SinkConfigError, match=r"sink 'quiet' \(from gc-quiet\) is installed but GENRECAST_PLUGINS "
                                              r"leaves it out; add quiet to GENRECAST_PLUGINS or unset it"):
        build_sinks(["quiet"], {}, ["rock"])
    with pytest.raises(SinkConfigError, match=r"unknown sink 'nosuch'; available: logfile, mqtt, stdout"):
        build_sinks(["nosuch"], {}, ["rock"])


def test_a_plugin_section_and_its_variables_are_the_plugins_settings(site, tmp_path):
    """`[beep]` is accepted while beep is installed but not chosen (`--sink stdout` turns it off
    without breaking the file); GENRECAST_BEEP_* variables override the file as TOML values or
    text; `config show` lists them with their origins, secrets hidden."""
    from genrecast.daemon.config import load_config

    install(site, "gc-beep", "beep", SINK_CODE.format(who="beep"))
    path = tmp_path / "beep.toml"
    path.write_text('[beep]\ngenres = ["rock"]\nvolume = 3\n[nosuch]\nx = 1\n')
    config = load_config(path, env={"GENRECAST_BEEP_GENRES": '["jazz", "blues"]', "GENRECAST_BEEP_NAME": "kitchen",
                                    "GENRECAST_BEEP_API_TOKEN": "s3cret",
                                    "GENRECAST_BEEP_WEBHOOK_URL": "https://u:pw@hook.example/x?token=abc&room=1"})
    assert config.problems == [f"{path}: unknown key 'nosuch.x': [nosuch] is not a section of genrecast's, and no "
                               "installed sink plugin is called 'nosuch'; install the plugin it is for (`genrecast "
                               "plugins` lists them) or remove the section"]
    assert config.section("beep") == {"genres": ["jazz", "blues"], "volume": 3, "name": "kitchen", "api_token": "s3cret",
                                      "webhook_url": "https://u:pw@hook.example/x?token=abc&room=1"}
    rows = {key: (value, origin) for key, value, origin in config.show()}
    assert rows["beep.genres"] == (["jazz", "blues"], "env GENRECAST_BEEP_GENRES")
    assert rows["beep.volume"] == (3, f"file {path}") and rows["beep.api_token"][0] == "********"
    # a URL value's credentials are hidden as a source URL's are (they were shown in the clear)
    assert rows["beep.webhook_url"][0] == "https://u:********@hook.example/x?token=********&room=1"
    assert not config.warnings, "a plugin's own variables are not typos"
    path.write_text('sinks = ["stdout", "beep"]\n[beep]\ngenres = ["rock"]\n')
    check = run_cli("config", "check", "-c", str(path), timeout=60, env=os.environ.copy())
    assert check.returncode == 0, check.stderr
    assert "the plugin sink beep checks its own settings when run starts it" in check.stdout
    assert load_config(path, flags={"sinks": ["stdout"]}, env={}).problems == []  # run --sink stdout
    # a value that opens an array but does not close it is reported (it was silently the text `["rock"`)
    broken = load_config(path, env={"GENRECAST_BEEP_GENRES": '["rock", "jazz"', "GENRECAST_BEEP_NAME": "[kitchen] mic"})
    assert broken.problems[0].startswith('GENRECAST_BEEP_GENRES: is not a TOML value (') and len(broken.problems) == 2
    assert broken.problems[1].startswith("GENRECAST_BEEP_NAME: is not a TOML value (")
    assert broken.section("beep") == {"genres": ["rock"]}  # the file's value stays
    assert load_config(path, env={"GENRECAST_BEEP_NAME": "kitchen [left]"}).section("beep")["name"] == "kitchen [left]"


CHECKED_SINK_CODE = """from genrecast.plugins import SinkConfigError, hookimpl

@hookimpl
def genrecast_sink_check(config):
    if config.get("volume", 1) > 10:
        raise SinkConfigError(f"[beep] volume {config['volume']} is too loud; give 0 to 10")
    if config.get("volume") == 0:
        raise RuntimeError("a bug in the check")

@hookimpl
def genrecast_sink_event(event):
    pass
"""


def test_config_check_runs_a_plugins_own_settings_check(site, tmp_path):
    """A plugin with genrecast_sink_check has its settings checked by `config check` (exit 1,
    its message once); one whose check itself fails is named as the plugin's problem; sound
    settings pass, and only a plugin without the hook is said to be checked when run starts it."""
    install(site, "gc-beep", "beep", CHECKED_SINK_CODE)
    install(site, "gc-hum", "hum", SINK_CODE.format(who="hum"))
    path = tmp_path / "beep.toml"
    env = os.environ.copy()

    def check(beep: str):
        path.write_text(f'sinks = ["stdout", "beep", "hum"]\n[beep]\n{beep}\n')
        return run_cli("config", "check", "-c", str(path), timeout=60, env=env)

    loud = check("volume = 11")
    assert loud.returncode == 1
    assert loud.stderr.count("genrecast: error: [beep] volume 11 is too loud; give 0 to 10") == 1, loud.stderr
    assert "Traceback" not in loud.stderr
    broken = check("volume = 0")
    assert broken.returncode == 1
    assert ("[beep] the plugin's settings check failed (RuntimeError: a bug in the check); report it to the "
            "plugin's authors") in broken.stderr
    sound = check("volume = 3")
    assert sound.returncode == 0, sound.stderr
    assert sound.stdout.strip().endswith("; the plugin sink hum checks its own settings when run starts it"), sound.stdout


def test_a_slow_sink_gets_every_event_of_a_run_whose_sources_end(site, gtzan_sample, tmp_path):
    """A working sink slower than the audio (0.9 s an event) lost what the 8-s stop deadline did not
    reach when a file run ended ('13 dropped', exit 1); a run whose sources end now waits for its
    sinks while they deliver."""
    written = tmp_path / "slow.jsonl"
    install(site, "gc-slow", "slow", f"""import json, time
from genrecast.plugins import hookimpl

@hookimpl
def genrecast_sink_event(event):
    time.sleep(0.9)
    with open({str(written)!r}, "a") as f:
        f.write(json.dumps({{"seq": event.seq, "source": event.source}}) + "\\n")
""")
    clip = gtzan_sample / "rock" / "rock.00000.wav"
    proc = run_cli("run", "--json", "--sink", "slow", "--sink", "stdout", "--source", f"file:{clip}", timeout=120,
                   env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(events) == 10 and "undelivered" not in proc.stderr
    assert "sink slow: 10 delivered, 0 errors, 0 dropped" in proc.stderr
    assert [json.loads(line)["seq"] for line in written.read_text().splitlines()] == [e["seq"] for e in events]
