"""The run folder from both sides: what `ablate grid` and `ablate bench` write and `ablate report` reads.

    schema     the layout, declared once: file names, kinds, the schema version, statuses, columns, bounds, errors
    record     a cell's record: its fields in order and its per-epoch curves (CellRecord, FailedRecord, Curve)
    manifest   run.json read: the kind and schema version of a folder (a newer one refused), check_kind
    readers    checked readers of the folder's JSON files, parquet tables and grid spec
    features   a cell's test features (.npz): encoded for the store, read back checked
    summary    mean and 95% t-interval over seeds: the summary table and its text
    tables     a grid's results, curves and summary tables, built from the cell records and read back
    configs    which config keys of a grid vary, and how a setting is written and matched
    loading    a run folder loaded whole, one reader per kind: GridRun, BenchRun, DistributedRun; load_run
    cells      a grid's cell files: records, features, the scratch folder (CellStore)
    parts      a bench's finished units while it runs, for resuming (PartStore)
    folder     the one writer: `with RunFolder.writing(path, kind) as run:` locks, claims, and writes the tables and
               provenance on the way out; claim, locked

Only this package writes into a run folder; only cells, parts and folder write. The readers import nothing that
writes, and nothing here imports torch or a layer above (train, grid, bench, distributed, analysis, report).

The names below are imported when first asked for (PEP 562), so that `import ablate.runs.schema` (the analysis
layer's way in) loads no writer.
"""

import importlib
from typing import Any

_EXPORTS = {
    "RunFolder": "ablate.runs.folder",
    "GridRun": "ablate.runs.loading", "BenchRun": "ablate.runs.loading", "DistributedRun": "ablate.runs.loading",
    "load_run": "ablate.runs.loading",
    "RunFolderError": "ablate.runs.schema", "RunLockedError": "ablate.runs.schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
