"""The training loop of a cell: the head's cross-entropy (+ pair_weight * a pair loss) + lambda * center loss in
the cell's center space, centers moved by their rule."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ablate.distributed.context import ONE_PROCESS
from ablate.loss import CenterLoss
from ablate.runs.record import CURVES_OF_EPOCHS
from ablate.train.center_space import in_center_space
from ablate.train.config import CellConfig
from ablate.train.heads import TrainingObjective

if TYPE_CHECKING:  # the batches' types only: ablate.train.batches builds them
    from ablate.train.batches import InMemory, Streamed


class EpochWatch(Protocol):
    """What watches a cell's training epoch by epoch (a tuning trial's pruner, ablate.tune.trials): `metric`, a
    metric of the registry measured on the validation split after every epoch, and `stop(epoch, value)`, True to end
    training there (the cell is then recorded as pruned). value is NaN where the metric is undefined."""

    metric: str

    def stop(self, epoch: int, value: float) -> bool: ...


@dataclass
class TrainingHistory:
    """Per finished epoch: mean softmax part (the head's cross-entropy, margin included), mean center part
    (unweighted), train accuracy, the mean pair loss (unweighted; empty without a pair loss), an annealed head's
    lambda at the epoch's last step (empty without one) and the watched validation metric (empty without an
    EpochWatch; None where undefined).

    diverged_epoch is the 1-based epoch in which the loss first went non-finite (None if never); pruned_epoch the
    epoch after which a watch stopped training (None if none did); samples counts the examples trained on,
    including the diverged epoch's.
    """

    softmax_loss: list = field(default_factory=list)
    center_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    pair_loss: list = field(default_factory=list)
    annealing_weight: list = field(default_factory=list)
    validation: list = field(default_factory=list)
    diverged_epoch: int | None = None
    pruned_epoch: int | None = None
    samples: int = 0

    @property
    def finished_ok(self) -> bool:
        """Trained every epoch with finite losses."""
        return self.diverged_epoch is None and self.pruned_epoch is None

    def curves(self) -> dict:
        """The per-epoch curves by name, as the record declares them (ablate.runs.record.CURVES_OF_EPOCHS)."""
        return {curve.name: getattr(self, curve.name) for curve in CURVES_OF_EPOCHS}


def make_optimizer(config: CellConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


class CenterStep:
    """Moves the centers after each model step, by the configured rule.

    A gradient rule ("sgd") with lambda > 0 does what the popular implementation does: the centers are a
    Parameter with their own SGD (lr alpha), their gradient (lambda * dL_C/dc) multiplied by 1/lambda
    before the step (and by 1/world for a shard, whose gradient no DDP averages; see
    ablate.distributed.centers). With lambda = 0 no gradient reaches them, so CenterLoss.update takes the same
    step in closed form. Rules "paper" and "ema" always use CenterLoss.update (Eq. 4 / the moving average).
    """

    def __init__(self, criterion: CenterLoss, lambda_: float):
        self.criterion, self.lambda_ = criterion, lambda_
        self.optimizer = None
        if criterion.learns_by_gradient and lambda_ > 0:
            self.optimizer = torch.optim.SGD([criterion.centers], lr=criterion.alpha)

    def zero_grad(self) -> None:
        self.criterion.zero_grad(set_to_none=True)  # the centers' gradient, where they are a Parameter

    def step(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """features (B, D) of this batch, computed before the model's step; labels (B,)."""
        if self.optimizer is None:
            self.criterion.update(features.detach(), labels)
            return
        grad = self.criterion.centers.grad
        if grad is not None:  # None: a shard none of whose classes was in the batch, as one process would not move them
            grad.mul_(1.0 / (self.lambda_ * self.criterion.centers_grad_multiplier))
        self.optimizer.step()


