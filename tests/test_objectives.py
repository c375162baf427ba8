"""The heads and pair losses (ablate.objectives, ablate.train.heads) against their papers' equations, written here
in numpy from the papers (not from pytorch-metric-learning's code), so that a library change that alters a loss is
caught; and the objective options: defaults, ranges, invalid combinations, the record's name of the objective."""

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ablate.cli import main
from ablate.models import build_model
from ablate.objectives import HEADS, PAIR_LOSSES, describe_objective
from ablate.train import CellConfig
from ablate.train.heads import TrainingObjective
from ablate.train.loop import make_optimizer

CLASSES, DIM = 4, 3
# float64 throughout: pml computes in the features' dtype, so the paper's values are met to rounding (1e-12).
TOLERANCE = 1e-10


def _batch(seed: int = 0):
    """Features (6, DIM) of norms 0.5 to 4, labels (6,), and a head weight matrix W (CLASSES, DIM), float64."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(6, DIM)) * rng.uniform(0.5, 4.0, size=(6, 1))
    return features, np.array([0, 1, 2, 3, 0, 2]), rng.normal(size=(CLASSES, DIM))


def _cosines(features, weights):
    """cos theta_ij (N, C) between feature i and class weight j."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    return unit @ (weights / np.linalg.norm(weights, axis=1, keepdims=True)).T


