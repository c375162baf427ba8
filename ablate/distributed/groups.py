"""Process groups, class shards, and the collectives center loss uses, each counting the bytes it moves.

The engine is torch.distributed (gloo on the CPU, nccl on CUDA). Bytes are counted from the
tensors' sizes, as the bandwidth-optimal ring algorithm moves them, received per rank (W ranks):
    all_gather of n bytes per rank                       (W - 1) * n
    all_reduce of n bytes                                2 * (W - 1) / W * n
    backward of a differentiable all_gather (a reduce-scatter of the gathered gradient)   (W - 1) * n
Ranks holding different row counts pad to the largest count; the padding is counted (it is sent).
gloo has no reduce-scatter: torch.distributed.nn emulates it with W scatters of the same total.
"""

import contextlib
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

TIMEOUT_S = 30  # a collective still waiting after this raises in every live rank: an error, never a hang


@dataclass
class Traffic:
    """Bytes received per rank by the counted collectives (see the module docstring), and their number."""

    bytes: int = 0
    collectives: int = 0


_COUNTERS: list[Traffic] = []  # the Traffic counters open in this process (count_traffic)


@contextlib.contextmanager
def count_traffic():
    """`with count_traffic() as traffic:` adds every collective of this module, backward passes included, to traffic."""
    traffic = Traffic()
    _COUNTERS.append(traffic)
    try:
        yield traffic
    finally:
        _COUNTERS.remove(traffic)


def _count(nbytes: float) -> None:
    for traffic in _COUNTERS:
        traffic.bytes += int(nbytes)
        traffic.collectives += 1


def backend_for(device: torch.device) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_group(rank: int, world_size: int, rendezvous_file: str, device: torch.device) -> None:
    """Join the default process group through a rendezvous file (no port to collide), gloo or nccl by device."""
    dist.init_process_group(backend_for(device), init_method=f"file://{rendezvous_file}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=TIMEOUT_S))


def rank_and_world(group=None) -> tuple:
    """(this process's rank, the group's size); a RuntimeError says how to start a group when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("distributed center loss needs a process group: call torch.distributed.init_process_group "
                           "in every rank first (or start the ranks with `ablate train --nproc N`)")
    return dist.get_rank(group), dist.get_world_size(group)


def shard_range(num_classes: int, rank: int, world_size: int) -> tuple:
    """The classes [lo, hi) rank `rank` owns: contiguous, the first C % W ranks one class more than the others."""
    base, extra = divmod(num_classes, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def all_sum(tensor: torch.Tensor, group=None, *, differentiable: bool = False) -> torch.Tensor:
    """The sum over ranks of `tensor` (any shape), as a new tensor; differentiable: backward sums the
    gradients of every rank (torch.distributed.nn), so each rank's input receives the sum of all ranks' grads."""
    if not differentiable:
        return all_sum_(tensor.clone(), group)
    _, world = rank_and_world(group)
    nbytes = 2 * (world - 1) * tensor.numel() * tensor.element_size() / world
    _count(nbytes)
    with warnings.catch_warnings():  # torch.distributed.nn names a successor that is not differentiable on gloo
        warnings.simplefilter("ignore", FutureWarning)
        out = dist_nn.all_reduce(tensor, group=group or dist.group.WORLD)
    if out.requires_grad:
        out.register_hook(lambda grad: _count(nbytes))  # the backward pass all-reduces the gradient
    return out


def all_sum_(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """`tensor` replaced in place by its sum over ranks (no copy: for tables of size C x D); returns it."""
    _, world = rank_and_world(group)
    _count(2 * (world - 1) * tensor.numel() * tensor.element_size() / world)
    dist.all_reduce(tensor, group=group)
    return tensor


def gather_counts(rows: torch.Tensor, group=None) -> list:
    """Every rank's row count b_r of `rows` (b_r, ...), in rank order."""
    _, world = rank_and_world(group)
    count = torch.tensor([rows.shape[0]], dtype=torch.int64, device=rows.device)
    counts = [torch.empty_like(count) for _ in range(world)]
    _count((world - 1) * count.element_size())
    dist.all_gather(counts, count, group=group)
    return [int(c) for c in counts]


def gather_rows(rows: torch.Tensor, counts: list, group=None, *, differentiable: bool = False) -> torch.Tensor:
    """Every rank's rows (b_r, ...) concatenated in rank order -> (sum_r b_r, ...); counts: the b_r (gather_counts).

    Ranks may hold different counts (zero included). differentiable: gradients of the result flow back
    to each rank's own rows, summed over ranks (torch.distributed.nn.all_gather).
    """
    world = len(counts)
    most = max(counts)
    if rows.shape[0] < most:
        rows = torch.cat([rows, rows.new_zeros((most - rows.shape[0], *rows.shape[1:]))])
    padded_bytes = (world - 1) * rows.numel() * rows.element_size()
    _count(padded_bytes)
    if differentiable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            parts = dist_nn.all_gather(rows, group=group or dist.group.WORLD)
    else:
        parts = [torch.empty_like(rows) for _ in range(world)]
        dist.all_gather(parts, rows.contiguous(), group=group)
    gathered = torch.cat([part[:c] for part, c in zip(parts, counts)])
    if differentiable and gathered.requires_grad:
        gathered.register_hook(lambda grad: _count(padded_bytes))  # the reduce-scatter of the backward pass
    return gathered


def gather_batch(features: torch.Tensor, labels: torch.Tensor, group=None, *, differentiable: bool = False) -> tuple:
    """The global batch from every rank's slice: (features (B, D), labels (B,) int64, [b_0, ..., b_{W-1}])."""
    counts = gather_counts(labels, group)
    all_labels = gather_rows(labels.long(), counts, group)
    return gather_rows(features, counts, group, differentiable=differentiable), all_labels, counts
