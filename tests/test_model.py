import keras
import numpy as np
import pytest

from mrrn_keras import MRRN
from tests.helpers import assert_config_round_trip, run_model_saving_test

TINY = dict(backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1)


def _frames(batch=2, steps=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, steps, size, size, 3)).astype("uint8")


def test_output_is_a_probability_distribution():
    model = MRRN(4, **TINY)
    probs = np.asarray(model(_frames()))
    assert probs.shape == (2, 4)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.multi_backend
def test_fused_output_is_weighted_average_of_streams():
    model = MRRN(3, fusion_weights=(1.0, 2.0, 1.0), stream_outputs=True, **TINY)
    out = model(_frames())
    want = (out["low"] + 2 * out["mid"] + out["high"]) / 4
    np.testing.assert_allclose(out["probabilities"], want, atol=1e-6)


def test_uint8_and_float_frames_agree():
    model = MRRN(3, **TINY)
    x = _frames()
    np.testing.assert_allclose(model(x), model(x.astype("float32")), atol=1e-6)


def test_variable_time_and_size_at_call_time():
    model = MRRN(3, **TINY)
    for steps, size in ((1, 32), (3, 48), (6, 40)):
        assert model(_frames(steps=steps, size=size)).shape == (2, 3)


def test_each_clip_alone_equals_its_row():
    model = MRRN(3, **TINY)
    x = _frames(batch=3)
    batched = np.asarray(model(x))
    for i in range(3):
        np.testing.assert_allclose(model(x[i : i + 1])[0], batched[i], atol=1e-5)


@pytest.mark.multi_backend
def test_time_order_matters():
    model = MRRN(3, time_pooling="last", **TINY)
    x = _frames(steps=5)
    assert not np.allclose(model(x), model(x[:, ::-1]), atol=1e-6)


@pytest.mark.parametrize("mode", ("shared", "independent"))
def test_backbone_modes_and_stream_subsets(mode):
    model = MRRN(3, streams=("mid", "low"), backbone_mode=mode, **TINY)
    assert model.streams == ("low", "mid")
    trunks = model.backbone.trunks
    if mode == "shared":
        assert len(trunks) == 1 and set(trunks[0].output) == {"low", "mid"}
    else:
        assert [set(t.output) for t in trunks] == [{"low"}, {"mid"}]
        # Each independent trunk is cut at its tap: the low trunk is smaller.
        assert trunks[0].count_params() < trunks[1].count_params()
    assert model(_frames()).shape == (2, 3)


def test_learned_fusion_starts_from_given_weights_and_trains():
    model = MRRN(3, fusion="learned", fusion_weights=(1, 1, 2), **TINY)
    fusion = model.stream_fusion
    np.testing.assert_allclose(fusion.stream_weights(), [0.25, 0.25, 0.5], atol=1e-6)
    assert any(w is fusion.logits for w in model.trainable_weights)


def test_fit_with_per_stream_losses():
    model = MRRN(3, stream_outputs=True, **TINY)
    x, y = _frames(batch=4), np.array([0, 1, 2, 1])
    keys = ["probabilities", "low", "mid", "high"]
    model.compile(optimizer="adam", loss={k: "sparse_categorical_crossentropy" for k in keys})
    heads = {s: np.asarray(model.heads[s].kernel) for s in model.streams}
    history = model.fit(x, {k: y for k in keys}, epochs=1, verbose=0).history
    # One loss per output, and each stream's head trained by its own.
    assert {f"{k}_loss" for k in keys} <= set(history)
    assert all(not np.allclose(model.heads[s].kernel, heads[s]) for s in model.streams)


