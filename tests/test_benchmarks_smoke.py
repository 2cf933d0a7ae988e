"""The benchmark suite's entry point runs (``--quick``, cheap figures only); no timing assertions.

Also: the numpy filterbanks and window in ``genrecast.daemon.features`` equal scipy's and
librosa's exactly (they replace them so the daemon imports neither; see benchmarks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO


@pytest.mark.slow
def test_quick_suite_runs_and_writes_json(tmp_path: Path, data_dir: Path, gtzan_sample: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--repeats", "1", "--only", "parity,classify,startup",
         "--data", str(data_dir), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "figure" in proc.stdout and "median" in proc.stdout
    payload = json.loads(out.read_text())
    assert payload["quick"] is True and payload["machine"]["nproc"] >= 1
    names = {r["name"] for r in payload["results"]}
    assert names == {"parity", "classify", "startup"}
    assert all(r["median"] is not None for r in payload["results"])


def test_unknown_figure_is_refused() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nope"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "unknown figure" in proc.stderr


@pytest.mark.parametrize("sr,n_fft,n_mels", [(22050, 2048, 128), (16000, 512, 40), (44100, 4096, 96), (8000, 256, 20)])
def test_filterbanks_equal_scipy_and_librosa(sr: int, n_fft: int, n_mels: int) -> None:
    librosa = pytest.importorskip("librosa")
    import scipy.signal

    from genrecast.daemon.features import _hann, chroma_filterbank, mel_filterbank

    assert np.array_equal(_hann.__wrapped__(n_fft), scipy.signal.get_window("hann", n_fft, fftbins=True))
    mel = mel_filterbank(sr, n_fft, n_mels)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert mel.dtype == ref.dtype and np.array_equal(mel, ref)
    chroma = chroma_filterbank(sr, n_fft)
    ref = librosa.filters.chroma(sr=sr, n_fft=n_fft)
    assert chroma.dtype == ref.dtype and np.array_equal(chroma, ref)


def test_daemon_feature_path_imports_neither_librosa_nor_scipy_signal() -> None:
    code = (
        "import sys, numpy as np; from genrecast.daemon.features import FeatureConfig, window_features, frame_statistics; "
        "c = FeatureConfig(); window_features(np.zeros(c.window_samples, np.float32), c); "
        "frame_statistics(np.zeros(c.window_samples), c); "
        "print('librosa' in sys.modules, 'scipy.signal' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
