"""The SRU recurrence on TensorFlow: XLA loops, a hand-written gradient, the scan.

The recurrence and the three algorithms are described in
`mrrn_keras.layers.recurrence`. Here:

The backward recurrence is linear whatever ``v_f`` is. With ``g_t`` the total
gradient reaching ``c_t``,

    A_t = m_t (1 - f_t)
    K_t = m_t (uc_t - c_{t-1}) f_t (1 - f_t)
    P_t = 1 - A_t - K_t v_f                       (= dc_t / dc_{t-1})
    g_t = dC_t + P_{t+1} g_{t+1},                 dc_0 = P_0 g_0
    duc_t = g_t A_t,   duf_t = -g_t K_t,   dv_f = sum_t duf_t c_{t-1}

so the reverse loop is one multiply-add per step; ``A``, ``K`` and ``P`` are
computed for all steps at once from the forward's c sequence (computing them
step by step inside the reverse loop instead measured 1.76x slower at B32
T64 d512: the loop body runs on one (B, U) slice at a time). Both loops read
step t of their batch-major inputs as ``x[:, t]`` rather than transposing
them to time-major first (13% and 16% less time for the recurrence's
forward+backward at B32 T64 d512 inside XLA, two interleaved runs).

Why a hand-written gradient: autodiff through an XLA while loop was measured
at 7x (T=64) to 21x (T=512) the cost of the layer's own matmul.

Two loop forms share this math: ``jit_compile=True`` (the fast default) and a
plain TF graph loop with identical numerics, which a SavedModel for TF
Serving needs (Serving refuses XLA functions unless told otherwise). With
``unroll = k`` each loop iteration runs k steps (time padded with masked
steps to a multiple of k), which is what a launch-bound accelerator needs.

The parallel scan (``scan_recurrence``). Without the ``v_f * c`` term (the
2017 SRU, ``v_f = 0``) the forward is linear too:

    c_t = a_t c_{t-1} + b_t,   a_t = 1 - m_t (1 - f_t),   b_t = m_t (1 - f_t) uc_t

and pairs ``(a, b)`` compose associatively,
``(a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2)``, so both the forward and
the backward recurrence (``P_t = a_t`` when ``v_f = 0``) can be evaluated in
``O(log T)`` depth instead of ``T`` dependent steps. With T known when the
function is traced this is Blelloch's work-efficient scan written with
reshapes: combine neighbouring pairs, scan the half-length sequence
recursively, fill in the even positions (about 2x the work of the serial
loop, 2 log2(T) levels). With T unknown at trace time (a graph traced for
any length) it is the Hillis-Steele scan, ``ceil(log2 T)`` rounds of
shifted multiply-adds in a ``tf.while_loop`` (T log T work; slower).
"""

import tensorflow as tf


def _forward_loop(uc, uf, vf, mask, c0, unroll):
    """c sequence, time-major (T, B, U), from batch-major (B, T, U) inputs, T a multiple of unroll.

    Step t reads `x[:, t]` from the batch-major inputs, so they need no
    transpose first; mask is (B, T, 1).
    """
    steps = tf.shape(uc)[1]
    out = tf.TensorArray(uc.dtype, size=steps, element_shape=c0.shape)

    def body(i, c, out):
        for j in range(unroll):
            t = i * unroll + j
            f = tf.sigmoid(uf[:, t] + vf * c)
            c = c + mask[:, t] * (1.0 - f) * (uc[:, t] - c)
            out = out.write(t, c)
        return i + 1, c, out

    iterations = steps // unroll
    _, _, out = tf.while_loop(
        lambda i, c, out: i < iterations,
        body,
        (tf.constant(0), c0, out),
        maximum_iterations=iterations,
    )
    return out.stack()


def _backward_loop(dc_seq, p_seq, unroll):
    """Reverse linear recurrence g_t = dC_t + P_{t+1} g_{t+1} over batch-major (B, T, U).

    Returns (G time-major (T, B, U), dc0).
    """
    steps = tf.shape(dc_seq)[1]
    carry0 = tf.zeros_like(dc_seq[:, 0])  # (B, U)
    out = tf.TensorArray(dc_seq.dtype, size=steps, element_shape=carry0.shape)

    def body(i, carry, out):
        for j in range(unroll):
            t = steps - 1 - (i * unroll + j)
            g = dc_seq[:, t] + carry
            carry = p_seq[:, t] * g
            out = out.write(t, g)
        return i + 1, carry, out

    iterations = steps // unroll
    _, dc0, out = tf.while_loop(
        lambda i, carry, out: i < iterations,
        body,
        (tf.constant(0), carry0, out),
        maximum_iterations=iterations,
    )
    return out.stack(), dc0


