"""The four partial sums of a distance, computed as one 4-lane vector.

Every distance of the package sums its terms in four interleaved partial
sums (term ``t`` goes to sum ``t % 4``, the last ``m % 4`` terms of ``m``
to sum 0; see :func:`._metrics.raw_distance` and the correlation's dot
product :func:`._metrics._dot`), defined here once. That order
keeps all kernels bit-identical, but written as four scalar chains Numba
compiles it to scalar code with an index check per element: Numba leaves
LLVM's SLP vectorizer off, and the loop vectorizer may not reassociate the
sums. :func:`square_lanes`, :func:`abs_lanes` and :func:`dot_lanes` emit
the same order directly as LLVM vector instructions: lane ``r`` of one
``<4 x double>`` accumulator *is* partial sum ``r``, and each lane does
exactly the scalar operations (``fsub``, ``fmul`` / ``fabs``, ``fadd`` in
IEEE double, no fused multiply-add), so the result is the same to the last
bit (``tests/test_kernels.py`` checks it against plain Python floats).
The effect on a search is measured by ``bench_knn.py --workload
manifold64`` (``benchmarks/RESULTS.md``).

Rows must be C-contiguous float32 or float64 (float32 terms are widened
to float64 first, as the scalar code does); any other array gets the
scalar loop, in the same order.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

__all__ = ["square_lanes", "abs_lanes", "dot_lanes"]

_FLOATS = (types.float32, types.float64)


def _vector_rows(A, B):
    """Whether rows of ``A`` and ``B`` can be loaded as vectors."""
    return all(
        isinstance(X, types.Array) and X.ndim == 2 and X.layout == "C" and X.dtype in _FLOATS
        for X in (A, B)
    )


def _lane_codegen(op):
    def codegen(context, builder, sig, args):
        aty, _, bty, _, _, _ = sig.args
        f64 = ir.DoubleType()
        i64 = ir.IntType(64)
        vec = ir.VectorType(f64, 4)

        def row(arr_ty, arr, i):
            a = context.make_array(arr_ty)(context, builder, arr)
            stride = cgutils.unpack_tuple(builder, a.strides, 2)[0]
            raw = builder.bitcast(a.data, ir.IntType(8).as_pointer())
            start = builder.gep(raw, [builder.mul(i, stride)])
            elem = context.get_data_type(arr_ty.dtype)
            return builder.bitcast(start, elem.as_pointer()), elem

        pa, ea = row(aty, args[0], args[1])
        pb, eb = row(bty, args[2], args[3])
        start, stop = args[4], args[5]
        fabs = None
        if op == "abs":
            fabs = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec]), "llvm.fabs.v4f64"
            )

        def load(ptr, elem, t):
            vt = ir.VectorType(elem, 4)
            x = builder.load(builder.bitcast(builder.gep(ptr, [t]), vt.as_pointer()),
                             align=elem.get_abi_alignment(context.target_data))
            return x if isinstance(elem, ir.DoubleType) else builder.fpext(x, vec)

        entry = builder.basic_block
        head = builder.append_basic_block("lanes.head")
        body = builder.append_basic_block("lanes.body")
        done = builder.append_basic_block("lanes.done")
        builder.branch(head)
        builder.position_at_end(head)
        t = builder.phi(i64)
        acc = builder.phi(vec)
        t.add_incoming(start, entry)
        acc.add_incoming(ir.Constant(vec, [0.0] * 4), entry)
        builder.cbranch(builder.icmp_signed("<", t, stop), body, done)
        builder.position_at_end(body)
        xa, xb = load(pa, ea, t), load(pb, eb, t)
        if op == "dot":
            x = builder.fmul(xa, xb)
        else:
            x = builder.fsub(xa, xb)
            x = builder.call(fabs, [x]) if op == "abs" else builder.fmul(x, x)
        t.add_incoming(builder.add(t, ir.Constant(i64, 4)), body)
        acc.add_incoming(builder.fadd(acc, x), body)
        builder.branch(head)
        builder.position_at_end(done)
        lanes = [builder.extract_element(acc, ir.Constant(ir.IntType(32), r)) for r in range(4)]
        return context.make_tuple(builder, sig.return_type, lanes)

    return codegen


def _lane_intrinsic(op):
    def typer(typingctx, A, i, B, j, start, stop):
        if not _vector_rows(A, B):
            return None
        i64 = types.int64
        sig = types.UniTuple(types.float64, 4)(A, i64, B, i64, i64, i64)
        return sig, _lane_codegen(op)

    return intrinsic(typer)


def _term(op):
    """One term of the sum: ``a * b``, ``|a - b|`` or ``(a - b)^2`` in float64."""

    def term(a, b):
        a = np.float64(a)
        b = np.float64(b)
        if op == "dot":
            return a * b
        x = a - b
        if op == "abs":
            return abs(x)
        return x * x

    return njit(forceinline=True)(term)


def _scalar_lanes(op):
    """The four partial sums in plain scalar code (any array; also pure Python)."""
    term = _term(op)

    def impl(A, i, B, j, start, stop):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        stop4 = stop - ((stop - start) & 3)
        for t in range(start, stop4, 4):
            s0 += term(A[i, t], B[j, t])
            s1 += term(A[i, t + 1], B[j, t + 1])
            s2 += term(A[i, t + 2], B[j, t + 2])
            s3 += term(A[i, t + 3], B[j, t + 3])
        for t in range(stop4, stop):
            s0 += term(A[i, t], B[j, t])
        return s0, s1, s2, s3

    return impl


# Called from Python (e.g. with NUMBA_DISABLE_JIT) these run the scalar
# loop; in compiled code the overloads below pick the vector one.
square_lanes = _scalar_lanes("square")
square_lanes.__name__ = "square_lanes"
square_lanes.__doc__ = """Partial sums ``s_r`` of ``(A[i, t] - B[j, t])^2`` over ``start <= t < stop``.

Term ``t`` goes to ``s_r`` with ``r = (t - start) % 4``, except the last
``(stop - start) % 4`` terms, which go to ``s_0`` (``stop`` at most the row
length). Returns ``(s_0, s_1, s_2, s_3)`` in float64, each summed in
ascending ``t``; the distance is ``(s_0 + s_1) + (s_2 + s_3)``.
"""
abs_lanes = _scalar_lanes("abs")
abs_lanes.__name__ = "abs_lanes"
abs_lanes.__doc__ = "Partial sums of ``|A[i, t] - B[j, t]|``, as :func:`square_lanes`."
dot_lanes = _scalar_lanes("dot")
dot_lanes.__name__ = "dot_lanes"
dot_lanes.__doc__ = "Partial sums of ``A[i, t] * B[j, t]``, as :func:`square_lanes`."


def _register(func, op):
    vector = _lane_intrinsic(op)
    term = _term(op)

    def vector_lanes(A, i, B, j, start, stop):
        stop4 = stop - ((stop - start) & 3)
        s0, s1, s2, s3 = vector(A, np.int64(i), B, np.int64(j), np.int64(start),
                                np.int64(stop4))
        for t in range(stop4, stop):
            s0 += term(A[i, t], B[j, t])
        return s0, s1, s2, s3

    def impl_for(A, i, B, j, start, stop):
        return vector_lanes if _vector_rows(A, B) else func

    overload(func, jit_options={"forceinline": True})(impl_for)


_register(square_lanes, "square")
_register(abs_lanes, "abs")
_register(dot_lanes, "dot")
