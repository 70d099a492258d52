"""DataLoader (orders, batches, exact mid-epoch resume) and the batch transforms."""

import json

import numpy as np
import pytest

from convnet import data


def _dataset(n=23, h=6, w=5, c=2, seed=0):
    rng = np.random.default_rng(seed)
    return data.ArrayDataset(rng.random((n, h, w, c)).astype(np.float32), np.arange(n) % 4)


def _json_state(state):
    """Through JSON and back, as a checkpoint would store it (arrays as lists)."""
    enc = json.dumps(state, default=lambda a: {"__array__": a.tolist()})
    return json.loads(enc, object_hook=lambda d: np.array(d["__array__"], np.int64)
                      if set(d) == {"__array__"} else d)


@pytest.mark.parametrize("n,bs,drop_last,batches,last", [(23, 5, False, 5, 3), (23, 5, True, 4, 5),
                                                         (20, 5, False, 4, 5), (3, 8, True, 0, 0),
                                                         (3, 8, False, 1, 3), (1, 1, False, 1, 1)])
def test_batches_cover_the_dataset(n, bs, drop_last, batches, last):
    ds = _dataset(n)
    loader = data.DataLoader(ds, batch_size=bs, shuffle=True, drop_last=drop_last, rng=3)
    assert len(loader) == batches
    got = list(loader)
    assert len(got) == batches
    if batches:
        assert got[-1][0].shape == (last, 6, 5, 2)
        assert all(x.dtype == np.float32 and y.dtype == np.int64 for x, y in got)
        labels = np.concatenate([y for _, y in got])
        images = np.concatenate([x for x, _ in got])
        # each image is the dataset's image with the same label (x and y stay paired)
        for img, lab in zip(images, labels):
            k = int(np.flatnonzero((ds.images == img).all(axis=(1, 2, 3)))[0])
            assert ds.labels[k] == lab
        if not drop_last:
            assert len(images) == n and len({img.tobytes() for img in images}) == n


def test_unshuffled_order_and_tuple_input():
    x = np.arange(10 * 2 * 2 * 1, dtype=np.float32).reshape(10, 2, 2, 1)
    loader = data.DataLoader((x, np.arange(10)), batch_size=4)
    ys = [y.tolist() for _, y in loader]
    assert ys == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [y.tolist() for _, y in loader] == ys  # same every epoch


def test_shuffle_order_comes_from_the_generator():
    ds = _dataset(50)
    a = [y for _, y in data.DataLoader(ds, 7, shuffle=True, rng=np.random.default_rng(9))]
    b = [y for _, y in data.DataLoader(ds, 7, shuffle=True, rng=np.random.default_rng(9))]
    expected = ds.labels[np.random.default_rng(9).permutation(50)]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    np.testing.assert_array_equal(np.concatenate(a), expected)
    loader = data.DataLoader(ds, 50, shuffle=True, rng=1)
    e1, e2 = next(iter(loader))[0], next(iter(loader))[0]
    assert not np.array_equal(e1, e2), "each epoch draws a new order"
    assert loader.epoch == 2


class _ListDataset:
    """A dataset with only __len__ and __getitem__ (no get_batch)."""

    classes = ["a", "b"]

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full((2, 2, 1), i, np.uint8), i % 2


def test_generic_dataset_without_get_batch():
    x, y = next(iter(data.DataLoader(_ListDataset(), batch_size=3)))
    assert x.shape == (3, 2, 2, 1) and x.dtype == np.float32 and y.tolist() == [0, 1, 0]


def _run(loader, n_batches):
    out = []
    while len(out) < n_batches:
        for x, y in loader:
            out.append((x, y))
            if len(out) == n_batches:
                break
    return out


def _make_loader(seed, transform_seed):
    trng = np.random.default_rng(transform_seed)
    aug = data.Compose([data.RandomCrop(5, padding=2, rng=trng),
                        data.RandomHorizontalFlip(0.5, rng=trng),
                        data.Normalize([0.5, 0.4], [0.2, 0.3])])
    return data.DataLoader(_dataset(23), batch_size=4, shuffle=True,
                           rng=np.random.default_rng(seed), transform=aug)


