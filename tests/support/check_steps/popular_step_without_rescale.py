"""The popular module's training step with the 1/weight_cent rescaling left out: the centers' SGD step is then
lr_cent * weight_cent times their gradient, a center rate that changes whenever the loss weight does."""

import torch

LR_CENT = 0.5


def train_step(center_loss, features, labels, weight_cent):
    if not hasattr(center_loss, "optimizer_centloss"):
        center_loss.optimizer_centloss = torch.optim.SGD(center_loss.parameters(), lr=LR_CENT)
    loss = center_loss(features, labels) * weight_cent
    center_loss.optimizer_centloss.zero_grad()
    loss.backward()
    center_loss.optimizer_centloss.step()
