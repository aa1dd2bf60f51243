import keras
import numpy as np
import pytest

from mrrn_keras.layers.preprocessing import PREPROCESSING, FramePreprocessing
from tests.helpers import assert_config_round_trip, run_model_saving_test


def _numpy_reference(frames, mean, std, channel_order):
    x = frames.astype("float64")
    if channel_order == "bgr":
        x = x[..., ::-1]
    return (x - np.asarray(mean)) / np.asarray(std)


@pytest.mark.parametrize("preset", sorted(PREPROCESSING))
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("shape", [(2, 4, 5, 6, 3), (7, 3)])
def test_matches_numpy(preset, dtype, shape):
    frames = np.random.default_rng(0).integers(0, 256, size=shape).astype(dtype)
    layer = FramePreprocessing(**PREPROCESSING[preset])
    out = layer(frames)
    assert out.dtype == "float32"
    assert tuple(out.shape) == shape
    expected = _numpy_reference(frames, **PREPROCESSING[preset])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, rtol=1e-6, atol=1e-4)


def test_caffe_matches_keras_applications():
    frames = np.random.default_rng(1).uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    expected = keras.applications.resnet.preprocess_input(frames.copy())
    out = FramePreprocessing(**PREPROCESSING["caffe"])(frames)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, atol=1e-4)


def test_symbolic_uint8_input():
    frames = keras.Input((None, None, None, 3), dtype="uint8")
    out = FramePreprocessing(**PREPROCESSING["torch"])(frames)
    assert out.shape == (None, None, None, None, 3)
    assert out.dtype == "float32"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mean=(0, 0, 0), std=(1, 0, 1)), "std="),
        (dict(mean=(0, 0, 0), std=(1, 1)), "std="),
        (dict(mean=(), std=()), "mean="),
        (dict(mean=(0, float("nan"), 0), std=(1, 1, 1)), "mean="),
        (dict(mean=(0, 0, 0), std=(1, 1, 1), channel_order="rbg"), "channel_order='rbg'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FramePreprocessing(**kwargs)


def test_channel_mismatch():
    layer = FramePreprocessing(**PREPROCESSING["torch"])
    with pytest.raises(ValueError, match=r"inputs.shape=\(2, 4\)"):
        layer(np.zeros((2, 4), "uint8"))


@pytest.mark.parametrize("preset", sorted(PREPROCESSING))
def test_config_round_trip(preset):
    layer = FramePreprocessing(**PREPROCESSING[preset], name="pre")
    clone = assert_config_round_trip(layer)
    for name in ("mean", "std", "channel_order"):
        assert getattr(clone, name) == getattr(layer, name)


def test_save_and_load(tmp_path):
    frames = keras.Input((None, 8, 8, 3), dtype="uint8")
    model = keras.Model(frames, FramePreprocessing(**PREPROCESSING["caffe"])(frames))
    data = np.random.default_rng(2).integers(0, 256, size=(2, 3, 8, 8, 3)).astype("uint8")
    run_model_saving_test(model, data, tmp_path)


@pytest.mark.multi_backend
def test_layer_anatomy(tmp_path):
    from tests.helpers import run_layer_test

    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 8, 8, 3)).astype("uint8")
    run_layer_test(
        lambda **kw: FramePreprocessing(**PREPROCESSING["torch"], **kw), frames, tmp_path,
        expected_output_shape=(2, 4, 8, 8, 3), expected_weights=0,
    )
