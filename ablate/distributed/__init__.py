"""Center loss across processes (torch.distributed: gloo on the CPU, nccl on CUDA).

    groups    process groups, class shards, the collectives and the bytes they move
    centers   the Replicated and Sharded placements of the centers, exact against one process
    context   one rank's view in training: its slice of each batch, DDP wrapping, sums over ranks
    launch    start N ranks (torch.multiprocessing), end them all when one fails
"""

from ablate.distributed.centers import FORMS, Replicated, Sharded, form_placement
from ablate.distributed.groups import count_traffic, shard_range

__all__ = ["FORMS", "Replicated", "Sharded", "count_traffic", "form_placement", "shard_range"]
