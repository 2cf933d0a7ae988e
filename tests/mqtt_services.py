"""A real Mosquitto for the tests (plain, with passwords, persistent, or with a TLS listener)
and an MQTT recorder; the fixtures ``start_broker``, ``broker`` and ``recorder`` are loaded for
every test by the root conftest. Every broker is stopped by its PID at teardown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from helpers import free_port, terminate, wait_for


@dataclass
class Broker:
    """One Mosquitto process on 127.0.0.1; ``stop()``/``start()`` keep the port."""

    workdir: Path
    port: int
    password_file: Path | None = None
    persistence: bool = False
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"
    extra_config: tuple[str, ...] = ()
    """More mosquitto.conf lines, e.g. ``("max_packet_size 600",)``."""

    def config_text(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to 'mosquitto' and cannot read our temp files
        if self.password_file:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        return "\n".join([*lines, *self.extra_config]) + "\n"

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / "mosquitto.log", "ab"))

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, (self.workdir / "mosquitto.log").read_text()
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(ready, what=f"mosquitto on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 10)
        self.proc = None


def password_file(workdir: Path, users: dict[str, str] | None) -> Path | None:
    """A mosquitto password file for ``users`` in ``workdir`` (None: anonymous broker)."""
    if not users:
        return None
    path = workdir / "passwords"
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)
    return path


@dataclass
class TlsBroker(Broker):
    """Mosquitto with a plain listener on ``port`` (for test clients) and a TLS listener on
    ``tls_port`` with the server certificate from ``tls_dir``; TLS clients must present a
    certificate signed by the CA when ``require_certificate``."""

    tls_dir: Path | None = None
    tls_port: int = 0
    require_certificate: bool = True

    def config_text(self) -> str:
        assert self.tls_dir is not None and self.tls_port
        return super().config_text() + "\n".join([
            f"listener {self.tls_port} 127.0.0.1", f"cafile {self.tls_dir / 'ca.crt'}",
            f"certfile {self.tls_dir / 'server.crt'}", f"keyfile {self.tls_dir / 'server.key'}",
            f"require_certificate {'true' if self.require_certificate else 'false'}"]) + "\n"


@pytest.fixture
def start_broker(tmp_path_factory) -> Iterator[Callable[..., Broker]]:
    """Factory: ``start_broker(users=None, persistence=False, tls_dir=None, port=None, start=True, extra_config=())``
    → a Broker on 127.0.0.1 (a :class:`TlsBroker` with ``tls_dir``; ``start=False``: configured,
    not running yet). Stopped (SIGCONT first, if a test froze it) at teardown."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    brokers: list[Broker] = []

    def make(users: dict[str, str] | None = None, persistence: bool = False, tls_dir: Path | None = None,
             port: int | None = None, start: bool = True, extra_config: tuple[str, ...] = ()) -> Broker:
        workdir = tmp_path_factory.mktemp("mosquitto")
        passwords = password_file(workdir, users)
        port = port or free_port()
        broker = (TlsBroker(workdir, port, passwords, persistence, tls_dir=tls_dir, tls_port=free_port()) if tls_dir
                  else Broker(workdir, port, passwords, persistence))
        broker.extra_config = tuple(extra_config)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        if broker.proc is not None and broker.proc.poll() is None:
            os.kill(broker.proc.pid, signal.SIGCONT)  # in case a test left it stopped
        broker.stop()


@pytest.fixture
def broker(start_broker) -> Broker:
    return start_broker()


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Recorder:
    """A paho client that records every message on its subscriptions (logging in when given a user name)."""

    broker: Broker
    topics: list[str]
    client_id: str = ""
    clean_session: bool = True
    username: str = ""
    password: str = ""
    messages: list[Message] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Recorder":
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id or f"rec-{id(self)}",
                                  clean_session=self.clean_session)
        self.client.reconnect_delay_set(0.1, 0.5)
        if self.username:
            self.client.username_pw_set(self.username, self.password)

        def on_connect(client, userdata, flags, reason_code, properties) -> None:
            client.subscribe([(t, 1) for t in self.topics])

        def on_message(client, userdata, message) -> None:
            with self.lock:
                self.messages.append(Message(message.topic, message.payload, bool(message.retain)))

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.connect(self.broker.host, self.broker.port, 30)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, what="recorder subscription")
        return self

    def on(self, topic: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def recorder() -> Iterator[Callable[..., Recorder]]:
    """Factory: ``recorder(broker, ["genrecast/#"], client_id=..., clean_session=False, username=..., password=...)``
    → a started Recorder, stopped at teardown."""
    made: list[Recorder] = []

    def make(broker: Broker, topics: list[str], **kwargs: Any) -> Recorder:
        rec = Recorder(broker, topics, **kwargs).start()
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.stop()


DAEMON_ID = "test"
"""The daemon id :func:`mqtt_env` gives: a daemon's topics are ``<prefix>/test/...``."""


def mqtt_env(broker_host: str, port: int, prefix: str, **extra: str) -> dict[str, str]:
    """``GENRECAST_MQTT_*`` for a broker on 127.0.0.1 with fast reconnects, and daemon id :data:`DAEMON_ID`."""
    env = {"GENRECAST_MQTT_HOST": broker_host, "GENRECAST_MQTT_PORT": str(port), "GENRECAST_MQTT_PREFIX": prefix,
           "GENRECAST_DAEMON_ID": DAEMON_ID,
           "GENRECAST_MQTT_CLIENT_ID": f"daemon-{prefix}", "GENRECAST_MQTT_RECONNECT_MIN_SECONDS": "0.2",
           "GENRECAST_MQTT_RECONNECT_MAX_SECONDS": "1"}
    env.update(extra)
    return env


def publish(broker: Broker, items: list[tuple[str, bytes, bool]]) -> None:
    """Publish (topic, payload, retain) at QoS 1 as another client would, and wait for the acks."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"other-{uuid.uuid4().hex[:6]}")
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in items]
        for info in infos:
            info.wait_for_publish(20)
    finally:
        client.disconnect()
        client.loop_stop()
