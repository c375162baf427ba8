"""Timing: every function of one point measured in the same process, interleaved round by round.

CPU: torch.utils.benchmark (blocked_autorange; its per-run times give the median and quantiles).
CUDA: triton.testing.do_bench (CUDA events, warm-up, the L2 cache flushed before every run).
Both report per-run times in milliseconds; quantiles are taken over all rounds together.
"""

import math
from typing import Callable, Mapping

import numpy as np
import torch
from torch.utils import benchmark

from ablate.bench.suites import Timing

QUANTILES = (0.2, 0.5, 0.8)
WARMUP_CALLS = 2  # past compilation (torch.compile) and Triton's autotuning, which happen on the first calls


def warm_up(fn: Callable[[], object], device: torch.device) -> None:
    for _ in range(WARMUP_CALLS):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_times(fns: Mapping[str, Callable], timing: Timing) -> dict:
    threads = timing.threads or torch.get_num_threads()
    timers = {name: benchmark.Timer("fn()", globals={"fn": fn}, num_threads=threads, label=name)
              for name, fn in fns.items()}
    rounds: dict[str, list[benchmark.Measurement]] = {name: [] for name in fns}
    for _ in range(timing.rounds):
        for name, timer in timers.items():
            rounds[name].append(timer.blocked_autorange(min_run_time=timing.round_ms / 1e3))
    return {name: np.asarray(benchmark.Measurement.merge(ms)[0].times) * 1e3 for name, ms in rounds.items()}


def _cuda_times(fns: Mapping[str, Callable], timing: Timing) -> dict:
    from triton.testing import do_bench  # Triton is optional off CUDA machines

    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(timing.rounds):
        for name, fn in fns.items():
            times[name] += do_bench(fn, warmup=timing.round_ms / 4, rep=timing.round_ms, return_mode="all")
    return {name: np.asarray(t, dtype=np.float64) for name, t in times.items()}


def time_interleaved(fns: Mapping[str, Callable[[], object]], device: torch.device, timing: Timing) -> dict:
    """Time the fns in turn for `timing.rounds` rounds; the caller warms each up first (`warm_up`).

    fns: name -> a no-argument callable (it resets any gradient it accumulates itself).
    Returns name -> per-run times in ms (1-D array).
    """
    return _cuda_times(fns, timing) if device.type == "cuda" else _cpu_times(fns, timing)


def quantiles_ms(times_ms) -> dict:
    """{"time_ms_p20", "time_ms_p50", "time_ms_p80"} of per-run times."""
    q = np.quantile(np.asarray(times_ms, dtype=np.float64), QUANTILES)
    return {f"time_ms_p{round(p * 100)}": float(v) for p, v in zip(QUANTILES, q)}


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> float:
    """Device memory one call allocates at its peak beyond what was allocated before it (CUDA; NaN elsewhere)."""
    if device.type != "cuda":
        return math.nan
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return float(torch.cuda.max_memory_allocated(device) - before)


def copy_bandwidth_gb_per_s(device: torch.device, timing: Timing, nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth, bytes read plus written, of a random buffer far larger than L2."""
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    warm_up(lambda: dst.copy_(src), device)
    times = time_interleaved({"copy": lambda: dst.copy_(src)}, device, timing)["copy"]
    return 2 * nbytes / (quantiles_ms(times)["time_ms_p50"] * 1e-3) / 1e9
