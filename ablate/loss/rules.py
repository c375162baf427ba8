"""Center-update rules, one registry entry each: its step, its float64 reference, its alpha range and, from the
step, its stability bound.

Every rule moves class j by a multiple of delta_j = sum_{i: y_i = j} (c_j - x_i), all deltas taken from the
centers before the step:
    paper  c_j -= alpha * delta_j / (1 + n_j)        Eq. 4 / Algorithm 1 of Wen et al. (ECCV 2016)
    sgd    c_j -= alpha * 2 * s * delta_j            plain SGD (lr alpha) on dL_C/dc_j, s the convention's factor
    ema    c_j -= alpha * delta_j                    FaceNet's moving average, alpha = 1 - decay

Stability: with n_j samples of class j in a batch, c_j's error (its distance to the mean of those samples) is
multiplied by (1 - step_j * n_j) per step; it grows once step_j * n_j > 2. Over n_j = 1..B that is
    paper  alpha * n_j / (1 + n_j) < alpha <= 1            always stable
    sgd    2 * alpha * s * n_j <= 2 * alpha * s * B        stable for alpha <= 1 / (s * B): 1 under mean, 2 under
                                                           half_mean, 2 / B under half_sum
    ema    alpha * n_j <= alpha * B                        stable for alpha <= 2 / B
`Rule.check_stable` refuses a setting that can grow, whatever the labels of a batch. B is the batch the centers
step on: the global batch when several processes train (ablate.train.config passes batch_size x nproc).

Importing this module imports no torch: the steps and references are arithmetic on what they are given (Python
floats, or tensors from ablate.loss.updates and ablate.loss.reference).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ablate.loss.conventions import convention_scale
from ablate.registry import Registry


@dataclass(frozen=True)
class Rule:
    """A center-update rule.

    step(alpha, counts, scale): the multiplier of delta_j for n_j = counts samples of class j, s = scale the
    convention's factor; counts a Python float or a float64 tensor (U, 1), the result a float or a tensor that
    broadcasts to counts' shape.
    reference(old, members, alpha, scale): the float64 reference of one class's step, written from the rule's
    definition rather than from `step`: old (D,) the center before the step, members its n_j samples' rows, each
    (D,) -> the new center (D,).
    max_alpha: alpha must lie in [0, max_alpha].
    gradient_step: the step is plain SGD (lr alpha) on dL_C/dc, so the centers are a Parameter, and an optimizer of
    their own may take the step from their gradient instead of `CenterLoss.update` (ablate.train.loop).
    """

    name: str
    formula: str
    origin: str
    step: Callable[[float, Any, float], Any]
    reference: Callable[[Any, Sequence[Any], float, float], Any]
    max_alpha: float = math.inf
    gradient_step: bool = False

    def check_alpha(self, alpha: float) -> None:
        """alpha must be finite and in [0, max_alpha] (the paper's Eq. 4 and the moving average need alpha <= 1)."""
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        if alpha > self.max_alpha:
            raise ValueError(f"alpha for rule {self.name!r} must lie in [0, {self.max_alpha:g}], got {alpha}")

    def _batch_step_per_alpha(self, convention: str, batch_size: int) -> float:
        """step_j * n_j / alpha for a class that fills the batch (n_j = batch_size): step_j is proportional to alpha
        under every rule."""
        return float(self.step(1.0, float(batch_size), convention_scale(convention, batch_size))) * batch_size

    def max_stable_alpha(self, convention: str, batch_size: int) -> float:
        """The largest alpha check_alpha and check_stable accept at this convention and batch size."""
        return min(self.max_alpha, 2.0 / self._batch_step_per_alpha(convention, batch_size))

    def check_stable(self, alpha: float, convention: str, batch_size: int) -> None:
        """Refuse (ValueError, with the reason and the largest stable alpha) a setting whose center error can grow:
        when step_j * n_j > 2 for a class that fills the whole batch (n_j = batch_size), the worst case of any
        batch."""
        worst = alpha * self._batch_step_per_alpha(convention, batch_size)
        if worst <= 2:
            return
        per_alpha = worst / alpha
        raise ValueError(
            f"rule {self.name!r} with alpha {alpha:g} is unstable at batch_size {batch_size} (convention "
            f"{convention!r}): a class with n_j samples in a batch has its center's error multiplied by (1 - s * n_j) "
            f"per step, here with s = {per_alpha / batch_size:g} * alpha, and the error grows once s * n_j > 2; a "
            f"batch of one class (n_j = {batch_size}) gives s * n_j = {worst:g}. Use alpha <= {2 / per_alpha:.4g}, a "
            "smaller batch, or rule 'paper' (stable for alpha <= 1).")


def _paper_reference(old: Any, members: Sequence[Any], alpha: float, scale: float) -> Any:
    delta = sum(old - x for x in members)
    return old - alpha * delta / (1 + len(members))


def _sgd_reference(old: Any, members: Sequence[Any], alpha: float, scale: float) -> Any:
    grad = sum(2 * scale * (old - x) for x in members)  # dL/dc_j under the convention
    return old - alpha * grad


def _ema_reference(old: Any, members: Sequence[Any], alpha: float, scale: float) -> Any:
    new = old
    for x in members:  # c_{y_i} -= alpha * (c_{y_i} - x_i) for every sample, from the center before the step
        new = new - alpha * (old - x)
    return new


RULES: Registry[Rule] = Registry("rule")
RULES.register(Rule("paper", "c_j -= alpha * delta_j / (1 + n_j)", "Eq. 4 / Algorithm 1",
                    step=lambda alpha, counts, scale: alpha / (1.0 + counts), reference=_paper_reference,
                    max_alpha=1.0))
RULES.register(Rule("sgd", "c_j -= alpha * 2 * s * delta_j", "plain SGD on dL_C/dc_j, lr alpha",
                    step=lambda alpha, counts, scale: alpha * 2.0 * scale, reference=_sgd_reference,
                    gradient_step=True))
RULES.register(Rule("ema", "c_j -= alpha * delta_j", "FaceNet's moving average, alpha = 1 - decay",
                    step=lambda alpha, counts, scale: alpha, reference=_ema_reference, max_alpha=1.0))


def rules_help() -> str:
    """'paper: c_j -= alpha * delta_j / (1 + n_j) (Eq. 4 / Algorithm 1); sgd: ...': the rules, for option help."""
    return "; ".join(f"{r.name}: {r.formula} ({r.origin})" for r in RULES)
