"""The IDX file format of MNIST and Fashion-MNIST, parsed with NumPy.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the number of
dimensions -- then one big-endian uint32 per dimension, then the values, big-endian,
row-major.  Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64.  Files may be gzipped (detected by content, not by name).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .dataset import DatasetFormatError

__all__ = ["read_idx", "parse_idx"]

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file; errors name ``name``."""
    if len(data) < 4:
        raise DatasetFormatError(f"{name}: not an IDX file: {len(data)} bytes, shorter than "
                                 f"the 4-byte magic number")
    zero, code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise DatasetFormatError(f"{name}: not an IDX file: the magic number must start with "
                                 f"two zero bytes, got {data[:4].hex()}")
    if code not in IDX_TYPES:
        raise DatasetFormatError(f"{name}: unknown IDX type code 0x{code:02x}; expected one of "
                                 f"{', '.join(f'0x{c:02X}' for c in IDX_TYPES)}")
    if ndim == 0:
        raise DatasetFormatError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"{name}: truncated IDX header: {ndim} dimensions need "
                                 f"{header} bytes, the file has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DatasetFormatError(f"{name}: IDX data {what}: dimensions {dims} of "
                                 f"{dtype.itemsize}-byte values need {expected} bytes after "
                                 f"the header, got {got}")
    arr = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx(path) -> np.ndarray:
    """Read an IDX file, gzipped or not."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileNotFoundError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{path}: corrupt gzip data ({exc})") from exc
    return parse_idx(raw, str(path))
