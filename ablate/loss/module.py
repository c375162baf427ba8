"""`CenterLoss`: an nn.Module that owns the centers and knows its variant, convention and rule."""

import torch
from torch import nn

from ablate.loss.functional import center_loss, update_centers
from ablate.loss.registry import DEFAULT_VARIANT, get_variant
from ablate.loss.validation import check_alpha


class CenterLoss(nn.Module):
    """Center loss with its own centers (C, D): a Parameter for rule "sgd", a buffer otherwise.

    One training step with softmax + lambda * center loss (rule "paper", the paper's Algorithm 1)::

        crit = CenterLoss(num_classes=10, feat_dim=2, variant="gather", convention="mean",
                          rule="paper", alpha=0.5)
        features, logits = model(images)                     # (B, D), (B, C)
        loss = F.cross_entropy(logits, labels) + lam * crit(features, labels)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        crit.update(features.detach(), labels)               # Eq. 4; no gradient reaches the centers

    With rule "sgd" the centers are a Parameter: either call `update` (plain SGD, lr alpha, on
    dL_C/dc), or, as the popular implementation does, give them their own
    `torch.optim.SGD([crit.centers], lr=alpha)`, multiply their gradient by 1/lam and step.
    """

    def __init__(self, num_classes: int, feat_dim: int, *, variant: str = DEFAULT_VARIANT, convention: str = "mean",
                 rule: str = "paper", alpha: float = 0.5, dtype=torch.float32, device=None):
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"num_classes and feat_dim must be >= 1, got {num_classes} and {feat_dim}")
        get_variant(variant)  # an unknown name fails here, not at the first forward
        check_alpha(alpha, rule)
        self.variant, self.convention, self.rule, self.alpha = variant, convention, rule, alpha
        centers = torch.randn(num_classes, feat_dim, dtype=dtype, device=device)  # (C, D)
        if rule == "sgd":
            self.centers = nn.Parameter(centers)
        else:
            self.register_buffer("centers", centers)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """features (B, D), labels (B,) -> 0-dim loss under this module's convention."""
        return center_loss(features, labels, self.centers, variant=self.variant, convention=self.convention)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """One step of this module's rule on the rows named by labels (B,); features (B, D) are detached."""
        update_centers(self.centers.data, features.detach(), labels, alpha=self.alpha, rule=self.rule,
                       convention=self.convention, variant=self.variant)

    def extra_repr(self) -> str:
        c, d = self.centers.shape
        return f"{c}, {d}, variant={self.variant}, convention={self.convention}, rule={self.rule}, alpha={self.alpha}"
