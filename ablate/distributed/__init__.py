"""Center loss across processes (torch.distributed: gloo on the CPU, nccl on CUDA).

    groups    process groups, class shards, the collectives and the bytes they move
    centers   replicated and sharded center loss and center updates, exact against one process
    context   one rank's view in training: its slice of each batch, DDP wrapping, sums over ranks
    launch    start N ranks (torch.multiprocessing), end them all when one fails
    bench     time, bytes and memory per step of the distributed forms (`ablate bench --world N`)
"""

from ablate.distributed.groups import FORMS, count_traffic, shard_range

__all__ = ["FORMS", "count_traffic", "shard_range"]
