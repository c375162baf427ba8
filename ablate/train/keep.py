"""Keeping a trained cell's results: once training has finished, its record and features are never lost.

    keep(data, path, what)   write `data` to `path` atomically; when that fails (a full disk, a name too long, the
                             folder gone or turned read-only since the start), to a fallback file in the system's
                             temp folder, then in the working folder; returns where it went and why not `path`

The caller says where each result went. A record no file takes is printed on stdout by the caller: it is the last
place left.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ablate.io import UnwritableFile, atomic_write_bytes, errno_text

FALLBACK_PREFIX = "ablate-train-"


@dataclass(frozen=True)
class Kept:
    """Where a result went: `path` (None when no file took it) and, when not where it was asked to go, `refusals`:
    one line per place that refused it."""

    path: Path | None
    refusals: tuple = ()

    @property
    def moved(self) -> bool:
        return bool(self.refusals)


def _fallback_folders() -> list:
    return list(dict.fromkeys([Path(tempfile.gettempdir()), Path.cwd()]))


def keep(data: bytes, path: str | Path, suffix: str) -> Kept:
    """`data` written to `path`, else to a new file FALLBACK_PREFIX*<suffix> in the temp folder, else in the working
    folder (each atomically); Kept(None, refusals) when none took it."""
    refusals = []
    try:
        return Kept(atomic_write_bytes(path, data))
    except UnwritableFile as exc:
        refusals.append(str(exc))
    for folder in _fallback_folders():
        name = None
        try:
            fd, name = tempfile.mkstemp(prefix=FALLBACK_PREFIX, suffix=suffix, dir=folder)
            os.close(fd)
            return Kept(atomic_write_bytes(name, data), tuple(refusals))
        except OSError as exc:
            refusals.append(str(exc) if isinstance(exc, UnwritableFile) else
                            f"cannot write in {folder}: {errno_text(exc)}")
            if name is not None:
                Path(name).unlink(missing_ok=True)
    return Kept(None, tuple(refusals))
