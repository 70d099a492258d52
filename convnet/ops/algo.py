"""Which algorithm runs a 2-D convolution: chosen per shape and cached, like cuDNN's.

Algorithms (see ``ops.im2col`` and ``ops.winograd``):
    "im2col"     blocked im2col + GEMM; runs every conv (groups, stride, dilation, padding)
    "gemm1x1"    1x1 kernel without padding: one GEMM on the pixel matrix
    "winograd2"  Winograd F(2x2,3x3): 3x3, stride 1, dilation 1, groups 1
    "winograd4"  Winograd F(4x4,3x3): same shapes, 4x fewer multiplies than direct
    "toeplitz"   row lowering + banded weight GEMM (``ops.toeplitz``): groups 1; chosen
                 for thin, narrow inputs (LeNet's layers)
    "direct"     direct conv in vector-register blocks (``ops.direct``): float32, groups 1,
                 F a multiple of 16, numba installed; chosen where im2col would run and
                 the conv is large enough to pay for compiling it
    "narrow"     direct conv with the ReLU and max pool fused, forward and backward
                 (``ops.narrow``): float32, groups 1, numba installed; chosen where the
                 banded GEMM would run
    "winograd_rows"  1-D Winograd F(4, 3) along the rows, direct down the columns
                 (``ops.winograd_rows``): 3-wide kernels at width stride and dilation 1,
                 float32, F a multiple of 16, numba installed; chosen where the direct
                 kernel's thin path would run (first layers)

``choose`` looks the shape up in a cache; on a miss it asks ``heuristic`` (rules
fitted to measurements on a 2-core AVX-512 Xeon, see benchmarks/RESULTS.md) or, under
``benchmark(True)``, times every applicable algorithm once on the real arguments, as
``torch.backends.cudnn.benchmark`` does.  ``force(name)`` overrides the choice inside a
block -- the tests use it to run every oracle test through every algorithm.  A forced
algorithm that cannot run a shape falls back to "im2col".  How the chosen algorithm's
blocks share the cores is ``ops.threads``.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

ALGORITHMS = ("im2col", "gemm1x1", "winograd2", "winograd4", "toeplitz", "direct", "narrow",
              "winograd_rows")

_local = threading.local()
_cache: dict = {}
_settings = {"benchmark": False}


@contextlib.contextmanager
def force(name: str | None):
    """Run every conv2d inside the block with algorithm ``name`` (None or "auto": choose)."""
    if name == "auto":
        name = None
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"conv algorithm must be one of {ALGORITHMS} or 'auto', got {name!r}")
    prev = getattr(_local, "forced", None)
    _local.forced = name
    try:
        yield
    finally:
        _local.forced = prev


def forced() -> str | None:
    return getattr(_local, "forced", None)


@contextlib.contextmanager
def benchmark(enabled: bool = True):
    """Inside the block, a new shape times every applicable algorithm once and caches
    the fastest (the choice outlives the block)."""
    prev = _settings["benchmark"]
    _settings["benchmark"] = bool(enabled)
    try:
        yield
    finally:
        _settings["benchmark"] = prev


def benchmarking() -> bool:
    return _settings["benchmark"]


def clear_cache() -> None:
    _cache.clear()


def cache_info() -> dict:
    """A copy of the per-shape choices: {shape key: algorithm}."""
    return dict(_cache)


def shape_key(x_shape, w_shape, stride, pads, dilation, groups, dtype) -> tuple:
    return (tuple(x_shape), tuple(w_shape), tuple(stride),
            tuple(tuple(p) for p in pads), tuple(dilation), int(groups), np.dtype(dtype))


def applicable(name, x_shape, w_shape, stride, pads, dilation, groups, dtype=None) -> bool:
    """Whether ``name`` can run this conv (any conv can run as "im2col"); "direct" needs
    the compute ``dtype`` (float32 only)."""
    kh, kw = w_shape[:2]
    if name == "im2col":
        return True
    if name == "gemm1x1":
        return (kh, kw) == (1, 1) and groups == 1 and all(p == (0, 0) for p in
                                                          (tuple(q) for q in pads))
    if name in ("winograd2", "winograd4"):
        return ((kh, kw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
                and groups == 1)
    if name == "toeplitz":
        return groups == 1
    if name == "direct":
        from .direct import applies
        return dtype is not None and applies(w_shape, groups, dtype)
    if name == "narrow":
        from .narrow import applies
        return dtype is not None and applies(groups, dtype)
    if name == "winograd_rows":
        from .winograd_rows import applies
        return dtype is not None and applies(x_shape, w_shape, stride, pads, dilation, groups,
                                             dtype)
    raise ValueError(f"unknown conv algorithm {name!r}")


def candidates(x_shape, w_shape, stride, pads, dilation, groups, dtype=None) -> list[str]:
    return [a for a in ALGORITHMS
            if applicable(a, x_shape, w_shape, stride, pads, dilation, groups, dtype)]


def heuristic(x_shape, w_shape, stride, pads, dilation, groups, dtype=None) -> str:
    """The default choice, from measured crossovers (no timing at run time)."""
    if applicable("gemm1x1", x_shape, w_shape, stride, pads, dilation, groups):
        return "gemm1x1"
    if groups == 1:
        from .toeplitz import applies_well
        if applies_well(x_shape, w_shape, stride, pads, dilation, groups):
            # The narrow kernels run these layers (LeNet's) 2-3x faster, forward and
            # backward, where numba is installed (benchmarks/RESULTS.md, eleventh pass).
            narrow = applicable("narrow", x_shape, w_shape, stride, pads, dilation, groups,
                                dtype)
            return "narrow" if narrow else "toeplitz"
    # Where im2col's GEMM would run, the direct kernels (float32, numba) run the forward
    # faster: 2-3x on the 3-channel first layers (VGG's and CIFAR's conv1_1), 1.0-2.4x on
    # wide ones (VGG's 14x14x512 at batch 1, AlexNet's, strided convs); benchmarks/
    # RESULTS.md, ninth and tenth passes.  The backward is im2col's either way, except
    # a first layer's weight gradient (no dX needed), which is direct too.
    from . import direct
    gemm = "direct" if dtype is not None and direct.applies_well(
        x_shape, w_shape, stride, pads, dilation, groups, dtype) else "im2col"
    if (gemm == "direct" and np.prod(w_shape[:3]) <= direct.MAX_TAPS
            and applicable("winograd_rows", x_shape, w_shape, stride, pads, dilation, groups,
                           dtype)):
        # A thin 3-wide conv: F(4, 3) along the rows halves the direct kernel's
        # multiply-adds (benchmarks/RESULTS.md, sixteenth pass).
        gemm = "winograd_rows"
    if not applicable("winograd4", x_shape, w_shape, stride, pads, dilation, groups):
        return gemm
    n, h, w, c = x_shape
    f = w_shape[3]
    (pt, pb), (pl, pr) = pads
    out_h, out_w = h + pt + pb - 2, w + pl + pr - 2
    pixels = n * out_h * out_w
    if c < 16 or f < 16 or pixels < 64:
        return gemm            # transforms cost more than they save on thin layers
    # Few 4x4 tiles (small images at a small batch: 4x4 or 8x8 maps after pooling) make
    # each of F(4x4)'s 36 GEMMs a handful of rows, and with up to 128 x 128 channels too
    # little work to pay for the transforms: im2col's one GEMM measured 1.1-3x faster
    # (forward + backward, with and without the compiled transforms), e.g. the digits
    # model's 4x4x32 -> 64 layer at batch 32 (32 tiles) 0.95 ms against 1.40 (1.03 jit).
    tiles = n * -(-out_h // 4) * -(-out_w // 4)
    if tiles < 64 and c * f <= 128 * 128:
        return gemm
    # Winograd's weight transform and its a*a GEMMs re-read (a*a) x C x F weights; with
    # few output pixels per weight, im2col's single GEMM over 9 C F weights wins.
    # Crossovers measured (forward + backward, float32, with every core on the pool) on
    # VGG/CIFAR layer shapes: 14x14x512 at batch 1 (0.4 pixels per channel) im2col;
    # 28x28x256..512 (1.5-3) and everything wider in pixels F(4x4), which beat F(2x2)
    # on every such layer.
    per_channel = pixels / min(c, f)
    if per_channel < 0.75:
        # ... unless ops.points' kernels run F(2x2)'s GEMMs (float32, numba, few tiles):
        # VGG's 14x14x512 at batch 1 then ran 1.1-1.3x faster than direct/im2col forward
        # and backward (benchmarks/RESULTS.md, thirteenth pass).
        from .winograd import point_gemms
        return "winograd2" if point_gemms(n, out_h, out_w, c, f, dtype, 2) else gemm
    if per_channel < 1.0:
        return "winograd2"
    return "winograd4"


def choose(x_shape, w_shape, stride, pads, dilation, groups, dtype, timer=None) -> str:
    """The algorithm for this conv: forced, cached, timed (``benchmark``) or heuristic.

    ``timer(name) -> seconds`` runs one candidate; it is used only in benchmark mode."""
    name = forced()
    if name is not None:
        return name if applicable(name, x_shape, w_shape, stride, pads, dilation,
                                  groups, dtype) else "im2col"
    key = shape_key(x_shape, w_shape, stride, pads, dilation, groups, dtype)
    name = _cache.get(key)
    if name in ("direct", "narrow", "winograd_rows") and not applicable(
            name, x_shape, w_shape, stride, pads, dilation, groups, dtype):
        name = None                    # ops.jit was turned off after the choice was cached
    if name is None:
        cands = candidates(x_shape, w_shape, stride, pads, dilation, groups, dtype)
        if _settings["benchmark"] and timer is not None and len(cands) > 1:
            name = min(cands, key=timer)
        else:
            name = heuristic(x_shape, w_shape, stride, pads, dilation, groups, dtype)
        _cache[key] = name
    return name
