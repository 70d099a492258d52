"""The Tensor autograd engine: broadcasting, DAGs, deep chains, no_grad, indexing and the
shape ops, checked against hand-derived gradients, torch and finite differences."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import grad_check

import convnet
from convnet import Tensor

BINARY = {
    "+": (lambda a, b: a + b), "-": (lambda a, b: a - b), "*": (lambda a, b: a * b),
    "/": (lambda a, b: a / b),
}
BROADCAST_SHAPES = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 1)),
                    ((2, 1, 4), (1, 3, 1)), ((5,), ()), ((), (2, 3)), ((3, 1), (1, 3))]


def _away_from_zero(rng, shape):
    x = rng.standard_normal(shape)
    return np.asarray(x + np.sign(x) * 0.5)       # |x| >= 0.5; a 0-d array (not a scalar) for ()


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES)
def test_broadcasting_forward_and_backward_vs_torch(op, sa, sb, rng, torch):
    a, b = _away_from_zero(rng, sa), _away_from_zero(rng, sb)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = BINARY[op](ta, tb)
    np.testing.assert_array_equal(out.data, BINARY[op](a, b))
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    assert ta.grad.shape == sa and tb.grad.shape == sb
    qa = torch.from_numpy(np.array(a)).requires_grad_(True)
    qb = torch.from_numpy(np.array(b)).requires_grad_(True)
    BINARY[op](qa, qb).backward(torch.from_numpy(np.array(dout)))
    np.testing.assert_allclose(ta.grad, qa.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tb.grad, qb.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("op", list(BINARY))
def test_broadcasting_gradcheck(op, rng):
    grad_check(BINARY[op], [_away_from_zero(rng, (2, 1, 4)), _away_from_zero(rng, (3, 1))])


def test_python_scalars_and_arrays_on_either_side(rng):
    x = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    y = 2 * x - 1 + x / 4 - 3 / (x * x + 1) + np.ones(3, np.float32) * x
    assert y.dtype == np.float32                     # Python scalars never up-cast
    dout = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(dout)
    v = x.data.astype(np.float64)
    expect = dout * (2 + 0.25 + 3 * 2 * v / (v * v + 1) ** 2 + 1)
    np.testing.assert_allclose(x.grad, expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                                   ((4,), (4,)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_shapes_vs_torch_and_gradcheck(sa, sb, rng, torch):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = ta @ tb
    qa = torch.from_numpy(a.copy()).requires_grad_(True)
    qb = torch.from_numpy(b.copy()).requires_grad_(True)
    qout = qa @ qb
    assert out.shape == tuple(qout.shape)
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    qout.backward(torch.from_numpy(np.array(dout)))
    np.testing.assert_allclose(out.data, qout.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ta.grad, qa.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad, qb.grad.numpy(), rtol=1e-12, atol=1e-12)
    grad_check(lambda p, q: p @ q, [a, b])


# ---- graphs ---------------------------------------------------------------------

def test_reused_tensor_accumulates_every_path(rng):
    x0 = rng.standard_normal((3, 2))
    x = Tensor(x0, requires_grad=True)
    y = x * x + x                      # x used three times
    z = y * x                          # and once more, through a second path
    dout = rng.standard_normal(z.shape)
    z.backward(dout)
    # z = x^3 + x^2  ->  dz/dx = 3x^2 + 2x
    np.testing.assert_allclose(x.grad, dout * (3 * x0 ** 2 + 2 * x0), rtol=1e-12)


def test_diamond_and_skip_connection_vs_torch(rng, torch):
    x0 = rng.standard_normal((2, 3))
    x = Tensor(x0, requires_grad=True)
    a = x * 2
    b = a.exp()
    c = a * b + a                      # a reaches c by two paths
    out = (c + x).sum(axis=1)          # skip connection back to x
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    q = torch.from_numpy(x0.copy()).requires_grad_(True)
    qa = q * 2
    ((qa * qa.exp() + qa + q).sum(dim=1)).backward(torch.from_numpy(dout))
    np.testing.assert_allclose(x.grad, q.grad.numpy(), rtol=1e-12)


def test_backward_twice_accumulates_into_leaf_grad(rng):
    x = Tensor(rng.standard_normal(4), requires_grad=True)
    (x * 3).backward(np.ones(4))
    (x * 3).backward(np.ones(4))
    np.testing.assert_array_equal(x.grad, np.full(4, 6.0))
    x.zero_grad()
    assert x.grad is None


def test_2000_op_chain_has_no_recursion_error():
    limit = sys.getrecursionlimit()
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(2000):
        y = y * 1.0005 + 0.001
    y.backward(np.array([1.0, -2.0]))
    np.testing.assert_allclose(x.grad, np.array([1.0, -2.0]) * 1.0005 ** 2000, rtol=1e-10)
    assert sys.getrecursionlimit() == limit          # not raised behind our back


def test_no_grad_records_nothing(rng):
    x = Tensor(rng.standard_normal(3), requires_grad=True)
    with convnet.no_grad():
        y = (x * 2 + 1).sum()
        z = convnet.functional.relu(x)
        assert not convnet.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert not z.requires_grad and z._ctx is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert convnet.is_grad_enabled()
    w = (x * 2).sum()                                # recording again after the block
    assert w.requires_grad
    w.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_backward_argument_errors(rng):
    x = Tensor(rng.standard_normal((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element tensor, got shape \(2, 2\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\) but the tensor has shape"):
        (x * 2).backward(np.ones(3))


# ---- indexing and joining ----------------------------------------------------------

INDICES = [
    (slice(1, 3),), (slice(None), slice(None, None, 2)), (slice(2, 0, -1), 1),
    ([0, 0, 2],), (slice(None), [1, 1, 3, 1]), ([0, 2, 2], [3, 1, 1]), (1, Ellipsis, 0),
    (np.array([[0, 1], [1, 1]]),), (None, slice(0, 2)),
]


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_getitem_vs_torch_repeated_indices_accumulate(index, rng, torch):
    x0 = rng.standard_normal((3, 4, 2))
    x = Tensor(x0, requires_grad=True)
    out = x[index]
    np.testing.assert_array_equal(out.data, x0[index])
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    q = torch.from_numpy(x0.copy()).requires_grad_(True)
    if any(isinstance(i, slice) and (i.step or 1) < 0 for i in index):   # torch can't: flip
        q_src = torch.flip(q, dims=(0,))
        index = (slice(3 - 1 - index[0].start, 3 - 1 - index[0].stop, 1),) + index[1:]
    else:
        q_src = q
    tindex = tuple(torch.from_numpy(np.asarray(i)) if isinstance(i, (list, np.ndarray)) else i
                   for i in index)
    qout = q_src[tindex] if len(tindex) > 1 else q_src[tindex[0]]
    qout.backward(torch.from_numpy(np.array(dout)))
    np.testing.assert_allclose(x.grad, q.grad.numpy(), rtol=1e-12)


def test_repeated_fancy_index_accumulates_by_hand():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[[1, 1, 1, 3]].backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 6.0, 0.0, 4.0])


def test_boolean_mask_index(rng):
    x0 = rng.standard_normal((3, 4))
    x = Tensor(x0, requires_grad=True)
    mask = x0 > 0
    dout = rng.standard_normal(int(mask.sum()))
    x[mask].backward(dout)
    expect = np.zeros_like(x0)
    expect[mask] = dout
    np.testing.assert_array_equal(x.grad, expect)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_vs_torch(axis, rng, torch):
    shapes = {0: [(1, 3, 2), (4, 3, 2), (2, 3, 2)], 1: [(2, 1, 2), (2, 3, 2), (2, 2, 2)],
              -1: [(2, 3, 1), (2, 3, 3), (2, 3, 2)]}[axis]
    arrays = [rng.standard_normal(s) for s in shapes]
    ts = [Tensor(a, requires_grad=i != 1) for i, a in enumerate(arrays)]   # middle: no grad
    out = convnet.concatenate(ts, axis=axis)
    np.testing.assert_array_equal(out.data, np.concatenate(arrays, axis=axis))
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    qs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
    torch.cat(qs, dim=axis).backward(torch.from_numpy(dout))
    assert ts[1].grad is None
    for t, q in zip(ts[::2], qs[::2]):
        np.testing.assert_array_equal(t.grad, q.grad.numpy())
    grad_check(lambda *t: convnet.concatenate(t, axis=axis), arrays)


def test_concatenate_and_stack_errors():
    with pytest.raises(ValueError, match=r"shapes must match except on axis 0, got \(2, 3\) and "
                                         r"\(2, 4\)"):
        convnet.concatenate([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 4)))], axis=0)
    with pytest.raises(ValueError, match="tensor 0 has 2 dims but tensor 1 has 1"):
        convnet.concatenate([Tensor(np.ones((2, 3))), Tensor(np.ones(3))])


def test_stack_gradcheck(rng):
    grad_check(lambda a, b: convnet.stack([a, b], axis=1),
               [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))])


# ---- shape ops and reductions by finite differences --------------------------------

SHAPE_OPS = {
    "reshape": lambda t: t.reshape(4, 6),
    "reshape_-1": lambda t: t.reshape((2, -1)),
    "transpose": lambda t: t.transpose(2, 0, 1),
    "T": lambda t: t.T,
    "sum_all": lambda t: t.sum(),
    "sum_axis": lambda t: t.sum(axis=1),
    "sum_axes_keep": lambda t: t.sum(axis=(0, 2), keepdims=True),
    "mean_all": lambda t: t.mean(),
    "mean_axis": lambda t: t.mean(axis=-1),
    "mean_keep": lambda t: t.mean(axis=(1, 2), keepdims=True),
    "exp_log_pow": lambda t: ((t * t + 1).log() + (t * 0.3).exp()) ** 2,
    "sqrt_neg": lambda t: -((t * t + 0.5).sqrt()),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops_and_reductions_gradcheck(name, rng):
    grad_check(SHAPE_OPS[name], [rng.standard_normal((2, 3, 4))])


def test_reshape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) \(6 "
                                         r"elements\) into \(4, 2\)"):
        Tensor(np.ones((2, 3))).reshape(4, 2)


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only float tensors can require gradients, got dtype "
                                        "int64"):
        Tensor(np.arange(3), requires_grad=True)


# ---- memory: the graph keeps Functions, not intermediate tensors ------------------

def test_intermediate_array_is_freed_when_no_op_saved_it(rng, torch):
    """relu keeps its output, not its input: once the caller drops the pre-activation
    tensor its array must be gone, and the gradient must still be right."""
    import gc
    import weakref

    import convnet.functional as F
    x0 = rng.standard_normal((4, 5))
    x = Tensor(x0, requires_grad=True)
    h = x + 0.25                                            # Add saves no arrays
    probe = weakref.ref(h.data)
    y = F.relu(h) * 3.0
    del h
    gc.collect()
    assert probe() is None, "the graph kept an intermediate array alive"
    dout = rng.standard_normal(y.shape)
    y.backward(dout)
    tx = torch.from_numpy(x0.copy()).requires_grad_(True)
    (torch.relu(tx + 0.25) * 3.0).backward(torch.from_numpy(dout))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_backward_drops_saved_arrays_node_by_node(rng):
    import weakref

    import convnet.functional as F
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    a = F.relu(x)
    probe = weakref.ref(a._ctx.cache)                       # relu saves its output
    out = (a * 2.0).sum()
    del a
    assert probe() is not None
    out.backward()
    assert probe() is None, "backward kept a node's saved arrays"
    np.testing.assert_array_equal(x.grad, 2.0 * (x.data > 0))


def test_retain_grad_and_parameter_leaves_through_function_nodes(rng):
    """Leaf Parameters (a Tensor subclass) get their gradient; an intermediate with
    retain_grad() that the caller still holds gets its own, used twice it sums both."""
    from convnet import nn
    w = nn.Parameter(rng.standard_normal((3, 2)))
    x = Tensor(rng.standard_normal((4, 3)))
    h = x @ w
    h.retain_grad()
    y = h * h + h
    dout = rng.standard_normal(y.shape)
    y.backward(dout)
    want_h = dout * (2 * h.data + 1)
    np.testing.assert_allclose(h.grad, want_h, rtol=1e-12)
    np.testing.assert_allclose(w.grad, x.data.T @ want_h, rtol=1e-12)
    assert x.grad is None
