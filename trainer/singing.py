"""Sung speech: real speech re-synthesised on a melody, the music detector's stand-in for a cappella.

The data has almost no unaccompanied singing (one 33-s vocadito take and a 2-s jingju phrase,
both kept for the test side), so a detector trained on it hears a lone voice as speech. The
cue that tells singing from talk is the pitch: held notes on a scale, with vibrato, against
speech's gliding intonation, and vowels held longer. :func:`sing` keeps a recording's voice
(its spectral envelope and aperiodicity) and replaces both.

Method: WORLD vocoder analysis and synthesis (Morise, Yokomori & Ozawa 2016, "WORLD: a
vocoder-based high-quality speech synthesis system for real-time applications", IEICE Trans.
Inf. & Syst. E99-D(7); the ``pyworld`` binding): DIO + StoneMask for F0, CheapTrick for the
envelope, D4C for aperiodicity, 5-ms frames. Voiced frames are held 1.5-3 times longer (the
unvoiced ones, consonants and pauses, keep their length); each voiced stretch gets notes of
0.2-0.8 s from a major scale around the speaker's median F0, with vibrato (4.5-6.5 Hz,
±0.2-0.6 semitone, after a 0.15-s onset; Sundberg 1987, "The Science of the Singing Voice")
and 40-ms glides between notes. Unaccompanied singers are not in perfect tune: each note
misses its scale degree by a normal error (its spread drawn per recording, 0.1-0.5 semitone),
and the tonic drifts as a random walk from note to note (0.1 semitone a note), as in
measurements of occasional singers (Dalla Bella, Giguère & Peretz 2007, "Singing proficiency
in the general population", JASA 121(2); Mauch, Frieler & Dixon 2014, "Intonation in
unaccompanied singing", JASA 136(1)). Without these errors the sung copies sat on an exact
grid, which taught the detector that a voice off the grid is talk.
"""

from __future__ import annotations

import numpy as np

from genrecast.trainer.conditions import Condition

#: Frame period (ms) of the WORLD analysis and synthesis.
FRAME_MS = 5.0
#: Scale degrees (semitones from the tonic) the notes are drawn from: a major scale over an octave and a fourth.
SCALE = (-5, -3, -1, 0, 2, 4, 5, 7, 9, 11, 12)
#: Fewest voiced frames (at FRAME_MS) a recording needs to be sung.
MIN_VOICED_FRAMES = 20
#: Shorter recordings (a spoken digit) are not sung: too little to carry a melody.
MIN_SECONDS = 2.0
#: Range (semitones) of the per-recording spread of the notes' intonation errors.
NOTE_ERROR_SEMITONES = (0.1, 0.5)
#: Standard deviation (semitones) of the tonic's random-walk step from one note to the next.
DRIFT_SEMITONES = 0.1
#: Frames of the moving average that turns the steps between notes into 40-ms glides.
GLIDE_FRAMES = max(1, int(40 / FRAME_MS))


def _melody(voiced: np.ndarray, tonic_semitones: float, rng: np.random.Generator) -> np.ndarray:
    """F0 (Hz) per frame: notes over each voiced run (with intonation errors), 0 where unvoiced."""
    f0 = np.zeros(len(voiced))
    spread = rng.uniform(*NOTE_ERROR_SEMITONES)
    drift = 0.0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], voiced.astype(np.int8), [0]))))
    for start, end in zip(edges[::2], edges[1::2]):
        k = start
        while k < end:
            n = min(end, k + int(rng.uniform(0.2, 0.8) * 1000 / FRAME_MS))
            t = np.arange(n - k) * FRAME_MS / 1000
            depth = rng.uniform(0.2, 0.6)
            vibrato = depth * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t) * np.clip((t - 0.15) / 0.2, 0.0, 1.0)
            drift += rng.normal(0.0, DRIFT_SEMITONES)
            f0[k:n] = tonic_semitones + drift + rng.choice(SCALE) + rng.normal(0.0, spread) + vibrato
            k = n
        run = f0[start:end]
        if len(run) > GLIDE_FRAMES:  # smooth the steps between notes (in semitones)
            pad = (GLIDE_FRAMES // 2, GLIDE_FRAMES - 1 - GLIDE_FRAMES // 2)
            f0[start:end] = np.convolve(np.pad(run, pad, mode="edge"), np.ones(GLIDE_FRAMES) / GLIDE_FRAMES, "valid")
    return np.where(voiced, 440.0 * 2.0 ** (f0 / 12.0), 0.0)


def sing(y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The speech of ``y`` sung on a random melody (see the module's docstring).

    ``y``: mono float audio at ``sample_rate`` (Hz). Returns float32 mono audio at the same rate
    and RMS level, longer than ``y`` (voiced frames are stretched); empty for audio shorter than
    :data:`MIN_SECONDS` or with fewer than :data:`MIN_VOICED_FRAMES` voiced frames (noise, a cough).
    """
    import pyworld

    if len(y) < MIN_SECONDS * sample_rate:
        return np.zeros(0, np.float32)
    x = np.ascontiguousarray(y, dtype=np.float64)
    f0, times = pyworld.dio(x, sample_rate, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, times, sample_rate)
    voiced = f0 > 0
    if voiced.sum() < MIN_VOICED_FRAMES:
        return np.zeros(0, np.float32)
    envelope = pyworld.cheaptrick(x, f0, times, sample_rate)
    aperiodicity = pyworld.d4c(x, f0, times, sample_rate)

    stretch = rng.uniform(1.5, 3.0)
    repeats = np.where(voiced, stretch, 1.0) + rng.uniform(-0.5, 0.5, len(voiced))
    frames = np.repeat(np.arange(len(voiced)), np.maximum(np.round(repeats), 1).astype(int))
    tonic = 12.0 * np.log2(np.median(f0[voiced]) / 440.0) + rng.uniform(-2.0, 2.0)
    melody = _melody(voiced[frames], tonic, rng)
    out = pyworld.synthesize(melody, np.ascontiguousarray(envelope[frames]), np.ascontiguousarray(aperiodicity[frames]),
                             sample_rate, FRAME_MS)
    rms_in = np.sqrt(np.mean(x**2))
    rms_out = np.sqrt(np.mean(out**2))
    return (out * (rms_in / rms_out if rms_out > 0 else 1.0)).astype(np.float32)


#: :func:`sing` as a condition for the detector's feature extraction (its own seeded draw per file).
SUNG = Condition("sung", sing)
