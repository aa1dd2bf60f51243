"""Frames folded into the batch -> backbone -> pooled tap vectors per frame.

`tap_sequences` is the one place that wires `FoldTime`, a tap backbone
(`mrrn_keras.backbones.build_backbone`), spatial pooling and `UnfoldTime`.
"""

from __future__ import annotations

import keras

from mrrn_keras.validation import check_int

SPATIAL_POOLINGS = {
    "avg": keras.layers.GlobalAveragePooling2D,
    "max": keras.layers.GlobalMaxPooling2D,
}


def _check_time_axis(shape, rank: int) -> None:
    if len(shape) != rank:
        raise ValueError(
            f"frames must have rank {rank} (batch, time, ...). "
            f"Received: frames.shape={tuple(shape)}"
        )
    if shape[1] == 0:
        raise ValueError(
            "frames must have at least one time step. "
            f"Received: frames.shape={tuple(shape)}"
        )


@keras.saving.register_keras_serializable(package="mrrn_keras")
class FoldTime(keras.layers.Layer):
    """Folds the time axis into the batch: `(B, T, ...) -> (B*T, ...)`.

    Lets a per-image network (the backbone) see every frame of every clip
    in one batch. `UnfoldTime` undoes it. Both B and T may be unknown
    statically; trailing dimensions may be unknown too.

    Args:
        rank: int. Expected rank of the inputs, at least 2. Defaults to `5`
            (frames `(B, T, H, W, C)`).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(B, T, ...)` of rank `rank` with `T >= 1`; any dtype.

    Returns:
        Tensor `(B*T, ...)` of the same dtype.

    Example:

    >>> frames = keras.ops.zeros((2, 4, 32, 32, 3))
    >>> tuple(FoldTime()(frames).shape)
    (8, 32, 32, 3)

    Reference:
        The "TimeDistributed" pattern of `keras.layers.TimeDistributed`,
        written out so a nested functional backbone with dict outputs runs
        once on all frames.
    """

    def __init__(self, rank=5, **kwargs):
        super().__init__(**kwargs)
        self.rank = check_int("rank", rank, minimum=2)

    def build(self, input_shape):
        _check_time_axis(input_shape, self.rank)

    def call(self, inputs):
        _check_time_axis(inputs.shape, self.rank)
        shape = keras.ops.shape(inputs)
        # (B, T, ...) -> (B*T, ...)
        return keras.ops.reshape(inputs, (-1,) + tuple(shape[2:]))

    def compute_output_shape(self, input_shape):
        _check_time_axis(input_shape, self.rank)
        batch, time = input_shape[:2]
        folded = None if batch is None or time is None else batch * time
        return (folded,) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update({"rank": self.rank})
        return config


@keras.saving.register_keras_serializable(package="mrrn_keras")
class UnfoldTime(keras.layers.Layer):
    """Splits a folded batch back into clips: `(B*T, ...) -> (B, T, ...)`.

    B and T are read from `reference` at run time, so both may be unknown
    statically.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x, reference]`: `x` of shape `(B*T, ...)` (the output
            of `FoldTime` or of a per-frame network applied to it) and
            `reference` of shape `(B, T, ...)` (e.g. the frames). Only the
            shape of `reference` is used.

    Returns:
        Tensor `(B, T, ...)` with the dtype and trailing dimensions of `x`.

    Example:

    >>> frames = keras.ops.zeros((2, 4, 32, 32, 3))
    >>> vectors = keras.ops.zeros((8, 16))
    >>> tuple(UnfoldTime()([vectors, frames]).shape)
    (2, 4, 16)

    Reference:
        Inverse of `FoldTime`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, input_shape):
        self._check_shapes(input_shape)

    def call(self, inputs):
        x, reference = inputs
        self._check_shapes([tuple(x.shape), tuple(reference.shape)])
        batch, time = keras.ops.shape(reference)[:2]
        # (B*T, ...) -> (B, T, ...)
        return keras.ops.reshape(x, (batch, time) + tuple(keras.ops.shape(x)[1:]))

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = self._check_shapes(input_shape)
        return tuple(reference_shape[:2]) + tuple(x_shape[1:])

    def compute_output_spec(self, inputs):
        x, _ = inputs
        shape = self.compute_output_shape([tuple(x.shape), tuple(inputs[1].shape)])
        return keras.KerasTensor(shape, dtype=x.dtype)

    def _check_shapes(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not all(isinstance(shape, (list, tuple)) for shape in input_shape)
        ):
            raise ValueError(
                "UnfoldTime expects inputs [x, reference]. "
                f"Received: input_shape={input_shape}"
            )
        x_shape, reference_shape = input_shape
        if len(x_shape) < 1 or len(reference_shape) < 2:
            raise ValueError(
                "UnfoldTime expects x of rank >= 1 and reference of rank >= 2. "
                f"Received: x.shape={tuple(x_shape)}, reference.shape={tuple(reference_shape)}"
            )
        folded = x_shape[0]
        batch, time = reference_shape[:2]
        if None not in (folded, batch, time) and folded != batch * time:
            raise ValueError(
                "UnfoldTime expects x.shape[0] == reference.shape[0] * "
                f"reference.shape[1]. Received: x.shape={tuple(x_shape)}, "
                f"reference.shape={tuple(reference_shape)}"
            )
        return x_shape, reference_shape


def tap_sequences(frames, backbone: keras.Model, *, pooling: str = "avg") -> dict:
    """Per-frame tap vectors `{tap: (B, T, C_tap)}` from frames `(B, T, H, W, C)`.

    Folds time into the batch, runs `backbone` once on all frames, pools
    each tap over space and unfolds the result back into clips. Works on
    symbolic inputs (functional API; B, T, H, W may be `None`) and on eager
    tensors.

    Args:
        frames: tensor `(B, T, H, W, C)`, already preprocessed (see
            `FramePreprocessing`).
        backbone: keras.Model. Maps images `(N, H, W, C)` to a dict
            `{tap: (N, h, w, C_tap)}`, e.g. from
            `mrrn_keras.backbones.build_backbone`.
        pooling: str. Spatial pooling of each tap, `"avg"` or `"max"`.
            Defaults to `"avg"`.

    Returns:
        Dict `{tap: (B, T, C_tap)}` with the backbone's taps.

    Example:

    >>> from mrrn_keras.backbones import build_backbone
    >>> backbone = build_backbone("resnet18", width=0.125, taps=("low", "mid"))
    >>> frames = keras.Input((None, 32, 32, 3))
    >>> {tap: x.shape for tap, x in tap_sequences(frames, backbone).items()}
    {'low': (None, None, 16), 'mid': (None, None, 32)}
    """
    if pooling not in SPATIAL_POOLINGS:
        raise ValueError(
            f"`pooling` must be one of {sorted(SPATIAL_POOLINGS)}. "
            f"Received: pooling={pooling!r}"
        )
    # (B, T, H, W, C) -> (B*T, H, W, C)
    folded = FoldTime()(frames)
    maps = backbone(folded)
    if not isinstance(maps, dict):
        raise ValueError(
            "`backbone` must return a dict {tap: feature map}, as "
            f"build_backbone does. Received: output of type {type(maps).__name__}"
        )
    sequences = {}
    for tap, feature_map in maps.items():
        # (B*T, h, w, C_tap) -> (B*T, C_tap)
        vectors = SPATIAL_POOLINGS[pooling]()(feature_map)
        # (B*T, C_tap) -> (B, T, C_tap)
        sequences[tap] = UnfoldTime()([vectors, frames])
    return sequences
