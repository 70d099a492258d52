"""Checkpoint files (state trees in safetensors + JSON) and atomic writes."""

import json
import os
import struct

import numpy as np
import pytest

from convnet.io import (
    CheckpointError,
    ModelFormatError,
    atomic_write_bytes,
    atomic_write_json,
    decode_tree,
    encode_tree,
    find_generators,
    generator_state,
    load_checkpoint,
    save_checkpoint,
    set_generator_state,
)
from convnet.io.atomic import atomic_path


def _tree(rng):
    gen = np.random.default_rng(99)
    gen.random(3)
    return {
        "model": {"conv.weight": rng.standard_normal((3, 3, 1, 4)).astype(np.float32),
                  "bn.num_batches_tracked": np.array(7, dtype=np.int64)},
        "optimizer": {"state": {0: {"momentum_buffer": np.ones(4, np.float32), "step": 3},
                                5: {"exp_avg": np.zeros((2, 2), np.float64)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 5]}]},
        "rng": generator_state(gen),
        "mt": np.random.MT19937(5).state,  # holds a uint32 array
        "scalars": [np.float32(0.1), np.int64(-3), np.bool_(True), float("nan"),
                    float("-inf"), 2 ** 100, None, "text"],
        "shuffle": rng.permutation(10),
        "empty": np.zeros((0, 3), np.float32),
        "dtype": np.dtype("float16"),
    }


def _equal(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape \
            and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return type(a) is type(b) and a == b


def test_tree_round_trip_is_exact(tmp_path, rng):
    tree = _tree(rng)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, tree)
    back = load_checkpoint(path)
    assert _equal(tree, back)
    assert back["scalars"][0].dtype == np.float32  # NumPy scalars keep their dtype
    assert set(back["optimizer"]["state"]) == {0, 5}  # int keys stay ints
    skeleton, tensors = encode_tree(tree)
    assert "model/conv.weight" in tensors and "optimizer/state/0/momentum_buffer" in tensors
    json.dumps(skeleton, allow_nan=False)  # strict JSON
    assert _equal(decode_tree(skeleton, tensors), tree)


def test_generator_state_restores_the_stream():
    gen = np.random.default_rng(3)
    gen.random(5)
    state = generator_state(gen)
    expected = gen.random(4)
    other = np.random.default_rng(1234)
    set_generator_state(other, state)
    assert np.array_equal(other.random(4), expected)
    with pytest.raises(CheckpointError, match="MT19937"):
        set_generator_state(np.random.Generator(np.random.MT19937(0)), state)


def test_find_generators_walks_attributes_lists_and_dicts():
    class Holder:
        def __init__(self):
            self.rng = np.random.default_rng(0)
            self.items = [object(), {"g": np.random.default_rng(1)}]

    found = find_generators({"a": Holder()})
    assert set(found) == {"a.rng", "a.items.1.g"}


def test_find_generators_reaches_any_depth_of_a_module_tree():
    from convnet import nn

    drop = nn.Dropout(0.5, rng=3)
    deep = nn.Sequential(nn.Sequential(nn.Sequential(nn.Sequential(nn.Sequential(drop)))))
    assert find_generators({"model": deep}) == {"model.0.0.0.0.0.rng": drop.rng}


@pytest.mark.parametrize("edit,expected", [
    (lambda doc: doc.update(format="convnet.model"), "not a convnet checkpoint"),
    (lambda doc: doc.update(version=7), "unsupported checkpoint version"),
    (lambda doc: doc.pop("state"), "lacks its format or state"),
    (lambda doc: doc.update(state={"__tensor__": "nope"}), "does not hold"),
    (lambda doc: doc.update(state={"__scalar__": ["object", 1]}), "bad scalar"),
    (lambda doc: doc.update(state={"__items__": [[[1], 2]]}), "unhashable"),
    (lambda doc: doc.update(state={"a": 1, "b": 2}), "one-key tagged object"),
    (lambda doc: doc.update(state={"__dict__": {}}), "not referenced"),
])
def test_malformed_checkpoint_raises_checkpoint_error(tmp_path, rng, edit, expected):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.ones(3, np.float32)})
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    doc = json.loads(header["__metadata__"]["convnet"])
    edit(doc)
    fmt = doc.get("format")
    header["__metadata__"]["convnet"] = json.dumps(doc)
    if fmt == "convnet.model":
        header["__metadata__"]["format"] = fmt
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + n:])
    with pytest.raises(CheckpointError, match=expected) as info:
        load_checkpoint(path)
    assert isinstance(info.value, ModelFormatError)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.ones(30, np.float32)})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_unstorable_values_are_rejected_at_save(tmp_path):
    with pytest.raises(TypeError, match="cannot store a object"):
        save_checkpoint(tmp_path / "c.safetensors", {"x": object()})
    with pytest.raises(TypeError, match="dtype object"):
        save_checkpoint(tmp_path / "c.safetensors", {"x": np.array([None])})


# ---- atomic writes ---------------------------------------------------------------
def test_atomic_write_fsyncs_file_and_directory_then_renames(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.dirname(src) == os.path.dirname(os.fspath(dst))))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"hello")
    assert target.read_bytes() == b"hello"
    # the file is synced, renamed within its own directory, then the directory synced
    assert calls == [("fsync", False), ("replace", True), ("fsync", True)]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_atomic_path_and_json(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.png") as tmp:
            open(tmp, "w").write("partial")
            raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []
    with atomic_path(tmp_path / "a.png") as tmp:
        open(tmp, "w").write("done")
    assert (tmp_path / "a.png").read_text() == "done"
    atomic_write_json(tmp_path / "m.json", {"x": float("nan"), "y": [1.5]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": None, "y": [1.5]}
