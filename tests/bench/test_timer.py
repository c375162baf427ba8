"""The timer: interleaved rounds, per-run times, quantiles; CUDA-only readings are NaN on the CPU."""

import math
import time

import numpy as np
import pytest
import torch

from ablate.bench.suites import Timing
from ablate.bench.timer import peak_memory_bytes, quantiles_ms, time_interleaved

CPU = torch.device("cpu")


@pytest.mark.slow  # a time ratio: parallel tests in the fast lane disturb it
def test_interleaved_times_keep_the_ratio_of_two_known_workloads():
    calls = []

    def sleeper(name, seconds):
        def fn():
            calls.append(name)
            time.sleep(seconds)
        return fn

    times = time_interleaved({"short": sleeper("short", 0.010), "long": sleeper("long", 0.020)}, CPU,
                             Timing(rounds=3, round_ms=40.0))
    ratio = quantiles_ms(times["long"])["time_ms_p50"] / quantiles_ms(times["short"])["time_ms_p50"]
    # 20 ms against 10 ms of sleep, each plus the same wake-up latency: just under 2. The lower bound
    # still holds with 6 ms of latency, which only a badly overloaded machine reaches.
    assert 1.6 < ratio <= 2.05
    # Interleaved: the calls alternate between the two in runs, never all of one first.
    switches = sum(a != b for a, b in zip(calls, calls[1:]))
    assert switches >= 2 * 3 - 1


def test_quantiles_are_ordered_and_named_for_the_table():
    q = quantiles_ms(np.arange(1.0, 101.0))
    assert list(q) == ["time_ms_p20", "time_ms_p50", "time_ms_p80"]
    assert q["time_ms_p20"] < q["time_ms_p50"] < q["time_ms_p80"]
    assert q["time_ms_p50"] == np.median(np.arange(1.0, 101.0))


def test_peak_memory_is_not_claimed_on_the_cpu():
    assert math.isnan(peak_memory_bytes(lambda: torch.ones(1000), CPU))
