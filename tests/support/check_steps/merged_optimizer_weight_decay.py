"""The popular README's second way: one optimizer for the model and the centers, the centers' gradient rescaled by
lr_cent / (weight_cent * lr), but the optimizer is the model's, with weight_decay = 5e-4: every center, in the batch
or not, is pulled toward 0 by lr * weight_decay of itself each step."""

import torch

LR, LR_CENT, WEIGHT_DECAY = 0.1, 0.5, 5e-4


def train_step(center_loss, features, labels, weight_cent):
    if not hasattr(center_loss, "optimizer"):  # the model's parameters would be listed here as well
        center_loss.optimizer = torch.optim.SGD(list(center_loss.parameters()), lr=LR, weight_decay=WEIGHT_DECAY)
    loss = center_loss(features, labels) * weight_cent
    center_loss.optimizer.zero_grad()
    loss.backward()
    for param in center_loss.parameters():
        param.grad.data *= LR_CENT / (weight_cent * LR)
    center_loss.optimizer.step()
