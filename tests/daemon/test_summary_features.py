"""Summary features computed from audio match the published table; the shipped bundle classifies real clips."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, sample_clips

from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig, clip_summary
from genrecast.trainer.table import read_table, track_id

log = logging.getLogger(__name__)

CFG = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, context_seconds=30.0, window_seconds=3.0)


@pytest.fixture(scope="module")
def table(data_dir: Path):
    return read_table(data_dir / "reference" / "features_30_sec.csv")


@pytest.fixture(scope="module")
def summaries(gtzan_sample: Path) -> dict[str, np.ndarray]:
    """Whole-clip summary features of every gtzan-sample clip (track id -> row)."""
    import librosa

    out = {}
    for path in sample_clips(gtzan_sample):
        y, _ = librosa.load(path, sr=CFG.sample_rate, mono=True)
        out[track_id(path.name)] = clip_summary(y, CFG)
    return out


@pytest.mark.slow
def test_summary_matches_published_table(summaries, table) -> None:
    """Median relative error <= 1%; in every column each clip within 10% relative error, or,
    for values near zero (pop.00035's mfcc12_mean is -0.010 against -0.019), within a tenth
    of that column's standard deviation across the table."""
    assert len(summaries) == 19
    index = {t: i for i, t in enumerate(table.ids.tolist())}
    ids = sorted(summaries)
    ours = np.stack([summaries[t] for t in ids]).astype(np.float64)
    ref = np.stack([table.x[index[t]] for t in ids])
    err = np.abs(ours - ref)
    rel = err / np.maximum(np.abs(ref), 1e-12)
    spread = table.x.std(axis=0)
    worst_per_column = rel.max(axis=0)
    worst = int(worst_per_column.argmax())
    clip = ids[int(rel[:, worst].argmax())]
    log.info(
        "median relative error %.4f%%; worst column %s: %.2f%% on %s (%.3f column stds)",
        100 * np.median(rel), CFG.columns[worst], 100 * worst_per_column[worst], clip, (err / spread)[:, worst].max(),
    )
    assert np.median(rel) <= 0.01, f"median relative error {np.median(rel):.4f}"
    column_medians = np.median(rel, axis=0)
    assert column_medians.max() <= 0.10, f"{CFG.columns[int(column_medians.argmax())]} median error {column_medians.max():.3f}"
    bad = (rel > 0.10) & (err > 0.1 * spread)
    assert not bad.any(), {
        f"{ids[i]}:{CFG.columns[j]}": (round(float(ours[i, j]), 5), round(float(ref[i, j]), 5)) for i, j in zip(*np.nonzero(bad))
    }


@pytest.mark.slow
def test_chroma_follows_each_clips_tuning(gtzan_sample, summaries, table) -> None:
    """librosa's chroma_stft first estimates the recording's tuning (piptrack peaks) and shifts
    its filterbank by it; so do we. Our estimate equals librosa.estimate_tuning on every clip,
    and both chroma columns are within 1% of the table on every clip (country.00000, tuned
    +0.31 of a semitone sharp, was 5.6% off when we assumed A440)."""
    import librosa

    from genrecast.daemon.features import estimate_tuning, frame_statistics

    tunings = {}
    for path in sample_clips(gtzan_sample):
        y, _ = librosa.load(path, sr=CFG.sample_rate, mono=True)
        frames = frame_statistics(y, CFG)
        ours = estimate_tuning(frames["pitch_magnitude"], frames["pitch_bin"])
        theirs = librosa.estimate_tuning(S=np.abs(librosa.stft(y)) ** 2, sr=CFG.sample_rate, bins_per_octave=12)
        assert ours == pytest.approx(theirs, abs=1e-9), path.name
        tunings[track_id(path.name)] = ours
    assert max(abs(t) for t in tunings.values()) >= 0.25  # the clips do include off-A440 recordings
    index = {t: i for i, t in enumerate(table.ids.tolist())}
    for column in ("chroma_stft_mean", "chroma_stft_var"):
        j = CFG.columns.index(column)
        for t, row in summaries.items():
            assert row[j] == pytest.approx(table.x[index[t], j], rel=0.01), (t, column, tunings[t])


def full_clip_ids(summaries: dict[str, np.ndarray]) -> list[str]:
    """Clips whose ids are outside 00001-00050 (the excerpt ids), so whole 30-s tracks only."""
    return sorted(t for t in summaries if not 1 <= int(t.split(".")[1]) <= 50)


#: Right answers the shipped bundle must give on the 13 full clips: the robustness issue's clean
#: target. The default (v8) is musicnn's layers with a genre head chosen on 56 other held-out clips,
#: never on these; it names 10 of them. (The table model before it, daemon/table_bundle, names 6:
#: taking the level out of its inputs cost it GTZAN's recording levels as a cue.)
MIN_RIGHT_OF_13 = 9  # the robustness issue's clean target (the musicnn default gets 10)


def _verdicts(files: list[Path]) -> dict[str, str]:
    import json

    from helpers import run_cli

    proc = run_cli("classify", "--json", *map(str, files))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {Path(v["file"]).stem: v["genre"] for v in map(json.loads, proc.stdout.splitlines()) if v["type"] == "verdict"}


@pytest.mark.slow
def test_default_bundle_names_full_clips_whatever_the_volume(summaries, gtzan_sample, tmp_path) -> None:
    """`genrecast classify` with the default bundle (its verdict: the mean over the windows) on the
    13 full clips, as they are and turned down
    12 dB by ffmpeg into 16-bit WAVs (the volume knob): the same 13 verdicts."""
    import subprocess

    ids = full_clip_ids(summaries)
    assert ids == [
        "blues.00000", "blues.00053", "blues.00099", "classical.00000", "country.00000", "disco.00000",
        "hiphop.00000", "jazz.00000", "jazz.00054", "metal.00000", "pop.00000", "reggae.00000", "rock.00000",
    ]
    files = [next((gtzan_sample / t.split(".")[0]).glob(t + ".*")) for t in ids]
    verdicts = _verdicts(files)
    missed = {t: g for t, g in verdicts.items() if g != t.split(".")[0]}
    log.info("default bundle on %d full clips: %d right; missed %s", len(ids), len(ids) - len(missed), missed)
    assert len(verdicts) == 13
    assert len(ids) - len(missed) >= MIN_RIGHT_OF_13, f"only {len(ids) - len(missed)}/13 right; missed {missed}"
    quieter = []
    for f in files:
        out = tmp_path / (f.stem + ".wav")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(f), "-af", "volume=-12dB", "-c:a", "pcm_s16le", str(out)],
                       check=True, timeout=60)
        quieter.append(out)
    assert _verdicts(quieter) == verdicts


