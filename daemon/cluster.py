"""``genrecast classify --workers N | --scheduler ADDRESS``: files classified on a ``dask.distributed``
cluster.

``--workers N`` starts a local cluster of N worker processes (one thread each) on 127.0.0.1;
``--scheduler`` joins a running one (``dask scheduler`` / ``dask worker``, Kubernetes, HPC): the same
code below either way. A worker plugin loads the bundle once per worker process (and a per-process
cache keeps it); files are submitted from a lazy iterator with a bounded number of tasks in flight,
so the scheduler never holds the whole list; results come back as they complete and only this
process writes them, once per file, even when Dask reruns the task of a worker that died.

Workers must see the files (and ``--plot``'s folder) at the same paths, and have genrecast installed.
See https://distributed.dask.org/en/stable/ (Client, LocalCluster, as_completed, WorkerPlugin).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import uuid
from typing import Iterable, Iterator

from distributed import Client, LocalCluster, as_completed
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.utils import CancelledError

from genrecast.daemon.classify import ClassifyJob, Outcome, cached_classifier, classify_one, error_line

log = logging.getLogger("genrecast")

#: Tasks in flight per worker thread: enough to keep every worker busy, few enough that a
#: million-file list never sits in the scheduler.
IN_FLIGHT_PER_THREAD = 4
#: Seconds to wait for a scheduler to answer, and then for its first worker.
CONNECT_SECONDS = 10
FIRST_WORKER_SECONDS = 60
#: Seconds between the checks, while files are in flight, that the cluster still has a worker.
WORKER_CHECK_SECONDS = 5


class ClusterError(RuntimeError):
    """The cluster could not be started or reached (the message says which and why)."""


class BundleLoader(WorkerPlugin):
    """Loads the bundle into each worker process when it starts (and again in a replacement
    worker), so no task pays for it; :func:`classify_task` then finds it in the cache."""

    name = "genrecast-bundle"

    def __init__(self, bundle: str | None, backend: str) -> None:
        self.bundle, self.backend = bundle, backend

    def setup(self, worker) -> None:
        cached_classifier(self.bundle, self.backend)


#: What a worker of distributed logs, with a traceback, when its heartbeat meets a connection the
#: scheduler has just closed. Retiring a local cluster's workers at the end of a run races with
#: their heartbeats (distributed closes the worker's comms while a heartbeat is in flight), so a
#: finished run could end with this traceback on stderr although every result was in.
SHUTDOWN_HEARTBEAT = "Failed to communicate with scheduler during heartbeat"


class _NoShutdownHeartbeat(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(SHUTDOWN_HEARTBEAT)


class QuietHeartbeat(WorkerPlugin):
    """In the worker processes of a cluster genrecast started itself (``--workers N``), drops the
    worker's :data:`SHUTDOWN_HEARTBEAT` record: such a cluster ends only when the run has all its
    results, and a scheduler lost mid-run shows on the client anyway. A cluster joined with
    ``--scheduler`` keeps its workers' logging as it is."""

    name = "genrecast-quiet-heartbeat"

    def setup(self, worker) -> None:
        logging.getLogger("distributed.worker").addFilter(_NoShutdownHeartbeat())


def classify_task(file: str, job: ClassifyJob) -> Outcome:
    """What a worker runs for one file (see :func:`genrecast.daemon.classify.classify_one`)."""
    return classify_one(file, job)


def bundle_loads() -> int:
    """How many bundles this (worker) process has loaded; ``client.run(bundle_loads)`` asks each worker."""
    from genrecast.daemon.classify import BUNDLE_LOADS

    return BUNDLE_LOADS[0]


def connect(workers: int | None, scheduler: str | None) -> tuple[Client, LocalCluster | None]:
    """A client of a new local cluster of ``workers`` processes, or of the scheduler at ``scheduler``.
    Raises :class:`ClusterError` when it cannot be had."""
    if scheduler:
        logging.getLogger("distributed").setLevel(logging.WARNING)
        try:
            client = Client(scheduler, timeout=CONNECT_SECONDS)
            client.wait_for_workers(1, timeout=FIRST_WORKER_SECONDS)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"--scheduler {scheduler}: no scheduler with a worker answered ({exc}); check the address "
                               f"(tcp://HOST:8786) and that `dask worker {scheduler}` runs") from None
        return client, None
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would bury the progress
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING)
    client = Client(cluster)
    client.register_plugin(QuietHeartbeat())
    return client, cluster


