"""`CellConfig`: every option of one training cell, validated, with the grid's key names."""

import math
import typing
from dataclasses import asdict, dataclass, field, fields

from ablate.data import DATASETS, recipe
from ablate.distributed import FORMS
from ablate.io import canonical_path
from ablate.limits import FLOAT32_MAX, INT64_MAX, SEED_MAX, OptionError, SearchRange, check_int_option
from ablate.loss.conventions import CONVENTIONS, conventions_help
from ablate.loss.devices import AUTO, training_devices
from ablate.loss.registry import DEFAULT_VARIANT, VARIANTS
from ablate.loss.rules import RULES, rules_help
from ablate.messages import listed
from ablate.models import EMBEDDING_NORMS, MODELS
from ablate.objectives import (
    CENTER_SPACES,
    DEFAULT_CENTER_SPACE,
    DEFAULT_HEAD,
    DEFAULT_PAIR_WEIGHT,
    HEADS,
    NO_PAIR_LOSS,
    PAIR_LOSSES,
    PARAMETER_KEYS,
    center_spaces_help,
    embedding_norm_help,
    feat_dim_help,
    head_entry,
    head_names,
    pair_loss_names,
    papers_help,
    parameter_help,
    resolve_objective,
)
from ablate.registry import Registry
from ablate.runs.columns import Column, shown

OPTIMIZERS = ("sgd", "adam")
SEED = Column("integer", 0, SEED_MAX)  # what scikit-learn's splitter, numpy and torch all take (ablate.limits)

# The options that reach a cell's model only through lambda * center loss and the centers' own step: at lambda 0 the
# loss is the head's + 0 * center loss, whose gradient is exactly 0, so these change none of the model's weights, only
# the centers and what is measured on them (the center loss, nearest-center accuracy, center-to-mean distance).
# Cells at lambda 0 that differ in them alone share one training (ablate.train.followers; tests/train/test_shared.py
# trains such cells apart and compares them bit for bit). Not the variant: a variant is what a grid puts under test,
# and what it does at lambda 0 (a NaN, a device it cannot run on) is its own cell's outcome.
INERT_AT_ZERO_LAMBDA = ("rule", "convention", "alpha", "center_space")


def _option(default, help_text: str, choices=None, search: SearchRange | None = None, searched_with: str | None = None,
            *, derived: bool = False):
    """A dataclass field carrying its CLI help and, for a choice, the valid values: a Registry (read when a value
    is checked, so that installed plugins and later registrations are choices too), a tuple, or a function that
    returns them when asked. search: the range `ablate tune` searches it over (ablate.tune.space); searched_with: the
    option (by field name) that must be non-zero for this one to matter (alpha moves centers only under lambda > 0).
    derived: filled in from the other options, never a command-line flag."""
    return field(default=default, metadata={"help": help_text, "choices": choices, "search": search,
                                            "searched_with": searched_with, "derived": derived})


FROM_RECIPE = " Default: the dataset's recipe (ablate.data.registry)."


def _recipe_option(help_text: str, choices=None, search: SearchRange | None = None):
    """An option whose default is the dataset's recipe (None until __post_init__ fills it in)."""
    return _option(None, help_text + FROM_RECIPE, choices, search)


