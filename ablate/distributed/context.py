"""One rank's view of a training run: its slice of every batch, DDP wrapping, sums over ranks.

`ONE_PROCESS` is the same interface for a plain run (identity everywhere), so the training loop has one
code path. Each rank of a run with W ranks takes the contiguous slice r of every global batch (sizes
differ by at most one; a rank may get none of a batch smaller than W) and weights its part of the
softmax loss by W / B, so that DDP's average over ranks is the one-process mean over the global batch.
"""

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ablate.distributed.centers import form_placement
from ablate.loss.placement import LOCAL, Placement


class OneProcess:
    """A run in this process alone: rank 0 of 1, the centers whole in this process (LOCAL)."""

    rank, world_size = 0, 1

    def batch_slice(self, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def wrap_criterion(self, criterion: nn.Module, lambda_: float) -> nn.Module:
        return criterion

    def placement(self, num_classes: int) -> Placement:
        """Where the centers of a (num_classes, D) table live: here, whole."""
        return LOCAL


ONE_PROCESS = OneProcess()


class RankContext:
    """This rank of the default process group, centers in `form` ("replicated" | "sharded").

    Three groups keep the collectives of the model's DDP, the centers' DDP and the center loss apart, so
    that their order inside one backward pass can never interleave differently on two ranks. Every rank
    must create its RankContext at the same point (new_group is a collective).
    """

    def __init__(self, form: str):
        self.rank, self.world_size, self.form = dist.get_rank(), dist.get_world_size(), form
        self._center_group, self._criterion_group = dist.new_group(), dist.new_group()

    def batch_slice(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of the global batch (B,) of indices."""
        return batch.tensor_split(self.world_size)[self.rank]

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return DistributedDataParallel(model)

    def placement(self, num_classes: int) -> Placement:
        """Where the centers of a (num_classes, D) table live: in this run's form, over the center loss's group."""
        return form_placement(self.form, num_classes, self._center_group)

    def wrap_criterion(self, criterion: nn.Module, lambda_: float) -> nn.Module:
        """Replicated centers that learn by their gradient (rule sgd, lambda > 0) go in a DDP of their own."""
        if self.form == "replicated" and criterion.learns_by_gradient and lambda_ > 0:
            return DistributedDataParallel(criterion, process_group=self._criterion_group)
        return criterion
