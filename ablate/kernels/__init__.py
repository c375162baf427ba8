"""Triton kernels for the `fused` center-loss variant.

    loss_kernels    forward (squared distances summed per row block) and backward (dL/dx, dL/dc)
    update_kernels  the Eq. 4 / moving-average center update, touching only the labelled rows
    fused           launch heuristics, the autograd.Function, the loss and update behind plain functions (the
                    loss layer's ablate.loss.fused adapts them to the variant registry), bytes moved

Importing this package imports nothing heavy; `ablate.kernels.fused` imports Triton.
"""

FUSED_RULES = ("paper", "ema")  # the center-update rules the update kernels implement; sgd runs in torch
