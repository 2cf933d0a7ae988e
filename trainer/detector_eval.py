"""Judging the music detector: the gate over each file's windows, threshold choice on
validation files, window-level targets and the music / speech / other confusion."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from genrecast.daemon.detector import DETECTOR_LABELS, GateSettings, MusicGate

#: Smoothing windows of the gate (fixed: 3 windows of 3 s; the thresholds are chosen for it).
GATE_WINDOWS = 3

#: The most windows the gate may take to follow a change (:meth:`GateSettings.delay_windows`): 2
#: windows, 6 s, so that a song after talk is recognised soon and talk after a song soon drops out.
#: Without it the search would choose a 9-s delay for the shipped detector (0.45 / 0.30) for
#: 0.05 point more validation music (99.28 against 99.23 %).
MAX_DELAY_WINDOWS = 2

#: Candidate thresholds for the validation search.
THRESHOLD_GRID = tuple(round(v, 2) for v in np.arange(0.05, 0.96, 0.05))

#: The issue's targets: share of windows in the wanted states, per kind of test file.
TARGETS = {"speech": 0.95, "environment": 0.90, "music": 0.97}


@dataclass
class FileWindows:
    """One file (under one condition): its windows' detector probabilities and silence flags."""

    name: str
    label: str
    """``music``, ``speech`` or ``other``."""
    kind: str
    """``gtzan``, ``music``, ``speech``, ``environment`` or ``generated``."""
    condition: str
    probabilities: np.ndarray
    """windows x 3 (music, speech, other); rows of silent windows are unused."""
    silent: np.ndarray
    """True where the window is under the silence gate (no detector call in the daemon)."""
    genre: str | None = None
    features: np.ndarray | None = None
    """windows x feature columns (the detector's input), where extracted."""
    levels: np.ndarray | None = None
    """Each window's RMS level in dBFS (as the daemon measures it), where extracted."""


#: The quiet-microphone condition the silence gate must let music through at (dB under the recording).
QUIET_MICROPHONE_DB = 24.0
#: Headroom (dB) between the quietest validation music window at that gain and the gate.
SILENCE_MARGIN_DB = 3.0
#: The silence gate is chosen on this grid (dBFS): from the former fixed −50 down to −80.
SILENCE_GRID = tuple(float(v) for v in range(-50, -81, -5))


def choose_silence_gate(valid: list[FileWindows]) -> tuple[float, str]:
    """The silence gate (dBFS) from the clean validation files: the highest value of
    :data:`SILENCE_GRID` at least :data:`SILENCE_MARGIN_DB` under the quietest validation music
    window once :data:`QUIET_MICROPHONE_DB` quieter (so quiet music reaches the detector, which
    keeps room tone and hiss ``not_music``); the lowest grid value when none is. Returns
    (gate, the rule in words). Raises ``ValueError`` when no validation music window has a level."""
    levels = [f.levels for f in valid if f.label == "music" and f.levels is not None and len(f.levels)]
    if not levels:
        raise ValueError("the detector's validation files hold no music windows; --detector-data needs music on every side of the split")
    quietest = float(np.min(np.concatenate(levels)))
    wanted = quietest - QUIET_MICROPHONE_DB - SILENCE_MARGIN_DB
    gate = next((g for g in SILENCE_GRID if g <= wanted), SILENCE_GRID[-1])
    return gate, (f"validation files: the quietest music window ({quietest:.1f} dBFS) {QUIET_MICROPHONE_DB:g} dB quieter, "
                  f"less {SILENCE_MARGIN_DB:g} dB, on the 5-dB grid -50..-80 dBFS")


def with_silence_gate(files: list[FileWindows], silence_dbfs: float) -> list[FileWindows]:
    """The same files with ``silent`` set from their levels: under ``silence_dbfs`` (the daemon's rule)."""
    return [dataclasses.replace(f, silent=np.asarray(f.levels) < silence_dbfs) if f.levels is not None else f for f in files]


def gate_states(f: FileWindows, gate: GateSettings) -> list[str]:
    """The daemon's state for each window of one file played from the start: ``silence``, ``music`` or ``not_music``."""
    g = MusicGate(gate)
    states = []
    for p, silent in zip(f.probabilities, f.silent):
        if silent:
            g.silent()
            states.append("silence")
            continue
        is_music, _ = g.update(float(p[0]))
        states.append("music" if is_music else "not_music")
    return states


def wanted(label: str, state: str) -> bool:
    """Whether a window's state is right: music stays ``music``; speech and other are ``not_music`` or ``silence``."""
    return state == "music" if label == "music" else state in ("not_music", "silence")


def by_condition(files: list[FileWindows]) -> dict[str, list[FileWindows]]:
    """The files grouped by their condition's name, in first-seen order."""
    groups: dict[str, list[FileWindows]] = {}
    for f in files:
        groups.setdefault(f.condition, []).append(f)
    return groups


