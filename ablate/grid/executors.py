"""Where cells run: in this process, in N local worker processes, or as tasks on a Ray cluster.

Each executor's `run(tasks, scratch, cell_fn=None)` takes (cell_id, config) pairs and yields a CellResult per cell
as cells finish, in finishing order; the caller writes the files, so the run folder's layout does not
depend on where cells ran. scratch: the folder local cells put their temp folders in (the run folder's, so
that what a killed run leaves there is removed when it resumes; None: the system's temp folder). cell_fn: what runs
each cell of this call (a picklable function of (config, features_path)), instead of the executor's own (a tune's
trials and its final seeds run through one executor). `session()` holds what several calls share (Ray's
connection).
"""

import contextlib
import multiprocessing
import queue
import shutil
import socket
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing.queues import Queue
from pathlib import Path

import torch

from ablate.grid import progress
from ablate.grid.execute import CellResult, execute_cell, failed_record, train_cell
from ablate.signals import signals_deferred

EXECUTORS = ("local", "ray")


class SerialExecutor:
    """Cells one after another in this process."""

    def __init__(self, cell_fn=train_cell):
        self.cell_fn = cell_fn

    def run(self, tasks, scratch=None, cell_fn=None):
        for cell_id, config in tasks:
            yield execute_cell(cell_id, config, cell_fn or self.cell_fn, scratch)

    def session(self):
        """The context of several run() calls (a tune's rounds): nothing to hold between them here."""
        return contextlib.nullcontext()


WORKER_DIED = ("the worker process died while running this cell alone (killed for memory, or a crash in native "
               "code); its last state is lost")


class ProcessExecutor:
    """Cells in `workers` local processes, torch's threads divided among them.

    A worker that dies (killed for memory, say) breaks the whole pool, failing every cell still in it,
    guilty or not. Those cells are then run again one at a time in a one-worker pool: a healthy cell
    finishes, and only a cell whose worker dies again, alone, is recorded as failed.

    Interrupted (SIGINT, or SIGTERM/SIGHUP as the CLI maps them), the workers are ended at once and the cells'
    temp folders, all under one folder of this executor's, removed with it. When the cells are done, the workers
    are shut down and waited for, so that each ends as a process should.

    The workers' epochs come back through a queue (made here, once per executor, and shared by every pool), relayed
    to this process's progress sink (ablate.grid.progress) at least every RELAY_INTERVAL_S while cells run.

    A worker is started by the forkserver, so its multiprocessing objects are named POSIX semaphores that the
    resource tracker counts until the worker releases them; a worker killed mid-cell cannot. So a worker makes none:
    tqdm, whose progress bars would make a multiprocessing lock in every process that draws one (a disabled bar
    included), gets a thread lock instead (_start_worker), and the report queue's locks are this process's. Else the
    tracker warns of "leaked semaphore objects".
    """

    def __init__(self, workers: int, cell_fn=train_cell):
        self.workers, self.cell_fn = workers, cell_fn
        self.threads_per_worker = max(1, torch.get_num_threads() // workers)
        self._context = multiprocessing.get_context("forkserver")
        # the queue of the workers' epochs ((cell_id, epoch, epochs): progress.relay), made with the first pool
        self._reports: Queue[tuple[str, int, int]] | None = None
        self._in_session = False
        self._session_pool: ProcessPoolExecutor | None = None

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        # forkserver, not fork: a forked child of a process whose OpenMP pool has started can hang.
        # The server imports the training code once (no torch op runs there), so each worker starts
        # as a cheap fork instead of a fresh interpreter importing torch.
        self._context.set_forkserver_preload(["ablate.train", "ablate.grid.execute"])
        if self._reports is None:
            self._reports = self._context.Queue()
        return ProcessPoolExecutor(workers, mp_context=self._context, initializer=_start_worker,
                                   initargs=(self.threads_per_worker, self._reports))

    @contextlib.contextmanager
    def session(self):
        """Several run() calls (a tune's rounds) on one pool of workers, made by the first and ended after the
        block (or at once, when a worker died or the run was interrupted)."""
        self._in_session, ended = True, False
        try:
            yield
            ended = True
        finally:
            self._in_session = False
            if self._session_pool is not None:
                _end_pool(self._session_pool, wait=ended)
                self._session_pool = None

    def run(self, tasks, scratch=None, cell_fn=None):
        temp_root = tempfile.mkdtemp(prefix="ablate-grid-", dir=scratch)
        cell_fn = cell_fn or self.cell_fn
        try:
            suspects = yield from self._run_pool(tasks, temp_root, cell_fn)
            yield from self._run_alone(suspects, temp_root, cell_fn)
        finally:
            shutil.rmtree(temp_root, ignore_errors=True)
            self._relay()  # the last epochs reported

    def _as_completed(self, futures):
        """The futures as they complete, the workers' reports relayed meanwhile."""
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=RELAY_INTERVAL_S, return_when=FIRST_COMPLETED)
            self._relay()
            yield from done

    def _relay(self) -> None:
        while self._reports is not None:
            try:
                report = self._reports.get_nowait()
            except queue.Empty:
                return
            progress.relay(*report)

    def _run_pool(self, tasks, temp_root, cell_fn):
        """Yield the cells' results; return the cells failed by a broken pool, not necessarily by themselves."""
        suspects, pool, keep, done = [], self._session_pool, False, False
        try:
            with signals_deferred():  # every worker started is in pool._processes before an interrupt can land
                pool = pool or self._pool(self.workers)
                self._session_pool = pool if self._in_session else None
                futures = {pool.submit(execute_cell, cell_id, config, cell_fn, temp_root): (cell_id, config)
                           for cell_id, config in tasks}
            for future in self._as_completed(futures):
                try:
                    yield future.result()
                except BrokenProcessPool:
                    suspects.append(futures[future])
                except Exception as exc:  # the result could not come back (e.g. not picklable)
                    cell_id, config = futures[future]
                    yield CellResult(cell_id, failed_record(config, repr(exc)), None)
            done = True
            keep = self._in_session and not suspects  # a whole pool, for the session's next call
        finally:
            if pool is not None and not keep:
                _end_pool(pool, wait=done and not suspects)
                self._session_pool = None
        return suspects

    def _run_alone(self, tasks, temp_root, cell_fn):
        pool, done = None, False
        try:
            for cell_id, config in tasks:
                with signals_deferred():
                    pool = pool or self._pool(1)
                    future = pool.submit(execute_cell, cell_id, config, cell_fn, temp_root)
                try:
                    yield next(self._as_completed([future])).result()
                except BrokenProcessPool:
                    yield CellResult(cell_id, failed_record(config, WORKER_DIED), None)
                    _end_pool(pool)
                    pool = None
            done = True
        finally:
            if pool is not None:
                _end_pool(pool, wait=done)


