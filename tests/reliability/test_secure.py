"""Secure transport and secrets: MQTT over TLS against a real Mosquitto TLS listener
(certificates made with ``openssl``), a wrong CA refused, user name and password
accepted and refused, and the password never in logs, events or ``config show``; a
config file holding a password that others can read draws a warning from ``genrecast run``."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from helpers import run_cli
from helpers import wait_for
from mqtt_services import mqtt_env
from reliability.support import STDIN_SOURCE, make_certificates

pytestmark = [pytest.mark.slow, pytest.mark.service]
USER = "genrecast"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


def test_tls_with_client_certificate_delivers_events(certificates: Path, start_broker, recorder, start_daemon):
    broker = start_broker(tls_dir=certificates)
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    rec = recorder(broker, [f"{prefix}/test/#"])  # on the broker's plain listener
    env = mqtt_env(broker.host, broker.tls_port, prefix, GENRECAST_MQTT_TLS="true",
                   GENRECAST_MQTT_CA_FILE=str(certificates / "ca.crt"),
                   GENRECAST_MQTT_CERT_FILE=str(certificates / "client.crt"),
                   GENRECAST_MQTT_KEY_FILE=str(certificates / "client.key"))
    run = start_daemon(sinks=["stdout", "mqtt"], env=env, prefix=prefix)
    run.wait_log("MQTT: connected to")
    run.wait_events(5)
    assert run.stop() == 0
    events = run.events()
    topic = f"{prefix}/test/{STDIN_SOURCE}/event"
    wait_for(lambda: len(rec.on(topic)) >= len(events), what="every event through the TLS listener")
    assert [json.loads(m.payload) for m in rec.on(topic)][: len(events)] == events


def test_tls_with_the_wrong_ca_is_refused_clearly_and_retried(certificates: Path, start_broker, recorder, start_daemon):
    broker = start_broker(tls_dir=certificates)
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    rec = recorder(broker, [f"{prefix}/test/#"])
    env = mqtt_env(broker.host, broker.tls_port, prefix, GENRECAST_MQTT_TLS="true",
                   GENRECAST_MQTT_CA_FILE=str(certificates / "other-ca.crt"),
                   GENRECAST_MQTT_CERT_FILE=str(certificates / "client.crt"),
                   GENRECAST_MQTT_KEY_FILE=str(certificates / "client.key"))
    run = start_daemon(sinks=["stdout", "mqtt"], env=env, prefix=prefix, metrics=True)
    run.wait_log("MQTT: TLS handshake failed with 127.0.0.1")
    wait_for(lambda: run.metrics()["genrecast_mqtt_connect_attempts_total"] >= 3, what="retries")
    run.wait_events(3)  # the other sinks go on
    assert run.daemon.proc.poll() is None
    assert run.stop() == 0
    line = next(line for line in run.daemon.log if "TLS handshake failed" in line)
    assert "CERTIFICATE_VERIFY_FAILED" in line and "retrying" in line
    assert "Traceback" not in run.log_text()
    assert not rec.on(f"{prefix}/test/{STDIN_SOURCE}/event")


def _config_file(path: Path, broker, prefix: str, password: str, mode: int) -> Path:
    path.write_text(f'daemon_id = "test"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nprefix = "{prefix}"\n'
                    f'client_id = "daemon-{prefix}"\nusername = "{USER}"\npassword = "{password}"\n'
                    "reconnect_min_seconds = 0.2\nreconnect_max_seconds = 1.0\n")
    path.chmod(mode)
    return path


def _everything_printed(run) -> str:
    return run.log_text() + "".join(run.daemon.stdout_lines)


def test_password_accepted_never_logged_and_a_readable_config_warned(start_broker, recorder, start_daemon, tmp_path):
    password = _secret()
    broker = start_broker(users={USER: password, "reader": "reader-pw"})
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    rec = recorder(broker, [f"{prefix}/test/#"], username="reader", password="reader-pw")
    config = _config_file(tmp_path / "config.toml", broker, prefix, password, 0o644)  # readable by everyone
    run = start_daemon(sinks=["stdout", "mqtt"], env={"GENRECAST_CONFIG": str(config)}, prefix=prefix,
                       extra_args=["--verbose"])
    run.wait_log("MQTT: connected to")
    run.wait_events(5)
    assert run.stop() == 0
    topic = f"{prefix}/test/{STDIN_SOURCE}/event"
    wait_for(lambda: len(rec.on(topic)) >= len(run.events()), what="every event with the right password")
    printed = _everything_printed(run)
    assert "DEBUG" in printed  # debug logging was on
    assert password not in printed
    assert "holds a password and is readable by every user" in printed
    for args in (["config", "show"], ["config", "show", "--json"], ["config", "check"]):
        proc = run_cli(*args, "--config", str(config), timeout=60)
        assert password not in proc.stdout + proc.stderr
    shown = json.loads(run_cli("config", "show", "--json", "--config", str(config), timeout=60).stdout)
    assert {row["key"]: row["value"] for row in shown}["mqtt.password"] == "********"


def test_wrong_password_is_refused_clearly_retried_and_never_logged(start_broker, start_daemon, tmp_path):
    broker = start_broker(users={USER: _secret()})
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    wrong = _secret()
    config = _config_file(tmp_path / "config.toml", broker, prefix, wrong, 0o600)  # private: no warning
    run = start_daemon(sinks=["stdout", "mqtt"], env={"GENRECAST_CONFIG": str(config)}, prefix=prefix,
                       metrics=True, extra_args=["--verbose"])
    run.wait_log("refused the connection")
    wait_for(lambda: run.metrics()["genrecast_mqtt_connect_attempts_total"] >= 3, what="retries")
    run.wait_events(3)
    assert run.metrics()["genrecast_mqtt_connected"] == 0
    assert run.stop() == 0
    line = next(line for line in run.daemon.log if "refused the connection" in line)
    assert "Not authorized" in line or "Bad user name or password" in line, line
    printed = _everything_printed(run)
    assert wrong not in printed
    assert "readable by every user" not in printed
    assert "Traceback" not in printed
