"""A step whose optimizer was built from the model's parameters only: the center loss reaches the features and its
backward fills the centers' gradient, but nothing ever steps them (pytorch-center-loss #11, "center loss does not
decrease")."""

import torch
from torch import nn


def train_step(center_loss, features, labels, weight_cent):
    if not hasattr(center_loss, "model"):
        center_loss.model = nn.Linear(features.shape[1], features.shape[1], dtype=features.dtype)
        center_loss.optimizer = torch.optim.SGD(center_loss.model.parameters(), lr=0.1)
    embedded = center_loss.model(features)
    loss = center_loss(embedded, labels) * weight_cent
    center_loss.optimizer.zero_grad()
    loss.backward()
    center_loss.optimizer.step()
