"""Work counts of one call: the ATen ops it dispatches, its FLOPs, the bytes it allocates and its peak.

These are exact and the same on every machine with the same torch (for CPU tensor programs), unlike time:
    ops         {"aten.index_select.default": 1, ...}: every ATen op dispatched, backward included
    flops       torch.utils.flop_counter.FlopCounterMode's total (matmul-like ops; elementwise ops count 0)
    bytes       the sum of nbytes of every new storage an op returns (views and in-place results add nothing)
    peak_bytes  the most bytes of those storages alive at once during the call

This module imports only torch and the standard library: the A/B gate loads it by file path into a worker
that imports another revision's `ablate`, so the base is counted with this same code (ablate/gate/worker.py).
"""

import weakref
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class AllocationCounter(TorchDispatchMode):
    """Counts the ops dispatched under it and the storages their outputs allocate; see the module docstring."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.bytes = 0
        self.live = 0
        self.peak = 0

    def _freed(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops[str(func)] += 1
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        seen = set()
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            pointer = storage.data_ptr()
            if pointer in inputs or pointer in seen or storage.nbytes() == 0:
                continue  # a view, an in-place result, or one storage returned twice
            seen.add(pointer)
            self.bytes += storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, storage.nbytes())
        return out


def count_work(fn) -> dict:
    """Run `fn()` once and count its work: {"ops": {op: calls}, "flops", "bytes", "peak_bytes"}."""
    from torch.utils.flop_counter import FlopCounterMode  # imports Triton where installed: only when counting

    flops = FlopCounterMode(display=False)
    counter = AllocationCounter()
    with flops, counter:
        fn()
    return {"ops": dict(sorted(counter.ops.items())), "flops": int(flops.get_total_flops()), "bytes": counter.bytes,
            "peak_bytes": counter.peak}