def choose_gate(valid: list[FileWindows]) -> tuple[GateSettings, dict[str, Any]]:
    """The (enter, leave) pair on :data:`THRESHOLD_GRID` (leave <= enter, and at most
    :data:`MAX_DELAY_WINDOWS` windows of delay) chosen on the validation
    files under the test conditions (``valid``: each file once per condition, as
    :data:`genrecast.trainer.detector.TEST_CONDITIONS` gives them): among the pairs that meet the
    speech and environment targets (:data:`TARGETS`, :func:`target_figures`' shares) under *every*
    condition, the one that keeps the most music windows as music, averaged over the conditions;
    when none does, the best worst speech or environment share. Ties go to the widest hysteresis,
    then the lower enter.

    Why per condition: the issue's targets hold per condition (a room must not let talk through),
    and a rule on all conditions pooled let the easy ones (clean, gains, codecs) carry the
    reverberant rooms, whose speech then failed its target on validation (85-90 %)."""
    if not any((~f.silent).any() for f in valid):
        raise ValueError("the detector's validation files have no windows above the silence gate; "
                         "--detector-data needs music, speech and environment recordings on every side of the split")
    groups = by_condition(valid)
    best = None
    for enter in THRESHOLD_GRID:
        for leave in THRESHOLD_GRID:
            if leave > enter:
                continue
            gate = GateSettings(enter=float(enter), leave=float(leave), windows=GATE_WINDOWS)
            if gate.delay_windows() > MAX_DELAY_WINDOWS:
                continue
            figures = {name: target_figures(files, gate) for name, files in groups.items()}
            kept = [f[kind]["share"] for f in figures.values() for kind in ("speech", "environment")
                    if f[kind]["share"] is not None]
            music = [f["music"]["share"] for f in figures.values() if f["music"]["share"] is not None]
            meets = all(f[kind]["share"] is None or f[kind]["share"] >= TARGETS[kind]
                        for f in figures.values() for kind in ("speech", "environment"))
            score = float(np.mean(music)) if meets and music else min(kept, default=0.0)
            key = (meets, round(score, 4), round(enter - leave, 2), -enter)
            if best is None or key > best[0]:
                best = (key, gate, figures)
    key, gate, figures = best
    rule = ("the most music windows kept (mean over the conditions) among the pairs with speech >= 95 % and "
            f"environment >= 90 % right under every condition and a delay of at most {MAX_DELAY_WINDOWS} windows" if key[0] else
            f"no pair with a delay of at most {MAX_DELAY_WINDOWS} windows met the speech and environment targets "
            "under every condition: the best worst share")
    shares = {name: {kind: (None if f[kind]["share"] is None else round(f[kind]["share"], 4))
                     for kind in ("speech", "environment", "music")} for name, f in figures.items()}
    return gate, {"rule": f"validation files under the test conditions, 0.05 grid: {rule}", "validation_accuracy": shares}


def target_figures(files: list[FileWindows], gate: GateSettings) -> dict[str, Any]:
    """The issue's window-level figures on one condition's files. ``share``: speech windows
    ``not_music`` or ``silence`` (no genre either way; ``not_music`` alone also given), environment
    windows ``not_music`` or ``silence``, music windows ``music`` (``of_heard``: among the windows
    above the silence gate, i.e. the detector's own part); per GTZAN genre too."""
    states_of = {id(f): gate_states(f, gate) for f in files}
    groups = {"speech": [f for f in files if f.label == "speech"],
              "environment": [f for f in files if f.kind == "environment"],
              "music": [f for f in files if f.label == "music"]}
    out: dict[str, Any] = {}
    for kind, group in groups.items():
        states = [s for f in group for s in states_of[id(f)]]
        heard = [s for s in states if s != "silence"]
        right = [wanted(group[0].label, s) for s in states] if group else []
        fig = {"share": _share(right), "windows": len(states), "silent": len(states) - len(heard)}
        if kind == "speech":
            fig["not_music"] = _share([s == "not_music" for s in states])
        if kind == "music":
            fig["of_heard"] = _share([s == "music" for s in heard])
        out[kind] = fig
    per_genre: dict[str, list[bool]] = {}
    for f in groups["music"]:
        if f.genre:
            per_genre.setdefault(f.genre, []).extend(s == "music" for s in states_of[id(f)])
    out["music_by_genre"] = {g: _share(v) for g, v in sorted(per_genre.items())}
    return out


def figures_by_condition(files: list[FileWindows], gate: GateSettings) -> dict[str, dict[str, Any]]:
    """:func:`target_figures` of each condition's files (``files`` with their probabilities), in
    first-seen order."""
    return {name: target_figures(group, gate) for name, group in by_condition(files).items()}


def _share(flags: list[bool]) -> float | None:
    return round(float(np.mean(flags)), 4) if flags else None


def confusion(files: list[FileWindows]) -> dict[str, Any]:
    """Per-window argmax of the detector (no gate) against the true class, non-silent windows: rows true, columns predicted."""
    matrix = np.zeros((3, 3), dtype=int)
    for f in files:
        truth = DETECTOR_LABELS.index(f.label)
        for p, silent in zip(f.probabilities, f.silent):
            if not silent:
                matrix[truth, int(np.argmax(p))] += 1
    return {"labels": list(DETECTOR_LABELS), "matrix": matrix.tolist()}


