"""Loss conventions: what the summed squared distance is divided by.

    mean       sum_i ||x_i - c_{y_i}||^2 / B       the most used PyTorch implementation
    half_mean  sum_i ||x_i - c_{y_i}||^2 / (2B)    the original Caffe layer
    half_sum   sum_i ||x_i - c_{y_i}||^2 / 2       the paper's Eq. 2

lambda means a different weight under each convention, so every result names its convention.
"""

CONVENTIONS = ("mean", "half_mean", "half_sum")


def convention_scale(convention: str, batch_size: int) -> float:
    """The factor that turns sum_i ||x_i - c_{y_i}||^2 into the loss under `convention`."""
    if convention == "mean":
        return 1.0 / batch_size
    if convention == "half_mean":
        return 0.5 / batch_size
    if convention == "half_sum":
        return 0.5
    raise ValueError(f"unknown convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
