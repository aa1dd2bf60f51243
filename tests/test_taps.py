import keras
import numpy as np
import pytest

from mrrn_keras.backbones import build_backbone, tap_channels
from mrrn_keras.layers.preprocessing import PREPROCESSING, FramePreprocessing
from mrrn_keras.layers.taps import FoldTime, UnfoldTime, tap_sequences
from tests.helpers import assert_config_round_trip, run_model_saving_test

WIDTH = 0.125
SHAPE = (2, 4, 32, 32, 3)


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("resnet18", width=WIDTH)


def _frames(shape=SHAPE, dtype="float32", seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype(dtype)


def _numpy(tree):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, tree)


def test_fold_unfold_round_trip_eager():
    frames = _frames((2, 3, 5, 6, 3))
    folded = FoldTime()(frames)
    assert tuple(folded.shape) == (6, 5, 6, 3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(folded)[4], frames[1, 1])
    unfolded = UnfoldTime()([folded, frames])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(unfolded), frames)


def test_fold_unfold_symbolic_unknown_dims():
    frames = keras.Input((None, None, None, 3))
    folded = FoldTime()(frames)
    assert folded.shape == (None, None, None, 3)
    vectors = keras.layers.GlobalAveragePooling2D()(folded)
    out = UnfoldTime()([vectors, frames])
    assert out.shape == (None, None, 3)
    model = keras.Model(frames, out)
    data = _frames((3, 2, 5, 7, 3))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(data)), data.mean(axis=(2, 3)), rtol=1e-5
    )


def test_fold_keeps_dtype_and_rank_argument():
    folded = FoldTime(rank=3)(np.zeros((2, 3, 4), "uint8"))
    assert tuple(folded.shape) == (6, 4) and folded.dtype == "uint8"
    assert FoldTime().compute_output_shape((2, 4, 8, 8, 3)) == (8, 8, 8, 3)
    assert FoldTime().compute_output_shape((None, 4, 8, 8, 3)) == (None, 8, 8, 3)


def test_fold_errors():
    with pytest.raises(ValueError, match=r"time step. Received: frames.shape=\(2, 0,"):
        FoldTime()(np.zeros((2, 0, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match=r"at least one time step"):
        FoldTime()(keras.Input((0, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"rank 5.*Received: frames.shape=\(2, 8, 8, 3\)"):
        FoldTime()(np.zeros((2, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="rank=1"):
        FoldTime(rank=1)


def test_unfold_errors():
    with pytest.raises(ValueError, match=r"x.shape=\(7, 3\)"):
        UnfoldTime()([np.zeros((7, 3), "float32"), np.zeros((2, 4, 1), "float32")])
    with pytest.raises(ValueError, match=r"\[x, reference\]"):
        UnfoldTime().compute_output_shape((8, 3))


@pytest.mark.parametrize("layer", [FoldTime(rank=4, name="fold"), UnfoldTime(name="unfold")])
def test_config_round_trip(layer):
    clone = assert_config_round_trip(layer)
    if isinstance(layer, FoldTime):
        assert clone.rank == 4


def test_tap_sequences_eager_shapes(backbone):
    sequences = tap_sequences(_frames(), backbone)
    channels = tap_channels("resnet18", width=WIDTH)
    assert {tap: tuple(x.shape) for tap, x in sequences.items()} == {
        tap: (2, 4, c) for tap, c in channels.items()
    }


def test_tap_sequences_sample_alone_equals_its_row(backbone):
    frames = _frames()
    batch = _numpy(tap_sequences(frames, backbone))
    for i in range(frames.shape[0]):
        alone = _numpy(tap_sequences(frames[i : i + 1], backbone))
        for tap in batch:
            np.testing.assert_allclose(alone[tap][0], batch[tap][i], rtol=1e-5, atol=1e-5)


def test_tap_sequences_pooling(backbone):
    frames = _frames((1, 2, 32, 32, 3))
    avg = _numpy(tap_sequences(frames, backbone, pooling="avg"))
    top = _numpy(tap_sequences(frames, backbone, pooling="max"))
    for tap in avg:
        assert np.all(top[tap] >= avg[tap] - 1e-6)
    with pytest.raises(ValueError, match="pooling='mean'"):
        tap_sequences(frames, backbone, pooling="mean")


def test_tap_sequences_needs_dict_backbone():
    images = keras.Input((None, None, 3))
    plain = keras.Model(images, keras.layers.Conv2D(4, 3)(images))
    with pytest.raises(ValueError, match="dict"):
        tap_sequences(_frames((1, 2, 32, 32, 3)), plain)


def _tap_model(backbone, time=None):
    frames = keras.Input((time, None, None, 3), dtype="uint8")
    x = FramePreprocessing(**PREPROCESSING["torch"])(frames)
    sequences = tap_sequences(x, backbone)
    pooled = [keras.layers.GlobalAveragePooling1D()(sequences[tap]) for tap in sorted(sequences)]
    logits = keras.layers.Dense(3)(keras.layers.Concatenate()(pooled))
    return keras.Model(frames, {"logits": logits, **sequences})


def test_tap_model_save_and_load(tmp_path):
    model = _tap_model(build_backbone("resnet18", width=WIDTH, taps=("low", "high")))
    assert sorted(model.output) == ["high", "logits", "low"]
    frames = _frames(dtype="uint8")
    reloaded = run_model_saving_test(model, frames, tmp_path)
    variable = _frames((1, 3, 40, 48, 3), dtype="uint8")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(variable)["high"]),
        keras.ops.convert_to_numpy(model(variable)["high"]),
        atol=1e-6,
    )


def test_tap_model_jit_compiled_train_step():
    model = _tap_model(build_backbone("resnet18", width=WIDTH, taps=("mid",)), time=4)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss={"logits": "mse"},
        jit_compile=True,
    )
    frames = _frames(dtype="uint8")
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    history = model.fit(frames, {"logits": np.ones((2, 3), "float32")}, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.multi_backend
def test_layer_anatomy(tmp_path):
    from tests.helpers import run_layer_test

    frames = _frames((2, 4, 8, 8, 3))
    run_layer_test(
        lambda **kw: FoldTime(**kw), frames, tmp_path,
        expected_output_shape=(8, 8, 8, 3), expected_weights=0,
    )
    vectors = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
    run_layer_test(
        lambda **kw: UnfoldTime(**kw), [vectors, frames], tmp_path,
        expected_output_shape=(2, 4, 16), expected_weights=0,
    )
