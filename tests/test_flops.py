import keras
import pytest
import tensorflow as tf

from mrrn_keras import MRRN, SRU
from mrrn_keras.flops import count_multiply_adds


def test_hand_counted_small_case():
    frames = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(frames)  # (5, 5, 4)
    x = keras.layers.Conv2D(6, 1, groups=2)(x)  # (5, 5, 6)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5)(x)
    images = keras.Model(frames, x)
    assert count_multiply_adds(images, (2, 10, 10, 3)) == {
        "Conv2D": 2 * (5 * 5 * 4 * 3 * 3 * 3 + 5 * 5 * 6 * 1 * 1 * 2),
        "Dense": 2 * 6 * 5,
        "total": 2 * (2700 + 300 + 30),
    }
    steps = keras.Input((7, 6))
    h = SRU(4, return_sequences=True)(steps)  # projection: 6 != 4
    h = SRU(4, return_sequences=True)(h)
    h = keras.layers.LSTM(3, return_sequences=True)(h)
    h = keras.layers.GRU(2)(h)
    sequences = keras.Model(steps, h)
    counts = count_multiply_adds(sequences, (2, 7, 6))
    assert counts == {
        "SRU": 2 * 7 * (6 * 16 + 4 * 12),
        "LSTM": 2 * 7 * (4 + 3) * 12,
        "GRU": 2 * 7 * (3 + 2) * 6,
        "total": 2 * 7 * (96 + 48 + 84 + 30),
    }


def _profiler_float_ops(model, shape):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec(shape))
    graph = convert_variables_to_constants_v2(fn).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def test_matches_tf_profiler_on_convs_and_matmuls():
    # Bias-free convs and dense layers only: the profiler then counts exactly
    # the multiply-adds (2 FLOPs each) that the analytic counter counts.
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="valid", use_bias=False)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10, use_bias=False)(x)
    model = keras.Model(inputs, x)
    shape = (3, 12, 12, 3)
    assert _profiler_float_ops(model, shape) == 2 * count_multiply_adds(model, shape)["total"]


def test_mrrn_counts_backbone_srus_and_heads():
    model = MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=2)
    counts = count_multiply_adds(model, (2, 4, 32, 32, 3))
    assert counts["Conv2D"] > 0 and counts["Dense"] == 2 * 3 * 8 * 3
    # low/mid/high taps of width 0.125: 16, 32, 64 channels; the first SRU of
    # each stream projects, the second does not.
    want_sru = sum(2 * 4 * (d * 32 + 8 * 24) for d in (16, 32, 64))
    assert counts["SRU"] == want_sru


def test_unknown_shape_raises():
    model = MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1)
    with pytest.raises(ValueError, match="unknown dimensions"):
        count_multiply_adds(model, (None, 4, 32, 32, 3))
