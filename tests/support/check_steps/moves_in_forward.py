"""A center loss that moves its centers inside forward while training (a moving average, alpha = 0.1), as several
implementations do: judged with `--step forward`."""

import torch
from torch import nn

ALPHA = 0.1


class MovingCenterLoss(nn.Module):
    def __init__(self, num_classes, feat_dim):
        super().__init__()
        self.register_buffer("centers", torch.randn(num_classes, feat_dim))

    def forward(self, features, labels):
        loss = ((features - self.centers[labels]) ** 2).sum() / features.shape[0]
        if self.training:
            with torch.no_grad():
                self.centers.index_add_(0, labels, ALPHA * (features - self.centers[labels]))
        return loss
