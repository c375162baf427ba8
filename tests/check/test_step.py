"""`ablate check TARGET --step STEP`: which rule a training step applies to the centers, at which alpha, and what else
moves them, judged on step functions written the ways users write them (tests/support/check_steps/, one pattern per
file).

Most tests run the harness in this process (ablate.check.step.LocalSteps, what the check's child process serves);
the command-line tests run it through the child, as users do.
"""

import json

import pytest
from click.testing import CliRunner

from ablate.check.step import STEP_PLAN, LocalSteps
from ablate.check.target import TargetError, load_target
from ablate.check.update_verdict import judge_update
from ablate.cli import main
from ablate.loss import RULES, Rule
from tests.support import SUPPORT, registered
from tests.support.check_steps import merged_optimizer_momentum, merged_optimizer_weight_decay, popular_step

STEPS = SUPPORT / "check_steps"
POPULAR = f"{SUPPORT / 'check_targets.py'}:PopularCenterLoss"
# A fitted alpha against the one the step was written with. The fit's residual is about 1e-7 of the motion (float32
# rounding of one step), and alpha's relative error is of that order; 1e-5 leaves a hundredfold margin.
ALPHA_RTOL = 1e-5


def judged(step: str, target: str = POPULAR, centers: str | None = None, **init):
    """The UpdateVerdict of tests/support/check_steps/STEP (file:func), a path/to/file.py:func or a built-in STEP, with
    {check: finding} of its update rows."""
    init = {"use_gpu": False, **init} if target == POPULAR else init
    spec = step if step in ("forward", "update") or "/" in step else str(STEPS / step)
    verdict = judge_update(LocalSteps(load_target(target, init)), spec, centers)
    return verdict, {f.check: f for f in verdict.findings if f.section == "update"}


def check(*args):
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.output


def test_the_popular_step_is_sgd_at_lr_cent_independent_of_lambda(tmp_path):
    path = tmp_path / "verdicts.json"
    code, output = check(POPULAR, "--init", "use_gpu=False", "--step", f"{STEPS / 'popular_step.py'}:train_step",
                         "--json", str(path))
    assert code == 0, output
    assert "sgd, alpha = 0.5, independent of lambda: a known rule, applied consistently" in output
    update = json.loads(path.read_text())["update"]
    assert update["consistent"] and update["rule"] == "sgd" and update["lambda_form"] == "independent"
    assert update["convention"] == "sum/B"  # sgd's alpha is the lr under the loss's own convention
    assert all(a == pytest.approx(popular_step.LR_CENT, rel=ALPHA_RTOL) for a in update["alpha"].values())
    assert update["weight_decay"] is None and update["momentum"] is None
    assert update["duplicates"] == "summed from the old centers"
    # the JSON carries every hypothesis fitted and each step with its rounding floor
    assert {f["rule"] for f in update["fits"]} == set(RULES.names())
    assert len(update["steps"]) == len(STEP_PLAN)
    assert all(0 < s["rounding_floor"] < 1e-3 * s["motion"] for s in update["steps"])


def test_the_popular_step_without_the_rescale_is_lambda_dependent():
    verdict, rows = judged("popular_step_without_rescale.py:train_step")
    assert not verdict.consistent
    assert rows["rule"].verdict == "sgd" and rows["alpha"].verdict == "0.5 x lambda, lambda-dependent"
    assert verdict.facts["lambda_form"] == "proportional"
    assert verdict.facts["alpha_per_lambda"] == pytest.approx(0.5, rel=ALPHA_RTOL)
    assert "not divided by lambda" in rows["alpha"].detail


def test_centers_in_no_optimizer_never_move(tmp_path):
    path = tmp_path / "verdicts.json"
    code, output = check(POPULAR, "--init", "use_gpu=False", "--step",
                         f"{STEPS / 'centers_in_no_optimizer.py'}:train_step", "--json", str(path))
    assert code == 1 and "centers_in_no_optimizer.py:train_step: centers never move" in output, output
    verdicts = json.loads(path.read_text())
    assert not verdicts["agrees"] and verdicts["update"]["moves"] is False
    assert all(s["motion"] == 0 for s in verdicts["update"]["steps"])


def test_a_rate_below_rounding_is_not_called_never_moving():
    verdict, rows = judged("rate_below_rounding.py:train_step")
    assert not verdict.consistent and rows["rule"].verdict == "motion within rounding", rows["rule"]


