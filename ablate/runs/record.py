"""A cell's record: the flat JSON object one training cell leaves (RUN_DIR/cells/<id>.json, `ablate train --out`),
its fields and curves declared once.

    CellRecord      a trained cell (status "ok" or "diverged"): what `run_cell` builds; `to_dict()` is the record
    FailedRecord    a cell that raised: its config, status "failed", the error's last lines, its time
    CURVES_OF_EPOCHS   the per-epoch curves: "curve_<name>" in a record, <name> in the curves table, a label
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
# The record fields that count a cell's samples, by the split they count (the report's study names them).
SAMPLE_COUNTS = {"train_samples": "train", "test_samples": "test"}
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
    """A trained cell. config: every option by record key ("lambda", not "lambda_"); metrics: every computed metric
    of the registry by name (None where the cell diverged or the metric is undefined on its test set); curves:
    Curve name -> one value per finished epoch."""

    config: dict
    objective: str  # the objective in words (ablate.objectives.describe_objective)
    metrics: dict
    split_seed: int  # the train/test split (and held-out classes) this cell was drawn with
    held_out_classes: str  # the dataset's ids of the classes held out, comma-separated
    train_samples: int  # the samples it trained on (the held-out classes' left out); SAMPLE_COUNTS
    test_samples: int  # the test samples it was evaluated on (the held-out classes' included)
    train_samples_per_s: float | None
    train_time_s: float
    wall_time_s: float
    status: str  # "ok" | "diverged"
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
