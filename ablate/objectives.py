"""The objectives a cell trains besides center loss, declared once: a classification head on the features and an
optional pair loss added to it, each an entry naming its paper, its pytorch-metric-learning (pml) class, its
parameters (the paper's value and unit, the valid range, how pml spells it, and the recipe that sets it at the
cell's class count) and whether it learns weights; and the spaces center loss can work in.

    HEADS         softmax (the model's own Linear), normface, sphereface, cosface, arcface
    PAIR_LOSSES   none, contrastive, triplet
    CENTER_SPACES raw (the features themselves, the paper's), normalized (the L2-normalized features)
    resolve_objective(...)   the cell's head and pair-loss parameters checked, unset ones at their recipe's value
    describe_objective(row)  "arcface m=0.5 rad s=3.955 embedding batchnorm + center lambda=0.01 (half_mean, paper
                             rule, alpha 0.5)"

The CLI choices, CellConfig's validation, the record's "objective" and the report read these entries. This module
imports nothing heavy; ablate.train.heads builds the pml modules (imported only when a cell uses one).

Every head is a softmax cross-entropy over logits (B, C) computed from the features x (B, D) and a weight matrix
W (C, D) (pml: W is (D, C)); theta_j is the angle between x and W_j:
    softmax      W_j . x + b_j                                    (the model's nn.Linear)
    normface     s cos theta_j                                    (Wang et al. 2017; pml: temperature = 1 / s)
    sphereface   s ||x|| (lambda cos theta_y + psi(theta_y)) / (1 + lambda) for the label, s ||x|| cos theta_j
                 otherwise, psi(theta) = (-1)^k cos(m theta) - 2k on [k pi/m, (k+1) pi/m] (Liu et al. 2017,
                 A-Softmax; s = 1 is the paper's form: the feature norm is the scale). lambda is annealed over the
                 training steps t = 1, 2, ... as the paper's Caffe layer does: lambda_t = max(lambda_min,
                 lambda0 (1 + gamma t)^-power) (annealing_weight); pml's SphereFaceLoss is lambda = 0
    cosface      s (cos theta_y - m) for the label, s cos theta_j otherwise   (Wang et al. 2018, LMCL)
    arcface      s cos(theta_y + m) for the label, s cos theta_j otherwise    (Deng et al. 2019; pml takes m in
                 degrees, and where theta_y + m > pi uses s (cos theta_y - m sin m) to keep the logit decreasing)
Test predictions are the argmax of the head's own logits without the margin (pml's get_logits).

The recipes (each head's entry, at the cell's class count C):
    s of normface, cosface and arcface: the least scale at which a normalized softmax over C classes can give the
        target class the probability P = TARGET_PROBABILITY, s = (C - 1)/C ln((C - 1) P / (1 - P)) (CosFace's Eq. 8;
        NormFace's Proposition 2 is the same bound): 3.955 at C = 10. CosFace's and ArcFace's s = 64 was set for
        10k-85k identities, where the bound is 11.5-13.5 at this P; at 10 classes and the digits recipe's lr 0.05,
        s = 64 made ArcFace and CosFace blow the features up in the first epoch.
    the feature size of the angular heads: 512, their papers' embeddings (2-D features are their figures' toy
        case; at 2-D a fixed-scale head must lay the classes around a circle, and on digits it often stalls).
    the embedding of arcface: BatchNorm (ArcFace, Sec. 4.1: "BN-Dropout-FC-BN" gives its 512-D embedding), which
        also keeps the feature norm away from 0, where a normalized head's gradient s / ||x|| is unbounded.
    sphereface's annealing: lambda0 1000, gamma 0.12, power 1, lambda_min 5 (the paper's released training,
        sphereface_model.prototxt's margin_inner_product_param).
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

from ablate.limits import FLOAT32_MAX, OptionError, SearchRange


@dataclass(frozen=True)
class Parameter:
    """One hyperparameter of a head or pair loss: its CellConfig key, its symbol in an objective's name, the paper's
    value and unit, its valid range [low, high] (low excluded when low_open, high when high_open), whether it must be
    an integer, and pml's keyword with the factor from the paper's unit to pml's. search: the range `ablate tune`
    searches it over where its valid range is not one (unbounded, or open at low); None there: held at the cell's
    value."""

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
    search: SearchRange | None = None
    # The value a cell that leaves the option unset takes, from its class count C and feature size D: recipe(C, D);
    # None: the paper's `default`. recipe_text says how, for the help.
    recipe: Callable[[int, int], float] | None = None
    recipe_text: str = ""

    def value_for(self, classes: int, feat_dim: int) -> float:
        """The recipe's value at `classes` classes and `feat_dim`-dimensional features (the paper's without one)."""
        return self.default if self.recipe is None else float(self.recipe(classes, feat_dim))

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
    cross-entropy); learned: it holds a weight matrix the model's optimizer trains; annealed: its target logit is
    blended with the plain one by SphereFace's annealed weight (the anneal_* parameters); feat_dim: the feature
    size its recipe trains (a cell that leaves feat_dim unset); embedding_norm: the normalization of the embedding
    its recipe trains with (ablate.models.EMBEDDING_NORMS)."""

    name: str
    paper: str
    library_class: str | None
    learned: bool
    parameters: tuple = ()
    fixed: dict = field(default_factory=dict)  # pml keywords held at one value, not a cell option
    annealed: bool = False
    feat_dim: int = 512
    embedding_norm: str = "none"


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


