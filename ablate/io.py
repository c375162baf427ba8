"""Atomic file writes: a result file is either absent or whole, never half-written."""

import json
import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
    """The mode open() would give a new file: mkstemp's temp files are 0600, which a rename would keep."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def atomic_write_with(path, writer) -> Path:
    """Call writer(temp_path) (e.g. a DataFrame's to_parquet), fsync the result, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to a temp file in the target folder, fsync it, then rename it over `path`."""
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_table(df, stem) -> None:
    """Write a DataFrame as stem.parquet and stem.csv, each atomically."""
    stem = Path(stem)
    atomic_write_with(stem.with_suffix(".parquet"), lambda p: df.to_parquet(p, index=False))
    atomic_write_with(stem.with_suffix(".csv"), lambda p: df.to_csv(p, index=False))
