"""Figure 2: the shared MFCC code against ``librosa.feature.mfcc`` on real clips (max abs diff)."""

from __future__ import annotations

from benchmarks.common import Context, row

TARGET_ABS = 1e-3


def run(ctx: Context) -> list[dict]:
    import librosa
    import numpy as np

    from genrecast.daemon.audio import load_audio
    from genrecast.daemon.features import FeatureConfig, mfcc, window_features

    cfg = FeatureConfig()
    clips = ctx.wav_clips()[: 4 if ctx.quick else None]
    clip_diffs, window_diffs, scales = [], [], []
    for clip in clips:
        y = load_audio(clip, cfg.sample_rate)
        ref = librosa.feature.mfcc(y=y, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
        clip_diffs.append(float(np.max(np.abs(mfcc(y, cfg) - ref))))
        scales.append(float(np.max(np.abs(ref))))
        for i in range(0, len(y) // cfg.window_samples):
            w = y[i * cfg.window_samples : (i + 1) * cfg.window_samples]
            ref_w = librosa.feature.mfcc(y=w, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
            window_diffs.append(float(np.max(np.abs(window_features(w, cfg) - ref_w.T))))
    worst_clip, worst_window = max(clip_diffs), max(window_diffs)
    note = f"{len(clips)} real clips; MFCC magnitudes up to {max(scales):.0f}"
    return [
        row("parity", "MFCC max |diff| vs librosa, whole clips", [worst_clip], "abs", target=f"<= {TARGET_ABS:g}",
            met=worst_clip <= TARGET_ABS, note=note, per_clip=clip_diffs),
        row("parity", "MFCC max |diff| vs librosa, 3-s windows", [worst_window], "abs", target=f"<= {TARGET_ABS:g}",
            met=worst_window <= TARGET_ABS, note=f"{len(window_diffs)} windows"),
    ]