@pytest.mark.multi_backend
def test_fit_under_jit_reduces_loss():
    model = MRRN(2, dropout=0.0, **TINY)
    x = _frames(batch=4)
    y = np.array([0, 1, 0, 1])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
    )
    losses = model.fit(x, y, epochs=8, batch_size=4, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


@pytest.mark.multi_backend
@pytest.mark.parametrize("mode", ("shared", "independent"))
def test_keras_round_trip_same_outputs(mode, tmp_path):
    model = MRRN(3, backbone_mode=mode, class_names=["a", "b", "c"], **TINY)
    restored = run_model_saving_test(model, _frames(), tmp_path)
    assert isinstance(restored, MRRN)
    assert restored.class_names == ("a", "b", "c")


def test_config_round_trip():
    model = MRRN(
        3, streams=("high",), time_pooling="max", fusion="learned", state_gates=True,
        sru_dropout=0.1, image_size=(48, 40), implementation="graph", **TINY,
    )
    assert_config_round_trip(model)


@pytest.mark.multi_backend
def test_set_implementation_keeps_outputs():
    model = MRRN(3, **TINY)
    x = _frames()
    want = np.asarray(model(x))
    model.set_implementation("graph")
    assert {s.implementation for v in model.backbone.sru_stacks.values() for s in v} == {"graph"}
    np.testing.assert_allclose(model(x), want, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"backbone": "vgg16"}, "backbone"),
        ({"streams": ("low", "top")}, "streams"),
        ({"time_pooling": "median"}, "time_pooling"),
        ({"fusion": "vote"}, "fusion"),
        ({"backbone_mode": "split"}, "backbone_mode"),
        ({"sru_units": 0}, "sru_units"),
        ({"fusion_weights": (1, -1, 1)}, "fusion_weights"),
        ({"sru_layers": -1}, "sru_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"class_names": ["a"]}, "class_names"),
        ({"image_size": (16, 16)}, "image_size"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {"num_classes": 3, **TINY, **kwargs}
    with pytest.raises(ValueError, match=name):
        MRRN(**args)


@pytest.mark.parametrize(
    "shape, what",
    [((2, 32, 32, 3), "rank 5"), ((2, 0, 32, 32, 3), "at least one time step"),
     ((2, 3, 32, 32, 1), "3 \\(RGB\\)"), ((2, 3, 16, 16, 3), "32x32")],
)
def test_bad_frames_name_the_argument(shape, what):
    model = MRRN(3, **TINY)
    with pytest.raises(ValueError, match=f"frames.*{what}|{what}.*frames"):
        model(np.zeros(shape, "uint8"))


# === The split: MRRNBackbone and MRRNVideoClassifier ===

BACKBONE_TINY = dict(backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=2)


@pytest.mark.multi_backend
def test_backbone_features_and_taps():
    from mrrn_keras import MRRNBackbone

    backbone = MRRNBackbone(streams=("low", "high"), **BACKBONE_TINY)
    features = backbone(_frames())
    assert {k: tuple(v.shape) for k, v in features.items()} == {"low": (2, 8), "high": (2, 8)}
    taps = keras.Model(backbone.inputs, backbone.tap_outputs)(_frames())
    # resnet18 x0.125: low 16 channels, high 64; one vector per frame.
    assert {k: tuple(v.shape) for k, v in taps.items()} == {"low": (2, 4, 16), "high": (2, 4, 64)}
    assert {k: len(v) for k, v in backbone.sru_stacks.items()} == {"low": 2, "high": 2}


@pytest.mark.multi_backend
def test_classifier_over_a_backbone_round_trips(tmp_path):
    from mrrn_keras import MRRNBackbone, MRRNVideoClassifier

    backbone = MRRNBackbone(**BACKBONE_TINY)
    model = MRRNVideoClassifier(backbone, 3, class_names=["a", "b", "c"], stream_outputs=True)
    assert model.backbone is backbone and set(model.heads) == {"low", "mid", "high"}
    restored = run_model_saving_test(model, _frames(), tmp_path)
    assert type(restored) is MRRNVideoClassifier and restored.class_names == ("a", "b", "c")
    assert restored.get_config() == model.get_config()


@pytest.mark.multi_backend
def test_with_heads_deploys_and_gives_new_heads():
    model = MRRN(3, stream_outputs=True, **TINY)
    x = _frames()
    deploy = model.with_heads(stream_outputs=False)
    assert deploy.backbone is model.backbone
    np.testing.assert_allclose(deploy(x), model(x)["probabilities"], atol=1e-6)
    tuned = model.with_heads(num_classes=5, class_names=list("vwxyz"))
    assert tuned(x)["low"].shape == (2, 5) and tuned.class_names == tuple("vwxyz")
    with pytest.raises(ValueError, match="with_heads"):
        model.with_heads(sru_units=4)


def test_config_keeps_dtype():
    model = MRRN(3, dtype="mixed_float16", **TINY)
    config = model.get_config()
    assert config["dtype"]["config"]["name"] == "mixed_float16"
    assert MRRN.from_config(config).dtype_policy.name == "mixed_float16"
