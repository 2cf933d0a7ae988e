"""The Kubernetes example (deploy/kubernetes/genrecast.yaml): valid against the Kubernetes schemas
(offline, kubernetes-validate's bundled schemas), and consistent with the daemon it runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from helpers import REPO

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate (the test extra)")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]' installs kubernetes-validate")

MANIFEST = REPO / "deploy" / "kubernetes" / "genrecast.yaml"


def _documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
def test_every_resource_is_valid_against_the_schemas(version: str) -> None:
    docs = _documents()
    assert set(docs) == {"ConfigMap", "Secret", "Service", "StatefulSet"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError


def test_the_validation_would_catch_a_mistake() -> None:
    sts = copy.deepcopy(_documents()["StatefulSet"])
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")  # a typo: strict validation rejects it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, kubernetes_validate.latest_version(), strict=True)
    sts = copy.deepcopy(_documents()["StatefulSet"])
    sts["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, kubernetes_validate.latest_version(), strict=True)


def test_the_statefulset_runs_the_daemon_as_configured(tmp_path: Path) -> None:
    """Shards from the pod ordinals cover the fleet; the ConfigMap is a valid config; the probes hit
    the daemon's health paths on its metrics port; the Secret is where the daemon reads the password."""
    from genrecast.daemon.config import load_config
    from genrecast.daemon.shard import Shard, parse_shard
    from genrecast.plugins.mqtt_settings import CREDENTIAL_NAME, MqttSettings

    docs = _documents()
    sts = docs["StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    replicas = sts["spec"]["replicas"]
    assert [parse_shard(env["GENRECAST_SHARD"], hostname=f"{sts['metadata']['name']}-{i}") for i in range(replicas)] == \
        [Shard(k, replicas) for k in range(1, replicas + 1)]

    config_file = tmp_path / "config.toml"
    config_file.write_text(docs["ConfigMap"]["data"]["config.toml"])
    config = load_config(config_file, env={})
    assert config.problems == []
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert container["args"] == ["run", "--config", f"{mounts['config']}/config.toml"]
    assert volumes["config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]

    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert config["metrics.enabled"] and config["metrics.host"] == "0.0.0.0" and config["metrics.port"] == port
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {p["port"] for p in probes.values()} == {"metrics"}
    assert [probes[k]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")] == ["/readyz", "/readyz", "/healthz"]

    secret = docs["Secret"]
    assert volumes["mqtt-password"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert env["CREDENTIALS_DIRECTORY"] == mounts["mqtt-password"]
    mounted = tmp_path / "credentials"  # what kubelet writes: one file per key of the Secret
    mounted.mkdir()
    for key, value in secret["stringData"].items():
        (mounted / key).write_text(value)
    assert CREDENTIAL_NAME in secret["stringData"]
    settings = MqttSettings.from_dict(config.section("mqtt"))
    assert settings.resolve_password({"CREDENTIALS_DIRECTORY": str(mounted)}) == secret["stringData"][CREDENTIAL_NAME]


def test_a_secret_the_daemons_user_cannot_read_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    """The Secret mounted as $CREDENTIALS_DIRECTORY/mqtt_password but unreadable by the daemon's user
    (defaultMode 0400, or 0440 without the pod's fsGroup) passed `config check`; `run` then retried the
    broker for ever, as "cannot connect to mosquitto:1883: [Errno 13] Permission denied: '...'", and the
    pod stayed ready and healthy without delivering an event."""
    import os
    import shutil
    import subprocess

    from helpers import EXE, unavailable

    if os.geteuid() != 0:
        pytest.skip("giving the Secret's file to another user (chown) needs root")
    if not shutil.which("setpriv"):
        unavailable("setpriv (util-linux) is needed to run a command without root's file access")
    config = tmp_path / "config.toml"
    config.write_text(_documents()["ConfigMap"]["data"]["config.toml"])
    credentials = tmp_path / "credentials"  # kubelet's layout: the key is a link into ..data
    (credentials / "..data").mkdir(parents=True)
    secret = credentials / "..data" / "mqtt_password"
    secret.write_text(_documents()["Secret"]["stringData"]["mqtt_password"])
    secret.chmod(0o400)
    os.chown(secret, 65534, 65534)  # another user's: without the fsGroup's read access
    (credentials / "mqtt_password").symlink_to("..data/mqtt_password")
    setpriv = shutil.which("setpriv")
    caps = "-dac_override,-dac_read_search"
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)}
    says = (f"the password credential {credentials / 'mqtt_password'} ($CREDENTIALS_DIRECTORY/mqtt_password) cannot be "
            "read by this user; make it readable by the user genrecast runs as (a Kubernetes Secret: defaultMode 0440 "
            "and the pod's securityContext.fsGroup set to that user's group)")
    for args, status in ((("config", "check"), 1), (("run",), 2)):
        proc = subprocess.run([setpriv, "--bounding-set", caps, "--inh-caps", caps, "--", EXE, *args, "-c", str(config)],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == status and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert says in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    secret.chmod(0o444)  # readable: the check passes
    proc = subprocess.run([setpriv, "--bounding-set", caps, "--inh-caps", caps, "--", EXE, "config", "check", "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_secret_whose_key_is_not_mqtt_password_is_named_by_config_check(tmp_path: Path) -> None:
    """A Secret with the password under another key (password, mqtt-password) mounts no
    $CREDENTIALS_DIRECTORY/mqtt_password: the daemon logged in without a password, and the broker's
    "Not authorized" was all an operator saw. config check (and run, in its log) now says which key it wants."""
    import os

    from helpers import run_cli

    config = tmp_path / "config.toml"
    config.write_text(_documents()["ConfigMap"]["data"]["config.toml"])
    credentials = tmp_path / "credentials"
    (credentials / "..data").mkdir(parents=True)
    (credentials / "..data" / "password").write_text(_documents()["Secret"]["stringData"]["mqtt_password"])
    (credentials / "password").symlink_to("..data/password")
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)}
    check = run_cli("config", "check", "-c", str(config), env=env)
    assert check.returncode == 0 and check.stderr.splitlines() == [
        f"genrecast: warning: mqtt.username is set but no password: $CREDENTIALS_DIRECTORY ({credentials}) holds no "
        "mqtt_password (it holds password); name the Secret's key (or the LoadCredential= credential) mqtt_password"
    ], check.stderr
    (credentials / "mqtt_password").symlink_to("..data/password")  # the manifest's key: nothing to say
    check = run_cli("config", "check", "-c", str(config), env=env)
    assert check.returncode == 0 and check.stderr == "", check.stderr
