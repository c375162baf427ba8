"""Atomic file writes: a result file is either absent or whole, never half-written."""

import json
import os
import re
import tempfile
from pathlib import Path

# Temp files are named .<target name>.ablate-<mkstemp's 8 random characters>.tmp: only those are ever removed.
TEMP_MARK = ".ablate-"
_TEMP_NAME = re.compile(r"\..+\.ablate-[A-Za-z0-9_]{8}\.tmp")


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp")
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


def remove_temp_files(folder) -> int:
    """Delete the temp files a killed writer left in `folder` (this module's names only); returns how many."""
    folder = Path(folder)
    stale = [p for p in folder.glob(f".*{TEMP_MARK}*.tmp") if _TEMP_NAME.fullmatch(p.name)] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


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


def check_writable(path, *, folder: bool = False) -> Path:
    """Refuse, before any work starts, an output path that cannot be written: one under a regular file, a
    folder where a file is wanted (or the reverse), or in a folder this user may not write. ValueError names
    the path and why."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{path} is a {'file' if folder else 'folder'}; expected {'a folder' if folder else 'a file name'}")
    nearest = path if folder and path.exists() else path.parent
    while not nearest.exists():
        nearest = nearest.parent
    if not nearest.is_dir():
        raise ValueError(f"cannot write {path}: {nearest} is a file, not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: no write permission in {nearest}")
    return path
