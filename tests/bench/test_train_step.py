"""The training-step benchmark: a real step (weights and centers move), timed for every variant alike."""

import pytest
import torch

from ablate.bench.suites import Timing
from ablate.bench.train_step import LargeHead, train_step_case, training_step
from ablate.loss import CenterLoss

CPU = torch.device("cpu")
SHORT = Timing(rounds=1, round_ms=10.0)


def test_a_step_trains_the_model_and_moves_the_centers():
    torch.manual_seed(0)
    model = LargeHead(num_classes=50, feat_dim=16)
    criterion = CenterLoss(50, 16, variant="gather", rule="paper", alpha=0.5)
    inputs, labels = torch.randn(32, 16), torch.randint(0, 50, (32,))
    weights, centers = model.classifier.weight.detach().clone(), criterion.centers.clone()
    step = training_step(model, criterion, inputs, labels)
    step()
    assert not torch.equal(model.classifier.weight, weights)
    moved = (criterion.centers != centers).any(dim=1)
    assert moved[labels.unique()].all() and not moved[~torch.isin(torch.arange(50), labels)].any()


def test_large_head_rows_for_every_variant():
    rows = train_step_case("large_head", 16, 200, 32, ("naive", "gather"), CPU, SHORT)
    assert [r["variant"] for r in rows] == ["naive", "gather"]
    for r in rows:
        assert (r["workload"], r["batch"], r["classes"], r["dim"], r["device"]) == ("large_head", 16, 200, 32, "cpu")
        assert r["samples_per_s"] == pytest.approx(16 / (r["time_ms_p50"] * 1e-3)) and r["note"] == ""


def test_lenetpp_rows():
    rows = train_step_case("lenetpp", 8, 10, 2, ("gather",), CPU, SHORT)
    for r in rows:
        assert (r["workload"], r["batch"], r["classes"], r["dim"], r["device"]) == ("lenetpp", 8, 10, 2, "cpu")
        assert r["samples_per_s"] == pytest.approx(8 / (r["time_ms_p50"] * 1e-3)) and r["note"] == ""
