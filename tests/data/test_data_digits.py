"""The digits dataset (fixed stratified split, scaling, upscaling), in-memory arrays,
.npz files, subsets and random splits."""

import numpy as np
import pytest

from convnet import data
from convnet.data import DatasetFormatError


@pytest.fixture(scope="module")
def sk_digits():
    from sklearn.datasets import load_digits
    return load_digits()


def test_digits_split_is_fixed_and_stratified(sk_digits):
    train, test = data.Digits(train=True), data.Digits(train=False)
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 8, 8, 1) and train.images.dtype == np.float32
    assert train.labels.dtype == np.int64 and train.classes == [str(i) for i in range(10)]
    assert train.input_shape == (8, 8, 1) and train.num_classes == 10
    # disjoint, and together the whole set
    assert not set(train.indices) & set(test.indices)
    assert sorted([*train.indices, *test.indices]) == list(range(1797))
    # stratified: each class's share of the test split is within one image of 20%
    whole = np.bincount(sk_digits.target, minlength=10)
    np.testing.assert_array_less(np.abs(np.bincount(test.labels, minlength=10) - whole * 0.2),
                                 1.0 + 1e-9)
    # the documented recipe gives exactly this split
    from sklearn.model_selection import train_test_split
    _, ref_test = train_test_split(np.arange(1797), test_size=0.2,
                                   stratify=sk_digits.target, random_state=0)
    np.testing.assert_array_equal(test.indices, ref_test)
    # the same on every construction
    np.testing.assert_array_equal(data.Digits(train=False).labels, test.labels)


def test_digits_pixels_scaled_to_unit_range(sk_digits):
    test = data.Digits(train=False)
    np.testing.assert_allclose(test.images[..., 0], sk_digits.images[test.indices] / 16.0,
                               rtol=1e-7)
    np.testing.assert_array_equal(test.labels, sk_digits.target[test.indices])
    assert test.images.min() == 0.0 and test.images.max() == 1.0


@pytest.mark.parametrize("size,shape", [(16, (16, 16, 1)), (28, (28, 28, 1)),
                                        ((12, 20), (12, 20, 1))])
def test_digits_upscale(size, shape):
    small, big = data.Digits(train=False), data.Digits(train=False, size=size)
    assert big.input_shape == shape and big.images.dtype == np.float32
    assert 0.0 <= big.images.min() and big.images.max() <= 1.0
    np.testing.assert_array_equal(big.labels, small.labels)
    # upscaling keeps the mean brightness close (bilinear is a weighted average)
    np.testing.assert_allclose(big.images.mean(axis=(1, 2, 3)),
                               small.images.mean(axis=(1, 2, 3)), atol=0.03)


# ---- arrays and .npz ------------------------------------------------------------------
def test_array_dataset_conversions():
    u8 = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2) * 10
    ds = data.ArrayDataset(u8, [0, 2, 1, 2])
    assert ds.images.shape == (4, 2, 2, 1) and ds.images.dtype == np.float32
    np.testing.assert_allclose(ds.images[..., 0], u8 / 255.0, rtol=1e-6)
    assert ds.classes == ["0", "1", "2"] and ds.labels.dtype == np.int64
    f = data.ArrayDataset(np.full((2, 3, 3, 3), 7.5), np.array([1.0, 0.0]), classes=["a", "b"])
    assert f.images.max() == 7.5 and f.labels.tolist() == [1, 0] and f.num_classes == 2
    x, y = f.get_batch(np.array([1, 1, 0]))
    assert x.shape == (3, 3, 3, 3) and y.tolist() == [0, 0, 1]
    assert data.ArrayDataset(np.zeros((2, 4, 4)), [0, 1], size=8).input_shape == (8, 8, 1)
    assert data.ArrayDataset(np.zeros((2, 4, 4)), [0, 1], classes=5).num_classes == 5


