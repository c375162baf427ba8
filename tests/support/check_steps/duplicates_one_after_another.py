"""Eq. 4's step (alpha / (1 + n_j)) taken one sample at a time in a loop: the second sample of a class starts from
the center the first one moved, not from the center before the step, as Eq. 4 does."""

import torch

ALPHA = 0.5


def train_step(center_loss, features, labels, lam):
    (center_loss(features, labels) * lam).backward()
    with torch.no_grad():
        centers = center_loss.centers
        counts = torch.bincount(labels, minlength=centers.shape[0])
        for x, y in zip(features.detach(), labels):
            centers[y] -= ALPHA * (centers[y] - x) / (1 + counts[y])
