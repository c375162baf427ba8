"""A cell's kept weights (RUN_DIR/cells/<id>.safetensors, `ablate train --save-weights FILE`): the file's layout,
declared once, and its checked reader. safetensors holds tensors and a header of strings; reading it runs no code
(no pickle).

    model.<key>    the trained model's state (its head's keys aside), as the cell built it from its config
    head.<key>     the head that turns features into logits (a pml head, or the model's `classifier`)
    centers        (C, D) float32: the learned centers
    metadata       format WEIGHTS_FORMAT, version, config (the cell's config, JSON), input_shape (JSON), head (the
                   head's place in the model: "classifier", "head", or "" for a model whose logits are its own)

read_weights_header(path) checks a file before anything is loaded: a regular file of bounded size, a safetensors
header, this format, a JSON config and input shape, a (C, D) centers tensor, no key outside the three groups.
kept_weights(run_dir, cell_id) finds a grid cell's weights file and record, both checked.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ablate.io import UnreadableFile, check_regular_file
from ablate.runs.manifest import read_manifest
from ablate.runs.readers import read_record
from ablate.runs.schema import MAX_WEIGHTS_BYTES, RunFolderError, record_path, weights_path

WEIGHTS_FORMAT = "ablate.cell-weights"
WEIGHTS_VERSION = "1"
MODEL_PREFIX, HEAD_PREFIX, CENTERS = "model.", "head.", "centers"


@dataclass(frozen=True)
class WeightsHeader:
    """What a weights file declares: the cell's config (by record key), the shape of one input, the head's place in
    the model, and every tensor's shape by name."""

    config: dict
    input_shape: tuple
    head: str
    shapes: dict


def read_weights_header(path: str | Path) -> WeightsHeader:
    """The checked header of a weights file (see the module docstring); RunFolderError naming the file otherwise."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        check_regular_file(path, MAX_WEIGHTS_BYTES)
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except UnreadableFile as exc:
        raise RunFolderError(str(exc)) from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if metadata.get("format") != WEIGHTS_FORMAT or metadata.get("version") != WEIGHTS_VERSION:
        raise RunFolderError(f"{path}: expected {WEIGHTS_FORMAT} version {WEIGHTS_VERSION} in its header, got format "
                             f"{metadata.get('format')!r} version {metadata.get('version')!r}")
    try:
        config, input_shape = json.loads(metadata.get("config", "")), json.loads(metadata.get("input_shape", ""))
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: its header's config and input_shape must be JSON ({exc})") from None
    if not isinstance(config, dict) or not (isinstance(input_shape, list)
                                            and all(isinstance(n, int) and n > 0 for n in input_shape)):
        raise RunFolderError(f"{path}: its header must hold a config object and an input_shape of positive integers")
    if len(shapes.get(CENTERS, ())) != 2:
        raise RunFolderError(f"{path}: expected a (C, D) tensor {CENTERS!r}, got shape {shapes.get(CENTERS)}")
    stray = [key for key in shapes if key != CENTERS and not key.startswith((MODEL_PREFIX, HEAD_PREFIX))]
    if stray:
        raise RunFolderError(f"{path}: tensors {', '.join(stray[:5])} are none of {MODEL_PREFIX}*, {HEAD_PREFIX}*, "
                             f"{CENTERS}")
    return WeightsHeader(config, tuple(input_shape), metadata.get("head", ""), shapes)


def kept_weights(run_dir: str | Path, cell_id: str) -> tuple[Path, dict]:
    """(the weights file, the record) of cell `cell_id` of the grid run in `run_dir`, both checked; RunFolderError
    naming what is missing (a folder that holds no grid run, an unknown cell, a cell that kept no weights)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest is None or manifest["kind"] != "grid":
        held = "no run.json" if manifest is None else f"a {manifest['kind']} run"
        raise RunFolderError(f"{run_dir}: expected a grid run folder (from `ablate grid`); it holds {held}")
    path = weights_path(run_dir, cell_id)  # the id checked first
    record_file = record_path(run_dir, cell_id)
    if not record_file.exists():
        raise RunFolderError(f"{run_dir}: no cell {cell_id} (no {record_file.name} among its cells)")
    record = read_record(record_file, manifest.get("config_columns"))
    if not path.exists():
        raise RunFolderError(f"{run_dir}: cell {cell_id} kept no weights; run its grid with `save_weights = true` or "
                             "--save-weights (and --force to retrain the cells that finished without them)")
    read_weights_header(path)
    return path, record
