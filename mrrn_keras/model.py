"""MRRN as keras-hub splits a model: `MRRNBackbone` (frames -> per-stream
features) and `MRRNVideoClassifier` (a backbone, a head per stream, fusion).

    frames (B, T, H, W, 3) uint8
      -> FramePreprocessing -> ResNet trunk(s) -> taps {low, mid, high}   layers/taps.py
      -> per stream: SRU x sru_layers -> TimePooling                      MRRNBackbone
      -> per stream: Dropout -> Dense softmax head                        MRRNVideoClassifier
      -> StreamFusion (weighted average)                                  layers/fusion.py

Other modules reach the parts through attributes (`backbone.tap_outputs`,
`backbone.sru_stacks`, `backbone.trunks`, `classifier.heads`,
`classifier.stream_fusion`), never through layer names. `MRRN` is the same
classifier built from one flat set of arguments: the form zoo entries store
and `.keras` files saved before the split hold.
"""

import math

import keras

from mrrn_keras.backbones import BACKBONES, TAP_NAMES, build_backbone
from mrrn_keras.layers.fusion import FUSIONS, StreamFusion
from mrrn_keras.layers.preprocessing import PREPROCESSING, FramePreprocessing
from mrrn_keras.layers.sru import IMPLEMENTATIONS, SRU
from mrrn_keras.layers.taps import SPATIAL_POOLINGS, tap_sequences
from mrrn_keras.layers.time_pooling import TIME_POOLINGS, TimePooling
from mrrn_keras.validation import (
    MIN_IMAGE_SIZE,
    check_choice,
    check_image_size,
    check_int,
)

BACKBONE_MODES = ("shared", "independent")
FUSED_OUTPUT = "probabilities"
# `get_config` keys every Keras model has; the rest are constructor arguments.
_BASE_CONFIG = ("name", "trainable", "dtype")


