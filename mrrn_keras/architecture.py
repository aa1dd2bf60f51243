"""MRRN's architecture as numbers: the ResNet families' layout and the parameter count.

This module imports neither Keras nor NumPy, so a zoo entry is checked
against it before anything is built (`mrrn_keras.zoo`): an entry that
declares a model of a billion parameters costs a few microseconds to refuse,
not the memory to build it. `mrrn_keras.backbones` builds the trunks from
the same table, `BACKBONES`; each family's tap layer names, channels and
strides are written here once.

`mrrn_parameter_count` is the arithmetic of the layers `mrrn_keras.model`
builds (what `model.count_params()` returns, BatchNorm moving statistics
included): per convolution `k * k * in * out` (+ `out` biases in the
`keras.applications` ResNets) and `4 * out` for its BatchNorm; per SRU
`in * 3U` (+ `in * U` projection when `in != U`, + `2U` state gates) and
`2U` biases; per stream head `in * K + K`; `len(streams)` logits for a
learned fusion. tests/test_zoo.py holds it to `count_params()` for every
registered entry and a few random small models.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

TAP_NAMES = ("low", "mid", "high")
# Channels of the stem and of the stages conv2_x..conv5_x of a basic ResNet;
# the bottleneck stages end in 4x these (`_EXPANSION`).
STEM_CHANNELS = 64
STAGE_CHANNELS = (64, 128, 256, 512)
_EXPANSION = 4
_MIN_CHANNELS = 8
_RGB = 3


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
        family: str. `"basic"` (built by `mrrn_keras.backbones` from `depths`) or
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
        imagenet_weights: bool. Whether `weights="imagenet"` is available
            (`keras.applications`' weights, or torchvision's through
            `mrrn_keras.imagenet` for the `"basic"` family).
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
        imagenet_weights=True,
    ),
    "resnet34": BackboneSpec(
        name="resnet34",
        family="basic",
        depths=(3, 4, 6, 3),
        low=TapSpec("conv3_block4_out", 128, 8),
        mid=TapSpec("conv4_block6_out", 256, 16),
        high=TapSpec("conv5_block3_out", 512, 32),
        preprocessing="torch",
        imagenet_weights=True,
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



def scaled_channels(channels: int, width: float) -> int:
    """Channels of a layer scaled by `width`: rounded half up, at least 8.

    >>> scaled_channels(64, 0.25), scaled_channels(64, 0.1), scaled_channels(512, 1.0)
    (16, 8, 512)
    """
    return max(_MIN_CHANNELS, int(math.floor(channels * width + 0.5)))


def _conv_bn(cin: int, cout: int, kernel: int, *, bias: bool) -> int:
    """Parameters of a Conv2D (no groups) and the BatchNormalization after it."""
    return kernel * kernel * cin * cout + (cout if bias else 0) + 4 * cout


def trunk_parameter_count(name: str, width: float, deepest: str) -> int:
    """Parameters of backbone `name`'s trunk at `width`, cut after tap `deepest`.

    Args:
        name: str. A key of `BACKBONES`.
        width: float. The channel multiplier (1.0 for the bottleneck families).
        deepest: str. The deepest tap the trunk returns.

    Returns:
        The parameter count, BatchNorm statistics included.

    Example:

    torchvision's resnet18 without `fc` has 11,176,512 parameters; Keras
    also counts the 2 x 4,800 BatchNorm statistics torch keeps as buffers:

    >>> trunk_parameter_count("resnet18", 1.0, "high")
    11186112
    """
    spec = BACKBONES[name]
    stages = 2 + TAP_NAMES.index(deepest)  # conv2_x, then conv3_x (low) .. conv5_x (high)
    basic = spec.family == "basic"
    channels = scaled_channels(STEM_CHANNELS, width) if basic else STEM_CHANNELS
    count = _conv_bn(_RGB, channels, 7, bias=not basic)
    for stage in range(stages):
        filters = scaled_channels(STAGE_CHANNELS[stage], width) if basic else STAGE_CHANNELS[stage]
        for block in range(spec.depths[stage]):
            if basic:  # conv 3x3, conv 3x3; a 1x1 shortcut where stride or channels change
                if (stage > 0 and block == 0) or channels != filters:
                    count += _conv_bn(channels, filters, 1, bias=False)
                count += _conv_bn(channels, filters, 3, bias=False)
                count += _conv_bn(filters, filters, 3, bias=False)
                channels = filters
            else:  # conv 1x1, 3x3, 1x1 to 4x; the first block of a stage has a 1x1 shortcut
                out = _EXPANSION * filters
                if block == 0:
                    count += _conv_bn(channels, out, 1, bias=True)
                count += _conv_bn(channels, filters, 1, bias=True)
                count += _conv_bn(filters, filters, 3, bias=True)
                count += _conv_bn(filters, out, 1, bias=True)
                channels = out
    return count


def mrrn_parameter_count(model: Mapping) -> int:
    """The parameters of `MRRN(**model)`, from its arguments alone.

    Args:
        model: the MRRN arguments used here (`num_classes`, `backbone`,
            `streams`, `backbone_width`, `backbone_mode`, `sru_units`,
            `sru_layers`, `state_gates`, `fusion`), already checked (a
            known backbone and taps, a width it takes).

    Returns:
        What `count_params()` of the built model returns.

    Example:

    >>> mrrn_parameter_count({"num_classes": 9, "backbone": "resnet18",
    ...     "streams": ["low", "mid", "high"], "backbone_width": 0.25,
    ...     "backbone_mode": "shared", "sru_units": 64, "sru_layers": 2,
    ...     "state_gates": False, "fusion": "fixed"})  # zoo/mrrn_tiny.motion
    797131
    """
    spec = BACKBONES[model["backbone"]]
    width = model["backbone_width"]
    streams = [tap for tap in TAP_NAMES if tap in model["streams"]]
    if model["backbone_mode"] == "shared":
        count = trunk_parameter_count(spec.name, width, streams[-1])
    else:
        count = sum(trunk_parameter_count(spec.name, width, tap) for tap in streams)
    units = model["sru_units"]
    for tap in streams:
        features = scaled_channels(spec.tap(tap).channels, width)
        for _ in range(model["sru_layers"]):
            count += features * 3 * units + (features * units if features != units else 0)
            count += (2 * units if model["state_gates"] else 0) + 2 * units
            features = units
        count += features * model["num_classes"] + model["num_classes"]
    return count + (len(streams) if model["fusion"] == "learned" else 0)