@dataclass(frozen=True)
class CellConfig:
    """One training cell. The defaults train a digits cell in a few seconds on 2 CPU cores; model, epochs,
    batch_size, lr, lr_step, lr_gamma and convention left unset (None) take the dataset's recipe; feat_dim,
    embedding_norm and the head's parameters left unset take the head's recipe (ablate.objectives).

    In records, grids and the CLI the field lambda_ is called "lambda" (see KEY_NAMES).
    """

    dataset: str = _option("digits", "Dataset (all offline), or a factory of yours: pkg.module:factory or "
                                     "path/to/file.py:factory (see the README).", DATASETS)
    data_dir: str | None = _option(None, "Folder of the fashion-mnist IDX .gz files (default "
                                         "/usr/share/datasets/fashion-mnist; the other datasets read no folder). "
                                         "Recorded resolved: absolute, links followed, in Unicode NFC.")
    model: str = _recipe_option("Model; auto = LeNet++ for 28x28 images, else the MLP; or a factory of yours: "
                                "pkg.module:factory or path/to/file.py:factory (see the README).", MODELS)
    feat_dim: int = _option(None, "Feature (embedding) dimension; unset: the head's recipe (" + feat_dim_help() + ").")
    variant: str = _option(DEFAULT_VARIANT, "Center-loss implementation (`ablate variants` lists them).", VARIANTS)
    rule: str = _option("paper", f"Center-update rule: {rules_help()}.", RULES)
    convention: str = _recipe_option(f"Loss normalization: {conventions_help()}.", CONVENTIONS)
    lambda_: float = _option(0.1, "Weight of the center loss (0 = softmax alone).", search=SearchRange(1e-4, 1.0))
    # alpha's search stops at the rule's own bound too (Rule.max_stable_alpha)
    alpha: float = _option(0.5, "Center learning rate.", search=SearchRange(0.01, 1.0), searched_with="lambda_")
    epochs: int = _recipe_option("Training epochs.")
    batch_size: int = _recipe_option("Batch size (per process: with --nproc N the global batch is N times it).")
    lr: float = _recipe_option("Learning rate of the model.", search=SearchRange(1e-3, 0.3))
    optimizer: str = _option("sgd", "Optimizer of the model.", OPTIMIZERS)
    momentum: float = _option(0.9, "SGD momentum.")
    weight_decay: float = _option(5e-4, "Weight decay of the model's optimizer.")
    lr_step: int = _recipe_option("Epochs between learning-rate decays (0 = constant).")
    lr_gamma: float = _recipe_option("Factor of each learning-rate decay.")
    seed: int = _option(0, "Seed of the weights, centers and batch order, and (unless --split-seed) of the split: an "
                           f"integer in [0, {SEED_MAX}] (what scikit-learn's splitter takes).")
    split_seed: int = _option(None, "Seed of the train/validation/test split and of the held-out classes; unset: "
                                    "--seed.")
    device: str = _option(AUTO, "Device; auto = CUDA when present.", training_devices)
    num_classes: int = _option(10, "Number of classes (synthetic data; the others have 10).")
    synthetic_dim: int = _option(32, "Input dimension of the synthetic data.")
    samples_per_class: int = _option(200, "Samples per class of the synthetic data.")
    test_fraction: float = _option(0.2, "Test share of the split drawn per seed (all datasets but fashion-mnist, "
                                        "which keeps the release's split).")
    val_fraction: float = _recipe_option("Validation share of the training part (what the test split leaves), "
                                         "stratified; 0: no validation split.")
    nproc: int = _option(1, "Processes to train in (torch.distributed: gloo on the CPU, nccl on CUDA, one GPU "
                            "each), each with its slice of every batch.")
    distributed: str = _option("replicated", "With nproc > 1: every rank holds all centers (replicated) or its "
                                             "slice of the classes (sharded).", FORMS)
    holdout_classes: int = _option(0, "Open set: hold K classes (drawn per seed) out of training; retrieval, "
                                      "verification and compactness are measured on their test samples, accuracy on "
                                      "the others.")
    # The objective besides center loss (ablate.objectives): unset parameters take the paper's value.
    head: str = _option(DEFAULT_HEAD, f"Classification head on the features ({papers_help(HEADS)}).", head_names)
    margin: float | None = _option(None, "Margin of the head, in its paper's unit; unset: the paper's value ("
                                         + parameter_help("margin") + ").")
    scale: float | None = _option(None, "Scale s of the head's logits; unset: the head's recipe ("
                                        + parameter_help("scale") + ").")
    pair_loss: str = _option(NO_PAIR_LOSS, "Pair loss added to the head's loss, on L2-normalized features ("
                                           + papers_help(PAIR_LOSSES) + ").", pair_loss_names)
    pair_weight: float | None = _option(None, f"Weight of the pair loss, > 0 and at most {FLOAT32_MAX:.3g} "
                                              f"(float32); unset: {DEFAULT_PAIR_WEIGHT:g} with a pair loss.")
    pair_margin: float | None = _option(None, "Margin of the pair loss; unset: the paper's value ("
                                              + parameter_help("pair_margin") + ").")
    embedding_norm: str | None = _option(None, "Normalization of the embedding (the features), a layer after the "
                                               "model's feature layer; unset: the head's recipe ("
                                               + embedding_norm_help() + ").", tuple(EMBEDDING_NORMS))
    center_space: str = _option(DEFAULT_CENTER_SPACE, f"Space center loss works in: {center_spaces_help()}.",
                                tuple(CENTER_SPACES))
    # SphereFace's annealing of its target logit (ablate.objectives.annealing_weight); unset: the paper's schedule.
    anneal_base: float | None = _option(None, "SphereFace: the annealed weight's start lambda0 ("
                                              + parameter_help("anneal_base") + ").")
    anneal_gamma: float | None = _option(None, "SphereFace: gamma of lambda0 (1 + gamma t)^-power, t the training "
                                               "step (" + parameter_help("anneal_gamma") + ").")
    anneal_power: float | None = _option(None, "SphereFace: power of the annealing (" + parameter_help("anneal_power")
                                               + ").")
    anneal_min: float | None = _option(None, "SphereFace: the annealed weight's floor lambda_min ("
                                             + parameter_help("anneal_min") + ").")

    # The sha256 of the factory's file (12 hex digits) of a model or dataset outside the package, filled in: part of
    # the cell's id, so that an edited model or dataset re-runs its cells (None for the built-ins).
    model_digest: str | None = _option(None, "Digest of the model factory's file (filled in).", derived=True)
    dataset_digest: str | None = _option(None, "Digest of the dataset factory's file (filled in).", derived=True)

    def __post_init__(self):
        options = recipe(self.dataset).options()
        model = self.model if self.model is not None else options["model"]
        # unset options: the model factory's recipe first, then the dataset's
        for name, value in {**options, **MODELS.get(model).recipe, "model": model}.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.feat_dim is None:
            object.__setattr__(self, "feat_dim", head_entry(self.head).feat_dim)
        entries = {}  # the registry entry each registry-backed option names, looked up once
        for f in fields(self):
            value = getattr(self, f.name)
            choices = f.metadata["choices"]
            if isinstance(choices, Registry):
                entries[f.name] = choices.get(value)  # else "unknown rule 'x'; expected one of ..."
            elif value is None and f.default is None:
                pass  # unset: its recipe fills it in below (resolve_objective)
            elif (allowed := option_choices(f)) is not None and value not in allowed:
                raise ValueError(f"unknown {key_name(f.name)} {value!r}; expected one of {', '.join(allowed)}")
            number = _number_type(f.type)
            if number is int and value is not None:
                object.__setattr__(self, f.name, _as_int(f.name, value))
            elif number is float and value is not None:
                object.__setattr__(self, f.name, _as_float(f.name, value))
        for key, entry in (("model_digest", entries["model"]), ("dataset_digest", entries["dataset"])):
            _fill_digest(self, key, entry)
        object.__setattr__(self, "split_seed", self.seed if self.split_seed is None
                           else _as_int("split_seed", self.split_seed))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", _folder(self.data_dir))
        _check_ranges(self, entries)

    @classmethod
    def from_dict(cls, values: dict) -> "CellConfig":
        """A config from grid/record keys ("lambda", not "lambda_"); unknown keys raise a ValueError listing the
        valid ones."""
        valid = [key_name(f.name) for f in fields(cls)]
        unknown = [key for key in values if key not in valid]
        if unknown:
            raise ValueError(f"unknown cell option(s) {listed(map(shown, unknown))}; expected keys among "
                             f"{', '.join(valid)}")
        return cls(**{field_name(key): value for key, value in values.items()})

    def to_dict(self) -> dict:
        """The options by grid/record key, in field order ("lambda", not "lambda_")."""
        return {key_name(name): value for name, value in asdict(self).items()}


