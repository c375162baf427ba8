"""The performance gate's cases: what the A/B compares, the work counts cover and the baselines time.

Each case is one variant in one mode at one size, float32 on the CPU, called through the public API
(`ablate.loss.center_loss`, `update_centers`) exactly as ablate/gate/worker.py calls it in either tree.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class GateCase:
    """variant in mode at (batch, classes, dim), float32; `reference` ("copy" or "matmul") is the fixed
    workload its baseline ratio is taken against (ablate/gate/baseline.py)."""

    name: str
    variant: str
    mode: str
    batch: int
    classes: int
    dim: int
    reference: str
    rule: str = "paper"


CASES = (
    GateCase("gather_full_vs_copy", "gather", "full", 4096, 1000, 128, "copy"),
    GateCase("naive_full_vs_matmul", "naive", "full", 256, 2000, 128, "matmul"),
    GateCase("update_paper_vs_copy", "gather", "update", 4096, 1000, 128, "copy"),
)
