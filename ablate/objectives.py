"""The objectives a cell trains besides center loss, declared once: a classification head on the features and an
optional pair loss added to it, each an entry naming its paper, its pytorch-metric-learning (pml) class, its
parameters (the paper's value and unit, the valid range, how pml spells it) and whether it learns weights.

    HEADS         softmax (the model's own Linear), normface, sphereface, cosface, arcface
    PAIR_LOSSES   none, contrastive, triplet
    resolve_objective(...)   the cell's head and pair-loss parameters checked, unset ones at the paper's value
    describe_objective(row)  "arcface m=0.5 rad s=64 + center lambda=0.01 (half_mean, paper rule, alpha 0.5)"

The CLI choices, CellConfig's validation, the record's "objective" and the report read these entries. This module
imports nothing heavy; ablate.train.heads builds the pml modules (imported only when a cell uses one).

Every head is a softmax cross-entropy over logits (B, C) computed from the features x (B, D) and a weight matrix
W (C, D) (pml: W is (D, C)); theta_j is the angle between x and W_j:
    softmax      W_j . x + b_j                                    (the model's nn.Linear)
    normface     s cos theta_j                                    (Wang et al. 2017; pml: temperature = 1 / s)
    sphereface   s ||x|| psi(theta_y) for the label, s ||x|| cos theta_j otherwise, psi(theta) = (-1)^k cos(m theta)
                 - 2k on [k pi/m, (k+1) pi/m] (Liu et al. 2017, A-Softmax; pml has no lambda annealing, and s = 1
                 is the paper's form: the feature norm is the scale)
    cosface      s (cos theta_y - m) for the label, s cos theta_j otherwise   (Wang et al. 2018, LMCL)
    arcface      s cos(theta_y + m) for the label, s cos theta_j otherwise    (Deng et al. 2019; pml takes m in
                 degrees, and where theta_y + m > pi uses s (cos theta_y - m sin m) to keep the logit decreasing)
Test predictions are the argmax of the head's own logits without the margin (pml's get_logits).
Pair losses compare L2-normalized features by cosine similarity c (pml's CosineSimilarity; on unit features the
squared Euclidean distance is 2 - 2c, and the cosine has no square root whose gradient is infinite at a pair of
equal features, which 2-D features reach), each averaged over its terms that are not zero (pml's AvgNonZeroReducer):
    contrastive  same-class pairs 1 - c (= d^2 / 2, Hadsell et al. 2006's term), different-class pairs
                 max(0, c - m), every ordered pair of the batch (m a cosine: 0 asks for orthogonal features)
    triplet      max(0, c(a, n) - c(a, p) + m) over the batch's semi-hard triplets, 0 < c(a, p) - c(a, n) <= m:
                 FaceNet's loss (Schroff et al. 2015: squared distances, alpha 0.2, online semi-hard mining) halved,
                 with m = alpha / 2
"""

import math
from dataclasses import dataclass, field
from typing import Callable

from ablate.limits import FLOAT32_MAX, OptionError


@dataclass(frozen=True)
class Parameter:
    """One hyperparameter of a head or pair loss: its CellConfig key, its symbol in an objective's name, the paper's
    value and unit, its valid range [low, high] (low excluded when low_open, high when high_open), whether it must be
    an integer, and pml's keyword with the factor from the paper's unit to pml's."""

    key: str
    symbol: str
    default: float
    low: float
    high: float
    library_name: str
    unit: str = ""
    integer: bool = False
    low_open: bool = False
    to_library: Callable = float  # paper's value -> pml's (radians to degrees for arcface, s to 1 / s for normface)
    high_open: bool = False

    def range_text(self, value: float | None = None) -> str:
        """'[0, 1.5708) rad'; a bound that would read as `value` (1.5708 against pi/2) with all its digits."""
        def bound(b: float) -> str:
            return repr(b) if value is not None and f"{b:g}" == f"{value:g}" else f"{b:g}"
        close = ")" if math.isinf(self.high) or self.high_open else "]"
        interval = f"{'(' if self.low_open else '['}{bound(self.low)}, {bound(self.high)}{close}"
        return interval + (f" {self.unit}" if self.unit else "")

    def check(self, owner: str, value: float) -> None:
        """A ValueError naming the owner, the range and the value when `value` is outside it (or not an integer).
        The bounds and the value are shown with as many digits as it takes to tell them apart (1.5708 lies above
        pi/2 = 1.5707963267948966)."""
        below = value <= self.low if self.low_open else value < self.low
        above = value >= self.high if self.high_open else value > self.high
        if below or above:
            shown = repr(float(value)) if f"{value:g}" in (f"{self.low:g}", f"{self.high:g}") else f"{value:g}"
            raise OptionError(self.key, f"{self.key} of {owner} must lie in {self.range_text(value)}, got {shown}")
        if self.integer and not float(value).is_integer():
            raise OptionError(self.key, f"{self.key} of {owner} must be an integer (the multiplier m of the angle in "
                             f"cos(m theta)), got {value:g}")

    def text(self, value: float) -> str:
        """'m=0.5 rad' in an objective's name."""
        return f"{self.symbol}={value:g}" + (f" {self.unit}" if self.unit else "")


