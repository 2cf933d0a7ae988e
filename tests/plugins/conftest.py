"""Fixtures for the plugin tests: event factory, condition waits, a real Mosquitto, an MQTT recorder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from genrecast.daemon.events import GenreEvent

LABELS = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
WAIT_SECONDS = 20.0


def make_event(seq: int = 0, source: str = "radio", genre: str | None = "rock", state: str = "music",
               probability: float = 0.8, smoothed_genre: str | None = None, changed: bool = False,
               level_dbfs: float = -20.0, window_seconds: float = 3.0) -> GenreEvent:
    """A valid GenreEvent; the other labels share the rest of the probability."""
    if state == "silence":
        genre, probability, probabilities = None, 0.0, {}
    else:
        rest = (1.0 - probability) / (len(LABELS) - 1)
        probabilities = {label: (probability if label == genre else rest) for label in LABELS}
    return GenreEvent(
        source=source, seq=seq, utc=f"2024-05-01T12:{seq // 20 % 60:02d}:{seq * 3 % 60:02d}.000Z",
        audio_start_seconds=seq * window_seconds, audio_end_seconds=(seq + 1) * window_seconds,
        state=state, genre=genre, probability=probability, probabilities=probabilities,
        smoothed_genre=smoothed_genre if smoothed_genre is not None else genre,
        smoothed_probability=probability * 0.9 if genre else 0.0, changed=changed,
        level_dbfs=-70.0 if state == "silence" else level_dbfs, model_id="test-model")


def wait_for(condition: Callable[[], Any], timeout_seconds: float = WAIT_SECONDS, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def event_factory() -> Callable[..., GenreEvent]:
    return make_event


@pytest.fixture
def waiter() -> Callable[..., Any]:
    return wait_for


from helpers import free_port  # noqa: E402  (re-exported for the reliability tests)


@dataclass
class Broker:
    """One Mosquitto process on 127.0.0.1; ``stop()``/``start()`` keep the port."""

    workdir: Path
    port: int
    password_file: Path | None = None
    persistence: bool = False
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"

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
        return "\n".join(lines) + "\n"

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
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
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


@pytest.fixture
def start_broker(tmp_path_factory) -> Iterator[Callable[..., Broker]]:
    """Factory: ``start_broker(password=None, persistence=False)`` → a running Broker, stopped at teardown."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    brokers: list[Broker] = []

    def start(users: dict[str, str] | None = None, persistence: bool = False) -> Broker:
        workdir = tmp_path_factory.mktemp("mosquitto")
        broker = Broker(workdir, free_port(), password_file(workdir, users), persistence)
        brokers.append(broker)
        broker.start()
        return broker

    yield start
    for broker in brokers:
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
    """A paho client that records every message on its subscriptions."""

    broker: Broker
    topics: list[str]
    client_id: str = ""
    clean_session: bool = True
    messages: list[Message] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Recorder":
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id or f"rec-{id(self)}",
                                  clean_session=self.clean_session)
        self.client.reconnect_delay_set(0.1, 0.5)

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
    """Factory: ``recorder(broker, ["genrecast/#"])`` → a started Recorder, stopped at teardown."""
    made: list[Recorder] = []

    def make(broker: Broker, topics: list[str], **kwargs: Any) -> Recorder:
        rec = Recorder(broker, topics, **kwargs).start()
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.stop()
