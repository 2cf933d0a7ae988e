"""The body of ``genrecast classify``: check the options, expand the inputs, classify every file
(in this process, or on a Dask cluster with ``--workers``/``--scheduler``), write each file's lines
as it is done, and end with the exit status.

Exit status: 0 when every file was classified; 1 if any file could not be read or its ``--plot``
timeline could not be written (after the others); otherwise 3 if any file was shorter than one
window; 130 when interrupted (Ctrl-C), 143 when stopped by SIGTERM. With ``--resume`` the files the
earlier run finished count too, so a resumed run ends with the status the whole run would have had.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

from genrecast.daemon.archive import (ArchiveProgress, InputError, Tally, check_inputs, count_in_background, iter_inputs,
                                      foreign_line, resume_output)
from genrecast.daemon.classify import ClassifyJob, Outcome, cached_classifier, classify_one
from genrecast.daemon.interrupt import exit_status, how, sigterm_interrupts

CLUSTER_EXTRA = "pip install 'genrecast[cluster]'"
PLOT_EXTRA = "pip install 'genrecast[plot]'"


class UsageError(ValueError):
    """A bad combination of options or inputs (the message names it and the fix)."""


@dataclass(frozen=True)
class ClassifyOptions:
    """The command line of ``genrecast classify``, parsed."""

    inputs: list[str]
    """Files, directories (searched recursively for audio files) and globs."""
    lists: list[str]
    """List files, one path a line (``-``: stdin)."""
    job: ClassifyJob
    workers: int | None = None
    """Start a local Dask cluster of this many worker processes."""
    scheduler: str | None = None
    """Join the Dask scheduler at this address instead."""
    output: Path | None = None
    """Append JSON lines to this file instead of writing to stdout."""
    resume: bool = False
    """Skip the files ``output`` already has a verdict or error for."""

    @property
    def on_cluster(self) -> bool:
        return self.workers is not None or self.scheduler is not None

    @property
    def archive(self) -> bool:
        """More than one plain file could come: a progress bar over files and a summary line."""
        return (self.on_cluster or self.output is not None or bool(self.lists) or len(self.inputs) != 1
                or not Path(self.inputs[0]).is_file())


def check(options: ClassifyOptions) -> None:
    """Raise :class:`UsageError` for options that cannot work, before any work starts."""
    if not options.inputs and not options.lists:
        raise UsageError("nothing to classify: give audio files, folders or globs, or --list FILE")
    if options.workers is not None and options.scheduler is not None:
        raise UsageError("give --workers N (a local cluster) or --scheduler ADDRESS (a running one), not both")
    if options.workers is not None and options.workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {options.workers})")
    if options.resume and options.output is None:
        raise UsageError("--resume needs --output FILE (a file, not -): the JSON lines it reads to skip the files already done")
    if options.output is not None and options.output.is_dir():
        raise UsageError(f"--output {options.output} is a folder; give a file in it, e.g. {options.output / 'verdicts.jsonl'}")
    if options.output is not None and not options.resume and options.output.exists() and options.output.stat().st_size:
        raise UsageError(f"--output {options.output} exists: add --resume to go on with it, or choose a new file")
    if options.output is not None and options.resume and options.output.is_file() and \
            (line := foreign_line(options.output)) is not None:
        raise UsageError(f"--output {options.output}: line {line} is not one genrecast classify writes; --resume goes on "
                         "only with classify's own output (it cuts the file back to its last verdict), so choose a new file")
    if options.output is not None and not options.output.parent.is_dir():
        what = "is a file, not a folder" if options.output.parent.exists() else "does not exist"
        raise UsageError(f"--output {options.output}: the folder {options.output.parent} {what}; create it or choose another file")
    if options.on_cluster:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UsageError(f"--workers and --scheduler need dask.distributed: {CLUSTER_EXTRA}") from None
    if options.job.plot_dir is not None:
        _check_plot_dir(Path(options.job.plot_dir))
    try:
        check_inputs(options.inputs, options.lists)
    except InputError as exc:
        raise UsageError(str(exc)) from None


def _check_plot_dir(folder: Path) -> None:
    """Make the ``--plot`` folder now (a batch must not stop at its first file for it), and check that
    matplotlib is there; raise :class:`UsageError` naming the problem and the fix."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--plot {folder} is a file; give a folder for the timeline PNGs (it is created if missing)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {PLOT_EXTRA}") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--plot {folder}: cannot create the folder ({exc.strerror}); give a folder you can write to") from None