@dataclass(frozen=True)
class Head:
    """A classification head: library_class is pml's loss class (None: the model's own nn.Linear and plain
    cross-entropy); learned: it holds a weight matrix the model's optimizer trains."""

    name: str
    paper: str
    library_class: str | None
    learned: bool
    parameters: tuple = ()
    fixed: dict = field(default_factory=dict)  # pml keywords held at one value, not a cell option


@dataclass(frozen=True)
class PairLoss:
    """A pair loss added to the head's loss with weight pair_weight, on pml's distance `distance`; miner: pml's
    miner class and its options (the margin given by the loss's own margin), None for every pair of the batch."""

    name: str
    paper: str
    library_class: str | None
    parameters: tuple = ()
    fixed: dict = field(default_factory=dict)
    distance: str = "CosineSimilarity"
    miner: str | None = None
    miner_options: dict = field(default_factory=dict)


def _scale(default: float, library_name: str = "scale", to_library: Callable = float) -> Parameter:
    """The scale s of a head's logits: > 0, at most float32's largest value (the logits are float32)."""
    return Parameter("scale", "s", default, 0.0, FLOAT32_MAX, library_name, low_open=True, to_library=to_library)


HEADS = {head.name: head for head in (
    Head("softmax", "softmax cross-entropy on a linear layer (the center-loss paper's baseline)", None, learned=True),
    # NormFace learns s or fixes it; 20 is pml's default (its temperature 0.05 = 1 / s).
    Head("normface", "Wang et al. 2017, NormFace", "NormalizedSoftmaxLoss", learned=True,
         parameters=(_scale(20.0, "temperature", lambda s: 1.0 / s),)),
    Head("sphereface", "Liu et al. 2017, SphereFace (A-Softmax)", "SphereFaceLoss", learned=True,
         parameters=(Parameter("margin", "m", 4.0, 1.0, 4.0, "margin", integer=True,
                                         to_library=int), _scale(1.0))),
    Head("cosface", "Wang et al. 2018, CosFace (LMCL)", "CosFaceLoss", learned=True,
         parameters=(Parameter("margin", "m", 0.35, 0.0, 1.0, "margin"), _scale(64.0))),
    Head("arcface", "Deng et al. 2019, ArcFace", "ArcFaceLoss", learned=True,
         # m < pi/2: at pi/2 a feature on its class's weight (theta = 0) scores cos(m) = 0, no more than a class
         # orthogonal to it
         parameters=(Parameter("margin", "m", 0.5, 0.0, math.pi / 2, "margin", unit="rad",
                               to_library=math.degrees, high_open=True), _scale(64.0))),
)}

# Margins on cosine similarities: a contrastive margin lies in [-1, 1) (different-class pairs are pushed below
# it; 0 is pml's choice for cosines), a triplet margin in (0, 2] (c(a, p) - c(a, n) is at most 2).
PAIR_LOSSES = {pair.name: pair for pair in (
    PairLoss("none", "no pair loss", None),
    PairLoss("contrastive", "Hadsell et al. 2006, contrastive loss", "ContrastiveLoss",
             parameters=(Parameter("pair_margin", "m", 0.0, -1.0, 1.0, "neg_margin"),), fixed={"pos_margin": 1.0}),
    PairLoss("triplet", "Schroff et al. 2015, FaceNet triplet loss", "TripletMarginLoss",
             parameters=(Parameter("pair_margin", "m", 0.1, 0.0, 2.0, "margin", low_open=True),),
             miner="TripletMarginMiner", miner_options={"type_of_triplets": "semihard"}),
)}
NO_PAIR_LOSS = "none"
DEFAULT_HEAD = "softmax"
DEFAULT_PAIR_WEIGHT = 1.0
# The cell options the entries' parameters take, and the objective's other keys.
PARAMETER_KEYS = ("margin", "scale", "pair_margin")
OBJECTIVE_KEYS = ("head", *PARAMETER_KEYS, "pair_loss", "pair_weight", "lambda")


def head_names() -> tuple:
    return tuple(HEADS)


def pair_loss_names() -> tuple:
    return tuple(PAIR_LOSSES)


def papers_help(entries: dict) -> str:
    """'normface: Wang et al. 2017, NormFace; ...': each entry with its paper, for the CLI help."""
    return "; ".join(f"{name}: {entry.paper}" for name, entry in entries.items())


