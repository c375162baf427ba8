"""The popular module's training step (KaiyangZhou/pytorch-center-loss's README): the centers have an SGD optimizer
of their own, lr_cent = 0.5, and their gradient is divided by the loss weight before it steps, so that the weight
does not change how fast they move. TARGET: tests/support/check_targets.py:PopularCenterLoss."""

import torch

LR_CENT = 0.5


def train_step(center_loss, features, labels, weight_cent):
    if not hasattr(center_loss, "optimizer_centloss"):  # built once, as the training script builds it
        center_loss.optimizer_centloss = torch.optim.SGD(center_loss.parameters(), lr=LR_CENT)
    optimizer_centloss = center_loss.optimizer_centloss
    loss = center_loss(features, labels) * weight_cent  # + the softmax loss, whose gradient never reaches the centers
    optimizer_centloss.zero_grad()
    loss.backward()
    for param in center_loss.parameters():
        param.grad.data *= 1.0 / weight_cent  # remove the weight's effect on the centers' step
    optimizer_centloss.step()
