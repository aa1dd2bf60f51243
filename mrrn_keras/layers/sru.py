"""The Simple Recurrent Unit (SRU) layer."""

import math

import keras
from keras import ops

from mrrn_keras.layers import recurrence
from mrrn_keras.layers.recurrence import IMPLEMENTATIONS, check_scan
from mrrn_keras.validation import check_int


@keras.saving.register_keras_serializable(package="mrrn_keras")
class SRU(keras.layers.Layer):
    """Simple Recurrent Unit (Lei et al., 2017) with a fast XLA recurrence.

    All matrix products happen at once for the whole sequence,
    `U = x W` with `W` of shape `(input_dim, 3 * units)` in blocks
    `[candidate | forget | reset]`; only an elementwise recurrence runs step
    by step:

        f_t = sigmoid(U_f,t + v_f * c_{t-1} + b_f)
        r_t = sigmoid(U_r,t + v_r * c_{t-1} + b_r)
        c_t = f_t * c_{t-1} + (1 - f_t) * U_c,t
        h_t = r_t * tanh(c_t) + (1 - r_t) * x_t

    With `state_gates=False` the `v * c` terms are dropped: the 2017 form the
    MRRN paper used (gates read x only; `v1=True` in the official package).
    When `input_dim != units` the highway term uses a learned projection
    `x P` (weight `projection_kernel`, `(input_dim, units)`).

    Weights, in the public layout: `kernel` `(input_dim, 3 * units)`,
    `recurrent_weights` `(2 * units,)` = `[v_f | v_r]` (only with
    `state_gates=True`), `bias` `(2 * units,)` = `[b_f | b_r]`, and
    `projection_kernel` when dims differ.

    Args:
        units: int. Size of the state and output. Must be positive.
        return_sequences: bool. Return the whole output sequence instead of
            the last output. Defaults to `False`.
        return_state: bool. Also return the final state `c_T`. Defaults to
            `False`.
        go_backwards: bool. Process the sequence in reverse (and return the
            reversed sequence, as Keras RNNs do). Defaults to `False`.
        state_gates: bool. Gates read `c_{t-1}` (SRU 2018). `False` gives the
            2017 paper form. Defaults to `True`.
        dropout: float in [0, 1). Variational dropout on the inputs: one mask
            per sequence, shared across time. Defaults to `0.0`.
        recurrent_dropout: float in [0, 1). Variational dropout on `tanh(c_t)`
            in the output, one mask per sequence (the SRU paper's dropout on
            c). Defaults to `0.0`.
        highway_bias: float. Initial value of the reset-gate bias `b_r`.
            Defaults to `0.0`.
        rescale: bool. Scale the highway input by
            `sqrt(1 + 2 * exp(highway_bias))`, as the official package's
            `rescale=True`. Defaults to `False`.
        zero_output_for_mask: bool. Masked steps output zeros instead of the
            previous output (set by `Bidirectional`). Defaults to `False`.
        implementation: str. `"xla"`: the step loop, XLA-compiled, with a
            hand-written backward recurrence (on JAX `lax.scan` with a
            `custom_vjp`). `"graph"`: on TensorFlow the same loop and
            gradient without XLA (identical numerics; for SavedModels served
            by TF Serving); elsewhere the same as `"xla"`. `"scan"`: a
            parallel (associative) scan of the linear recurrence, forward
            and backward; only with `state_gates=False` (a `ValueError`
            otherwise); equal to the loop to float rounding. `"reference"`:
            a plain step-by-step loop differentiated by autodiff, kept as the
            test oracle. `"auto"`: see "Choosing an implementation".
            Defaults to `"auto"`.
        kernel_initializer: initializer for `kernel` and `projection_kernel`.
            Defaults to `"glorot_uniform"`.
        recurrent_initializer: initializer for `recurrent_weights`.
            Defaults to `"zeros"`.
        bias_initializer: initializer for the forget half of `bias` (the
            reset half starts at `highway_bias`). Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer for `kernel` and
            `projection_kernel`.
        seed: optional int seed for the dropout masks.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, time, input_dim)`.
        mask: optional bool `(batch, time)`; a masked step carries `c` and
            the output through unchanged.
        training: bool, enables dropout.
        initial_state: optional `(batch, units)` tensor (or a one-element
            list) for `c_0`; zeros by default.

    Returns:
        `(batch, units)` or, with `return_sequences`, `(batch, time, units)`;
        with `return_state`, a list `[output, c_T]`.

    Choosing an implementation: `"auto"` asks one policy,
    `mrrn_keras.layers.recurrence.choose_plan`, with the device kind and the
    Keras backend. On a GPU or TPU the 2017 form (`state_gates=False`) runs
    as the parallel scan at every length (the step loop is launch-bound
    there) and the state-gate form as the loop unrolled 8 steps per
    iteration; on CPU the loop, which measured no slower than the scan up to
    T=2048. The constants and the measurements behind them are in
    `recurrence.AUTO_RULES`; the tables and commands in docs/benchmarks.md.
    The same weights give the same outputs on every path and backend.

    Example:

    >>> import numpy as np
    >>> layer = SRU(8, return_sequences=True)
    >>> layer(np.zeros((2, 5, 4), "float32")).shape
    TensorShape([2, 5, 8])

    Reference:
        Lei, Zhang, Wang, Dai, Artzi. "Simple Recurrent Units for Highly
        Parallelizable Recurrence". arXiv:1709.02755.
    """

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        state_gates=True,
        dropout=0.0,
        recurrent_dropout=0.0,
        highway_bias=0.0,
        rescale=False,
        zero_output_for_mask=False,
        implementation="auto",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="zeros",
        bias_initializer="zeros",
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int("units", units)
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(
                    f"`{name}` must be in [0, 1). Received: {name}={rate!r}"
                )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"`implementation` must be one of {IMPLEMENTATIONS}. "
                f"Received: implementation={implementation!r}"
            )
        check_scan(implementation, state_gates)
        self.units = units
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.state_gates = state_gates
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.highway_bias = float(highway_bias)
        self.rescale = rescale
        self.zero_output_for_mask = zero_output_for_mask
        self.implementation = implementation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        # Read by keras.layers.Bidirectional; this layer keeps no state
        # between calls (state is passed with `initial_state`).
        self.stateful = False
        self.states = None
        self.supports_masking = True
        self.seed_generator = (
            keras.random.SeedGenerator(seed)
            if dropout > 0 or recurrent_dropout > 0
            else None
        )

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "SRU expects inputs of shape (batch, time, features) with a "
                f"known feature size. Received: input_shape={input_shape}"
            )
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, 3 * self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.projection_kernel = None
        if input_dim != self.units:
            self.projection_kernel = self.add_weight(
                name="projection_kernel",
                shape=(input_dim, self.units),
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
            )
        self.recurrent_weights = None
        if self.state_gates:
            self.recurrent_weights = self.add_weight(
                name="recurrent_weights",
                shape=(2 * self.units,),
                initializer=self.recurrent_initializer,
            )
        forget_init = self.bias_initializer
        highway_bias = self.highway_bias

        def bias_init(shape, dtype=None):
            forget = forget_init((shape[0] // 2,), dtype=dtype)
            reset = ops.full((shape[0] // 2,), highway_bias, dtype=dtype)
            return ops.concatenate([forget, reset])

        self.bias = self.add_weight(
            name="bias", shape=(2 * self.units,), initializer=bias_init
        )

    def _plan(self, steps):
        # `implementation` may be reassigned after construction (e.g.
        # `MRRN.set_implementation`): resolved (and checked) at each call.
        backend = keras.backend.backend()
        return recurrence.choose_plan(
            self.implementation,
            state_gates=self.state_gates,
            steps=steps,
            device=recurrence.device_kind(backend),
            backend=backend,
        )

    def call(self, inputs, mask=None, training=None, initial_state=None):
        x = ops.cast(inputs, "float32")
        batch = ops.shape(x)[0]
        if isinstance(initial_state, (list, tuple)):
            initial_state = initial_state[0]
        c0 = (
            ops.zeros((batch, self.units), "float32")
            if initial_state is None
            else ops.cast(initial_state, "float32")
        )
        if mask is not None:
            mask = ops.cast(mask, "bool")
        if self.go_backwards:
            x = ops.flip(x, axis=1)
            if mask is not None:
                mask = ops.flip(mask, axis=1)

        if training and self.dropout > 0:
            # One input mask per sequence, shared by every step: (B, 1, D).
            keep = keras.random.dropout(
                ops.ones_like(x[:, :1, :]), self.dropout, seed=self.seed_generator
            )
            x = x * keep
        cell_mask = ops.ones((batch, 1, self.units), "float32")
        if training and self.recurrent_dropout > 0:
            cell_mask = keras.random.dropout(
                cell_mask, self.recurrent_dropout, seed=self.seed_generator
            )

        weights = ops.cast(self.kernel, "float32")
        if self.projection_kernel is not None:
            weights = ops.concatenate(
                [weights, ops.cast(self.projection_kernel, "float32")], axis=1
            )
        # One matmul for every step: (B, T, D) x (D, 3U [+U]) -> (B, T, 3U [+U]).
        u = ops.matmul(x, weights)
        units = self.units
        uc = u[..., :units]
        bias = ops.cast(self.bias, "float32")
        uf = u[..., units : 2 * units] + bias[:units]
        ur = u[..., 2 * units : 3 * units] + bias[units:]
        x_highway = u[..., 3 * units :] if self.projection_kernel is not None else x
        if self.rescale:
            x_highway = x_highway * math.sqrt(1.0 + 2.0 * math.exp(self.highway_bias))
        if self.recurrent_weights is not None:
            v = ops.cast(self.recurrent_weights, "float32")
            vf, vr = v[:units], v[units:]
        else:
            vf = vr = ops.zeros((units,), "float32")
        step_mask = (
            ops.ones_like(uc[..., :1])
            if mask is None
            else ops.cast(mask, "float32")[..., None]
        )

        plan = self._plan(x.shape[1])
        backend = recurrence.backend_module()
        if plan.method == "reference":
            h_seq, c_seq, h_last = backend.reference_recurrence(
                x_highway, uc, uf, ur, vf, vr, step_mask, c0, cell_mask,
                self.zero_output_for_mask and mask is not None,
            )
        else:
            c_seq = recurrence.c_sequence(plan, uc, uf, vf, step_mask, c0)
            # c_{t-1} for every t: (B, T, U)
            c_prev = ops.concatenate([c0[:, None, :], c_seq[:, :-1, :]], axis=1)
            r = ops.sigmoid(ur + vr * c_prev)
            h_seq = r * ops.tanh(c_seq) * cell_mask + (1.0 - r) * x_highway
            if mask is not None:
                h_filled = backend.carry_over_masked(h_seq, mask)
                h_last = h_filled[:, -1, :]
                h_seq = h_seq * step_mask if self.zero_output_for_mask else h_filled
            else:
                h_last = h_seq[:, -1, :]

        output = h_seq if self.return_sequences else h_last
        output = ops.cast(output, self.compute_dtype)
        if self.return_state:
            return [output, ops.cast(c_seq[:, -1, :], self.compute_dtype)]
        return output

    def compute_mask(self, inputs, mask=None):
        if self.return_state:
            return [mask if self.return_sequences else None, None]
        return mask if self.return_sequences else None

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        batch, time = inputs_shape[0], inputs_shape[1]
        out = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [out, (batch, self.units)]
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "return_sequences": self.return_sequences,
                "return_state": self.return_state,
                "go_backwards": self.go_backwards,
                "state_gates": self.state_gates,
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "highway_bias": self.highway_bias,
                "rescale": self.rescale,
                "zero_output_for_mask": self.zero_output_for_mask,
                "implementation": self.implementation,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "recurrent_initializer": keras.initializers.serialize(
                    self.recurrent_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "seed": self.seed,
            }
        )
        return config