def parameter_help(key: str) -> str:
    """'arcface 0.5 rad in [0, 1.571] rad, cosface 0.35 in [0, 1], ...': the paper's value and range of each entry
    that takes the option `key`, for its CLI help."""
    entries: list[Head | PairLoss] = [*HEADS.values(), *PAIR_LOSSES.values()]
    return ", ".join(f"{entry.name} {p.default:g}{' ' + p.unit if p.unit else ''} in {p.range_text()}"
                     + (" (integer)" if p.integer else "")
                     for entry in entries for p in entry.parameters if p.key == key)


def _number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(key, f"{key} must be a finite number, got {value!r}")
    return float(value)


def _resolved(entry, given: dict) -> dict:
    """{key: value} of the entry's parameters, the paper's value where `given` has None; a key the entry does not
    take must be unset (None)."""
    taken = {p.key: p for p in entry.parameters}
    resolved = {}
    for key, value in given.items():
        if key not in taken:
            if value is not None:
                entries: list[Head | PairLoss] = [*HEADS.values(), *PAIR_LOSSES.values()]
                takers = [e.name for e in entries if any(p.key == key for p in e.parameters)]
                raise OptionError(key, f"{entry.name} takes no {key} (leave it unset); {key} applies to "
                                 f"{', '.join(takers)}")
            continue
        parameter = taken[key]
        resolved[key] = parameter.default if value is None else _number(key, value)
        parameter.check(entry.name, resolved[key])
    return resolved


def resolve_objective(head: str, pair_loss: str, margin, scale, pair_margin, pair_weight, *, batch_size: int,
                      classes: int, nproc: int) -> dict:
    """The objective's options as the cell records them: {margin, scale, pair_margin, pair_weight}, each at the
    paper's value where unset (None) and the entry takes it, None where it does not. Raises a ValueError with the
    reason for an invalid combination: a parameter the head or pair loss does not take, one out of its range, a
    pair loss whose batch (over `classes` trained classes) may hold no same-class pair, a head or pair loss in a
    multi-process cell."""
    head_entry, pair_entry = HEADS[head], PAIR_LOSSES[pair_loss]
    values = {**_resolved(head_entry, {"margin": margin, "scale": scale}),
              **_resolved(pair_entry, {"pair_margin": pair_margin})}
    if pair_loss == NO_PAIR_LOSS:
        if pair_weight is not None:
            raise OptionError("pair_weight", f"pair_weight {pair_weight!r} has no pair loss to weigh (pair_loss none); "
                                             "leave it unset")
    else:
        pair_weight = DEFAULT_PAIR_WEIGHT if pair_weight is None else _number("pair_weight", pair_weight)
        if not pair_weight > 0:
            raise OptionError("pair_weight", f"pair_weight must be > 0, got {pair_weight:g}")
        if batch_size <= classes:
            raise ValueError(f"pair_loss {pair_loss} needs a same-class pair in every batch: batch_size must exceed "
                             f"the {classes} trained classes (with at most {classes} samples a batch may hold one "
                             f"per class), got {batch_size}")
    if nproc > 1 and (head != DEFAULT_HEAD or pair_loss != NO_PAIR_LOSS):
        raise ValueError(f"head {head} and pair_loss {pair_loss} train in one process only (nproc 1): a pair loss "
                         "would mine each rank's slice of the batch alone; got nproc " + str(nproc))
    return {key: values.get(key) for key in PARAMETER_KEYS} | {"pair_weight": pair_weight}


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def describe_objective(row) -> str:
    """The objective of a record or results row (a mapping with the cell's keys) in full:
    'cosface m=0.35 s=64 + triplet x1 (m=0.2, semihard TripletMarginMiner) + center lambda=0.01 (half_mean, paper
    rule, alpha 0.5)'. A row from before heads existed is softmax without a pair loss."""
    get = row.get
    head = HEADS[get("head") if _present(get("head")) else DEFAULT_HEAD]
    parts = [" ".join([head.name, *(p.text(get(p.key)) for p in head.parameters if _present(get(p.key)))])]
    pair_name = get("pair_loss") if _present(get("pair_loss")) else NO_PAIR_LOSS
    if pair_name != NO_PAIR_LOSS:
        pair = PAIR_LOSSES[pair_name]
        details = [p.text(get(p.key)) for p in pair.parameters if _present(get(p.key))]
        if pair.miner:
            details.append(" ".join([*pair.miner_options.values(), pair.miner]))
        parts.append(f"{pair.name} x{get('pair_weight'):g} ({', '.join(details)})")
    if _present(get("lambda")) and get("lambda") > 0:
        parts.append(f"center lambda={get('lambda'):g} ({get('convention')}, {get('rule')} rule, "
                     f"alpha {get('alpha'):g})")
    return " + ".join(parts)
