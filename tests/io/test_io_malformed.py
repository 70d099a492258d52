"""Malformed model files: each raises ModelFormatError naming the problem -- never any
other exception.  Every case starts from a valid file and breaks one thing."""

import json
import struct

import numpy as np
import pytest

import convnet
from convnet import nn
from convnet.io import ModelFormatError


def _valid_bytes(tmp_path) -> bytes:
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8, 3, rng=rng))
    path = tmp_path / "valid.safetensors"
    convnet.save(model, path, metadata={"input_shape": [4, 4, 1]})
    return path.read_bytes()


def _split(blob: bytes):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _join(header, data: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _with_doc(blob: bytes, edit) -> bytes:
    """Apply ``edit(doc)`` (in place) to the convnet JSON document inside the header."""
    header, data = _split(blob)
    doc = json.loads(header["__metadata__"]["convnet"])
    edit(doc)
    header["__metadata__"]["convnet"] = json.dumps(doc)
    return _join(header, data)


def _with_header(blob: bytes, edit) -> bytes:
    header, data = _split(blob)
    edit(header)
    return _join(header, data)


def _set(path, value):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _first_tensor(header):
    return next(k for k in header if k != "__metadata__")


def _retag(header, name, dtype):
    header[name]["dtype"] = dtype


def _nested(depth):
    node = 1
    for _ in range(depth):
        node = [node]
    return node


CONV = ("architecture", "args", 0, "__module__")

CASES = {
    # ---- the container: safetensors framing -------------------------------------
    "empty file": (lambda b: b"", "truncated"),
    "shorter than the length field": (lambda b: b[:5], "truncated"),
    "header length past the end": (lambda b: struct.pack("<Q", len(b)) + b[8:], "truncated"),
    "absurd header length": (lambda b: struct.pack("<Q", 1 << 62) + b[8:], "bad header"),
    "zero header length": (lambda b: struct.pack("<Q", 0) + b[8:], "bad header"),
    "data cut short": (lambda b: b[:-7], "truncated"),
    "trailing garbage": (lambda b: b + b"\x00" * 16, "trailing bytes"),
    "header not UTF-8": (lambda b: _join(b"\xff\xfe{}", b""), "not UTF-8"),
    "header not JSON": (lambda b: _join(b'{"a": ', b""), "invalid JSON"),
    "header is a list": (lambda b: _join(b"[1, 2]", b""), "expected a JSON object"),
    "duplicate tensor names": (
        lambda b: _join(b'{"x": 1, "x": 2}', b""), "duplicate key"),
    "a PNG, not a model": (lambda b: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "bad header"),
    "entry without offsets": (
        lambda b: _with_header(b, lambda h: h[_first_tensor(h)].pop("data_offsets")),
        "must have exactly"),
    "unknown dtype tag": (
        lambda b: _with_header(b, lambda h: _retag(h, _first_tensor(h), "Q7")),
        "unsupported dtype"),
    "bfloat16 tensor": (
        lambda b: _with_header(b, lambda h: _retag(h, _first_tensor(h), "BF16")),
        "unsupported dtype"),
    "negative shape": (
        lambda b: _with_header(b, lambda h: h[_first_tensor(h)].update(shape=[-1, 2])),
        "non-negative ints"),
    "offsets do not match shape": (
        lambda b: _with_header(b, lambda h: h[_first_tensor(h)].update(shape=[1])),
        "needs"),
    "overlapping tensors": (
        lambda b: _with_header(b, lambda h: [h[k].update(data_offsets=[0, h[k]["data_offsets"][1]
                                                                      - h[k]["data_offsets"][0]])
                                             for k in h if k != "__metadata__"]),
        "overlaps"),
    "metadata value not a string": (
        lambda b: _with_header(b, lambda h: h["__metadata__"].update(convnet=7)),
        "must map strings to strings"),
    # ---- the convnet document ---------------------------------------------------
    "plain safetensors file": (
        lambda b: _with_header(b, lambda h: h.pop("__metadata__")), "not a convnet model file"),
    "document not JSON": (
        lambda b: _with_header(b, lambda h: h["__metadata__"].update(convnet="{oops")),
        "bad JSON"),
    "document is a string": (
        lambda b: _with_header(b, lambda h: h["__metadata__"].update(convnet='"hello"')),
        "must be a JSON object"),
    "wrong format name": (lambda b: _with_doc(b, _set(("format",), "keras")), "format is"),
    "future version": (lambda b: _with_doc(b, _set(("version",), 99)), "unsupported version"),
    "no architecture": (lambda b: _with_doc(b, lambda d: d.pop("architecture")), "lacks"),
    "bad tensor manifest": (
        lambda b: _with_doc(b, _set(("tensors", "0.weight"), {"dtype": "float32"})),
        "'tensors' entry"),
    # ---- the architecture -------------------------------------------------------
    "unknown layer type": (lambda b: _with_doc(b, _set(CONV + ("class",), "EvilLayer")),
                           "unknown layer type 'EvilLayer'"),
    "a dotted import path as class": (
        lambda b: _with_doc(b, _set(CONV + ("class",), "os.system")), "unknown layer type"),
    "class name not a string": (lambda b: _with_doc(b, _set(CONV + ("class",), ["Conv2d"])),
                                "'class' must be a string"),
    "wrong argument type": (lambda b: _with_doc(b, _set(CONV + ("args", 0), "one")),
                            "cannot build Conv2d"),
    "impossible argument value": (lambda b: _with_doc(b, _set(CONV + ("args", 1), -4)),
                                  "cannot build Conv2d"),
    "unknown keyword argument": (
        lambda b: _with_doc(b, _set(CONV + ("kwargs", "frobnicate"), 1)), "cannot build Conv2d"),
    "args not a list": (lambda b: _with_doc(b, _set(CONV + ("args",), {"a": 1})),
                        "'args' of Conv2d must be a list"),
    "kwargs not an object": (lambda b: _with_doc(b, _set(CONV + ("kwargs",), [1])),
                             "'kwargs' of Conv2d must be an object"),
    "module spec with extra keys": (
        lambda b: _with_doc(b, _set(CONV + ("eval",), "x")), "exactly 'class', 'args'"),
    "unknown value tag": (lambda b: _with_doc(b, _set(CONV + ("args", 2), {"__pickle__": "x"})),
                          "unknown tag"),
    "bad float tag": (lambda b: _with_doc(b, _set(CONV + ("args", 2), {"__float__": "1e999"})),
                      "'__float__' must be"),
    "unknown dtype argument": (
        lambda b: _with_doc(b, _set(CONV + ("kwargs", "dtype"), {"__dtype__": "object"})),
        "unsupported dtype"),
    "nested too deeply": (lambda b: _with_doc(b, _set(CONV + ("args", 2), _nested(500))),
                          "nested"),
    "absurd layer size": (
        lambda b: _with_doc(b, _set(("architecture", "args", 3, "__module__", "args"),
                                    [10 ** 6, 10 ** 6])),
        "ModelFormatError"),
    # ---- tensors against the architecture ----------------------------------------
    "missing tensor": (
        lambda b: _with_doc(b, _set(("tensors", "3.extra"), {"dtype": "float32", "shape": [1]})),
        "missing tensors"),
    "tensor not in the manifest": (lambda b: _with_doc(b, lambda d: d["tensors"].pop("3.bias")),
                                   "unexpected tensors"),
    "shape does not match the architecture": (
        lambda b: _with_doc(b, _set(CONV + ("args", 1), 3)), "shape"),
    "dtype differs from the manifest": (
        lambda b: _with_doc(b, _set(("tensors", "3.bias", "dtype"), "float64")),
        "has dtype float32, the architecture says 'float64'"),
    "integer weights": (
        lambda b: _with_header(_with_doc(b, _set(("tensors", "3.bias", "dtype"), "int32")),
                               lambda h: _retag(h, "3.bias", "I32")),
        "expects float32"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_raises_model_format_error(tmp_path, case):
    breaker, expected = CASES[case]
    blob = breaker(_valid_bytes(tmp_path))
    path = tmp_path / "broken.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ModelFormatError) as info:
        convnet.load(path)
    assert type(info.value) is ModelFormatError
    message = str(info.value)
    assert str(path) in message
    if expected != "ModelFormatError":
        assert expected in message, message


def test_there_are_more_than_twenty_cases():
    assert len(CASES) >= 20


def test_the_unbroken_file_loads(tmp_path):
    path = tmp_path / "ok.safetensors"
    path.write_bytes(_valid_bytes(tmp_path))
    assert convnet.load(path)[3].weight.shape == (8, 3)


def test_random_corruption_never_escapes(tmp_path):
    """Flip bytes all over a valid file: the loader either succeeds (data bytes) or raises
    ModelFormatError -- nothing else."""
    blob = bytearray(_valid_bytes(tmp_path))
    rng = np.random.default_rng(7)
    path = tmp_path / "fuzz.safetensors"
    for trial in range(60):
        b = bytearray(blob)
        for i in rng.integers(0, len(b), size=int(rng.integers(1, 4))):
            b[i] = int(rng.integers(0, 256))
        if trial % 3 == 0:
            b = b[:int(rng.integers(0, len(b)))]
        path.write_bytes(bytes(b))
        try:
            convnet.load(path)
        except ModelFormatError:
            pass
