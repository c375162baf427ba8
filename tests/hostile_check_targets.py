"""Targets for `ablate check` that try to fool or hang it: each must end in a failed check, never "agrees"."""

import sys
import time


def exits_in_the_loss(features, labels, centers):
    sys.exit(0)


def never_returns(features, labels, centers):
    while True:
        time.sleep(1)


def zeroes_the_labels(features, labels, centers):
    """Computes against class 0 after zeroing the labels in place: right for the mutated inputs only."""
    labels.zero_()
    return ((features - centers[labels]) ** 2).sum() / features.shape[0]


def returns_a_float(features, labels, centers):
    """A Python float, whatever the input: the harness refuses it, which is no credit for rejecting a NaN."""
    return 1.0


def sums_over_b(features, labels, centers):
    """sum_i ||x_i - c_{y_i}||^2 / B, correct: the control."""
    return ((features - centers[labels]) ** 2).sum() / features.shape[0]
