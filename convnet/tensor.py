"""Tensor, Function and the autograd tape.

A ``Tensor`` wraps an ndarray.  Every differentiable op is a ``Function`` whose
``forward`` works on plain arrays and whose ``backward(dout)`` returns one gradient
per input.  ``Tensor.backward`` sorts the graph topologically with an explicit stack
(no recursion, so a 2,000-op chain is fine), then makes one reversed pass that
accumulates each node's gradient before handing it to its parents.  A tensor used
twice therefore receives the sum of both gradients, which skip connections need.

The graph's nodes are the Functions and the leaf tensors, as in PyTorch: a Function
records the Function that made each non-leaf input, never the input tensor itself, so
an intermediate tensor's array is freed as soon as nothing but the graph refers to it
(a Conv2d output that the following ReLU does not keep is gone after the forward).
Once a node's backward has run, its saved arrays are dropped.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import numpy as np

from . import backend
from .ops.threads import owned as _owned

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Record nothing inside the block: outputs have ``requires_grad=False``."""
    prev = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = prev


@contextlib.contextmanager
def enable_grad():
    prev = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = prev


def _to_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)  # NumPy arrays and scalars keep their dtype
    else:
        arr = np.asarray(data)
        if arr.dtype.kind == "f" and dtype is None:
            arr = arr.astype(backend.get_default_dtype())
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if arr.dtype == object:
        raise TypeError(f"Tensor data must be numeric, got an array of dtype object "
                        f"(first item: {type(arr.flat[0]).__name__ if arr.size else 'none'})")
    return arr


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Args:
        data: array-like.  NumPy arrays keep their dtype; Python floats and lists of
            floats become the default float dtype (float32).
        requires_grad: record ops on this tensor so that ``backward`` fills ``.grad``.
        dtype: optional dtype to convert to.

    Example:
        >>> x = Tensor(np.ones((2, 3)), requires_grad=True)
        >>> (x * 2).sum().backward()
        >>> x.grad.shape
        (2, 3)
    """

    __array_priority__ = 100  # make ndarray (op) Tensor defer to Tensor's reflected op

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(
                f"only float tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._ctx: Function | None = None
        self._retain = False

    @classmethod
    def _wrap(cls, arr: np.ndarray, requires_grad: bool = False) -> Tensor:
        t = cls.__new__(cls)
        t.data = arr
        t.requires_grad = requires_grad
        t.grad = None
        t._ctx = None
        t._retain = False
        return t

    # ---- plain attributes -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def detach(self) -> Tensor:
        return Tensor._wrap(self.data, False)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor after ``backward``."""
        self._retain = True
        if self._ctx is not None and not self._ctx._freed:
            self._ctx._retained = weakref.ref(self)

    def astype(self, dtype) -> Tensor:
        return Cast.apply(self, dtype=np.dtype(dtype))

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def argmax(self, axis=None) -> np.ndarray:
        return self.data.argmax(axis=axis)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, precision=4, threshold=20, edgeitems=2,
                               prefix="Tensor(")
        return f"Tensor({body}, dtype={self.data.dtype}{grad})"

    # ---- autograd ---------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the upstream gradient; it may be omitted only for a one-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, got shape "
                    f"{self.shape}")
            grad = np.ones_like(self.data)
        else:
            grad = _to_array(grad, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): gradient has shape {grad.shape} but the tensor "
                                 f"has shape {self.shape}")

        root = self._ctx
        if root is None:                                  # a leaf: its own gradient
            _accumulate(self, grad)
            return
        # Iterative post-order DFS over Functions (and leaf tensors, which end a path):
        # a node is appended after all of its inputs.
        order: list = []
        visited: set[int] = set()
        stack: list = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            if not isinstance(node, Tensor):
                for parent in node.parents:
                    if parent is not None and id(parent) not in visited:
                        stack.append((parent, False))

        grads: dict[int, np.ndarray] = {id(root): grad}
        with _owned():                                    # one BLAS thread; see ops.threads
            self._backward_pass(order, grads, retain_graph)

    @staticmethod
    def _backward_pass(order, grads, retain_graph) -> None:
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if isinstance(node, Tensor):                  # a leaf
                _accumulate(node, g)
                continue
            if node._freed:
                raise RuntimeError(
                    "backward() through a graph a second time: its saved arrays were freed "
                    "by the first backward(); pass retain_graph=True to that first call to "
                    "keep them")
            if node._retained is not None:
                kept = node._retained()
                if kept is not None:
                    _accumulate(kept, g)
            in_grads = node.backward(g)
            del g
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for parent, pg in zip(node.parents, in_grads):
                if pg is None or parent is None:
                    continue
                shape = parent.shape if isinstance(parent, Tensor) else parent._out_shape
                if pg.shape != shape:
                    raise RuntimeError(f"{type(node).__name__}.backward returned a gradient "
                                       f"of shape {pg.shape} for an input of shape {shape}")
                key = id(parent)
                prev = grads.get(key)
                grads[key] = pg if prev is None else prev + pg
            del in_grads, pg
            if not retain_graph:
                node._free()                              # drop the saved arrays now

    def zero_grad(self) -> None:
        self.grad = None

    # ---- arithmetic -------------------------------------------------------
    def _lift(self, other) -> Tensor:
        if isinstance(other, Tensor):
            return other
        arr = np.asarray(other)
        if arr.ndim == 0 and self.data.dtype.kind == "f":
            arr = arr.astype(self.data.dtype)  # a Python scalar never up-casts the tensor
        return Tensor._wrap(arr, False)

    def __add__(self, other):
        return Add.apply(self, self._lift(other))

    def __radd__(self, other):
        return Add.apply(self._lift(other), self)

    def __sub__(self, other):
        return Sub.apply(self, self._lift(other))

    def __rsub__(self, other):
        return Sub.apply(self._lift(other), self)

    def __mul__(self, other):
        return Mul.apply(self, self._lift(other))

    def __rmul__(self, other):
        return Mul.apply(self._lift(other), self)

    def __truediv__(self, other):
        return Div.apply(self, self._lift(other))

    def __rtruediv__(self, other):
        return Div.apply(self._lift(other), self)

    def __matmul__(self, other):
        return MatMul.apply(self, self._lift(other))

    def __rmatmul__(self, other):
        return MatMul.apply(self._lift(other), self)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("Tensor ** Tensor is not supported; use a Python number exponent")
        return Pow.apply(self, exponent=float(exponent))

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return GetItem.apply(self, index=index)

    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def sqrt(self) -> Tensor:
        return Pow.apply(self, exponent=0.5)

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    def transpose(self, *axes) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> Tensor:
        return self.transpose()


