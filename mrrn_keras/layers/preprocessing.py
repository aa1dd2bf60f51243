"""Raw frames to the normalised floats a backbone expects, inside the model.

The model does its own preprocessing so that a served model takes raw uint8
frames. `PREPROCESSING` holds the two normalisations the backbones' ImageNet
weights expect; `mrrn_keras.backbones.BACKBONES[name].preprocessing` names
the one for each family.
"""

from __future__ import annotations

import math

import keras
import numpy as np

PREPROCESSING = {
    # torchvision: RGB, mean/std of ImageNet in 0-255 units (resnet18/34).
    "torch": dict(
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        channel_order="rgb",
    ),
    # keras.applications.resnet.preprocess_input: BGR, mean subtracted only.
    "caffe": dict(
        mean=(103.939, 116.779, 123.68),
        std=(1.0, 1.0, 1.0),
        channel_order="bgr",
    ),
}

_CHANNEL_ORDERS = ("rgb", "bgr")


@keras.saving.register_keras_serializable(package="mrrn_keras")
class FramePreprocessing(keras.layers.Layer):
    """Casts raw RGB frames to float and normalises them per channel.

    Computes `(cast(x)[..., order] - mean) / std` in the layer's compute
    dtype, where `order` flips RGB to BGR when `channel_order="bgr"`. Inputs
    are RGB, uint8 or float in [0, 255], of any rank (last axis = channels).

    Args:
        mean: sequence of floats. Per-channel mean in 0-255 units, in the
            output channel order (BGR when `channel_order="bgr"`).
        std: sequence of positive floats, same length as `mean`. Per-channel
            standard deviation in 0-255 units, in the output channel order.
        channel_order: str. `"rgb"` keeps the input order; `"bgr"` reverses
            the channels first. Defaults to `"rgb"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(..., channels)`, uint8 or float RGB in [0, 255].

    Returns:
        Tensor of the same shape in the layer's compute dtype.

    Example:

    >>> layer = FramePreprocessing(**PREPROCESSING["caffe"])
    >>> frames = np.full((1, 2, 4, 4, 3), (10, 20, 30), dtype="uint8")
    >>> np.round(keras.ops.convert_to_numpy(layer(frames))[0, 0, 0, 0], 3)
    array([ -73.939,  -96.779, -113.68 ], dtype=float32)

    Reference:
        torchvision `transforms.Normalize`;
        `keras.applications.resnet.preprocess_input` (mode "caffe").
    """

    def __init__(self, mean, std, channel_order="rgb", **kwargs):
        super().__init__(**kwargs)
        mean = tuple(float(m) for m in mean)
        std = tuple(float(s) for s in std)
        if not mean:
            raise ValueError(f"`mean` must not be empty. Received: mean={mean}")
        if not all(math.isfinite(m) for m in mean):
            raise ValueError(f"`mean` must be finite. Received: mean={mean}")
        if len(std) != len(mean):
            raise ValueError(
                "`std` must have one value per channel, as `mean`. "
                f"Received: mean={mean}, std={std}"
            )
        if not all(math.isfinite(s) and s > 0 for s in std):
            raise ValueError(f"`std` must be positive and finite. Received: std={std}")
        if channel_order not in _CHANNEL_ORDERS:
            raise ValueError(
                f"`channel_order` must be one of {_CHANNEL_ORDERS}. "
                f"Received: channel_order={channel_order!r}"
            )
        self.mean = mean
        self.std = std
        self.channel_order = channel_order

    def build(self, input_shape):
        channels = input_shape[-1] if input_shape else None
        if channels is not None and channels != len(self.mean):
            raise ValueError(
                f"FramePreprocessing has {len(self.mean)} channels in `mean`/`std` "
                f"but the inputs have {channels}. Received: inputs.shape={input_shape}"
            )
        self._mean = np.asarray(self.mean, dtype="float64")
        self._std = np.asarray(self.std, dtype="float64")

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.channel_order == "bgr":
            x = keras.ops.flip(x, axis=-1)
        mean = keras.ops.cast(self._mean, self.compute_dtype)
        std = keras.ops.cast(self._std, self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"mean": list(self.mean), "std": list(self.std), "channel_order": self.channel_order}
        )
        return config
