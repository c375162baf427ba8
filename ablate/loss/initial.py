"""The centers' initial values, drawn in fixed blocks of rows so that any slice of the table costs only itself.

Block k of CENTER_INIT_ROWS rows is N(0, 1) from its own generator, seeded by (a seed drawn once from
torch's default generator) + k. So one process drawing all C rows and a rank of a sharded table
drawing only its rows [lo, hi) get the same values, and the shard never builds the whole (C, D) table.
Every rank must have seeded torch alike (as training does, by the cell's seed).
"""

import torch

CENTER_INIT_ROWS = 4096


def initial_centers(num_classes: int, feat_dim: int, rows: tuple[int, int] | None = None, *,
                    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """Rows [lo, hi) (default: all C) of the initial (C, D) centers -> (hi - lo, D) in dtype on device.

    Draws one seed from torch's default generator, whatever the rows.
    """
    lo, hi = rows if rows is not None else (0, num_classes)
    if not 0 <= lo <= hi <= num_classes:
        raise ValueError(f"rows must lie in [0, {num_classes}] with lo <= hi, got [{lo}, {hi})")
    seed = int(torch.randint(2 ** 62, (1,)))
    table = torch.empty(hi - lo, feat_dim, dtype=dtype, device=device)  # (hi - lo, D), filled block by block:
    for block in range(lo // CENTER_INIT_ROWS, -(-hi // CENTER_INIT_ROWS)):  # never more than one block besides
        start = block * CENTER_INIT_ROWS
        size = min(CENTER_INIT_ROWS, num_classes - start)
        values = torch.randn(size, feat_dim, dtype=dtype, generator=torch.Generator().manual_seed(seed + block))
        first, last = max(lo, start), min(hi, start + size)
        table[first - lo:last - lo].copy_(values[first - start:last - start])
    return table
