"""``genrecast classify``: the daemon's pipeline over whole files, synchronously.

A file streams through: decoded (the same decoder as ``run --source file:``), windowed,
classified and printed block by block, so memory stays bounded whatever its length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from genrecast.daemon.audio import BLOCK_SECONDS, open_audio
from genrecast.daemon.classifier import Classifier
from genrecast.daemon.events import GenreEvent
from genrecast.daemon.pipeline import EventMaker, PipelineSettings
from genrecast.daemon.source_state import SourceState
from genrecast.daemon.progress import Progress
from genrecast.daemon.windowing import MIN_FINAL_FRACTION

#: The verdict of a file that is mostly not music.
NOT_MUSIC = "not_music"

#: A window whose own P(music) (the detector's, before the gate smooths it) is under this counts
#: toward the verdict only when no window reaches it: the gate holds music up to 2 windows into
#: talk, and such a window's genre is the talk's (24 s of country.00000 and 9 s of talk was "pop",
#: from the first talk window, against "country" for the song alone).
OWN_MUSIC_PROBABILITY = 0.5

#: Files longer than this (seconds) get a progress bar on a terminal.
PROGRESS_SECONDS = 120.0


@dataclass
class FileResult:
    """The windows of one file and its verdict. The verdict is kept as running sums, so
    ``keep_events=False`` makes a result whose size does not grow with the file."""

    path: Path
    labels: tuple[str, ...]
    context_seconds: float | None = None
    """For summary bundles: the context the model was trained on (e.g. 30 s)."""
    window_seconds: float = 3.0
    keep_events: bool = True
    events: list[GenreEvent] = field(default_factory=list)
    windows: int = 0
    audio_seconds: float = 0.0
    """Seconds of audio decoded."""
    _sums: dict[tuple[bool, bool], np.ndarray] = field(default_factory=dict, repr=False)
    """Summed probabilities by (only the windows the detector itself called music, full context)."""
    _counts: dict[tuple[bool, bool], int] = field(default_factory=dict, repr=False)
    _last: dict[bool, np.ndarray] = field(default_factory=dict, repr=False)
    """The last window's probabilities, of any window (False) and of one the detector called music (True)."""
    _heard: int = field(default=0, repr=False)
    """Windows above the silence gate."""
    _not_music: int = field(default=0, repr=False)
    """Of those, the ones the music detector's gate called ``not_music``."""

    def add(self, event: GenreEvent) -> None:
        """Count one window's event into the verdict (and keep it if ``keep_events``)."""
        self.windows += 1
        if self.keep_events:
            self.events.append(event)
        if event.state != "silence":
            self._heard += 1
            self._not_music += event.state == "not_music"
        if not event.probabilities:
            return
        probs = np.array([event.probabilities[label] for label in self.labels], dtype=np.float64)
        full = self.context_seconds is None or (event.context_seconds or 0) >= self.context_seconds - 0.5
        own = event.music_probability is None or event.music_probability >= OWN_MUSIC_PROBABILITY
        for tier in (False, True) if own else (False,):
            self._sums[tier, full] = self._sums.get((tier, full), 0) + probs
            self._counts[tier, full] = self._counts.get((tier, full), 0) + 1
            self._last[tier] = probs

    @property
    def min_seconds(self) -> float:
        """The least audio that makes one window (a shorter last window is zero-padded)."""
        return MIN_FINAL_FRACTION * self.window_seconds

    @property
    def too_short(self) -> bool:
        """The file is shorter than one window: nothing could be classified."""
        return self.windows == 0

    @property
    def verdict(self) -> tuple[str | None, float, dict[str, float]]:
        """(genre, probability, all probabilities): the mean over the classified windows.

        For summary bundles only the windows whose statistics cover the full
        context count (or, in a shorter file, the last window, which covers the
        most): earlier windows' statistics span only a few seconds, unlike the
        whole-clip statistics the model was trained on. Of those, the windows the
        detector itself called music (:data:`OWN_MUSIC_PROBABILITY`) count, not the
        ones of talk that the gate still held as music; all of them where there is none.

        A file whose non-silent windows are mostly ``not_music`` (the music detector's
        gate was closed: talk, noise) gets the verdict ``not_music``, with the share of
        those windows as its probability and no genre probabilities.
        """
        if self._heard and self._not_music * 2 > self._heard:
            return NOT_MUSIC, self._not_music / self._heard, {}
        for tier in (True, False):  # the detector's own music windows first
            if self._counts.get((tier, True)):
                mean = self._sums[tier, True] / self._counts[tier, True]
                break
            if tier in self._last:
                mean = self._last[tier]
                break
        else:
            return None, 0.0, {}
        probabilities = {label: float(p) for label, p in zip(self.labels, mean)}
        genre = max(probabilities, key=probabilities.get)
        return genre, probabilities[genre], probabilities

    # -- output, line by line as the windows come ---------------------------------
    def table_header(self) -> list[str]:
        return [f"{self.path}", f"  {'start':>7}  {'state':<9}  {'genre':<12} {'prob':>5}"]

    def table_line(self, e: GenreEvent) -> str:
        return f"  {e.audio_start_seconds:6.1f}s  {e.state:<9}  {e.genre or '-':<12} {e.probability:5.2f}"

    def json_line(self, e: GenreEvent) -> str:
        return json.dumps({"type": "window", "file": str(self.path), **e.to_dict()})

    def table_verdict(self) -> str:
        if self.too_short:
            return (f"  verdict: too short ({self.audio_seconds:.2f} s of audio; one {self.window_seconds:g}-s window "
                    f"needs at least {self.min_seconds:g} s)")
        genre, probability, _ = self.verdict
        return f"  verdict: {genre or 'no music heard'}" + (f" ({probability:.2f})" if genre else "")

    def json_verdict(self) -> str:
        genre, probability, probabilities = self.verdict
        return json.dumps({
            "type": "verdict", "file": str(self.path), "genre": genre, "probability": round(probability, 5),
            "probabilities": {k: round(v, 5) for k, v in probabilities.items()}, "windows": self.windows,
            "audio_seconds": round(self.audio_seconds, 3), "too_short": self.too_short,
        })

    def to_json_lines(self) -> str:
        return "\n".join([*(self.json_line(e) for e in self.events), self.json_verdict()])

    def to_table(self) -> str:
        return "\n".join([*self.table_header(), *(self.table_line(e) for e in self.events), self.table_verdict()])


