"""Which center-update rule a training step applies: the observed motion of the centers fitted against every rule of
the registry (ablate.loss.rules), by least squares.

Given a step's batch, each rule moves the centers by alpha times a known (C, D) table G (the rule's float64 reference
at alpha = 1, minus the centers before the step; every rule's step is alpha times a function of n_j and the
convention), so alpha is a linear least-squares coefficient. A hypothesis is a
rule and a form of the step around it, all linear given the observations:
    lambda form   alpha independent of lambda; alpha = k * lambda (the centers' gradients not divided by lambda);
                  one alpha per lambda
    weight decay  - omega * C_before added: every center pulled toward 0 in proportion to itself, present or absent
                  (SGD's weight_decay: omega = lr * weight_decay)
    momentum      + mu * (the previous step's motion) added: SGD's momentum buffer (first step: none)
and, not linear, the rule applied one sample after another (each duplicate from the centers the previous one left,
not from the centers before the step), fitted by scipy's least_squares from the linear fit's alpha.

A hypothesis fits when every step's residual lies within that step's rounding floor (`rounding_floor`); hypotheses
are tried from the simplest (the order of hypotheses()), and the first level any rule fits at names the step.
"""

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from scipy.optimize import least_squares

from ablate.check.suite import CANDIDATES
from ablate.loss.conventions import convention_scale
from ablate.loss.rules import RULES

# A center element of the new table is the result of at most B roundings of a sum over the batch (a class's samples,
# or autograd's matrix product over all B rows) and OPS_PER_ELEMENT elementwise ones (c - x; the scalings by alpha,
# 1/(1 + n_j), lambda, 1/lambda and lr; weight decay's and momentum's terms; the subtraction; the stored result).
# Each rounding errs by at most eps/2 of the value it rounds (eps of the centers' dtype, in which the step computes),
# and while a step is stable (step per sample times n_j <= 2) no value it rounds exceeds the centers before or after
# it or the features in norm. So the error of the whole (C, D) table is at most
#     (B + OPS_PER_ELEMENT) * eps / 2 * (||C_before|| + ||C_after|| + ||X||)
# (Frobenius norms). The motion of a wrong rule differs from the right one by factors of n_j, B or lambda, a residual
# of the order of the motion itself, four orders of magnitude above this floor in float32 at the plan's motions.
OPS_PER_ELEMENT = 8
LAMBDA_FORMS = ("independent", "proportional", "per lambda")
EXTRA_FORMS = ((), ("weight decay",), ("momentum",), ("weight decay", "momentum"))


def rounding_floor(observation) -> float:
    """The most that rounding in the centers' dtype can move one step's (C, D) table away from exact arithmetic (see
    OPS_PER_ELEMENT)."""
    norms = float(observation.before.norm() + observation.after.norm() + observation.features.norm())
    return (observation.batch + OPS_PER_ELEMENT) * observation.eps / 2 * norms


def motion(observation) -> torch.Tensor:
    """after - before: the step's motion of the centers (C, D), float64."""
    return observation.after - observation.before


@dataclass(frozen=True)
class Hypothesis:
    """A rule and the form of the step around it (see the module docstring)."""

    rule: str
    lambda_form: str = "independent"
    extras: tuple = ()
    sequential: bool = False

    @property
    def level(self) -> int:
        """Its place in the order hypotheses are tried: the linear forms by their extras, then one after another."""
        if self.sequential:
            return len(LAMBDA_FORMS) * len(EXTRA_FORMS) + LAMBDA_FORMS.index(self.lambda_form)
        return EXTRA_FORMS.index(self.extras) * len(LAMBDA_FORMS) + LAMBDA_FORMS.index(self.lambda_form)


def hypotheses() -> list:
    """Every hypothesis over the rules registered now, in the order they are tried (Hypothesis.level)."""
    linear = [Hypothesis(rule.name, form, extras) for rule in RULES for form in LAMBDA_FORMS for extras in EXTRA_FORMS]
    sequential = [Hypothesis(rule.name, form, sequential=True) for rule in RULES for form in LAMBDA_FORMS]
    return sorted(linear + sequential, key=lambda h: h.level)


@dataclass
class Fit:
    """A hypothesis fitted to the observations.

    alphas: {lambda: alpha} over the plan's lambdas; per_lambda: k of alpha = k * lambda (proportional form);
    weight_decay: omega; momentum: mu (None when the hypothesis has no such term); residual: ||observed - fitted|| /
    ||observed|| over every step, each step's motion in units of its rounding floor (as the fit weighs them); worst:
    the largest step's ||observed - fitted|| / its rounding floor (fits when <= 1)."""

    hypothesis: Hypothesis
    alphas: dict
    residual: float
    worst: float
    per_lambda: Optional[float] = None
    weight_decay: Optional[float] = None
    momentum: Optional[float] = None

    @property
    def fits(self) -> bool:
        return self.worst <= 1.0

    def alpha_in_range(self) -> bool:
        """Every fitted alpha lies in the rule's range (Rule.check_alpha)."""
        try:
            for alpha in self.alphas.values():
                RULES.get(self.hypothesis.rule).check_alpha(alpha)
        except ValueError:
            return False
        return True


