"""The paper's update (Wen et al., Eq. 4 and Algorithm 1) as users write it: per class in the batch,
delta_c_j = sum (c_j - x_i) / (1 + n_j), c_j -= alpha * delta_c_j, with no gradient of the loss reaching the
centers. TARGET: tests/support/check_targets.py:PopularCenterLoss (its centers are a Parameter no optimizer steps)."""

import torch

ALPHA = 0.5


def train_step(center_loss, features, labels, lam):
    (center_loss(features, labels) * lam).backward()  # the network's gradient; the centers move by Eq. 4 alone
    with torch.no_grad():
        centers = center_loss.centers
        classes, counts = torch.unique(labels, return_counts=True)
        delta = torch.zeros_like(centers).index_add_(0, labels, centers[labels] - features.detach())
        centers[classes] -= ALPHA * delta[classes] / (1 + counts.to(centers.dtype)).unsqueeze(1)
