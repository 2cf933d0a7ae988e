"""Configuration layers, `config show`, `config check`, and the example file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import REPO, run_cli
from genrecast.daemon.config import KEYS, load_config
from genrecast.daemon.install import example_config
from genrecast.plugins.logfile_sink import LogfileSettings
from genrecast.plugins.mqtt_sink import MqttSettings
from genrecast.plugins.stdout_sink import StdoutSettings


def test_precedence_default_file_env_flag(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nhost = "from-file"\nport = 1884\n[smoothing]\nwindows = 7\n[[sources]]\nspec = "file:a.wav"\n')
    config = load_config(path, flags={"mqtt.port": 1999, "smoothing.windows": None},
                         env={"GENRECAST_MQTT_HOST": "from-env", "GENRECAST_SINKS": "stdout,mqtt"})
    assert not config.problems
    assert (config["mqtt.host"], config.origins["mqtt.host"]) == ("from-env", "env GENRECAST_MQTT_HOST")
    assert (config["mqtt.port"], config.origins["mqtt.port"]) == (1999, "flag")
    assert (config["smoothing.windows"], config.origins["smoothing.windows"]) == (7, f"file {path}")
    assert config["sources"] == ["file:a.wav"] and config["sinks"] == ["stdout", "mqtt"]
    assert config.origins["mqtt.qos"] == "default"
    assert config.section("mqtt")["host"] == "from-env"


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mqt]\nhost = 1\n[mqtt]\nqos = 5\nkeepalive_seconds = "x"\nca_file = "/nonexistent/ca.pem"\n')
    config = load_config(path, env={"GENRECAST_SMOOTHING_WINDOWS": "many"})
    text = "\n".join(config.problems)
    assert "unknown key 'mqt.host' (did you mean 'mqtt.host'?)" in text
    assert "mqtt.qos" in text and "between 0 and 2" in text
    assert "mqtt.keepalive_seconds" in text and "expected int" in text
    assert "/nonexistent/ca.pem does not exist" in text
    assert "GENRECAST_SMOOTHING_WINDOWS: expects a whole number, not 'many'" in text
    assert len(config.problems) == 5


def test_cli_check_and_show(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\npassword = "hunter2"\nqos = 9\n')
    path.chmod(0o644)
    proc = run_cli("config", "check", "--config", str(path))
    assert proc.returncode == 1
    assert "mqtt.qos" in proc.stderr and "readable by every user" in proc.stderr and "Traceback" not in proc.stderr
    show = run_cli("config", "show", "--json", "--config", str(path), env={"PATH": "/usr/bin:/bin", "GENRECAST_MQTT_PORT": "1999"})
    rows = {r["key"]: r for r in json.loads(show.stdout)}
    assert rows["mqtt.password"]["value"] == "********" and "hunter2" not in show.stdout + show.stderr
    assert rows["mqtt.port"] == {"key": "mqtt.port", "value": 1999, "origin": "env GENRECAST_MQTT_PORT"}
    assert rows["sinks"]["value"] == ["stdout"] and rows["mqtt.qos"]["value"] == 9  # JSON values, not Python reprs
    assert rows["input.realtime"]["value"] is False
    text = {line.split()[0]: line for line in run_cli("config", "show", "--config", str(path)).stdout.splitlines()}
    assert "(empty: the host name)" in text["daemon_id"] and "0.0 (the window length)" in text["windowing.hop_seconds"]
    assert "(empty:" not in text["mqtt.password"] and text["mqtt.port"].split()[1] == "1883"
    missing = run_cli("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_check_finds_the_sources_run_would_refuse(tmp_path: Path) -> None:
    """`config check` says what `run` would: an unknown spec, a missing file."""
    path = tmp_path / "c.toml"
    for sources, message in (('["bogus:x"]', "unknown source 'bogus:x'"), ('["file:/no/such.wav"]', "file:/no/such.wav: no such file")):
        path.write_text(f"sources = {sources}\n")
        check = run_cli("config", "check", "--config", str(path))
        assert check.returncode == 1 and check.stderr.startswith(f"genrecast: error: {message}"), check.stderr
        run = run_cli("run", "--config", str(path))
        assert run.returncode == 2 and message in run.stderr
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "tone.wav", np.zeros(22050, np.float32), 22050)
    path.write_text(f'sources = ["file:{tmp_path / "c.toml"}", "file:{tmp_path / "tone.wav"}", "bogus:y"]\n')
    check = run_cli("config", "check", "--config", str(path))
    assert check.returncode == 1 and "c.toml: not an audio file" in check.stderr
    assert "unknown source 'bogus:y'" in check.stderr and check.stderr.count("genrecast: error:") == 2  # every one
    path.write_text(f'sources = ["file:{tmp_path / "tone.wav"}"]\n')  # run would open it
    assert run_cli("config", "check", "--config", str(path)).returncode == 0
    # a bad value, a missing file and an unknown sink: all three at once, as run would refuse the last two
    path.write_text('sinks = ["stdout", "nosuch"]\nsources = ["file:/no/such.wav"]\n[mqtt]\nqos = 3\n')
    check = run_cli("config", "check", "--config", str(path))
    assert check.returncode == 1 and check.stderr.count("genrecast: error:") == 3, check.stderr
    assert "mqtt.qos" in check.stderr and "no such file" in check.stderr and "unknown sink 'nosuch'" in check.stderr
    # the sinks' own checks, which run would make when it starts them: both found at once
    missing = tmp_path / "no-such-folder" / "events.jsonl"
    path.write_text(f'sinks = ["mqtt", "logfile"]\nsources = ["file:{tmp_path / "tone.wav"}"]\n[mqtt]\nhost = ""\n'
                    f'[logfile]\npath = "{missing}"\n')
    check = run_cli("config", "check", "--config", str(path))
    assert check.returncode == 1 and check.stderr.splitlines() == [
        "genrecast: error: [mqtt] host must not be empty",
        f"genrecast: error: [logfile] path {missing}: its folder {missing.parent} does not exist; create it or choose "
        "another path (under systemd a relative path goes to the service's log directory)"], check.stderr
    run = run_cli("run", "--config", str(path), "--sink", "mqtt")
    assert run.returncode == 2 and "[mqtt] host must not be empty" in run.stderr
    path.write_text(f'sinks = ["mqtt"]\nsources = ["file:{tmp_path / "tone.wav"}"]\n[mqtt]\nport = "1883"\n')
    check = run_cli("config", "check", "--config", str(path))  # one mistake, one line (the sink's check said it again)
    assert check.returncode == 1 and check.stderr.splitlines() == [
        f"genrecast: error: mqtt.port (file {path}): expected int, got str '1883'"], check.stderr
    # host:port (as `tail --broker` takes it) passed the check, then run retried 'localhost:1883:1883' for ever
    path.write_text(f'sinks = ["mqtt"]\nsources = ["file:{tmp_path / "tone.wav"}"]\n[mqtt]\nhost = "localhost:1883"\n')
    says = '[mqtt] host \'localhost:1883\' holds a port; give host = "localhost" and port = 1883'
    check = run_cli("config", "check", "--config", str(path))
    assert check.returncode == 1 and check.stderr.splitlines() == [f"genrecast: error: {says}"], check.stderr
    assert run_cli("run", "--config", str(path)).stderr.strip().splitlines()[-1] == f"genrecast: error: {says}"


def test_check_loads_the_bundle_run_would_load(tmp_path: Path) -> None:
    """A folder that is no bundle, or a bundle with broken JSON, passed `config check`; `run` refused it."""
    import shutil

    from genrecast.daemon.bundle import default_bundle_path

    (tmp_path / "notabundle").mkdir()
    broken = tmp_path / "broken"
    shutil.copytree(default_bundle_path(), broken)
    (broken / "bundle.json").write_text("{broken")
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "tone.wav", np.zeros(22050, np.float32), 22050)
    for folder, says in ((tmp_path / "notabundle", "has no bundle.json; it was not written by `genrecast train`"),
                         (broken, "bundle.json is not valid JSON")):
        path = tmp_path / "c.toml"
        path.write_text(f'sources = ["file:{tmp_path / "tone.wav"}"]\n[model]\nbundle = "{folder}"\n')
        check = run_cli("config", "check", "--config", str(path))
        lines = check.stderr.strip().splitlines()
        assert check.returncode == 1 and len(lines) == 1 and lines[0].startswith("genrecast: error: model.bundle: "), \
            check.stderr
        assert str(folder) in lines[0] and says in lines[0]
        run = run_cli("run", "--config", str(path))
        assert run.returncode == 2 and says in run.stderr


def test_run_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[smoothing]\nwindows = 0\n")
    proc = run_cli("run", "--config", str(path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("genrecast: error: invalid configuration: smoothing.windows") and "Traceback" not in proc.stderr


def test_example_config_documents_every_key_and_is_valid() -> None:
    example = REPO / "systemd" / "config.example.toml"
    assert example.read_text() == example_config(), "regenerate: python -c 'from genrecast.daemon.install import example_config; ...'"
    config = load_config(example, env={})
    assert not config.problems
    assert all(config.origins[k].startswith("file") for k in KEYS)


def test_sink_sections_match_the_sinks_own_settings(tmp_path: Path) -> None:
    """The config's sink keys are the sink settings' fields with the same defaults, and the
    edges a sink accepts (0 = never rotate, the protocol's largest keepalive) pass the check."""
    import dataclasses

    for section, settings in (("stdout", StdoutSettings), ("mqtt", MqttSettings), ("logfile", LogfileSettings)):
        fields = {f.name: f.default for f in dataclasses.fields(settings)}
        keys = {k.split(".", 1)[1]: KEYS[k].default for k in KEYS if k.startswith(section + ".")}
        assert keys == fields, section
    edges = {"GENRECAST_LOGFILE_MAX_BYTES": "0", "GENRECAST_MQTT_KEEPALIVE_SECONDS": "65535"}
    (tmp_path / "empty.toml").write_text("")
    config = load_config(tmp_path / "empty.toml", env=edges)
    assert not config.problems
    LogfileSettings(**{**config.section("logfile"), "path": str(tmp_path / "log")})
    MqttSettings(**config.section("mqtt"))


def test_a_misspelt_variable_a_folder_for_a_file_and_a_folder_for_the_config(tmp_path: Path) -> None:
    env = {"GENRECAST_SMOOTHING_WINDOZ": "3", "GENRECAST_TEST_DATA": "/data", "GENRECAST_MQTT_PASSWORD_FILE": str(tmp_path),
           "GENRECAST_BEEP_PITCH": "440"}  # a plugin's own variable, near no key: left alone
    config = load_config(None, env=env)
    assert config.warnings == ["GENRECAST_SMOOTHING_WINDOZ is not a genrecast setting and is ignored; "
                               "did you mean GENRECAST_SMOOTHING_WINDOWS?"]
    assert f"mqtt.password_file (env GENRECAST_MQTT_PASSWORD_FILE): {tmp_path} is not a file; give the file's path" in config.problems
    check = run_cli("config", "check", "--config", str(tmp_path))
    assert check.returncode == 1 and f"config file {tmp_path} is a folder; give the TOML file in it" in check.stderr
    missing = load_config(env={"GENRECAST_CONFIG": str(tmp_path / "nope.toml")})
    assert any(p.endswith("or unset GENRECAST_CONFIG") for p in missing.problems), missing.problems
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert load_config(None, env={"GENRECAST_MQTT_CA_FILE": str(ca)}).warnings == [
        "mqtt.ca_file set but mqtt.tls is false, so unused: set mqtt.tls = true (GENRECAST_MQTT_TLS=true) to connect with TLS"]
    assert load_config(None, env={"GENRECAST_MQTT_CA_FILE": str(ca), "GENRECAST_MQTT_TLS": "true"}).warnings == []
    typo = run_cli("config", "check", env={"PATH": "/usr/bin:/bin", "GENRECAST_SMOOTHING_WINDOZ": "3"})
    assert typo.returncode == 0 and "did you mean GENRECAST_SMOOTHING_WINDOWS?" in typo.stderr


def test_credentials_of_a_named_source_stay_hidden(tmp_path):
    """`radio=URL` (and [[sources]] name/spec) hide the password and token as a bare URL does:
    in config show, in the name-collision message, and the world-readable warning names them."""
    from genrecast.daemon.config import load_config, world_readable_secret

    config = load_config(None, env={"GENRECAST_SOURCES": "radio=http://listener:s3cret@radio.example/live.mp3?token=abc"})
    shown = dict((k, v) for k, v, _ in config.show())["sources"]
    assert shown == ["radio=http://listener:********@radio.example/live.mp3?token=********"]
    clash = load_config(None, env={"GENRECAST_SOURCES": "radio=http://u:s3cret@a.invalid/x,radio=http://u:s3cret@b.invalid/y"})
    assert clash.problems and all("s3cret" not in p for p in clash.problems), clash.problems
    path = tmp_path / "config.toml"
    path.write_text('sources = ["radio=http://listener:s3cret@radio.example/live.mp3"]\n')
    path.chmod(0o644)
    assert "credentials in a source URL" in (world_readable_secret(load_config(path, env={})) or "")


def test_a_list_from_the_environment_may_be_a_toml_array():
    """GENRECAST_SOURCES splits on commas, which URLs and paths may hold: a TOML array keeps them."""
    from genrecast.daemon.config import load_config

    url = "http://127.0.0.1:18765/live.mp3?codecs=mp3,aac"
    config = load_config(None, env={"GENRECAST_SOURCES": f'["{url}", "mic"]'})
    assert config["sources"] == [url, "mic"]
    assert "GENRECAST_SOURCES: is not a TOML array" in load_config(None, env={"GENRECAST_SOURCES": '["a'}).problems[0]


def test_a_config_that_is_not_a_regular_file_is_named_so():
    """`--config /dev/null` said the file 'does not exist'."""
    from genrecast.daemon.config import load_config

    assert load_config(Path("/dev/null"), env={}).problems == [
        "config file /dev/null is not a regular file; give a TOML file (see systemd/config.example.toml)"]


def test_config_show_marks_a_value_run_would_refuse(tmp_path: Path) -> None:
    """`config show` printed the default where the value given was invalid, with a warning and exit 0,
    while `run` refused the same configuration."""
    import json
    import os

    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nport = "1883"\n')
    env = {**os.environ, "GENRECAST_SMOOTHING_WINDOWS": "lots"}
    show = run_cli("config", "show", "--config", str(path), env=env)
    assert show.returncode == 1
    rows = {line.split()[0]: line for line in show.stdout.splitlines()}
    for key in ("smoothing.windows", "mqtt.port"):
        assert rows[key].endswith("[the value given is invalid: see below; run refuses it]"), rows[key]
    assert "invalid" not in rows["smoothing.seconds"] if "smoothing.seconds" in rows else True
    assert show.stderr.splitlines() == [
        "genrecast: error: GENRECAST_SMOOTHING_WINDOWS: expects a whole number, not 'lots'",
        f"genrecast: error: mqtt.port (file {path}): expected int, got str '1883'"], show.stderr
    shown = json.loads(run_cli("config", "show", "--json", "--config", str(path), env=env).stdout)
    assert {row["key"] for row in shown if "invalid" in row} == {"smoothing.windows", "mqtt.port"}
    assert run_cli("run", "--config", str(path), env=env).returncode == 2


def test_a_fixed_client_id_in_a_fleet_is_warned_about() -> None:
    """A fleet sharing one config with [mqtt] client_id set: the members knocked each other off the broker,
    and `config check` said OK."""
    from genrecast.daemon.config import load_config

    env = {"GENRECAST_SOURCES": "mic", "GENRECAST_SINKS": "mqtt", "GENRECAST_MQTT_CLIENT_ID": "genrecast-house"}
    assert not [w for w in load_config(None, env=env).warnings if "client_id" in w]  # one daemon: its own business
    warned = [w for w in load_config(None, env={**env, "GENRECAST_SHARD": "1/2"}).warnings if "client_id" in w]
    assert warned == ["mqtt.client_id (env GENRECAST_MQTT_CLIENT_ID) is 'genrecast-house' in a fleet (shard 1/2): a broker "
                      "keeps one connection per client id, so members that share it knock each other off; leave it empty "
                      "(each member gets genrecast-<daemon_id>) unless every member sets its own"]


def _as_plain_user(*args: str, **kwargs):
    """``genrecast ARGS`` without the capabilities that let root read any file (CI runs as root;
    a service's user or a plain shell user has none of them)."""
    import shutil
    import subprocess

    from helpers import EXE

    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run a command without root's file access"
    caps = "-dac_override,-dac_read_search"
    return subprocess.run([setpriv, "--bounding-set", caps, "--inh-caps", caps, "--", EXE, *args],
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_an_unreadable_config_or_password_file_a_bom_a_typo_in_a_source_and_a_spaced_host(tmp_path: Path) -> None:
    """An unreadable config file was a 45-line traceback in every command; a byte-order mark (Notepad)
    was "not valid TOML"; `nmae = ...` in a [[sources]] entry was ignored, so the source ran under
    another name (other MQTT topics, other Home Assistant ids); host = "localhost " and an unreadable
    password_file passed the check, then run retried for ever as if the broker were down."""
    tone = tmp_path / "tone.wav"
    import numpy as np
    import soundfile as sf

    sf.write(tone, np.zeros(22050, np.float32), 22050)
    config = tmp_path / "c.toml"
    config.write_text(f'sources = ["file:{tone}"]\n')
    config.chmod(0o000)
    for args in (("config", "check"), ("run",)):  # the file named as the default one is: not by an option, which checks it
        proc = _as_plain_user(*args, env={**os.environ, "GENRECAST_CONFIG": str(config)})
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert f"config file {config}: cannot read it (Permission denied); run as a user who may read it" in proc.stderr
    config.chmod(0o644)
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    os.chown(hidden, 65534, 65534)  # nobody's folder: this user may not look inside
    proc = _as_plain_user("config", "check", env={**os.environ, "GENRECAST_CONFIG": str(hidden / "config.toml")})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"config file {hidden / 'config.toml'}: cannot read it (Permission denied)" in proc.stderr

    config.write_bytes(b"\xef\xbb\xbf" + f'sources = ["file:{tone}"]\n'.encode())
    assert run_cli("config", "check", "-c", str(config)).returncode == 0

    config.write_text(f'[[sources]]\nnmae = "kitchen"\nspec = "file:{tone}"\n[[sources]]\nname = "b"\nspec = "file:{tone}"\nloop = true\n')
    check = run_cli("config", "check", "-c", str(config))
    assert check.returncode == 1 and check.stderr.splitlines()[:2] == [
        "genrecast: error: sources: a [[sources]] entry takes name and spec only, not 'nmae'",
        "genrecast: error: sources: a [[sources]] entry takes name and spec only, not 'loop' (input.loop is set for "
        "every source under [input])"], check.stderr

    password = tmp_path / "password"
    password.write_text("secret\n")
    password.chmod(0o600)
    os.chown(password, 65534, 65534)  # nobody's: this user cannot read it
    config.write_text(f'sinks = ["mqtt"]\nsources = ["file:{tone}"]\n[mqtt]\nhost = "localhost "\n')
    check = run_cli("config", "check", "-c", str(config))
    assert check.returncode == 1 and check.stderr.splitlines() == [
        "genrecast: error: [mqtt] host 'localhost ' holds a space; give host = \"localhost\""], check.stderr
    config.write_text(f'sinks = ["mqtt"]\nsources = ["file:{tone}"]\n[mqtt]\npassword_file = "{password}"\n')
    says = f"[mqtt] password_file {password} cannot be read by this user; make it readable by the user genrecast runs as"
    check = _as_plain_user("config", "check", "-c", str(config))
    assert check.returncode == 1 and says in check.stderr, check.stderr
    run = _as_plain_user("run", "-c", str(config))
    assert run.returncode == 2 and says in run.stderr.strip().splitlines()[-1], run.stderr[-2000:]


def test_a_bundle_or_file_in_a_folder_this_user_may_not_enter_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """model.bundle in a folder genrecast's user may not enter (a bundle under /root, as the service sees
    it: ProtectHome=yes makes /root unreadable) was a 40-line PermissionError traceback from `run` and
    `config check`; a file: source there was a bare "[Errno 13] Permission denied: '...'"."""
    import numpy as np
    import soundfile as sf

    if os.geteuid() != 0:
        pytest.skip("giving the folder to another user (chown) needs root")
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    sf.write(hidden / "tone.wav", np.zeros(22050, np.float32), 22050)
    (hidden / "bundle").mkdir()
    os.chown(hidden, 65534, 65534)  # nobody's folder: this user may not look inside
    config = tmp_path / "c.toml"
    config.write_text(f'sources = ["file:{hidden}/tone.wav"]\n[model]\nbundle = "{hidden}/bundle"\n')
    bundle_says = (f"model.bundle (file {config}): cannot look at {hidden}/bundle (Permission denied); "
                   "make it and its folders readable by the user genrecast runs as")
    for args in (("config", "check"), ("run",)):
        proc = _as_plain_user(*args, "-c", str(config))
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert bundle_says in proc.stderr, proc.stderr
    config.write_text(f'sources = ["file:{hidden}/tone.wav"]\n')
    source_says = (f"file:{hidden}/tone.wav: cannot look at it (Permission denied); "
                   "make it and its folders readable by the user genrecast runs as")
    check = _as_plain_user("config", "check", "-c", str(config))
    assert check.returncode == 1 and source_says in check.stderr, check.stderr
    run = _as_plain_user("run", "-c", str(config))
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1] == f"genrecast: error: {source_says}", run.stderr[-2000:]


def test_under_systemd_a_missing_path_names_the_sandbox_that_hides_it(tmp_path: Path) -> None:
    """Under the unit (systemd sets INVOCATION_ID), /root, /home and /tmp are not the ones root sees
    (ProtectHome=yes, PrivateTmp=yes): a bundle there "does not exist" for the service although
    `ls` shows it, so the message says why and where to put it instead."""
    config = tmp_path / "c.toml"
    config.write_text('sources = ["file:/root/genrecast-test-absent.wav"]\n[model]\nbundle = "/root/genrecast-test-absent"\n')
    env = {**os.environ, "INVOCATION_ID": "0123456789abcdef0123456789abcdef", "CACHE_DIRECTORY": "/var/cache/genrecast"}
    proc = run_cli("run", "-c", str(config), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"genrecast: error: invalid configuration: model.bundle (file {config}): /root/genrecast-test-absent does not exist for the "
        "service: genrecast's unit hides /root from it (ProtectHome=yes); put it where the service can see it, e.g. under /var/lib/genrecast"]
    config.write_text('sources = ["file:/root/genrecast-test-absent.wav"]\n')
    proc = run_cli("run", "-c", str(config), env=env)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "genrecast: error: file:/root/genrecast-test-absent.wav: no such file for the service: genrecast's unit hides /root "
        "from it (ProtectHome=yes); put it where the service can see it, e.g. under /var/lib/genrecast"), proc.stderr
    plain = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "CACHE_DIRECTORY")}
    assert "unit hides" not in run_cli("run", "-c", str(config), env=plain).stderr  # not under systemd: no word of it
    # under another service (a CI runner's job, a terminal a user service started) INVOCATION_ID is
    # inherited too, but genrecast's unit does not hide the path: no word of it either
    other = {**plain, "INVOCATION_ID": "0123456789abcdef0123456789abcdef", "CACHE_DIRECTORY": "/var/cache/runner"}
    assert "unit hides" not in run_cli("run", "-c", str(config), env=other).stderr