def _cross_entropy(logits, labels) -> float:
    """-1/N sum_i log softmax(logits_i)_{y_i}."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def _with_target(cosine, labels, target_logit, scale):
    """Logits: scale * cos theta_j for j != y_i, target_logit (N,) for the label."""
    logits = scale * cosine.copy()
    logits[np.arange(len(labels)), labels] = target_logit
    return logits


def normface_loss(features, labels, weights, s=20.0):
    """NormFace (Wang et al. 2017, Eq. 7): softmax cross-entropy over s * cos theta_j."""
    return _cross_entropy(s * _cosines(features, weights), labels)


def cosface_loss(features, labels, weights, s=64.0, m=0.35):
    """CosFace / LMCL (Wang et al. 2018, Eq. 4): target logit s (cos theta_y - m)."""
    cosine = _cosines(features, weights)
    target = cosine[np.arange(len(labels)), labels]
    return _cross_entropy(_with_target(cosine, labels, s * (target - m), s), labels)


def arcface_loss(features, labels, weights, s=64.0, m=0.5):
    """ArcFace (Deng et al. 2019, Eq. 3): target logit s cos(theta_y + m), m in radians."""
    cosine = _cosines(features, weights)
    theta = np.arccos(cosine[np.arange(len(labels)), labels])
    assert (theta + m <= math.pi).all()  # the paper's domain (pml's fallback beyond it is not the paper's)
    return _cross_entropy(_with_target(cosine, labels, s * np.cos(theta + m), s), labels)


def sphereface_loss(features, labels, weights, m=4, s=1.0):
    """A-Softmax (Liu et al. 2017, Eq. 7 without the lambda annealing of its training): logits ||x|| cos theta_j,
    target ||x|| psi(theta_y), psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi / m, (k + 1) pi / m];
    pml multiplies every logit by s (1: the paper's form)."""
    cosine = _cosines(features, weights)
    norms = np.linalg.norm(features, axis=1)
    theta = np.arccos(cosine[np.arange(len(labels)), labels])
    k = np.floor(theta * m / math.pi)
    psi = (-1.0) ** k * np.cos(m * theta) - 2 * k
    logits = s * norms[:, None] * cosine
    logits[np.arange(len(labels)), labels] = s * norms * psi
    return _cross_entropy(logits, labels)


def _head(name: str, weights, **options) -> TrainingObjective:
    """The cell's head on CLASSES classes of DIM-dimensional features, its weights set to `weights` (CLASSES, DIM)."""
    config = CellConfig(head=name, feat_dim=DIM, **options)
    objective = TrainingObjective(config, CLASSES)
    objective.head_module.double()
    with torch.no_grad():
        objective.head_module.loss.W.copy_(torch.tensor(weights.T))  # pml holds W as (D, C)
    return objective


def _head_mean(objective, features, labels) -> float:
    x, y = torch.tensor(features), torch.tensor(labels)
    return float(objective.head_sum(x, None, y).detach()) / len(labels)


PAPER_HEADS = [("normface", normface_loss), ("cosface", cosface_loss), ("arcface", arcface_loss),
               ("sphereface", sphereface_loss)]


@pytest.mark.parametrize("name, paper_loss", PAPER_HEADS)
def test_head_loss_at_the_papers_defaults_is_the_papers_equation(name, paper_loss):
    features, labels, weights = _batch()
    expected = paper_loss(features, labels, weights)  # the papers' values written in each function's defaults
    assert _head_mean(_head(name, weights), features, labels) == pytest.approx(expected, rel=TOLERANCE)


@pytest.mark.parametrize("name, paper_loss, options", [
    ("normface", normface_loss, {"s": 8.0}), ("cosface", cosface_loss, {"s": 30.0, "m": 0.2}),
    ("arcface", arcface_loss, {"s": 30.0, "m": 0.3}), ("sphereface", sphereface_loss, {"m": 2, "s": 1.5})])
def test_head_loss_follows_its_margin_and_scale_options(name, paper_loss, options):
    features, labels, weights = _batch(seed=1)
    head = _head(name, weights, **{{"s": "scale", "m": "margin"}[k]: v for k, v in options.items()})
    assert _head_mean(head, features, labels) == pytest.approx(paper_loss(features, labels, weights, **options),
                                                               rel=TOLERANCE)


def test_head_logits_are_the_margin_free_logits_the_predictions_come_from():
    features, labels, weights = _batch()
    cosine = _cosines(features, weights)
    x = torch.tensor(features)
    np.testing.assert_allclose(_head("arcface", weights).head_module(x).detach().numpy(), 64 * cosine, rtol=1e-12)
    np.testing.assert_allclose(_head("sphereface", weights).head_module(x).detach().numpy(),
                               np.linalg.norm(features, axis=1)[:, None] * cosine, rtol=1e-12)


def _unit(degrees, norm=3.0):
    """Points at these angles on a circle of radius `norm` (the pair losses normalize them)."""
    radians = np.radians(degrees)
    return torch.tensor(norm * np.stack([np.cos(radians), np.sin(radians)], axis=1))


def _pair_loss(name):
    return TrainingObjective(CellConfig(pair_loss=name, feat_dim=2), 2)


def test_contrastive_loss_on_a_hand_checked_batch():
    # Class 0 at 0 and 60 degrees, class 1 at 30 and 180. Same-class pairs 1 - cos: 1 - cos 60 = 0.5 (twice, one per
    # order) and 1 - cos 150 = 1.866 (twice): their mean 1.183. Different-class pairs max(0, cos - 0): cos 30 = 0.866
    # for (0, 30) and (60, 30), each twice; cos 180 and cos 120 are negative, so zero and left out: mean 0.866.
    loss = _pair_loss("contrastive").pair_loss(_unit([0, 60, 30, 180]), torch.tensor([0, 0, 1, 1]))
    expected = ((1 - math.cos(math.radians(60))) + (1 - math.cos(math.radians(150)))) / 2 + math.cos(math.radians(30))
    assert float(loss) == pytest.approx(expected, rel=1e-12)  # 2.0490


def test_triplet_loss_takes_the_semi_hard_triplets_on_a_hand_checked_batch():
    # a at 0 degrees and p at 40 (class 0), n at 45 (class 1). Triplet (a, p, n): c(a,p) - c(a,n) = cos 40 - cos 45
    # = 0.059, in (0, 0.1]: semi-hard, loss cos 45 - cos 40 + 0.1 = 0.041. Triplet (p, a, n): cos 40 - cos 5 < 0,
    # hard, left out by the miner (its loss 0.330 would raise the mean to 0.186). n has no positive.
    loss = _pair_loss("triplet").pair_loss(_unit([0, 40, 45]), torch.tensor([0, 0, 1]))
    expected = math.cos(math.radians(45)) - math.cos(math.radians(40)) + 0.1
    assert float(loss) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", [name for name, head in HEADS.items() if head.library_class is not None])
def test_a_learned_heads_weights_are_trained_by_the_models_optimizer(name):
    config = CellConfig(head=name, feat_dim=DIM)
    model = build_model("mlp", (8,), DIM, CLASSES)
    objective = TrainingObjective(config, CLASSES)
    objective.attach(model)
    weights = objective.head_module.loss.W
    optimizer = make_optimizer(config, model)
    assert any(p is weights for group in optimizer.param_groups for p in group["params"])
    before = weights.detach().clone()
    features, logits = model(torch.randn(5, 8))
    objective.head_sum(features, logits, torch.tensor([0, 1, 2, 3, 0])).backward()
    optimizer.step()
    assert torch.equal(before, weights.detach()) is not HEADS[name].learned


# --- options ------------------------------------------------------------------------------------------------

def test_unset_parameters_take_the_papers_values_and_round_trip():
    arcface = CellConfig(head="arcface")
    assert (arcface.margin, arcface.scale, arcface.pair_margin, arcface.pair_weight) == (0.5, 64.0, None, None)
    assert CellConfig.from_dict(arcface.to_dict()) == arcface
    triplet = CellConfig(pair_loss="triplet")
    assert (triplet.margin, triplet.scale, triplet.pair_margin, triplet.pair_weight) == (None, None, 0.1, 1.0)
    assert {k: getattr(CellConfig(head=k), "margin") for k in HEADS} == {
        "softmax": None, "normface": None, "sphereface": 4.0, "cosface": 0.35, "arcface": 0.5}


@pytest.mark.parametrize("options, message", [
    ({"head": "sphereface", "margin": 2.5}, "must be an integer"),
    ({"head": "arcface", "margin": 2.0}, r"margin of arcface must lie in \[0, 1.5708\) rad, got 2"),
    ({"head": "cosface", "margin": -0.1}, "margin of cosface must lie in"),
    ({"head": "cosface", "scale": 0}, r"scale of cosface must lie in \(0.0, 3.40282e\+38\], got 0.0"),
    ({"head": "softmax", "margin": 0.3}, "softmax takes no margin"),
    ({"head": "normface", "margin": 0.3}, "normface takes no margin"),
    ({"pair_loss": "triplet", "batch_size": 10}, "batch_size must exceed the 10 trained classes"),
    ({"pair_loss": "contrastive", "batch_size": 8, "holdout_classes": 2}, "exceed the 8 trained classes"),
    ({"pair_loss": "none", "pair_weight": 0.5}, "no pair loss to weigh"),
    ({"pair_loss": "triplet", "pair_weight": 0}, "pair_weight must be > 0"),
    ({"pair_loss": "triplet", "pair_margin": 3}, "pair_margin of triplet must lie in"),
    ({"pair_margin": 0.2}, "none takes no pair_margin"),
    ({"head": "arcface", "nproc": 2}, "one process only"),
])
def test_invalid_combinations_are_refused_with_the_reason(options, message):
    with pytest.raises(ValueError, match=message):
        CellConfig(**options)


def test_cli_refuses_an_invalid_combination_in_one_line():
    result = CliRunner().invoke(main, ["train", "--head", "sphereface", "--margin", "1.5"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "margin of sphereface must be an integer" in result.output


def test_the_objective_is_named_in_full():
    config = CellConfig(head="arcface", lambda_=0.01, convention="half_mean", rule="paper", alpha=0.5).to_dict()
    assert describe_objective(config) == (
        "arcface m=0.5 rad s=64 + center lambda=0.01 (half_mean, paper rule, alpha 0.5)")
    assert describe_objective(CellConfig(lambda_=0).to_dict()) == "softmax"
    assert describe_objective(CellConfig(pair_loss="triplet", lambda_=0).to_dict()) == (
        "softmax + triplet x1 (m=0.1, semihard TripletMarginMiner)")
    assert describe_objective({"lambda": 0.1, "convention": "mean", "rule": "sgd", "alpha": 0.5}) == (
        "softmax + center lambda=0.1 (mean, sgd rule, alpha 0.5)")  # a record from before heads existed


def test_every_registry_entry_names_a_class_the_library_has():
    from pytorch_metric_learning import distances, losses, miners

    for entry in (*HEADS.values(), *PAIR_LOSSES.values()):
        assert entry.library_class is None or hasattr(losses, entry.library_class)
    for pair in PAIR_LOSSES.values():
        assert hasattr(distances, pair.distance) and (pair.miner is None or hasattr(miners, pair.miner))


def test_the_losses_grid_holds_every_objective_alone_and_with_center_loss():
    from ablate.grid import expand, load_spec

    cells = expand(load_spec("losses"))
    objectives = {(c["head"], c["pair_loss"], c["lambda"]) for c in cells}
    assert objectives == {*((head, "none", lam) for head in HEADS for lam in (0, 0.01, 0.1)),
                          ("softmax", "contrastive", 0), ("softmax", "triplet", 0)}
    assert {(c["dataset"], c["feat_dim"]) for c in cells} == {("digits", 2), ("digits", 64)}
    assert {c["seed"] for c in cells} == set(range(5)) and len(cells) == len(objectives) * 2 * 5


@pytest.mark.slow
@pytest.mark.parametrize("options, objective", [
    (["--head", "arcface", "--lambda", "0"], "arcface m=0.5 rad s=64"),
    # Center loss on the raw features with a head that normalizes them diverges at 2-D features (the head's first
    # steps blow the feature norm up, then center loss's squared distances): it trains at 64-D (see the README).
    (["--head", "cosface", "--lambda", "0.01", "--feat-dim", "64"],
     "cosface m=0.35 s=64 + center lambda=0.01 (mean, paper rule, alpha 0.5)"),
    (["--head", "softmax", "--pair-loss", "triplet", "--lambda", "0"],
     "softmax + triplet x1 (m=0.1, semihard TripletMarginMiner)"),
])
def test_train_writes_a_record_naming_the_objective(tmp_path, options, objective):
    out = tmp_path / "record.json"
    result = CliRunner().invoke(main, ["train", "--dataset", "digits", *options, "--lr", "0.01", "--epochs", "2",
                                       "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["objective"] == objective
    assert record["status"] == "ok", record["diverged_epoch"]
    assert 0.1 < record["test_accuracy"] <= 1.0  # better than chance over 10 classes, from the head's own logits
