"""Splits: no track on both sides (track split and split lists); the segment split warns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrecast.trainer.splits import SplitError, list_split, segment_split, track_split
from helpers import GTZAN_LABELS as GENRES


def _gtzan_like(windows_per_track: int = 10) -> tuple[np.ndarray, np.ndarray]:
    ids, labels = [], []
    for g, genre in enumerate(GENRES):
        for n in range(100):
            ids += [f"{genre}.{n:05d}"] * windows_per_track
            labels += [g] * windows_per_track
    return np.array(labels), np.array(ids)


def _sides(split, ids):
    return [set(ids[getattr(split, p)].tolist()) for p in ("train", "valid", "test")]


def test_track_split_is_grouped_and_stratified() -> None:
    y, ids = _gtzan_like()
    split = track_split(y, ids, seed=3)
    train, valid, test = _sides(split, ids)
    assert not (train & test) and not (train & valid) and not (valid & test)
    assert len(train | valid | test) == 1000
    test_labels = y[split.test]
    assert np.all(np.bincount(test_labels) == np.bincount(test_labels)[0])  # same count per genre
    assert track_split(y, ids, seed=3).test.tolist() == split.test.tolist()  # repeatable


def test_artist_filtered_lists(data_dir: Path) -> None:
    lists = data_dir / "splits" / "jongpillee_music_dataset_split" / "GTZAN_split"
    y, ids = _gtzan_like(windows_per_track=3)
    split, missing = list_split(y, ids, lists)
    train, valid, test = _sides(split, ids)
    assert (len(train), len(valid), len(test)) == (443, 197, 290)
    assert not (train & test) and not (valid & test) and not (train & valid)
    assert missing == {"train": 0, "valid": 0, "test": 0}


def test_lists_without_valid_draw_validation_from_train(tmp_path: Path) -> None:
    y, ids = _gtzan_like(windows_per_track=2)
    (tmp_path / "train.txt").write_text("\n".join(f"{g}/{g}.{n:05d}.wav" for g in GENRES for n in range(0, 70)))
    (tmp_path / "test.txt").write_text("\n".join(f"{g}/{g}.{n:05d}.wav" for g in GENRES for n in range(70, 100)))
    split, _ = list_split(y, ids, tmp_path)
    train, valid, test = _sides(split, ids)
    assert len(test) == 300 and len(train) + len(valid) == 700 and valid and not (train & valid)


def test_lists_written_by_a_windows_editor_read_as_any_other(tmp_path: Path) -> None:
    """Notepad's UTF-8 starts the file with a byte-order mark: the first line's id became another
    (a reserved id trained on, a listed track left out), and an indented comment was an id."""
    from genrecast.trainer.splits import read_list, reserved_ids_near

    (tmp_path / "reserved-ids.txt").write_bytes("\ufeff# kept for later\r\nblues.00066\r\n  # an indented note\r\n"
                                                "jazz.00054\r\n".encode())
    assert read_list(tmp_path / "reserved-ids.txt") == {"blues.00066", "jazz.00054"}
    assert reserved_ids_near(tmp_path / "features_30_sec.csv") == {"blues.00066", "jazz.00054"}
    y, ids = _gtzan_like(windows_per_track=1)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_bytes(b"\xef\xbb\xbfblues/blues.00001.wav\r\nblues/blues.00002.wav\r\n")
    (tmp_path / "lists" / "test.txt").write_bytes(b"\xef\xbb\xbfblues/blues.00003.wav\r\n")
    split, missing = list_split(y, ids, tmp_path / "lists")
    train, valid, test = _sides(split, ids)
    assert train | valid == {"blues.00001", "blues.00002"} and test == {"blues.00003"}
    assert missing == {"train": 0, "valid": 0, "test": 0}


def test_overlapping_lists_are_refused(tmp_path: Path) -> None:
    y, ids = _gtzan_like(windows_per_track=1)
    (tmp_path / "train.txt").write_text("blues/blues.00001.wav\n")
    (tmp_path / "test.txt").write_text("blues/blues.00001.wav\n")
    with pytest.raises(SplitError, match="two sides"):
        list_split(y, ids, tmp_path)


def test_segment_split_mixes_tracks_and_warns() -> None:
    y, ids = _gtzan_like()
    split = segment_split(len(y), seed=0)
    train, _, test = _sides(split, ids)
    assert len(train & test) > 500  # siblings of test windows are trained on
    assert "inflated" in split.warning
    assert not (split.train & split.test).any()


def test_track_split_names_the_genres_it_cannot_test() -> None:
    """A genre gives test tracks only from 3 tracks; the error said 'each genre needs at least 3'
    though a dataset with some smaller genres trains fine (those genres are just never tested).
    The split now says which genres that is, and the error states the rule."""
    y = np.repeat([0, 0, 0, 1, 2, 2], 4)
    ids = np.repeat([f"g.{i:05d}" for i in range(6)], 4)
    split = track_split(y, ids, seed=0, labels=["blues", "jazz", "rock"])
    assert split.warning and "2 of 3 genres have fewer than 3 tracks" in split.warning and "(jazz, rock)" in split.warning
    assert track_split(np.repeat([0, 0, 0], 2), np.repeat(["a", "b", "c"], 2), seed=0).warning is None
    with pytest.raises(SplitError, match="a genre gives test tracks only from 3 tracks"):
        track_split(np.repeat([0, 0, 1, 1], 2), np.repeat(["a", "b", "c", "d"], 2), seed=0)


def test_tracks_in_no_split_list_are_named_not_dropped_silently(tmp_path, capsys) -> None:
    """With --split-lists, dataset files the lists do not name were left out without a word."""
    from genrecast.trainer.extract import FeatureSet
    from genrecast.trainer.train import TrainSettings, make_split

    (tmp_path / "train.txt").write_text("blues/blues.00000.wav\nblues/blues.00001.wav\njazz/jazz.00000.wav\n")
    (tmp_path / "test.txt").write_text("jazz/jazz.00001.wav\n")
    ids = np.array(["blues.00000", "blues.00001", "jazz.00000", "jazz.00001", "jazz.00002", "rock.00007"])
    features = FeatureSet(x=np.zeros((6, 2)), y=np.array([0, 0, 1, 1, 1, 2]), track_ids=ids)
    split = make_split(features, TrainSettings(split_lists=tmp_path))
    assert not (split.train | split.valid | split.test)[4:].any()
    assert (f"WARNING: 2 tracks of the dataset are in none of the lists in {tmp_path} (jazz.00002, rock.00007), so they "
            "are left out; add them to a list to use them") in capsys.readouterr().err