def shared_training_key(config: dict) -> tuple | None:
    """What the training of a cell (a resolved config by record key, as CellConfig.to_dict gives it) depends on: its
    options but INERT_AT_ZERO_LAMBDA, at lambda 0 in one process; cells with equal keys train the same model. None
    for a cell whose training no other shares: lambda above 0, or several processes (each rank steps its own
    centers)."""
    if config["lambda"] != 0 or config["nproc"] != 1:
        return None
    return tuple((key, repr(value)) for key, value in config.items() if key not in INERT_AT_ZERO_LAMBDA)
def _fill_digest(config: CellConfig, key: str, entry) -> None:
    """Set `key` to the digest of the file of the factory `entry` (a Model or DatasetSource) builds with (None for a
    built-in); a digest already given (a planned cell's) must be that one: the file changed since otherwise."""
    digest = None if entry.factory is None else entry.factory.digest
    given = getattr(config, key)
    if given is not None and given != digest:
        raise ValueError(f"{key} {given!r} was planned for {entry.name}, whose file now hashes to {digest!r}: it "
                         "changed since the cell was planned; plan it again (rerun the command)")
    object.__setattr__(config, key, digest)


def option_choices(f) -> tuple | None:
    """The valid values of the CellConfig field `f` (None: any value of its type)."""
    choices = f.metadata["choices"]
    if isinstance(choices, Registry):
        return choices.names()
    return choices() if callable(choices) else choices


