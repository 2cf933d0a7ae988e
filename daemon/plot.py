"""``genrecast classify --plot DIR``: one PNG timeline per file.

Each window's genre probabilities are stacked over the time the window starts (x: seconds of
audio, y: probability 0-1, one colour per genre); windows the daemon called ``silence`` or
``not_music`` are shaded bands instead. The PNG carries what it plots as a ``genrecast``
text chunk (JSON: the windows' start and end seconds, states and probabilities, the axes'
position in pixels and the colours), so a program can check the picture against the events.

Needs matplotlib (``pip install 'genrecast[plot]'``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from genrecast.daemon.events import GenreEvent

#: Size of every timeline, pixels (width, height), at :data:`DPI`.
SIZE_PIXELS = (1200, 400)
DPI = 100
#: Band colours of the windows without genre probabilities.
BAND_COLOURS = {"silence": "#d0d0d0", "not_music": "#ffd27f"}
#: The PNG text chunk that holds the plotted numbers.
METADATA_KEY = "genrecast"


def plot_path(folder: Path, file: str) -> Path:
    """Where the timeline of ``file`` goes: its path under ``folder`` (``.png`` added), the path as
    given when relative, else its absolute path without the root (so ``a/x.wav`` and ``b/x.wav``
    get different PNGs)."""
    path = Path(file)
    if path.is_absolute() or ".." in path.parts:
        path = Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(path)).anchor)
    return folder / path.parent / (path.name + ".png")


def window_edges(events: Sequence[GenreEvent], audio_seconds: float) -> list[tuple[float, float]]:
    """(start, end) seconds each window covers in the picture: from its start to the next
    window's start (so overlapping windows do not overdraw), the last to its own end."""
    starts = [e.audio_start_seconds for e in events]
    ends = starts[1:] + [min(events[-1].audio_end_seconds, max(audio_seconds, starts[-1]))] if events else []
    return list(zip(starts, ends))


def write_timeline(png: Path, title: str, events: Sequence[GenreEvent], labels: Sequence[str],
                   audio_seconds: float) -> dict:
    """Draw ``events`` (one file's windows, in order) as a :data:`SIZE_PIXELS` PNG at ``png``
    (folders made as needed) and return the plotted numbers (also stored in the PNG's
    :data:`METADATA_KEY` text chunk). Raises ``ModuleNotFoundError`` without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    edges = window_edges(events, audio_seconds)
    colours = {label: matplotlib.colors.to_hex(plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")(i))
               for i, label in enumerate(labels)}
    probs = np.array([[e.probabilities.get(label, 0.0) if e.state not in BAND_COLOURS else 0.0 for label in labels]
                      for e in events]).reshape(len(events), len(labels))
    fig, ax = plt.subplots(figsize=(SIZE_PIXELS[0] / DPI, SIZE_PIXELS[1] / DPI), dpi=DPI)
    right = max([audio_seconds, *(end for _, end in edges)] or [1.0]) or 1.0
    if events:
        x = np.array(edges).ravel()  # start, end, start, end, ...: a step per window
        ax.stackplot(x, np.repeat(probs.T, 2, axis=1), colors=[colours[label] for label in labels], labels=list(labels),
                     linewidth=0)
    for (start, end), event in zip(edges, events):
        if event.state in BAND_COLOURS:
            ax.axvspan(start, end, color=BAND_COLOURS[event.state], linewidth=0)
    for state, colour in BAND_COLOURS.items():
        ax.fill_between([], [], color=colour, label=state.replace("_", " "))
    ax.set_xlim(0, right)
    ax.set_ylim(0, 1)
    ax.set_xlabel("seconds of audio")
    ax.set_ylabel("genre probability")
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.06, right=0.86, top=0.9, bottom=0.14)
    fig.canvas.draw()
    x0, y0, x1, y1 = ax.get_window_extent().extents  # display pixels, origin bottom left
    plotted = {
        "file": title, "labels": list(labels), "colours": colours, "bands": BAND_COLOURS,
        "windows": [{"start": s, "end": e, "state": ev.state, "probabilities": dict(zip(labels, map(float, p)))}
                    for (s, e), ev, p in zip(edges, events, probs)],
        "x_seconds": [0.0, right],
        "axes_pixels": [x0, SIZE_PIXELS[1] - y1, x1, SIZE_PIXELS[1] - y0],  # left, top, right, bottom from top left
    }
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=DPI, metadata={METADATA_KEY: json.dumps(plotted)})
    plt.close(fig)
    return plotted
