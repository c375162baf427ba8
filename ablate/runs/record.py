"""A cell's record: the flat JSON object one training cell leaves (RUN_DIR/cells/<id>.json, `ablate train --out`),
its fields and curves declared once.

    CellRecord      a trained cell (status "ok" or "diverged"): what `run_cell` builds; `to_dict()` is the record
    FailedRecord    a cell that raised: its config, status "failed", the error's last lines, its time
    CURVES_OF_EPOCHS   the per-epoch curves: "curve_<name>" in a record, <name> in the curves table, a label
    validation_key(metric)   a metric measured on the validation split: "val_<metric>" (the metric's own name is
                             its value on the test split)
    stamped(record, cell_id, stamp)   the record as the grid stores it: the code's commit and when it finished

The order of a dataclass's fields is the order of the record's keys, which the grid's results table keeps (its
columns after the config are the records' keys in order of appearance); `config`, `metrics` and `curves` are
spread into the flat record. The trainer (ablate.train.cell) and the grid's executors build records only through
these classes, the grid stamps them with `stamped`, and the tables, the readers and the report's curves read the
declarations here.
"""

from dataclasses import dataclass, fields

from ablate.provenance import now

CURVE_PREFIX = "curve_"  # a record's per-epoch lists; the curves table names them without it
VALIDATION_PREFIX = "val_"  # a metric on the validation split; the metric's own name holds its value on test


def validation_key(metric: str) -> str:
    """The record key of `metric` measured on the validation split."""
    return VALIDATION_PREFIX + metric


def validation_label(label: str) -> str:
    """The display label of a metric measured on the validation split."""
    return f"{label} (validation)"

TEXT_FIELDS = ("cell_id", "status", "error", "variant", "rule")  # strings wherever a record holds them


@dataclass(frozen=True)
class Curve:
    """A per-epoch curve of a training cell: `name` in the curves table, "curve_<name>" in a record.
    plotted: the report draws it; optional: a record holds it only when the cell measured it."""

    name: str
    label: str
    plotted: bool = True
    optional: bool = False

    @property
    def key(self) -> str:
        return CURVE_PREFIX + self.name


CURVES_OF_EPOCHS = (
    Curve("softmax_loss", "softmax loss"),  # the head's mean cross-entropy, margin included
    Curve("center_loss", "center loss"),  # the mean center loss, unweighted
    Curve("train_accuracy", "train accuracy"),
    Curve("pair_loss", "pair loss", plotted=False, optional=True),  # only in a cell with a pair loss
    # SphereFace's annealing weight lambda at each epoch's end: only in a cell that anneals
    Curve("annealing_weight", "annealing weight", plotted=False, optional=True),
    # the record's validation_metric on the validation split after each epoch: what a tuning trial is pruned on
    Curve("validation", "validation metric", plotted=False, optional=True),
)
PLOTTED_CURVES = {curve.name: curve.label for curve in CURVES_OF_EPOCHS if curve.plotted}

# Spread into the flat record instead of being one key each.
_SPREAD = ("config", "metrics")


def _flat(record: object) -> dict:
    """A record dataclass as the flat dict: fields in order, `config` and `metrics` spread, `curves` as curve_ keys."""
    flat: dict = {}
    for f in fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if f.name in _SPREAD:
            flat.update(value)
        elif f.name == "curves":
            flat.update({c.key: value[c.name] for c in CURVES_OF_EPOCHS if c.name in value
                         and (value[c.name] or not c.optional)})
        else:
            flat[f.name] = value
    return flat


@dataclass(frozen=True)
class CellRecord:
    """A trained cell. config: every option by record key ("lambda", not "lambda_"; split_seed names the split);
    metrics: every computed metric of the registry on the validation split (validation_key: "val_<name>"; none at
    val_fraction 0) and, when scored_on_test, on the test split (its own name); None where the cell diverged or was
    pruned, or where a metric is undefined on its split; curves: Curve name -> one value per finished epoch."""

    config: dict
    objective: str  # the objective in words (ablate.objectives.describe_objective)
    metrics: dict
    held_out_classes: str  # the dataset's ids of the classes held out, comma-separated
    scored_on_test: bool  # False: a tuning trial, which never read its test split (no test metrics, no features)
    validation_metric: str | None  # the metric of curve_validation (None: no per-epoch validation)
    train_samples_per_s: float | None
    train_time_s: float
    wall_time_s: float
    status: str  # "ok" | "diverged" | "pruned" (a tuning trial stopped for falling behind: never a result)
    diverged_epoch: int | None
    resolved_device: str
    torch_threads: int  # float sums, and so the trajectory, depend on it (per rank)
    world_size: int
    curves: dict

    def to_dict(self) -> dict:
        """The flat, JSON-serialisable record."""
        return _flat(self)


@dataclass(frozen=True)
class FailedRecord:
    """A cell that raised: its config (by record key), the error's last lines and its time until then."""

    config: dict
    status: str = "failed"
    error: str = ""
    wall_time_s: float | None = None

    def to_dict(self) -> dict:
        """The flat, JSON-serialisable record."""
        return _flat(self)


def stamped(record: dict, cell_id: str, stamp: dict) -> dict:
    """The record as a grid stores it: its cell id, the commit and dirtiness of the code (`stamp`:
    ablate.provenance.collect()) and when it finished."""
    return {**record, "cell_id": cell_id, "git_commit": stamp["git_commit"], "git_dirty": stamp["git_dirty"],
            "finished_at": now()}
