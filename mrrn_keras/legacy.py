"""Reading weights written before the backbone/classifier split.

Keras' `.weights.h5` files (alone, or inside a `.keras` archive) store a
model's variables by the position of each layer in `model.layers`
(`layers/<layer class>_<i>/vars/<j>`, numbered per class). Before the split,
`MRRN` was one flat functional model, with the backbone's layers beside the
heads; now they sit one level down, in another order. `legacy_view` wires
a classifier's own layers (its preprocessing, ResNet trunks, SRUs, heads and
fusion) the way the flat model did, so Keras reads an old file into them by
the old positions. Nothing is matched by layer name.
"""

from __future__ import annotations

import os

import h5py
import keras

from mrrn_keras.layers.taps import tap_sequences
from mrrn_keras.layers.time_pooling import TimePooling
from mrrn_keras.model import FUSED_OUTPUT

# The backbone's group in a weights file of today's classifiers (Keras names
# it after the class).
BACKBONE_GROUP = "mrrn_backbone"


def is_legacy_weights(path: str | os.PathLike) -> bool:
    """Whether a `.weights.h5` file holds a classifier saved before the split.

    Args:
        path: the `.weights.h5` file.

    Returns:
        True if its top-level layers hold a fusion layer and no backbone.

    Raises:
        OSError: the file is not an HDF5 file.
    """
    with h5py.File(path, "r") as f:
        layers = f.get("layers")
        return layers is not None and "stream_fusion" in layers and BACKBONE_GROUP not in layers


def legacy_view(model) -> keras.Model:
    """A flat functional model over `model`'s layers, as `MRRN` was before the split.

    Its layers with weights are `model`'s own, so `legacy_view(model)
    .load_weights(old_file)` fills `model`. Layers without weights (time
    folding, pooling, dropout) are fresh: they only hold places.

    Args:
        model: an `MRRNVideoClassifier` built with the arguments of the
            model that wrote the file (`stream_outputs` included: it
            changes the old layer order).

    Returns:
        A `keras.Model` from frames to the old outputs.
    """
    backbone = model.backbone
    frames = keras.Input((None, *(backbone.image_size or (None, None)), 3))
    x = backbone.preprocessing(frames)
    taps = {}
    for trunk in backbone.trunks:
        taps.update(tap_sequences(x, trunk, pooling=backbone.tap_pooling))
    probabilities = {}
    for stream in backbone.streams:
        h = taps[stream]  # (B, T, C_tap)
        for sru in backbone.sru_stacks[stream]:
            h = sru(h)  # (B, T, U)
        h = TimePooling(backbone.time_pooling)(h)  # (B, U)
        h = keras.layers.Dropout(model.dropout)(h)
        probabilities[stream] = model.heads[stream](h)
    fused = model.stream_fusion([probabilities[s] for s in backbone.streams])
    outputs = {FUSED_OUTPUT: fused, **probabilities} if model.stream_outputs else fused
    return keras.Model(frames, outputs)
