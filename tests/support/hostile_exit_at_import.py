"""A target module that ends the process when imported."""

import sys

sys.exit(0)


def loss(features, labels, centers):
    return features.sum()
