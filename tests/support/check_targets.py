"""Center-loss implementations from outside, for `ablate check`: one written the popular way, and deliberately
wrong ones, each with one defect the check must name."""

import torch
from torch import nn


class PopularCenterLoss(nn.Module):
    """The most used PyTorch center loss, as it is usually copied: a B x C distance matrix, a one-hot mask, a clamp
    to [1e-12, 1e12], sum / B; the centers are a Parameter, put on the GPU by default."""

    def __init__(self, num_classes=10, feat_dim=2, use_gpu=True):
        super().__init__()
        self.num_classes, self.feat_dim = num_classes, feat_dim
        centers = torch.randn(num_classes, feat_dim)
        self.centers = nn.Parameter(centers.cuda() if use_gpu else centers)

    def forward(self, x, labels):
        batch_size = x.size(0)
        distmat = torch.pow(x, 2).sum(dim=1, keepdim=True).expand(batch_size, self.num_classes) + \
            torch.pow(self.centers, 2).sum(dim=1, keepdim=True).expand(self.num_classes, batch_size).t()
        distmat = distmat.addmm(x, self.centers.t(), beta=1, alpha=-2)
        classes = torch.arange(self.num_classes, device=x.device).long()
        labels = labels.unsqueeze(1).expand(batch_size, self.num_classes)
        mask = labels.eq(classes.expand(batch_size, self.num_classes))
        dist = distmat * mask.float()
        return dist.clamp(min=1e-12, max=1e12).sum() / batch_size


def _sq_distances(features, labels, centers):
    """(B,) squared distance of each feature to its center, in the input dtype."""
    diff = features - centers[labels]
    return (diff * diff).sum(dim=1)


class _HandWrittenBackward(torch.autograd.Function):
    """scale * sum_i ||x_i - c_{y_i}||^2 with gradients written by hand: grad_scale multiplies dL/dx and
    center_sign dL/dc, where a correct kernel has 1 and 1."""

    @staticmethod
    def forward(ctx, features, labels, centers, scale, grad_scale, center_sign):
        diff = features - centers[labels]  # (B, D)
        ctx.save_for_backward(diff, labels)
        ctx.shape, ctx.factors = centers.shape, (scale, grad_scale, center_sign)
        return (diff * diff).sum() * scale

    @staticmethod
    def backward(ctx, grad_output):
        diff, labels = ctx.saved_tensors
        scale, grad_scale, center_sign = ctx.factors
        grad_x = grad_output * 2 * scale * diff  # (B, D)
        grad_c = torch.zeros(ctx.shape, dtype=diff.dtype, device=diff.device).index_add_(0, labels, -grad_x)
        return grad_scale * grad_x, None, center_sign * grad_c, None, None, None


def center_gradient_with_the_wrong_sign(features, labels, centers):
    """sum/B with dL/dc = 2/B sum (x - c) instead of sum (c - x): the centers would walk away from their features."""
    return _HandWrittenBackward.apply(features, labels, centers, 1.0 / features.shape[0], 1.0, -1.0)


def half_mean_missing_the_half_in_backward(features, labels, centers):
    """sum/(2B) in forward, but a backward written for sum/B: dL/dx and dL/dc twice too large."""
    return _HandWrittenBackward.apply(features, labels, centers, 0.5 / features.shape[0], 2.0, 2.0)


def nan_for_a_batch_of_one(features, labels, centers):
    """sum/B times a Bessel-style correction that cancels, (B-1)/(B-1): 0/0 = NaN when B = 1."""
    batch = torch.tensor(float(features.shape[0]), dtype=features.dtype)
    return _sq_distances(features, labels, centers).sum() / batch * (batch - 1) / (batch - 1)


def clamp_that_zeroes_small_distances(features, labels, centers):
    """sum/B, with a "stability" threshold that drops any squared distance under 1e-4: the very samples center
    loss has pulled in contribute nothing."""
    d = _sq_distances(features, labels, centers)
    return torch.where(d < 1e-4, torch.zeros_like(d), d).sum() / features.shape[0]


def expanded_form_in_half_precision(features, labels, centers):
    """sum/B as ||x||^2 + ||c||^2 - 2 x.c per row, in the input dtype: ||x||^2 overflows float16 long before the
    distances do."""
    own = centers[labels]
    d = (features * features).sum(1) + (own * own).sum(1) - 2 * (features * own).sum(1)
    return d.sum() / features.shape[0]
