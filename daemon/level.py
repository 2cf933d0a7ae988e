"""Level invariance of the summary features: a gain, a pan law or a quieter microphone
must not change what the model sees.

The design is in :func:`normalise_level`; ``FeatureConfig.level`` says whether a bundle
uses it, and the trainer applies the same function to the rows of the feature table, so
training and the daemon see the same normalised values.
"""

from __future__ import annotations

import numpy as np

LEVEL_MODES = ("absolute", "normalised")
#: The only summary columns a gain moves, and from which it is measured.
LEVEL_COLUMNS = ("rms_mean", "rms_var", "mfcc1_mean")


def normalise_level(rows: np.ndarray, columns: tuple[str, ...], n_mels: int = 128) -> np.ndarray:
    """Take the recording level out of summary rows, exactly.

    Design (why a gain then changes nothing): of the summary statistics only three depend
    on the level. An amplitude gain ``g`` multiplies every frame's RMS by ``g``, so
    ``rms_mean`` by ``g`` and ``rms_var`` by ``g**2``; it adds ``20 log10 g`` dB to every mel
    band, and with the orthonormal DCT-II (librosa's MFCC) a constant added to all
    ``n_mels`` bands moves only the 0th coefficient, by ``sqrt(n_mels) * 20 log10 g``, so
    ``mfcc1_mean`` moves by that and ``mfcc1_var`` not at all. Chroma (normalised per
    frame), centroid, bandwidth, rolloff, zero-crossing rate and the other MFCCs do not
    move. The span's overall RMS ``L = sqrt(rms_mean**2 + rms_var)`` (the mean of the
    squared frame RMS) scales with ``g`` too, so dividing ``rms_mean`` by ``L``, ``rms_var``
    by ``L**2`` and subtracting ``sqrt(n_mels) * 20 log10 L`` from ``mfcc1_mean`` leaves
    columns that no gain changes, while the shape of the loudness over time (the
    relative RMS variance, the 0th MFCC's variance) stays. It holds wherever the audio is
    neither clipped nor so quiet that librosa's ``amin`` (1e-10 power, -100 dB) floors
    bands that the 80-dB ``top_db`` floor would not.

    Args:
        rows: (n, len(columns)) or (len(columns),) summary values, absolute level.
        columns: their names; must include :data:`LEVEL_COLUMNS`.
        n_mels: mel bands under the MFCCs (128 in the GTZAN table).

    Returns:
        float64 array of the same shape, level normalised. A silent span (``L`` below
        1e-10) is treated as ``L = 1e-10``.

    Raises:
        ValueError: a column of :data:`LEVEL_COLUMNS` is missing.
    """
    missing = [c for c in LEVEL_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"level normalisation needs the columns {missing}")
    out = np.array(rows, dtype=np.float64, copy=True)
    flat = out.reshape(-1, len(columns))
    i_mean, i_var, i_mfcc = (columns.index(c) for c in LEVEL_COLUMNS)
    level = np.maximum(np.sqrt(np.maximum(flat[:, i_mean] ** 2 + flat[:, i_var], 0.0)), 1e-10)
    flat[:, i_mean] /= level
    flat[:, i_var] /= level**2
    flat[:, i_mfcc] -= np.sqrt(n_mels) * 20.0 * np.log10(level)
    return out