@pytest.mark.parametrize("stop_after", [0, 1, 3, 6, 7, 9, 16])
def test_resume_mid_epoch_is_exact(stop_after):
    straight = _run(_make_loader(0, 1), 18)  # 6 batches per epoch, 3 epochs
    first = _make_loader(0, 1)
    head = _run(first, stop_after) if stop_after else []
    state = _json_state(first.state_dict())
    resumed = _make_loader(123, 456)  # different seeds: everything comes from the state
    resumed.load_state_dict(state)
    tail = _run(resumed, 18 - stop_after)
    for k, ((x1, y1), (x2, y2)) in enumerate(zip(straight, head + tail)):
        np.testing.assert_array_equal(x1, x2, err_msg=f"batch {k}")
        np.testing.assert_array_equal(y1, y2, err_msg=f"batch {k}")
    assert resumed.epoch == 3


def test_state_dict_contents():
    loader = data.DataLoader(_dataset(10), batch_size=3, shuffle=True, rng=0)
    state = loader.state_dict()
    assert state["epoch"] == 0 and state["position"] == 0 and state["permutation"].size == 0
    it = iter(loader)
    next(it)
    next(it)
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["position"] == 2 and loader.position == 2
    assert sorted(state["permutation"].tolist()) == list(range(10))
    json.dumps({k: v for k, v in state.items() if k != "permutation"})
    # The saved permutation is a copy: a new epoch does not change it.
    saved = state["permutation"].copy()
    list(loader)
    np.testing.assert_array_equal(state["permutation"], saved)


@pytest.mark.parametrize("change,match", [
    (dict(num_samples=11), "dataset of 11 samples, this one has 10"),
    (dict(batch_size=4), "batch_size 4"),
    (dict(position=9), "position 9"),
    (dict(permutation=np.arange(9)), "order of 0..9"),
    (dict(permutation=np.zeros(10, np.int64)), "order of 0..9"),
    (dict(shuffle=False), "shuffle=False"),
])
def test_load_state_dict_validates(change, match):
    loader = data.DataLoader(_dataset(11), batch_size=3, shuffle=True, rng=0)
    next(iter(loader))
    state = loader.state_dict()
    state["num_samples"] = 10
    other = data.DataLoader(_dataset(10), batch_size=3, shuffle=True, rng=0)
    state.update(permutation=np.arange(10))
    state.update(change)
    with pytest.raises(ValueError, match=match):
        other.load_state_dict(state)


def test_loader_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        data.DataLoader(_dataset(), batch_size=0)
    with pytest.raises(TypeError, match="transform must be callable"):
        data.DataLoader(_dataset(), transform=3)
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        data.DataLoader(42)


# ---- transforms -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_per_channel(dtype):
    x = np.random.default_rng(0).random((4, 3, 3, 3)).astype(dtype)
    mean, std = [0.1, 0.2, 0.3], [0.5, 2.0, 0.25]
    out = data.Normalize(mean, std)(x)
    assert out.dtype == dtype
    ref = np.empty_like(x)
    for c in range(3):
        ref[..., c] = (x[..., c] - mean[c]) / std[c]
    np.testing.assert_allclose(out, ref, rtol=1e-6 if dtype == np.float32 else 1e-14)
    m, s = data.Normalize.stats(x)
    np.testing.assert_allclose(m, [x[..., c].mean() for c in range(3)], rtol=1e-6)
    with pytest.raises(ValueError, match="images have 2 channels but mean/std have 3"):
        data.Normalize(mean, std)(x[..., :2])
    with pytest.raises(ValueError, match="std must be > 0"):
        data.Normalize([0.0], [0.0])


@pytest.mark.parametrize("size,padding", [(5, 0), (4, 1), ((6, 3), (2, 0)), (8, 3)])
def test_random_crop_windows(size, padding):
    x = np.random.default_rng(1).random((9, 6, 5, 2))
    crop = data.RandomCrop(size, padding=padding, fill=-1.0, rng=np.random.default_rng(2))
    out = crop(x)
    ch, cw = (size, size) if isinstance(size, int) else size
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    assert out.shape == (9, ch, cw, 2)
    offsets = set()
    for n in range(9):  # every crop is some window of the padded image, found by search
        padded = np.full((6 + 2 * ph, 5 + 2 * pw, 2), -1.0)
        padded[ph:ph + 6, pw:pw + 5] = x[n]
        hits = [(i, j) for i in range(padded.shape[0] - ch + 1)
                for j in range(padded.shape[1] - cw + 1)
                if np.array_equal(padded[i:i + ch, j:j + cw], out[n])]
        assert hits, f"image {n}: the crop is not a window of the padded image"
        offsets.add(hits[0])
    n_offsets = (6 + 2 * ph - ch + 1) * (5 + 2 * pw - cw + 1)
    assert len(offsets) > 1 or n_offsets == 1, "offsets must vary across the batch"


