"""Dataset file formats from fixtures: IDX (MNIST, Fashion-MNIST), CIFAR-10 binary,
image folders, .npz, and the get_dataset registry."""

import gzip
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from convnet import data
from convnet.data import DatasetFormatError

# ---- IDX ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 4, 3)), (np.int8, (7,)),
                                         (np.int16, (2, 3)), (np.int32, (3, 1, 2)),
                                         (np.float32, (4,)), (np.float64, (2, 2, 2, 2))])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, idx_bytes, dtype, shape, compress):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal(shape) * 100).astype(dtype)
    payload = idx_bytes(arr)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    got = data.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def _hdr(code, dims):
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("payload,match", [
    (b"\x00\x00", "shorter than the 4-byte magic"),
    (b"\x01\x00\x08\x01" + b"\x00" * 8, "two zero bytes"),
    (_hdr(0x07, (2,)) + b"\x00\x00", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (_hdr(0x08, (2, 3))[:8], "truncated IDX header"),
    (_hdr(0x08, (2, 3)) + b"\x00" * 5, r"truncated: dimensions \(2, 3\).*need 6 bytes.*got 5"),
    (_hdr(0x0C, (2,)) + b"\x00" * 9, "trailing bytes"),
])
def test_idx_rejects_bad_files(tmp_path, payload, match):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DatasetFormatError, match=match) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_idx_rejects_corrupt_gzip(tmp_path, idx_bytes):
    path = tmp_path / "x.gz"
    noise = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    payload = gzip.compress(idx_bytes(noise))
    assert len(payload) > 4000
    path.write_bytes(payload[:len(payload) // 2])
    with pytest.raises(DatasetFormatError, match="corrupt gzip"):
        data.read_idx(path)


# ---- MNIST / Fashion-MNIST from a local folder ------------------------------------------
@pytest.mark.parametrize("cls", [data.MNIST, data.FashionMNIST])
@pytest.mark.parametrize("train", [True, False])
def test_mnist_from_folder(mnist_files, cls, train):
    ds = cls(root=mnist_files.dir, train=train, download=False)
    images, labels = mnist_files.arrays["train" if train else "t10k"]
    assert ds.images.shape == (len(images), 28, 28, 1) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int64 and ds.input_shape == (28, 28, 1)
    np.testing.assert_array_equal(ds.images[..., 0] * 255, images.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.num_classes == 10 and len(ds) == len(images)
    x, y = ds[3]
    np.testing.assert_array_equal(y, labels[3])
    assert x.shape == (28, 28, 1)
    if cls is data.FashionMNIST:
        assert ds.classes[9] == "Ankle boot"


def test_mnist_uncompressed_and_resized(mnist_files, tmp_path):
    for f in mnist_files.dir.iterdir():
        (tmp_path / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    ds = data.MNIST(root=tmp_path, train=False, download=False, size=32)
    assert ds.images.shape == (12, 32, 32, 1)


def test_mnist_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz not found"):
        data.MNIST(root=tmp_path, download=False)


@pytest.mark.parametrize("images,labels,match", [
    (np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8), "3 images but .* 4 labels"),
    (np.zeros((3, 28), np.uint8), np.zeros(3, np.uint8), r"uint8 images \(N, H, W\)"),
    (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), r"uint8 labels \(N,\)"),
    (np.zeros((3, 28, 28), np.int32), np.zeros(3, np.uint8), "int32"),
    (np.zeros((2, 28, 28), np.uint8), np.array([1, 12], np.uint8), "label 12"),
])
def test_mnist_rejects_inconsistent_files(tmp_path, idx_bytes, images, labels, match):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DatasetFormatError, match=match):
        data.MNIST(root=tmp_path, train=False, download=False)


# ---- CIFAR-10 binary ------------------------------------------------------------------
def test_cifar_record_layout_is_chw_planes(tmp_path):
    # One record by hand: label 3, then red plane all 10, green 20, blue = row index.
    blue = np.repeat(np.arange(32, dtype=np.uint8)[:, None], 32, axis=1)
    record = bytes([3]) + bytes([10]) * 1024 + bytes([20]) * 1024 + blue.tobytes()
    path = tmp_path / "one.bin"
    path.write_bytes(record)
    images, labels = data.read_cifar_binary(path)
    assert images.shape == (1, 32, 32, 3) and labels.tolist() == [3]
    assert (images[0, :, :, 0] == 10).all() and (images[0, :, :, 1] == 20).all()
    np.testing.assert_array_equal(images[0, :, :, 2], blue)


@pytest.mark.parametrize("train", [True, False])
def test_cifar_from_archive(cifar_files, tmp_path, train):
    shutil.copy(cifar_files.archive, tmp_path)
    ds = data.CIFAR10(root=tmp_path, train=train, download=False)
    images, labels = cifar_files.train if train else cifar_files.test
    assert ds.images.shape == (len(images), 32, 32, 3) and ds.images.dtype == np.float32
    np.testing.assert_array_equal(np.round(ds.images * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.classes == cifar_files.classes
    assert (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    assert not [p for p in (tmp_path / "cifar-10-batches-bin").iterdir()
                if p.name.startswith(".")], "no temporary files left behind"
    # The second load reads the extracted batches, without the archive.
    (tmp_path / "cifar-10-binary.tar.gz").unlink()
    again = data.CIFAR10(root=tmp_path, train=train, download=False, size=16)
    assert again.images.shape == (len(images), 16, 16, 3)


def test_cifar_bad_files(cifar_files, cifar_bytes, tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    imgs, labels = cifar_files.test
    (folder / "test_batch.bin").write_bytes(cifar_bytes(imgs, labels)[:-5])
    with pytest.raises(DatasetFormatError, match="test_batch.bin: .*3073-byte"):
        data.CIFAR10(root=tmp_path, train=False, download=False)
    bad = labels.copy()
    bad[2] = 11
    (folder / "test_batch.bin").write_bytes(cifar_bytes(imgs, bad))
    with pytest.raises(DatasetFormatError, match="record 2 has label 11"):
        data.CIFAR10(root=tmp_path, train=False, download=False)


def test_cifar_bad_archive(tmp_path):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 50)
    with pytest.raises(DatasetFormatError, match="cifar-10-binary.tar.gz: not a readable"):
        data.CIFAR10(root=tmp_path, download=False)


def test_cifar_missing_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False"):
        data.CIFAR10(root=tmp_path, download=False)


# ---- image folders --------------------------------------------------------------------
def _write_folder(root, rng, grey=False, size=(9, 7)):
    arrays = {}
    for cls, n in (("cat", 3), ("dog", 2), ("emu", 1)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            shape = size if grey else (*size, 3)
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
            arrays[(cls, i)] = arr
    (root / "cat" / "notes.txt").write_text("ignored")
    return arrays


@pytest.mark.parametrize("grey", [False, True])
def test_image_folder_png(tmp_path, grey):
    arrays = _write_folder(tmp_path, np.random.default_rng(0), grey=grey)
    ds = data.ImageFolder(tmp_path)
    c = 1 if grey else 3
    assert ds.classes == ["cat", "dog", "emu"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert ds.images.shape == (6, 9, 7, c) and ds.images.dtype == np.float32
    for k, (cls, i) in enumerate([("cat", 0), ("cat", 1), ("cat", 2), ("dog", 0), ("dog", 1),
                                  ("emu", 0)]):
        want = arrays[(cls, i)].reshape(9, 7, c).astype(np.float32) / 255
        np.testing.assert_array_equal(ds.images[k], want)
        assert ds.paths[k].name == f"{i}.png"


def test_image_folder_resize_channels_and_jpeg(tmp_path):
    rng = np.random.default_rng(1)
    _write_folder(tmp_path, rng, grey=True)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(
        tmp_path / "dog" / "big.JPG", quality=95)
    ds = data.ImageFolder(tmp_path, size=(12, 10))
    assert ds.images.shape == (7, 12, 10, 3)  # one colour image makes it RGB
    grey = data.ImageFolder(tmp_path, size=8, channels=1)
    assert grey.images.shape == (7, 8, 8, 1)
    assert 0 <= grey.images.min() and grey.images.max() <= 1


def test_image_folder_sizes_must_agree_without_resize(tmp_path):
    _write_folder(tmp_path, np.random.default_rng(2))
    Image.new("RGB", (5, 5)).save(tmp_path / "emu" / "small.png")
    with pytest.raises(ValueError, match=r"small.png is 5x5 but .*0.png is 9x7; pass size"):
        data.ImageFolder(tmp_path)


@pytest.mark.parametrize("corrupt", ["garbage", "truncated"])
def test_image_folder_corrupt_file(tmp_path, corrupt):
    _write_folder(tmp_path, np.random.default_rng(3))
    bad = tmp_path / "dog" / "zz_bad.png"
    good = (tmp_path / "dog" / "0.png").read_bytes()
    bad.write_bytes(b"this is not a png" if corrupt == "garbage" else good[:len(good) // 2])
    with pytest.raises(DatasetFormatError, match="zz_bad.png: cannot read image"):
        data.ImageFolder(tmp_path)
    with pytest.warns(UserWarning, match="skipping .*zz_bad.png"):
        ds = data.ImageFolder(tmp_path, skip_bad=True)
    assert len(ds) == 6 and all(p.name != "zz_bad.png" for p in ds.paths)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.ImageFolder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class subfolders"):
        data.ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no readable"):
        data.ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="channels must be 1, 3 or None, got 2"):
        data.ImageFolder(tmp_path, channels=2)


def test_load_image(tmp_path):
    arr = np.random.default_rng(4).integers(0, 256, (6, 5), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "d.png")
    x = data.load_image(tmp_path / "d.png")
    assert x.shape == (6, 5, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], arr / np.float32(255))
    assert data.load_image(tmp_path / "d.png", size=28, channels=3).shape == (28, 28, 3)
    with pytest.raises(FileNotFoundError):
        data.load_image(tmp_path / "missing.png")


# ---- the registry ---------------------------------------------------------------------
def test_get_dataset_names(mnist_files, cifar_files, tmp_path):
    ds = data.get_dataset("mnist", root=mnist_files.dir, train=False, download=False)
    assert isinstance(ds, data.MNIST) and len(ds) == 12
    ds = data.get_dataset("fashion-mnist", root=mnist_files.dir, download=False, size=14)
    assert isinstance(ds, data.FashionMNIST) and ds.input_shape == (14, 14, 1)
    shutil.copy(cifar_files.archive, tmp_path)
    assert len(data.get_dataset("cifar10", root=tmp_path, train=False)) == 5
    assert len(data.get_dataset("digits", train=False)) == 360


def test_get_dataset_folder_and_npz(tmp_path):
    rng = np.random.default_rng(5)
    _write_folder(tmp_path / "flat", rng)
    assert len(data.get_dataset(f"folder:{tmp_path / 'flat'}", train=False)) == 6
    _write_folder(tmp_path / "split" / "train", rng)
    _write_folder(tmp_path / "split" / "test", rng)
    (tmp_path / "split" / "test" / "cat" / "0.png").unlink()
    assert len(data.get_dataset(f"folder:{tmp_path / 'split'}", train=True)) == 6
    assert len(data.get_dataset(f"folder:{tmp_path / 'split'}", train=False)) == 5
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 3, 3)), y_train=np.arange(4),
             x_test=np.ones((2, 3, 3)), y_test=np.arange(2))
    ds = data.get_dataset(f"npz:{tmp_path / 'd.npz'}", train=False)
    assert len(ds) == 2 and ds.images.min() == 1


@pytest.mark.parametrize("name,match", [("imagenet", "unknown dataset 'imagenet'"),
                                        ("folder:", "expected folder:PATH"),
                                        ("", "non-empty string")])
def test_get_dataset_bad_names(name, match):
    with pytest.raises(ValueError, match=match):
        data.get_dataset(name)


def test_no_pickle_in_the_data_package():
    import pathlib

    import convnet.data as pkg
    for path in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path