def test_facenets_moving_average_is_ema_with_its_rate():
    from tests.support.check_steps.facenet_moving_average import CENTER_LOSS_ALFA

    verdict, rows = judged("facenet_moving_average.py:train_step",
                           target=f"{STEPS / 'facenet_moving_average.py'}:FaceNetCenterLoss")
    assert verdict.consistent, verdict.summary
    assert rows["rule"].verdict == "ema"
    alpha = float(rows["alpha"].verdict.split(",")[0])
    assert alpha == pytest.approx(1 - CENTER_LOSS_ALFA, rel=ALPHA_RTOL)
    assert "alpha = 1 - decay" in rows["rule"].detail  # the registry's words for the rule
    assert verdict.convention is None  # its loss, a mean over B x D, is none of the conventions; ema needs none


def test_the_papers_eq4_is_named_with_its_alpha():
    verdict, rows = judged("paper_eq4.py:train_step")
    assert verdict.consistent, verdict.summary
    assert rows["rule"].verdict == "paper" and rows["alpha"].verdict == "0.5, independent of lambda"
    assert rows["duplicate labels"].verdict == "summed from the old centers"
    assert rows["absent classes"].verdict == "stay put"


def test_duplicates_one_after_another_are_told_apart_from_eq4():
    verdict, rows = judged("duplicates_one_after_another.py:train_step")
    assert not verdict.consistent
    assert rows["rule"].verdict == "paper, one sample after another" and rows["rule"].passed is False
    assert rows["duplicate labels"].verdict == "one after another" and rows["duplicate labels"].passed is False
    plain_eq4 = next(f for f in verdict.fit.fits if f.hypothesis.rule == "paper" and not f.hypothesis.sequential
                     and not f.hypothesis.extras and f.hypothesis.lambda_form == "independent")
    assert not plain_eq4.fits and plain_eq4.worst > 100  # Eq. 4 itself misses by far more than rounding


def test_weight_decay_on_the_centers_is_detected():
    verdict, rows = judged("merged_optimizer_weight_decay.py:train_step")
    assert not verdict.consistent
    expected = merged_optimizer_weight_decay.LR * merged_optimizer_weight_decay.WEIGHT_DECAY
    # omega is read off the absent classes' motion, known to about the floor over their norm (~1e-6 here): 2%
    assert verdict.facts["weight_decay"] == pytest.approx(expected, rel=0.02)
    assert rows["weight decay"].passed is False and rows["absent classes"].verdict == "move"
    assert "weight decay" in rows["absent classes"].detail
    assert rows["rule"].verdict == "sgd" and rows["alpha"].verdict == "0.5, independent of lambda"
    assert verdict.facts["momentum"] is None


def test_momentum_on_the_centers_is_detected():
    verdict, rows = judged("merged_optimizer_momentum.py:train_step")
    assert not verdict.consistent
    # mu is read off each step's carry of the previous motion (about 0.4 in norm), known to ~1e-5 of it
    assert verdict.facts["momentum"] == pytest.approx(merged_optimizer_momentum.MOMENTUM, abs=1e-3)
    assert rows["momentum"].passed is False and "momentum" in rows["absent classes"].detail
    assert verdict.facts["weight_decay"] is None and rows["alpha"].verdict == "0.5, independent of lambda"


def test_adam_is_none_of_the_known_rules_with_the_residual():
    verdict, rows = judged("adam_on_centers.py:train_step")
    assert not verdict.consistent and verdict.fit.named is None
    assert rows["rule"].verdict == "none of the known rules" and "residual" in rows["rule"].detail
    assert verdict.fit.closest.residual > 0.01  # far outside rounding, not a near miss


def test_a_step_that_raises_is_a_finding_naming_the_step():
    verdict, rows = judged("calls_a_missing_update.py:train_step")
    assert not verdict.consistent and rows["rule"].verdict == "step raises"
    assert rows["rule"].detail.startswith("step 1 of 6 (B=8, lambda 1): AttributeError:"), rows["rule"].detail


def test_centers_turned_nan_by_absent_classes_are_named():
    verdict, rows = judged("mean_over_every_class.py:train_step")
    assert not verdict.consistent and rows["rule"].verdict == "non-finite centers"
    assert "after step 1 of 6" in rows["rule"].detail and len(verdict.observations) == 1  # the plan stops there


def test_a_module_that_moves_its_centers_in_forward():
    from tests.support.check_steps.moves_in_forward import ALPHA

    verdict, rows = judged("forward", target=f"{STEPS / 'moves_in_forward.py'}:MovingCenterLoss")
    assert verdict.consistent and rows["rule"].verdict == "ema"
    assert float(rows["alpha"].verdict.split(",")[0]) == pytest.approx(ALPHA, rel=ALPHA_RTOL)


