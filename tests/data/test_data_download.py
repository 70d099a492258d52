"""Downloads from a local http.server and file:// URLs: checksums, atomic writes, mirrors,
the cache under $CONVNET_HOME, and whole datasets fetched that way."""

import hashlib
import os

import numpy as np
import pytest

from convnet import data
from convnet.data import ChecksumError, DownloadError


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_convnet_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVNET_HOME", str(tmp_path / "h"))
    assert data.convnet_home() == tmp_path / "h"
    monkeypatch.delenv("CONVNET_HOME")
    assert data.convnet_home() == data.download.Path("~/.cache/convnet").expanduser()


def test_download_url_http_verifies_sha256(http_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(300_000)
    (src / "blob.bin").write_bytes(payload)
    base, server = http_server(src)
    dest = tmp_path / "cache" / "blob.bin"
    got = data.download_url(base + "blob.bin", dest, sha256=hashlib.sha256(payload).hexdigest(),
                            md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert got == dest and dest.read_bytes() == payload
    assert _files(dest.parent) == ["blob.bin"]
    assert server.requests == ["/blob.bin"]


def test_download_url_with_progress_bar(http_server, tmp_path, capsys):
    (tmp_path / "f.bin").write_bytes(b"abc" * 1000)
    base, _ = http_server(tmp_path)
    data.download_url(base + "f.bin", tmp_path / "out" / "f.bin", progress=True)
    assert "f.bin" in capsys.readouterr().err  # tqdm drew on stderr


def test_checksum_mismatch_is_rejected_and_leaves_nothing(http_server, tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"the real bytes")
    base, _ = http_server(tmp_path)
    cache = tmp_path / "cache"
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(ChecksumError, match=f"SHA-256 mismatch: expected {wrong}, got "
                                            f"{hashlib.sha256(b'the real bytes').hexdigest()}"):
        data.download_url(base + "blob.bin", cache / "blob.bin", sha256=wrong)
    assert _files(cache) == []
    md5_wrong = "0" * 32
    with pytest.raises(ChecksumError, match="MD5 mismatch"):
        data.download_url(base + "blob.bin", cache / "blob.bin",
                          sha256=hashlib.sha256(b"the real bytes").hexdigest(), md5=md5_wrong)
    assert _files(cache) == []


def test_truncated_download_leaves_nothing(http_server, tmp_path):
    base, _ = http_server(tmp_path, truncate=True)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="cannot download .*blob.bin"):
        data.download_url(base + "blob.bin", cache / "blob.bin")
    assert _files(cache) == []


def test_http_404_and_unreachable(http_server, tmp_path):
    base, _ = http_server(tmp_path)
    with pytest.raises(DownloadError, match="HTTP 404"):
        data.download_url(base + "missing.bin", tmp_path / "c" / "missing.bin")
    with pytest.raises(DownloadError, match="cannot download file:"):
        data.download_url((tmp_path / "nope.bin").as_uri(), tmp_path / "c" / "nope.bin")
    assert _files(tmp_path / "c") == []


def test_fetch_file_mirror_fallback_and_cache(http_server, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "f.bin").write_bytes(b"payload")
    (bad / "f.bin").write_bytes(b"tampered")
    sha = hashlib.sha256(b"payload").hexdigest()
    bad_url, bad_server = http_server(bad)
    good_url, good_server = http_server(good)
    missing_url, _ = http_server(tmp_path / "good" / "..")
    cache = tmp_path / "cache"
    path = data.fetch_file("f.bin", cache, [missing_url + "empty/", bad_url, good_url], sha)
    assert path.read_bytes() == b"payload" and _files(cache) == ["f.bin"]
    assert len(bad_server.requests) == 1 and len(good_server.requests) == 1
    # Cached now: no further request.
    data.fetch_file("f.bin", cache, [good_url], sha)
    assert len(good_server.requests) == 1


def test_fetch_file_all_mirrors_fail(http_server, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"tampered")
    url, _ = http_server(tmp_path)
    with pytest.raises(ChecksumError, match="could not download f.bin"):
        data.fetch_file("f.bin", tmp_path / "c", [url], "0" * 64)
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        data.fetch_file("g.bin", tmp_path / "c", [url], "0" * 64)
    assert not isinstance(info.value, ChecksumError)
    assert _files(tmp_path / "c") == []


def test_resolve_mirrors(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVNET_X_MIRROR", "http://a/, http://b/")
    assert data.resolve_mirrors(["http://d/"], "CONVNET_X_MIRROR") == ["http://a/", "http://b/"]
    assert data.resolve_mirrors(["http://d/"], "CONVNET_X_MIRROR", "http://c/") == ["http://c/"]
    monkeypatch.delenv("CONVNET_X_MIRROR")
    assert data.resolve_mirrors(["http://d/"], "CONVNET_X_MIRROR") == ["http://d/"]
    assert data.resolve_mirrors([str(tmp_path)]) == [tmp_path.resolve().as_uri()]


# ---- whole datasets through the download path -----------------------------------------
@pytest.fixture
def fixture_checksums(monkeypatch, mnist_files, cifar_files):
    """Point the resource tables at the fixtures' checksums (the real ones are for the
    real files)."""
    for cls in (data.MNIST, data.FashionMNIST):
        monkeypatch.setattr(cls, "resources", {n: (s, None, None)
                                               for n, s in mnist_files.sha256.items()})
    monkeypatch.setattr(data.CIFAR10, "resources",
                        {"cifar-10-binary.tar.gz": (cifar_files.sha256, None, None)})


@pytest.mark.parametrize("cls,env", [(data.MNIST, "CONVNET_MNIST_MIRROR"),
                                     (data.FashionMNIST, "CONVNET_FASHION_MNIST_MIRROR")])
def test_mnist_downloads_over_http(home, http_server, mnist_files, fixture_checksums,
                                   monkeypatch, cls, env):
    base, server = http_server(mnist_files.dir)
    monkeypatch.setenv(env, base)
    ds = cls(train=True)
    images, labels = mnist_files.arrays["train"]
    np.testing.assert_array_equal(np.round(ds.images[..., 0] * 255), images)
    np.testing.assert_array_equal(ds.labels, labels)
    cached = home / "data" / cls.name
    assert _files(cached) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert len(server.requests) == 2
    cls(train=True)  # from the cache
    assert len(server.requests) == 2
    assert len(cls(train=False)) == 12 and len(server.requests) == 4


def test_mnist_downloads_from_file_url(home, mnist_files, fixture_checksums):
    ds = data.MNIST(train=False, mirrors=[mnist_files.dir.as_uri()])
    np.testing.assert_array_equal(ds.labels, mnist_files.arrays["t10k"][1])
    assert (home / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_mnist_real_checksums_reject_other_files(home, http_server, mnist_files, monkeypatch):
    """With the recorded (real) SHA-256 sums, the fixture files are refused."""
    base, _ = http_server(mnist_files.dir)
    monkeypatch.setenv("CONVNET_MNIST_MIRROR", base)
    with pytest.raises(ChecksumError, match="SHA-256 mismatch: expected 440fcabf73cc546f"):
        data.MNIST(train=True)
    assert _files(home) == []


def test_cifar_downloads_over_http(home, http_server, cifar_files, fixture_checksums,
                                   monkeypatch):
    base, server = http_server(cifar_files.dir)
    monkeypatch.setenv("CONVNET_CIFAR10_MIRROR", base)
    ds = data.CIFAR10(train=False)
    np.testing.assert_array_equal(np.round(ds.images * 255).astype(np.uint8), cifar_files.test[0])
    assert server.requests == ["/cifar-10-binary.tar.gz"]
    assert len(data.CIFAR10(train=True)) == 35 and len(server.requests) == 1
    root = home / "data" / "cifar10"
    assert "cifar-10-binary.tar.gz" in _files(root) and "data_batch_5.bin" in _files(root)


def test_cifar_real_checksum_rejects_other_archive(home, cifar_files):
    with pytest.raises(ChecksumError, match="expected c4a38c50a1bc5f3a"):
        data.get_dataset("cifar10", mirrors=[cifar_files.dir.as_uri()])
    assert _files(home) == []


def test_recorded_checksums_are_well_formed():
    for cls in (data.MNIST, data.FashionMNIST, data.CIFAR10):
        for name, (sha, md5, size) in cls.resources.items():
            assert len(sha) == 64 and int(sha, 16) >= 0, name
            assert len(md5) == 32 and int(md5, 16) >= 0, name
            assert size > 1000, name