def _shares_text(shares: dict[str, Any]) -> str:
    """The gate choice's validation shares in a line: per condition (the current rule) speech /
    environment / music in %; an older bundle's pooled shares as they were stored."""
    if not all(isinstance(v, dict) for v in shares.values()):
        return str(shares)
    pct = lambda v: "-" if v is None else f"{v * 100:.0f}"  # noqa: E731
    return "speech / environment / music %: " + ", ".join(
        f"{name} {pct(v['speech'])}/{pct(v['environment'])}/{pct(v['music'])}" for name, v in shares.items())


def report_section(metrics: dict[str, Any]) -> str:
    """Markdown for the bundle's report.md (and the README): targets per condition, confusion, gate."""
    gate = metrics["gate"]
    lines = [
        "## Music detector",
        "",
        f"Gate: P(music) averaged over {gate['windows']} windows of 3 s; the state turns `not_music` below "
        f"{gate['leave']:.2f} and `music` again at {gate['enter']:.2f} (chosen on the validation files, "
        f"validation shares {_shares_text(metrics['gate_choice']['validation_accuracy'])}).",
        f"Files: {metrics['files']}.",
        "",
        "Window-level shares on the test files (never trained on; the gate and every setting were chosen on the "
        "validation files; the README says where a test figure prompted a change):",
        "",
        "| condition | speech → not_music or silence (≥ 95 %) | environment → not_music or silence (≥ 90 %) "
        "| music → music (≥ 97 %) | music → music, windows above the silence gate |",
        "|---|---|---|---|---|",
    ]
    clean = metrics["test"]["clean"]
    for name, fig in metrics["test"].items():
        cells = []
        for kind, key in (("speech", "share"), ("environment", "share"), ("music", "share"), ("music", "of_heard")):
            share = fig[kind][key]
            if share is None:
                cells.append("no windows")
                continue
            delta = "" if name == "clean" or clean[kind][key] is None else f" ({(share - clean[kind][key]) * 100:+.1f})"
            note = f" of {fig[kind]['windows']}" if key == "share" else f" of {fig[kind]['windows'] - fig[kind]['silent']}"
            if kind == "speech" and fig[kind]["silent"]:
                note += f"; {fig[kind]['silent']} silent, not_music alone {fig[kind]['not_music'] * 100:.1f} %"
            cells.append(f"{share * 100:.1f} %{delta}{note}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Differences from clean in points in brackets; the target for conditions is within 3 points. "
              "Windows under the silence gate count as right for speech and environment (no genre) "
              "and as wrong for music; the last column leaves them out (the detector's own part).", "",
              f"Silence gate: {metrics['silence_dbfs']:g} dBFS ({metrics['silence_choice']}).", "",
              "Music windows kept as music, per GTZAN genre (test clips, clean): "
              + ", ".join(f"{g} {v * 100:.0f} %" for g, v in clean["music_by_genre"].items()) + ".", "",
              "Confusion of the detector's top output per window (test files, clean, no gate; rows: truth; "
              "other: the environment recordings and the generated hiss, hum and fan windows):", "",
              "| truth \\ detector | music | speech | other |", "|---|---|---|---|"]
    for label, row in zip(DETECTOR_LABELS, metrics["confusion"]["clean"]["matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    missed = metrics.get("missed", [])
    lines += ["", "Targets missed: " + ("; ".join(missed) if missed else "none") + ".", ""]
    return "\n".join(lines)


def misses(test: dict[str, Any]) -> list[str]:
    """Each target missed, by how much: speech >= 95 % and environment >= 90 % (``share``) under
    every condition, clean included (the detector "must hold under the capture conditions");
    music >= 97 % clean; and under each other condition every kind within 3 points of its clean
    figure (on ``share`` and, for music, on the windows above the silence gate). The issue's last
    row ("the same ... within 3 points of the clean figures") is read for every kind, not for the
    music alone: the stricter reading."""
    out = []
    clean = test["clean"]
    for name, fig in test.items():
        for kind in ("speech", "environment") if name != "clean" else tuple(TARGETS):
            share = fig[kind]["share"]
            if share is not None and share < TARGETS[kind]:
                out.append(f"{kind} {name} {share * 100:.1f} % < {TARGETS[kind] * 100:.0f} % "
                           f"(by {(TARGETS[kind] - share) * 100:.1f} points)")
    for name, fig in test.items():
        if name == "clean":
            continue
        for kind, key in (("speech", "share"), ("environment", "share"), ("music", "share"), ("music", "of_heard")):
            if clean[kind].get(key) is None or fig[kind].get(key) is None:
                continue
            drop = (clean[kind][key] - fig[kind][key]) * 100
            if drop > 3:
                what = kind if key == "share" else "music above the silence gate"
                out.append(f"{what} under {name} {drop:.1f} points below clean (limit 3)")
    return out
