"""ResNet trunks that return named stage outputs ("taps") for MRRN.

Every backbone maps preprocessed float images `(N, H, W, 3)` to a dict
`{tap: feature map}`. The three taps read the same in every family:

    low   end of stage 2 (conv3_x), stride 8
    mid   end of stage 3 (conv4_x), stride 16
    high  end of stage 4 (conv5_x), stride 32

Each family's tap layer names, channels and strides are written once, in
`mrrn_keras.architecture.BACKBONES`. resnet18/34 (basic blocks) are built here as torchvision builds
them, with the layer naming scheme of `keras.applications`
(`conv3_block2_out`, ...); their ImageNet weights are torchvision's,
converted by `mrrn_keras.imagenet`. resnet50/101/152 (bottleneck blocks)
come from `keras.applications` so their ImageNet weights load for a user
with internet access.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import keras

from mrrn_keras.architecture import (
    BACKBONES,
    STAGE_CHANNELS,
    STEM_CHANNELS,
    TAP_NAMES,
    BackboneSpec,
    scaled_channels,
)
from mrrn_keras.imagenet import imagenet_weights_path, load_torchvision_resnet
from mrrn_keras.validation import MIN_IMAGE_SIZE

# torchvision's BatchNorm defaults (eps 1e-5, torch momentum 0.1 = Keras 0.9)
# so converted torchvision weights give the same numbers.
_BN_EPSILON = 1e-5
_BN_MOMENTUM = 0.9


def list_backbones() -> list[str]:
    """Returns the names accepted by `build_backbone`, sorted."""
    return sorted(BACKBONES)


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
        weights: str, path or None. `None` for random initialisation;
            `"imagenet"`: resnet18/34 get torchvision's ImageNet weights
            (fetched, verified and cached by `mrrn_keras.imagenet`; needs
            `width=1.0`), resnet50/101/152 those of `keras.applications`
            (downloaded by Keras on first use); or, for resnet18/34, the
            path of a `.safetensors` file holding a torchvision ResNet's
            `state_dict` (checked key by key, trusted as given). Defaults
            to `None`.
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

    Raises:
        ValueError: an unknown name, width, tap, input shape or `weights`.
        mrrn_keras.errors.WeightsError: ImageNet weights that cannot be
            fetched or do not fit (naming the file and the first bad key).

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
    _check_weights(spec, weights, width)
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


def _check_weights(spec: BackboneSpec, weights, width: float) -> None:
    if weights is None:
        return
    is_file = spec.family == "basic" and isinstance(weights, (str, os.PathLike)) and str(
        weights).endswith(".safetensors")
    if not (is_file or (weights == "imagenet" and spec.imagenet_weights)):
        valid = ["imagenet"] if spec.imagenet_weights else []
        if spec.family == "basic":
            valid.append("<path>.safetensors")
        raise ValueError(
            f"`weights` for {spec.name} must be None or one of {valid}; load other weights "
            "with `model.load_weights(path)` after building. "
            f"Received: weights={weights!r}"
        )
    if width != 1.0:
        raise ValueError(
            f"Pretrained weights fit {spec.name} at width 1.0 only; pass weights=None for "
            f"another width. Received: width={width!r}, weights={weights!r}"
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
    # `torch_names` maps each conv/BN layer to torchvision's module name, the
    # key its weights have in a torchvision state_dict.
    if weights is not None:
        # The whole net, so the whole file is checked; build_backbone keeps
        # only what the requested taps need.
        deepest = len(TAP_NAMES) - 1
    torch_names: dict[str, str] = {}
    inputs = keras.Input(shape=input_shape)
    x = _conv_bn(inputs, scaled_channels(STEM_CHANNELS, width), 7, 2, "conv1",
                 torch=("conv1", "bn1"), torch_names=torch_names)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    # conv2_x keeps stride 4; conv3_x..conv5_x (low, mid, high) halve it.
    num_stages = 2 + deepest
    for stage in range(num_stages):
        filters = scaled_channels(STAGE_CHANNELS[stage], width)
        for block in range(spec.depths[stage]):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, f"conv{stage + 2}_block{block + 1}",
                             f"layer{stage + 1}.{block}", torch_names)
    model = keras.Model(inputs, x)
    if weights is not None:
        path = imagenet_weights_path(spec.name) if weights == "imagenet" else weights
        load_torchvision_resnet(model, path, torch_names)
    return model


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True, *,
             torch: tuple[str, str], torch_names: dict[str, str]):
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
    torch_names[f"{name}_conv"], torch_names[f"{name}_bn"] = torch
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _basic_block(x, filters: int, stride: int, name: str, torch_block: str,
                 torch_names: dict[str, str]):
    # torchvision's BasicBlock: conv1/bn1, conv2/bn2, downsample = (conv, bn).
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_0", relu=False,
                            torch=(f"{torch_block}.downsample.0", f"{torch_block}.downsample.1"),
                            torch_names=torch_names)
    else:
        shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_1",
                 torch=(f"{torch_block}.conv1", f"{torch_block}.bn1"), torch_names=torch_names)
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False,
                 torch=(f"{torch_block}.conv2", f"{torch_block}.bn2"), torch_names=torch_names)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "basic": _build_basic,
    "keras_applications": _build_application,
}