def _padded(x, unroll):
    """(B, T, U) -> (B, T', U), T' = T rounded up to a multiple of unroll.

    The padding steps are zeros: as mask values they carry c unchanged, as
    output gradients they add nothing.
    """
    if unroll == 1:
        return x
    pad = tf.math.floormod(-tf.shape(x)[1], unroll)
    return tf.pad(x, [[0, 0], [0, pad], [0, 0]])


def _batch_major(x, steps):
    """(T', B, U) -> (B, T, U), dropping any padding steps."""
    return tf.transpose(x[:steps], (1, 0, 2))


def _forward(uc, uf, vf, mask, c0, unroll):
    c_seq = _forward_loop(
        *(_padded(t, unroll) for t in (uc, uf)), vf, _padded(mask, unroll), c0, unroll
    )
    return _batch_major(c_seq, tf.shape(uc)[1])


def _backward(uc, uf, vf, mask, c0, c_seq, d_c_seq, unroll):
    # c_{t-1} for every t: (B, T, U)
    c_prev = tf.concat([c0[:, None, :], c_seq[:, :-1, :]], axis=1)
    f = tf.sigmoid(uf + vf * c_prev)
    a = mask * (1.0 - f)
    k = mask * (uc - c_prev) * f * (1.0 - f)
    p = 1.0 - a - k * vf
    g, d_c0 = _backward_loop(_padded(d_c_seq, unroll), _padded(p, unroll), unroll)
    g = _batch_major(g, tf.shape(uc)[1])
    d_uf = -g * k
    d_vf = tf.reduce_sum(d_uf * c_prev, axis=(0, 1))
    return g * a, d_uf, d_vf, d_c0


def _pair_scan(a, b):
    """Inclusive scan h_t = a_t h_{t-1} + b_t (h_{-1} = 0) along axis 1 of (B, T, U)."""
    if a.shape[1] is None:
        return _hillis_steele(a, b)
    return _blelloch(a, b)