def _accumulate(t: Tensor, g: np.ndarray) -> None:
    if t.grad is None:
        t.grad = np.array(g, dtype=t.data.dtype, copy=True)
    else:
        t.grad += g


class Function:
    """One differentiable op.  Subclasses define ``forward`` on arrays and ``backward``.

    ``forward(*arrays, **hyperparameters)`` returns the output array and keeps what
    backward needs on ``self``.  ``backward(dout)`` returns one gradient per positional
    input (``None`` where no gradient is needed; ``self.needs_input_grad`` says which).

    While the op is recorded, ``parents`` holds one graph node per positional input:
    the leaf Tensor, the Function that produced a non-leaf Tensor, or None (no gradient
    flows there).  Keeping the producing Function rather than the tensor lets an
    intermediate array die as soon as no op saved it for backward.
    """

    _freed = False
    _retained = None          # weakref to the output tensor, set by retain_grad()
    _out_shape = None

    def __init__(self, *parents):
        self.parents = parents
        self.needs_input_grad = tuple(isinstance(p, Tensor) and p.requires_grad
                                      for p in parents)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs) -> Tensor:
        return cls.apply_with_ctx(*args, **kwargs)[0]

    @classmethod
    def apply_with_ctx(cls, *args, **kwargs) -> tuple[Tensor, Function]:
        """Like ``apply`` but also returns the Function, for ops with side outputs."""
        ctx = cls.__new__(cls)
        needs = []
        arrays = []
        for a in args:
            if isinstance(a, Tensor):
                needs.append(a.requires_grad)
                arrays.append(a.data)
            else:
                needs.append(False)
                arrays.append(a)
        ctx.needs_input_grad = tuple(needs)
        with _owned():                                    # one BLAS thread; see ops.threads
            out = ctx.forward(*arrays, **kwargs)
        del arrays
        result = Tensor._wrap(out, False)
        if True in needs and is_grad_enabled():
            result.requires_grad = True
            result._ctx = ctx
            ctx._out_shape = out.shape
            # One node per input: leaf tensor, producing Function, or None.
            ctx.parents = tuple(
                (a if a._ctx is None else a._ctx) if need else None
                for a, need in zip(args, needs))
        else:
            ctx.parents = ()                              # keep no inputs alive
        return result, ctx

    def _free(self) -> None:
        """Drop everything the forward saved; the node stays, marked as used."""
        shape = self._out_shape
        self.__dict__.clear()
        self._freed, self._out_shape, self.parents = True, shape, ()


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


