"""The centers stepped by Adam: each coordinate's step divided by its running gradient scale, with momentum in its
first moment; no rule of the registry moves centers this way."""

import torch

LR = 0.01


def train_step(center_loss, features, labels, lam):
    if not hasattr(center_loss, "optimizer"):
        center_loss.optimizer = torch.optim.Adam(center_loss.parameters(), lr=LR)
    center_loss.optimizer.zero_grad()
    (center_loss(features, labels) * lam).backward()
    center_loss.optimizer.step()
