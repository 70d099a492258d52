"""Explicit float32 vectors for numba kernels (optional: imported only with numba).

numba's loops are vectorised by LLVM when it can prove the loop safe, but a kernel that
keeps a block of outputs in vector registers across a long reduction -- the register
blocking every fast conv and GEMM microkernel is built on -- cannot be written as
scalar loops: LLVM keeps scalars, and numba has no vector type.  This module adds one:
``Vec(lanes)`` is an LLVM ``<lanes x float>`` value (lanes 8, 16, 32 or 64: half of one
AVX-512 register to four of them, or one to eight AVX2 ones; LLVM splits a wide vector
into the machine's registers), with the few operations the kernels need, each one LLVM
instruction:

    vload(a, i, lanes)     a[i:i + lanes] of a 1-D float32 array, as a vector
    vstore(a, i, v)        a[i:i + lanes] = v
    vstream(a, i, v)       a[i:i + lanes] = v, a non-temporal store (past the caches;
                           a + i aligned to the vector or 64 bytes, the smaller, or the
                           store faults; ``store_fence()`` after the last)
    store_fence()          the non-temporal stores before it land before any later store
                           (sfence on x86, a full fence elsewhere)
    prefetch(a, i)         a hint: start bringing a[i]'s cache line into L2 (prefetcht1 on
                           x86); it never faults, so any i will do.  Spread them out: a
                           burst of them waits on the same few line-fill buffers as loads
    vload_n(a, i, lanes, n)  a[i:i + n] in the first n lanes, 0 in the others (0 <= n <=
                           lanes, any run-time value; lanes from n on are not read)
    vstore_n(a, i, v, n)   a[i:i + n] = the first n lanes of v (nothing else written)
    vsplat(s, lanes)       s in every lane
    vbcast(a, i, lanes)    a[i] in every lane (one broadcast load; like vload, no
                           bounds check and no wraparound of a negative i)
    vgather(a, i, step, lanes)  a[i], a[i + step], ..., a[i + (lanes - 1) step] (one
                           gather: a strided column, e.g. one channel of NHWC pixels)
    vfma(a, b, c)          a * b + c, fused (one rounding)
    vadd(a, b)             a + b
    vsub(a, b)             a - b
    vrelu(v)               0 where v < 0, else v (NaN stays NaN, as torch's ReLU)
    vkeep(g, k)            g where k != 0 (NaN included), else +0: a ReLU's backward
                           mask, bit-exact (``activation.relu_mask``'s rule)
    vpick(u, v, a, b)      a where u > v or u is NaN, else b: one step of a max pool's
                           scan (torch's rule: a NaN wins, the first of equal maxima stays)

and one allocation:

    empty64(n)             an uninitialised float32 array of n values starting on a 64-byte
                           boundary (numba's np.empty starts them 32 bytes off one: every
                           64-byte vector load or store of such an array splits across two
                           cache lines -- the first layers' weight gradient ran 15 % slower)

``lanes`` must be a compile-time constant (a literal or a global of the kernel).  The
loads and stores do not check bounds: the kernels index inside arrays they sized.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.datamodel import models
from numba.core.errors import TypingError
from numba.extending import intrinsic, register_model

_F32 = ir.FloatType()


class Vec(types.Type):
    """numba type of a ``<lanes x float>`` value."""

    def __init__(self, lanes: int):
        self.lanes = lanes
        super().__init__(name=f"Vec{lanes}xf32")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_F32, fe_type.lanes))


_VECS = {n: Vec(n) for n in (8, 16, 32, 64)}


def _lanes(ty):
    """The literal lane count, or None (numba then retries the typing with literals)."""
    if not isinstance(ty, types.IntegerLiteral):
        return None
    if ty.literal_value not in _VECS:
        raise TypingError(f"simd: lanes must be 8, 16, 32 or 64, got {ty.literal_value}")
    return ty.literal_value


def _check_array(ty):
    if not (isinstance(ty, types.Array) and ty.dtype == types.float32 and ty.ndim == 1):
        raise TypingError(f"simd: expected a 1-D float32 array, got {ty}")


def _array_vec(arr, lanes):
    """Typing of an (array, index, lanes) intrinsic: the vector type, or None to retry
    with a literal lane count."""
    _check_array(arr)
    lanes = _lanes(lanes)
    return None if lanes is None else _VECS[lanes]


def _address(context, builder, arrty, arr, idx, vt):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [idx]), vt.as_pointer())


@intrinsic
def vload(typingctx, arr, idx, lanes):
    vec = _array_vec(arr, lanes)
    if vec is None:
        return None

    def codegen(context, builder, sig, args):
        vt = ir.VectorType(_F32, vec.lanes)
        return builder.load(_address(context, builder, sig.args[0], args[0], args[1], vt),
                            align=4)
    return vec(arr, idx, lanes), codegen


def _vector_store(name, arr, v, nontemporal):
    """Typing checks and codegen of a 1-D array's store of one vector (``vstore``, ``vstream``)."""
    _check_array(arr)
    if not isinstance(v, Vec):
        raise TypingError(f"simd: {name} needs a vector, got {v}")

    def codegen(context, builder, sig, args):
        vt = ir.VectorType(_F32, v.lanes)
        ptr = _address(context, builder, sig.args[0], args[0], args[1], vt)
        st = builder.store(args[2], ptr, align=min(4 * v.lanes, 64) if nontemporal else 4)
        if nontemporal:
            st.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()
    return codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    return types.void(arr, idx, v), _vector_store("vstore", arr, v, False)