def classify_file(path: Path, classifier: Classifier, settings: PipelineSettings, *,
                  on_event: Callable[[FileResult, GenreEvent], None] | None = None,
                  progress: bool = False) -> FileResult:
    """Classify every window of ``path``, streaming. With ``on_event`` each window's
    event goes to it as soon as it is made and is not kept in the result; ``progress``
    shows a bar on a terminal for files longer than :data:`PROGRESS_SECONDS`.
    Raises :class:`~genrecast.daemon.audio.AudioDecodeError` if the file cannot be read."""
    cfg = classifier.bundle.features
    audio = open_audio(path)
    state = SourceState(Path(path).name, classifier, settings)
    maker = EventMaker(classifier, settings)
    result = FileResult(path=Path(path), labels=classifier.bundle.labels,
                        context_seconds=cfg.context_seconds if cfg.kind == "summary" else None,
                        window_seconds=cfg.window_seconds, keep_events=on_event is None)

    def emit(pending) -> None:
        for event in maker.events(pending) if pending else []:
            result.add(event)
            if on_event is not None:
                on_event(result, event)

    long = progress and (audio.duration_seconds or 0) > PROGRESS_SECONDS
    with Progress(long, round(audio.duration_seconds or 0), f"classifying {Path(path).name} (s)", lines=False) as advance:
        for block in audio.blocks(BLOCK_SECONDS):
            emit(state.windows(block, audio.rate))
            advance(len(block) / audio.rate)
    emit(state.flush())
    result.audio_seconds = state.windower.consumed_seconds
    return result


# -- one file of an archive run (in this process or on a Dask worker) ----------------

