"""The ``[mqtt]`` settings: how to reach the broker and what to publish (:class:`MqttSettings`)."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from genrecast.plugins.settings import settings_from_dict

ENV_PREFIX = "GENRECAST_MQTT_"
CREDENTIAL_NAME = "mqtt_password"


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker and what to publish. Keys mirror ``[mqtt]`` in the config file."""

    host: str = "localhost"
    """Broker host name or address."""
    port: int = 1883
    """Broker port (8883 is usual with TLS)."""
    username: str = ""
    """User name; empty connects anonymously."""
    password: str = ""
    """Password; prefer ``password_file``, ``GENRECAST_MQTT_PASSWORD`` or the systemd credential ``mqtt_password``."""
    password_file: str = ""
    """File whose first line is the password (read at every connection attempt)."""
    client_id: str = ""
    """MQTT client id; empty means ``genrecast-<daemon_id>``. Two clients with one id take the
    session from each other, so give each its own."""
    prefix: str = "genrecast"
    """Topic prefix; this daemon's topics are ``<prefix>/<daemon_id>/...``."""
    qos: int = 1
    """QoS of event and state messages (0, 1 or 2)."""
    keepalive_seconds: int = 60
    """MQTT keepalive; the broker sends the last will after 1.5 times this of silence."""
    tls: bool = False
    """Connect with TLS."""
    ca_file: str = ""
    """CA certificate file for TLS; empty uses the system CAs."""
    cert_file: str = ""
    """Client certificate file for TLS (with ``key_file``)."""
    key_file: str = ""
    """Client key file for TLS."""
    insecure: bool = False
    """Skip the TLS host-name check (tests only, never in production)."""
    discovery: bool = True
    """Publish Home Assistant discovery messages."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix."""
    state_interval_seconds: float = 5.0
    """Publish each source's retained state at most this often (seconds; a genre change goes out
    at once). Home Assistant's ``expire_after`` is :meth:`expire_after_seconds`."""
    queue_size: int = 10000
    """Events kept while the broker is away; beyond this the oldest are dropped."""
    reconnect_min_seconds: float = 1.0
    """First reconnect delay; doubles after each failure."""
    reconnect_max_seconds: float = 30.0
    """Longest reconnect delay."""
    connect_timeout_seconds: float = 5.0
    """Longest wait for one TCP/TLS connection attempt."""

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        if any(c.isspace() for c in self.host):  # "localhost " failed every lookup, for ever, as a connection error
            raise ValueError(f"host {self.host!r} holds a space; give host = \"{''.join(self.host.split())}\"")
        if "://" in self.host:
            raise ValueError(f"host {self.host!r} is a URL; give the broker's name or address alone (and port, tls as "
                             "settings of their own)")
        name, colon, port = self.host.rpartition(":")
        if colon and port.isdigit() and ":" not in name:  # host:port (an IPv6 address has more colons)
            raise ValueError(f"host {self.host!r} holds a port; give host = \"{name}\" and port = {port}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, not {self.port}")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {self.qos}")
        for name in ("prefix", "discovery_prefix"):
            value = getattr(self, name)
            if not value or any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
                raise ValueError(f"{name} {value!r} must be a non-empty topic without + # or a leading/trailing /")
        if not 5 <= self.keepalive_seconds <= 65535:
            raise ValueError(f"keepalive_seconds must be between 5 and 65535, not {self.keepalive_seconds}")
        if self.state_interval_seconds <= 0 or self.queue_size < 1:
            raise ValueError("state_interval_seconds must be positive and queue_size at least 1")
        if not 0 < self.reconnect_min_seconds <= self.reconnect_max_seconds or self.connect_timeout_seconds <= 0:
            raise ValueError("need 0 < reconnect_min_seconds <= reconnect_max_seconds and connect_timeout_seconds > 0")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        if self.password_file and os.path.exists(self.password_file) and not os.access(self.password_file, os.R_OK):
            raise ValueError(f"password_file {self.password_file} cannot be read by this user; make it readable by the user "
                             "genrecast runs as, or under systemd use the credential mqtt_password (see the README)")
        credential = self.credential_file()
        if credential is not None and not os.access(credential, os.R_OK):
            raise ValueError(f"the password credential {credential} ($CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}) cannot be "
                             "read by this user; make it readable by the user genrecast runs as (a Kubernetes Secret: "
                             "defaultMode 0440 and the pod's securityContext.fsGroup set to that user's group)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "MqttSettings":
        """Validated settings from a ``[mqtt]`` section; raises :class:`SinkConfigError`."""
        return settings_from_dict(cls, values, "mqtt")

    def effective_client_id(self, daemon_id: str) -> str:
        """``client_id``, else ``genrecast-<daemon_id>``."""
        return self.client_id or f"genrecast-{daemon_id}"

    def expire_after_seconds(self) -> int:
        """Home Assistant marks a source's entities unavailable after this long without a state:
        4 publish intervals, and never under 120 s (a window hop may be up to 60 s)."""
        return max(120, int(4 * self.state_interval_seconds + 0.999))

    def configure_tls(self, client: Any) -> None:
        """TLS on a paho client when ``tls`` is set (raises ``OSError``/``ValueError`` for a bad file)."""
        if self.tls:
            client.tls_set(ca_certs=self.ca_file or None, certfile=self.cert_file or None, keyfile=self.key_file or None,
                           cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(self.insecure)

    def connect(self, client: Any) -> None:
        """Log in (the password is read anew each time) and connect a paho client."""
        password = self.resolve_password()
        if self.username or password:
            client.username_pw_set(self.username or None, password)
        client.connect(self.host, self.port, self.keepalive_seconds)

    def resolve_password(self, env: Mapping[str, str] | None = None) -> str | None:
        """``password``, else ``password_file``, else ``$GENRECAST_MQTT_PASSWORD``, else the
        systemd credential ``$CREDENTIALS_DIRECTORY/mqtt_password``; None if none is set.
        Raises ``OSError`` if a named file cannot be read."""
        env = os.environ if env is None else env
        if self.password:
            return self.password
        if self.password_file:
            text = Path(self.password_file).read_text()
            return text.splitlines()[0] if text else ""
        if env.get(ENV_PREFIX + "PASSWORD"):
            return env[ENV_PREFIX + "PASSWORD"]
        credential = self.credential_file(env)
        return None if credential is None else credential.read_text().strip("\r\n")

    def credential_file(self, env: Mapping[str, str] | None = None) -> Path | None:
        """The systemd credential (or Kubernetes Secret) file ``$CREDENTIALS_DIRECTORY/mqtt_password``
        when it exists and no ``password``, ``password_file`` or ``$GENRECAST_MQTT_PASSWORD`` comes first."""
        env = os.environ if env is None else env
        if self.password or self.password_file or env.get(ENV_PREFIX + "PASSWORD"):
            return None
        creds = env.get("CREDENTIALS_DIRECTORY")
        if creds and (Path(creds) / CREDENTIAL_NAME).is_file():
            return Path(creds) / CREDENTIAL_NAME
        return None
