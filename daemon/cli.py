"""The ``genrecast`` command line: thin typer commands over the library.

Domain errors become one clear line on stderr and a non-zero exit, never a
traceback. Heavy imports happen inside the commands that need them.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from genrecast.daemon.cache import ensure_numba_cache
from genrecast.daemon.stderr import escape_unencodable, private_stderr


def _no_type_placeholders() -> None:
    """Typer's rich help prints an argument's Python type (``<list[Path]>``) beside its metavar,
    and ``<bool>`` beside ``--help``; our arguments and flags say what they take in their
    metavar and help, so the type column stays empty for them (tests/test_help.py checks)."""
    from typer.core import TyperArgument, TyperOption

    TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    shown = TyperOption.display_type_rich

    def option_type(self, ctx):
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    TyperOption.display_type_rich = option_type  # type: ignore[method-assign]


_no_type_placeholders()

app = typer.Typer(
    name="genrecast",
    help="Listen to audio, name its music genre every few seconds, and publish genre events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    """Print ``genrecast: error: message`` to stderr and exit with ``code``."""
    typer.echo(f"genrecast: error: {message}", err=True)
    raise typer.Exit(code)


def full_disk(exc: OSError, flag: str, path: os.PathLike | str, fix: str) -> str | None:
    """The one line for a full disk (or an exhausted quota) met while writing ``path`` (given as
    ``flag``), or None for any other error. A write's error names no file (``[Errno 28] No space left
    on device``), so the line names what was being written and ``fix``; when that path's own disk
    still has room, the full one was another: the folder of the file the error names, else genrecast's
    cache folder (features, augmented copies, detector windows) or the temporary folder, whichever
    is short of room, and the line says so."""
    import errno
    import tempfile

    from genrecast.daemon.cache import cache_dir

    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    if _free_bytes(path) < 64 << 20:
        return f"{flag} {path}: no space left on its disk ({exc.strerror}); {fix}"
    named = os.path.dirname(os.path.abspath(os.fsdecode(exc.filename))) if exc.filename else None
    others = ([(named, f"the folder {named}", "free some space there")] if named else []) + [
        (str(cache_dir()), f"the cache folder {cache_dir()}", "free some space there or set GENRECAST_CACHE_DIR to a folder with room"),
        (tempfile.gettempdir(), f"the temporary folder {tempfile.gettempdir()}",
         "free some space there or set TMPDIR to a folder with room")]
    full = next((other for other in others if _free_bytes(other[0]) < 64 << 20), None)
    _, what, how = full or others[-1]  # none short of room now (freed since?): the temporary folder, as a guess
    return (f"no space left on a disk ({exc.strerror}), though the disk of {flag} {path} has room: {what} "
            f"{'is' if full else 'may be'} full; {how}")


def _free_bytes(path: os.PathLike | str) -> int:
    """Free bytes on the disk of ``path`` (of its nearest folder that exists); 0 if it cannot be asked."""
    import shutil

    from genrecast.daemon.paths import nearest_existing

    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return 0


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (``sys.stderr``, which :func:`main` points at a private copy of fd 2, so a
    library that silences fd 2 for a moment cannot swallow our lines)."""
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("GENRECAST_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"genrecast {version('genrecast')}")
        except PackageNotFoundError:
            typer.echo("genrecast (not installed as a distribution; run `pip install .`)")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", metavar="", is_eager=True, callback=_version,
                                      help="Print genrecast's version and exit."),
) -> None:
    """Listen to audio, name its music genre every few seconds, and publish genre events."""


def _register_commands() -> None:
    from genrecast.daemon import cli_daemon, cli_report
    from genrecast.plugins import cli as plugins_cli
    from genrecast.trainer import cli as trainer_cli

    trainer_cli.register(app)
    cli_daemon.register(app)
    cli_report.register(app)
    plugins_cli.register(app)


def single_threaded_blas() -> None:
    """Give OpenBLAS one thread per caller (unless ``OPENBLAS_NUM_THREADS`` is set).

    genrecast's numpy work is many small matrix products (a 1025-bin spectrum by a
    12-row chroma basis, per window), made from one thread per source or one process per
    worker. OpenBLAS's own thread pool only contends then: 100 real-time streams took
    104 % of a core and fell behind with it, 29 % and kept up without
    (``python -m benchmarks --only concurrent``, 2026-11-30). Must run before numpy is
    imported."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _writing_stdout(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while writing to standard output: some frame of its traceback
    was writing to ``sys.stdout`` (click's ``echo`` holds it as ``file``, rich's console as ``self.file``)."""
    outs = {id(sys.stdout), id(sys.__stdout__)}
    tb = exc.__traceback__
    while tb is not None:
        local = tb.tb_frame.f_locals
        if any(id(obj) in outs or id(getattr(obj, "file", None)) in outs
               for obj in (local.get("file"), local.get("self"), local.get("stream"))):
            return True
        tb = tb.tb_next
    return False


def main() -> None:
    """Entry point of the ``genrecast`` console command."""
    private_stderr()  # first, before any thread or library can point fd 2 elsewhere
    escape_unencodable(sys.stdout)  # a terminal in a legacy locale (ASCII, Latin-1) gets café as caf\xe9, not an error
    single_threaded_blas()
    ensure_numba_cache()
    _register_commands()
    try:
        app()
    except OSError as exc:  # `genrecast config show > /dev/full`: one line, not a traceback
        if isinstance(exc, BrokenPipeError) or not _writing_stdout(exc):
            raise
        from genrecast.daemon.stderr import stdout_to_devnull

        stdout_to_devnull()  # so the flush at exit cannot fail again
        print(f"genrecast: error: cannot write to the standard output: {exc.strerror or exc}; "
              "free space where it goes, or send it elsewhere", file=sys.stderr)
        sys.exit(1)
