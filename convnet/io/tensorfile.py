"""Reading and writing safetensors files, with every byte of the header checked.

The safetensors layout is: an 8-byte little-endian header length ``n``, ``n`` bytes of
UTF-8 JSON, then the raw tensor data.  The JSON maps each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data
section) and may carry ``"__metadata__"``, a flat ``{str: str}`` map where convnet keeps
its JSON documents.

``read_tensor_file`` validates all of that itself -- so that a bad file gets a message
naming exactly what is wrong -- and only then hands the bytes to ``safetensors.numpy``.
Any problem raises the caller's error class (``ModelFormatError`` by default), never
anything else.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .atomic import atomic_write_bytes
from .errors import ModelFormatError

__all__ = ["write_tensor_file", "read_tensor_file", "encode_tensor_file",
           "decode_tensor_file", "SAFETENSORS_DTYPES"]

# safetensors dtype tag -> NumPy dtype (little-endian).  BF16 and FP8 have no NumPy dtype.
SAFETENSORS_DTYPES = {
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"), "U8": np.dtype("u1"), "U16": np.dtype("<u2"),
    "U32": np.dtype("<u4"), "U64": np.dtype("<u8"), "BOOL": np.dtype("?"),
}
MAX_HEADER_BYTES = 100 * 1024 * 1024


def _safetensors_numpy():
    try:
        import safetensors.numpy as stn  # noqa: PLC0415 - optional dependency, loaded lazily
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("convnet model files need the 'safetensors' package: "
                          "pip install safetensors (or pip install 'convnet[cli]')") from exc
    return stn


def encode_tensor_file(tensors: dict, metadata: dict | None = None) -> bytes:
    """The bytes of a safetensors file holding ``tensors`` (name -> ndarray) and
    ``metadata`` (str -> str)."""
    clean = {}
    for name, arr in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {type(name).__name__}")
        arr = np.asarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt not in SAFETENSORS_DTYPES.values():
            raise TypeError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored in a "
                            f"safetensors file")
        # (np.ascontiguousarray would turn a 0-d array into shape (1,).)
        clean[name] = np.require(arr, dtype=dt, requirements="C")
    meta = None
    if metadata:
        meta = {}
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata must map str to str")
            meta[k] = v
    return _safetensors_numpy().save(clean, metadata=meta)


def write_tensor_file(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write a safetensors file atomically (temp file, fsync, rename, fsync dir)."""
    atomic_write_bytes(path, encode_tensor_file(tensors, metadata))


def _reject_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _parse_header(data: bytes, fail) -> tuple[dict, dict, int]:
    size = len(data)
    if size < 8:
        fail(f"truncated: the file is {size} bytes, but a safetensors file starts with an "
             f"8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n == 0:
        fail("bad header: the header length is 0")
    if n > MAX_HEADER_BYTES:
        fail(f"bad header: the header claims {n} bytes (more than the "
             f"{MAX_HEADER_BYTES}-byte limit); this is not a safetensors file")
    if 8 + n > size:
        fail(f"truncated: the header claims {n} bytes but only {size - 8} follow")
    raw = data[8:8 + n]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"bad header: not UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        header = json.loads(text, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError) as exc:
        fail(f"bad header: invalid JSON ({exc})")
    if not isinstance(header, dict):
        fail(f"bad header: expected a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        fail("bad header: '__metadata__' must map strings to strings")
    return header, metadata, 8 + n


def _check_entries(header: dict, data_len: int, fail) -> dict:
    """Validate every tensor entry; returns name -> (dtype, shape)."""
    spans = []
    info = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            fail(f"bad header: tensor {name!r} must have exactly 'dtype', 'shape' and "
                 f"'data_offsets', got {entry!r:.200}")
        tag, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if tag not in SAFETENSORS_DTYPES:
            fail(f"bad header: tensor {name!r} has unsupported dtype {tag!r:.40} "
                 f"(expected one of {sorted(SAFETENSORS_DTYPES)})")
        if not isinstance(shape, list) or not all(
                type(d) is int and d >= 0 for d in shape):
            fail(f"bad header: tensor {name!r} has shape {shape!r:.100}, expected a list of "
                 f"non-negative ints")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(
                type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]:
            fail(f"bad header: tensor {name!r} has data_offsets {offsets!r:.100}, expected "
                 f"[begin, end] with 0 <= begin <= end")
        dtype = SAFETENSORS_DTYPES[tag]
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if offsets[1] - offsets[0] != nbytes:
            fail(f"bad header: tensor {name!r} of shape {tuple(shape)} and dtype {tag} needs "
                 f"{nbytes} bytes but its offsets span {offsets[1] - offsets[0]}")
        if offsets[1] > data_len:
            fail(f"truncated: tensor {name!r} ends at byte {offsets[1]} of the data section, "
                 f"but the data section has only {data_len} bytes")
        spans.append((offsets[0], offsets[1], name))
        info[name] = (dtype, tuple(shape))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            kind = "overlaps another tensor" if begin < pos else "leaves a gap before it"
            fail(f"bad header: tensor {name!r} starts at byte {begin} and {kind} "
                 f"(expected byte {pos})")
        pos = end
    if pos != data_len:
        fail(f"bad file: {data_len - pos} trailing bytes after the last tensor")
    return info


def decode_tensor_file(data: bytes, name: str = "<bytes>", error=ModelFormatError):
    """Validate and decode the bytes of a safetensors file.

    Returns ``(tensors, metadata)``: name -> writable ndarray, and the str -> str metadata.
    """
    def fail(msg):
        raise error(f"{name}: {msg}")

    header, metadata, start = _parse_header(data, fail)
    info = _check_entries(header, len(data) - start, fail)
    try:
        tensors = _safetensors_numpy().load(bytes(data))
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the Rust reader's own error types vary
        fail(f"safetensors could not read the file: {exc}")
    if set(tensors) != set(info):
        fail("safetensors returned a different set of tensors than the header lists")
    out = {}
    for key, (dtype, shape) in info.items():
        arr = tensors[key]
        if arr.shape != shape or arr.dtype != dtype:
            fail(f"tensor {key!r} decoded as {arr.dtype}{arr.shape}, header says "
                 f"{dtype}{shape}")
        native = dtype.newbyteorder("=")
        # Keep safetensors' own (writable) arrays; copy only what is read-only or foreign.
        out[key] = arr if arr.flags.writeable and arr.dtype == native else \
            np.array(arr, dtype=native, copy=True)
    return out, metadata


def read_tensor_file(path, error=ModelFormatError):
    """Read and validate a safetensors file.  Returns ``(tensors, metadata)``.

    A missing or unreadable path raises ``OSError`` (``FileNotFoundError``, ...);
    anything wrong with the contents raises ``error``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, expected a .safetensors file")
    with open(path, "rb") as f:
        data = f.read()
    return decode_tensor_file(data, path, error)
