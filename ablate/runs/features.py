"""A cell's test features (RUN_DIR/cells/<id>.npz): encoded (features_npz) and read back checked (read_features:
shapes, dtypes, label ranges, and the sizes the file claims checked before anything is loaded)."""

import io
from pathlib import Path
from typing import TypedDict

import numpy as np

from ablate.io import UnreadableFile, check_regular_file
from ablate.limits import DEFAULT_FEATURE_ROWS, FEATURE_ROWS_ENV, environment_limit
from ablate.runs.schema import (
    FEATURE_ARRAYS,
    MAX_FEATURE_DIM,
    MAX_FEATURES_BYTES,
    PREDICTIONS,
    RunFolderError,
)


class CellFeatures(TypedDict):
    """A cell's .npz as read_features gives it: its FEATURE_ARRAYS, then its PREDICTIONS (None in a file written
    before cells saved them)."""

    features: np.ndarray  # (N, D) float
    labels: np.ndarray  # (N,) int
    centers: np.ndarray  # (C, D) float
    predictions: np.ndarray | None  # (N,) int


def features_npz(features: np.ndarray, labels: np.ndarray, centers: np.ndarray, predictions: np.ndarray) -> bytes:
    """The .npz of a cell's test features (N, D) as float32, labels (N,) int64, centers (C, D) float32 and
    predictions (N,) int64, compressed. In an open-set cell the labels >= C are the held-out classes (no center,
    never predicted)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, features=features.astype(np.float32), labels=labels.astype(np.int64),  # FEATURE_ARRAYS
                        centers=centers.astype(np.float32), predictions=predictions.astype(np.int64))  # PREDICTIONS
    return buffer.getvalue()


def feature_row_limit() -> int:
    """The most test samples (rows) a cell's .npz may hold: $ABLATE_MAX_FEATURE_ROWS, else DEFAULT_FEATURE_ROWS.
    Reading a file loads every row; the limit keeps a file that claims millions from filling memory. A bad value is a
    ValueError naming the variable (the command line refuses it before any command starts)."""
    limit = environment_limit(FEATURE_ROWS_ENV)
    return DEFAULT_FEATURE_ROWS if limit is None else limit


def _array_shapes(npz: np.lib.npyio.NpzFile) -> dict:
    """name -> shape of every array of an open .npz, read from the headers alone (nothing is decompressed)."""
    archive = npz.zip
    if archive is None:
        raise ValueError("the .npz is closed")
    shapes = {}
    for name in npz.files:
        with archive.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(member)
        shapes[name] = shape
    return shapes


def _check_claimed_sizes(shapes: dict, path: Path) -> None:
    """The sizes the .npz's headers claim, within the row and dimension limits, and D >= 1."""
    rows = feature_row_limit()
    for name in (*FEATURE_ARRAYS, PREDICTIONS):
        shape = shapes.get(name)
        if shape is None:
            continue
        if shape and shape[0] > (MAX_FEATURE_DIM if name == "centers" else rows):
            limit = f"{MAX_FEATURE_DIM:,} classes" if name == "centers" else f"{rows:,} rows (${FEATURE_ROWS_ENV})"
            raise RunFolderError(f"{path}: {name} claims {shape[0]:,} rows, over the limit of {limit}")
        if len(shape) == 2 and not 1 <= shape[1] <= MAX_FEATURE_DIM:
            raise RunFolderError(f"{path}: {name} claims feature dimension D = {shape[1]:,}; expected 1 to "
                                 f"{MAX_FEATURE_DIM:,}")


def read_features(path: str | Path, holdout_classes: int = 0) -> CellFeatures:
    """A cell's .npz, checked: {"features": (N, D) float, "labels": (N,) int in [0, C + holdout_classes),
    "centers": (C, D) float, "predictions": (N,) int in [0, C), or None in a file written before cells saved
    them}. In an open-set cell the labels >= C are the classes held out of training (no center). The sizes the
    file claims are checked against feature_row_limit() and MAX_FEATURE_DIM before any array is loaded."""
    path = Path(path)
    try:
        with np.load(check_regular_file(path, MAX_FEATURES_BYTES), allow_pickle=False) as npz:
            missing = [k for k in FEATURE_ARRAYS if k not in npz.files]
            if missing:
                raise RunFolderError(f"{path}: missing array(s) {', '.join(missing)}")
            _check_claimed_sizes(_array_shapes(npz), path)
            features, labels, centers = (npz[k] for k in FEATURE_ARRAYS)
            predictions = npz[PREDICTIONS] if PREDICTIONS in npz.files else None
    except (RunFolderError, UnreadableFile) as exc:
        raise RunFolderError(str(exc)) from None
    except Exception as exc:  # zipfile, numpy and pickle refusals: a file that is not a plain .npz
        raise RunFolderError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None
    if features.ndim != 2 or centers.ndim != 2 or labels.ndim != 1:
        raise RunFolderError(f"{path}: expected features (N, D), labels (N,), centers (C, D); got shapes "
                             f"{features.shape}, {labels.shape}, {centers.shape}")
    if len(labels) != len(features) or features.shape[1] != centers.shape[1] or len(centers) == 0:
        raise RunFolderError(f"{path}: shapes do not agree: features {features.shape}, labels {labels.shape}, "
                             f"centers {centers.shape}")
    if not (np.issubdtype(features.dtype, np.floating) and np.issubdtype(centers.dtype, np.floating)
            and np.issubdtype(labels.dtype, np.integer)):
        raise RunFolderError(f"{path}: expected float features and centers and integer labels, got "
                             f"{features.dtype}, {centers.dtype}, {labels.dtype}")
    classes = len(centers) + holdout_classes
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise RunFolderError(f"{path}: labels must lie in [0, {classes}), got {labels.min()} to {labels.max()}")
    if predictions is not None:
        if predictions.shape != labels.shape or not np.issubdtype(predictions.dtype, np.integer):
            raise RunFolderError(f"{path}: expected integer predictions of shape {labels.shape}, got "
                                 f"{predictions.dtype} {predictions.shape}")
        if len(predictions) and (predictions.min() < 0 or predictions.max() >= len(centers)):
            raise RunFolderError(f"{path}: predictions must lie in [0, {len(centers)}), got {predictions.min()} to "
                                 f"{predictions.max()}")
    return CellFeatures(features=features, labels=labels, centers=centers, predictions=predictions)
