"""The popular README's second way with the model's optimizer at momentum 0.9: each step of the centers carries 0.9
of the previous one, so a center keeps moving after its class has left the batch."""

import torch

LR, LR_CENT, MOMENTUM = 0.1, 0.5, 0.9


def train_step(center_loss, features, labels, weight_cent):
    if not hasattr(center_loss, "optimizer"):
        center_loss.optimizer = torch.optim.SGD(list(center_loss.parameters()), lr=LR, momentum=MOMENTUM)
    loss = center_loss(features, labels) * weight_cent
    center_loss.optimizer.zero_grad()
    loss.backward()
    for param in center_loss.parameters():
        param.grad.data *= LR_CENT / (weight_cent * LR)
    center_loss.optimizer.step()
