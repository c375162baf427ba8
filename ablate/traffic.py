"""Shared terms of the byte-traffic models each variant keeps next to its ops (its entry's `loss_bytes` and
`update_bytes`; ablate.bench.cost reads them): what an element and a label cost, how ops are summed, and how many
distinct center rows a batch touches.

A model counts, for every operation a variant runs (forward, then autograd's backward for the features' gradient,
or the update), each operand read once and each result written once, as if each operation were one kernel.
Symbols: B batch, C classes, D feature dim, e bytes per element of the dtype, a bytes per element of the
accumulation dtype (float32 for half types), i = 8 bytes per int64 label. The benchmarks differentiate w.r.t. the
features only: under the paper's rule no gradient reaches the centers (they move by the update mode instead).
"""

import torch

LABEL_BYTES = 8  # one int64 label
LOSS_MODES = ("forward", "backward", "full")


def element_sizes(dtype: torch.dtype) -> tuple:
    """(e, a): bytes per element of `dtype` and of the float32-or-wider dtype it accumulates in."""
    e = torch.empty((), dtype=dtype).element_size()
    return e, max(e, 4)


def total(ops) -> int:
    """ops: (bytes read, bytes written) per operation."""
    return int(sum(r + w for r, w in ops))


def by_mode(mode: str, forward: list, backward: list) -> list:
    """The ops of one loss call in `mode`: forward, backward, or full (forward then backward)."""
    if mode not in LOSS_MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(LOSS_MODES)}")
    return {"forward": forward, "backward": backward, "full": forward + backward}[mode]


def expected_distinct_classes(B: int, C: int) -> float:
    """Mean number of distinct labels among B drawn uniformly from C classes."""
    return C * (1.0 - (1.0 - 1.0 / C) ** B)
