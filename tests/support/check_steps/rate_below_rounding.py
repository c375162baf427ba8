"""The popular step at lr_cent = 1e-6: the centers move, but by less than float32 rounding of the centers can show
in one step."""

import torch

LR_CENT = 1e-6


def train_step(center_loss, features, labels, weight_cent):
    if not hasattr(center_loss, "optimizer_centloss"):
        center_loss.optimizer_centloss = torch.optim.SGD(center_loss.parameters(), lr=LR_CENT)
    center_loss.optimizer_centloss.zero_grad()
    (center_loss(features, labels) * weight_cent).backward()
    for param in center_loss.parameters():
        param.grad.data *= 1.0 / weight_cent
    center_loss.optimizer_centloss.step()