class Observations:
    """The steps' observations in the forms the fits need, with the convention that scales sgd's gradient
    (a key of ablate.check.suite.CANDIDATES)."""

    def __init__(self, observations, convention: str):
        self.steps = list(observations)
        base, factor = CANDIDATES[convention]
        self.scales = [factor * convention_scale(base, o.batch) for o in self.steps]  # s of each step's batch
        self.motions = [motion(o) for o in self.steps]  # (C, D) each
        self.floors = [rounding_floor(o) for o in self.steps]
        self.lambdas = sorted({o.lam for o in self.steps}, reverse=True)
        self._bases: dict = {}

    def basis(self, rule: str, index: int) -> torch.Tensor:
        """G of step `index` under `rule` (C, D): the rule's float64 reference at alpha = 1, minus the centers
        before."""
        key = (rule, index)
        if key not in self._bases:
            step, reference = self.steps[index], RULES.get(rule).reference
            old, moved = step.before, step.before.clone()
            for j in sorted({int(y) for y in step.labels}):
                members = [step.features[i] for i in range(step.batch) if int(step.labels[i]) == j]
                moved[j] = reference(old[j], members, 1.0, self.scales[index])
            self._bases[key] = moved - old
        return self._bases[key]

    def one_after_another(self, rule: str, index: int, alpha: float) -> torch.Tensor:
        """The motion of step `index` when each sample moves its center by the rule's step for its class (Rule.step
        at the class's count), from the center the previous sample left (C, D)."""
        step, step_size = self.steps[index], RULES.get(rule).step
        centers = step.before.clone()
        counts = torch.bincount(step.labels, minlength=centers.shape[0]).tolist()
        for i in range(step.batch):
            j = int(step.labels[i])
            size = float(step_size(alpha, float(counts[j]), self.scales[index]))
            centers[j] -= size * (centers[j] - step.features[i])
        return centers - step.before

    def alpha_columns(self, hypothesis: Hypothesis) -> list:
        """{step index: column's G factor} per alpha parameter of the hypothesis' lambda form."""
        if hypothesis.lambda_form == "independent":
            return [{t: 1.0 for t in range(len(self.steps))}]
        if hypothesis.lambda_form == "proportional":
            return [{t: o.lam for t, o in enumerate(self.steps)}]
        return [{t: 1.0 for t, o in enumerate(self.steps) if o.lam == lam} for lam in self.lambdas]

    def alphas(self, hypothesis: Hypothesis, params) -> dict:
        """{lambda: alpha} from the alpha parameters."""
        if hypothesis.lambda_form == "independent":
            return {lam: float(params[0]) for lam in self.lambdas}
        if hypothesis.lambda_form == "proportional":
            return {lam: float(params[0]) * lam for lam in self.lambdas}
        return {lam: float(p) for lam, p in zip(self.lambdas, params)}

    def score(self, hypothesis: Hypothesis, predicted: list, alpha_params, **terms) -> Fit:
        """The Fit of these predicted motions; norms in units of each step's floor, as the fits weigh them."""
        residuals = [float((m - p).norm()) / f for m, p, f in zip(self.motions, predicted, self.floors)]
        total = math.sqrt(sum((float(m.norm()) / f) ** 2 for m, f in zip(self.motions, self.floors))) or 1.0
        return Fit(hypothesis, self.alphas(hypothesis, alpha_params),
                   residual=math.sqrt(sum(r * r for r in residuals)) / total, worst=max(residuals),
                   per_lambda=float(alpha_params[0]) if hypothesis.lambda_form == "proportional" else None, **terms)

    def fit_linear(self, hypothesis: Hypothesis) -> Fit:
        """Weighted least squares, each step's rows divided by its rounding floor (so that no step dominates)."""
        weights = [1.0 / f for f in self.floors]
        columns = []
        for factors in self.alpha_columns(hypothesis):
            columns.append([factors.get(t, 0.0) * self.basis(hypothesis.rule, t) for t in range(len(self.steps))])
        if "weight decay" in hypothesis.extras:
            columns.append([-o.before for o in self.steps])
        if "momentum" in hypothesis.extras:
            columns.append([torch.zeros_like(self.motions[0]), *self.motions[:-1]])
        design = np.stack([np.concatenate([(w * part).numpy().ravel() for w, part in zip(weights, column)])
                           for column in columns], axis=1)  # (T * C * D, parameters)
        observed = np.concatenate([(w * m).numpy().ravel() for w, m in zip(weights, self.motions)])
        params = np.linalg.lstsq(design, observed, rcond=None)[0]
        predicted = [sum(float(p) * column[t] for p, column in zip(params, columns)) for t in range(len(self.steps))]
        count = len(columns) - len(hypothesis.extras)
        extra = dict(zip(hypothesis.extras, (float(p) for p in params[count:])))
        return self.score(hypothesis, predicted, params[:count], weight_decay=extra.get("weight decay"),
                          momentum=extra.get("momentum"))

    def fit_one_after_another(self, hypothesis: Hypothesis, start: list) -> Fit:
        """Nonlinear least squares from `start` (the alpha parameters of the same rule's linear fit)."""
        columns = self.alpha_columns(hypothesis)

        def predicted(params) -> list:
            alphas = [sum(p * c.get(t, 0.0) for p, c in zip(params, columns)) for t in range(len(self.steps))]
            return [self.one_after_another(hypothesis.rule, t, a) for t, a in enumerate(alphas)]

        def weighted_residuals(params):
            return np.concatenate([((m - p) / f).numpy().ravel()
                                   for m, p, f in zip(self.motions, predicted(params), self.floors)])

        params = least_squares(weighted_residuals, np.asarray(start, dtype=float), method="lm").x
        return self.score(hypothesis, predicted(params), params)


