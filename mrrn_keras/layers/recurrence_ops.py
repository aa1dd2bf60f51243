"""The SRU recurrence in plain `keras.ops`, differentiated by autodiff.

Runs on every Keras backend. It holds the reference (the whole SRU step by
step, the oracle the fast paths are tested against) and is the PyTorch
backend's recurrence: there Keras has no `custom_gradient`, so the loop
(`ops.scan`, a Python loop on PyTorch) and the parallel scan
(`ops.associative_scan`) are differentiated by autodiff. The algorithms are
described in `mrrn_keras.layers.recurrence`.
"""

from keras import ops


def _time_major(x):
    return ops.transpose(x, (1, 0, 2))  # (B, T, U) <-> (T, B, U)


def c_recurrence(uc, uf, vf, mask, c0, *, unroll: int = 1, jit_compile: bool = True):
    """The c-recurrence as a loop over time; same contract as `recurrence_tf`'s.

    `unroll` is passed to `keras.ops.scan`; `jit_compile` is ignored.
    """
    del jit_compile

    def step(c, inputs):
        uc_t, uf_t, m_t = inputs
        f = ops.sigmoid(uf_t + vf * c)
        c = c + m_t * (1.0 - f) * (uc_t - c)
        return c, c

    _, c_seq = ops.scan(
        step, c0, tuple(_time_major(t) for t in (uc, uf, mask)), unroll=unroll
    )
    return _time_major(c_seq)


def _compose(earlier, later):
    # (a1, b1) then (a2, b2): c -> a2 (a1 c + b1) + b2.
    (a1, b1), (a2, b2) = earlier, later
    return a1 * a2, a2 * b1 + b2


def scan_recurrence(uc, uf, mask, c0, *, jit_compile: bool = True):
    """The 2017 form's c-recurrence by `keras.ops.associative_scan`.

    `jit_compile` is ignored.
    """
    del jit_compile
    a = 1.0 - mask * (1.0 - ops.sigmoid(uf))  # (B, T, U)
    b = (1.0 - a) * uc
    # Fold c_0 into the first step: c_1 = a_1 c_0 + b_1.
    b = ops.concatenate([b[:, :1] + a[:, :1] * c0[:, None, :], b[:, 1:]], axis=1)
    _, c_seq = ops.associative_scan(_compose, (a, b), axis=1)
    return c_seq


def reference_recurrence(
    x_highway, uc, uf, ur, vf, vr, mask, c0, cell_mask, zero_output_for_mask
):
    """The whole SRU step by step in a plain loop, differentiated by autodiff.

    Kept in the package as the oracle the fast paths are tested against and
    as a debugging path; it is not fast.

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
    drop = cell_mask[:, 0, :]

    def step(carry, inputs):
        c, h = carry
        x_t, uc_t, uf_t, ur_t, m_t = inputs
        f = ops.sigmoid(uf_t + vf * c)
        r = ops.sigmoid(ur_t + vr * c)
        c_new = f * c + (1.0 - f) * uc_t
        h_new = r * ops.tanh(c_new) * drop + (1.0 - r) * x_t
        keep = m_t > 0.5
        c = ops.where(keep, c_new, c)
        h = ops.where(keep, h_new, h)
        out = ops.where(keep, h_new, ops.zeros_like(h)) if zero_output_for_mask else h
        return (c, h), (out, c)

    (_, h_last), (h_seq, c_seq) = ops.scan(
        step,
        (c0, ops.zeros_like(c0)),
        tuple(_time_major(t) for t in (x_highway, uc, uf, ur, mask)),
    )
    return _time_major(h_seq), _time_major(c_seq), h_last


def carry_over_masked(h_seq, mask):
    """Replaces each masked step's output by the last unmasked one (or zeros).

    Args:
        h_seq: `(B, T, U)` outputs.
        mask: bool `(B, T)`.

    Returns:
        `(B, T, U)`.
    """
    steps = ops.shape(h_seq)[1]
    positions = ops.broadcast_to(ops.arange(steps)[None, :], ops.shape(mask))
    # Index of the last unmasked step at or before t, -1 before the first.
    index = ops.associative_scan(ops.maximum, ops.where(mask, positions, -1), axis=1)
    gathered = ops.take_along_axis(h_seq, ops.maximum(index, 0)[..., None], axis=1)
    return ops.where((index >= 0)[..., None], gathered, ops.zeros_like(gathered))
