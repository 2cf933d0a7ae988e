"""Feature shifts measured on real clips under capture conditions, and the table rows they augment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon.features import DEFAULT_SUMMARY_COLUMNS, FeatureConfig
from genrecast.trainer import shifts as S
from genrecast.trainer.splits import read_list

CFG = FeatureConfig(kind="summary", columns=DEFAULT_SUMMARY_COLUMNS, context_seconds=30.0, level="normalised")


def _shifts(n_clips: int = 6, draws: int = 2, n_cols: int = 4) -> S.Shifts:
    rng = np.random.default_rng(1)
    clean = np.repeat(rng.normal(size=(n_clips, 1, n_cols)), len(S.CONTEXTS), axis=1)
    return S.Shifts(
        tracks=np.asarray([f"pop.{i:05d}" for i in range(n_clips)]), genres=np.asarray(["pop"] * n_clips),
        clean=clean, random=clean[:, None] + 100.0 * (1 + np.arange(n_clips))[:, None, None, None] + np.zeros((1, draws, 1, 1)),
        fixed=np.zeros((n_clips, len(S.VALIDATION), len(S.CONTEXTS), n_cols)), names=np.full((n_clips, draws), "x"),
    )


def test_augment_takes_shifts_from_the_nearest_clips_only() -> None:
    shifts = _shifts()
    clips = np.arange(len(shifts.tracks))
    x = shifts.clean[[2, 4], -1] + 1e-3  # two rows, each next to one clip
    out, labels = S.augment(x, np.array([0, 1]), shifts.clean[clips, -1], shifts.deltas(clips), copies=3,
                            rng=np.random.default_rng(0), scale=np.ones(x.shape[1]), neighbours=1)
    assert out.shape == (8, x.shape[1]) and labels.tolist() == [0, 1] * 4
    np.testing.assert_array_equal(out[:2], x)
    moved = out[2:] - np.tile(x, (3, 1))
    # clip k's random rows sit 100 * (k + 1) above its clean row; its clean contexts add nothing
    assert set(np.unique(np.round(moved[0::2], 6))) <= {0.0, 300.0}
    assert set(np.unique(np.round(moved[1::2], 6))) <= {0.0, 500.0}
    assert np.abs(moved).max() == pytest.approx(500.0)


def test_augmentation_never_uses_shifts_of_test_tracks() -> None:
    shifts = _shifts()
    aug = S.Augmentation(shifts, copies=20, neighbours=6)
    x = shifts.clean[:, -1]
    out, _ = aug.rows(x, np.zeros(len(x), int), test_ids=["pop.00005"], scale=np.ones(x.shape[1]), seed=0)
    moved = np.round(out[len(x):] - np.tile(x, (20, 1)), 6)
    assert 600.0 not in moved  # pop.00005's shifts
    assert 500.0 in moved
    again, _ = aug.rows(x, np.zeros(len(x), int), test_ids=["pop.00005"], scale=np.ones(x.shape[1]), seed=0)
    np.testing.assert_array_equal(out, again)  # seeded


def test_shift_clips_leave_out_evaluation_clips_and_reserved_ids(data_dir: Path) -> None:
    reserved = read_list(data_dir / "reserved-ids.txt")
    clips = S.shift_clips(data_dir, reserved | set(S.EVALUATION_CLIPS))
    tracks = {c.track for c in clips}
    assert not tracks & (reserved | set(S.EVALUATION_CLIPS))
    assert {"blues.00001", "pop.00035", "country.00001"} <= tracks
    assert all(c.genre == c.track.split(".")[0] for c in clips)


def test_measured_shifts_are_seeded_and_follow_the_condition(data_dir: Path) -> None:
    """A real clip: the same seed gives the same rows; a 44.1-kHz round trip moves the
    columns that rest on the top band (rolloff) more than a gain (nothing, after level
    normalisation)."""
    clip = next(c for c in S.shift_clips(data_dir, set()) if c.track == "country.00001")
    first = S._measure_clip((clip, CFG, 0, 1))
    again = S._measure_clip((clip, CFG, 0, 1))
    np.testing.assert_array_equal(first["random"], again["random"])
    names = [c.name for c in S.VALIDATION]
    full = first["clean"][-1]
    rolloff = DEFAULT_SUMMARY_COLUMNS.index("rolloff_mean")
    rate = first["fixed"][names.index("rate44100"), -1]
    assert abs(rate[rolloff] - full[rolloff]) > 1.0  # Hz: the resampler's transition band
    np.testing.assert_allclose(first["fixed"][names.index("clean"), -1], full, rtol=1e-6)