def test_random_crop_offsets_come_from_the_generator():
    x = np.random.default_rng(1).random((5, 8, 8, 1))
    out = data.RandomCrop(4, padding=1, rng=np.random.default_rng(3))(x)
    rng = np.random.default_rng(3)
    oy, ox = rng.integers(0, 7, size=5), rng.integers(0, 7, size=5)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for n in range(5):
        np.testing.assert_array_equal(out[n], padded[n, oy[n]:oy[n] + 4, ox[n]:ox[n] + 4])
    with pytest.raises(ValueError, match=r"crop \(12, 12\) is larger than the padded image"):
        data.RandomCrop(12, rng=0)(x)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_random_horizontal_flip(p):
    x = np.random.default_rng(0).random((200, 3, 4, 2)).astype(np.float32)
    out = data.RandomHorizontalFlip(p, rng=np.random.default_rng(5))(x)
    flipped = np.array([np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)])
    same = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped | same) and out.dtype == np.float32
    assert flipped.mean() == p if p in (0.0, 1.0) else 0.35 < flipped.mean() < 0.65
    one = data.RandomHorizontalFlip(1.0, rng=0)(x[0])
    np.testing.assert_array_equal(one, x[0][:, ::-1])
    with pytest.raises(ValueError, match="p must be in"):
        data.RandomHorizontalFlip(1.5)


def test_compose_state_round_trip():
    def make(seed):
        rng = np.random.default_rng(seed)
        return data.Compose([data.RandomCrop(3, padding=1, rng=rng),
                             data.RandomHorizontalFlip(rng=np.random.default_rng(seed + 1))])
    x = np.random.default_rng(0).random((6, 4, 4, 1))
    a = make(0)
    a(x)
    state = json.loads(json.dumps(a.state_dict()))
    b = make(99)
    b.load_state_dict(state)
    np.testing.assert_array_equal(a(x), b(x))


# ---- resize ---------------------------------------------------------------------------
def _resize_loop(x, oh, ow):
    """Half-pixel bilinear, one output pixel at a time."""
    n, h, w, c = x.shape
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        sy = max((i + 0.5) * h / oh - 0.5, 0.0)
        y0 = min(int(sy), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(ow):
            sx = max((j + 0.5) * w / ow - 0.5, 0.0)
            x0 = min(int(sx), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - x0
            out[:, i, j] = ((1 - fy) * ((1 - fx) * x[:, y0, x0] + fx * x[:, y0, x1])
                            + fy * ((1 - fx) * x[:, y1, x0] + fx * x[:, y1, x1]))
    return out


@pytest.mark.parametrize("shape,size", [((2, 8, 8, 1), 28), ((1, 8, 8, 3), (16, 12)),
                                        ((3, 7, 5, 2), (3, 9)), ((1, 1, 1, 1), 4),
                                        ((2, 32, 32, 3), 28), ((1, 5, 6, 1), (5, 6))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_resize_matches_torch_and_loop(torch, shape, size, dtype):
    x = np.random.default_rng(0).random(shape).astype(dtype)
    out = data.resize_images(x, size)
    oh, ow = (size, size) if isinstance(size, int) else size
    assert out.shape == (shape[0], oh, ow, shape[3]) and out.dtype == dtype
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, _resize_loop(x.astype(np.float64), oh, ow), **tol)
    ref = torch.nn.functional.interpolate(torch.from_numpy(np.moveaxis(x, -1, 1).copy()),
                                          size=(oh, ow), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(out, np.moveaxis(ref.numpy(), 1, -1), **tol)


def test_resize_upscale_matches_pillow():
    from PIL import Image
    x = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    ref = np.asarray(Image.fromarray(x, mode="F").resize((28, 28), Image.BILINEAR))
    np.testing.assert_allclose(data.resize_images(x[None, :, :, None], 28)[0, :, :, 0], ref,
                               atol=1e-5)
