"""Bad input gets a ValueError or TypeError whose message names what was expected; the finiteness check."""

import math

import pytest
import torch

from ablate.loss import available_variants, center_loss, get_variant, variant_names
from ablate.loss.validation import all_finite

F, Y, C = torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), torch.randn(3, 3)

BAD_INPUTS = [
    ("features 1-D", (torch.randn(4), Y, C), ValueError, r"features must be 2-D \(B, D\), got shape \(4,\)"),
    ("features 3-D", (torch.randn(4, 3, 1), Y, C), ValueError, r"features must be 2-D"),
    ("integer features", (torch.ones(4, 3, dtype=torch.int64), Y, C.long()), TypeError, r"floating dtype"),
    ("float labels", (F, Y.float(), C), TypeError, r"labels must be a 1-D integer tensor"),
    ("2-D labels", (F, Y[:, None], C), TypeError, r"labels must be a 1-D integer tensor \(B,\)"),
    ("label count", (F, Y[:3], C), ValueError, r"labels has 3 entries; expected one per feature row \(B=4\)"),
    ("negative label", (F, torch.tensor([0, -1, 2, 1]), C), ValueError, r"labels must lie in \[0, 3\)"),
    ("label too large", (F, torch.tensor([0, 3, 2, 1]), C), ValueError, r"labels must lie in \[0, 3\) .* \[0, 3\]"),
    ("dimension mismatch", (F, Y, torch.randn(3, 5)), ValueError, r"features have D=3, centers have D=5"),
    ("mixed dtypes", (F, Y, C.double()), TypeError,
     r"centers dtype torch.float64 must match features dtype torch.float32"),
    ("not a tensor", (F.tolist(), Y, C), TypeError, r"features must be a torch.Tensor, got list"),
    ("empty batch", (torch.randn(0, 3), Y[:0], C), ValueError, r"at least one row"),
]


@pytest.mark.parametrize("variant", ["naive", "gather"])
@pytest.mark.parametrize("name,args,error,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_what_was_expected(variant, name, args, error, message):
    with pytest.raises(error, match=message):
        center_loss(*args, variant=variant)


def test_mixed_devices_are_refused():
    meta_centers = torch.empty(3, 3, device="meta")
    with pytest.raises(ValueError, match="must be on one device"):
        center_loss(F, Y, meta_centers)


def test_unknown_variant_and_convention_list_valid_choices():
    with pytest.raises(ValueError, match=f"unknown variant 'fast'; expected one of {', '.join(variant_names())}"):
        center_loss(F, Y, C, variant="fast")
    with pytest.raises(ValueError, match="unknown convention 'sum'; expected one of mean, half_mean, half_sum"):
        center_loss(F, Y, C, convention="sum")


def test_registry_lists_every_variant_with_its_cost():
    assert {"naive", "gather"} <= set(available_variants("cpu")) <= set(variant_names())
    assert get_variant("naive").work == "O(B*C*D)" and get_variant("gather").work == "O(B*D)"


def test_fused_is_unavailable_on_cpu_without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert "fused" not in available_variants("cpu")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_all_finite_finds_one_bad_element(dtype, bad):
    t = torch.randn(37, 5).to(dtype)
    assert all_finite(t)
    t[17, 3] = bad
    assert not all_finite(t)


def test_all_finite_when_infinities_of_both_signs_would_cancel_in_a_sum():
    assert not all_finite(torch.tensor([math.inf, -math.inf, 1.0]))


def test_all_finite_when_only_the_sum_overflows():
    big = torch.finfo(torch.float32).max
    assert all_finite(torch.tensor([big, big, -1.0]))  # the float32 sum is inf; every element is finite


def test_center_loss_refuses_an_unknown_variant_and_a_boolean_alpha():
    from ablate.loss import CenterLoss

    with pytest.raises(ValueError, match="unknown variant 'bogus'"):
        CenterLoss(10, 2, variant="bogus")
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0, got True"):
        CenterLoss(10, 2, alpha=True)


def test_center_loss_refuses_at_construction_a_variant_that_cannot_run_here(monkeypatch):
    """Before: CenterLoss(variant="fused") on a CPU was built, and failed at its first call ('0 active drivers')."""
    from ablate.loss import CenterLoss

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="variant 'fused' cannot run on cpu here: it needs CUDA with Triton, or the "
                                         "CPU under TRITON_INTERPRET=1; available there: naive, gather"):
        CenterLoss(10, 2, variant="fused", device="cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert CenterLoss(10, 2, variant="fused", device="cpu").variant.name == "fused"


def test_center_loss_refuses_an_unstable_rule_as_a_grid_does():
    """Before: CenterLoss(rule="ema", alpha=0.5) was accepted while a grid refused the cell. The batch decides: given
    batch_size it is refused at construction with the grid's own words. An update is not refused by the worst case
    of its batch (one class filling it): a batch's labels, not its size, decide whether a center overshoots, and the
    reference tests update at such settings on purpose."""
    from ablate.loss import CenterLoss
    from ablate.train import CellConfig

    with pytest.raises(ValueError) as grid_error:
        CellConfig(rule="ema", alpha=0.5, batch_size=64)
    with pytest.raises(ValueError) as built:
        CenterLoss(10, 2, rule="ema", alpha=0.5, batch_size=64)
    assert str(built.value) == str(grid_error.value)
    CenterLoss(10, 2, rule="ema", alpha=0.5, batch_size=4)  # stable for batches of up to 4
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        CenterLoss(10, 2, batch_size=0)