@pytest.mark.parametrize("rule", RULES.names())
def test_every_registered_rule_is_named_through_its_own_update_method(rule):
    verdict, rows = judged("update", target="ablate.loss:CenterLoss", rule=rule, alpha=0.25)
    assert verdict.consistent, verdict.summary
    assert rows["rule"].verdict == rule and rows["alpha"].verdict == "0.25, independent of lambda"


def test_a_rule_registered_later_is_fitted_and_named():
    root_normalized = Rule("root", "c_j -= alpha * delta_j / sqrt(1 + n_j)", "a test rule",
                           step=lambda alpha, counts, scale: alpha / (1.0 + counts) ** 0.5,
                           reference=lambda old, members, alpha, scale: old - alpha * sum(old - x for x in members) / (
                               1 + len(members)) ** 0.5, max_alpha=1.0)
    with registered((RULES, root_normalized)):
        verdict, rows = judged("update", target="ablate.loss:CenterLoss", rule="root", alpha=0.3)
    assert verdict.consistent and rows["rule"].verdict == "root", verdict.summary
    assert rows["alpha"].verdict == "0.3, independent of lambda"


def test_a_rule_that_moves_as_another_is_named_beside_it():
    halved = Rule("halved", "c_j -= alpha * delta_j / (2 (1 + n_j))", "Eq. 4 at half the step",
                  step=lambda alpha, counts, scale: alpha / (2.0 * (1.0 + counts)),
                  reference=lambda old, members, alpha, scale: old - alpha * sum(old - x for x in members) / (
                      2 * (1 + len(members))), max_alpha=1.0)
    with registered((RULES, halved)):
        verdict, rows = judged("paper_eq4.py:train_step")
    assert verdict.consistent and rows["rule"].verdict == "paper"  # the registry's order decides the name
    assert "moves exactly as halved at alpha 1" in rows["rule"].detail


def test_the_centers_can_be_named():
    target = f"{STEPS / 'two_tables.py'}:TwoTableCenterLoss"
    with pytest.raises(TargetError, match="found 2: centers, feature_sums; name the centers with --centers"):
        judged("popular_step.py:train_step", target=target)
    verdict, rows = judged("popular_step.py:train_step", target=target, centers="centers")
    assert verdict.consistent and rows["rule"].verdict == "sgd"
    assert verdict.convention == "sum/B"  # the loss calls found the same tensor
    verdict, rows = judged("popular_step.py:train_step", target=target, centers="feature_sums")
    assert rows["rule"].verdict == "none of the known rules"  # a running sum: it moves, but by no rule


@pytest.mark.parametrize("target, step, message", [
    ("gather", "popular_step.py:train_step", "gather is a variant, expected an nn.Module class"),
    (POPULAR, "nothing", "--step expects path/to/file.py:func, pkg.mod:func, forward or update"),
    (POPULAR, "popular_step.py:missing", "has no function 'missing'"),
    (POPULAR, "no_such_file.py:f", "no such file"),
    (POPULAR, "update", "PopularCenterLoss has no update method"),
    (f"{STEPS / 'two_tables.py'}:TwoTableCenterLoss", "popular_step.py:train_step", "--centers"),
])
def test_a_step_that_cannot_run_is_a_usage_error_naming_what_was_expected(target, step, message):
    with pytest.raises(TargetError, match=message.replace(".", r"\.")):
        judged(step, target=target)


def test_a_step_of_the_wrong_signature_is_refused():
    a_loss = f"{SUPPORT / 'check_targets.py'}:nan_for_a_batch_of_one"  # (features, labels, centers)
    with pytest.raises(TargetError, match=r"must take \(module, features, labels, lam\), its signature is"):
        judged(a_loss)


@pytest.mark.parametrize("options, hint", [
    (["--step", "update", "--timing"], "--timing"),
    (["--step", "update", "--variants", "gather"], "--variants"),
    (["--centers", "centers"], "--centers"),
])
def test_options_that_do_not_go_with_step_are_refused_before_any_work(options, hint):
    code, output = check(POPULAR, *options)
    assert code == 2 and hint in output, output


def test_a_step_that_hangs_is_stopped_and_named():
    code, output = check(POPULAR, "--init", "use_gpu=False", "--step", f"{STEPS / 'never_returns.py'}:never_returns",
                         "--timeout", "3")
    assert code == 1 and "hung in the training step 1 of 6 (B=8, lambda 1)" in output and "3 s" in output, output
