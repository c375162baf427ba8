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
from ablate.train import CellConfig, run_cell
from ablate.train.heads import TrainingObjective
from ablate.train.loop import make_optimizer

ANNEALING_KEYS = ("anneal_base", "anneal_gamma", "anneal_power", "anneal_min")
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


def psi(theta, m):
    """SphereFace's Eq. 6: (-1)^k cos(m theta) - 2k for theta in [k pi / m, (k + 1) pi / m]."""
    k = np.floor(theta * m / math.pi)
    return (-1.0) ** k * np.cos(m * theta) - 2 * k


def sphereface_loss(features, labels, weights, m=4, s=1.0, weight=0.0):
    """A-Softmax (Liu et al. 2017, Eq. 7) as its released training computes it (the Caffe layer
    margin_inner_product): logits ||x|| cos theta_j, target ||x|| (weight cos theta_y + psi(theta_y)) / (1 + weight),
    weight being the annealed lambda (0: the paper's Eq. 7 itself); pml multiplies every logit by s (1: the paper's
    form)."""
    cosine = _cosines(features, weights)
    norms = np.linalg.norm(features, axis=1)
    target = cosine[np.arange(len(labels)), labels]
    logits = s * norms[:, None] * cosine
    blended = (weight * target + psi(np.arccos(target), m)) / (1 + weight)
    logits[np.arange(len(labels)), labels] = s * norms * blended
    return _cross_entropy(logits, labels)


def cosface_scale_bound(classes, probability=0.9):
    """CosFace's Eq. 8: the least s at which C classes' normalized softmax can reach the target probability P."""
    return (classes - 1) / classes * math.log((classes - 1) * probability / (1 - probability))


def sphereface_lambda(step, base=1000.0, gamma=0.12, power=1.0, minimum=5.0):
    """The annealed lambda of SphereFace's released training (sphereface_model.prototxt: base 1000, gamma 0.12,
    power 1, lambda_min 5), as its Caffe layer computes it at its step-th forward (1 for the first)."""
    return max(minimum, base * (1 + gamma * step) ** -power)


def _head(name: str, weights, **options) -> TrainingObjective:
    """The cell's head on CLASSES classes of DIM-dimensional features, its weights set to `weights` (CLASSES, DIM);
    its recipe's values (those of a digits cell, 10 classes) where options leave them unset."""
    config = CellConfig(head=name, feat_dim=DIM, **options)
    objective = TrainingObjective(config, CLASSES)
    objective.head_module.double()
    with torch.no_grad():
        objective.head_module.loss.W.copy_(torch.tensor(weights.T))  # pml holds W as (D, C)
    return objective


def _head_mean(objective, features, labels) -> float:
    x, y = torch.tensor(features), torch.tensor(labels)
    return float(objective.head_sum(x, None, y).detach()) / len(labels)


DIGITS_SCALE = cosface_scale_bound(10)  # 3.955: the recipe's s of a digits cell (10 classes)
# Each head at its recipe's values: the papers' margins, s from the class count, SphereFace's lambda at its first
# training step (1000 / 1.12).
RECIPE_HEADS = [("normface", normface_loss, {"s": DIGITS_SCALE}),
                ("cosface", cosface_loss, {"s": DIGITS_SCALE}),
                ("arcface", arcface_loss, {"s": DIGITS_SCALE}),
                ("sphereface", sphereface_loss, {"weight": sphereface_lambda(1)})]


@pytest.mark.parametrize("name, paper_loss, recipe", RECIPE_HEADS)
def test_head_loss_at_its_recipe_is_the_papers_equation(name, paper_loss, recipe):
    features, labels, weights = _batch()
    expected = paper_loss(features, labels, weights, **recipe)  # the papers' margins in each function's defaults
    assert _head_mean(_head(name, weights), features, labels) == pytest.approx(expected, rel=TOLERANCE)


@pytest.mark.parametrize("name, paper_loss, options", [
    ("normface", normface_loss, {"s": 8.0}), ("cosface", cosface_loss, {"s": 30.0, "m": 0.2}),
    ("arcface", arcface_loss, {"s": 30.0, "m": 0.3}), ("sphereface", sphereface_loss, {"m": 2, "s": 1.5})])
def test_head_loss_follows_its_margin_and_scale_options(name, paper_loss, options):
    features, labels, weights = _batch(seed=1)
    head = _head(name, weights, **{{"s": "scale", "m": "margin"}[k]: v for k, v in options.items()})
    expected = paper_loss(features, labels, weights, **options,
                          **({"weight": sphereface_lambda(1)} if name == "sphereface" else {}))
    assert _head_mean(head, features, labels) == pytest.approx(expected, rel=TOLERANCE)


# --- SphereFace's annealing -------------------------------------------------------------------------------

