"""FaceNet's center update (davidsandberg/facenet, facenet.center_loss) in PyTorch: centers that no optimizer sees,
moved per sample by (1 - decay)(c - x) with duplicates summed from the centers before the step (tf.scatter_sub), and a
loss that is the mean of the squared differences over the batch and the feature dimensions."""

import torch
from torch import nn

CENTER_LOSS_ALFA = 0.95  # FaceNet's --center_loss_alfa: the decay of the moving average


class FaceNetCenterLoss(nn.Module):
    def __init__(self, num_classes, feat_dim):
        super().__init__()
        self.register_buffer("centers", torch.zeros(num_classes, feat_dim))

    def forward(self, features, labels):
        return ((features - self.centers[labels]) ** 2).mean()


def train_step(center_loss, features, labels, center_loss_factor):
    loss = center_loss(features, labels) * center_loss_factor  # backward reaches the network, not the centers
    loss.backward()
    with torch.no_grad():
        diff = (1 - CENTER_LOSS_ALFA) * (center_loss.centers[labels] - features)  # (B, D)
        center_loss.centers.index_add_(0, labels, -diff)
