"""Pooling of a stream's SRU outputs over time."""

import keras
from keras import ops

from mrrn_keras.validation import check_choice

TIME_POOLINGS = ("mean", "max", "last")


@keras.saving.register_keras_serializable(package="mrrn_keras")
class TimePooling(keras.layers.Layer):
    """Reduces `(batch, time, features)` to `(batch, features)`.

    Args:
        mode: str. `"mean"` (the paper-proxy default: a classifier per step
            averaged over time is, for a linear head, the head of the mean),
            `"max"`, or `"last"` (the last step; what a streaming run can
            reproduce exactly). Defaults to `"mean"`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, time, features)` tensor, `time >= 1`.

    Returns:
        `(batch, features)` tensor of the inputs' dtype.

    Raises:
        ValueError: for an unknown `mode`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(6, dtype="float32").reshape(1, 3, 2)
    >>> np.asarray(TimePooling("last")(x)).tolist()
    [[4.0, 5.0]]
    """

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, TIME_POOLINGS)

    def call(self, inputs):
        if self.mode == "mean":
            return ops.mean(inputs, axis=1)
        if self.mode == "max":
            return ops.max(inputs, axis=1)
        return inputs[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
