"""The one feature extractor that the trainer and the daemon share.

Two kinds of bundle need two kinds of features, both computed here:

* ``mfcc``: the MFCC time-frequency map of one window (frames x n_mfcc), the
  input of the window models (tutorial MLP, CNN).
* ``summary``: the published GTZAN feature table's statistics (mean and
  variance over frames of chroma, RMS, spectral centroid / bandwidth / rolloff,
  zero-crossing rate and 20 MFCCs) over a context of audio.

The MFCC path reproduces ``librosa.feature.mfcc`` (parity tested) but with the
mel filterbank, window and DCT matrix computed once per config, not per call.

This module is the one import for both; the code lives in three modules with one job each:

* :mod:`genrecast.daemon.feature_config`: :class:`FeatureConfig` and the summary columns;
* :mod:`genrecast.daemon.spectral`: Hann window, STFT power, mel / chroma filterbanks, DCT,
  and the ``mfcc`` window path;
* :mod:`genrecast.daemon.summary_features`: the ``summary`` statistics over a clip or the
  daemon's rolling context.

The level design (why gain does not move a verdict) is in :mod:`genrecast.daemon.level`.
"""

from __future__ import annotations

from genrecast.daemon.feature_config import (
    DEFAULT_SUMMARY_COLUMNS,
    FEATURE_KINDS,
    SUMMARY_FRAME_FEATURES,
    FeatureConfig,
)
from genrecast.daemon.spectral import (  # the music detector builds on the private blocks
    _chroma_basis,
    _dct_matrix32,
    _hann,
    _mel_basis,
    chroma_filterbank,
    mel_filterbank,
    mfcc,
    power_spectrogram,
    window_features,
)
from genrecast.daemon.summary_features import (
    RollingSummary,
    _frame_values,
    _rolloff_bins,
    chroma_frames,
    clip_summary,
    estimate_tuning,
    frame_statistics,
    mfcc_frames,
    summarise,
)

__all__ = [
    "DEFAULT_SUMMARY_COLUMNS",
    "FEATURE_KINDS",
    "SUMMARY_FRAME_FEATURES",
    "FeatureConfig",
    "_chroma_basis",
    "_dct_matrix32",
    "_hann",
    "_mel_basis",
    "chroma_filterbank",
    "mel_filterbank",
    "mfcc",
    "power_spectrogram",
    "window_features",
    "RollingSummary",
    "_frame_values",
    "_rolloff_bins",
    "chroma_frames",
    "clip_summary",
    "estimate_tuning",
    "frame_statistics",
    "mfcc_frames",
    "summarise",
]
