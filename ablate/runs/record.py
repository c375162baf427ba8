"""A cell's record: the flat JSON object one training cell leaves (RUN_DIR/cells/<id>.json, `ablate train --out`),
its fields and curves declared once.

    CellRecord      a trained cell (status "ok" or "diverged"): what `run_cell` builds; `to_dict()` is the record
    FailedRecord    a cell that raised: its config, status "failed", the error's last lines, its time
    CURVES_OF_EPOCHS   the per-epoch curves: "curve_<name>" in a record, <name> in the curves table, a label
    validation_key(metric)   a metric measured on the validation split: "val_<metric>" (the metric's own name is
                             its value on the test split)
    stamped(record, cell_id, stamp)   the record as the grid stores it: the code's commit and when it finished
    RecordSchema(config)   every column of a grid's records and results table, typed (ablate.runs.columns): the
                           config (as run.json declares it), the fields below, every metric, the curves; every
                           reader checks a record (check_record) and the results table (check_table) against it

The order of a dataclass's fields is the order of the record's keys, which the grid's results table keeps (its
columns after the config are the records' keys in order of appearance); `config`, `metrics` and `curves` are
spread into the flat record. The trainer (ablate.train.cell) and the grid's executors build records only through
these classes, the grid stamps them with `stamped`, and the tables, the readers and the report's curves read the
declarations here. Each field declares its column (type and range) in its metadata.
"""

from dataclasses import dataclass, field, fields

import pandas as pd

from ablate.metrics import METRICS, POINTS, RATIO, Metric
from ablate.provenance import now
from ablate.runs.columns import Column, shown
from ablate.runs.schema import FINISHED, SCHEMA_0_CONFIG_TYPES, STATUSES, RunFolderError

CURVE_PREFIX = "curve_"  # a record's per-epoch lists; the curves table names them without it
VALIDATION_PREFIX = "val_"  # a metric on the validation split; the metric's own name holds its value on test
CURVE_COLUMN = Column("curve")  # a curve: one number per epoch, NaN and inf where the loss diverged


def validation_key(metric: str) -> str:
    """The record key of `metric` measured on the validation split."""
    return VALIDATION_PREFIX + metric


def validation_label(label: str) -> str:
    """The display label of a metric measured on the validation split."""
    return f"{label} (validation)"


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


def typed(column: Column) -> dict:
    """The metadata of a record field holding values of `column`."""
    return {"column": column}


TEXT = Column("text")
TIME_S = Column("number", 0.0)
COUNT = Column("integer", 1.0)


@dataclass(frozen=True)
class CellRecord:
    """A trained cell. config: every option by record key ("lambda", not "lambda_"; split_seed names the split);
    metrics: every computed metric of the registry on the validation split (validation_key: "val_<name>"; none at
    val_fraction 0) and, when scored_on_test, on the test split (its own name); None where the cell diverged or was
    pruned, or where a metric is undefined on its split; curves: Curve name -> one value per finished epoch."""

    config: dict  # its columns: as the run folder declares them (run.json's config_types)
    objective: str = field(metadata=typed(TEXT))  # the objective in words (ablate.objectives.describe_objective)
    metrics: dict  # its columns: every metric of the registry (metric_column), on test and on validation
    held_out_classes: str = field(metadata=typed(TEXT))  # the dataset's ids of the classes held out, comma-separated
    # False: a tuning trial, which never read its test split (no test metrics, no features)
    scored_on_test: bool = field(metadata=typed(Column("flag")))
    # the metric of curve_validation (None: no per-epoch validation)
    validation_metric: str | None = field(metadata=typed(Column("text", nullable=True)))
    train_samples_per_s: float | None = field(metadata=typed(Column("number", 0.0, nullable=True, infinite=True)))
    train_time_s: float = field(metadata=typed(TIME_S))
    wall_time_s: float = field(metadata=typed(TIME_S))
    # "ok" | "diverged" | "pruned" (a tuning trial stopped for falling behind: never a result)
    status: str = field(metadata=typed(Column("text", choices=FINISHED)))
    diverged_epoch: int | None = field(metadata=typed(Column("integer", 1.0, nullable=True)))
    resolved_device: str = field(metadata=typed(TEXT))
    torch_threads: int = field(metadata=typed(COUNT))  # float sums, and so the trajectory, depend on it (per rank)
    world_size: int = field(metadata=typed(COUNT))
    curves: dict  # its columns: CURVE_COLUMN

    def to_dict(self) -> dict:
        """The flat, JSON-serialisable record."""
        return _flat(self)


@dataclass(frozen=True)
class FailedRecord:
    """A cell that raised: its config (by record key), the error's last lines and its time until then."""

    config: dict
    status: str = field(default="failed", metadata=typed(Column("text", choices=("failed",))))
    error: str = field(default="", metadata=typed(TEXT))
    wall_time_s: float | None = field(default=None, metadata=typed(Column("number", 0.0, nullable=True)))

    def to_dict(self) -> dict:
        """The flat, JSON-serialisable record."""
        return _flat(self)