KEY_NAMES = {"lambda_": "lambda"}  # dataclass field -> grid/record key, where they differ
FIELD_NAMES = {key: name for name, key in KEY_NAMES.items()}


def key_name(name: str) -> str:
    return KEY_NAMES.get(name, name)


def field_name(key: str) -> str:
    return FIELD_NAMES.get(key, key)


def _number_type(annotation) -> type | None:
    """int or float for a field annotated `int`, `float`, `int | None` or `float | None`; None otherwise."""
    types = [t for t in (typing.get_args(annotation) or (annotation,)) if t is not type(None)]
    return types[0] if len(types) == 1 and types[0] in (int, float) else None


def _as_int(name: str, value) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value)):
        raise OptionError(key_name(name), f"{key_name(name)} must be an integer, got {value!r}")
    try:
        return check_int_option(key_name(name), int(value), low=-INT64_MAX - 1)
    except ValueError as exc:
        raise OptionError(key_name(name), str(exc)) from None


def _as_float(name: str, value) -> float:
    """A float option as a float: finite and within float32's range (lambda, lr, a head's scale, a pair weight:
    each multiplies float32 tensors)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(key_name(name), f"{key_name(name)} must be a finite number, got {value!r}")
    if abs(value) > FLOAT32_MAX:
        raise OptionError(key_name(name), f"{key_name(name)} must be at most {FLOAT32_MAX:.3g} in magnitude "
                                          f"(float32), got {value!r}")
    return float(value)


def _folder(value) -> str:
    """data_dir as a cell records it and hashes it into its id: the folder's one spelling (ablate.io.canonical_path:
    absolute, links resolved, Unicode NFC unless only another spelling exists), so that two spellings of one folder
    are one cell. A NUL (no path holds one) or a lone surrogate (not UTF-8, which every record is) is refused."""
    text = value if isinstance(value, str) else str(value)
    if "\0" in text:
        raise OptionError("data_dir", f"data_dir must be a path, which holds no NUL character, got {text!r}")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise OptionError("data_dir", f"data_dir must be a path that is valid UTF-8 (every table and record is), "
                                      f"got {text!r}")
    return canonical_path(text)


def normalized_option(key: str, value):
    """A grid's axis value as the cell will record it (data_dir resolved, see _folder), so that grid.toml holds what
    the records hold; any other value as it is."""
    return _folder(value) if key == "data_dir" and isinstance(value, str) else value


def config_columns() -> dict[str, Column]:
    """The grid keys, in CellConfig's field order ("lambda", not "lambda_"), each with its type (name ->
    ablate.runs.columns.Column), as a grid's run.json declares them (config_types) and every reader checks them: the
    config columns of every table of a run folder and the keys a cell's id hashes. int options are integers, float
    options numbers, the others text; null where an option may be unset; ranges from RANGES."""
    kinds: dict[object, str] = {int: "integer", float: "number", bool: "flag"}  # by annotation; any other: text
    types = {}
    for f in fields(CellConfig):
        nullable = type(None) in typing.get_args(f.type)
        kind = kinds.get(_number_type(f.type) or f.type, "text")
        types[key_name(f.name)] = RANGES.get(f.name) or Column(kind, nullable=nullable)
    return types


_COUNT, _POSITIVE_COUNT, _NON_NEGATIVE = Column("integer", 0), Column("integer", 1), Column("number", 0)
# The range of each numeric option that has one of its own (alpha's is its rule's, a margin's its head's): what
# CellConfig refuses and what a grid's run.json declares (config_types).
RANGES = {"feat_dim": _POSITIVE_COUNT, "epochs": _POSITIVE_COUNT, "batch_size": _POSITIVE_COUNT, "lr_step": _COUNT,
          "num_classes": Column("integer", 2), "nproc": _POSITIVE_COUNT, "synthetic_dim": _POSITIVE_COUNT,
          "samples_per_class": Column("integer", 2), "lambda_": _NON_NEGATIVE, "weight_decay": _NON_NEGATIVE,
          "lr": Column("number", 0, math.inf, low_open=True, high_open=True),
          "test_fraction": Column("number", 0, 1, low_open=True, high_open=True),
          "momentum": Column("number", 0, 1, high_open=True), "lr_gamma": Column("number", 0, 1, low_open=True),
          "val_fraction": Column("number", 0, 1, high_open=True), "seed": SEED, "split_seed": SEED,
          "holdout_classes": _COUNT}
_WHY = {"seed": " (what scikit-learn's splitter and numpy's generators take)",
        "split_seed": " (what scikit-learn's splitter and numpy's generators take)",
        "val_fraction": " (0: no validation split)"}


def _check_ranges(c: CellConfig, entries: dict) -> None:
    """Each numeric option in its valid range; the error names the option, the range and the value. entries: the
    registry entries of the options that name one (dataset, rule, ...)."""
    for name, column in RANGES.items():
        value = getattr(c, name)
        if not column.fits(value):
            key = key_name(name)
            raise OptionError(key, f"{key} must {column.range_phrase()}{_WHY.get(key, '')}, got {value}")
    dataset = entries["dataset"]
    for name in dataset.ignores:
        default = CellConfig.__dataclass_fields__[name].default
        if getattr(c, name) != default:
            readers = [d.name for d in DATASETS if name not in d.ignores]
            raise OptionError(name, f"{name} does not apply to dataset {c.dataset}, which ignores it (it applies to "
                                    f"{', '.join(readers)}); leave it unset for {c.dataset} (in a grid: give it in an "
                                    "[[also]] table of those datasets)")
    rule = entries["rule"]
    rule.check_alpha(c.alpha)
    classes = entries["dataset"].class_count(c.num_classes)
    if c.holdout_classes and not 2 <= c.holdout_classes <= classes - 2:
        raise ValueError(f"holdout_classes must be 0 (closed set) or lie in [2, {classes - 2}] for {c.dataset} with "
                         f"{classes} classes (two held out to compare, two left to train on), got {c.holdout_classes}")
    # the centers take one step per global batch (every rank's slice: ablate.distributed), so that is the B
    try:
        rule.check_stable(c.alpha, c.convention, c.batch_size * c.nproc)
    except ValueError as error:
        if c.nproc == 1:
            raise
        raise ValueError(f"{error} Under nproc {c.nproc} the batch is the global one: batch_size {c.batch_size} "
                         f"x nproc {c.nproc}.") from None
    objective = resolve_objective(c.head, c.pair_loss, {key: getattr(c, key) for key in PARAMETER_KEYS},
                                  c.pair_weight, c.embedding_norm, batch_size=c.batch_size,
                                  classes=classes - c.holdout_classes, feat_dim=c.feat_dim, nproc=c.nproc)
    for name, value in objective.items():
        object.__setattr__(c, name, value)
