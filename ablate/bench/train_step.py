"""Training-step throughput per variant: model + softmax + lambda * center loss + backward + step + center update.

Two workloads show when the loss variant matters:
    lenetpp     LeNet++ on 28x28 images, 2-D features, 10 classes: the loss is a sliver of the step
    large_head  the last layers of a face model: a 512-D embedding and a linear classifier over C
                identities (up to 100,000), where naive's B x C x D work rivals the classifier's
"""

import torch
import torch.nn.functional as F
from torch import nn

from ablate.bench.suites import Timing, TrainStepSpec
from ablate.bench.timer import quantiles_ms, time_interleaved, warm_up
from ablate.bench.workloads import UPDATE_ALPHA
from ablate.loss import CenterLoss

LAMBDA, LR, MOMENTUM = 0.01, 1e-3, 0.9
LENETPP_CLASSES, LENETPP_DIM, IMAGE_SHAPE = 10, 2, (1, 28, 28)


class LargeHead(nn.Module):
    """A D-dim embedding layer and a linear classifier over C classes: x (B, D) -> (features (B, D), logits (B, C))."""

    def __init__(self, num_classes: int, feat_dim: int):
        super().__init__()
        self.embed = nn.Linear(feat_dim, feat_dim)
        self.classifier = nn.Linear(feat_dim, num_classes)

    def forward(self, x: torch.Tensor):
        features = self.embed(x)  # (B, D)
        return features, self.classifier(features)  # (B, D), (B, C)


def _model(workload: str, classes: int, dim: int) -> nn.Module:
    if workload == "lenetpp":
        from ablate.models import LeNetPP

        return LeNetPP(num_classes=classes, feat_dim=dim)
    return LargeHead(classes, dim)


def training_step(model: nn.Module, criterion: CenterLoss, inputs: torch.Tensor, labels: torch.Tensor):
    """One SGD step of cross-entropy + LAMBDA * center loss, then the centers' update by their rule."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        optimizer.zero_grad(set_to_none=True)
        features, logits = model(inputs)  # (B, D), (B, C)
        loss = F.cross_entropy(logits, labels) + LAMBDA * criterion(features, labels)
        loss.backward()
        optimizer.step()
        criterion.update(features.detach(), labels)

    return step


def workload_cases(spec: TrainStepSpec) -> list:
    """(workload, batch, classes, dim) to time, in order."""
    cases = []
    for workload in spec.workloads:
        if workload == "lenetpp":
            cases.append(("lenetpp", spec.lenetpp_batch, LENETPP_CLASSES, LENETPP_DIM))
        else:
            cases += [("large_head", spec.large_head_batch, c, spec.large_head_dim) for c in spec.large_head_classes]
    return cases


def train_step_case(workload: str, batch: int, classes: int, dim: int, variants, device: torch.device,
                    timing: Timing) -> list:
    """One row per variant: samples/s and step time of the same model (same initial weights) under each variant."""
    gen = torch.Generator(device).manual_seed(0)
    shape = (batch, *IMAGE_SHAPE) if workload == "lenetpp" else (batch, dim)
    inputs = torch.randn(shape, generator=gen, device=device)
    labels = torch.randint(0, classes, (batch,), generator=gen, device=device)
    steps = {}
    for variant in variants:
        torch.manual_seed(0)  # the same weights and centers for every variant
        model = _model(workload, classes, dim).to(device)
        criterion = CenterLoss(classes, dim, variant=variant, rule="paper", alpha=UPDATE_ALPHA, device=device)
        steps[variant] = training_step(model, criterion, inputs, labels)
        warm_up(steps[variant], device)
    times = time_interleaved(steps, device, timing)
    rows = []
    for variant in variants:
        q = quantiles_ms(times[variant])
        rows.append({"workload": workload, "variant": variant, "batch": batch, "classes": classes, "dim": dim,
                     "device": device.type, "samples_per_s": batch / (q["time_ms_p50"] * 1e-3), **q, "note": ""})
    return rows