# What the grid adds to a record (stamped, and the executor's host).
STAMP_COLUMNS = {"cell_id": TEXT, "git_commit": Column("text", nullable=True),
                 "git_dirty": Column("flag", nullable=True), "finished_at": Column("text", nullable=True), "host": TEXT}


def stamped(record: dict, cell_id: str, stamp: dict) -> dict:
    """The record as a grid stores it: its cell id, the commit and dirtiness of the code (`stamp`:
    ablate.provenance.collect()) and when it finished."""
    return {**record, "cell_id": cell_id, "git_commit": stamp["git_commit"], "git_dirty": stamp["git_dirty"],
            "finished_at": now()}


def record_columns() -> dict:
    """name -> Column of a record's own keys (the typed fields of CellRecord and FailedRecord, the stamp); a status
    is one of STATUSES whichever record holds it."""
    columns = {f.name: f.metadata["column"] for record in (CellRecord, FailedRecord) for f in fields(record)
               if "column" in f.metadata}
    return {**columns, "status": Column("text", choices=STATUSES), **STAMP_COLUMNS}


def metric_column(metric: Metric) -> Column:
    """The column of a metric: a number or null (NaN: undefined on the cell's test set); a share (POINTS) in [0,
    1]; a ratio (RATIO) >= 0, inf where the classes collapsed to points."""
    if metric.change == POINTS:
        return Column("number", 0.0, 1.0, nullable=True)
    if metric.change == RATIO:
        return Column("number", 0.0, nullable=True, infinite=True)
    return Column("number", nullable=True)


def metric_columns() -> dict:
    """name -> Column of every metric of the registry, on the test split (its name) and on validation (val_<name>)."""
    return {key: metric_column(metric) for metric in METRICS for key in (metric.name, validation_key(metric.name))}


# A config column of a folder whose run.json declares no types (written before it did), beyond schema 0's: a number
# or text.
UNDECLARED_CONFIG = Column("scalar", nullable=True)
# A key no schema declares (an older or newer record's): a JSON scalar, never a list or an object.
_UNDECLARED = (Column("scalar", nullable=True, infinite=True), Column("flag"))


@dataclass(frozen=True)
class RecordSchema:
    """The columns of a grid's records and results table: `config` (name -> Column, the grid keys in the run's
    order), the record's own fields, every metric of the registry and the curves."""

    config: dict

    def columns(self) -> dict:
        """name -> Column of every declared column: the metrics, the record's fields (which win over a metric of
        the same name: train_time_s), then the config."""
        return {**metric_columns(), **record_columns(), **self.config}

    def check_record(self, record: dict, path) -> None:
        """Raise RunFolderError naming `path` and the first key of `record` whose value breaks its column."""
        columns = self.columns()
        for key, value in record.items():
            column = columns.get(key) or (CURVE_COLUMN if key.startswith(CURVE_PREFIX) else None)
            if column is None:
                if not any(c.fits(value) for c in _UNDECLARED):
                    raise RunFolderError(f"{path}: {key} must be a number, text, true, false or null (a key this "
                                         f"ablate does not declare), got {shown(value)}")
            elif (problem := column.problem(key, value)) is not None:
                raise RunFolderError(f"{path}: {problem}")

    def check_table(self, table: pd.DataFrame, path, notes: list) -> pd.DataFrame:
        """The rows of `table` whose every declared column fits, with a note per column that left rows out. A
        column of the wrong type (text or booleans where numbers go, numbers where text goes) is a RunFolderError
        naming `path` and the column: the table cannot be trusted, and its rows are rebuilt from the records."""
        columns = self.columns()
        own = {*record_columns(), *metric_columns()} - set(self.config)
        keep = pd.Series(True, index=table.index)
        for name in table.columns:
            column = columns.get(name)
            if column is None:
                continue
            series = table[name]
            if not column.dtype_fits(series):
                example = series.dropna().iloc[0] if series.notna().any() else None
                raise RunFolderError(f"{path}: column {name} must hold {column.describe()}, got {series.dtype} "
                                     f"values such as {shown(example)}")
            fits = column.row_fits(series)
            if name in own:  # a record lacks what its status does not measure (a failed cell's metrics, an ok
                fits |= series.isna()  # cell's error): its own fields and metrics may be empty in the table
            if not fits.all():
                bad = series[~fits]
                examples = ", ".join(list(dict.fromkeys(map(shown, bad)))[:3])
                notes.append(f"{path}: {len(bad):,} row(s) left out: column {name} must be {column.describe()}, "
                             f"got {examples}")
                keep &= fits
        return table[keep]


def record_schema(config_columns: dict | list | tuple | None = None) -> RecordSchema:
    """The schema of records whose config columns are `config_columns`: name -> Column as run.json declares them;
    or their names alone (a folder that declares no types: schema 0's types where they name a column, else a number
    or text); or None (no config known: the record's own fields alone are typed)."""
    if isinstance(config_columns, dict):
        return RecordSchema(dict(config_columns))
    return RecordSchema({name: SCHEMA_0_CONFIG_TYPES.get(name, UNDECLARED_CONFIG) for name in config_columns or ()})
