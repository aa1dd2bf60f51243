"""Tests for mrrn_keras/layers/time_pooling.py."""

import numpy as np
import pytest

from mrrn_keras.layers.time_pooling import TIME_POOLINGS, TimePooling
from tests.helpers import run_layer_test

pytestmark = pytest.mark.multi_backend

X = np.array([[[1.0, -2.0], [3.0, 0.0], [-1.0, 4.0]]], "float32")  # (1, 3, 2)


@pytest.mark.parametrize("mode", TIME_POOLINGS)
def test_layer_anatomy(mode, tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 5, 6)).astype("float32")
    run_layer_test(
        lambda **kw: TimePooling(mode, **kw), x, tmp_path,
        expected_output_shape=(4, 6), expected_weights=0,
    )


@pytest.mark.parametrize(
    "mode, expected", [("mean", [[1.0, 2.0 / 3.0]]), ("max", [[3.0, 4.0]]), ("last", [[-1.0, 4.0]])]
)
def test_each_mode_by_hand(mode, expected):
    np.testing.assert_allclose(np.asarray(TimePooling(mode)(X)), expected, atol=1e-6)


def test_bad_mode_names_the_argument():
    with pytest.raises(ValueError, match=r"`mode` must be one of .* Received: mode='median'"):
        TimePooling("median")
