"""A target module whose import takes longer than `ablate check --timeout 1` waits."""

import time

time.sleep(30)


def loss(features, labels, centers):
    return features.sum()