def test_sphereface_without_annealing_is_the_papers_psi_over_every_angle_range():
    # Targets at angles across all four ranges [k pi / 4, (k + 1) pi / 4] of psi (k = 0..3), so that the sign and
    # the -2k of Eq. 6 are each exercised; lambda held at 0 (anneal_base 0, anneal_min 0): the paper's Eq. 7.
    weights = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.2, 0.1]])
    angles = np.array([0.3, 1.0, 1.8, 2.6, 3.0])  # radians from class 0's weight: k = 0, 1, 2, 3, 3
    features = 2.5 * np.stack([np.cos(angles), np.sin(angles), 0.1 * np.ones_like(angles)], axis=1)
    labels = np.zeros(len(angles), dtype=int)
    theta = np.arccos(_cosines(features, weights)[:, 0])
    assert set(np.floor(theta * 4 / math.pi).astype(int)) == {0, 1, 2, 3}
    head = _head("sphereface", weights, anneal_base=0.0, anneal_min=0.0)
    assert _head_mean(head, features, labels) == pytest.approx(sphereface_loss(features, labels, weights),
                                                               rel=TOLERANCE)


def test_sphereface_anneals_lambda_by_its_released_schedule_step_by_step():
    features, labels, weights = _batch(seed=2)
    head = _head("sphereface", weights)
    # The floor is reached where 1000 / (1 + 0.12 t) falls below 5: t > 1658.33.
    for step in (*range(1, 6), 200, 1658, 1659, 5000):
        head.head_module.loss.steps = step - 1  # the steps between: the schedule depends on the count alone
        loss = _head_mean(head, features, labels)
        assert head.annealing_weight() == sphereface_lambda(step), step
        expected = sphereface_loss(features, labels, weights, weight=sphereface_lambda(step))
        assert loss == pytest.approx(expected, rel=TOLERANCE), step
    assert sphereface_lambda(1658) > 5.0 and sphereface_lambda(1659) == 5.0


def test_sphereface_follows_its_annealing_options():
    features, labels, weights = _batch(seed=3)
    options = {"anneal_base": 50.0, "anneal_gamma": 0.5, "anneal_power": 2.0, "anneal_min": 0.5}
    head = _head("sphereface", weights, **options)
    for step in (1, 2, 3, 20):
        head.head_module.loss.steps = step - 1
        loss = _head_mean(head, features, labels)
        weight = sphereface_lambda(step, base=50.0, gamma=0.5, power=2.0, minimum=0.5)
        assert loss == pytest.approx(sphereface_loss(features, labels, weights, weight=weight), rel=TOLERANCE)
    assert weight == 0.5  # 50 / 11^2 = 0.41: on the floor by step 20


def test_sphereface_predictions_and_the_steps_count_only_training():
    features, labels, weights = _batch()
    head = _head("sphereface", weights)
    x = torch.tensor(features)
    np.testing.assert_allclose(head.head_module(x).detach().numpy(),
                               np.linalg.norm(features, axis=1)[:, None] * _cosines(features, weights), rtol=1e-12)
    assert head.head_module.loss.steps == 0  # the logits the predictions come from take no step
    assert TrainingObjective(CellConfig(head="arcface"), CLASSES).annealing_weight() is None


# --- recipes ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, classes", [
    ({}, 10), ({"holdout_classes": 3}, 7), ({"dataset": "synthetic", "num_classes": 100}, 100)])
@pytest.mark.parametrize("head", ["normface", "cosface", "arcface"])
def test_the_scale_of_a_normalized_head_is_cosface_bound_at_the_trained_classes(head, options, classes):
    config = CellConfig(head=head, **options)
    assert config.scale == pytest.approx(cosface_scale_bound(classes), rel=1e-15)
    assert config.scale < 64
    assert CellConfig(head=head, scale=64.0, **options).scale == 64.0  # given: taken as it is


def test_the_recipes_feature_size_and_embedding_norm():
    assert {head: CellConfig(head=head).feat_dim for head in HEADS} == {
        "softmax": 2, "normface": 512, "sphereface": 512, "cosface": 512, "arcface": 512}
    assert {head: CellConfig(head=head).embedding_norm for head in HEADS} == {
        "softmax": "none", "normface": "none", "sphereface": "none", "cosface": "none", "arcface": "batchnorm"}
    given = CellConfig(head="arcface", feat_dim=2, embedding_norm="none")
    assert (given.feat_dim, given.embedding_norm) == (2, "none")
    assert CellConfig.from_dict(given.to_dict()) == given


def test_head_logits_are_the_margin_free_logits_the_predictions_come_from():
    features, labels, weights = _batch()
    cosine = _cosines(features, weights)
    x = torch.tensor(features)
    np.testing.assert_allclose(_head("arcface", weights).head_module(x).detach().numpy(), DIGITS_SCALE * cosine,
                               rtol=1e-12)
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