@dataclass(frozen=True)
class ClassifyJob:
    """What every file of a run is classified with; small and picklable (it travels to Dask workers)."""

    bundle: str | None
    """Model bundle directory (absolute), or None for the built-in model."""
    backend: str = "litert"
    hop_seconds: float | None = None
    """Seconds between window starts (None: the window length)."""
    json_output: bool = True
    """JSON lines (else the readable table)."""
    plot_dir: str | None = None
    """Write a timeline PNG per file under this folder (see :mod:`genrecast.daemon.plot`)."""


@dataclass
class Outcome:
    """One file's result as written: ``text`` (its lines, no final newline), ``status``
    (``ok``, ``too_short`` or ``error``), seconds of audio, and the error message if any."""

    file: str
    text: str
    status: str
    audio_seconds: float = 0.0
    message: str | None = None
    plot_error: str | None = None
    """Why its ``--plot`` timeline could not be written (the verdict stands)."""


def error_line(file: str, message: str) -> str:
    """The JSON line of a file that could not be classified: ``{"type": "error", "file", "error"}``."""
    return json.dumps({"type": "error", "file": file, "error": message})


_CLASSIFIERS: dict[tuple[str | None, str], Classifier] = {}
#: How many bundles this process has loaded (one per worker process and bundle; tests read it).
BUNDLE_LOADS = [0]


def cached_classifier(bundle: str | None, backend: str) -> Classifier:
    """This process's classifier for (bundle, backend), loaded on first use only."""
    from genrecast.daemon.classifier import open_classifier

    key = (bundle, backend)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = open_classifier(bundle, backend)
        BUNDLE_LOADS[0] += 1
    return _CLASSIFIERS[key]


def classify_one(file: str, job: ClassifyJob, *, emit: Callable[[str], None] | None = None,
                 progress: bool = False) -> Outcome:
    """Classify one file for an archive run. With ``emit`` its lines go there as they are made
    (window by window) and ``Outcome.text`` holds none of them; without, ``text`` holds them all.
    A file that cannot be decoded gives ``status="error"`` and an :func:`error_line` (JSON)
    instead of raising; with ``job.plot_dir`` the verdict line names the timeline PNG written, and a
    PNG that cannot be written leaves the verdict without one and says why in ``Outcome.plot_error``."""
    from genrecast.daemon.audio import AudioDecodeError

    classifier = cached_classifier(job.bundle, job.backend)
    lines: list[str] = []
    out = emit or lines.append
    series: list[GenreEvent] = []

    def show(result: FileResult, event: GenreEvent) -> None:
        if job.plot_dir is not None:
            series.append(event)
        if result.windows == 1 and not job.json_output:
            out("\n".join(result.table_header()))
        out(result.json_line(event) if job.json_output else result.table_line(event))

    try:
        result = classify_file(Path(file), classifier, PipelineSettings(hop_seconds=job.hop_seconds),
                               on_event=show, progress=progress)
    except AudioDecodeError as exc:
        text = error_line(file, str(exc)) if job.json_output else ""
        if emit is not None and text:
            emit(text)
        return Outcome(file, "" if emit else text, "error", message=str(exc))
    png, plot_error = None, None
    if job.plot_dir is not None:
        from genrecast.daemon.plot import plot_path, write_timeline

        png = plot_path(Path(job.plot_dir), file)
        try:
            write_timeline(png, file, series, classifier.bundle.labels, result.audio_seconds)
        except OSError as exc:  # the verdict stands; the batch goes on
            png, plot_error = None, f"{file}: cannot write its timeline {png}: {exc.strerror or exc}; check --plot's folder"
    if job.json_output:
        verdict = json.loads(result.json_verdict())
        out(json.dumps({**verdict, "plot": str(png)} if png else verdict))
    else:
        if result.too_short:
            out("\n".join(result.table_header()))
        out(result.table_verdict())
    return Outcome(file, "\n".join(lines), "too_short" if result.too_short else "ok", result.audio_seconds,
                   plot_error=plot_error)
