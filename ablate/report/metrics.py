"""The training curves the grid report plots, by the name the run folder's curves table gives them.

The metrics themselves (labels, directions) are declared in the registry, ablate.metrics.
"""

CURVE_METRICS = {"softmax_loss": "softmax loss", "center_loss": "center loss", "train_accuracy": "train accuracy"}
