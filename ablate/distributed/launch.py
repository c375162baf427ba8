"""Start N ranks with torch.multiprocessing, each in the default process group; end them all when one fails.

A rank that raises or dies (killed, a crash in native code) makes `run_ranks` terminate the others
at once (torch.multiprocessing's join) and raise a RanksFailed naming the rank and its cause; a rank
left waiting in a collective for a peer that stopped answering raises after groups.TIMEOUT_S. No path
waits forever.
"""

import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ablate.distributed.groups import init_group
from ablate.io import atomic_write_with

TERMINATE_GRACE_S = 5  # after a failure, how long the other ranks get to exit before SIGTERM, then SIGKILL


class RanksFailed(RuntimeError):
    """One rank of a multi-process run failed; the others were ended."""


def rank_device(device: torch.device, rank: int) -> torch.device:
    """The device of `rank`: its own GPU (cuda:rank) on CUDA, the CPU otherwise."""
    return torch.device("cuda", rank) if torch.device(device).type == "cuda" else torch.device("cpu")


def check_world(nproc: int, device: torch.device) -> None:
    """nproc >= 1, and one GPU per rank on CUDA (nccl); the error names what was found."""
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an integer >= 1, got {nproc!r}")
    if torch.device(device).type == "cuda" and nproc > torch.cuda.device_count():
        raise ValueError(f"nproc={nproc} on CUDA needs one GPU per rank; torch sees {torch.cuda.device_count()}")


def _rank_main(rank: int, fn, nproc: int, rendezvous: str, result_dir: str, device: str, threads: int, args) -> None:
    torch.set_num_threads(threads)
    device = rank_device(device, rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    init_group(rank, nproc, rendezvous, device)
    try:
        result = fn(rank, nproc, *args)
        atomic_write_with(Path(result_dir) / f"rank{rank}.pt", lambda path: torch.save(result, path))
    finally:
        dist.destroy_process_group()


def _failure_message(exc: Exception, nproc: int) -> str:
    if isinstance(exc, mp.ProcessExitedException):
        return (f"rank {exc.error_index} of {nproc} died ({exc}; killed for memory, by a signal or a crash in "
                f"native code); the other ranks were ended")
    return f"rank {exc.error_index} of {nproc} failed; the other ranks were ended.{exc}"


def run_ranks(fn, nproc: int, args: tuple = (), *, device="cpu", threads: int = None) -> list:
    """fn(rank, nproc, *args) in `nproc` fresh processes (spawn) joined in one process group; every
    rank's return value (any torch.save-able object), in rank order.

    device: "cpu" (gloo) or "cuda" (nccl, rank r on cuda:r). threads: torch threads per rank (default:
    this process's divided among the ranks, at least 1). fn must be importable by name.
    """
    check_world(nproc, device)
    threads = threads or max(1, torch.get_num_threads() // nproc)
    with tempfile.TemporaryDirectory(prefix="ablate-ranks-") as tmp:
        rendezvous = os.path.join(tmp, "rendezvous")
        context = mp.start_processes(_rank_main, args=(fn, nproc, rendezvous, tmp, str(device), threads, args),
                                     nprocs=nproc, join=False, start_method="spawn")
        try:
            while not context.join(grace_period=TERMINATE_GRACE_S):
                pass
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            raise RanksFailed(_failure_message(exc, nproc)) from None
        finally:
            for process in context.processes:  # only if this process itself was interrupted
                if process.is_alive():
                    process.kill()
                    process.join()
        return [torch.load(Path(tmp) / f"rank{rank}.pt", weights_only=False) for rank in range(nproc)]