@intrinsic
def vstream(typingctx, arr, idx, v):
    return types.void(arr, idx, v), _vector_store("vstream", arr, v, True)


@intrinsic
def prefetch(typingctx, arr, idx):
    _check_array(arr)

    def codegen(context, builder, sig, args):
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        ptr = builder.bitcast(_address(context, builder, sig.args[0], args[0], args[1], _F32),
                              i8p)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(2), i32(1)])      # a read, locality L2, data
        return context.get_dummy_value()
    return types.void(arr, idx), codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def store_fence(typingctx):
    def codegen(context, builder, sig, args):
        if _X86:
            # sfence: LLVM's seq_cst fence is a locked add on x86, which Intel does not
            # promise orders non-temporal stores
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.void(), codegen


def _mask(builder, count, lanes):
    """<lanes x i1>: lane l is on iff l < count (a run-time integer)."""
    i64 = ir.IntType(64)
    n = builder.sext(count, i64) if count.type.width < 64 else count
    splat = _splat_int(builder, n, lanes)
    return builder.icmp_signed("<", ir.Constant(ir.VectorType(i64, lanes), list(range(lanes))),
                               splat)


def _splat_int(builder, x, n):
    vt = ir.VectorType(x.type, n)
    one = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))


def _check_count(ty):
    if not isinstance(ty, types.Integer):
        raise TypingError(f"simd: the lane count n must be an integer, got {ty}")


@intrinsic
def vload_n(typingctx, arr, idx, lanes, count):
    vec = _array_vec(arr, lanes)
    if vec is None:
        return None
    _check_count(count)

    def codegen(context, builder, sig, args):
        vt = ir.VectorType(_F32, vec.lanes)
        ptr = _address(context, builder, sig.args[0], args[0], args[1], vt)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vt, [ptr.type, ir.IntType(32),
                                                 ir.VectorType(ir.IntType(1), vec.lanes), vt]),
            f"llvm.masked.load.v{vec.lanes}f32.p0")
        zero = ir.Constant(vt, [0.0] * vec.lanes)
        return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), 4),
                                 _mask(builder, args[3], vec.lanes), zero])
    return vec(arr, idx, lanes, count), codegen


@intrinsic
def vstore_n(typingctx, arr, idx, v, count):
    _check_array(arr)
    if not isinstance(v, Vec):
        raise TypingError(f"simd: vstore_n needs a vector, got {v}")
    _check_count(count)

    def codegen(context, builder, sig, args):
        vt = ir.VectorType(_F32, v.lanes)
        ptr = _address(context, builder, sig.args[0], args[0], args[1], vt)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vt, ptr.type, ir.IntType(32),
                                                            ir.VectorType(ir.IntType(1), v.lanes)]),
            f"llvm.masked.store.v{v.lanes}f32.p0")
        builder.call(fn, [args[2], ptr, ir.Constant(ir.IntType(32), 4),
                          _mask(builder, args[3], v.lanes)])
        return context.get_dummy_value()
    return types.void(arr, idx, v, count), codegen


@intrinsic
def vbcast(typingctx, arr, idx, lanes):
    vec = _array_vec(arr, lanes)
    if vec is None:
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        x = builder.load(builder.gep(data, [args[1]]), align=4)
        return _splat(builder, x, vec.lanes)
    return vec(arr, idx, lanes), codegen


