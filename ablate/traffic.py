"""Shared terms of the byte-traffic models (ablate.bench.cost for the torch variants, ablate.kernels.fused
for the Triton one): what a label costs and how many distinct center rows a batch touches."""

LABEL_BYTES = 8  # one int64 label


def expected_distinct_classes(B: int, C: int) -> float:
    """Mean number of distinct labels among B drawn uniformly from C classes."""
    return C * (1.0 - (1.0 - 1.0 / C) ** B)
