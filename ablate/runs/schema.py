"""The run folder: what `ablate grid` and `ablate bench` write and `ablate report` reads, declared once.

    RUN_DIR/run.json          {"kind": "grid" | "bench" | "distributed" | "tune", "schema": SCHEMA,
                               "config_columns": [...], "config_types": {name: column} (grid and tune; the
                               types as ablate.runs.columns.Column.to_json declares them)}
    RUN_DIR/provenance.json   where the run came from (ablate.provenance), times
    grid:         grid.toml (the resolved spec), cells/<id>.json (one record per cell) and <id>.npz (its test
                  features), <id>.safetensors (its weights, with save_weights), results and summary (.parquet, .csv),
                  curves.parquet
    bench:        bench, numerics, train_step (.parquet, .csv); parts/<stage>/<key>.json while a run is under way
    distributed:  distributed (.parquet, .csv), from `ablate bench world`
    tune:         a grid's files for the final seeds of each objective's selected setting (grid.toml, written when
                  the search ends; cells/ holds the trials' cells too), tune.toml (the tune's spec), study.journal
                  (Optuna's journal storage: one study per objective), trials (.parquet, .csv: one row per trial)
    RUN_DIR/.lock             held by the one process writing the folder (ablate.runs.folder)

Schema versions (run.json's "schema"; ablate.runs.manifest reads it and refuses a newer one):

    0   no run.json (folders written before it): the kind is read off the files, a grid's config columns are
        SCHEMA_0_CONFIG_COLUMNS
    1   run.json with kind and schema, and a grid's config columns
    2   three-way splits: records hold validation metrics (val_<metric>, ablate.runs.record), scored_on_test, the
        options split_seed and val_fraction (config columns) and the status "pruned"; the kind "tune". A schema-1
        grid has no validation metrics and is read as it is (its config columns are its run.json's).

Every file read from a run folder is untrusted: the readers of ablate.runs check it and raise RunFolderError
naming the file and what is wrong. A cell record's keys are declared in ablate.runs.record.
"""

import hashlib
import json
import re
from pathlib import Path

from ablate.runs.columns import Column

KINDS = ("grid", "bench", "distributed", "tune")
KINDS_WITH_CELLS = ("grid", "tune")  # kinds whose folder holds cells/ (and the grid's tables)
KIND_COMMANDS = {"grid": "ablate grid", "bench": "ablate bench run", "distributed": "ablate bench world",
                 "tune": "ablate tune"}  # writers
SCHEMA = 2  # the newest schema version this ablate writes and reads
MANIFEST = "run.json"
PROVENANCE = "provenance.json"
GRID_SPEC = "grid.toml"
CELLS = "cells"
PARTS = "parts"
LOCK = ".lock"
SCRATCH = ".scratch"  # the cells' temp folders while a grid runs; one a killed run left is removed at the next start

# The grid keys of a schema-0 grid folder (the cell options of the ablate that wrote folders without run.json), with
# the types they have always had: its records hold them, and its cell ids hash them. A folder whose run.json declares
# no types (written before it did) reads its columns of these names with these types, any other as a number or text.
_TEXT, _COUNT, _NUMBER = Column("text"), Column("integer", 1.0), Column("number")
SCHEMA_0_CONFIG_TYPES = {
    "dataset": _TEXT, "data_dir": Column("text", nullable=True), "model": _TEXT, "feat_dim": _COUNT, "variant": _TEXT,
    "rule": _TEXT, "convention": _TEXT, "lambda": Column("number", 0.0), "alpha": _NUMBER, "epochs": _COUNT,
    "batch_size": _COUNT, "lr": _NUMBER, "optimizer": _TEXT, "momentum": _NUMBER, "weight_decay": _NUMBER,
    "lr_step": Column("integer", 0.0), "lr_gamma": _NUMBER, "seed": Column("integer"), "device": _TEXT,
    "num_classes": _COUNT, "synthetic_dim": _COUNT, "samples_per_class": _COUNT, "test_fraction": _NUMBER}
SCHEMA_0_CONFIG_COLUMNS = tuple(SCHEMA_0_CONFIG_TYPES)

# Config keys added after schema 1 whose unset value (None) a cell's id leaves out, so that the cells of a grid that
# does not use them keep the ids they had before the keys existed (their records may lack them).
OPTIONAL_CONFIG_KEYS = ("model_digest", "dataset_digest")

# The config keys a configuration's repetitions differ in: the seed, and the split seed that follows it unless set
# (ablate.train.config). Summaries, findings and objectives group cells by every other key.
SEED_KEYS = ("seed", "split_seed")


def setting_columns(config_columns: list | tuple) -> list:
    """The config columns that make a configuration: all but SEED_KEYS."""
    return [c for c in config_columns if c not in SEED_KEYS]


PRUNED = "pruned"  # a tuning trial stopped early for falling behind (ablate.tune): finished, never a result
FAILED = "failed"
FINISHED = ("ok", "diverged", PRUNED)
STATUSES = (*FINISHED, FAILED)