RELAY_INTERVAL_S = 0.5


def _start_worker(threads: int, reports) -> None:
    """A worker's start: its share of torch's threads, a thread lock for tqdm (see ProcessExecutor), and its cells'
    epochs to the executor's queue (a worker never waits at its exit for reports still buffered: they only move a
    progress bar)."""
    import threading

    from tqdm import tqdm

    torch.set_num_threads(threads)
    tqdm.set_lock(threading.RLock())
    reports.cancel_join_thread()
    progress.report_to(partial(_put_report, reports))


def _put_report(reports, cell_id: str, epoch: int, epochs: int) -> None:
    reports.put((cell_id, epoch, epochs))


def _end_pool(pool: ProcessPoolExecutor, wait: bool = False) -> None:
    """End the pool. wait: its cells are done, so its idle workers are shut down and waited for. Else (interrupted,
    or a worker died) the cells it runs are not waited for: its workers are killed and reaped, so that none runs on
    after an interrupted grid. ProcessPoolExecutor only gains terminate_workers in Python 3.14; before, its
    _processes (pid -> Process) are the way to them."""
    if wait:
        pool.shutdown(wait=True)
        return
    processes = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join()


def import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: pip install 'ablate[ray]'") from None
    return ray


class RayExecutor:
    """Cells as Ray tasks on the cluster at `address` (None: the one already connected, else a new local one).

    Each task asks for one CPU, and one GPU when its cell will use CUDA. When this executor connects,
    it ships the ablate package to the workers (runtime_env py_modules), so cluster nodes need
    Python, torch and the other dependencies, not ablate itself; a Ray that the caller initialized
    is used as it is.
    """

    def __init__(self, address: str | None = None, cell_fn=train_cell):
        self.ray = import_ray()  # here, so that a missing Ray stops the command before it writes anything
        check_answers(address)  # likewise: ray.init waits minutes on an address where nothing listens
        self.address, self.cell_fn = address, cell_fn

    @contextlib.contextmanager
    def session(self):
        """Ray joined (or started) for the block and left after it, unless it was already: several run() calls (a
        tune's rounds) share one connection."""
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            package = str(Path(__file__).resolve().parent.parent)
            try:
                ray.init(address=self.address, runtime_env={"py_modules": [package]}, log_to_driver=False)
            except ConnectionError as exc:
                raise RuntimeError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None
        try:
            yield
        finally:
            if started_here:
                ray.shutdown()

    def run(self, tasks, scratch=None, cell_fn=None):
        """scratch is not used: the cells run on the cluster's machines, in their own temp folders."""
        with self.session():
            yield from self._run_tasks(self.ray, tasks, cell_fn or self.cell_fn)

    def _run_tasks(self, ray, tasks, cell_fn):
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        remote = ray.remote(execute_cell)
        refs = {}
        for cell_id, config in tasks:
            if config["device"] == "cuda" and not has_gpus:  # Ray would wait for a GPU forever
                yield CellResult(cell_id, failed_record(config, "device 'cuda' was asked for but the Ray "
                                                                "cluster has no GPU"), None)
                continue
            uses_cuda = config["device"] == "cuda" or (config["device"] == "auto" and has_gpus)
            task = remote.options(num_cpus=1, num_gpus=1 if uses_cuda else 0)
            refs[task.remote(cell_id, config, cell_fn)] = (cell_id, config)
        pending = list(refs)
        try:
            while pending:
                (done,), pending = ray.wait(pending, num_returns=1)
                cell_id, config = refs[done]
                try:
                    yield ray.get(done)
                except ray.exceptions.RayError as exc:  # the task's worker died, or the cluster lost it
                    yield CellResult(cell_id, failed_record(config, str(exc)), None)
        finally:
            for ref in pending:
                ray.cancel(ref)


RAY_CONNECT_TIMEOUT_S = 10.0


def check_answers(address: str | None, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Refuse (RuntimeError) a Ray address HOST:PORT (or ray://HOST:PORT) where nothing accepts a connection
    within `timeout` seconds. None, "auto" and "local" name no socket and pass."""
    if address is None or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RuntimeError(f"--address must be HOST:PORT, ray://HOST:PORT, auto or local, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RuntimeError(f"cannot reach the Ray cluster at {address} within {timeout:g} s ({exc}); nothing "
                           "was written") from None


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None, cell_fn=train_cell):
    """The executor for --executor KIND: local with 1 worker runs in this process."""
    if kind == "ray":
        return RayExecutor(address, cell_fn)
    if kind != "local":
        raise ValueError(f"unknown executor {kind!r}; expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return SerialExecutor(cell_fn) if workers == 1 else ProcessExecutor(workers, cell_fn)