@pytest.mark.parametrize("images,labels,kw,exc,match", [
    (np.zeros((3, 4)), [0, 1, 2], {}, ValueError, r"\(N, H, W, C\) or \(N, H, W\), got shape"),
    (np.zeros((3, 4, 4)), [0, 1], {}, ValueError, r"labels must have shape \(3,\)"),
    (np.zeros((2, 4, 4)), [0.5, 1], {}, ValueError, "whole numbers"),
    (np.zeros((2, 4, 4)), [-1, 1], {}, ValueError, ">= 0"),
    (np.zeros((2, 4, 4)), [0, 3], dict(classes=["a", "b"]), ValueError, "label 3 .* 2 classes"),
    (np.array([["a"]]), [0], {}, TypeError, "numeric"),
])
def test_array_dataset_errors(images, labels, kw, exc, match):
    with pytest.raises(exc, match=match):
        data.ArrayDataset(images, labels, **kw)


def test_npz_splits_and_keys(tmp_path):
    rng = np.random.default_rng(0)
    xtr, xte = rng.integers(0, 256, (5, 4, 4), np.uint8), rng.random((3, 4, 4, 2))
    np.savez(tmp_path / "split.npz", x_train=xtr, y_train=np.arange(5) % 3, x_test=xte,
             y_test=[0, 1, 2], classes=np.array(["cat", "dog", "emu"]))
    tr = data.ArrayDataset.from_npz(tmp_path / "split.npz")
    te = data.ArrayDataset.from_npz(tmp_path / "split.npz", train=False)
    np.testing.assert_allclose(tr.images[..., 0], xtr / 255.0, rtol=1e-6)
    np.testing.assert_allclose(te.images, xte.astype(np.float32))
    assert tr.classes == ["cat", "dog", "emu"] and te.input_shape == (4, 4, 2)
    np.savez_compressed(tmp_path / "one.npz", images=xtr, labels=np.arange(5))
    assert len(data.ArrayDataset.from_npz(tmp_path / "one.npz", train=False)) == 5
    np.savez(tmp_path / "custom.npz", a=xtr, b=np.arange(5))
    ds = data.ArrayDataset.from_npz(tmp_path / "custom.npz", images_key="a", labels_key="b")
    assert len(ds) == 5


def test_npz_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.ArrayDataset.from_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetFormatError, match="junk.npz: not a readable .npz"):
        data.ArrayDataset.from_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "keys.npz", foo=np.zeros(3))
    with pytest.raises(DatasetFormatError, match=r"keys.npz: expected arrays .*got keys \['foo'\]"):
        data.ArrayDataset.from_npz(tmp_path / "keys.npz")
    obj = np.empty(2, dtype=object)
    obj[:] = [np.zeros(2), "x"]
    np.savez(tmp_path / "pickled.npz", images=obj, labels=np.arange(2))
    with pytest.raises(DatasetFormatError, match="pickled.npz: cannot load without pickle"):
        data.ArrayDataset.from_npz(tmp_path / "pickled.npz")
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 4, 4)), labels=np.arange(2))
    with pytest.raises(DatasetFormatError, match=r"bad.npz: .*labels must have shape \(3,\)"):
        data.ArrayDataset.from_npz(tmp_path / "bad.npz")


def test_subset_and_random_split():
    ds = data.ArrayDataset(np.arange(10.0).reshape(10, 1, 1, 1), np.arange(10) % 2)
    sub = data.Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and sub.classes == ds.classes and sub.input_shape == (1, 1, 1)
    assert sub[0][0].item() == 7.0 and sub.labels.tolist() == [1, 0, 1]
    x, _ = sub.get_batch([2, 0])
    assert x.ravel().tolist() == [5.0, 7.0]
    a, b = data.random_split(ds, [7, 3], rng=np.random.default_rng(0))
    got = sorted([*a.images.ravel().tolist(), *b.images.ravel().tolist()])
    assert got == list(np.arange(10.0)) and (len(a), len(b)) == (7, 3)
    a2, _ = data.random_split(ds, [0.7, 0.3], rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a.indices, a2.indices)
    with pytest.raises(ValueError, match=r"sum to 10, got \[5, 6\]"):
        data.random_split(ds, [5, 6])
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        data.Subset(ds, [10])
    loader = data.DataLoader(sub, batch_size=2)
    assert [y.tolist() for _, y in loader] == [[1, 0], [1]]
