"""The one feature extractor that the trainer and the daemon share.

Three kinds of genre bundle need three kinds of features, all reached from here:

* ``logmel``: one window's level-normalised log-mel map (187 x 96 at 16 kHz), the input of
  the default bundle's musicnn model; the level design (the window scaled to −20 dBFS RMS
  first, so a gain changes nothing) is in :mod:`genrecast.daemon.logmel`.
* ``mfcc``: the MFCC time-frequency map of one window (frames x n_mfcc), the
  input of the window models (tutorial MLP, CNN).
* ``summary``: the published GTZAN feature table's statistics (mean and
  variance over frames of chroma, RMS, spectral centroid / bandwidth / rolloff,
  zero-crossing rate and 20 MFCCs) over a context of audio.

The MFCC path reproduces ``librosa.feature.mfcc`` (parity tested) but with the
mel filterbank, window and DCT matrix computed once per config, not per call.

This module is the one import for all; the code lives in modules with one job each:

* :mod:`genrecast.daemon.feature_config`: :class:`FeatureConfig` and the summary columns;
* :mod:`genrecast.daemon.spectral`: Hann window, STFT power, mel / chroma filterbanks, DCT,
  and the ``mfcc`` window path;
* :mod:`genrecast.daemon.summary_features`: the ``summary`` statistics over a clip or the
  daemon's rolling context;
* :mod:`genrecast.daemon.logmel`: the ``logmel`` window path.

The summary kind's level design (why gain does not move a verdict) is in :mod:`genrecast.daemon.level`.
"""

from __future__ import annotations

from genrecast.daemon.feature_config import (
    DEFAULT_SUMMARY_COLUMNS,
    FEATURE_KINDS,
    SUMMARY_FRAME_FEATURES,
    WINDOW_KINDS,
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
    "WINDOW_KINDS",
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