def _outcomes(files: Iterator[str], options: ClassifyOptions, write: Callable[[str], None]) -> Iterator[Outcome]:
    if not options.on_cluster:
        for file in files:  # window lines are written as they come; a long lone file gets its own bar
            yield classify_one(file, options.job, emit=write, progress=not options.archive)
        return
    from genrecast.daemon.cluster import cluster_outcomes, connect

    client, cluster = connect(options.workers, options.scheduler)
    try:
        # a scheduler's workers run in folders of their own: give them each file's absolute path
        yield from cluster_outcomes((os.path.abspath(f) for f in files) if options.scheduler else files, options.job, client)
    finally:
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)  # its reconnect, cut short here, is no news
        try:
            client.close(timeout=CLOSE_SECONDS)  # a scheduler that is gone does not hold the exit
        except (OSError, TimeoutError) as exc:
            logging.getLogger(__name__).debug("closing the Dask client: %s", exc)
        if cluster is not None:
            cluster.close()


#: Seconds to close the Dask client (its scheduler may be gone).
CLOSE_SECONDS = 5


def _open_locked(path: Path) -> TextIO:
    """``path`` opened to append, with an exclusive lock (``flock``) held until it is closed.

    Raises:
        UsageError: another process holds the lock: a classify run writing the same file (two
            runs interleaved their lines and classified every file twice).
    """
    import fcntl

    try:
        stream = open(path, "a", encoding="utf-8")
    except OSError as exc:  # a read-only disk, a folder not ours, a link to nowhere
        raise UsageError(f"--output {path}: cannot write it ({exc.strerror}); choose a file in a folder you can "
                         "write to") from None
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.close()
        raise UsageError(f"-o {path}: another genrecast classify is writing it; wait for that run to end (then "
                         "--resume goes on from it), or give another file") from None
    return stream


def run_classify(options: ClassifyOptions, out: TextIO | None = None) -> int:
    """Classify every file ``options`` names, writing to ``--output``, else ``out`` (default: stdout);
    returns the exit status (see the module).
    Raises :class:`UsageError` for bad options, ``BundleError``/``OSError`` for a bad bundle and
    ``genrecast.daemon.cluster.ClusterError`` for a cluster that cannot be had."""
    check(options)
    if options.archive:  # a line per resampled file would bury the progress
        logging.getLogger("genrecast.daemon.windowing").setLevel(logging.WARNING)
    cached_classifier(options.job.bundle, options.job.backend)  # a bad bundle fails here, in one line
    stream = _open_locked(options.output) if options.output else None
    tally = Tally()

    def write(text: str) -> None:
        target = stream or out or sys.stdout  # looked up each time: a progress bar may be redirecting stdout
        target.write(text + "\n")
        target.flush()

    try:
        done = resume_output(options.output) if options.resume and options.output else {}
        with sigterm_interrupts(), ArchiveProgress(options.archive) as progress:
            if options.archive:
                count_in_background(progress, options.inputs, options.lists, done)
            for outcome in _outcomes(iter_inputs(options.inputs, options.lists, done, tally.count_skipped), options, write):
                if outcome.text:
                    write(outcome.text)
                for message in (outcome.message, outcome.plot_error):
                    if message:
                        print(f"genrecast: error: {message}", file=sys.stderr, flush=True)
                tally.count(outcome.status, outcome.audio_seconds, plotted=outcome.plot_error is None)
                progress.advance(outcome.audio_seconds)
    except KeyboardInterrupt as exc:
        again = " (the same command with --resume goes on from here)" if options.output else ""
        print(f"genrecast: {how(exc)} after {tally.files} files{again}", file=sys.stderr, flush=True)
        return exit_status(exc)
    finally:
        if stream is not None:
            stream.close()
    if not tally.files and not tally.skipped:
        raise UsageError(f"nothing to classify: {' and '.join('--list ' + name for name in options.lists) or 'the inputs'} "
                         "named no file; give audio paths, one a line")
    if options.archive:
        print(f"genrecast: {tally.summary(options.output)}", file=sys.stderr, flush=True)
    return tally.exit_status()
