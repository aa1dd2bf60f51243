import keras
import numpy as np
import pytest

from mrrn_keras.backbones import (
    BACKBONES,
    TAP_NAMES,
    build_backbone,
    list_backbones,
    scaled_channels,
    tap_channels,
)
from tests.helpers import run_model_saving_test

SIZE = 64


def _maps(model, height=SIZE, width=SIZE):
    images = np.random.default_rng(0).normal(size=(1, height, width, 3)).astype("float32")
    return model(images)


def test_list_backbones():
    names = list_backbones()
    assert names == sorted(names) and set(names) == set(BACKBONES)
    for name in names:
        # Deeper taps have more channels.
        channels = tap_channels(name)
        assert channels["low"] < channels["mid"] < channels["high"]
    for name, spec in BACKBONES.items():
        assert spec.name == name
        assert [spec.tap(tap).stride for tap in TAP_NAMES] == [8, 16, 32]


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_basic_tap_shapes_and_strides(name):
    model = build_backbone(name, width=0.25)
    channels = tap_channels(name, width=0.25)
    assert channels == {"low": 32, "mid": 64, "high": 128}
    maps = _maps(model)
    assert sorted(maps) == sorted(TAP_NAMES)
    for tap, feature_map in maps.items():
        stride = BACKBONES[name].tap(tap).stride
        assert tuple(feature_map.shape) == (1, SIZE // stride, SIZE // stride, channels[tap])
        # The tap is the output of the stage layer its spec names.
        assert model.output[tap] is model.get_layer(BACKBONES[name].tap(tap).layer).output


def test_resnet50_tap_shapes_and_strides():
    model = build_backbone("resnet50", weights=None, input_shape=(SIZE, SIZE, 3))
    maps = _maps(model)
    assert {tap: tuple(x.shape) for tap, x in maps.items()} == {
        "low": (1, 8, 8, 512),
        "mid": (1, 4, 4, 1024),
        "high": (1, 2, 2, 2048),
    }
    assert tap_channels("resnet50") == {"low": 512, "mid": 1024, "high": 2048}


@pytest.mark.parametrize("name", ["resnet101", "resnet152"])
def test_deep_resnets_tap_names_and_channels(name):
    model = build_backbone(name, input_shape=(32, 32, 3))
    spec = BACKBONES[name]
    for tap, channels in tap_channels(name).items():
        layer = model.get_layer(spec.tap(tap).layer)
        assert model.output[tap] is layer.output
        assert layer.output.shape[-1] == channels
    assert spec.low.layer == ("conv3_block8_out" if name == "resnet152" else "conv3_block4_out")
    assert spec.mid.layer == ("conv4_block36_out" if name == "resnet152" else "conv4_block23_out")


def test_resnet18_matches_torchvision_parameter_count():
    model = build_backbone("resnet18")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    # torchvision resnet18 has 11,689,512 parameters, 513,000 of them in its fc head.
    assert trainable == 11_689_512 - 513_000


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_truncated_after_deepest_tap(name):
    width = 0.25 if name == "resnet18" else 1.0
    full = build_backbone(name, width=width)
    low = build_backbone(name, width=width, taps=("low",))
    assert list(low.output) == ["low"]
    assert len(low.layers) < len(full.layers)
    assert low.count_params() < full.count_params()
    assert not [layer.name for layer in low.layers if layer.name.startswith(("conv4", "conv5"))]
    mid = build_backbone(name, width=width, taps=("mid", "low"))
    assert sorted(mid.output) == ["low", "mid"]
    assert not [layer.name for layer in mid.layers if layer.name.startswith("conv5")]
    assert low.name == f"{name}_low" and mid.name == f"{name}_mid_low"


def test_truncated_keras_application_saves_and_loads(tmp_path):
    model = build_backbone("resnet50", taps=("low",), input_shape=(32, 32, 3))
    images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    reloaded = run_model_saving_test(model, images, tmp_path, atol=1e-5)
    assert len(reloaded.layers) == len(model.layers)


def test_input_size_32():
    maps = _maps(build_backbone("resnet18", width=0.125), 32, 32)
    assert {tap: tuple(x.shape) for tap, x in maps.items()} == {
        "low": (1, 4, 4, 16),
        "mid": (1, 2, 2, 32),
        "high": (1, 1, 1, 64),
    }


def test_variable_input_size():
    model = build_backbone("resnet18", width=0.125)
    assert model.input.shape == (None, None, None, 3)
    for height, width in [(32, 32), (48, 80), (33, 45)]:
        high = _maps(model, height, width)["high"]
        assert tuple(high.shape) == (1, -(-height // 32), -(-width // 32), 64)


def test_scaled_channels():
    assert [scaled_channels(c, 0.25) for c in (64, 128, 256, 512)] == [16, 32, 64, 128]
    assert [scaled_channels(c, 0.125) for c in (64, 128, 256, 512)] == [8, 16, 32, 64]
    assert scaled_channels(64, 0.01) == 8
    assert tap_channels("resnet34", width=0.5) == {"low": 64, "mid": 128, "high": 256}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="resnet19"), r"name=.resnet19.*|resnet18"),
        (dict(name="resnet18", taps=("low", "top")), r"taps=\('low', 'top'\)"),
        (dict(name="resnet18", taps=()), "taps=()"),
        (dict(name="resnet18", taps=("low", "low")), "taps="),
        (dict(name="resnet18", width=0), "width=0"),
        (dict(name="resnet18", width=-0.5), "width=-0.5"),
        (dict(name="resnet18", width=float("nan")), "width=nan"),
        (dict(name="resnet50", width=0.5), "width=0.5"),
        (dict(name="resnet18", weights="places"), "weights='places'"),
        (dict(name="resnet34", width=0.5, weights="imagenet"), "width=0.5, weights='imagenet'"),
        (dict(name="resnet50", weights="places"), "weights='places'"),
        (dict(name="resnet18", input_shape=(16, 16, 3)), r"input_shape=\(16, 16, 3\)"),
        (dict(name="resnet18", input_shape=(32, 32)), "input_shape="),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(kwargs.pop("name"), **kwargs)


def test_bad_arguments_list_valid_values():
    with pytest.raises(ValueError, match="resnet101.*resnet152.*resnet18.*resnet34.*resnet50"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="'low', 'mid', 'high'"):
        build_backbone("resnet18", taps=("top",))
    with pytest.raises(ValueError, match="name='vgg16'"):
        tap_channels("vgg16")
    with pytest.raises(ValueError, match="width=2.0"):
        tap_channels("resnet152", width=2.0)


def test_backbone_is_a_keras_model():
    model = build_backbone("resnet18", width=0.125, taps=("mid",), model_name="stream_mid")
    assert isinstance(model, keras.Model)
    assert model.name == "stream_mid"
