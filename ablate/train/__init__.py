"""One training cell: `CellConfig` (every option) and `run_cell` (train, evaluate, return a flat record)."""

from ablate.train.cell import run_cell
from ablate.train.config import CellConfig

__all__ = ["CellConfig", "run_cell"]
