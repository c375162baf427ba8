"""The cost model behind GB/s and skips: bytes each variant moves per mode, and the peak memory it needs.

Each variant keeps its own byte model next to its ops (its registry entry's loss_bytes and update_bytes;
ablate.traffic says how they count); this module asks the entry.
"""

from typing import Optional

import torch

from ablate.loss import get_variant


def bytes_moved(variant: str, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype,
                rule: str = "paper") -> Optional[int]:
    """Bytes read plus written by one call of `variant` in `mode`; None for a variant without a byte model."""
    return get_variant(variant).bytes_moved(mode, batch, classes, dim, dtype, rule)


def memory_skip_note(variant: str, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype,
                     budget_bytes: float) -> str:
    """Why this cell is skipped ("" if the variant's estimated peak memory fits in budget_bytes)."""
    need = get_variant(variant).peak_memory(mode, batch, classes, dim, dtype)
    if need <= budget_bytes:
        return ""
    return f"skipped: needs about {need / 1e9:.1f} GB, over the memory budget of {budget_bytes / 1e9:.1f} GB"
