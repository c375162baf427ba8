"""Atomic file writes (a result file is either absent or whole, never half-written) and bounded reads of
untrusted files (regular files only, a size limit, JSON and TOML of bounded depth and integer length).

A write that fails (a full disk, a file-size limit, a read-only folder, a name too long, a path under a file, a
folder where the file goes) raises UnwritableFile naming the file and the errno, and leaves the file as it was.
path_kind says what a path is (a folder, a FIFO, a symlink loop, ...) for errors that name a path by what it is.
"""

import errno
import json
import os
import re
import stat
import tempfile
import tomllib
import unicodedata
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


def errno_text(exc: OSError) -> str:
    """'No space left on device (ENOSPC)': the error's own words and its errno's name (the words alone for an
    error without an errno, as pyarrow's "Error writing bytes to file")."""
    words = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno) if isinstance(exc.errno, int) else None
    return f"{words} ({name})" if name else words


class UnwritableFile(OSError):
    """A write to `path` that failed; its message names the file and the errno, and says the file was left as it
    was (absent, or its earlier content)."""

    def __init__(self, path: Path, cause: OSError):
        try:
            existed = os.path.lexists(path)
        except (OSError, ValueError):
            existed = False
        kept = "its earlier content is kept" if existed else "nothing was written"
        super().__init__(cause.errno, f"cannot write {path}: {errno_text(cause)}; {kept}")
        self.path = path

    def __str__(self) -> str:
        return str(self.strerror)


# A temp file's name holds at most this much of its target's: a target name near the file system's limit (255 bytes)
# must still leave room for the mark and mkstemp's characters.
_TEMP_NAME_PART = 64


def atomic_write_with(path, writer) -> Path:
    """Call writer(temp_path) (e.g. a DataFrame's to_parquet), fsync the result, then rename it over `path`.
    Any OSError on the way (the writer's included, pyarrow's among them) is an UnwritableFile naming `path`; the
    temp file is removed and `path` left as it was."""
    path = Path(path)
    tmp = None
    try:
        _make_folder(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:_TEMP_NAME_PART]}{TEMP_MARK}",
                                   suffix=".tmp")
        os.close(fd)
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if isinstance(exc, UnwritableFile):
            raise
        raise UnwritableFile(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def _make_folder(folder: Path) -> None:
    """mkdir -p `folder`; where something that is not a folder is in the way, the OSError says what (a file:
    ENOTDIR, a symlink loop: ELOOP), not mkdir's "File exists"."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        blocking = next(p for p in (folder, *folder.parents) if path_kind(p) != "missing")
        code = errno.ELOOP if path_kind(blocking) == "a symlink loop" else errno.ENOTDIR
        raise OSError(code, f"{os.strerror(code)}: {blocking} is {path_kind(blocking)}", str(folder)) from None


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:  # the folder went away or turned read-only: nothing of ours is left to remove
            pass


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


_MODE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _mode_kind(mode: int) -> str:
    return next((kind for test, kind in _MODE_KINDS if test(mode)), "not a file")


def path_kind(path) -> str:
    """What `path` is, in words: "a folder", "a file", "a FIFO", "a character device", "a block device", "a socket",
    "a symlink loop", "a link to X, which does not exist", "missing", "under a file, not a folder", "a name too
    long", or "not accessible (<errno>)". Links are followed; nothing is opened."""
    path = Path(path)
    try:
        return _mode_kind(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if exc.errno == errno.ENOTDIR:
            return "under a file, not a folder"
        if exc.errno == errno.ENAMETOOLONG:
            return "a name too long"
        if exc.errno == errno.ENOENT:
            if os.path.islink(path):
                return f"a link to {os.readlink(path)}, which does not exist"
            return "missing"
        return f"not accessible ({errno_text(exc)})"
    except ValueError:  # a NUL in the name
        return "not a valid path (it holds a NUL character)"


def _check_name_lengths(path: Path, nearest: Path) -> None:
    """Refuse (ValueError, ENAMETOOLONG) a path whose names below `nearest` (the deepest existing folder) are
    longer than its file system takes, or which is longer than a path may be."""
    try:
        name_max = os.pathconf(nearest, "PC_NAME_MAX")
        path_max = os.pathconf(nearest, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in path.parts[len(nearest.parts):]:
        size = len(os.fsencode(part))
        if size > name_max:
            raise ValueError(f"cannot write {path}: a name in it is {size:,} bytes, over the limit of {name_max} "
                             f"of the file system of {nearest} (ENAMETOOLONG)")
    size = len(os.fsencode(str(path.absolute())))
    if size >= path_max:
        raise ValueError(f"cannot write {path}: the path is {size:,} bytes, over the limit of {path_max - 1:,} "
                         "(ENAMETOOLONG)")


def check_writable(path, *, folder: bool = False) -> Path:
    """Refuse, before any work starts, an output path that cannot be written: one under a regular file, a
    folder where a file is wanted (or the reverse), a symlink loop, a name longer than the file system takes, or
    in a folder this user may not write. ValueError names the path and why."""
    path = Path(path)
    expected = "a folder" if folder else "a file name"
    kind = path_kind(path)
    not_yet = ("missing", "a name too long", "under a file, not a folder")  # said below, naming the folder or name
    if kind not in ("a folder", "a file", *not_yet):
        raise ValueError(f"{path} is {kind}; expected {expected}")
    if kind in ("a folder", "a file") and (kind == "a folder") != folder:
        raise ValueError(f"{path} is {kind}; expected {expected}")
    nearest = path if folder and kind == "a folder" else path.parent
    while path_kind(nearest) in not_yet:
        nearest = nearest.parent
    if path_kind(nearest) != "a folder":
        raise ValueError(f"cannot write {path}: {nearest} is {path_kind(nearest)}, not a folder")
    _check_name_lengths(path, nearest)
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: no write permission in {nearest}")
    try:  # what access() cannot tell (root, /proc, a read-only mount): create a file there and remove it
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {nearest} takes no new file ({exc.strerror})") from None
    return path


def canonical_path(text: str) -> str:
    """A folder's path as one spelling, whichever way it was written: absolute, links resolved, in Unicode NFC. A
    file system that stores names as bytes (ext4) holds an NFC and an NFD spelling as two names: where the NFC
    spelling does not name the folder the given spelling names (or nothing does, and the NFD spelling names one),
    the spelling that exists is kept, so that every spelling of one folder gives the same text."""
    resolved = os.path.realpath(text)
    spellings = list(dict.fromkeys(unicodedata.normalize(form, resolved) for form in ("NFC", "NFD")))
    if os.path.exists(resolved):
        return next((s for s in spellings if os.path.exists(s) and os.path.samefile(s, resolved)), resolved)
    return next((s for s in spellings if os.path.exists(s)), spellings[0])


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
        what = "a symlink loop" if exc.errno == errno.ELOOP else errno_text(exc)
        raise UnreadableFile(f"{path}: cannot be read ({what})") from None
    info = os.fstat(fd)  # before fdopen, which refuses a folder with an error of its own
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnreadableFile(f"{path}: {_mode_kind(info.st_mode)}, not a regular file; expected a regular file")
    handle = os.fdopen(fd, "rb")
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
