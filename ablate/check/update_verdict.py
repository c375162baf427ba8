"""The verdict of `ablate check TARGET --step STEP`: which rule the step applies, at which alpha, and what else moves
the centers, as findings for the table, a sentence, the exit status and the JSON.

    judge_update(runner, spec, centers_attr) -> UpdateVerdict

The step applies a known rule consistently (exit status 0) when the centers move, one rule of the registry with one
alpha in its range explains every step (both lambdas, both batch compositions, the batch of one) within rounding,
duplicates summed from the centers before the step, and nothing else moves them (no weight decay, no momentum).
"""

from dataclasses import dataclass, field
from typing import Optional

import torch

from ablate.check.step import describe_step, observe_steps, start_plan
from ablate.check.suite import Finding, identify_convention
from ablate.check.update_fit import Fit, UpdateFit, fit_update, motion, rounding_floor
from ablate.loss.rules import RULES

FALLBACK_CONVENTION = "sum/B"  # sgd's gradient scale when the loss matches no convention: the most used one
# A summed and a one-after-another motion more than 2 floors apart cannot both lie within 1 floor of the observation.
SEPARATION_FLOORS = 2.0


def _number(value: float) -> str:
    return f"{value:.4g}"


def _alphas(alphas: dict) -> str:
    return ", ".join(f"{_number(a)} at lambda {lam:g}" for lam, a in alphas.items())


def _alpha_text(fit) -> str:
    """'alpha 0.5', or 'alpha 0.5 at lambda 1, 0.05 at lambda 0.1' when it depends on lambda."""
    if fit.hypothesis.lambda_form == "independent":
        return f"alpha {_number(next(iter(fit.alphas.values())))}"
    return f"alpha {_alphas(fit.alphas)}"


@dataclass
class UpdateVerdict:
    """What the step does to the centers. consistent: it applies a known rule consistently (exit status 0);
    summary: the sentence after the table; findings: the table's rows; fit: every hypothesis fitted (None when the
    centers never moved or a step failed)."""

    consistent: bool
    summary: str
    findings: list
    convention: Optional[str]
    observations: list
    fit: Optional[UpdateFit] = None
    facts: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        """The fit and the steps, for --json."""
        steps = [{"step": describe_step(k), "batch": o.batch, "lambda": o.lam, "dtype": o.dtype, "error": o.error,
                  "motion": None if o.after is None else float(motion(o).norm()),
                  "rounding_floor": None if o.after is None else rounding_floor(o)}
                 for k, o in enumerate(self.observations)]
        fits = [] if self.fit is None else [_fit_json(f) for f in self.fit.fits]
        return {"consistent": self.consistent, "summary": self.summary, "convention": self.convention,
                **self.facts, "steps": steps, "fits": fits}


def _fit_json(fit) -> dict:
    h = fit.hypothesis
    return {"rule": h.rule, "lambda_form": h.lambda_form, "extras": list(h.extras),
            "duplicates": "one after another" if h.sequential else "summed",
            "alpha": {f"{lam:g}": a for lam, a in fit.alphas.items()}, "alpha_per_lambda": fit.per_lambda,
            "weight_decay": fit.weight_decay, "momentum": fit.momentum, "residual": fit.residual,
            "worst_over_floor": fit.worst, "fits": fit.fits}


def _absent_motion(observations) -> tuple:
    """(the largest motion of classes absent from a step, in units of its floor; about the weakest weight decay and
    momentum the plan would show: the smallest floor per norm of absent centers, and of their previous motion)."""
    moved, decay_limit, momentum_limit = 0.0, float("inf"), float("inf")
    for t, o in enumerate(observations):
        absent = torch.ones(o.before.shape[0], dtype=torch.bool)
        absent[o.labels] = False
        if not absent.any():
            continue
        floor = rounding_floor(o)
        moved = max(moved, float(motion(o)[absent].norm()) / floor)
        decay_limit = min(decay_limit, floor / float(o.before[absent].norm()))
        carried = float(motion(observations[t - 1])[absent].norm()) if t else 0.0
        if carried > 0:
            momentum_limit = min(momentum_limit, floor / carried)
    return moved, decay_limit, momentum_limit