def _blelloch(a, b):
    steps = a.shape[1]
    if steps == 1:
        return b
    if steps % 2:
        # Pad with the identity pair (1, 0) to an even length.
        a = tf.concat([a, tf.ones_like(a[:, :1])], axis=1)
        b = tf.concat([b, tf.zeros_like(b[:, :1])], axis=1)
    shape = tf.shape(a)
    # (B, 2S, U) -> (B, S, 2, U): neighbouring pairs (even, odd).
    pairs = (shape[0], (steps + 1) // 2, 2, shape[2])
    a2, b2 = tf.reshape(a, pairs), tf.reshape(b, pairs)
    a_even, a_odd, b_even, b_odd = a2[:, :, 0], a2[:, :, 1], b2[:, :, 0], b2[:, :, 1]
    odd = _blelloch(a_odd * a_even, a_odd * b_even + b_odd)  # h at odd positions
    even = a_even * tf.concat([tf.zeros_like(odd[:, :1]), odd[:, :-1]], axis=1) + b_even
    # (B, S, 2, U) -> (B, 2S, U), then drop the padding.
    h = tf.reshape(tf.stack([even, odd], axis=2), shape)
    return h[:, :steps]


def _hillis_steele(a, b):
    steps = tf.shape(a)[1]
    # Shifting by k = reading a window of [identity * T, x] that starts at T - k;
    # the window keeps the shape (B, T, U), so the loop's shapes stay fixed.
    ones, zeros = tf.ones_like(a), tf.zeros_like(b)

    def shifted(x, pad, k):
        padded = tf.concat([pad, x], axis=1)  # (B, 2T, U)
        return tf.slice(padded, tf.stack([0, steps - k, 0]), tf.shape(x))

    def body(k, a, b):
        b = a * shifted(b, zeros, k) + b
        a = a * shifted(a, ones, k)
        return k * 2, a, b

    _, _, b = tf.while_loop(
        lambda k, a, b: k < steps, body, (tf.constant(1), a, b),
        shape_invariants=(tf.TensorShape([]), a.shape, b.shape),
    )
    return b


def _scan_forward(uc, uf, mask, c0):
    a = 1.0 - mask * (1.0 - tf.sigmoid(uf))  # (B, T, U)
    b = (1.0 - a) * uc
    # Fold c_0 into the first step: c_1 = a_1 c_0 + b_1.
    b = tf.concat([b[:, :1] + a[:, :1] * c0[:, None, :], b[:, 1:]], axis=1)
    return _pair_scan(a, b)


def _scan_backward(uc, uf, mask, c0, c_seq, d_c_seq):
    # c_{t-1} for every t: (B, T, U)
    c_prev = tf.concat([c0[:, None, :], c_seq[:, :-1, :]], axis=1)
    f = tf.sigmoid(uf)
    a = mask * (1.0 - f)
    k = mask * (uc - c_prev) * f * (1.0 - f)
    p = 1.0 - a  # dc_t / dc_{t-1} when v_f = 0
    # g_t = dC_t + P_{t+1} g_{t+1}: a scan over reversed time whose step-t
    # coefficient is P_{t+1} (P_T multiplies g_{T+1} = 0: any value will do).
    p_next = tf.concat([p[:, 1:], tf.zeros_like(p[:, :1])], axis=1)
    g = tf.reverse(
        _pair_scan(tf.reverse(p_next, [1]), tf.reverse(d_c_seq, [1])), [1]
    )
    d_uf = -g * k
    return g * a, d_uf, p[:, 0] * g[:, 0]


# `unroll` is a Python int: each value gets its own trace.
_FORWARD = {
    True: tf.function(_forward, jit_compile=True, reduce_retracing=True),
    False: tf.function(_forward, jit_compile=False, reduce_retracing=True),
}
_BACKWARD = {
    True: tf.function(_backward, jit_compile=True, reduce_retracing=True),
    False: tf.function(_backward, jit_compile=False, reduce_retracing=True),
}


# No reduce_retracing: the Blelloch scan needs a static T, so each length
# gets its own trace (XLA compiles per shape anyway).
_SCAN_FORWARD = {
    True: tf.function(_scan_forward, jit_compile=True),
    False: tf.function(_scan_forward, jit_compile=False),
}
_SCAN_BACKWARD = {
    True: tf.function(_scan_backward, jit_compile=True),
    False: tf.function(_scan_backward, jit_compile=False),
}


def c_recurrence(uc, uf, vf, mask, c0, *, unroll: int = 1, jit_compile: bool = True):
    """Runs the SRU c-recurrence with its hand-written gradient.

    Args:
        uc: float32 `(B, T, U)`, candidate projection of the inputs.
        uf: float32 `(B, T, U)`, forget-gate projection plus its bias.
        vf: float32 `(U,)`, forget-gate weights on c_{t-1} (zeros for the
            2017 form whose gates read x only).
        mask: float32 `(B, T, 1)` of 0/1; masked steps carry c unchanged.
            Treated as a constant (no gradient).
        c0: float32 `(B, U)` initial state.
        unroll: int >= 1. Time steps per loop iteration.
        jit_compile: run the loops as XLA-compiled functions; `False` gives
            plain graph loops with the same numerics.

    Returns:
        float32 `(B, T, U)`: c_t for every step.
    """

    @tf.custom_gradient
    def recurrence(uc, uf, vf, c0):
        # stop_gradient keeps the tape from differentiating the loop itself.
        inputs = [tf.stop_gradient(t) for t in (uc, uf, vf, c0)]
        c_seq = _FORWARD[jit_compile](
            inputs[0], inputs[1], inputs[2], mask, inputs[3], unroll
        )

        def grad(d_c_seq):
            return _BACKWARD[jit_compile](
                inputs[0], inputs[1], inputs[2], mask, inputs[3], c_seq, d_c_seq, unroll
            )

        return c_seq, grad

    return recurrence(uc, uf, vf, c0)


def scan_recurrence(uc, uf, mask, c0, *, jit_compile: bool = True):
    """The 2017 SRU's c-recurrence (no `v_f * c` term) by parallel scan.

    Same result and gradients as `c_recurrence` with `vf = 0`, computed in
    `O(log T)` dependent steps (see the module docstring).

    Args:
        uc: float32 `(B, T, U)`, candidate projection of the inputs.
        uf: float32 `(B, T, U)`, forget-gate projection plus its bias.
        mask: float32 `(B, T, 1)` of 0/1; masked steps carry c unchanged.
            Treated as a constant (no gradient).
        c0: float32 `(B, U)` initial state.
        jit_compile: XLA-compile the scans. Defaults to `True`.

    Returns:
        float32 `(B, T, U)`: c_t for every step.
    """

    @tf.custom_gradient
    def recurrence(uc, uf, c0):
        inputs = [tf.stop_gradient(t) for t in (uc, uf, c0)]
        c_seq = _SCAN_FORWARD[jit_compile](inputs[0], inputs[1], mask, inputs[2])

        def grad(d_c_seq):
            return _SCAN_BACKWARD[jit_compile](
                inputs[0], inputs[1], mask, inputs[2], c_seq, d_c_seq
            )

        return c_seq, grad

    return recurrence(uc, uf, c0)


def reference_recurrence(
    x_highway, uc, uf, ur, vf, vr, mask, c0, cell_mask, zero_output_for_mask
):
    """The whole SRU step by step, differentiated by autodiff: the oracle.

    The contract of `recurrence_ops.reference_recurrence` (which Keras's
    `ops.scan` cannot run on TensorFlow for a length unknown when traced),
    written with `tf.while_loop`.
    """
    steps = tf.shape(uc)[1]
    tm = [tf.transpose(t, (1, 0, 2)) for t in (x_highway, uc, uf, ur, mask)]
    x_t, uc_t, uf_t, ur_t, m_t = tm
    h_arr = tf.TensorArray(uc.dtype, size=steps, element_shape=c0.shape)
    c_arr = tf.TensorArray(uc.dtype, size=steps, element_shape=c0.shape)

    def body(t, c, h, h_arr, c_arr):
        f = tf.sigmoid(uf_t[t] + vf * c)
        r = tf.sigmoid(ur_t[t] + vr * c)
        c_new = f * c + (1.0 - f) * uc_t[t]
        h_new = r * tf.tanh(c_new) * cell_mask[:, 0, :] + (1.0 - r) * x_t[t]
        keep = m_t[t] > 0.5
        c = tf.where(keep, c_new, c)
        h = tf.where(keep, h_new, h)
        out = tf.where(keep, h_new, tf.zeros_like(h)) if zero_output_for_mask else h
        return t + 1, c, h, h_arr.write(t, out), c_arr.write(t, c)

    _, _, h_last, h_arr, c_arr = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), c0, tf.zeros_like(c0), h_arr, c_arr),
        maximum_iterations=steps,
    )
    return (
        tf.transpose(h_arr.stack(), (1, 0, 2)),
        tf.transpose(c_arr.stack(), (1, 0, 2)),
        h_last,
    )


def carry_over_masked(h_seq, mask):
    """Replaces each masked step's output by the last unmasked one (or zeros).

    Runs in O(B*T), for a length unknown when traced too: the index of the
    last unmasked step at or before t is the position of the k-th unmasked
    step, k being the running count of them.

    Args:
        h_seq: `(B, T, U)` outputs.
        mask: bool `(B, T)`.

    Returns:
        `(B, T, U)`.
    """
    steps = tf.shape(h_seq)[1]
    batch = tf.shape(h_seq)[0]
    count = tf.cumsum(tf.cast(mask, tf.int32), axis=1)  # (B, T)
    positions = tf.broadcast_to(tf.range(steps)[None, :], tf.shape(count))
    segment = count + (steps + 1) * tf.range(batch)[:, None]
    last_valid = tf.math.unsorted_segment_max(
        tf.where(mask, positions, -1), segment, batch * (steps + 1)
    )
    index = tf.gather(last_valid, segment)  # (B, T), -1 before the first step
    gathered = tf.gather(h_seq, tf.maximum(index, 0), batch_dims=1)
    return tf.where((index >= 0)[..., None], gathered, tf.zeros_like(gathered))
