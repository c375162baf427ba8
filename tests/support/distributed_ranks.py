"""What each rank runs in the distributed tests (importable by name: spawned ranks import it), and the
batches they share with the one-process runs they are compared against.

Step s gives rank r a slice of b = (s + r) % 5 rows (0 to 4: uneven, and sometimes empty); the global batch
is the concatenation of the slices in rank order.
"""

import hashlib
import os
import signal

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ablate.distributed import form_placement
from ablate.loss import CenterLoss

NUM_CLASSES, DIM, STEPS, ALPHA, LAMBDA = 7, 3, 50, 0.5, 0.3
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def rank_batch(step: int, rank: int, dtype: torch.dtype, rows: int | None = None):
    """features (b, DIM) in dtype and labels (b,) of rank `rank` at `step` (b = rows when given)."""
    gen = torch.Generator().manual_seed(1000 * step + rank)
    rows = (step + rank) % 5 if rows is None else rows
    features = torch.randn(rows, DIM, generator=gen, dtype=torch.float64).to(dtype)  # the same values, rounded
    return features, torch.randint(0, NUM_CLASSES, (rows,), generator=gen)


def global_batch(step: int, world: int, dtype: torch.dtype, rows: int | None = None):
    """The concatenation of every rank's batch at `step`: features (B, DIM), labels (B,), and the b_r."""
    parts = [rank_batch(step, r, dtype, rows) for r in range(world)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), [len(p[1]) for p in parts]


def table_hash(centers: torch.Tensor) -> str:
    return hashlib.sha256(centers.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def equivalence_run(rank, world, cases, device="cpu"):
    """For each case (form, rule, convention, dtype name): STEPS steps of loss, backward and update on
    `device` (cuda: this rank's GPU).

    Returns {case: {"loss": [float], "grad": [(b_r, DIM)], "centers": [this rank's table or shard after each
    step], "hash": [its sha256]}}.
    """
    results = {}
    for case in cases:
        form, rule, convention, dtype_name = case
        dtype = DTYPES[dtype_name]
        torch.manual_seed(0)
        on = torch.device("cuda", rank) if device == "cuda" else torch.device("cpu")
        crit = CenterLoss(NUM_CLASSES, DIM, convention=convention, rule=rule, alpha=ALPHA, dtype=dtype,
                          placement=form_placement(form, NUM_CLASSES), device=on)
        out = {"loss": [], "grad": [], "centers": [], "hash": [], "class_range": crit.class_range}
        for step in range(STEPS):
            features, labels = (t.to(on) for t in rank_batch(step, rank, dtype))
            features.requires_grad_(True)
            loss = crit(features, labels)
            loss.backward()
            crit.update(features.detach(), labels)
            out["loss"].append(loss.item())
            out["grad"].append(features.grad.to("cpu", copy=True))
            out["centers"].append(crit.centers.detach().to("cpu", copy=True))  # a copy also on the CPU
            out["hash"].append(table_hash(crit.centers))
        out["gathered"] = crit.full_centers().to("cpu", copy=True)
        results[case] = out
    return results


def ddp_sgd_run(rank, world, conventions, form, steps, rows=None):
    """Rule sgd with the centers as a DDP Parameter and their own SGD on grad / lambda (the popular recipe).

    form "replicated": this suite's loss; form None: each rank's own one-process loss on its own slice (what
    plain DDP code does; it needs rows, a fixed slice size > 0). Returns {convention: the centers after
    `steps` steps (float64)}.
    """
    final = {}
    for convention in conventions:
        torch.manual_seed(0)
        group = dist.new_group() if form else None
        crit = CenterLoss(NUM_CLASSES, DIM, convention=convention, rule="sgd", alpha=ALPHA, dtype=torch.float64,
                          placement=form_placement(form, NUM_CLASSES, group))
        ddp = DistributedDataParallel(crit, process_group=dist.new_group())
        optimizer = torch.optim.SGD([crit.centers], lr=ALPHA)
        for step in range(steps):
            features, labels = rank_batch(step, rank, torch.float64, rows)
            optimizer.zero_grad()
            (LAMBDA * ddp(features, labels)).backward()
            crit.centers.grad.mul_(1.0 / LAMBDA)
            optimizer.step()
        final[convention] = crit.centers.detach().clone()
    return final


def dying_rank(rank, world, how):
    """Rank 1 dies (how: "raise" or "kill", SIGKILL on itself) while the others wait for it in a collective."""
    if rank == 1:
        if how == "raise":
            raise ValueError("rank 1 gives up")
        os.kill(os.getpid(), signal.SIGKILL)
    dist.all_reduce(torch.zeros(1))
    return rank
