"""Atomic file writes (a result file is either absent or whole, never half-written) and bounded reads of
untrusted files (regular files only, a size limit, JSON and TOML of bounded depth and integer length)."""

import json
import os
import re
import stat
import tempfile
import tomllib
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
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{path} is a link to {os.readlink(path)}, which does not exist; expected "
                         f"{'a folder' if folder else 'a file name'}")
    if path.exists() and path.is_dir() != folder:
        expected = "a folder" if folder else "a file name"
        raise ValueError(f"{path} is a {'file' if folder else 'folder'}; expected {expected}")
    nearest = path if folder and path.exists() else path.parent
    while not nearest.exists():
        nearest = nearest.parent
    if not nearest.is_dir():
        raise ValueError(f"cannot write {path}: {nearest} is a file, not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: no write permission in {nearest}")
    try:  # what access() cannot tell (root, /proc, a read-only mount): create a file there and remove it
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {nearest} takes no new file ({exc.strerror})") from None
    return path


# --- bounded reading ------------------------------------------------------------------------------------------
# Files of run and data folders are untrusted: every reader goes through these, which read only regular files, at
# most a size limit, and parse JSON and TOML with bounded nesting and integer length. Errors name the file.
MAX_TEXT_BYTES = 64 * 2**20  # a run folder's JSON and TOML files: a cell record with its curves is a few KB
MAX_NESTING = 64  # JSON/TOML depth: our files nest at most 3 deep
MAX_INT_DIGITS = 20  # decimal digits of an integer: int64 needs 19


class UnreadableFile(ValueError):
    """A file that cannot be read or parsed within the bounds above; the message names the file."""


def _open_regular(path: Path, limit: int):
    """A binary handle on `path` once it is known to be a regular file (a link to one is followed) of at most
    `limit` bytes. Opened without blocking, so that a FIFO is refused instead of waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot be read ({exc.strerror})") from None
    handle = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        mode = info.st_mode
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise UnreadableFile(f"{path}: {kind}, not a regular file; expected a regular file")
    if info.st_size > limit:
        handle.close()
        raise UnreadableFile(f"{path}: {info.st_size:,} bytes, over the limit of {limit:,} bytes for this file")
    return handle


def check_regular_file(path, limit: int) -> Path:
    """Refuse (UnreadableFile) what is not a regular file of at most `limit` bytes, before a library reads it."""
    _open_regular(Path(path), limit).close()
    return Path(path)


def read_regular_bytes(path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `limit` bytes: a FIFO, /dev/zero or any
    other device is refused before anything is read."""
    path = Path(path)
    with _open_regular(path, limit) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UnreadableFile(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise UnreadableFile(f"{path}: larger than the limit of {limit:,} bytes for this file")
    return data


def read_regular_text(path, limit: int = MAX_TEXT_BYTES) -> str:
    """read_regular_bytes decoded as UTF-8; UnreadableFile naming the file and the first bad byte otherwise."""
    data = read_regular_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
                             "expected a UTF-8 file") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits, over the limit of {MAX_INT_DIGITS}")
    return int(text)


def check_nesting(value, where: str, limit: int = MAX_NESTING) -> None:
    """Refuse (UnreadableFile naming `where`) a parsed JSON/TOML value nested deeper than `limit`, or holding an
    integer beyond int64. Walks without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise UnreadableFile(f"{where}: nested deeper than the limit of {limit} levels")
            stack += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
        elif isinstance(item, int) and not isinstance(item, bool) and not -2**63 <= item < 2**63:
            raise UnreadableFile(f"{where}: the integer {str(item)[:12]}... is beyond int64")


def parse_json_text(text: str, where: str):
    """JSON text -> value, with integers of at most MAX_INT_DIGITS digits and at most MAX_NESTING levels."""
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise UnreadableFile(f"{where}: nested deeper than the limit of {MAX_NESTING} levels") from None
    except ValueError as exc:  # json.JSONDecodeError is one, and _bounded_int's refusal
        raise UnreadableFile(f"{where}: not valid JSON ({exc})") from None
    check_nesting(value, where)
    return value


def parse_toml_text(text: str, where: str) -> dict:
    """TOML text -> dict, with at most MAX_NESTING levels and integers within int64."""
    try:
        document = tomllib.loads(text)
    except RecursionError:
        raise UnreadableFile(f"{where}: nested deeper than the limit of {MAX_NESTING} levels") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is one, and int()'s refusal of a very long integer
        raise UnreadableFile(f"{where}: not valid TOML ({exc})") from None
    check_nesting(document, where)
    return document


def read_toml_file(path, limit: int = MAX_TEXT_BYTES) -> dict:
    """The TOML document of a regular file of at most `limit` bytes (see parse_toml_text)."""
    return parse_toml_text(read_regular_text(path, limit), str(path))