def _rule_rows(update: UpdateFit, fit: Fit, convention: str, convention_known: bool) -> list:
    """The rule, its alpha and how it treats duplicate labels, for the named fit (update.named)."""
    h, rule = fit.hypothesis, RULES.get(fit.hypothesis.rule)
    text = f"{rule.formula} ({rule.origin})"
    if rule.gradient_step:
        text += f" under {convention}" + ("" if convention_known else ", assumed: the loss matched no convention")
    same = "".join(f"; moves exactly as {f.hypothesis.rule} at {_alpha_text(f)}" for f in update.equivalent)
    rows = [Finding("update", "rule", h.rule + (", one sample after another" if h.sequential else ""),
                    not h.sequential, f"{text}; residual {fit.residual:.2g} of the motion, {fit.worst:.2g} of what "
                    f"rounding allows{same}")]
    in_range = fit.alpha_in_range()
    range_note = "" if in_range else f"; outside the rule's range [0, {rule.max_alpha:g}]"
    if h.lambda_form == "independent":
        meaning = (f"the centers' own learning rate (lr_cent) on dL_C/dc under {convention}, their gradient divided "
                   "by lambda" if rule.gradient_step else f"alpha of {rule.formula}")
        rows.append(Finding("update", "alpha", f"{_number(next(iter(fit.alphas.values())))}, independent of lambda",
                            in_range, meaning + range_note))
    elif h.lambda_form == "proportional":
        assert fit.per_lambda is not None  # the proportional form's k, set by its fit
        rows.append(Finding("update", "alpha", f"{_number(fit.per_lambda)} x lambda, lambda-dependent", False,
                            f"{_alphas(fit.alphas)}: the centers' rate changes with the loss weight"
                            + (", their gradient not divided by lambda" if rule.gradient_step else "") + range_note))
    else:
        rows.append(Finding("update", "alpha", "lambda-dependent", False, _alphas(fit.alphas) + range_note))
    if h.sequential:
        rows.append(Finding("update", "duplicate labels", "one after another", False,
                            "each sample moves its center from where the previous one left it; the rule takes every "
                            "delta from the centers before the step"))
    elif update.separation is not None and update.separation > SEPARATION_FLOORS:
        rows.append(Finding("update", "duplicate labels", "summed from the old centers", True,
                            f"one after another would differ by {update.separation:.3g} times rounding"))
    else:
        rows.append(Finding("update", "duplicate labels", "cannot tell", None,
                            "at this alpha, summing and one after another differ by less than rounding"))
    return rows


def _pull_rows(update: UpdateFit, observations) -> list:
    """Absent classes, weight decay and momentum: what moves the centers besides the rule."""
    fit = update.named
    extras = fit.hypothesis.extras if fit is not None else ()
    moved, decay_limit, momentum_limit = _absent_motion(observations)
    if moved <= 1.0:
        rows = [Finding("update", "absent classes", "stay put", True, "no step moved a class not in its batch")]
    else:
        causes = [e for e in ("weight decay", "momentum") if e in extras]
        rows = [Finding("update", "absent classes", "move", False, f"by {' and '.join(causes)}" if causes else
                        f"by {moved:.3g} times rounding, by no weight decay or momentum")]
    if fit is None:
        return rows
    if fit.weight_decay is not None:
        rows.append(Finding("update", "weight decay", f"{_number(fit.weight_decay)} per step", False,
                            "every center shrinks toward 0 by this share of itself each step (lr x weight_decay), in "
                            "the batch or not: give the centers weight_decay=0"))
    else:
        rows.append(Finding("update", "weight decay", "none", True,
                            f"none above rounding (a pull of about {decay_limit:.1g} x center per step would show)"))
    if fit.momentum is not None:
        rows.append(Finding("update", "momentum", _number(fit.momentum), False,
                            "each step carries this share of the previous one: a center keeps moving after its class "
                            "has left the batch; give the centers an optimizer without momentum"))
    else:
        rows.append(Finding("update", "momentum", "none", True,
                            f"none above rounding (about {momentum_limit:.1g} of the previous step would show)"))
    return rows