# The probability of the target class the scale of a normalized head is chosen to make reachable (CosFace Eq. 8).
TARGET_PROBABILITY = 0.9
# Scales searched from 1 to the papers' 64 (set for 10k-85k identities; CosFace's bound is about 4 at 10 classes).
SCALE_SEARCH = SearchRange(1.0, 64.0)


def scale_bound(classes: int, probability: float = TARGET_PROBABILITY) -> float:
    """The least scale s at which a softmax over `classes` logits s cos theta_j can give the target class the
    probability `probability` (features at their class's weight, the other weights spread evenly):
    s = (C - 1)/C ln((C - 1) P / (1 - P)), CosFace's Eq. 8 (NormFace's Proposition 2). 3.955 for C = 10, P = 0.9."""
    if classes < 2 or not 0 < probability < 1:
        raise ValueError(f"the scale bound needs at least 2 classes and a probability in (0, 1), got {classes} and "
                         f"{probability}")
    return (classes - 1) / classes * math.log((classes - 1) * probability / (1 - probability))


def _scale(default: float, library_name: str = "scale", to_library: Callable = float, *,
           from_classes: bool = False) -> Parameter:
    """The scale s of a head's logits: > 0, at most float32's largest value (the logits are float32); the paper's
    `default`, or with from_classes the scale_bound at the cell's class count."""
    recipe = (lambda classes, feat_dim: scale_bound(classes)) if from_classes else None
    text = f"CosFace's Eq. 8 bound for the trained classes at P = {TARGET_PROBABILITY:g}" if from_classes else ""
    return Parameter("scale", "s", default, 0.0, FLOAT32_MAX, library_name, low_open=True, to_library=to_library,
                     search=SCALE_SEARCH, recipe=recipe, recipe_text=text)


def annealing_weight(step: int, base: float, gamma: float, power: float, minimum: float) -> float:
    """SphereFace's weight lambda of the plain logit at training step `step` (1 for the first): max(minimum,
    base (1 + gamma step)^-power). The Caffe layer (margin_inner_product_layer) counts a step at each forward before
    it reads lambda, from iteration 0."""
    return max(minimum, base * (1.0 + gamma * step) ** -power)


def _annealing(key: str, symbol: str, default: float) -> Parameter:
    """A parameter of SphereFace's annealing, in [0, float32's largest value]; ablate.train.heads.AnnealedTarget
    takes it by its key."""
    return Parameter(key, symbol, default, 0.0, FLOAT32_MAX, key)


# SphereFace's published annealing (sphereface_model.prototxt: base 1000, gamma 0.12, power 1, lambda_min 5).
ANNEALING = (_annealing("anneal_base", "lambda0", 1000.0), _annealing("anneal_gamma", "gamma", 0.12),
             _annealing("anneal_power", "power", 1.0), _annealing("anneal_min", "lambda_min", 5.0))

# Feature sizes: 2 for softmax, the center-loss paper's LeNet++ features on MNIST (its figures; the suite's lambda and
# alpha studies); 512 for the angular heads, the embedding their papers train (SphereFace, CosFace and ArcFace: 512-D
# face embeddings). At 2-D a head with a fixed scale must lay 10 classes around a circle, and on digits it often
# stalls (5 seeds: mean accuracy 0.47-0.69, single seeds down to 0.22); at 64-D (0.98) and 512-D every seed trains.
HEADS = {head.name: head for head in (
    Head("softmax", "softmax cross-entropy on a linear layer (the center-loss paper's baseline)", None, learned=True,
         feat_dim=2),
    # NormFace fixes s or learns it; the paper value recorded here is pml's default 20 (temperature 0.05).
    Head("normface", "Wang et al. 2017, NormFace", "NormalizedSoftmaxLoss", learned=True,
         parameters=(_scale(20.0, "temperature", lambda s: 1.0 / s, from_classes=True),)),
    Head("sphereface", "Liu et al. 2017, SphereFace (A-Softmax)", "SphereFaceLoss", learned=True,
         parameters=(Parameter("margin", "m", 4.0, 1.0, 4.0, "margin", integer=True, to_library=int), _scale(1.0),
                     *ANNEALING), annealed=True),
    Head("cosface", "Wang et al. 2018, CosFace (LMCL)", "CosFaceLoss", learned=True,
         parameters=(Parameter("margin", "m", 0.35, 0.0, 1.0, "margin"), _scale(64.0, from_classes=True))),
    Head("arcface", "Deng et al. 2019, ArcFace", "ArcFaceLoss", learned=True,
         # m < pi/2: at pi/2 a feature on its class's weight (theta = 0) scores cos(m) = 0, no more than a class
         # orthogonal to it
         parameters=(Parameter("margin", "m", 0.5, 0.0, math.pi / 2, "margin", unit="rad",
                               to_library=math.degrees, high_open=True), _scale(64.0, from_classes=True)),
         embedding_norm="batchnorm"),
)}