# grid tables
RESULTS, SUMMARY, CURVES = "results", "summary", "curves"
# tune files and tables
TUNE_SPEC = "tune.toml"
STUDY = "study.journal"
TRIALS = "trials"
MAX_STUDY_BYTES = 2**30  # Optuna's journal: a few hundred bytes per trial and epoch
CURVE_COLUMNS = ("cell_id", "epoch", "metric", "value")
PARQUET_ONLY = (CURVES,)  # every other table is written as .parquet and .csv
FEATURE_ARRAYS = ("features", "labels", "centers")  # in every cell's .npz
PREDICTIONS = "predictions"  # (N,) also in a cell's .npz; files written before cells saved it lack it
WEIGHTS_SUFFIX = ".safetensors"  # a cell's kept weights: model, head and centers (ablate.runs.weights)
MAX_WEIGHTS_BYTES = 2**36  # a cell's weights file: 64 GiB, beyond any model a cell of this suite trains

# bench tables
BENCH, NUMERICS, TRAIN_STEP = "bench", "numerics", "train_step"
DISTRIBUTED = "distributed"  # `ablate bench world`
DISTRIBUTED_COLUMNS = ("world", "form", "mode", "batch", "classes", "dim", "dtype", "device", "time_ms_p20",
                       "time_ms_p50", "time_ms_p80", "bytes_per_step", "collectives_per_step",
                       "centers_bytes_per_rank", "peak_mem_bytes", "note")
BENCH_COLUMNS = ("variant", "mode", "rule", "batch", "classes", "dim", "dtype", "device", "time_ms_p20", "time_ms_p50",
                 "time_ms_p80", "samples_per_s", "bytes", "gb_per_s", "peak_mem_bytes", "roof_fraction", "note")
TRAIN_STEP_COLUMNS = ("workload", "variant", "batch", "classes", "dim", "device", "samples_per_s", "time_ms_p20",
                      "time_ms_p50", "time_ms_p80", "note")
ERROR_COLUMNS = ("loss_rel_error", "grad_features_rel_error", "grad_centers_rel_error")
NUMERICS_COLUMNS = ("variant", "dtype", "convention", "batch", "classes", "dim", "feature_norm", *ERROR_COLUMNS, "note")
TEXT_COLUMNS = ("variant", "mode", "rule", "dtype", "device", "note", "workload", "convention", "form")

# Bounds on what a file of a run folder may claim, checked before it is loaded.
MAX_TABLE_BYTES = 2**30  # a parquet table: a 100,000-cell grid's results take a few tens of MB
MAX_FEATURES_BYTES = 2**31  # a cell's .npz, compressed
# and at most ablate.limits.DEFAULT_FEATURE_ROWS test rows in a cell's features ($ABLATE_MAX_FEATURE_ROWS)
MAX_FEATURE_DIM = 65_536  # feature dimension D, and classes C of the centers (C, D)

ID_LENGTH = 12  # hex digits: 48 bits, a collision is negligible for grids of millions of cells
_CELL_ID = re.compile(rf"[0-9a-f]{{{ID_LENGTH}}}")
COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]*")


class RunFolderError(ValueError):
    """A file of a run folder that cannot be used; the message names the file and what is wrong."""


class RunLockedError(RuntimeError):
    """Another process is writing to the run folder."""


def cell_id(config: dict) -> str:
    """The id of a resolved config (every option, as `expand` returns it), independent of key order; the keys of
    OPTIONAL_CONFIG_KEYS that are None are left out."""
    config = {k: v for k, v in config.items() if not (v is None and k in OPTIONAL_CONFIG_KEYS)}
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:ID_LENGTH]


def is_cell_id(text: object) -> bool:
    return isinstance(text, str) and _CELL_ID.fullmatch(text) is not None


def record_path(run_dir: str | Path, cell: str) -> Path:
    return Path(run_dir) / CELLS / f"{cell}.json"


def features_path(run_dir: str | Path, cell: str) -> Path:
    """RUN_DIR/cells/<id>.npz; the id is checked first, so that a table's value cannot point elsewhere."""
    _check_cell(run_dir, cell)
    return Path(run_dir) / CELLS / f"{cell}.npz"


def weights_path(run_dir: str | Path, cell: str) -> Path:
    """RUN_DIR/cells/<id>.safetensors: the cell's kept weights (a grid run with save_weights); the id checked first."""
    _check_cell(run_dir, cell)
    return Path(run_dir) / CELLS / f"{cell}{WEIGHTS_SUFFIX}"


def _check_cell(run_dir: str | Path, cell: str) -> None:
    if not is_cell_id(cell):
        raise RunFolderError(f"{Path(run_dir) / CELLS}: {cell!r} is not a cell id ({ID_LENGTH} hex digits)")


def table_path(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / f"{name}.parquet"