def _check_rate(name, rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={rate!r}")
    return float(rate)


def _check_frames(shape):
    if len(shape) != 5:
        raise ValueError(
            "`frames` must have rank 5: (batch, time, height, width, 3). "
            f"Received: frames.shape={shape}"
        )
    if shape[1] == 0:
        raise ValueError(
            f"`frames` must have at least one time step. Received: frames.shape={shape}"
        )
    if shape[-1] not in (None, 3):
        raise ValueError(f"`frames` must have 3 (RGB) channels. Received: frames.shape={shape}")
    if any(size is not None and size < MIN_IMAGE_SIZE for size in shape[2:4]):
        raise ValueError(
            f"`frames` must be at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels. "
            f"Received: frames.shape={shape}"
        )


def _base_config(model):
    return {
        "name": model.name,
        "trainable": model.trainable,
        "dtype": keras.saving.serialize_keras_object(model.dtype_policy),
    }


class _FramesModel(keras.Model):
    """A functional model over raw frames whose inputs are checked with messages naming `frames`."""

    @property
    def input_spec(self):
        # Inputs are checked in `call`, with messages naming `frames`.
        return None

    @input_spec.setter
    def input_spec(self, value):
        del value

    def _set_dtype(self, dtype):
        # `keras.Model(inputs, outputs, dtype=...)` ignores `dtype`: set it here
        # so that `get_config` returns what was given.
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    def call(self, inputs, training=None, mask=None):
        frames = inputs["frames"] if isinstance(inputs, dict) else inputs
        _check_frames(tuple(getattr(frames, "shape", ())))
        return super().call(inputs, training=training, mask=mask)


@keras.saving.register_keras_serializable(package="mrrn_keras")
class MRRNBackbone(_FramesModel):
    """The MRRN body: frames to one feature vector per stream.

    A ResNet looks at every frame; its stage outputs `low` (conv3), `mid`
    (conv4) and `high` (conv5) are pooled over space into one vector per
    frame (the tap sequences). Each tap's sequence runs through stacked SRU
    layers and is pooled over time. The model maps raw frames `(batch, time,
    height, width, 3)` (uint8, or float in [0, 255]; it preprocesses them
    itself) to a dict `{stream: (batch, sru_units)}` (the tap's channels
    when `sru_layers=0`). `time` may vary from call to call.

    Attributes:
        tap_outputs: dict `{stream: (batch, time, channels)}` of symbolic
            tap sequences, like keras-hub's `pyramid_outputs`:
            `keras.Model(backbone.inputs, backbone.tap_outputs)` computes them.
        sru_stacks: dict `{stream: [SRU, ...]}` in stacking order.
        trunks: list of the ResNet trunk models (one when shared, one per
            stream when independent).
        preprocessing: the `FramePreprocessing` layer.

    Args:
        backbone: str. The ResNet: `"resnet18"`, `"resnet34"`, `"resnet50"`,
            `"resnet101"` or `"resnet152"`. Defaults to `"resnet34"` (the
            paper-proxy setting).
        streams: sequence of tap names, a subset of `("low", "mid", "high")`,
            kept in that order. Defaults to all three.
        backbone_width: float. Channel multiplier (resnet18/34 only).
            Defaults to `1.0`.
        backbone_weights: `None`, `"imagenet"` (needs `backbone_width=1.0`
            and, on first use, access to the Hugging Face hub for resnet18/34
            (torchvision's weights, see `mrrn_keras.imagenet`) or to Keras'
            downloads for resnet50/101/152), or for resnet18/34 the path of a
            `.safetensors` file of a torchvision ResNet. Only used while
            building: `get_config` stores `None`, since a saved model carries
            its own weights.
        backbone_mode: str. `"shared"`: one ResNet pass feeds all taps (fast).
            `"independent"`: one ResNet per stream, truncated at its tap (the
            paper's separately trained stream networks). Defaults to
            `"shared"`.
        sru_units: int. Width of every SRU. Defaults to `1024`.
        sru_layers: int >= 0. Stacked SRU layers per stream. `0` gives the
            order-blind twin: tap vectors pooled over time with no recurrence
            (with `time_pooling="mean"` it cannot tell a clip from its time
            reversal). Defaults to `3`.
        state_gates: bool. SRU gates read `c_{t-1}` (SRU 2018). Defaults to
            `False`, the 2017 form the paper used.
        sru_dropout: float in [0, 1). Dropout on each SRU's input, one mask
            per sequence. Defaults to `0.0`.
        time_pooling: str. `"mean"`, `"max"` or `"last"`. Defaults to `"mean"`.
        tap_pooling: str. Spatial pooling of each tap, `"avg"` or `"max"`.
            Defaults to `"avg"`.
        image_size: optional `(height, width)` fixed at build time, each at
            least 32; `None` accepts any size of at least 32 px. Defaults to
            `None`.
        implementation: str. The SRUs' `implementation`. Defaults to `"auto"`.
        **kwargs: `keras.Model` arguments such as `name` and `dtype`.

    Raises:
        ValueError: for an invalid argument, naming it.

    Example:

    >>> import numpy as np
    >>> backbone = MRRNBackbone("resnet18", backbone_width=0.125, sru_units=16,
    ...                         sru_layers=1)
    >>> features = backbone.predict(np.zeros((2, 4, 32, 32, 3), "uint8"), verbose=0)
    >>> {stream: x.shape for stream, x in features.items()}
    {'low': (2, 16), 'mid': (2, 16), 'high': (2, 16)}
    >>> {stream: x.shape for stream, x in backbone.tap_outputs.items()}
    {'low': (None, None, 16), 'mid': (None, None, 32), 'high': (None, None, 64)}

    Reference:
        Zheng, An, Ruan. "Multi-Level Recurrent Residual Networks for Action
        Recognition". arXiv:1711.08238.
    """

    def __init__(
        self,
        backbone="resnet34",
        streams=TAP_NAMES,
        backbone_width=1.0,
        backbone_weights=None,
        backbone_mode="shared",
        sru_units=1024,
        sru_layers=3,
        state_gates=False,
        sru_dropout=0.0,
        time_pooling="mean",
        tap_pooling="avg",
        image_size=None,
        implementation="auto",
        **kwargs,
    ):
        check_choice("backbone", backbone, BACKBONES)
        streams = tuple(streams)
        if not streams or len(set(streams)) != len(streams) or any(
            s not in TAP_NAMES for s in streams
        ):
            raise ValueError(
                f"`streams` must be distinct taps from {TAP_NAMES}. Received: streams={streams!r}"
            )
        streams = tuple(s for s in TAP_NAMES if s in streams)
        check_choice("backbone_mode", backbone_mode, BACKBONE_MODES)
        sru_units = check_int("sru_units", sru_units)
        sru_layers = check_int("sru_layers", sru_layers, minimum=0)
        sru_dropout = _check_rate("sru_dropout", sru_dropout)
        check_choice("time_pooling", time_pooling, TIME_POOLINGS)
        check_choice("tap_pooling", tap_pooling, SPATIAL_POOLINGS)
        check_choice("implementation", implementation, IMPLEMENTATIONS)
        if image_size is not None:
            image_size = check_image_size("image_size", image_size)
        height, width = image_size or (None, None)
        spec = BACKBONES[backbone]

        # === Layers ===
        preprocessing = FramePreprocessing(
            **PREPROCESSING[spec.preprocessing], name="preprocessing"
        )
        trunk_kwargs = dict(
            width=backbone_width, weights=backbone_weights, input_shape=(height, width, 3)
        )
        if backbone_mode == "shared":
            trunks = [build_backbone(backbone, taps=streams, model_name="resnet", **trunk_kwargs)]
        else:
            trunks = [
                build_backbone(backbone, taps=(s,), model_name=f"resnet_{s}", **trunk_kwargs)
                for s in streams
            ]
        sru_stacks = {
            s: [
                SRU(
                    sru_units,
                    return_sequences=True,
                    state_gates=state_gates,
                    dropout=sru_dropout,
                    implementation=implementation,
                    name=f"{s}_sru_{i}",
                )
                for i in range(sru_layers)
            ]
            for s in streams
        }

        # === Functional graph ===
        frames = keras.Input((None, height, width, 3), name="frames")
        x = preprocessing(frames)
        taps = {}
        for trunk in trunks:
            taps.update(tap_sequences(x, trunk, pooling=tap_pooling))  # {tap: (B, T, C_tap)}
        features = {}
        for stream in streams:
            h = taps[stream]  # (B, T, C_tap)
            for sru in sru_stacks[stream]:
                h = sru(h)  # (B, T, U)
            features[stream] = TimePooling(time_pooling, name=f"{stream}_time_pooling")(h)
        dtype = kwargs.pop("dtype", None)
        super().__init__(inputs=frames, outputs=features, **kwargs)
        self._set_dtype(dtype)

        # === Config ===
        self.backbone = backbone
        self.streams = streams
        self.backbone_width = backbone_width
        self.backbone_mode = backbone_mode
        self.sru_units = sru_units
        self.sru_layers = sru_layers
        self.state_gates = state_gates
        self.sru_dropout = sru_dropout
        self.time_pooling = time_pooling
        self.tap_pooling = tap_pooling
        self.image_size = image_size
        self.implementation = implementation
        # === Parts ===
        self.preprocessing = preprocessing
        self.trunks = trunks
        self.sru_stacks = sru_stacks
        self.tap_outputs = {s: taps[s] for s in streams}

    def set_implementation(self, implementation: str) -> None:
        """Switches every SRU to `implementation` (`"xla"`, `"graph"`, ...).

        Args:
            implementation: one of `mrrn_keras.layers.sru.IMPLEMENTATIONS`.

        Raises:
            ValueError: for an unknown implementation.
        """
        check_choice("implementation", implementation, IMPLEMENTATIONS)
        self.implementation = implementation
        for stack in self.sru_stacks.values():
            for sru in stack:
                sru.implementation = implementation

    def get_config(self):
        return {
            **_base_config(self),
            "backbone": self.backbone,
            "streams": list(self.streams),
            "backbone_width": self.backbone_width,
            "backbone_weights": None,
            "backbone_mode": self.backbone_mode,
            "sru_units": self.sru_units,
            "sru_layers": self.sru_layers,
            "state_gates": self.state_gates,
            "sru_dropout": self.sru_dropout,
            "time_pooling": self.time_pooling,
            "tap_pooling": self.tap_pooling,
            "image_size": None if self.image_size is None else list(self.image_size),
            "implementation": self.implementation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, *, load_weights=True, **kwargs):
        """The backbone of a zoo variant, with its pretrained weights by default.

        Args:
            preset: a zoo variant name (`mrrn_keras.list_variants()`), entry
                folder, URL or `hf://owner/repo[@revision]` (see `load_mrrn`).
            load_weights: bool. Load the entry's weights. Defaults to `True`.
            **kwargs: backbone arguments to change, e.g. `implementation`.

        Returns:
            An `MRRNBackbone`.

        Raises:
            mrrn_keras.errors.ZooError: unknown variant or arguments.
            mrrn_keras.errors.WeightsError: weights missing or corrupt.

        Example:

        >>> backbone = MRRNBackbone.from_preset("mrrn_tiny.motion")
        >>> backbone.streams, backbone.sru_units
        (('low', 'mid', 'high'), 64)
        """
        # Imported here: the zoo builds models, so it imports this module.
        from mrrn_keras.zoo import load_mrrn

        return load_mrrn(
            preset, weights="pretrained" if load_weights else None, include_top=False, **kwargs
        )


@keras.saving.register_keras_serializable(package="mrrn_keras")
class MRRNVideoClassifier(_FramesModel):
    """An MRRN video classifier: a backbone, a softmax head per stream, fusion.

    Each stream's features pass dropout and a Dense softmax head; the
    streams' probabilities are fused by a weighted average, the model's
    output. The model takes raw frames `(batch, time, height, width, 3)`, as
    its backbone does, so an exported model takes raw frames too.

    Attributes:
        backbone: the `MRRNBackbone`.
        heads: dict `{stream: Dense}` of softmax heads.
        stream_fusion: the `StreamFusion` layer.

    Args:
        backbone: an `MRRNBackbone`.
        num_classes: int. Number of classes.
        dropout: float in [0, 1). Dropout before each head. Defaults to `0.5`.
        fusion: str. `"fixed"` or `"learned"`. Defaults to `"fixed"`.
        fusion_weights: sequence of positive floats, one per stream, or
            `None` for equal weights. Defaults to `None`.
        stream_outputs: bool. Return a dict `{"probabilities": fused, "low":
            ..., "mid": ..., "high": ...}` instead of the fused tensor, to give
            each stream its own loss. Defaults to `False`.
        class_names: optional sequence of `num_classes` label strings, kept
            with the model (prediction and export read them).
        **kwargs: `keras.Model` arguments such as `name` and `dtype`.

    Raises:
        ValueError: for an invalid argument, naming it.

    Example:

    >>> import numpy as np
    >>> backbone = MRRNBackbone("resnet18", backbone_width=0.125, sru_units=16,
    ...                         sru_layers=1)
    >>> model = MRRNVideoClassifier(backbone, 5)
    >>> model.predict(np.zeros((2, 4, 32, 32, 3), "uint8"), verbose=0).shape
    (2, 5)

    Reference:
        Zheng, An, Ruan. "Multi-Level Recurrent Residual Networks for Action
        Recognition". arXiv:1711.08238.
    """

    def __init__(
        self,
        backbone,
        num_classes,
        dropout=0.5,
        fusion="fixed",
        fusion_weights=None,
        stream_outputs=False,
        class_names=None,
        **kwargs,
    ):
        if not isinstance(backbone, MRRNBackbone):
            raise ValueError(
                "`backbone` must be an MRRNBackbone. "
                f"Received: backbone of type {type(backbone).__name__}"
            )
        num_classes = check_int("num_classes", num_classes)
        dropout = _check_rate("dropout", dropout)
        check_choice("fusion", fusion, FUSIONS)
        if fusion_weights is not None:
            fusion_weights = tuple(float(w) for w in fusion_weights)
            if len(fusion_weights) != len(backbone.streams) or not all(
                math.isfinite(w) and w > 0 for w in fusion_weights
            ):
                raise ValueError(
                    f"`fusion_weights` must hold {len(backbone.streams)} positive finite "
                    f"numbers, one per stream. Received: fusion_weights={fusion_weights!r}"
                )
        if class_names is not None:
            class_names = tuple(str(c) for c in class_names)
            if len(class_names) != num_classes:
                raise ValueError(
                    f"`class_names` must hold num_classes={num_classes} names. "
                    f"Received: {len(class_names)} class_names"
                )
        streams = backbone.streams

        # === Layers ===
        dropouts = {s: keras.layers.Dropout(dropout, name=f"{s}_dropout") for s in streams}
        heads = {
            s: keras.layers.Dense(
                num_classes, activation="softmax", dtype="float32", name=f"{s}_head"
            )
            for s in streams
        }
        stream_fusion = StreamFusion(
            fusion, fusion_weights=fusion_weights, num_streams=len(streams), dtype="float32",
            name="fusion",
        )

        # === Functional graph ===
        frames = backbone.input
        features = backbone(frames)  # {stream: (B, U)}
        probabilities = {s: heads[s](dropouts[s](features[s])) for s in streams}  # (B, K)
        fused = stream_fusion([probabilities[s] for s in streams])
        outputs = {FUSED_OUTPUT: fused, **probabilities} if stream_outputs else fused
        dtype = kwargs.pop("dtype", None)
        super().__init__(inputs=frames, outputs=outputs, **kwargs)
        self._set_dtype(dtype)

        # === Config ===
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = dropout
        self.fusion = fusion
        self.fusion_weights = fusion_weights
        self.stream_outputs = stream_outputs
        self.class_names = class_names
        # === Parts ===
        self.heads = heads
        self.stream_fusion = stream_fusion

    @property
    def streams(self) -> tuple[str, ...]:
        """The backbone's streams, in order."""
        return self.backbone.streams

    @property
    def image_size(self):
        """The backbone's fixed `(height, width)`, or None."""
        return self.backbone.image_size

    @property
    def implementation(self) -> str:
        """The SRUs' implementation."""
        return self.backbone.implementation

    def set_implementation(self, implementation: str) -> None:
        """Switches every SRU of the backbone to `implementation`; see `MRRNBackbone`."""
        self.backbone.set_implementation(implementation)

    def head_arguments(self) -> dict:
        """The arguments of this classifier other than `backbone` (and name, dtype)."""
        return {
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "fusion": self.fusion,
            "fusion_weights": None if self.fusion_weights is None else list(self.fusion_weights),
            "stream_outputs": self.stream_outputs,
            "class_names": None if self.class_names is None else list(self.class_names),
        }

    def mrrn_arguments(self) -> dict:
        """All arguments as one flat dict: those of `MRRN`, what a zoo entry stores."""
        backbone = self.backbone.get_config()
        return {
            **{k: v for k, v in backbone.items() if k not in _BASE_CONFIG},
            **self.head_arguments(),
        }

    def with_heads(self, backbone=None, **changes):
        """This classifier's heads, with `changes`, over `backbone` (default: this one's).

        Heads and fusion keep their weights when `num_classes` and the
        streams do not change; a new `num_classes` gives fresh heads (for
        fine-tuning) with `class_names` from `changes`, else None. The
        backbone is shared, not copied. `stream_outputs=False` gives the
        deploy model of a model trained with a loss per stream. The new
        model is built under the current dtype policy.

        Args:
            backbone: an `MRRNBackbone` with the same streams, or None.
            **changes: `MRRNVideoClassifier` arguments other than `backbone`.

        Returns:
            A new `MRRNVideoClassifier`.

        Raises:
            ValueError: for an unknown or invalid argument, or a backbone
                with other streams.
        """
        backbone = self.backbone if backbone is None else backbone
        arguments = self.head_arguments()
        unknown = sorted(set(changes) - set(arguments))
        if unknown:
            raise ValueError(
                f"`with_heads` takes {sorted(arguments)}. Received: {', '.join(unknown)}"
            )
        if getattr(backbone, "streams", None) != self.streams:
            raise ValueError(
                f"`backbone` must have the streams {self.streams}. "
                f"Received: backbone.streams={getattr(backbone, 'streams', None)!r}"
            )
        new_classes = changes.get("num_classes", self.num_classes) != self.num_classes
        if new_classes:
            arguments["class_names"] = None
        arguments.update(changes)
        model = MRRNVideoClassifier(backbone, **arguments, name=self.name)
        if not new_classes:
            for stream, head in model.heads.items():
                head.set_weights(self.heads[stream].get_weights())
            if arguments["fusion"] == self.fusion:
                model.stream_fusion.set_weights(self.stream_fusion.get_weights())
        return model

    def get_config(self):
        return {
            **_base_config(self),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            **self.head_arguments(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, *, num_classes=None, load_weights=True, **kwargs):
        """A zoo variant, with its pretrained weights by default; `load_mrrn` does the work.

        Args:
            preset: a zoo variant name (`mrrn_keras.list_variants()`), entry
                folder, URL or `hf://owner/repo[@revision]` (see `load_mrrn`).
            num_classes: int or None. A number of classes other than the
                entry's keeps the pretrained backbone and gives new heads;
                pass `class_names` to name them.
            load_weights: bool. Load the entry's weights. Defaults to `True`.
            **kwargs: other `MRRN` arguments, e.g. `stream_outputs`,
                `class_names`, `implementation`.

        Returns:
            An `MRRNVideoClassifier`.

        Raises:
            mrrn_keras.errors.ZooError: unknown variant or arguments.
            mrrn_keras.errors.WeightsError: weights missing or corrupt.

        Example:

        >>> model = MRRNVideoClassifier.from_preset(
        ...     "mrrn_tiny.motion", num_classes=2, class_names=["a", "b"])
        >>> model.class_names, model.output_shape
        (('a', 'b'), (None, 2))
        """
        from mrrn_keras.zoo import load_mrrn

        return load_mrrn(
            preset, weights="pretrained" if load_weights else None, num_classes=num_classes,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="mrrn_keras")
class MRRN(MRRNVideoClassifier):
    """`MRRNVideoClassifier` built from one flat set of arguments.

    The backbone is built from the `MRRNBackbone` arguments, the heads from
    the rest. `get_config` returns the same flat arguments: the `model`
    block of a zoo entry, and the form `.keras` files saved before the
    backbone/classifier split hold (they still load).

    Args:
        num_classes: int. Number of classes.
        backbone, streams, backbone_width, backbone_weights, backbone_mode,
            sru_units, sru_layers, state_gates, sru_dropout, time_pooling,
            tap_pooling, image_size, implementation: as in `MRRNBackbone`.
        dropout, fusion, fusion_weights, stream_outputs, class_names: as in
            `MRRNVideoClassifier`.
        **kwargs: `keras.Model` arguments such as `name` and `dtype`.

    Raises:
        ValueError: for an invalid argument, naming it.

    Example:

    >>> import numpy as np
    >>> model = MRRN(5, backbone="resnet18", backbone_width=0.125,
    ...              sru_units=16, sru_layers=1)
    >>> frames = np.zeros((2, 4, 32, 32, 3), "uint8")
    >>> model.predict(frames, verbose=0).shape
    (2, 5)
    """

    def __init__(
        self,
        num_classes,
        backbone="resnet34",
        streams=TAP_NAMES,
        backbone_width=1.0,
        backbone_weights=None,
        backbone_mode="shared",
        sru_units=1024,
        sru_layers=3,
        state_gates=False,
        sru_dropout=0.0,
        time_pooling="mean",
        tap_pooling="avg",
        dropout=0.5,
        fusion="fixed",
        fusion_weights=None,
        stream_outputs=False,
        class_names=None,
        image_size=None,
        implementation="auto",
        **kwargs,
    ):
        body = MRRNBackbone(
            backbone=backbone,
            streams=streams,
            backbone_width=backbone_width,
            backbone_weights=backbone_weights,
            backbone_mode=backbone_mode,
            sru_units=sru_units,
            sru_layers=sru_layers,
            state_gates=state_gates,
            sru_dropout=sru_dropout,
            time_pooling=time_pooling,
            tap_pooling=tap_pooling,
            image_size=image_size,
            implementation=implementation,
            dtype=kwargs.get("dtype"),
        )
        super().__init__(
            body,
            num_classes,
            dropout=dropout,
            fusion=fusion,
            fusion_weights=fusion_weights,
            stream_outputs=stream_outputs,
            class_names=class_names,
            **kwargs,
        )

    def get_config(self):
        return {**_base_config(self), **self.mrrn_arguments()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
