"""Shared fixtures: the real test data, a kept numba cache, the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genrecast.daemon.cli import single_threaded_blas

#: One OpenBLAS thread per process, as the ``genrecast`` command gives itself, for the suite's own numpy
#: work and every process it starts (they inherit the setting): the trainer's worker pools run in the test
#: process as they run under ``genrecast train``. With OpenBLAS's default pool, two spawned workers on two
#: cores spun four threads, and the detector's test windows took twice as long. Before numpy is imported.
single_threaded_blas()


from helpers import PCM_RATE, REPO, data_root, need, run_cli  # noqa: E402

#: Service fixtures every test folder may use: Mosquitto and an MQTT recorder, HTTP stream servers,
#: Home Assistant.
pytest_plugins = ("mqtt_services", "stream_services", "ha_services")

os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
Path(os.environ["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)


def _hermetic_config() -> None:
    """Every daemon a test starts sees only the settings the test gives it: not a developer's
    /etc/genrecast/config.toml, nor GENRECAST_* settings exported in their shell."""
    import tempfile

    from genrecast.daemon.config import KEYS, env_name

    for key in KEYS:
        os.environ.pop(env_name(key), None)
    empty = Path(tempfile.mkdtemp(prefix="genrecast-tests-")) / "config.toml"
    empty.write_text("")
    os.environ["GENRECAST_CONFIG"] = str(empty)


_hermetic_config()

@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (or ``$GENRECAST_TEST_DATA``)."""
    return need(data_root())


@pytest.fixture(scope="session")
def gtzan_sample(data_dir: Path) -> Path:
    return need(data_dir / "gtzan-sample")


@pytest.fixture(scope="session")
def gtzan_excerpts(data_dir: Path) -> Path:
    return need(data_dir / "gtzan-excerpts")


@pytest.fixture(scope="session")
def rock_pcm(gtzan_sample: Path) -> bytes:
    """The 30-s GTZAN clip rock.00000 as 16-bit mono PCM at ``PCM_RATE``, what ``genrecast run
    --source - --format s16le --rate PCM_RATE`` reads (2 bytes a sample: slice ``[: 2 * samples]``)."""
    import numpy as np

    from genrecast.daemon.audio import load_audio

    audio = load_audio(gtzan_sample / "rock" / "rock.00000.wav", PCM_RATE)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, gtzan_sample: Path) -> Path:
    """A small MFCC-window bundle trained on gtzan-sample (a few epochs), made once per session."""
    out = tmp_path_factory.mktemp("bundle") / "sample-cnn"
    proc = run_cli("train", str(gtzan_sample), "--out", str(out), "--epochs", "3", "--window-seconds", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
