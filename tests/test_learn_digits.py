"""The layers learn: a small CNN trained with plain mini-batch SGD -- a hand-written loop
over this issue's pieces only (Tensor, nn layers, F.cross_entropy, p.data -= lr * p.grad)
-- reaches >= 95% test accuracy on scikit-learn's bundled 8x8 digits (fixed stratified
80/20 split, random_state=0).  Seeds 0-4 all give 96-97%; the test uses seed 0."""

from __future__ import annotations

import numpy as np
from sklearn import datasets, model_selection  # a declared test dependency: never skip

import convnet
import convnet.functional as F
from convnet import Tensor, nn


def load_split():
    digits = datasets.load_digits()                       # 1,797 images, 8x8, values 0..16
    x = (digits.images[..., None] / 16.0).astype(np.float32)   # (1797, 8, 8, 1) NHWC
    y = digits.target.astype(np.int64)
    return model_selection.train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)


def digits_cnn(rng):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),   # (4, 4, 16)
        nn.Conv2d(16, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),  # (2, 2, 32)
        nn.Flatten(), nn.Linear(2 * 2 * 32, 10, rng=rng))


def accuracy(net, x, y):
    net.eval()
    with convnet.no_grad():
        pred = net(Tensor(x)).data.argmax(axis=1)
    net.train()
    return float((pred == y).mean())


def test_small_cnn_learns_digits():
    x_train, x_test, y_train, y_test = load_split()
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    rng = np.random.default_rng(0)
    net = digits_cnn(rng)
    assert net.output_shape((8, 8, 1)) == (10,)
    batch, epochs = 32, 10
    losses = []
    for epoch in range(epochs):
        lr = 0.2 if epoch < 7 else 0.02  # one step decay for the last three epochs
        order = rng.permutation(len(x_train))
        total = 0.0
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            loss = F.cross_entropy(net(Tensor(x_train[idx])), y_train[idx])
            net.zero_grad()
            loss.backward()
            for p in net.parameters():
                p.data -= lr * p.grad
            total += loss.item() * len(idx)
        losses.append(total / len(order))
    acc = accuracy(net, x_test, y_test)
    print(f"digits: test accuracy {acc:.4f} after {epochs} epochs; "
          f"train loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert losses[-1] < 0.5 * losses[0]
    assert acc >= 0.95, f"test accuracy {acc:.4f} < 0.95"
