"""A bench run's finished units while it is under way (RUN_DIR/parts/<stage>/<key>.json): what lets an interrupted
`ablate bench` resume where it stopped. A finished run removes them (ablate.runs.folder)."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ablate.io import atomic_write_json
from ablate.runs.readers import read_json
from ablate.runs.schema import PARTS, RunFolderError


class PartStore:
    """Finished units of a run, one JSON list of rows per unit under RUN_DIR/parts/<stage>/<key>.json.

    parts/manifest.json names what the units were measured for (the suite with its timing, the device, the
    code's commit): parts left by a different study are discarded, never mixed into this one.
    """

    def __init__(self, run_dir: str | Path, measured_for: dict):
        self.root = Path(run_dir) / PARTS
        self.measured_for = json.loads(json.dumps(measured_for, default=str))  # as it reads back from JSON
        self.discarded = 0

    def open(self) -> "PartStore":
        """Keep the parts of an interrupted run of the same study; discard any other (counted in `discarded`)."""
        manifest = self.root / "manifest.json"
        if self.root.exists() and (not manifest.exists() or self._read(manifest, dict) != self.measured_for):
            self.discarded = sum(1 for _ in self.root.glob("*/*.json"))
            self.clear()
        if not manifest.exists():
            atomic_write_json(manifest, self.measured_for)
        return self

    @staticmethod
    def _read(path: Path, expected: type):
        """The JSON in a part file, or None (with a line saying why) when it is not a valid `expected`."""
        try:
            value = read_json(path, expected)
            if expected is list and not (value and all(isinstance(row, dict) for row in value)):
                raise RunFolderError(f"{path}: expected a non-empty array of row objects")
            return value
        except RunFolderError as exc:
            tqdm.write(f"{exc}; measured again")
            return None

    def rows(self, stage: str, key: str, measure: Callable[[], list]) -> list:
        """The stored rows of this unit, or measure() them and store them atomically (also when the stored
        file is not a valid list of rows)."""
        path = self.root / stage / f"{key}.json"
        if path.exists() and (stored := self._read(path, list)) is not None:
            return stored
        rows = measure()
        atomic_write_json(path, rows)
        return rows

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
