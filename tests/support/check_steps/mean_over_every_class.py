"""A step that moves every center toward the mean of its class's samples in the batch, over the whole table:
delta / counts is 0 / 0 for a class absent from the batch, and its center turns NaN."""

import torch

ALPHA = 0.5


def train_step(center_loss, features, labels, lam):
    (center_loss(features, labels) * lam).backward()
    with torch.no_grad():
        centers = center_loss.centers
        counts = torch.bincount(labels, minlength=centers.shape[0]).to(centers.dtype).unsqueeze(1)  # (C, 1)
        delta = torch.zeros_like(centers).index_add_(0, labels, centers[labels] - features.detach())
        centers -= ALPHA * delta / counts
