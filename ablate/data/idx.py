"""A reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

Layout: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions n, then n
big-endian uint32 sizes, then the values in C order, big-endian. The header is checked (type, shape and, for a
plain file, the size it promises against the file's own size) before the values are read; a gzip file is
decompressed up to the size its header promises and one byte more, whatever its members (a valid gzip file may hold
several, one after another: its trailer then records the last one's size alone).
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ablate.io import UnreadableFile, check_regular_file

MAX_FILE_BYTES = 2**31  # an IDX file as stored (Fashion-MNIST's largest, gzip-compressed, is 26 MB)
GZIP_MIN_BYTES = 18  # a 10-byte header and an 8-byte trailer
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _stored_size(path: Path, compressed: bool) -> int | None:
    """The bytes a plain file holds; None for a gzip file (checked to start as one), whose decompressed size is
    known only once read."""
    try:
        size = check_regular_file(path, MAX_FILE_BYTES).stat().st_size
    except UnreadableFile as exc:
        raise ValueError(str(exc)) from None
    if not compressed:
        return size
    with open(path, "rb") as f:
        if size < GZIP_MIN_BYTES or f.read(2) != b"\x1f\x8b":
            raise ValueError(f"{path} is not a gzip file (its name ends in .gz); expected an IDX file compressed "
                             "with gzip, as the Fashion-MNIST release ships them")
    return None


def read_idx(path, *, dtype: str | None = None, shape: tuple | None = None, max_items: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (.gz or not), with the file's shape and a native-endian dtype.

    dtype: the numpy dtype the header must declare (e.g. "uint8"); shape: the sizes it must declare, None
    for any size along a dimension (e.g. (None, 28, 28)); max_items: the most items (first dimension) the header
    may claim, checked before anything is decompressed. A ValueError names the file and what is wrong.
    """
    path = Path(path)
    compressed = path.suffix == ".gz"
    stored = _stored_size(path, compressed)
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise ValueError(f"{path} is not an IDX file: expected two zero bytes and a type code in "
                                 f"{sorted(_DTYPES)}, got header {head.hex()}")
            ndim = head[3]
            sizes = f.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise ValueError(f"{path}: the file ends inside its header")
            file_shape = struct.unpack(f">{ndim}I", sizes)
            file_dtype = np.dtype(_DTYPES[head[2]])
            _check_header(path, file_dtype, file_shape, dtype, shape)
            if max_items is not None and file_shape and file_shape[0] > max_items:
                raise ValueError(f"{path}: the header claims {file_shape[0]:,} items, over the limit of {max_items:,} "
                                 "this dataset holds (and its memory estimate assumes)")
            header = 4 + 4 * ndim
            expected = header + math.prod(file_shape) * file_dtype.itemsize
            if stored is not None and expected != stored:
                raise _size_error(path, file_shape, file_dtype, expected, stored)
            data = f.read(expected - header)
            if len(data) != expected - header:
                raise _size_error(path, file_shape, file_dtype, expected, header + len(data))
            if f.read(1):
                raise ValueError(f"{path}: holds more than the {expected} bytes its header promises")
    except (OSError, EOFError, zlib.error) as exc:  # gzip's errors for a damaged or truncated stream
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    values = np.frombuffer(data, dtype=file_dtype).reshape(file_shape)
    return values.astype(file_dtype.newbyteorder("="))


def _size_error(path, file_shape, file_dtype, expected: int, held: int) -> ValueError:
    return ValueError(f"{path}: the header promises shape {file_shape} of {file_dtype} ({expected} bytes in all), but "
                      f"the file holds {held} bytes (truncated, or not this dataset's file)")


def _check_header(path, file_dtype, file_shape, dtype, shape) -> None:
    if dtype is not None and file_dtype.newbyteorder("=") != np.dtype(dtype):
        raise ValueError(f"{path}: expected values of type {dtype}, the header declares {file_dtype.newbyteorder('=')}")
    if shape is not None and (len(file_shape) != len(shape)
                              or any(want is not None and got != want for got, want in zip(file_shape, shape))):
        wanted = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{path}: expected shape {wanted}, the header declares {file_shape}")