# Margins on cosine similarities: a contrastive margin lies in [-1, 1) (different-class pairs are pushed below
# it; 0 is pml's choice for cosines), a triplet margin in (0, 2] (c(a, p) - c(a, n) is at most 2).
PAIR_LOSSES = {pair.name: pair for pair in (
    PairLoss("none", "no pair loss", None),
    PairLoss("contrastive", "Hadsell et al. 2006, contrastive loss", "ContrastiveLoss",
             parameters=(Parameter("pair_margin", "m", 0.0, -1.0, 1.0, "neg_margin"),), fixed={"pos_margin": 1.0}),
    PairLoss("triplet", "Schroff et al. 2015, FaceNet triplet loss", "TripletMarginLoss",
             parameters=(Parameter("pair_margin", "m", 0.1, 0.0, 2.0, "margin", low_open=True,
                                   search=SearchRange(0.01, 1.0)),),
             miner="TripletMarginMiner", miner_options={"type_of_triplets": "semihard"}),
)}
NO_PAIR_LOSS = "none"
DEFAULT_HEAD = "softmax"
DEFAULT_PAIR_WEIGHT = 1.0
# The cell options the entries' parameters take, and the objective's other keys.
PARAMETER_KEYS = ("margin", "scale", "pair_margin", *(p.key for p in ANNEALING))
OBJECTIVE_KEYS = ("head", *PARAMETER_KEYS, "pair_loss", "pair_weight", "embedding_norm", "lambda")
NO_EMBEDDING_NORM = "none"

# The space center loss pulls the features in: the cell option center_space.
RAW, NORMALIZED = "raw", "normalized"
CENTER_SPACES = {
    RAW: "the features themselves (the paper's)",
    NORMALIZED: "the L2-normalized features, x / ||x||: the directions a normalized head classifies (its centers "
                "then live in the unit ball, and the scale of the features is left to the head)",
}
DEFAULT_CENTER_SPACE = RAW


def head_names() -> tuple:
    return tuple(HEADS)


def head_entry(name) -> Head:
    """The HEADS entry `name`; a ValueError naming the heads otherwise."""
    if not isinstance(name, str) or name not in HEADS:
        raise ValueError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")
    return HEADS[name]


def feat_dim_help() -> str:
    """'softmax 2, the others 512': each head's recipe, for the CLI help."""
    sizes: dict[int, list] = {}
    for head in HEADS.values():
        sizes.setdefault(head.feat_dim, []).append(head.name)
    return ", ".join(f"{', '.join(names)} {size}" for size, names in sizes.items())


def pair_loss_names() -> tuple:
    return tuple(PAIR_LOSSES)


def papers_help(entries: dict) -> str:
    """'normface: Wang et al. 2017, NormFace; ...': each entry with its paper, for the CLI help."""
    return "; ".join(f"{name}: {entry.paper}" for name, entry in entries.items())


def center_spaces_help() -> str:
    return "; ".join(f"{name}: {text}" for name, text in CENTER_SPACES.items())


def parameter_help(key: str) -> str:
    """'arcface 0.5 rad in [0, 1.571] rad, cosface 0.35 in [0, 1], ...': the value a cell takes unset (the paper's,
    or how its recipe sets it, with the paper's) and the range of each entry that takes the option `key`, for its
    CLI help."""
    entries: list[Head | PairLoss] = [*HEADS.values(), *PAIR_LOSSES.values()]

    def value(p: Parameter) -> str:
        paper = f"{p.default:g}{' ' + p.unit if p.unit else ''}"
        return f"{p.recipe_text} (paper: {paper})" if p.recipe is not None else paper

    return ", ".join(f"{entry.name} {value(p)} in {p.range_text()}" + (" (integer)" if p.integer else "")
                     for entry in entries for p in entry.parameters if p.key == key)


