"""Center-update rules against ablate.loss.reference.reference_update, and CenterLoss.

Tolerances: the float64 update reads and rounds each touched row a handful of times (sum of up to B
deltas, one scale): 1e-12 normwise. float32 works in fp32 from fp32 inputs: B * eps32 ~ 1e-6 worst case
for these sizes; 1e-5.
"""

import pytest
import torch

from ablate.gate.counting import count_work
from ablate.loss import CONVENTIONS, RULES, CenterLoss, available_variants, center_loss, get_variant, update_centers
from ablate.loss.reference import reference_update
from tests.support.numerics import absent_classes, normwise_error

# A variant not timed on the CPU runs there through an interpreter, too slowly for these sizes: its own tests
# (tests/kernels/test_fused.py) cover it with small ones.
UPDATE_VARIANTS = [v for v in available_variants("cpu") if get_variant(v).timed("cpu")]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def batch(dtype, labels=(0, 3, 3, 1, 3, 0, 1), classes=5, dim=131, seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(len(labels), dim, generator=g, dtype=torch.float64).to(dtype)
    centers = torch.randn(classes, dim, generator=g, dtype=torch.float64).to(dtype)
    return centers, features, torch.tensor(labels)


@pytest.mark.parametrize("labels", [(0, 3, 3, 1, 3, 0, 1), (2,), (4, 4, 4, 4)], ids=["duplicates", "B=1", "one-class"])
@pytest.mark.parametrize("convention", CONVENTIONS.names())
@pytest.mark.parametrize("rule", RULES.names())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", UPDATE_VARIANTS)
def test_rule_matches_reference(variant, dtype, rule, convention, labels):
    centers, features, labels = batch(dtype, labels)
    before = centers.clone()
    expected = reference_update(centers, features, labels, alpha=0.5, rule=rule, convention=convention)
    update_centers(centers, features, labels, alpha=0.5, rule=rule, convention=convention, variant=variant)
    assert normwise_error(centers, expected) <= TOL[dtype]
    absent = absent_classes(labels, centers.shape[0])
    assert torch.equal(centers[absent], before[absent])  # untouched rows are bit-identical


@pytest.mark.parametrize("label_dtype", [torch.int32, torch.int16, torch.uint8])
@pytest.mark.parametrize("variant", UPDATE_VARIANTS)
def test_any_integer_label_dtype(variant, label_dtype):
    centers, features, labels = batch(torch.float64)
    expected = reference_update(centers, features, labels, alpha=0.5, rule="paper")
    update_centers(centers, features, labels.to(label_dtype), alpha=0.5, rule="paper", variant=variant)
    assert torch.allclose(centers, expected, rtol=1e-12, atol=1e-12)
    assert center_loss(features, labels.to(label_dtype), centers, variant=variant).item() == pytest.approx(
        center_loss(features, labels, centers, variant=variant).item(), rel=1e-12)


def test_paper_rule_by_hand():
    """Eq. 4 on one class seen twice: delta = ((c - x1) + (c - x2)) / 3."""
    centers = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    features = torch.tensor([[3.0, 0.0], [0.0, 6.0]], dtype=torch.float64)
    update_centers(centers, features, torch.tensor([0, 0]), alpha=0.5, rule="paper")
    assert torch.equal(centers, torch.tensor([[0.5, 1.0], [1.0, 1.0]], dtype=torch.float64))


def test_ema_rule_sums_duplicates_from_old_centers():
    """c - a(c - x1) - a(c - x2), both deltas from the old c, not applied one after the other."""
    centers = torch.tensor([[1.0]], dtype=torch.float64)
    features = torch.tensor([[3.0], [5.0]], dtype=torch.float64)
    update_centers(centers, features, torch.tensor([0, 0]), alpha=0.25, rule="ema")
    assert centers.item() == 1.0 - 0.25 * (1 - 3) - 0.25 * (1 - 5)


@pytest.mark.parametrize("convention", CONVENTIONS.names())
def test_sgd_rule_equals_popular_optimizer_path(convention):
    """The popular implementation: SGD(lr=alpha) on the centers after multiplying their grad by 1/lambda."""
    centers, features, labels = batch(torch.float64)
    lam, alpha = 0.003, 0.5
    param = torch.nn.Parameter(centers.clone())
    optimizer = torch.optim.SGD([param], lr=alpha)
    (lam * center_loss(features, labels, param, convention=convention)).backward()
    param.grad.mul_(1.0 / lam)
    optimizer.step()
    update_centers(centers, features, labels, alpha=alpha, rule="sgd", convention=convention)
    assert torch.allclose(centers, param.detach(), rtol=1e-12, atol=1e-12)


def _update_work(classes: int, step=update_centers, **kwargs) -> dict:
    """The counted work (ablate.gate.counting: ATen ops, FLOPs, bytes allocated, peak) of one update of the same
    batch (250 rows, 10 classes, D = 64) with `classes` centers, after one warm-up step, as the gate counts."""
    centers, features, labels = batch(torch.float32, labels=tuple(range(10)) * 25, classes=classes, dim=64)
    step(centers, features, labels, alpha=0.5, **kwargs)
    return count_work(lambda: step(centers, features, labels, alpha=0.5, **kwargs))


@pytest.mark.parametrize("rule", RULES.names())
@pytest.mark.parametrize("variant", UPDATE_VARIANTS)
def test_update_work_does_not_grow_with_classes(variant, rule):
    """Only the labelled rows are touched: a step at C=100,000 dispatches the same ATen ops, FLOPs and bytes as at
    C=10, exactly. An O(C*D) step (a clone, a dense delta or gradient: 100,000 x 64 floats, 25.6 MB) allocates
    C x D more (the test below shows the counts see it). What an in-place op reads is not counted: a dense in-place
    step over every row is the gate's scaling law update_cost_follows_rows to catch, by time (`make gate`)."""
    assert _update_work(100_000, rule=rule, variant=variant) == _update_work(10, rule=rule, variant=variant)


def dense_paper_update(centers, features, labels, alpha):
    """Eq. 4 computed right but densely: a (C, D) delta and a step over every row."""
    delta = torch.zeros_like(centers).index_add_(0, labels, centers[labels] - features)  # (C, D)
    counts = torch.bincount(labels, minlength=centers.shape[0]).unsqueeze(1)  # (C, 1)
    centers.sub_(alpha * delta / (1 + counts))


def test_the_counted_work_of_a_dense_update_grows_with_classes():
    centers, features, labels = batch(torch.float64)
    expected = reference_update(centers, features, labels, alpha=0.5, rule="paper")
    dense_paper_update(centers, features, labels, alpha=0.5)
    assert normwise_error(centers, expected) <= TOL[torch.float64]  # right values: only its cost is wrong
    small, large = _update_work(10, dense_paper_update), _update_work(100_000, dense_paper_update)
    assert small["ops"] == large["ops"]  # the same ops, on larger tensors
    assert large["bytes"] - small["bytes"] >= (100_000 - 10) * 64 * 4  # at least one more (C, D) float32 tensor


def test_update_refuses_non_finite_features_and_leaves_centers():
    centers, features, labels = batch(torch.float32)
    before = centers.clone()
    features[2, 5] = float("nan")
    with pytest.raises(ValueError, match="features must be finite"):
        update_centers(centers, features, labels, alpha=0.5)
    assert torch.equal(centers, before)


def test_update_refuses_non_finite_result_and_leaves_centers():
    centers = torch.zeros(2, 3)
    features = torch.full((2, 3), 3e38)  # two duplicates: c - a(c - x1) - a(c - x2) = 6e38 overflows fp32
    before = centers.clone()
    with pytest.raises(ValueError, match="non-finite centers; the centers were left untouched"):
        update_centers(centers, features, torch.tensor([1, 1]), alpha=1.0, rule="ema")
    assert torch.equal(centers, before)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_paper_alpha_outside_unit_interval_is_an_error(alpha):
    centers, features, labels = batch(torch.float32)
    with pytest.raises(ValueError, match="alpha"):
        update_centers(centers, features, labels, alpha=alpha, rule="paper")


def test_sgd_accepts_learning_rates_above_one():
    centers, features, labels = batch(torch.float64)
    expected = reference_update(centers, features, labels, alpha=2.0, rule="sgd")
    update_centers(centers, features, labels, alpha=2.0, rule="sgd")
    assert torch.allclose(centers, expected, rtol=1e-12, atol=1e-12)


def test_unknown_rule_lists_the_valid_ones():
    centers, features, labels = batch(torch.float32)
    with pytest.raises(ValueError, match="unknown rule 'adam'; expected one of paper, sgd, ema"):
        update_centers(centers, features, labels, alpha=0.5, rule="adam")


def test_center_loss_module_owns_centers_by_rule():
    sgd = CenterLoss(10, 2, rule="sgd", alpha=0.5)
    paper = CenterLoss(10, 2, rule="paper", alpha=0.5)
    assert isinstance(sgd.centers, torch.nn.Parameter) and [n for n, _ in sgd.named_parameters()] == ["centers"]
    assert not list(paper.parameters()) and "centers" in dict(paper.named_buffers())
    assert paper.centers.shape == (10, 2)


@pytest.mark.parametrize("rule", RULES.names())
def test_center_loss_module_forward_and_update(rule):
    torch.manual_seed(0)
    crit = CenterLoss(5, 131, variant="gather", convention="half_mean", rule=rule, alpha=0.5, dtype=torch.float64)
    _, features, labels = batch(torch.float64)
    old = crit.centers.detach().clone()
    features.requires_grad_()
    loss = crit(features, labels)
    loss.backward()
    assert features.grad is not None and loss.item() == pytest.approx(
        center_loss(features.detach(), labels, old, convention="half_mean").item(), rel=1e-12)
    crit.update(features, labels)
    expected = reference_update(old, features.detach(), labels, alpha=0.5, rule=rule, convention="half_mean")
    assert torch.allclose(crit.centers.detach(), expected, rtol=1e-12, atol=1e-12)


# --- stability ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, convention, limit", [
    ("ema", "mean", 2 / 64), ("sgd", "half_sum", 2 / 64), ("sgd", "mean", 1.0), ("sgd", "half_mean", 2.0),
])
def test_a_rule_is_refused_just_past_its_stability_limit_and_that_limit_is_where_the_error_grows(rule, convention,
                                                                                                 limit):
    batch_size = 64
    RULES.get(rule).check_stable(limit, convention, batch_size)  # at the limit: accepted
    with pytest.raises(ValueError, match=f"rule '{rule}' with alpha .* is unstable at batch_size 64"):
        RULES.get(rule).check_stable(limit * 1.01, convention, batch_size)
    # The worst batch, one class filling it: the center's error to the batch mean is multiplied by (1 - s * B).
    features = torch.randn(batch_size, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(batch_size, dtype=torch.long)
    for alpha, grows in ((limit * 0.99, False), (limit * 1.01, True)):
        centers = torch.zeros(1, 3, dtype=torch.float64)
        before = (centers[0] - features.mean(0)).norm()
        update_centers(centers, features, labels, alpha=alpha, rule=rule, convention=convention)
        assert bool((centers[0] - features.mean(0)).norm() > before) == grows, alpha


def test_the_paper_rule_is_stable_for_every_alpha_up_to_one():
    for batch_size in (1, 64, 4096):
        RULES.get("paper").check_stable(1.0, "half_sum", batch_size)
