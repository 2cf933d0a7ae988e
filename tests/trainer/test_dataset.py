"""Dataset scanning, extraction with its cache, and bad files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from genrecast.daemon.features import FeatureConfig
from genrecast.trainer.dataset import DatasetError, normalise_track_id, scan_dataset
from genrecast.trainer.extract import extract_dataset


def _link_clips(src: Path, dst: Path, genres: list[str], per_genre: int = 2) -> None:
    for genre in genres:
        (dst / genre).mkdir(parents=True)
        for clip in sorted((src / genre).glob("*.wav"))[:per_genre]:
            (dst / genre / clip.name).symlink_to(clip)


def test_kaggle_layout(tmp_path: Path, gtzan_sample: Path) -> None:
    root = tmp_path / "gtzan"
    _link_clips(gtzan_sample, root / "genres_original", ["blues", "classical", "jazz"])
    ds = scan_dataset(root)
    assert ds.labels == ("blues", "classical", "jazz")
    assert [t.track_id for t in ds.tracks][:2] == ["blues.00000", "blues.00001"]
    assert len(ds.tracks) == 6


def test_original_au_layout(tmp_path: Path, gtzan_sample: Path) -> None:
    """The original GTZAN distribution: genres/<genre>/*.au, decoded for real."""
    for genre in ("classical", "pop"):
        (tmp_path / "genres" / genre).mkdir(parents=True)
        for clip in sorted((gtzan_sample / genre).glob("*.wav"))[:2]:
            out = tmp_path / "genres" / genre / (clip.stem + ".au")
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(clip), "-t", "7", str(out)], check=True)
    ds = scan_dataset(tmp_path)
    assert ds.labels == ("classical", "pop")
    features = extract_dataset(ds, FeatureConfig(), workers=1, use_cache=False, progress=False)
    assert features.x.shape == (8, 130, 13)  # 2 windows of 3 s in each 7-s clip
    assert sorted(set(features.track_ids.tolist())) == ["classical.00000", "classical.00001", "pop.00000", "pop.00035"]


def test_corrupt_and_short_files_are_skipped_and_listed(tmp_path: Path, gtzan_sample: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ds"
    _link_clips(gtzan_sample, root, ["blues", "jazz"], per_genre=1)
    (root / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    str(root / "blues" / "blues.00099.wav")], check=True)
    # 7 s of digital silence: the daemon would never give its windows a genre, so they teach none
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", "7",
                    str(root / "jazz" / "jazz.00098.wav")], check=True)
    ds = scan_dataset(root)
    features = extract_dataset(ds, FeatureConfig(), workers=2, progress=False)
    skipped = {Path(p).name: reason for p, reason in features.skipped}
    assert set(skipped) == {"jazz.00054.wav", "blues.00099.wav", "jazz.00098.wav"}
    assert "too short" in skipped["blues.00099.wav"]
    assert "silent (its loudest 3-s window is -120.0 dBFS, under the silence gate's -65 dBFS)" in skipped["jazz.00098.wav"]
    assert set(features.track_ids.tolist()) == {"blues.00000", "jazz.00000"}
    again = extract_dataset(ds, FeatureConfig(), workers=2, progress=False)
    assert again.from_cache and np.array_equal(again.x, features.x) and len(again.skipped) == 3
    other = extract_dataset(ds, FeatureConfig(n_mfcc=20), workers=2, progress=False)
    assert not other.from_cache and other.x.shape[-1] == 20


def test_empty_and_single_genre_datasets_are_clear_errors(tmp_path: Path, gtzan_sample: Path) -> None:
    (tmp_path / "empty" / "rock").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no audio files"):
        scan_dataset(tmp_path / "empty")
    _link_clips(gtzan_sample, tmp_path / "one", ["blues"])
    with pytest.raises(DatasetError, match="only one genre"):
        scan_dataset(tmp_path / "one")


def test_audio_files_outside_the_genre_folders_are_named_not_dropped(tmp_path: Path, gtzan_sample: Path, caplog) -> None:
    """A flat folder of GTZAN files (blues.00000.wav, no genre folders) was said to hold "no audio
    files", and a file beside the genre folders was left out without a word."""
    import logging

    flat = tmp_path / "flat"
    flat.mkdir()
    for genre in ("blues", "classical"):
        for clip in sorted((gtzan_sample / genre).glob("*.wav"))[:2]:
            (flat / clip.name).symlink_to(clip)
    (flat / "._blues.00000.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # a Mac's metadata, not audio
    with pytest.raises(DatasetError) as caught:
        scan_dataset(flat)
    assert str(caught.value) == (
        f"dataset {flat} holds 4 audio files directly (blues.00000.wav, blues.00001.wav, classical.00000.wav, ...) but no "
        f"genre sub-folders, and a file's genre is the name of its folder; move each file into a folder named after its "
        f"genre ({flat / 'blues' / 'blues.00000.wav'})")
    blues = tmp_path / "genres" / "blues"  # one genre's folder given for the dataset
    _link_clips(gtzan_sample, tmp_path / "genres", ["blues"], per_genre=2)
    with pytest.raises(DatasetError) as caught:
        scan_dataset(blues)
    assert str(caught.value) == (f"dataset {blues} is one genre's folder (2 audio files, blues.00000.wav, blues.00001.wav); "
                                 f"give the folder that holds one such folder per genre ({tmp_path / 'genres'})")
    # beside genre folders: used as before, and the loose file is named
    _link_clips(gtzan_sample, flat, ["jazz", "metal"], per_genre=1)
    (flat / "Pop.00000.WAV").symlink_to(gtzan_sample / "pop" / "pop.00000.wav")
    with caplog.at_level(logging.WARNING, logger="genrecast.trainer.dataset"):
        ds = scan_dataset(flat)
    assert ds.labels == ("jazz", "metal") and len(ds.tracks) == 2
    assert (f"5 audio files directly in {flat} (Pop.00000.WAV, blues.00000.wav, blues.00001.wav, ...), in no genre "
            "folder, left out; move each into its genre's folder to use it") in caplog.text


def test_a_whole_dataset_inside_the_given_folder_is_not_taken_for_a_genre(tmp_path: Path, gtzan_sample: Path) -> None:
    """Kaggle's zip unpacked into ~/Downloads (archive/Data/genres_original/<genre>/) beside another folder:
    `train ~/Downloads` trained "archive" against "other", every genre's files labelled archive, and
    printed a per-track accuracy of 1.000."""
    downloads = tmp_path / "Downloads"
    _link_clips(gtzan_sample, downloads / "archive" / "Data" / "genres_original", ["blues", "jazz"])
    _link_clips(gtzan_sample, downloads / "other", ["pop"], per_genre=1)
    with pytest.raises(DatasetError) as caught:
        scan_dataset(downloads)
    assert str(caught.value) == (
        f"{downloads / 'archive'} is not a genre folder but a dataset of its own (its genre folders are in "
        f"{downloads / 'archive' / 'Data' / 'genres_original'}); give {downloads / 'archive'} as the dataset")
    assert scan_dataset(downloads / "archive").labels == ("blues", "jazz")


def test_track_ids_from_list_entries() -> None:
    assert normalise_track_id("blues/blues.00012.wav") == "blues.00012"
    assert normalise_track_id("./blues_00012.wav") == "blues.00012"
    assert normalise_track_id("classical.00003.au") == "classical.00003"
    # pieces and copies of one GTZAN clip are that clip's track
    for name in ("blues.00012.3.wav", "blues.00012 copy.flac", "Blues.00012-2.WAV", "blues_00012_7.wav", "blues.00012 (1).mp3"):
        assert normalise_track_id(name) == "blues.00012", name
    assert normalise_track_id("blues.000123.wav") == "blues.000123"  # not a GTZAN id
    assert normalise_track_id("My Song.mp3") == "my song"


def test_pieces_of_one_clip_are_one_track_and_stay_on_one_side_of_the_split(tmp_path: Path, gtzan_sample: Path) -> None:
    """Kaggle's 3-s segments (genre.NNNNN.K.wav) were tracks of their own: pieces of one recording
    were trained on and tested on (per-track accuracy 0.87 against 0.17 for the same audio whole)."""
    from genrecast.trainer.splits import track_split

    root = tmp_path / "pieces"
    for genre in ("blues", "classical", "jazz"):
        (root / genre).mkdir(parents=True)
        for clip in sorted((gtzan_sample / genre).glob("*.wav"))[:3]:
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(clip), "-t", "12", "-f", "segment",
                            "-segment_time", "3", "-c:a", "pcm_s16le", str(root / genre / f"{clip.stem}.%d.wav")], check=True)
    ds = scan_dataset(root)
    assert len(ds.tracks) == 36 and len({t.track_id for t in ds.tracks}) == 9
    features = extract_dataset(ds, FeatureConfig(), workers=2, use_cache=False, progress=False)
    assert sorted(set(features.track_ids.tolist())) == sorted({t.track_id for t in ds.tracks})
    split = track_split(features.y, features.track_ids, seed=0)
    sides = [set(features.track_ids[getattr(split, part)].tolist()) for part in ("train", "valid", "test")]
    assert sides[2] and not (sides[0] & sides[2]) and not (sides[1] & sides[2]) and not (sides[0] & sides[1])


def test_training_leaves_the_reserved_ids_out(tmp_path: Path, gtzan_sample: Path, data_dir: Path, caplog) -> None:
    """The excerpts folder holds reserved ids: training on it used them (and tested on some)."""
    import logging

    from genrecast.trainer.splits import read_list
    from genrecast.trainer.train import training_dataset

    excerpts = data_dir / "gtzan-excerpts"
    reserved = read_list(data_dir / "reserved-ids.txt")
    with caplog.at_level(logging.INFO, logger="genrecast.trainer.train"):
        ds = training_dataset(excerpts)
    whole = scan_dataset(excerpts)
    held = {t.track_id for t in whole.tracks} & reserved
    assert held and not {t.track_id for t in ds.tracks} & reserved
    assert len(ds.tracks) == len(whole.tracks) - len(held) and ds.labels == whole.labels
    assert f"leaving out the {len(held)} files of {len(held)} reserved ids (reserved-ids.txt above {excerpts})" in caplog.text
    # a folder with no reserved-ids.txt above it loses nothing
    _link_clips(gtzan_sample, tmp_path / "mine", ["blues", "jazz"])
    assert len(training_dataset(tmp_path / "mine").tracks) == 4


def test_genre_folders_are_searched_like_classify_searches_folders(tmp_path: Path, gtzan_sample: Path, caplog) -> None:
    """Files in a genre's sub-folders and with any suffix classify reads (.webm, ...) were silently
    left out, and so was a genre folder without audio; `1.wav` of two genres was one track, so a
    split put windows of three genres into one "track"."""
    import logging

    root = tmp_path / "ds"
    for genre in ("country", "metal", "pop"):
        (root / genre / "album").mkdir(parents=True)
        (root / genre / "1.wav").symlink_to(gtzan_sample / "blues" / "blues.00000.wav")
    (root / "pop" / "album" / "2.webm").symlink_to(gtzan_sample / "pop" / "pop.00000.wav")
    (root / "country" / "blues.00001.wav").symlink_to(gtzan_sample / "blues" / "blues.00001.wav")
    (root / "country" / "album" / "blues.00001.flac").symlink_to(gtzan_sample / "blues" / "blues.00001.wav")
    (root / "jazz").mkdir()
    # a linked folder is followed (it was skipped without a word); a link back up is read once
    (root / "metal" / "more").symlink_to(gtzan_sample / "metal", target_is_directory=True)
    (root / "metal" / "album" / "up").symlink_to(root / "metal", target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        ds = scan_dataset(root)
    assert ds.labels == ("country", "metal", "pop")
    assert [(t.label, t.track_id) for t in ds.tracks] == [
        ("country", "country/1"), ("country", "blues.00001"), ("country", "blues.00001"),  # one genre: one track
        ("metal", "metal/1"), ("metal", "metal.00000"), ("pop", "pop/1"), ("pop", "2")]
    assert f"genre folder {root / 'jazz'} holds no audio files (its sub-folders searched too); it is left out" in caplog.text
    # a genre folder linked to a disk that is not mounted was left out without a word
    (root / "rock").symlink_to(tmp_path / "usb" / "gtzan" / "rock", target_is_directory=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert scan_dataset(root).labels == ("country", "metal", "pop")
    assert (f"genre folder {root / 'rock'} is a link to {tmp_path / 'usb' / 'gtzan' / 'rock'}, which does not exist "
            "(a disk not mounted?); it is left out") in caplog.text


def test_a_file_that_cannot_be_read_is_skipped_and_listed(tmp_path: Path, gtzan_sample: Path, monkeypatch) -> None:
    """The dataset's fingerprint read every file first, so one unreadable file (no permission, a
    dangling link) ended train and evaluate with a raw [Errno]; README: such files are skipped."""
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ds"
    _link_clips(gtzan_sample, root, ["blues", "jazz"], per_genre=1)
    (root / "jazz" / "jazz.00054.wav").symlink_to(tmp_path / "gone.wav")
    ds = scan_dataset(root)
    features = extract_dataset(ds, FeatureConfig(), workers=1, progress=False)
    assert [(Path(p).name, reason.split(": ", 1)[1]) for p, reason in features.skipped] == [
        ("jazz.00054.wav", "no such file; give the path of an audio file")]
    assert set(features.track_ids.tolist()) == {"blues.00000", "jazz.00000"}


def test_a_cache_that_cannot_be_written_costs_only_the_next_run(tmp_path: Path, gtzan_sample: Path, monkeypatch,
                                                                caplog) -> None:
    """An unwritable cache folder failed train and evaluate after every feature was extracted."""
    import logging

    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    root = tmp_path / "ds"
    _link_clips(gtzan_sample, root, ["blues", "jazz"], per_genre=1)
    with caplog.at_level(logging.WARNING):
        features = extract_dataset(scan_dataset(root), FeatureConfig(), workers=1, progress=False)
    assert set(features.track_ids.tolist()) == {"blues.00000", "jazz.00000"} and not features.from_cache
    assert f"could not cache the features in {tmp_path / 'a-file' / 'cache' / 'features'}" in caplog.text
    assert "set GENRECAST_CACHE_DIR to a writable folder" in caplog.text


def test_features_cached_by_other_feature_code_are_not_reused(tmp_path: Path, gtzan_sample: Path, monkeypatch) -> None:
    """The cache was keyed by the feature config and the files alone, so an upgrade that changed
    the feature code (or librosa) trained on the old code's features."""
    import librosa

    monkeypatch.setenv("GENRECAST_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ds"
    _link_clips(gtzan_sample, root, ["blues", "jazz"], per_genre=1)
    ds = scan_dataset(root)
    extract_dataset(ds, FeatureConfig(), workers=1, progress=False)
    assert extract_dataset(ds, FeatureConfig(), workers=1, progress=False).from_cache
    monkeypatch.setattr(librosa, "__version__", "0.0.0-other")
    assert not extract_dataset(ds, FeatureConfig(), workers=1, progress=False).from_cache


def test_a_folder_without_audio_named_in_latin1_is_left_out_not_refused(tmp_path: Path, gtzan_sample: Path) -> None:
    """A non-UTF-8 name is refused for a genre, since the genre is named after it; a folder with no
    audio files (cover scans copied from an old disk) is no genre and was left out with a warning
    before that check came: the check must not refuse the whole dataset for it."""
    import os

    root = tmp_path / "ds"
    _link_clips(gtzan_sample, root, ["blues", "jazz"], per_genre=1)
    covers = os.fsdecode(os.fsencode(root) + b"/Pochettes \xe9t\xe9")
    os.mkdir(covers)
    Path(covers, "front.jpg").write_bytes(b"\xff\xd8")
    assert scan_dataset(root).labels == ("blues", "jazz")
