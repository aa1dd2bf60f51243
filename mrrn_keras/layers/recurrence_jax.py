"""The SRU recurrence on JAX: `lax.scan` and `lax.associative_scan` with `custom_vjp`.

Same algorithms and the same hand-written backward recurrence as
`recurrence_tf` (the math is in its module docstring); JAX traces with static
shapes and compiles everything with XLA, so there is one form of each and
no graph/XLA switch. The reference and the masked-output fill are the
backend-neutral ones of `recurrence_ops`.
"""

import functools

import jax
import jax.numpy as jnp

from mrrn_keras.layers.recurrence_ops import carry_over_masked, reference_recurrence

__all__ = ["c_recurrence", "carry_over_masked", "reference_recurrence", "scan_recurrence"]


def _time_major(x):
    return jnp.swapaxes(x, 0, 1)  # (B, T, U) <-> (T, B, U)


def _shifted_c(c0, c_seq):
    # c_{t-1} for every t: (B, T, U)
    return jnp.concatenate([c0[:, None, :], c_seq[:, :-1, :]], axis=1)


def _loop_forward(uc, uf, vf, mask, c0, unroll):
    def step(c, inputs):
        uc_t, uf_t, m_t = inputs
        f = jax.nn.sigmoid(uf_t + vf * c)
        c = c + m_t * (1.0 - f) * (uc_t - c)
        return c, c

    _, c_seq = jax.lax.scan(
        step, c0, tuple(_time_major(t) for t in (uc, uf, mask)), unroll=unroll
    )
    return _time_major(c_seq)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _loop(uc, uf, vf, mask, c0, unroll):
    return _loop_forward(uc, uf, vf, mask, c0, unroll)


def _loop_fwd(uc, uf, vf, mask, c0, unroll):
    c_seq = _loop_forward(uc, uf, vf, mask, c0, unroll)
    return c_seq, (uc, uf, vf, mask, c0, c_seq)


def _loop_bwd(unroll, residuals, d_c_seq):
    uc, uf, vf, mask, c0, c_seq = residuals
    c_prev = _shifted_c(c0, c_seq)
    f = jax.nn.sigmoid(uf + vf * c_prev)
    a = mask * (1.0 - f)
    k = mask * (uc - c_prev) * f * (1.0 - f)
    p = 1.0 - a - k * vf

    def step(carry, inputs):
        d_t, p_t = inputs
        g = d_t + carry
        return p_t * g, g

    # g_t = dC_t + P_{t+1} g_{t+1}, from the last step back; the final carry
    # is P_1 g_1 = dc_0.
    d_c0, g = jax.lax.scan(
        step,
        jnp.zeros_like(c0),
        (_time_major(d_c_seq), _time_major(p)),
        reverse=True,
        unroll=unroll,
    )
    g = _time_major(g)
    d_uf = -g * k
    d_vf = jnp.sum(d_uf * c_prev, axis=(0, 1))
    return g * a, d_uf, d_vf, jnp.zeros_like(mask), d_c0


_loop.defvjp(_loop_fwd, _loop_bwd)


def c_recurrence(uc, uf, vf, mask, c0, *, unroll: int = 1, jit_compile: bool = True):
    """Runs the SRU c-recurrence as a `lax.scan` loop with its hand-written gradient.

    Args:
        uc: float32 `(B, T, U)`, candidate projection of the inputs.
        uf: float32 `(B, T, U)`, forget-gate projection plus its bias.
        vf: float32 `(U,)`, forget-gate weights on c_{t-1}.
        mask: float32 `(B, T, 1)` of 0/1; masked steps carry c unchanged.
            Treated as a constant (no gradient).
        c0: float32 `(B, U)` initial state.
        unroll: int >= 1. Time steps per loop iteration.
        jit_compile: ignored (JAX compiles every path).

    Returns:
        float32 `(B, T, U)`: c_t for every step.
    """
    del jit_compile
    return _loop(uc, uf, vf, jax.lax.stop_gradient(mask), c0, unroll)


def _compose(earlier, later):
    # (a1, b1) then (a2, b2): c -> a2 (a1 c + b1) + b2.
    (a1, b1), (a2, b2) = earlier, later
    return a1 * a2, a2 * b1 + b2


def _pair_scan(a, b):
    """Inclusive scan h_t = a_t h_{t-1} + b_t (h_0 = 0) along axis 1 of (B, T, U)."""
    return jax.lax.associative_scan(_compose, (a, b), axis=1)[1]


def _scan_forward(uc, uf, mask, c0):
    a = 1.0 - mask * (1.0 - jax.nn.sigmoid(uf))  # (B, T, U)
    b = (1.0 - a) * uc
    # Fold c_0 into the first step: c_1 = a_1 c_0 + b_1.
    b = b.at[:, 0].add(a[:, 0] * c0)
    return _pair_scan(a, b)


@jax.custom_vjp
def _scan(uc, uf, mask, c0):
    return _scan_forward(uc, uf, mask, c0)


def _scan_fwd(uc, uf, mask, c0):
    c_seq = _scan_forward(uc, uf, mask, c0)
    return c_seq, (uc, uf, mask, c0, c_seq)


def _scan_bwd(residuals, d_c_seq):
    uc, uf, mask, c0, c_seq = residuals
    c_prev = _shifted_c(c0, c_seq)
    f = jax.nn.sigmoid(uf)
    a = mask * (1.0 - f)
    k = mask * (uc - c_prev) * f * (1.0 - f)
    p = 1.0 - a  # dc_t / dc_{t-1} when v_f = 0
    # g_t = dC_t + P_{t+1} g_{t+1}: a scan over reversed time whose step-t
    # coefficient is P_{t+1} (P_T multiplies g_{T+1} = 0: any value will do).
    p_next = jnp.concatenate([p[:, 1:], jnp.zeros_like(p[:, :1])], axis=1)
    g = jnp.flip(_pair_scan(jnp.flip(p_next, 1), jnp.flip(d_c_seq, 1)), 1)
    return g * a, -g * k, jnp.zeros_like(mask), p[:, 0] * g[:, 0]


_scan.defvjp(_scan_fwd, _scan_bwd)


def scan_recurrence(uc, uf, mask, c0, *, jit_compile: bool = True):
    """The 2017 SRU's c-recurrence (no `v_f * c` term) by `lax.associative_scan`.

    The contract of `recurrence_tf.scan_recurrence`: the same result and
    gradients as `c_recurrence` with `vf = 0`; `jit_compile` is ignored.
    """
    del jit_compile
    return _scan(uc, uf, jax.lax.stop_gradient(mask), c0)
