"""Placements: host synchronizations counted per call (validate=True and False), the replicated and sharded
updates validating once, and CenterLoss refusing every bad choice at construction.

A host synchronization is counted as a dispatch of aten._local_scalar_dense, which .item(), int(), float() and
bool() of a tensor dispatch to: on CUDA each waits for the device. Counted on the CPU, the number is the same
on every machine.
"""

import pytest
import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

from ablate.distributed import FORMS, Replicated, Sharded, form_placement
from ablate.loss import CenterLoss, available_variants, center_loss, update_centers
from ablate.loss.placement import LOCAL, Local

B, C, D = 32, 10, 4
TORCH_VARIANTS = ("gather", "naive")
# compiled builds its code first (about 10 s on 2 loaded cores): in the slow lane
COUNTED_VARIANTS = [*TORCH_VARIANTS, pytest.param("compiled", marks=[
    pytest.mark.slow, pytest.mark.skipif("compiled" not in available_variants("cpu"), reason="no torch.compile here")])]
# validate=True: check_inputs reads labels.min() and labels.max(); the update adds all_finite of the features and
# of the new rows (one read each when they are finite).
LOSS_SYNCS, UPDATE_SYNCS = 2, 4


class CountSyncs(TorchDispatchMode):
    """Counts aten._local_scalar_dense, the op every read of a tensor's value on the host dispatches to."""

    def __init__(self):
        super().__init__()
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.syncs += 1
        return func(*args, **(kwargs or {}))


def syncs_of(fn) -> int:
    with CountSyncs() as counter:
        fn()
    return counter.syncs


def batch(seed: int = 0, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(B, D, generator=gen, dtype=dtype)
    return features, torch.randint(0, C, (B,), generator=gen), torch.randn(C, D, generator=gen, dtype=dtype)


@pytest.mark.parametrize("variant", COUNTED_VARIANTS)
@pytest.mark.parametrize("validate, loss_syncs, update_syncs", [(True, LOSS_SYNCS, UPDATE_SYNCS), (False, 0, 0)])
def test_host_synchronizations_per_call(variant, validate, loss_syncs, update_syncs):
    features, labels, centers = batch()
    features.requires_grad_(True)
    loss = []
    assert syncs_of(lambda: loss.append(center_loss(features, labels, centers, variant=variant,
                                                    validate=validate))) == loss_syncs
    assert syncs_of(lambda: loss[0].backward()) == 0
    for rule in ("paper", "sgd", "ema"):
        assert syncs_of(lambda: update_centers(centers, features, labels, alpha=0.1, rule=rule, variant=variant,
                                               validate=validate)) == update_syncs, rule


def test_the_counter_sees_a_host_read():
    """The counts above are only as good as the counter: every way of reading a value is one dispatch."""
    t = torch.tensor([1.5])
    assert syncs_of(lambda: (t.item(), int(t), float(t), bool(t))) == 4


@pytest.mark.parametrize("variant", TORCH_VARIANTS)
def test_validate_false_computes_the_same_bits(variant):
    """validate only skips checks: loss, gradients and steps are bitwise those of a validated call."""
    for validate in (True, False):
        features, labels, centers = batch(1)
        features.requires_grad_(True)
        crit = CenterLoss(C, D, variant=variant, rule="paper", validate=validate)
        crit.centers.copy_(centers)
        loss = crit(features, labels)
        loss.backward()
        crit.update(features, labels)
        if validate:
            expected = (loss.detach(), features.grad, crit.centers.clone())
        else:
            for got, want in zip((loss.detach(), features.grad, crit.centers), expected):
                assert torch.equal(got, want)


def test_validate_false_trusts_the_inputs():
    """What validate=False gives up: a non-finite feature is no longer refused (the centers take it)."""
    features, labels, centers = batch(2)
    features[0, 0] = float("nan")
    with pytest.raises(ValueError, match="features must be finite"):
        update_centers(centers, features, labels, alpha=0.5)
    update_centers(centers, features, labels, alpha=0.5, validate=False)
    assert centers[labels[0]].isnan().any()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(convention="bogus"), ValueError, "unknown convention 'bogus'; expected one of mean, half_mean, half_sum"),
    (dict(rule="nope"), ValueError, "unknown rule 'nope'; expected one of paper, sgd, ema"),
    (dict(variant="bogus"), ValueError, "unknown variant 'bogus'; expected one of"),
    (dict(alpha=-1.0), ValueError, "alpha must be a finite number >= 0, got -1.0"),
    (dict(rule="paper", alpha=2.0), ValueError, r"alpha for rule 'paper' must lie in \[0, 1\], got 2.0"),
    (dict(placement="replicated"), TypeError, "placement must be a Placement .* got 'replicated'"),
    (dict(validate="no"), TypeError, "validate must be True or False, got 'no'"),
], ids=["convention", "rule", "variant", "alpha", "alpha-range", "placement", "validate"])
def test_every_bad_choice_fails_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        CenterLoss(10, 2, **kwargs)