def _describe(update: UpdateFit, observations, convention: str, convention_known: bool) -> tuple:
    """(findings, facts, consistent) from the fit of steps that moved the centers."""
    fit = update.named
    facts: dict = {"moves": True}
    if fit is None:
        closest = update.closest
        rows = [Finding("update", "rule", "none of the known rules", False,
                        f"closest: {closest.hypothesis.rule}, residual {closest.residual:.3g} of the motion "
                        f"({closest.worst:.3g} times what rounding allows)")]
        facts.update(rule=None, residual=closest.residual)
    else:
        rows = _rule_rows(update, fit, convention, convention_known)
        h = fit.hypothesis
        facts.update(rule=h.rule, sequential=h.sequential, lambda_form=h.lambda_form,
                     alpha={f"{lam:g}": a for lam, a in fit.alphas.items()}, alpha_per_lambda=fit.per_lambda,
                     weight_decay=fit.weight_decay, momentum=fit.momentum, residual=fit.residual,
                     duplicates=rows[-1].verdict)
    rows += _pull_rows(update, observations)
    for rule, shown in update.shown_by_rule.items():
        h = shown.hypothesis
        form = ", ".join([h.lambda_form, *h.extras] + (["one after another"] if h.sequential else []))
        rows.append(Finding("fit", rule, f"residual {shown.residual:.2g}", None,
                            f"{_alpha_text(shown)} ({form}); {shown.worst:.3g} times rounding"))
    consistent = fit is not None and all(f.passed is not False for f in rows if f.section == "update")
    return rows, facts, consistent


def _summary(spec: str, findings, consistent: bool) -> str:
    by_check = {f.check: f for f in findings if f.section == "update"}
    rule = by_check["rule"]
    if "alpha" not in by_check:  # no rule fits
        return f"{spec}: {rule.verdict} ({rule.detail.split(' (')[0]})"
    head = f"{spec}: {rule.verdict}, alpha = {by_check['alpha'].verdict}"
    if consistent:
        return f"{head}: a known rule, applied consistently"
    wrong = [f"{f.check} {f.verdict}" for f in findings
             if f.section == "update" and f.passed is False and f.check not in ("rule", "alpha")]
    return f"{head}: not a known rule applied consistently" + (f" ({'; '.join(wrong)})" if wrong else "")


def judge_update(runner, spec: str, centers_attr: Optional[str]) -> UpdateVerdict:
    """Run the step harness through `runner` (ablate.check.step.LocalSteps or ablate.check.isolated.TargetProcess)
    and judge it. The loss's convention is identified first (ablate.check.suite), since sgd's alpha is read under
    it, once the session has started (so that --centers also names the centers of the loss calls)."""
    batches = start_plan(runner, spec, centers_attr)
    found, _ = identify_convention(runner)
    convention = found.name if found is not None else FALLBACK_CONVENTION
    findings = [Finding("convention", "loss", found.name if found else "none", None,
                        "sgd's alpha is read under it" if found else
                        f"the loss matched no convention; sgd's alpha is read under {FALLBACK_CONVENTION}")]
    observations = observe_steps(runner, batches)
    failed = next((k for k, o in enumerate(observations) if o.error), None)
    if failed is not None:
        findings.append(Finding("update", "rule", "step raises", False,
                                f"{describe_step(failed)}: {observations[failed].error}"))
        return UpdateVerdict(False, f"{spec}: the step raises in {describe_step(failed)}", findings,
                             found and found.name, observations, facts={"moves": None})
    last = observations[-1]
    if not torch.isfinite(last.after).all():
        findings.append(Finding("update", "rule", "non-finite centers", False,
                                f"NaN or inf in the centers after {describe_step(len(observations) - 1)}"))
        return UpdateVerdict(False, f"{spec}: the centers turn non-finite", findings, found and found.name,
                             observations, facts={"moves": None})
    if all(float(motion(o).norm()) <= rounding_floor(o) for o in observations):
        largest = max(float(motion(o).norm()) for o in observations)
        if largest == 0:
            row = Finding("update", "rule", "centers never move", False,
                          f"no step of {len(observations)} changed them: the centers are in no optimizer, or their "
                          "update never runs")
        else:
            row = Finding("update", "rule", "motion within rounding", False,
                          f"the largest step moved them by {largest:.2g}, no more than rounding in "
                          f"{observations[0].dtype} can: too little to tell a rule (a rate this small barely moves "
                          "them)")
        findings.append(row)
        return UpdateVerdict(False, f"{spec}: {row.verdict}", findings, found and found.name, observations,
                             facts={"moves": False})
    update = fit_update(observations, convention)
    rows, facts, consistent = _describe(update, observations, convention, found is not None)
    findings += rows
    return UpdateVerdict(consistent, _summary(spec, findings, consistent), findings, found and found.name,
                         observations, update, facts)