def embedding_norm_help() -> str:
    """'arcface: batchnorm, the others: none': each head's recipe, for the CLI help."""
    normalized = [f"{h.name}: {h.embedding_norm}" for h in HEADS.values() if h.embedding_norm != NO_EMBEDDING_NORM]
    return ", ".join([*normalized, f"the others: {NO_EMBEDDING_NORM}"])


def _number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(key, f"{key} must be a finite number, got {value!r}")
    return float(value)


def _resolved(entry, given: dict, classes: int, feat_dim: int) -> dict:
    """{key: value} of the entry's parameters, the recipe's value at `classes` classes and `feat_dim`-dimensional
    features where `given` has None; a key the entry does not take must be unset (None)."""
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
        resolved[key] = parameter.value_for(classes, feat_dim) if value is None else _number(key, value)
        parameter.check(entry.name, resolved[key])
    return resolved


def resolve_objective(head: str, pair_loss: str, parameters: dict, pair_weight, embedding_norm, *, batch_size: int,
                      classes: int, feat_dim: int, nproc: int) -> dict:
    """The objective's options as the cell records them: each of PARAMETER_KEYS (given in `parameters`, None where
    unset) at its recipe's value for `classes` trained classes and `feat_dim`-dimensional features where unset and
    the entry takes it, None where it does not; pair_weight; embedding_norm (the head's recipe where None). Raises a
    ValueError with the reason for an invalid combination: a parameter the head or pair loss does not take, one out
    of its range, a pair loss whose batch may hold no same-class pair, a head, pair loss or embedding norm in a
    multi-process cell."""
    head_entry, pair_entry = HEADS[head], PAIR_LOSSES[pair_loss]
    head_keys = {p.key for e in HEADS.values() for p in e.parameters}
    values = {**_resolved(head_entry, {k: v for k, v in parameters.items() if k in head_keys}, classes, feat_dim),
              **_resolved(pair_entry, {k: v for k, v in parameters.items() if k not in head_keys}, classes, feat_dim)}
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
    embedding_norm = head_entry.embedding_norm if embedding_norm is None else embedding_norm
    if nproc > 1 and (head != DEFAULT_HEAD or pair_loss != NO_PAIR_LOSS):
        raise ValueError(f"head {head} and pair_loss {pair_loss} train in one process only (nproc 1): a pair loss "
                         "would mine each rank's slice of the batch alone; got nproc " + str(nproc))
    if nproc > 1 and embedding_norm != NO_EMBEDDING_NORM:
        raise ValueError(f"embedding_norm {embedding_norm} trains in one process only (nproc 1): each rank would "
                         f"normalize its slice of the batch by its own statistics; got nproc {nproc}")
    return ({key: values.get(key) for key in PARAMETER_KEYS}
            | {"pair_weight": pair_weight, "embedding_norm": embedding_norm})


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def describe_objective(row) -> str:
    """The objective of a record or results row (a mapping with the cell's keys) in full:
    'cosface m=0.35 s=3.955 + triplet x1 (m=0.2, semihard TripletMarginMiner) + center lambda=0.01 (half_mean, paper
    rule, alpha 0.5)', 'arcface m=0.5 rad s=3.955 embedding batchnorm', '... + center lambda=0.1 (mean, paper rule,
    alpha 0.5, normalized features)'. A row from before heads existed is softmax without a pair loss; one from before
    a key existed is named without it."""
    get = row.get
    head = HEADS[get("head") if _present(get("head")) else DEFAULT_HEAD]
    words = [head.name, *(p.text(get(p.key)) for p in head.parameters if _present(get(p.key)))]
    if _present(get("embedding_norm")) and get("embedding_norm") != NO_EMBEDDING_NORM:
        words.append(f"embedding {get('embedding_norm')}")
    parts = [" ".join(words)]
    pair_name = get("pair_loss") if _present(get("pair_loss")) else NO_PAIR_LOSS
    if pair_name != NO_PAIR_LOSS:
        pair = PAIR_LOSSES[pair_name]
        details = [p.text(get(p.key)) for p in pair.parameters if _present(get(p.key))]
        if pair.miner:
            details.append(" ".join([*pair.miner_options.values(), pair.miner]))
        parts.append(f"{pair.name} x{get('pair_weight'):g} ({', '.join(details)})")
    if _present(get("lambda")) and get("lambda") > 0:
        space = get("center_space")
        on = f", {space} features" if _present(space) and space != DEFAULT_CENTER_SPACE else ""
        parts.append(f"center lambda={get('lambda'):g} ({get('convention')}, {get('rule')} rule, "
                     f"alpha {get('alpha'):g}{on})")
    return " + ".join(parts)