def test_unset_parameters_take_their_recipes_values_and_round_trip():
    arcface = CellConfig(head="arcface")
    assert (arcface.margin, arcface.scale, arcface.pair_margin, arcface.pair_weight) == (
        0.5, pytest.approx(DIGITS_SCALE), None, None)
    assert arcface.anneal_base is None
    sphereface = CellConfig(head="sphereface")
    assert (sphereface.anneal_base, sphereface.anneal_gamma, sphereface.anneal_power, sphereface.anneal_min) == (
        1000.0, 0.12, 1.0, 5.0)
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
    ({"head": "softmax", "embedding_norm": "batchnorm", "nproc": 2}, "embedding_norm batchnorm trains in one process"),
    ({"head": "cosface", "anneal_base": 10}, "cosface takes no anneal_base"),
    ({"head": "sphereface", "anneal_min": -1}, r"anneal_min of sphereface must lie in \[0, 3.40282e\+38\], got -1"),
    ({"embedding_norm": "layernorm"}, "unknown embedding_norm 'layernorm'; expected one of none, batchnorm"),
    ({"center_space": "unit"}, "unknown center_space 'unit'; expected one of raw, normalized"),
    ({"head": "arc"}, "unknown head 'arc'; expected one of softmax, normface"),
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
        "arcface m=0.5 rad s=3.955 embedding batchnorm + center lambda=0.01 (half_mean, paper rule, alpha 0.5)")
    assert describe_objective(CellConfig(head="sphereface", lambda_=0.1, center_space="normalized").to_dict()) == (
        "sphereface m=4 s=1 lambda0=1000 gamma=0.12 power=1 lambda_min=5 + center lambda=0.1 (mean, paper rule, "
        "alpha 0.5, normalized features)")
    assert describe_objective({"head": "arcface", "margin": 0.5, "scale": 64.0}) == "arcface m=0.5 rad s=64"
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


def test_a_sphereface_record_holds_lambda_at_each_epochs_end_by_the_schedule():
    # 4 x 30 synthetic samples, a fifth held out for test and none for validation: 96 to train on, 6 batches of 16
    # an epoch.
    config = CellConfig(dataset="synthetic", num_classes=4, synthetic_dim=6, samples_per_class=30, epochs=2,
                        batch_size=16, device="cpu", head="sphereface", feat_dim=3, val_fraction=0.0)
    record = run_cell(config)
    assert record["curve_annealing_weight"] == [sphereface_lambda(6), sphereface_lambda(12)]
    cosface = {**config.to_dict(), "head": "cosface", "margin": None, "scale": None, **dict.fromkeys(ANNEALING_KEYS)}
    assert "curve_annealing_weight" not in run_cell(CellConfig.from_dict(cosface))


@pytest.mark.parametrize("center_space", ["raw", "normalized"])
def test_center_loss_works_in_the_cells_center_space(tmp_path, center_space):
    # Eq. 4 moves each center toward the mean of its class's features in that space: in the normalized space the
    # centers end in the unit ball (means of unit vectors), and the nearest-center accuracy compares them with the
    # unit features. 10 epochs: after 3, raw features still sit near unit norm and the two spaces' means coincide.
    config = CellConfig(dataset="synthetic", num_classes=4, synthetic_dim=6, samples_per_class=30, epochs=10,
                        batch_size=16, device="cpu", feat_dim=3, lambda_=0.1, center_space=center_space)
    record = run_cell(config, features_path=tmp_path / "cell.npz")
    assert record["center_space"] == center_space and record["status"] == "ok"
    with np.load(tmp_path / "cell.npz") as saved:
        features, labels, centers = saved["features"], saved["labels"], saved["centers"]
    norms = np.linalg.norm(features, axis=1)
    in_space = features / norms[:, None] if center_space == "normalized" else features
    nearest = np.argmin(((in_space[:, None, :] - centers[None]) ** 2).sum(axis=2), axis=1)
    assert record["nearest_center_accuracy"] == pytest.approx(np.mean(nearest == labels), abs=1e-12)
    # Each center lies nearer its class's mean in the cell's own space than its mean in the other space.
    spaces = {"raw": features, "normalized": features / norms[:, None]}
    other = "raw" if center_space == "normalized" else "normalized"
    present = np.unique(labels)

    def distance_to_class_means(space):
        means = np.stack([spaces[space][labels == c].mean(axis=0) for c in present])
        return np.linalg.norm(centers[present] - means, axis=1).mean()

    assert distance_to_class_means(center_space) < distance_to_class_means(other)
    if center_space == "normalized":
        assert np.linalg.norm(centers, axis=1).max() <= 1 + 1e-3 < norms.mean()  # the raw features are larger


@pytest.mark.slow
@pytest.mark.parametrize("head", list(HEADS))
def test_train_with_only_the_head_given_trains_far_above_chance(tmp_path, head):
    # Every other option left out: digits, the head's recipe (feature size, scale, embedding norm, SphereFace's
    # annealing), center loss at the default lambda 0.1. Measured at seeds 0-2: 0.93-0.96 for softmax (2-D),
    # 0.97-0.99 for the others (512-D); 0.9 is nine times chance (0.1) and leaves room for the float sums' order.
    out = tmp_path / "record.json"
    result = CliRunner().invoke(main, ["train", "--head", head, "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["status"] == "ok" and record["test_accuracy"] > 0.9, record["test_accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("options, objective", [
    (["--head", "arcface", "--lambda", "0"], "arcface m=0.5 rad s=3.955 embedding batchnorm"),
    (["--head", "cosface", "--lambda", "0.01", "--feat-dim", "64"],
     "cosface m=0.35 s=3.955 + center lambda=0.01 (mean, paper rule, alpha 0.5)"),
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
