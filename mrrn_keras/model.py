"""MRRN: Multi-Level Recurrent Residual Networks for action recognition."""

from collections.abc import Sequence

import keras

from mrrn_keras.backbones import BACKBONES, TAP_NAMES, build_backbone
from mrrn_keras.layers.fusion import FUSIONS, StreamFusion
from mrrn_keras.layers.preprocessing import PREPROCESSING, FramePreprocessing
from mrrn_keras.layers.sru import IMPLEMENTATIONS, SRU
from mrrn_keras.layers.taps import SPATIAL_POOLINGS, tap_sequences
from mrrn_keras.layers.time_pooling import TIME_POOLINGS, TimePooling

BACKBONE_MODES = ("shared", "independent")
FUSED_OUTPUT = "probabilities"


def _choice(name, value, valid):
    if value not in valid:
        raise ValueError(
            f"`{name}` must be one of {tuple(valid)}. Received: {name}={value!r}"
        )


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="mrrn_keras")
class MRRN(keras.Model):
    """Multi-Level Recurrent Residual Network video classifier.

    A ResNet looks at every frame; its stage outputs `low` (conv3), `mid`
    (conv4) and `high` (conv5) are pooled over space into one vector per
    frame. Each tap's vectors run through stacked SRU layers, are pooled over
    time, pass dropout and a softmax head. The streams' probabilities are
    fused by a weighted average, which is the model's output.

    The model takes raw frames `(batch, time, height, width, 3)` (uint8, or
    float in [0, 255]) and preprocesses them itself, so an exported model
    takes raw frames too. `time` may vary from call to call.

    Args:
        num_classes: int. Number of classes.
        backbone: str. `"resnet18"`, `"resnet34"`, `"resnet50"`,
            `"resnet101"` or `"resnet152"`. Defaults to `"resnet34"` (the
            paper-proxy setting).
        streams: sequence of tap names, a subset of `("low", "mid", "high")`.
            Defaults to all three.
        backbone_width: float. Channel multiplier (resnet18/34 only).
            Defaults to `1.0`.
        backbone_weights: `None` or `"imagenet"` (resnet50/101/152; needs
            internet on first use). Only used while building: `get_config`
            stores `None`, since a saved model carries its own weights.
        backbone_mode: str. `"shared"`: one backbone pass feeds all taps (fast).
            `"independent"`: one backbone per stream, truncated at its tap
            (the paper's separately trained stream networks). Defaults to
            `"shared"`.
        sru_units: int. Width of every SRU. Defaults to `1024`.
        sru_layers: int. Stacked SRU layers per stream. `0` gives the
            order-blind twin: tap vectors pooled over time with no recurrence
            (with `time_pooling="mean"` it cannot tell a clip from its time
            reversal). Defaults to `3`.
        state_gates: bool. SRU gates read `c_{t-1}` (SRU 2018). Defaults to
            `False`, the 2017 form the paper used.
        sru_dropout: float. Dropout between SRU layers (on each SRU's input,
            one mask per sequence). Defaults to `0.0`.
        time_pooling: str. `"mean"`, `"max"` or `"last"`. Defaults to `"mean"`.
        tap_pooling: str. Spatial pooling of each tap, `"avg"` or `"max"`.
            Defaults to `"avg"`.
        dropout: float. Dropout before each head. Defaults to `0.5`.
        fusion: str. `"fixed"` or `"learned"`. Defaults to `"fixed"`.
        fusion_weights: sequence of positive floats, one per stream, or
            `None` for equal weights. Defaults to `None`.
        stream_outputs: bool. Return a dict `{"probabilities": fused, "low":
            ..., "mid": ..., "high": ...}` instead of the fused tensor, to give
            each stream its own loss. Defaults to `False`.
        class_names: optional sequence of `num_classes` label strings, kept
            with the model (prediction and export read them).
        image_size: optional `(height, width)` fixed at build time; `None`
            accepts any size of at least 32 px. Defaults to `None`.
        implementation: str. The SRUs' `implementation`. Defaults to `"auto"`.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    >>> import numpy as np
    >>> model = MRRN(5, backbone="resnet18", backbone_width=0.125,
    ...              sru_units=16, sru_layers=1)
    >>> frames = np.zeros((2, 4, 32, 32, 3), "uint8")
    >>> model.predict(frames, verbose=0).shape
    (2, 5)

    Reference:
        Zheng, An, Ruan. "Multi-Level Recurrent Residual Networks for Action
        Recognition". arXiv:1711.08238.
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
        _positive_int("num_classes", num_classes)
        _choice("backbone", backbone, BACKBONES)
        streams = tuple(streams)
        if not streams or len(set(streams)) != len(streams) or any(
            s not in TAP_NAMES for s in streams
        ):
            raise ValueError(
                f"`streams` must be distinct taps from {TAP_NAMES}. "
                f"Received: streams={streams!r}"
            )
        streams = tuple(s for s in TAP_NAMES if s in streams)
        _choice("backbone_mode", backbone_mode, BACKBONE_MODES)
        _positive_int("sru_units", sru_units)
        if not isinstance(sru_layers, int) or isinstance(sru_layers, bool) or sru_layers < 0:
            raise ValueError(
                f"`sru_layers` must be a non-negative integer. Received: sru_layers={sru_layers!r}"
            )
        _choice("time_pooling", time_pooling, TIME_POOLINGS)
        _choice("tap_pooling", tap_pooling, SPATIAL_POOLINGS)
        _choice("fusion", fusion, FUSIONS)
        _choice("implementation", implementation, IMPLEMENTATIONS)
        for name, rate in (("dropout", dropout), ("sru_dropout", sru_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={rate!r}")
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != num_classes:
                raise ValueError(
                    f"`class_names` must hold num_classes={num_classes} names. "
                    f"Received: {len(class_names)} class_names"
                )
        if image_size is not None:
            image_size = tuple(int(s) for s in image_size)
            if len(image_size) != 2 or min(image_size) < 32:
                raise ValueError(
                    "`image_size` must be (height, width), each at least 32. "
                    f"Received: image_size={image_size!r}"
                )
        height, width = image_size or (None, None)
        spec = BACKBONES[backbone]

        # === Functional graph ===
        frames = keras.Input((None, height, width, 3), name="frames")
        x = FramePreprocessing(**PREPROCESSING[spec.preprocessing], name="preprocessing")(
            frames
        )
        backbone_kwargs = dict(
            width=backbone_width, weights=backbone_weights, input_shape=(height, width, 3)
        )
        if backbone_mode == "shared":
            trunk = build_backbone(backbone, taps=streams, model_name="backbone", **backbone_kwargs)
            taps = tap_sequences(x, trunk, pooling=tap_pooling)
        else:
            taps = {}
            for stream in streams:
                trunk = build_backbone(
                    backbone, taps=(stream,), model_name=f"backbone_{stream}", **backbone_kwargs
                )
                taps.update(tap_sequences(x, trunk, pooling=tap_pooling))

        probabilities = {}
        for stream in streams:
            h = taps[stream]  # (B, T, C_tap)
            for i in range(sru_layers):
                h = SRU(
                    sru_units,
                    return_sequences=True,
                    state_gates=state_gates,
                    dropout=sru_dropout,
                    implementation=implementation,
                    name=f"{stream}_sru_{i}",
                )(h)
            h = TimePooling(time_pooling, name=f"{stream}_time_pooling")(h)  # (B, U)
            h = keras.layers.Dropout(dropout, name=f"{stream}_dropout")(h)
            probabilities[stream] = keras.layers.Dense(
                num_classes, activation="softmax", dtype="float32", name=f"{stream}_head"
            )(h)
        fused = StreamFusion(
            fusion,
            weights=fusion_weights,
            num_streams=len(streams),
            dtype="float32",
            name="fusion",
        )([probabilities[s] for s in streams])
        outputs = {FUSED_OUTPUT: fused, **probabilities} if stream_outputs else fused
        super().__init__(inputs=frames, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
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
        self.dropout = dropout
        self.fusion = fusion
        self.fusion_weights = (
            None if fusion_weights is None else tuple(float(w) for w in fusion_weights)
        )
        self.stream_outputs = stream_outputs
        self.class_names = None if class_names is None else tuple(class_names)
        self.image_size = image_size
        self.implementation = implementation

    @property
    def input_spec(self):
        # Inputs are validated in `call` with messages naming `frames`.
        return None

    @input_spec.setter
    def input_spec(self, value):
        del value

    def call(self, inputs, training=None, mask=None):
        frames = inputs["frames"] if isinstance(inputs, dict) else inputs
        shape = tuple(getattr(frames, "shape", ()))
        if len(shape) != 5:
            raise ValueError(
                "`frames` must have rank 5: (batch, time, height, width, 3). "
                f"Received: frames.shape={shape}"
            )
        if shape[1] == 0:
            raise ValueError(
                "`frames` must have at least one time step. "
                f"Received: frames.shape={shape}"
            )
        if shape[-1] not in (None, 3):
            raise ValueError(
                f"`frames` must have 3 (RGB) channels. Received: frames.shape={shape}"
            )
        for size in shape[2:4]:
            if size is not None and size < 32:
                raise ValueError(
                    f"`frames` must be at least 32x32 pixels. Received: frames.shape={shape}"
                )
        return super().call(inputs, training=training, mask=mask)

    def set_implementation(self, implementation: str) -> None:
        """Switches every SRU to `implementation` (`"xla"`, `"graph"`, ...).

        Args:
            implementation: one of `mrrn_keras.layers.sru.IMPLEMENTATIONS`.

        Raises:
            ValueError: for an unknown implementation.
        """
        _choice("implementation", implementation, IMPLEMENTATIONS)
        self.implementation = implementation
        for layer in self.sru_layers_by_stream().values():
            for sru in layer:
                sru.implementation = implementation

    def sru_layers_by_stream(self) -> dict[str, list[SRU]]:
        """Returns `{stream: [SRU, ...]}` in stacking order."""
        return {
            s: [self.get_layer(f"{s}_sru_{i}") for i in range(self.sru_layers)]
            for s in self.streams
        }

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
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
            "dropout": self.dropout,
            "fusion": self.fusion,
            "fusion_weights": (
                None if self.fusion_weights is None else list(self.fusion_weights)
            ),
            "stream_outputs": self.stream_outputs,
            "class_names": None if self.class_names is None else list(self.class_names),
            "image_size": None if self.image_size is None else list(self.image_size),
            "implementation": self.implementation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def copy_layer_weights(source, target, *, skip=()) -> list[str]:
    """Copies weights between two MRRNs layer by layer, matched by name.

    Layer order differs between models with different outputs (e.g.
    `stream_outputs`), so weights are matched by layer name, not position.

    Args:
        source: the model to copy from.
        target: the model to copy into.
        skip: layer names to leave untouched (e.g. the heads when the number
            of classes changes).

    Returns:
        The names of the layers whose weights were copied.

    Raises:
        ValueError: if a target layer with weights has no same-named source
            layer, or their weight shapes differ.
    """
    copied = []
    for layer in target.layers:
        if not layer.weights or layer.name in skip:
            continue
        try:
            source_layer = source.get_layer(layer.name)
        except ValueError:
            raise ValueError(
                f"Cannot copy weights: the source model has no layer named {layer.name!r}"
            ) from None
        layer.set_weights(source_layer.get_weights())
        copied.append(layer.name)
    return copied