class _Prefetch:
    """Reads an iterable in a daemon thread into a bounded queue, so a slow source of paths (a
    pipe, a network folder) never holds up writing the results that are ready."""

    END = object()

    def __init__(self, items: Iterable[str], size: int = 10_000) -> None:
        self._queue: queue.Queue = queue.Queue(size)
        self._error: BaseException | None = None
        self.finished = False
        threading.Thread(target=self._read, args=(items,), name="read-inputs", daemon=True).start()

    def _read(self, items: Iterable[str]) -> None:
        try:
            for item in items:
                self._queue.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._error = exc
        self._queue.put(self.END)

    def get(self, block: bool) -> str | None:
        """The next path; None when none is ready now (``block=False``) or when there are no more."""
        if self.finished:
            return None
        try:
            item = self._queue.get(block=block)
        except queue.Empty:
            return None
        if item is self.END:
            self.finished = True
            if self._error is not None:
                raise self._error
            return None
        return item


class _WorkerWatch:
    """While files are in flight, asks the scheduler every :data:`WORKER_CHECK_SECONDS` how many
    workers it has, and says so when the last one is gone (and when one is back): Dask keeps the
    tasks of a cluster without workers waiting, so the run would hang without a word."""

    def __init__(self, client: Client, in_flight) -> None:
        self._client, self._in_flight = client, in_flight
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watch-workers", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        waiting = False
        while not self._stop.wait(WORKER_CHECK_SECONDS):
            try:
                workers = len(self._client.nthreads())
            except Exception:  # noqa: BLE001 - a scheduler that went away ends the run on its own
                continue
            if not workers and not waiting and self._in_flight():
                waiting = True
                log.warning("the cluster has no worker left (files in flight: %d); start `dask worker %s`, or stop "
                            "with Ctrl-C and run the same command with --resume later", self._in_flight(),
                            self._client.scheduler.address)
            elif workers and waiting:
                waiting = False
                log.warning("the cluster has %d worker%s again: going on", workers, "s" * (workers != 1))

    def stop(self) -> None:
        self._stop.set()


def cluster_outcomes(files: Iterable[str], job: ClassifyJob, client: Client) -> Iterator[Outcome]:
    """The outcome of every file, in the order they complete, with at most
    :data:`IN_FLIGHT_PER_THREAD` tasks per worker thread submitted at a time. A task that fails
    anyway (e.g. its worker died on it more often than ``distributed.scheduler.allowed-failures``)
    gives an error outcome for its file; the run goes on. A task the cluster cancels (its scheduler
    stopped) raises :class:`ClusterError`: its file gets no line, so ``--resume`` classifies it."""
    client.register_plugin(BundleLoader(job.bundle, job.backend))
    bound = IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
    pending = _Prefetch(files)
    run_id = uuid.uuid4().hex[:8]
    names: dict[str, str] = {}
    flying = as_completed()
    numbers = itertools.count()

    def top_up() -> None:
        while len(names) < bound and (file := pending.get(block=not names)) is not None:
            future = client.submit(classify_task, file, job, key=f"genrecast-classify-{run_id}-{next(numbers)}", pure=False)
            names[future.key] = file
            flying.add(future)

    top_up()
    watch = _WorkerWatch(client, lambda: len(names))
    try:
        yield from _results(names, flying, job, top_up)
    finally:
        watch.stop()


def _results(names: dict[str, str], flying: as_completed, job: ClassifyJob, top_up) -> Iterator[Outcome]:
    """The outcomes of the tasks in ``flying`` (``names``: their keys to their files) as they
    complete, topping up the tasks after each (see :func:`cluster_outcomes`)."""
    while names:
        future = next(flying)
        file = names.pop(future.key)
        try:
            outcome = future.result()
        except CancelledError as exc:  # the scheduler went away (or dropped the task): not this file's fault
            raise ClusterError(f"the cluster dropped the task of {file} ({getattr(exc, 'reason', None) or 'cancelled'}; "
                               "did the scheduler stop?); the files in flight have no line in the output: run the same "
                               "command with --resume once the cluster is back") from None
        except Exception as exc:  # noqa: BLE001 - any task failure is this file's error line, not the run's end
            message = f"{file}: {type(exc).__name__}: {exc}"
            log.warning("could not classify %s", message)
            outcome = Outcome(file, error_line(file, message) if job.json_output else "", "error", message=message)
        future.release()
        yield outcome
        top_up()
