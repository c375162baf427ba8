"""Start N ranks with torch.multiprocessing, each in the default process group; end them all when one fails.

A rank that raises or dies (killed, a crash in native code) makes `run_ranks` terminate the others
at once (torch.multiprocessing's join) and raise a RanksFailed naming the rank and its cause; a rank
left waiting in a collective for a peer that stopped answering raises after groups.TIMEOUT_S. No path
waits forever.
"""

import json
import multiprocessing
import os
import signal
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ablate.distributed.groups import init_group
from ablate.io import atomic_write_json, atomic_write_with
from ablate.limits import check_process_count
from ablate.signals import signals_deferred

# forkserver, not fork: a fork of a process whose OpenMP pool has started can hang. The server imports
# torch and the training code once (no torch op runs there); each rank then starts as a cheap fork of it
# instead of a fresh interpreter importing torch (seconds per rank on a busy machine).
START_METHOD = "forkserver"
PRELOAD = ["ablate.train", "ablate.distributed.centers"]
TRACE_LINES = 12  # of a failed rank's traceback, in the error
TERMINATE_GRACE_S = 5  # after a failure, how long the other ranks get to exit before SIGTERM, then SIGKILL


class RanksFailed(RuntimeError):
    """One rank of a multi-process run failed; the others were ended."""


def rank_device(device: torch.device | str, rank: int) -> torch.device:
    """The device of `rank`: its own GPU (cuda:rank) on CUDA, the CPU otherwise."""
    return torch.device("cuda", rank) if torch.device(device).type == "cuda" else torch.device("cpu")


def check_world(nproc: int, device: torch.device, bytes_per_rank: int = 0, option: str = "nproc") -> None:
    """nproc >= 1, at most the cores here (or $ABLATE_MAX_PROCESSES) with every rank's memory (bytes_per_rank
    beyond the interpreter's own) within the host's, and one GPU per rank on CUDA (nccl); the error names what
    was found and the limit."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"{option} must be an integer >= 1, got {nproc!r}")
    check_process_count(option, nproc, bytes_per_rank)
    if torch.device(device).type == "cuda" and nproc > torch.cuda.device_count():
        raise ValueError(f"nproc={nproc} on CUDA needs one GPU per rank; torch sees {torch.cuda.device_count()}")


def _rank_main(rank: int, fn, nproc: int, rendezvous: str, result_dir: str, device: str, threads: int, args) -> None:
    torch.set_num_threads(threads)
    own_device = rank_device(device, rank)
    if own_device.type == "cuda":
        torch.cuda.set_device(own_device)
    try:
        init_group(rank, nproc, rendezvous, own_device)
        result = fn(rank, nproc, *args)
    except BaseException:
        # Written before the group closes: its time tells the first failure (the cause) from the peers'
        # lost connections (its consequences).
        atomic_write_json(Path(result_dir) / f"rank{rank}.error",
                          {"time": time.time(), "trace": traceback.format_exc()})
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    atomic_write_with(Path(result_dir) / f"rank{rank}.pt", lambda path: torch.save(result, path))


def _cause(processes, result_dir: Path) -> str:
    """Which rank failed first and why: a rank that died without a word (a signal, a crash in native code),
    else the rank whose exception came first; the others failed because it did."""
    errors = {rank: json.loads((result_dir / f"rank{rank}.error").read_text())
              for rank in range(len(processes)) if (result_dir / f"rank{rank}.error").exists()}
    for rank, process in enumerate(processes):
        code = process.exitcode
        if rank not in errors and code not in (0, None, -signal.SIGTERM):  # SIGTERM: ended by us, after the cause
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            return (f"rank {rank} of {len(processes)} died ({how}: killed, out of memory, or a crash in native code); "
                    "the other ranks were ended")
    if not errors:
        return f"a rank of {len(processes)} failed without a trace; the other ranks were ended"
    rank = min(errors, key=lambda r: errors[r]["time"])
    trace = errors[rank]["trace"].strip().splitlines()
    return (f"rank {rank} of {len(processes)} failed: {trace[-1]}; the other ranks were ended. Its traceback:\n"
            + "\n".join(trace[-TRACE_LINES:]))


def _join(context: mp.ProcessContext, result_dir: Path) -> None:
    """Wait for every rank of `context`; RanksFailed naming the first failure's cause when one fails."""
    try:
        while not context.join(grace_period=TERMINATE_GRACE_S):
            pass
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        raise RanksFailed(_cause(context.processes, result_dir)) from None


def run_ranks(fn, nproc: int, args: tuple = (), *, device="cpu", threads: int | None = None) -> list:
    """fn(rank, nproc, *args) in `nproc` new processes (forkserver) joined in one process group; every
    rank's return value (any torch.save-able object), in rank order.

    device: "cpu" (gloo) or "cuda" (nccl, rank r on cuda:r). threads: torch threads per rank (default:
    this process's divided among the ranks, at least 1). fn must be importable by name.
    """
    check_world(nproc, device)
    threads = threads or max(1, torch.get_num_threads() // nproc)
    multiprocessing.get_context(START_METHOD).set_forkserver_preload(PRELOAD)
    with tempfile.TemporaryDirectory(prefix="ablate-ranks-") as tmp:
        rendezvous = os.path.join(tmp, "rendezvous")
        context = None
        try:
            with signals_deferred():  # every rank started is in context.processes before an interrupt can land
                context = mp.start_processes(_rank_main, args=(fn, nproc, rendezvous, tmp, str(device), threads, args),
                                             nprocs=nproc, join=False, start_method=START_METHOD)
            _join(context, Path(tmp))
        finally:
            for process in context.processes if context else []:  # only if this process itself was interrupted
                if process.is_alive():
                    process.kill()
                    process.join()
        return [torch.load(Path(tmp) / f"rank{rank}.pt", weights_only=False) for rank in range(nproc)]
