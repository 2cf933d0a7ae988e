"""Talk over a music bed: speech with quiet music under it, labelled speech, for the music detector.

Radio news, adverts, jingles and DJs carry speech over a *music bed*: music ducked well under
the voice. The speech recordings of ``../shared/data`` are mostly dry, so a detector trained on
them hears any tuned partials under a voice as music; one broadcast of the GTZAN music/speech
collection (labelled speech there) opens with its voice over a bed. :func:`over_music_bed`
mixes a music recording *of the same split* under a speech recording at a speech-to-music
ratio (SNR, RMS over the clip, as :func:`genrecast.trainer.conditions.add_at_snr`) of
:data:`BED_SNR_DB`: at least 10 dB, well above where a song's lead voice sits (about level
with its accompaniment), so sung and rapped music stays music, and at most 20 dB, where a bed is
still heard. Chosen on the validation files (never the test files): a detector trained with
10-20 dB beds had a validation cross-entropy of 0.225 over the validation windows and their
6-20-dB bed copies, against 0.229 with 6-20-dB beds and 0.260 without beds; on the original
validation windows alone 0.214, against 0.220 and 0.215 (measured before the random conditions'
babble and environment sounds were restricted to training recordings). The same split: a validation speech
file gets a validation music file's bed, and no test file is ever a bed.
"""

from __future__ import annotations

import functools

import numpy as np

from genrecast.trainer import conditions as cond
from genrecast.trainer.detector_data import Item

#: Range (dB) of the speech-to-bed ratio, drawn uniformly per copy.
BED_SNR_DB = (10.0, 20.0)


@functools.lru_cache(maxsize=64)
def _bed(path: str, sample_rate: int) -> np.ndarray:
    from genrecast.daemon.audio import load_audio

    return load_audio(path, sample_rate)


def over_music_bed(y: np.ndarray, sample_rate: int, rng: np.random.Generator, beds: tuple[str, ...],
                   snr_db: tuple[float, float] = BED_SNR_DB, capture: bool = False,
                   exclude: tuple[str, ...] = ()) -> np.ndarray:
    """``y`` (mono float, ``sample_rate`` Hz) with one of ``beds`` (music files, chosen by ``rng``,
    looped from a random start) under it at an SNR drawn from ``snr_db`` (dB); with ``capture``,
    then under a :func:`genrecast.trainer.conditions.random_capture` drawn from ``rng`` (its
    babble and environment sounds never from ``exclude``).
    Returns float32 of ``y``'s length. Raises ValueError for an empty ``beds``."""
    if not beds:
        raise ValueError("a music bed needs at least one music file on the speech file's side of the split")
    bed = _bed(beds[int(rng.integers(len(beds)))], sample_rate)
    out = cond.add_at_snr(np.asarray(y, np.float32), cond._loop(bed, len(y), rng), float(rng.uniform(*snr_db)))
    return cond.random_capture(rng, exclude).apply(out, sample_rate, rng) if capture else out


def bed_conditions(beds: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[cond.Condition]:
    """The copies of one speech file over a music bed drawn from ``beds``: one as mixed, one
    then under a random capture condition (room, codec, gain, noise, ...; its babble and
    environment sounds never from ``exclude``)."""
    return [cond.Condition("music-bed", over_music_bed, {"beds": beds}),
            cond.Condition("music-bed-capture", over_music_bed, {"beds": beds, "capture": True, "exclude": exclude})]


def beds_by_split(items: list[Item]) -> dict[str, tuple[str, ...]]:
    """The music files that may lie under the speech of each training side, by split
    (``train`` and ``valid``; the test files are never a bed), as paths in ``items``' order."""
    return {split: tuple(str(i.path) for i in items if i.split == split and i.label == "music")
            for split in ("train", "valid")}
