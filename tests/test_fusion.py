"""Tests for mrrn_keras/layers/fusion.py."""

import numpy as np
import pytest

from mrrn_keras.layers.fusion import StreamFusion
from tests.helpers import run_layer_test

pytestmark = pytest.mark.multi_backend


def _streams(num=3, batch=4, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(num, batch, classes))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return [p.astype("float32") for p in probs]


@pytest.mark.parametrize("fusion, weights", [("fixed", 0), ("learned", 1)])
def test_layer_anatomy(fusion, weights, tmp_path):
    run_layer_test(
        lambda **kw: StreamFusion(fusion, fusion_weights=(1.0, 2.0, 1.0), **kw),
        _streams(), tmp_path, expected_output_shape=(4, 5), expected_weights=weights,
        targets=_streams(1)[0],
    )


def test_fixed_fusion_is_the_weighted_average():
    a, b, c = _streams()
    out = np.asarray(StreamFusion(fusion_weights=(1.0, 2.0, 1.0))([a, b, c]))
    np.testing.assert_allclose(out, (a + 2 * b + c) / 4, atol=1e-6)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_stream_weights_before_and_after_build():
    layer = StreamFusion("learned", fusion_weights=(1.0, 1.0, 2.0))
    np.testing.assert_allclose(layer.stream_weights(), [0.25, 0.25, 0.5], atol=1e-6)
    layer(_streams())
    np.testing.assert_allclose(layer.stream_weights(), [0.25, 0.25, 0.5], atol=1e-6)
    assert layer.trainable_weights == [layer.logits]


def test_config_keeps_fusion_weights_under_their_name():
    config = StreamFusion("learned", fusion_weights=(1.0, 3.0)).get_config()
    assert config["fusion_weights"] == [1.0, 3.0] and config["num_streams"] == 2


@pytest.mark.parametrize(
    "kwargs, name",
    [({"fusion": "vote"}, "fusion"), ({"num_streams": 0}, "num_streams"),
     ({"fusion_weights": (1.0, -1.0)}, "fusion_weights"),
     ({"fusion_weights": (1.0, 1.0), "num_streams": 3}, "fusion_weights")],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`.*Received: {name}="):
        StreamFusion(**kwargs)


def test_wrong_number_of_streams():
    with pytest.raises(ValueError, match="expects 3 stream inputs"):
        StreamFusion(num_streams=3)(_streams(2))