def test_rolling_context_matches_whole_clip_and_is_marked(gtzan_sample) -> None:
    """The daemon's rolling 30-s context, fed window by window, gives the whole-clip features."""
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.features import RollingSummary

    y = load_audio(gtzan_sample / "rock" / "rock.00000.wav", CFG.sample_rate)
    rolling = RollingSummary(CFG)
    covered = []
    for start in range(0, len(y), CFG.window_samples):
        rolling.push(y[start : start + CFG.window_samples])
        covered.append(rolling.covered_seconds)
    assert covered[0] == pytest.approx(3.0) and covered[-1] == pytest.approx(30.0)
    ours, whole = rolling.features(), clip_summary(y, CFG)
    rel = np.abs(ours - whole) / np.maximum(np.abs(whole), 1e-3)
    assert np.median(rel) <= 0.01, np.median(rel)


def test_rolling_context_keeps_exactly_the_last_30_seconds_of_frames(gtzan_sample) -> None:
    """Over a 70-s stream pushed in uneven pieces, the rolling features equal the statistics
    of the last ``context_seconds`` of frames of the whole stream, before and after the
    frame ring wraps (twice), MFCC floor changes included."""
    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.features import RollingSummary, _frame_values, summarise

    clips = [gtzan_sample / "jazz" / "jazz.00000.wav", gtzan_sample / "metal" / "metal.00000.wav",
             gtzan_sample / "classical" / "classical.00000.wav"]
    y = np.concatenate([load_audio(p, CFG.sample_rate) for p in clips])[: 70 * CFG.sample_rate]
    padded = np.concatenate([np.zeros(CFG.n_fft // 2, np.float32), y])
    rolling = RollingSummary(CFG)
    capacity = int(CFG.context_seconds * CFG.sample_rate / CFG.hop_length) + 1
    pieces, start, checked = [66150, 1000, 40000, 311], 0, 0
    for n, size in enumerate(pieces * 100):
        if start >= len(y):
            break
        rolling.push(y[start : start + size])
        start += size
        if n % 4 == 3 or start >= len(y):
            seen = padded[: CFG.n_fft // 2 + min(start, len(y))]
            count = 1 + (len(seen) - CFG.n_fft) // CFG.hop_length
            frames = {k: v[-capacity:] for k, v in _frame_values(seen, count, CFG).items()}
            expected = summarise(frames, CFG)
            np.testing.assert_allclose(rolling.features(), expected, rtol=2e-5, atol=1e-6)
            checked += 1
    assert checked >= 10 and len(y) / CFG.hop_length > 2 * capacity  # the ring wrapped twice


def test_blocked_rolloff_search_finds_the_first_bin_past_85_percent() -> None:
    """The block-by-block rolloff search against the plain definition (librosa's cumsum rule),
    on real-looking spectra and on the edges: silence, all energy in the last bin, one bin."""
    from genrecast.daemon.features import _rolloff_bins

    rng = np.random.default_rng(0)
    mag = (rng.pareto(1.5, (200, 1025)) * rng.random((200, 1))).astype(np.float32)
    mag[0] = 0.0
    mag[1] = 0.0
    mag[1, -1] = 3.0
    mag[2] = 0.0
    mag[2, 517] = 1.0
    cumulative = np.cumsum(mag.astype(np.float64), axis=1)
    expected = np.argmax(cumulative >= 0.85 * cumulative[:, -1:], axis=1)
    got = _rolloff_bins(mag)
    assert got[:3].tolist() == [0, 1024, 517]
    assert np.mean(got == expected) >= 0.99  # float32 block sums may land one bin off exactly at the threshold
    assert np.abs(got - expected).max() <= 1
