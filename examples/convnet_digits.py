"""A model and a dataset of your own, in one file outside ablate: a small convnet, and scikit-learn's 8x8 digits as
images. `ablate grid examples/convnet_digits.toml` trains them (README: "Your model, your data, your tracker")."""

import numpy as np
from torch import nn


class SmallConvNet(nn.Module):
    """images (B, 1, 8, 8) -> features (B, feat_dim), logits (B, num_classes)."""

    def __init__(self, feat_dim: int, num_classes: int):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 4, 4)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 2, 2)
            nn.Flatten(), nn.Linear(32 * 2 * 2, feat_dim),  # (B, feat_dim): the features center loss pulls
        )
        self.logits = nn.Linear(feat_dim, num_classes)

    def forward(self, images):
        features = self.trunk(images)
        return features, self.logits(features)


def convnet(feat_dim: int, num_classes: int) -> nn.Module:
    """The model factory: ablate passes the feature size and the class count."""
    return SmallConvNet(feat_dim, num_classes)


convnet.recipe = {"lr": 0.05, "batch_size": 64, "epochs": 8}  # what a cell leaves out


def digits_images(seed: int, test_fraction: float) -> dict:
    """The dataset factory: ablate passes the options its signature names (here the cell's seed and test fraction);
    it returns the train and test parts as (inputs, labels) arrays (a torch Dataset each would stream instead)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(images, bunch.target, test_size=test_fraction,
                                                        stratify=bunch.target, random_state=seed)
    return {"train": (x_train, y_train), "test": (x_test, y_test)}
