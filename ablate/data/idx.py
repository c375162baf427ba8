"""A reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

Layout: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions n, then n
big-endian uint32 sizes, then the values in C order, big-endian.
"""

import gzip
from pathlib import Path

import numpy as np

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (.gz or not), with the file's shape and a native-endian dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file: expected two zero bytes and a type code in "
                         f"{sorted(_DTYPES)}, got header {data[:4].hex()}")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: the header promises shape {shape} of {dtype} ({expected} bytes in all), "
                         f"but the file holds {len(data)} bytes")
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))