@intrinsic
def vgather(typingctx, arr, idx, step, lanes):
    vec = _array_vec(arr, lanes)
    if vec is None:
        return None
    if not isinstance(step, types.Integer):
        raise TypingError(f"simd: vgather's step must be an integer, got {step}")

    def codegen(context, builder, sig, args):
        n, i64 = vec.lanes, ir.IntType(64)
        vt = ir.VectorType(_F32, n)
        first = _address(context, builder, sig.args[0], args[0], args[1], _F32)
        step = builder.sext(args[2], i64) if args[2].type.width < 64 else args[2]
        offs = builder.mul(_splat_int(builder, builder.mul(step, i64(4)), n),
                           ir.Constant(ir.VectorType(i64, n), list(range(n))))
        addrs = builder.add(_splat_int(builder, builder.ptrtoint(first, i64), n), offs)
        ptrs = builder.inttoptr(addrs, ir.VectorType(_F32.as_pointer(), n))
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vt, [ptrs.type, ir.IntType(32),
                                                 ir.VectorType(ir.IntType(1), n), vt]),
            f"llvm.masked.gather.v{n}f32.v{n}p0")
        return builder.call(fn, [ptrs, ir.IntType(32)(4),
                                 ir.Constant(ir.VectorType(ir.IntType(1), n), [1] * n),
                                 ir.Constant(vt, [0.0] * n)])
    return vec(arr, idx, step, lanes), codegen


def _splat(builder, x, n):
    one = builder.insert_element(ir.Constant(ir.VectorType(_F32, n), ir.Undefined), x,
                                 ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n)
    return builder.shuffle_vector(one, ir.Constant(ir.VectorType(_F32, n), ir.Undefined), mask)


@intrinsic
def vsplat(typingctx, s, lanes):
    if not isinstance(s, types.Float):
        raise TypingError(f"simd: vsplat needs a float, got {s}")
    if _lanes(lanes) is None:
        return None
    vec = _VECS[_lanes(lanes)]

    def codegen(context, builder, sig, args):
        x = args[0]
        if x.type != _F32:
            x = builder.fptrunc(x, _F32)
        return _splat(builder, x, vec.lanes)
    return vec(s, lanes), codegen


def _same(*tys):
    if not all(isinstance(t, Vec) for t in tys) or len({t.lanes for t in tys}) != 1:
        raise TypingError(f"simd: expected vectors of one width, got {tys}")
    return tys[0]


@intrinsic
def vfma(typingctx, a, b, c):
    vec = _same(a, b, c)

    def codegen(context, builder, sig, args):
        vt = ir.VectorType(_F32, vec.lanes)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt] * 3),
                                            f"llvm.fma.v{vec.lanes}f32")
        return builder.call(fn, args)
    return vec(a, b, c), codegen


@intrinsic
def vadd(typingctx, a, b):
    vec = _same(a, b)

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return vec(a, b), codegen


@intrinsic
def vsub(typingctx, a, b):
    vec = _same(a, b)

    def codegen(context, builder, sig, args):
        return builder.fsub(args[0], args[1])
    return vec(a, b), codegen


@intrinsic
def vrelu(typingctx, v):
    vec = _same(v)

    def codegen(context, builder, sig, args):
        zero = ir.Constant(ir.VectorType(_F32, vec.lanes), [0.0] * vec.lanes)
        return builder.select(builder.fcmp_ordered("<", args[0], zero), zero, args[0])
    return vec(v), codegen


@intrinsic
def vkeep(typingctx, g, k):
    vec = _same(g, k)

    def codegen(context, builder, sig, args):
        zero = ir.Constant(ir.VectorType(_F32, vec.lanes), [0.0] * vec.lanes)
        return builder.select(builder.fcmp_unordered("!=", args[1], zero), args[0], zero)
    return vec(g, k), codegen


@intrinsic
def vpick(typingctx, u, v, a, b):
    vec = _same(u, v, a, b)

    def codegen(context, builder, sig, args):
        new = builder.or_(builder.fcmp_ordered(">", args[0], args[1]),
                          builder.fcmp_unordered("uno", args[0], args[0]))
        return builder.select(new, args[2], args[3])
    return vec(u, v, a, b), codegen


@njit(nogil=True, cache=False)
def empty64(n):
    raw = np.empty(n + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + n]