def test_the_functions_refuse_what_is_not_a_placement():
    features, labels, centers = batch()
    with pytest.raises(TypeError, match="placement must be a Placement"):
        center_loss(features, labels, centers, placement=None)
    with pytest.raises(TypeError, match="placement must be a Placement"):
        update_centers(centers, features, labels, alpha=0.5, placement="sharded")


def test_local_holds_the_whole_table():
    crit = CenterLoss(C, D)
    assert crit.placement is LOCAL and isinstance(LOCAL, Local)
    assert crit.class_range == (0, C) and crit.centers_grad_multiplier == 1
    assert torch.equal(crit.full_centers(), crit.centers) and "placement=Local()" in repr(crit)


@pytest.fixture
def world_of_one(tmp_path):
    """A gloo process group of one rank in this process: the collectives run, against themselves."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


# Beyond Local's: gather_counts reads every rank's row count (one per rank: 1 here), validated or not. Sharded's
# validated update also reads the all-ranks-finite flag.
GATHER_SYNCS = 1


@pytest.mark.parametrize("validate, expected", [(True, UPDATE_SYNCS + GATHER_SYNCS), (False, GATHER_SYNCS)])
def test_the_replicated_update_validates_once_and_equals_local(world_of_one, validate, expected):
    features, labels, centers = batch(3)
    local = centers.clone()
    update_centers(local, features, labels, alpha=0.5, rule="paper")
    assert syncs_of(lambda: update_centers(centers, features, labels, alpha=0.5, rule="paper", placement=Replicated(),
                                           validate=validate)) == expected
    assert torch.equal(centers, local)  # one rank's global batch is its own: the very same step


@pytest.mark.parametrize("validate, expected", [(True, UPDATE_SYNCS + GATHER_SYNCS + 1), (False, GATHER_SYNCS)])
def test_the_sharded_update_validates_once_and_equals_local(world_of_one, validate, expected):
    features, labels, centers = batch(4)
    local = centers.clone()
    update_centers(local, features, labels, alpha=0.5, rule="ema")
    assert syncs_of(lambda: update_centers(centers, features, labels, alpha=0.5, rule="ema", placement=Sharded(C),
                                           validate=validate)) == expected
    assert torch.equal(centers, local)


@pytest.mark.parametrize("placement", [Replicated(), Sharded(C)], ids=repr)
def test_a_placement_across_ranks_gives_the_local_loss_and_table(world_of_one, placement):
    features, labels, _ = batch(5)
    torch.manual_seed(0)
    crit = CenterLoss(C, D, placement=placement)
    torch.manual_seed(0)
    local = CenterLoss(C, D)
    assert torch.equal(crit(features, labels), local(features, labels))
    assert crit.class_range == (0, C) and crit.centers_grad_multiplier == 1  # a world of one
    assert torch.equal(crit.full_centers(), local.full_centers())


def test_a_sharded_placement_names_its_class_count(world_of_one):
    with pytest.raises(ValueError, match=r"the centers have 12 classes but the placement shards 10: build it as "
                                         r"Sharded\(12, group\)"):
        CenterLoss(12, D, placement=Sharded(C))
    with pytest.raises(ValueError, match="Sharded needs num_classes, the total C"):
        Sharded(0)


def test_placements_across_ranks_need_a_process_group():
    with pytest.raises(RuntimeError, match="distributed center loss needs a process group"):
        CenterLoss(C, D, placement=Replicated())


def test_a_cells_distributed_form_names_its_placement():
    assert form_placement(None, C) is LOCAL
    assert [type(form_placement(form, C)) for form in FORMS] == [Replicated, Sharded]
    assert form_placement("sharded", C).num_classes == C
    with pytest.raises(ValueError, match="unknown distributed form 'ring'; expected one of replicated, sharded"):
        form_placement("ring", C)


@pytest.mark.parametrize("placement", [Replicated(), Sharded(C)], ids=repr)
def test_a_placement_across_ranks_still_refuses_bad_input(world_of_one, placement):
    features, labels, centers = batch(6)
    labels[0] = C
    with pytest.raises(ValueError, match=rf"labels must lie in \[0, {C}\)"):
        center_loss(features, labels, centers, placement=placement)
    labels[0], features[1, 0] = 0, float("inf")
    with pytest.raises(ValueError, match="features must be finite to update the centers"):
        update_centers(centers, features, labels, alpha=0.5, placement=placement)