# ---- elementwise and shape Functions -------------------------------------

class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, dout):
        sa, sb = self.shapes
        return (unbroadcast(dout, sa) if self.needs_input_grad[0] else None,
                unbroadcast(dout, sb) if self.needs_input_grad[1] else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, dout):
        sa, sb = self.shapes
        return (unbroadcast(dout, sa) if self.needs_input_grad[0] else None,
                unbroadcast(-dout, sb) if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, dout):
        a, b = self.a, self.b
        return (unbroadcast(dout * b, a.shape) if self.needs_input_grad[0] else None,
                unbroadcast(dout * a, b.shape) if self.needs_input_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, dout):
        a, b = self.a, self.b
        da = unbroadcast(dout / b, a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(-dout * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, dout):
        return -dout


class Pow(Function):
    def forward(self, a, exponent):
        self.a, self.exponent = a, exponent
        return a ** exponent

    def backward(self, dout):
        p = self.exponent
        return dout * (p * self.a ** (p - 1))


class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, dout):
        return dout * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, dout):
        return dout / self.a


class Cast(Function):
    def forward(self, a, dtype):
        self.src = a.dtype
        return a.astype(dtype)

    def backward(self, dout):
        return dout.astype(self.src)


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, dout):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a        # promote vectors as NumPy does
        b2 = b[:, None] if b.ndim == 1 else b
        g = dout
        if b.ndim == 1:                               # b first: vector @ vector has a 0-d g
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return da, db


def _norm_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim for a in axis)


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = _norm_axis(axis, a.ndim)
        self.keepdims = keepdims
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    def backward(self, dout):
        if not self.keepdims:
            dout = np.expand_dims(dout, self.axes)
        return np.broadcast_to(dout, self.shape).copy()


class Mean(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = _norm_axis(axis, a.ndim)
        self.keepdims = keepdims
        self.count = int(np.prod([a.shape[i] for i in self.axes])) if a.ndim else 1
        return np.asarray(a.mean(axis=axis, keepdims=keepdims))

    def backward(self, dout):
        if not self.keepdims:
            dout = np.expand_dims(dout, self.axes)
        return np.broadcast_to(dout / self.count, self.shape).copy()


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                             f"({a.size} elements) into {tuple(shape)}") from None

    def backward(self, dout):
        return dout.reshape(self.shape)


class Transpose(Function):
    def forward(self, a, axes=None):
        self.axes = axes
        return np.transpose(a, axes)

    def backward(self, dout):
        if self.axes is None:
            return np.transpose(dout)
        return np.transpose(dout, np.argsort(self.axes))


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) and not isinstance(i, bool)
               for i in items)


class GetItem(Function):
    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, dout):
        grad = np.zeros(self.shape, dtype=dout.dtype)
        if _is_basic_index(self.index):
            grad[self.index] = dout
        else:
            np.add.at(grad, self.index, dout)  # repeated indices accumulate
        return grad


class Concatenate(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return np.concatenate(arrays, axis=axis)

    def backward(self, dout):
        splits = np.cumsum(self.sizes)[:-1]
        parts = np.split(dout, splits, axis=self.axis)
        return tuple(p if need else None for p, need in zip(parts, self.needs_input_grad))


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (NumPy's ``concatenate``)."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: expected at least one tensor, got none")
    ndim = tensors[0].ndim
    for i, t in enumerate(tensors):
        if t.ndim != ndim:
            raise ValueError(f"concatenate: tensor 0 has {ndim} dims but tensor {i} has {t.ndim}")
        for ax in range(ndim):
            if ax != axis % ndim and t.shape[ax] != tensors[0].shape[ax]:
                raise ValueError(
                    f"concatenate: shapes must match except on axis {axis}, got "
                    f"{tensors[0].shape} and {t.shape}")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    return concatenate([Reshape.apply(t, shape=_insert(t.shape, axis)) for t in tensors], axis)


def _insert(shape, axis):
    axis = axis % (len(shape) + 1)
    return shape[:axis] + (1,) + shape[axis:]
