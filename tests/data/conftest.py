"""Fixtures for the data tests: dataset files written here, byte by byte, in the real
formats (gzipped IDX, CIFAR-10 binary records in a tar.gz), and a local HTTP server.

Nothing here calls convnet, so the files cannot inherit a bug from the readers.
"""

import functools
import gzip
import hashlib
import http.server
import io
import struct
import tarfile
import threading
import types

import numpy as np
import pytest

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
             np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file: 0, 0, type code, ndim; big-endian uint32 dims; big-endian values."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[arr.dtype.type], arr.ndim)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def cifar_bytes(images_hwc: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: a label byte, then the R, G and B 32x32 planes."""
    out = bytearray()
    for img, label in zip(images_hwc, labels):
        out.append(int(label))
        for c in range(3):
            out += img[:, :, c].tobytes()
    return bytes(out)


@pytest.fixture(name="idx_bytes", scope="session")
def idx_bytes_fixture():
    """The IDX writer, for tests that build their own (bad) files."""
    return idx_bytes


@pytest.fixture(name="cifar_bytes", scope="session")
def cifar_bytes_fixture():
    """The CIFAR-10 record writer."""
    return cifar_bytes


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def mnist_files(tmp_path_factory):
    """The four MNIST files (gzipped IDX) for a 30-image train and 12-image test split."""
    rng = np.random.default_rng(42)
    folder = tmp_path_factory.mktemp("mnist_src")
    arrays = {}
    for prefix, n in (("train", 30), ("t10k", 12)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
        arrays[prefix] = (images, labels)
    sums = {p.name: sha256(p) for p in folder.iterdir()}
    return types.SimpleNamespace(dir=folder, arrays=arrays, sha256=sums)


@pytest.fixture(scope="session")
def cifar_files(tmp_path_factory):
    """A cifar-10-binary.tar.gz laid out as distributed, with 7 records per training
    batch and 5 in the test batch."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("cifar_src")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
             "ship", "truck"]
    batches = {}
    for name, n in [(f"data_batch_{i}.bin", 7) for i in range(1, 6)] + [("test_batch.bin", 5)]:
        batches[name] = (rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
                         rng.integers(0, 10, size=n).astype(np.uint8))
    archive = folder / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        def add(name, payload):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        add("batches.meta.txt", ("\n".join(names) + "\n\n").encode())
        for name, (imgs, labels) in batches.items():
            add(name, cifar_bytes(imgs, labels))
        add("readme.html", b"<html></html>")
    train = (np.concatenate([batches[f"data_batch_{i}.bin"][0] for i in range(1, 6)]),
             np.concatenate([batches[f"data_batch_{i}.bin"][1] for i in range(1, 6)]))
    return types.SimpleNamespace(dir=folder, archive=archive, train=train,
                                 test=batches["test_batch.bin"], classes=names,
                                 batches=batches, sha256=sha256(archive))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


class _TruncatingHandler(_QuietHandler):
    """Announces 1,000 bytes, sends 100, hangs up."""

    def do_GET(self):
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 100)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def http_server():
    """``serve(folder, truncate=False) -> (base_url, server)``; each server runs in a
    daemon thread, shuts itself down after 60 s at the latest, and at teardown."""
    running = []

    def serve(folder, truncate=False):
        cls = _TruncatingHandler if truncate else _QuietHandler
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(cls, directory=str(folder)))
        server.requests = []
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        watchdog = threading.Timer(60.0, server.shutdown)
        watchdog.daemon = True
        watchdog.start()
        running.append((server, thread, watchdog))
        return f"http://127.0.0.1:{server.server_address[1]}/", server

    yield serve
    for server, thread, watchdog in running:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private $CONVNET_HOME, and no mirror variables from the environment."""
    monkeypatch.setenv("CONVNET_HOME", str(tmp_path / "home"))
    for var in ("CONVNET_MNIST_MIRROR", "CONVNET_FASHION_MNIST_MIRROR", "CONVNET_CIFAR10_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"
