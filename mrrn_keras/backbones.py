"""ResNet trunks that return named stage outputs ("taps") for MRRN.

Every backbone maps preprocessed float images `(N, H, W, 3)` to a dict
`{tap: feature map}`. The three taps read the same in every family:

    low   end of stage 2 (conv3_x), stride 8
    mid   end of stage 3 (conv4_x), stride 16
    high  end of stage 4 (conv5_x), stride 32

Each family's tap layer names, channels and strides are written once, in
`BACKBONES`. resnet18/34 (basic blocks) are built here with the same layer
naming scheme as `keras.applications` (`conv3_block2_out`, ...);
resnet50/101/152 (bottleneck blocks) come from `keras.applications` so their
ImageNet weights load for a user with internet access.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import keras

from mrrn_keras.validation import MIN_IMAGE_SIZE

TAP_NAMES = ("low", "mid", "high")


@dataclasses.dataclass(frozen=True)
class TapSpec:
    """Where one tap is read in a backbone.

    Args:
        layer: str. Name of the layer whose output is the tap.
        channels: int. Channels of the tap at `width=1.0`.
        stride: int. Downsampling of the tap relative to the input image.
    """

    layer: str
    channels: int
    stride: int


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """One ResNet family: how to build it and where its taps are.

    Args:
        name: str. Registry name, e.g. `"resnet34"`.
        family: str. `"basic"` (built here from `depths`) or
            `"keras_applications"` (the `keras.applications` class named by
            `application`).
        depths: tuple of 4 ints. Residual blocks per stage (conv2_x..conv5_x).
        low: TapSpec. End of stage 2 (conv3_x).
        mid: TapSpec. End of stage 3 (conv4_x).
        high: TapSpec. End of stage 4 (conv5_x).
        preprocessing: str. Key of `mrrn_keras.layers.preprocessing.PREPROCESSING`
            the family's ImageNet weights expect: `"torch"` for resnet18/34
            (torchvision's normalisation), `"caffe"` for the
            `keras.applications` ResNets (BGR, mean subtracted, no scaling).
        application: str or None. `keras.applications` class name for the
            `"keras_applications"` family.
        imagenet_weights: bool. Whether `weights="imagenet"` is available.
    """

    name: str
    family: str
    depths: tuple[int, int, int, int]
    low: TapSpec
    mid: TapSpec
    high: TapSpec
    preprocessing: str
    application: str | None = None
    imagenet_weights: bool = False

    def tap(self, tap: str) -> TapSpec:
        """Returns the `TapSpec` of tap `"low"`, `"mid"` or `"high"`."""
        return getattr(self, tap)


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(
        name="resnet18",
        family="basic",
        depths=(2, 2, 2, 2),
        low=TapSpec("conv3_block2_out", 128, 8),
        mid=TapSpec("conv4_block2_out", 256, 16),
        high=TapSpec("conv5_block2_out", 512, 32),
        preprocessing="torch",
    ),
    "resnet34": BackboneSpec(
        name="resnet34",
        family="basic",
        depths=(3, 4, 6, 3),
        low=TapSpec("conv3_block4_out", 128, 8),
        mid=TapSpec("conv4_block6_out", 256, 16),
        high=TapSpec("conv5_block3_out", 512, 32),
        preprocessing="torch",
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        family="keras_applications",
        depths=(3, 4, 6, 3),
        low=TapSpec("conv3_block4_out", 512, 8),
        mid=TapSpec("conv4_block6_out", 1024, 16),
        high=TapSpec("conv5_block3_out", 2048, 32),
        preprocessing="caffe",
        application="ResNet50",
        imagenet_weights=True,
    ),
    "resnet101": BackboneSpec(
        name="resnet101",
        family="keras_applications",
        depths=(3, 4, 23, 3),
        low=TapSpec("conv3_block4_out", 512, 8),
        mid=TapSpec("conv4_block23_out", 1024, 16),
        high=TapSpec("conv5_block3_out", 2048, 32),
        preprocessing="caffe",
        application="ResNet101",
        imagenet_weights=True,
    ),
    "resnet152": BackboneSpec(
        name="resnet152",
        family="keras_applications",
        depths=(3, 8, 36, 3),
        low=TapSpec("conv3_block8_out", 512, 8),
        mid=TapSpec("conv4_block36_out", 1024, 16),
        high=TapSpec("conv5_block3_out", 2048, 32),
        preprocessing="caffe",
        application="ResNet152",
        imagenet_weights=True,
    ),
}

# Channels of the stem and of the stages conv2_x..conv5_x of a basic ResNet.
_BASIC_STEM_CHANNELS = 64
_BASIC_STAGE_CHANNELS = (64, 128, 256, 512)
# torchvision's BatchNorm defaults (eps 1e-5, torch momentum 0.1 = Keras 0.9)
# so converted torchvision weights give the same numbers.
_BN_EPSILON = 1e-5
_BN_MOMENTUM = 0.9
_MIN_CHANNELS = 8


def list_backbones() -> list[str]:
    """Returns the names accepted by `build_backbone`, sorted."""
    return sorted(BACKBONES)


def scaled_channels(channels: int, width: float) -> int:
    """Channels of a layer scaled by `width`: rounded half up, at least 8.

    >>> scaled_channels(64, 0.25), scaled_channels(64, 0.1), scaled_channels(512, 1.0)
    (16, 8, 512)
    """
    return max(_MIN_CHANNELS, int(math.floor(channels * width + 0.5)))


def tap_channels(name: str, width: float = 1.0) -> dict[str, int]:
    """Channels of each tap of backbone `name` at `width`.

    >>> tap_channels("resnet18", width=0.25)
    {'low': 32, 'mid': 64, 'high': 128}
    """
    spec = _get_spec(name)
    _check_width(spec, width)
    return {tap: scaled_channels(spec.tap(tap).channels, width) for tap in TAP_NAMES}


def build_backbone(
    name: str,
    *,
    width: float = 1.0,
    weights: str | None = None,
    taps: Sequence[str] = TAP_NAMES,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    model_name: str | None = None,
) -> keras.Model:
    """Builds a ResNet trunk returning `{tap: feature map}` for the requested taps.

    The model is truncated after the deepest requested tap: `taps=("low",)`
    holds no stage 3/4 layers (the paper's "independent" streams, each
    network cut at its tap).

    Args:
        name: str. One of `list_backbones()`.
        width: float. Channel multiplier for resnet18/34: every layer's
            channels become `max(8, round_half_up(channels * width))`, e.g.
            `width=0.25` gives stages of 16/32/64/128 channels. Must be 1.0
            for resnet50/101/152. Defaults to `1.0`.
        weights: str or None. `None` for random initialisation, or
            `"imagenet"` (resnet50/101/152 only; downloaded by
            `keras.applications` on first use). Defaults to `None`.
        taps: sequence of str. Subset of `("low", "mid", "high")`.
            Defaults to all three.
        input_shape: tuple `(height, width, channels)`. Spatial sizes are
            `None` (any size) or at least 32. Defaults to `(None, None, 3)`.
        model_name: str or None. Name of the returned model; defaults to
            `"<name>_<tap>_<tap>..."`, which stays unique when several
            truncated trunks live in one model.

    Returns:
        A functional `keras.Model` from preprocessed float images
        `(N, H, W, C)` to a dict `{tap: (N, ceil(H / stride), ceil(W / stride),
        channels)}` with only the requested taps.

    Example:

    >>> backbone = build_backbone("resnet18", width=0.125, taps=("low", "high"))
    >>> maps = backbone(keras.ops.zeros((1, 64, 64, 3)))
    >>> {tap: tuple(x.shape) for tap, x in maps.items()}
    {'low': (1, 8, 8, 16), 'high': (1, 2, 2, 64)}

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """
    spec = _get_spec(name)
    _check_width(spec, width)
    taps = _check_taps(taps)
    input_shape = _check_input_shape(input_shape)
    if weights is not None and not (weights == "imagenet" and spec.imagenet_weights):
        valid = [None, "imagenet"] if spec.imagenet_weights else [None]
        raise ValueError(
            f"`weights` for {name} must be one of {valid}; load other weights "
            "with `model.load_weights(path)` after building. "
            f"Received: weights={weights!r}"
        )
    deepest = max(TAP_NAMES.index(tap) for tap in taps)
    features = _BUILDERS[spec.family](spec, width, weights, input_shape, deepest)
    outputs = {tap: features.get_layer(spec.tap(tap).layer).output for tap in taps}
    return keras.Model(
        features.input, outputs, name=model_name or "_".join((name,) + taps)
    )


def _get_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise ValueError(
            f"Unknown backbone `name`; valid names are {list_backbones()}. "
            f"Received: name={name!r}"
        )
    return BACKBONES[name]


def _check_width(spec: BackboneSpec, width: float) -> None:
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        raise ValueError(f"`width` must be a positive number. Received: width={width!r}")
    if spec.family == "basic":
        if not (math.isfinite(width) and width > 0):
            raise ValueError(
                f"`width` must be a positive finite number. Received: width={width!r}"
            )
    elif width != 1.0:
        raise ValueError(
            f"`width` must be 1.0 for {spec.name} (keras.applications); only "
            f"{[n for n, s in BACKBONES.items() if s.family == 'basic']} take "
            f"another width. Received: width={width!r}"
        )


def _check_taps(taps: Sequence[str]) -> tuple[str, ...]:
    if isinstance(taps, str):
        taps = (taps,)
    taps = tuple(taps)
    unknown = [tap for tap in taps if tap not in TAP_NAMES]
    if not taps or unknown or len(set(taps)) != len(taps):
        raise ValueError(
            f"`taps` must be a non-empty subset of {TAP_NAMES} without repeats. "
            f"Received: taps={taps!r}"
        )
    return taps


def _check_input_shape(input_shape) -> tuple[int | None, int | None, int]:
    shape = tuple(input_shape)
    spatial_ok = all(s is None or (isinstance(s, int) and s >= MIN_IMAGE_SIZE) for s in shape[:2])
    if len(shape) != 3 or not spatial_ok or not isinstance(shape[2], int) or shape[2] < 1:
        raise ValueError(
            "`input_shape` must be (height, width, channels) with height and "
            f"width None or at least {MIN_IMAGE_SIZE}. Received: "
            f"input_shape={input_shape!r}"
        )
    return shape


def _build_application(spec, width, weights, input_shape, deepest) -> keras.Model:
    # The full net is built (so ImageNet weights load into it); build_backbone
    # keeps only the layers the requested taps depend on.
    del width, deepest
    application = getattr(keras.applications, spec.application)
    return application(include_top=False, weights=weights, input_shape=input_shape)


def _build_basic(spec, width, weights, input_shape, deepest) -> keras.Model:
    # torchvision's resnet18/34 with keras.applications' layer names.
    del weights
    inputs = keras.Input(shape=input_shape)
    x = _conv_bn(inputs, scaled_channels(_BASIC_STEM_CHANNELS, width), 7, 2, "conv1")
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    # conv2_x keeps stride 4; conv3_x..conv5_x (low, mid, high) halve it.
    num_stages = 2 + deepest
    for stage in range(num_stages):
        filters = scaled_channels(_BASIC_STAGE_CHANNELS[stage], width)
        for block in range(spec.depths[stage]):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, f"conv{stage + 2}_block{block + 1}")
    return keras.Model(inputs, x)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    # Explicit symmetric padding, as torchvision, rather than "same" (which
    # pads only bottom/right for stride 2 and even sizes).
    if kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}_bn"
    )(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _basic_block(x, filters: int, stride: int, name: str):
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_0", relu=False)
    else:
        shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "basic": _build_basic,
    "keras_applications": _build_application,
}
