"""The SRU's sequential part: the c-recurrence, its hand-written gradient.

Everything in an SRU except one elementwise recurrence runs in parallel over
time. With ``U = x W`` computed for all steps at once, that recurrence is

    f_t = sigmoid(uf_t + v_f * c_{t-1})          (uf already holds b_f)
    c_t = c_{t-1} + m_t * (1 - f_t) * (uc_t - c_{t-1})

where ``m_t`` is 1 for a real step and 0 for a masked one (a masked step
carries c through unchanged). The reset gate and the output ``h`` depend on
``c_{t-1}`` and ``c_t`` only, so the caller computes them vectorised from the
sequence of c returned here and lets autodiff handle them.

The backward recurrence is linear whatever ``v_f`` is. With ``g_t`` the total
gradient reaching ``c_t``,

    A_t = m_t (1 - f_t)
    K_t = m_t (uc_t - c_{t-1}) f_t (1 - f_t)
    P_t = 1 - A_t - K_t v_f                       (= dc_t / dc_{t-1})
    g_t = dC_t + P_{t+1} g_{t+1},                 dc_0 = P_0 g_0
    duc_t = g_t A_t,   duf_t = -g_t K_t,   dv_f = sum_t duf_t c_{t-1}

so the reverse loop is one multiply-add per step; ``A``, ``K`` and ``P`` are
computed for all steps at once from the forward's c sequence.

Why a hand-written gradient: autodiff through an XLA while loop was measured
at 7x (T=64) to 21x (T=512) the cost of the layer's own matmul.

Two loop forms share this math: ``jit_compile=True`` (the fast default) and a
plain TF graph loop with identical numerics, which a SavedModel for TF
Serving needs (Serving refuses XLA functions unless told otherwise).
"""

import tensorflow as tf


def _forward_loop(uc, uf, vf, mask, c0):
    """c sequence from time-major inputs (T, B, U); mask is (T, B, 1)."""
    steps = tf.shape(uc)[0]
    out = tf.TensorArray(uc.dtype, size=steps, element_shape=c0.shape)

    def body(t, c, out):
        f = tf.sigmoid(uf[t] + vf * c)
        c = c + mask[t] * (1.0 - f) * (uc[t] - c)
        return t + 1, c, out.write(t, c)

    _, _, out = tf.while_loop(
        lambda t, c, out: t < steps,
        body,
        (tf.constant(0), c0, out),
        maximum_iterations=steps,
    )
    return out.stack()


def _backward_loop(dc_seq, p_seq):
    """Reverse linear recurrence g_t = dC_t + P_{t+1} g_{t+1}; returns (G, dc0)."""
    steps = tf.shape(dc_seq)[0]
    out = tf.TensorArray(dc_seq.dtype, size=steps, element_shape=dc_seq.shape[1:])

    def body(t, carry, out):
        g = dc_seq[t] + carry
        return t - 1, p_seq[t] * g, out.write(t, g)

    _, dc0, out = tf.while_loop(
        lambda t, carry, out: t >= 0,
        body,
        (steps - 1, tf.zeros_like(dc_seq[0]), out),
        maximum_iterations=steps,
    )
    return out.stack(), dc0


def _forward(uc, uf, vf, mask, c0):
    # (B, T, U) -> (T, B, U): the loop indexes contiguous time slices.
    c_seq = _forward_loop(
        tf.transpose(uc, (1, 0, 2)),
        tf.transpose(uf, (1, 0, 2)),
        vf,
        tf.transpose(mask, (1, 0, 2)),
        c0,
    )
    return tf.transpose(c_seq, (1, 0, 2))  # (T, B, U) -> (B, T, U)


def _backward(uc, uf, vf, mask, c0, c_seq, d_c_seq):
    # c_{t-1} for every t: (B, T, U)
    c_prev = tf.concat([c0[:, None, :], c_seq[:, :-1, :]], axis=1)
    f = tf.sigmoid(uf + vf * c_prev)
    a = mask * (1.0 - f)
    k = mask * (uc - c_prev) * f * (1.0 - f)
    p = 1.0 - a - k * vf
    g, d_c0 = _backward_loop(
        tf.transpose(d_c_seq, (1, 0, 2)), tf.transpose(p, (1, 0, 2))
    )
    g = tf.transpose(g, (1, 0, 2))  # (T, B, U) -> (B, T, U)
    d_uf = -g * k
    d_vf = tf.reduce_sum(d_uf * c_prev, axis=(0, 1))
    return g * a, d_uf, d_vf, d_c0


_FORWARD = {
    True: tf.function(_forward, jit_compile=True, reduce_retracing=True),
    False: tf.function(_forward, jit_compile=False, reduce_retracing=True),
}
_BACKWARD = {
    True: tf.function(_backward, jit_compile=True, reduce_retracing=True),
    False: tf.function(_backward, jit_compile=False, reduce_retracing=True),
}


def c_recurrence(uc, uf, vf, mask, c0, *, jit_compile: bool = True):
    """Runs the SRU c-recurrence with its hand-written gradient.

    Args:
        uc: float32 `(B, T, U)`, candidate projection of the inputs.
        uf: float32 `(B, T, U)`, forget-gate projection plus its bias.
        vf: float32 `(U,)`, forget-gate weights on c_{t-1} (zeros for the
            2017 form whose gates read x only).
        mask: float32 `(B, T, 1)` of 0/1; masked steps carry c unchanged.
            Treated as a constant (no gradient).
        c0: float32 `(B, U)` initial state.
        jit_compile: run the loops as XLA-compiled functions; `False` gives
            plain graph loops with the same numerics.

    Returns:
        float32 `(B, T, U)`: c_t for every step.
    """

    @tf.custom_gradient
    def recurrence(uc, uf, vf, c0):
        # stop_gradient keeps the tape from differentiating the loop itself.
        inputs = [tf.stop_gradient(t) for t in (uc, uf, vf, c0)]
        c_seq = _FORWARD[jit_compile](inputs[0], inputs[1], inputs[2], mask, inputs[3])

        def grad(d_c_seq):
            return _BACKWARD[jit_compile](
                inputs[0], inputs[1], inputs[2], mask, inputs[3], c_seq, d_c_seq
            )

        return c_seq, grad

    return recurrence(uc, uf, vf, c0)


def reference_recurrence(
    x_highway, uc, uf, ur, vf, vr, mask, c0, cell_mask, zero_output_for_mask
):
    """The whole SRU step by step in a plain loop, differentiated by autodiff.

    Kept in the package as the oracle the fast path is tested against and as
    a debugging path; it is not fast.

    Args:
        x_highway: `(B, T, U)` the highway input (x, or its projection).
        uc, uf, ur: `(B, T, U)` the three projections, uf/ur with biases.
        vf, vr: `(U,)` gate weights on c_{t-1}.
        mask: `(B, T, 1)` of 0/1.
        c0: `(B, U)` initial state.
        cell_mask: `(B, 1, U)` dropout mask on tanh(c_t), or ones.
        zero_output_for_mask: masked steps output zeros instead of the
            previous output.

    Returns:
        `(h_seq, c_seq, h_last)`: outputs and states `(B, T, U)`, and the
        output of the last unmasked step `(B, U)` (zeros if none).
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
