"""Cells that share one training: at lambda 0 a cell's loss is the head's + 0 * center loss, so the options that reach
its model only through the center loss (ablate.train.config.INERT_AT_ZERO_LAMBDA: rule, convention, alpha, center
space) change none of its weights. A grid trains such a model once, for every cell of the group, and each cell but the
trained one follows the training with centers of its own:

    follower = CenterFollower(config, classes, device, rng_state)   # its initial centers, as its own run draws them
    train(..., after_step=follower.step, after_epoch=...)          # then follower.end_epoch(samples) each epoch

Step for step, a follower does to its centers what the cell's own training would: the center loss of the batch
before the step (its curve), then its rule's update, both on the features the model gave before its step, in the
cell's center space. Its centers, its center-loss curve and so every metric measured on them are the cell's own, bit
for bit (tests/train/test_shared.py trains both ways and compares). The training would have gone otherwise for a
follower whose center loss went non-finite (0 * inf is NaN: its cell diverges), and for every follower of a lead
that diverged on its own center loss: such a follower does not stand for its cell (`stands_for_its_cell`), and the
grid trains that cell alone (ablate.grid.execute).
"""

import torch

from ablate.loss import CenterLoss
from ablate.train.center_space import in_center_space
from ablate.train.config import CellConfig


class CenterFollower:
    """The centers of `config`'s cell, following the features of a training it shares: classes (C) trained, on
    `device`; rng_state: torch's CPU generator state at which the trained cell drew its own initial centers."""

    def __init__(self, config: CellConfig, classes: int, device: torch.device, rng_state: torch.Tensor):
        self.config = config
        with torch.random.fork_rng(devices=[]):  # the lead's generator state is put back afterwards
            torch.set_rng_state(rng_state)
            self.criterion = CenterLoss(classes, config.feat_dim, variant=config.variant,
                                        convention=config.convention, rule=config.rule, alpha=config.alpha,
                                        device=device)
        self.center_loss: list = []  # per finished epoch: the mean center loss, unweighted (the cell's curve)
        self._sum = torch.zeros((), dtype=torch.float64, device=device)
        self._finite = torch.ones((), dtype=torch.bool, device=device)  # no host sync per step

    @torch.no_grad()
    def step(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """features (B, D) the model gave for the batch before its step, labels (B,): the batch's center loss, then
        the rule's update, as the cell's own training does them (ablate.train.loop.train)."""
        centered = in_center_space(features, self.config.center_space)  # (B, D)
        part = self.criterion(centered, labels)
        self._finite &= torch.isfinite(part)
        self._sum += (part * len(labels)).double()  # the loop's float64 epoch sum, in its order
        self.criterion.update(centered, labels)

    def end_epoch(self, samples: int) -> None:
        """Close an epoch of `samples` training examples: its mean center loss joins the curve."""
        self.center_loss.append((self._sum / samples).item())
        self._sum.zero_()

    @property
    def stands_for_its_cell(self) -> bool:
        """False once its own center loss went non-finite: its cell would have diverged, the shared model did not."""
        return bool(self._finite)

    def centers(self) -> torch.Tensor:
        """The learned (C, D) centers, detached."""
        return self.criterion.full_centers()