def train(model: nn.Module, criterion: CenterLoss, data: "InMemory | Streamed", config: CellConfig,
          progress: bool = False, ranks=ONE_PROCESS, *, objective: TrainingObjective,
          after_step: Callable[[torch.Tensor, torch.Tensor], object] | None = None,
          after_epoch: Callable[[int, TrainingHistory], bool] | None = None) -> TrainingHistory:
    """Train on `data` (ablate.train.batches: examples in memory on the model's device, or streamed to it) for
    config.epochs; stop at a non-finite loss.

    after_step(features, labels): called after every step that changed the weights, with this rank's features
    (b, D) of the batch as the model gave them before the step (detached) and its labels (b,) (the cells that share
    this training follow them: ablate.train.followers). after_epoch(epoch, history): called after every finished
    epoch (1-based), its curves appended (one process only: a tuning trial's watch, followers' epoch ends, progress,
    a live view such as TensorBoard's); True stops training there, with history.pruned_epoch set. It may put the
    model in eval mode: training resumes in train mode.

    objective: the cell's head and pair loss, attached to the model already (a pml head's weights are then the
    model's parameters, so its optimizer trains them).

    ranks: this process's part in a multi-process run (ablate.distributed.context); every rank passes the
    whole data and trains on its slice of each global batch of config.batch_size * world_size rows (the
    one-process batch order), the history then holds sums over all ranks.
    """
    optimizer = make_optimizer(config, model)
    ddp_model, center_loss = ranks.wrap_model(model), ranks.wrap_criterion(criterion, config.lambda_)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma) if config.lr_step else None
    center_step = CenterStep(criterion, config.lambda_)
    # The batch order comes from its own CPU generator: the same on every device for a given seed.
    order_generator = torch.Generator().manual_seed(config.seed)
    history = TrainingHistory()
    model.train()
    global_batch = config.batch_size * ranks.world_size  # batch_size is per process, as in DDP
    steps_per_epoch = math.ceil(len(data) / global_batch)
    device = criterion.centers.device
    with tqdm(total=config.epochs * steps_per_epoch, desc="train", unit="batch", disable=not progress,
              leave=False) as bar:
        for epoch in range(1, config.epochs + 1):
            totals = torch.zeros(4, dtype=torch.float64, device=device)  # softmax, center, pair sums, correct
            for inputs, labels, batch_rows in data.epoch(order_generator, global_batch, ranks):
                features, logits = ddp_model(inputs)  # (b, D), (b, C): this rank's b of the batch's B rows
                softmax_sum = objective.head_sum(features, logits, labels)
                softmax_part = softmax_sum / (batch_rows / ranks.world_size)  # one process: the mean over B
                centered = in_center_space(features, config.center_space)  # (b, D)
                center_part = center_loss(centered, labels)  # the global batch's loss on every rank
                loss = softmax_part + config.lambda_ * center_part
                pair_part = objective.pair_loss(features, labels)
                if pair_part is not None:
                    loss = loss + config.pair_weight * pair_part
                else:
                    pair_part = torch.zeros((), device=device)
                history.samples += batch_rows
                # A non-finite loss must stop the cell (on every rank at once) before it reaches the weights;
                # this check syncs with the device.
                if not torch.isfinite(ranks.all_sum(loss.detach())):
                    history.diverged_epoch = epoch
                    return history
                optimizer.zero_grad(set_to_none=True)
                center_step.zero_grad()
                loss.backward()
                optimizer.step()
                center_step.step(centered, labels)
                if after_step is not None:
                    after_step(features.detach(), labels)
                correct = (logits.argmax(1) == labels).sum()
                totals += torch.stack([softmax_sum.detach(), center_part.detach() * len(labels),
                                       pair_part.detach().double() * len(labels), correct])
                bar.update()
            softmax_mean, center_mean, pair_mean, accuracy = (ranks.all_sum(totals) / len(data)).tolist()
            history.softmax_loss.append(softmax_mean)
            history.center_loss.append(center_mean)
            history.train_accuracy.append(accuracy)
            if objective.pair_module is not None:
                history.pair_loss.append(pair_mean)
            if (weight := objective.annealing_weight()) is not None:
                history.annealing_weight.append(weight)
            bar.set_postfix(epoch=epoch, softmax=f"{softmax_mean:.3f}", center=f"{center_mean:.3f}",
                            acc=f"{accuracy:.3f}")
            if scheduler is not None:
                scheduler.step()
            if after_epoch is not None:
                stop = after_epoch(epoch, history)
                model.train()
                if stop and epoch < config.epochs:
                    history.pruned_epoch = epoch
                    return history
    return history
