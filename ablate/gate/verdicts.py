"""How each signal of the A/B gate decides a case, from both sides' measurements of it, and the verdict overall.

    counts_verdict(base, head)           fail / less / pass, and what moved (exact counts: expected_counts)
    instructions_verdict(ratio)          fail / fewer / pass on head / base instructions per call
    ratio_interval(base_ms, head_ms)     the wall clock's head / base and its 95% interval (two-level bootstrap)
    wall_verdict(low, high, threshold)   fail / faster / pass on that interval
    overall_verdict(row)                 fail when any signal fails
"""

import numpy as np

from ablate.gate import expected_counts, instructions

SIGNALS = ("counts", "instructions", "wall")
CONFIDENCE = 0.95


def counts_verdict(base: dict, head: dict) -> tuple:
    """(verdict, what moved): fail when the head does more of anything (a new op, more calls of one, FLOPs,
    bytes or peak bytes) beyond expected_counts.TOLERANCE; less when it only does less; pass otherwise."""
    moved = expected_counts.changes(base, head)
    lines = "; ".join(expected_counts.describe("", change).removeprefix(": ") for change in moved)
    if any(change["more"] for change in moved):
        return "fail", lines
    return ("less" if moved else "pass"), lines


def instructions_verdict(ratio: float, threshold: float = instructions.THRESHOLD) -> str:
    """fail above 1 + threshold, fewer below 1 - threshold: instruction counts barely depend on the load."""
    if ratio > 1 + threshold:
        return "fail"
    return "fewer" if ratio < 1 - threshold else "pass"


def ratio_interval(base_ms, head_ms, *, confidence: float = CONFIDENCE, resamples: int = 4000,
                   seed: int = 0) -> tuple:
    """(estimate, low, high) of head / base from per-round times, each (rounds, processes) or (rounds,).

    Estimate: the median over rounds of (median over head processes) / (median over base processes) of
    that round. Interval: a two-level percentile bootstrap, since rounds of one process are not
    independent draws (a process may run 10-30% slow throughout: page placement, allocator state), so
    each replicate redraws each side's processes, then the rounds, keeping a round's two sides together.
    scipy.stats.bootstrap resamples one level only, hence the few lines here.
    """
    base, head = (np.asarray(t, dtype=np.float64).reshape(len(t), -1) for t in (base_ms, head_ms))

    def statistic(b, h):
        return np.median(np.median(h, axis=-1) / np.median(b, axis=-1), axis=-1)

    rng = np.random.default_rng(seed)
    rounds = rng.integers(0, base.shape[0], (resamples, base.shape[0], 1))
    base_procs = rng.integers(0, base.shape[1], (resamples, 1, base.shape[1]))
    head_procs = rng.integers(0, head.shape[1], (resamples, 1, head.shape[1]))
    replicates = statistic(base[rounds, base_procs], head[rounds, head_procs])  # (resamples,)
    low, high = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(statistic(base, head)), float(low), float(high)


def wall_verdict(low: float, high: float, threshold: float) -> str:
    """fail: the whole interval above 1 + threshold; faster: the whole interval below 1 - threshold."""
    if low > 1 + threshold:
        return "fail"
    if high < 1 - threshold:
        return "faster"
    return "pass"


def overall_verdict(row: dict) -> str:
    """A case's verdict: new where the base cannot run it, else fail if any signal fails, else pass."""
    if row.get("verdict") == "new":
        return "new"
    return "fail" if "fail" in (row.get(signal) for signal in SIGNALS) else "pass"