@dataclass
class UpdateFit:
    """Every hypothesis fitted: `named` the first that fits in the order of hypotheses() (None: none does),
    `shown_by_rule` each rule's first fit that fits, else its plainest; separation: for a named rule whose duplicates
    are summed, the largest step's distance between its summed and one-after-another motions at the fitted alpha, in
    rounding floors (above 2, an observation within the floor of one is outside the floor of the other); equivalent:
    the other rules' fits at the same level as `named`, rules whose motion is a multiple of its own (sgd under sum/2
    and ema; a rule registered as Eq. 4 at half the step and Eq. 4)."""

    fits: list
    named: Optional[Fit]
    shown_by_rule: dict
    separation: Optional[float] = None
    equivalent: list = field(default_factory=list)

    @property
    def closest(self) -> Fit:
        """The fit of any hypothesis with the smallest residual relative to the motion."""
        return min(self.fits, key=lambda f: f.residual)


def _shown(fits: list) -> Fit:
    """A rule's fit to show: its first that fits in the order of hypotheses(), else its plainest (one alpha, duplicates
    summed, nothing else): the alpha the rule would need and how far that is from the observations."""
    return next((f for f in fits if f.fits), fits[0])


def _start(data: Observations, linear: Fit) -> list:
    """The alpha parameters of a linear fit, as the start of the one-after-another fit of the same lambda form."""
    form = linear.hypothesis.lambda_form
    if form == "proportional":
        return [linear.per_lambda]
    return [linear.alphas[lam] for lam in (data.lambdas[:1] if form == "independent" else data.lambdas)]


def fit_update(observations, convention: str) -> UpdateFit:
    """Fit every hypothesis to the observations (each with `after`); sgd's gradient is scaled by `convention`.

    Among hypotheses that fit at the same level, a gradient-step rule (Rule.gradient_step) is named when the centers
    held a gradient after the steps and another rule when they did not (under sum/2 sgd and ema move alike), then
    the first in the registry's order."""
    data = Observations(observations, convention)
    fits: dict = {}
    for hypothesis in hypotheses():
        if hypothesis.sequential:
            linear = fits[Hypothesis(hypothesis.rule, hypothesis.lambda_form)]
            fits[hypothesis] = data.fit_one_after_another(hypothesis, _start(data, linear))
        else:
            fits[hypothesis] = data.fit_linear(hypothesis)
    got_gradient = any(o.got_gradient for o in data.steps)
    fitting = [f for f in fits.values() if f.fits]
    named, equivalent = None, []
    if fitting:
        level = min(f.hypothesis.level for f in fitting)
        tied = [f for f in fitting if f.hypothesis.level == level]
        order = RULES.names()
        named = min(tied, key=lambda f: (RULES.get(f.hypothesis.rule).gradient_step != got_gradient,
                                         order.index(f.hypothesis.rule)))
        equivalent = [f for f in tied if f is not named]
    shown = {rule.name: _shown([f for f in fits.values() if f.hypothesis.rule == rule.name]) for rule in RULES}
    separation = None
    if named is not None and not named.hypothesis.sequential:
        separation = max(float((data.one_after_another(named.hypothesis.rule, t, named.alphas[o.lam]) -
                                named.alphas[o.lam] * data.basis(named.hypothesis.rule, t)).norm()) / data.floors[t]
                         for t, o in enumerate(data.steps))
    return UpdateFit(list(fits.values()), named, shown, separation, equivalent)
