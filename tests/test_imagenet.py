"""Tests for mrrn_keras/imagenet.py: torchvision's ImageNet resnet18/34 weights, read without torch,
converted, checked against torchvision's own outputs, fetched from a stand-in hub."""

import dataclasses
import hashlib
import importlib.util
import json
import logging
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from mrrn_keras import imagenet
from mrrn_keras.architecture import mrrn_parameter_count
from mrrn_keras.backbones import build_backbone
from mrrn_keras.download import weights_cache_path
from mrrn_keras.errors import WeightsError, ZooError
from mrrn_keras.imagenet import IMAGENET_WEIGHTS, read_safetensors
from mrrn_keras.layers.preprocessing import PREPROCESSING, FramePreprocessing
from mrrn_keras.zoo import load_mrrn, variant_info
from tests.fixtures import make_torchvision_reference as reference
from tests.test_zoo import home, server  # noqa: F401  (fixtures)

ATOL = 1e-4
REPO = pathlib.Path(__file__).resolve().parent.parent
ARCHS = ("resnet18", "resnet34")


def keras_outputs(backbone, images, fc_weight, fc_bias):
    """Taps of `backbone` on uint8 images (preprocessed as the model does) and ImageNet logits."""
    x = FramePreprocessing(**PREPROCESSING["torch"])(images)
    outputs = {tap: np.asarray(value) for tap, value in backbone(x).items()}
    # torchvision's head: global average pooling, then fc.
    outputs["logits"] = outputs["high"].mean(axis=(1, 2)) @ fc_weight.T + fc_bias
    return outputs


def assert_matches(outputs, expected, names=("low", "mid", "high", "logits")):
    for name in names:
        assert outputs[name].shape == expected[name].shape, name
        np.testing.assert_allclose(outputs[name], expected[name], rtol=0, atol=ATOL, err_msg=name)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """torchvision's resnet18 layout with seeded weights, written as safetensors."""
    path = tmp_path_factory.mktemp("imagenet") / "model.safetensors"
    save_file(reference.random_state("resnet18"), str(path))
    return path


@pytest.fixture
def hub(server, home, monkeypatch, resnet18_file):  # noqa: F811
    """The test server standing in for the hub (HF_ENDPOINT), serving `resnet18_file` at the
    pinned revision, with the registry's sha256 swapped for that file's."""
    data = resnet18_file.read_bytes()
    spec = dataclasses.replace(
        IMAGENET_WEIGHTS["resnet18"], sha256=hashlib.sha256(data).hexdigest()
    )
    monkeypatch.setitem(IMAGENET_WEIGHTS, "resnet18", spec)
    monkeypatch.setenv("HF_ENDPOINT", server.url + "/")
    monkeypatch.delenv("MRRN_IMAGENET_RESNET18", raising=False)
    path = f"/{spec.repo}/resolve/{spec.revision}/{spec.file}"
    server.files[path] = data
    return server, path, spec


# === Conversion ===


@pytest.mark.multi_backend
@pytest.mark.parametrize("arch", ARCHS)
def test_conversion_matches_torchvision_reference(arch, tmp_path):
    # tests/fixtures/torchvision_reference.npz holds torchvision's outputs for these weights.
    stored = np.load(reference.OUTPUT)
    state = reference.random_state(arch)
    assert reference.state_sha256(state) == str(stored[f"{arch}/weights_sha256"]), (
        "random_state no longer draws the weights the reference was made with")
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    backbone = build_backbone(arch, weights=path)
    outputs = keras_outputs(backbone, stored["images"], state["fc.weight"], state["fc.bias"])
    assert_matches(outputs, {k: stored[f"{arch}/{k}"] for k in ("low", "mid", "high", "logits")})


@pytest.mark.parametrize("arch", ARCHS)
def test_conversion_matches_torchvision_live(arch, tmp_path):
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (pip install -e '.[torch]')")
    # torchvision runs in a child process: torch beside TensorFlow crashes.
    subprocess.run(
        [sys.executable, "-m", "tests.fixtures.make_torchvision_reference", "--live", arch,
         str(tmp_path)], check=True, cwd=REPO, capture_output=True, timeout=300,
    )
    expected = dict(np.load(tmp_path / "outputs.npz"))
    path = tmp_path / "model.safetensors"
    fc = read_safetensors(path)
    assert fc["bn1.num_batches_tracked"].dtype == np.int64  # torch's counter, skipped on load
    outputs = keras_outputs(build_backbone(arch, weights=path), expected["images"],
                            fc["fc.weight"], fc["fc.bias"])
    assert_matches(outputs, expected)


def test_truncated_backbones_get_the_same_weights(resnet18_file):
    full = build_backbone("resnet18", weights=resnet18_file)
    low = build_backbone("resnet18", weights=resnet18_file, taps=("low",))
    assert [layer.name for layer in low.layers if layer.name.startswith("conv4")] == []
    images = reference.reference_images()
    x = FramePreprocessing(**PREPROCESSING["torch"])(images)
    np.testing.assert_array_equal(np.asarray(low(x)["low"]), np.asarray(full(x)["low"]))


def test_every_weight_of_the_backbone_comes_from_the_file(resnet18_file):
    backbone = build_backbone("resnet18", weights=resnet18_file)
    state = read_safetensors(resnet18_file)
    loaded = sorted(np.round(float(np.abs(w).sum()), 2) for w in backbone.get_weights())
    stored = sorted(np.round(float(np.abs(v).sum()), 2) for k, v in state.items()
                    if not k.startswith("fc."))
    assert loaded == stored
    kernel = backbone.get_layer("conv3_block1_0_conv").get_weights()[0]
    np.testing.assert_array_equal(
        kernel, state["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0))


def test_torchvision_normalisation():
    # torchvision: ToTensor (x / 255) then Normalize(mean, std).
    x = np.array([0.0, 127.0, 255.0])[:, None] * np.ones(3)
    torch_style = (x / 255.0 - np.array(reference.MEAN)) / np.array(reference.STD)
    layer = FramePreprocessing(**PREPROCESSING["torch"])
    np.testing.assert_allclose(np.asarray(layer(x.astype("float32"))), torch_style, atol=1e-5)
    assert PREPROCESSING["torch"]["channel_order"] == "rgb"


# === Refusals ===


def _mutated(tmp_path, change):
    state = reference.random_state("resnet18")
    change(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("layer3.1.bn2.running_var"), "missing key `layer3.1.bn2.running_var`"),
    (lambda s: s.update({"conv1.weight": np.zeros((64, 3, 3, 3), "float32")}),
     r"key `conv1.weight` has shape \(64, 3, 3, 3\), expected \(64, 3, 7, 7\)"),
    (lambda s: s.update({"head.weight": np.zeros(2, "float32")}), "unexpected key `head.weight`"),
    (lambda s: s.update({"fc.weight": np.zeros((10, 512), "float32")}),
     r"key `fc.weight` has shape \(10, 512\), expected \(1000, 512\)"),
    (lambda s: s.update({"bn1.weight": np.ones(64, "int32")}), "holds int32"),
])
def test_a_file_that_does_not_fit_is_refused_in_one_line(tmp_path, change, message):
    path = _mutated(tmp_path, change)
    with pytest.raises(WeightsError, match=message) as err:
        build_backbone("resnet18", weights=path)
    assert str(err.value).startswith(f"{path} does not hold this torchvision ResNet: ")
    assert "\n" not in str(err.value)


def test_resnet34_weights_do_not_fit_resnet18(tmp_path):
    path = tmp_path / "r34.safetensors"
    save_file(reference.random_state("resnet34"), str(path))
    with pytest.raises(WeightsError, match="unexpected key `layer1.2.bn1.bias`"):
        build_backbone("resnet18", weights=path)


def _safetensors_bytes(header, data=b""):
    blob = json.dumps(header).encode()
    return len(blob).to_bytes(8, "little") + blob + data


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("content, message", [
    (b"\x01\x02", "shorter than the 8-byte header length"),
    ((10**6).to_bytes(8, "little") + b"{}", "header length 1000000 exceeds the file"),
    ((4).to_bytes(8, "little") + b"nope", "header: not valid JSON"),
    (_safetensors_bytes([1, 2]), "not a JSON object"),
    (_safetensors_bytes({"w": {**F32, "dtype": "Q7"}}, bytes(8)), "dtype 'Q7'"),
    (_safetensors_bytes({"w": {**F32, "shape": [3]}}, bytes(8)), "holds 8 bytes, not those of shape"),
    (_safetensors_bytes({"w": {**F32, "data_offsets": [0, -8]}}, bytes(8)), "malformed shape"),
    (_safetensors_bytes({"w": F32}, bytes(4)), "tensors hold 8 bytes but the data has 4"),
    (_safetensors_bytes({"w": F32, "v": F32}, bytes(16)), "starts at byte 0, expected 8"),
    (_safetensors_bytes({"w": {**F32, "extra": 1}}, bytes(8)), "is not {dtype, shape"),
])
def test_malformed_safetensors_files_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message) as err:
        read_safetensors(path)
    assert str(err.value).startswith(f"{path}: not a safetensors file: ")
    assert "\n" not in str(err.value)


def test_reader_agrees_with_the_safetensors_package(tmp_path):
    arrays = {"a": np.arange(6, dtype="float32").reshape(2, 3), "b": np.array([7], "int64"),
              "c": np.zeros((0, 4), "float16"), "d": np.array([True, False])}
    path = tmp_path / "x.safetensors"
    save_file(arrays, str(path), metadata={"format": "np"})
    got = read_safetensors(path)
    assert sorted(got) == sorted(arrays)
    for key, value in arrays.items():
        assert got[key].dtype == value.dtype
        np.testing.assert_array_equal(got[key], value)


def test_pretrained_weights_need_full_width():
    with pytest.raises(ValueError, match="width 1.0 only.*Received: width=0.5"):
        build_backbone("resnet18", width=0.5, weights="imagenet")
    with pytest.raises(ValueError, match=r"\['imagenet', '<path>.safetensors'\]"):
        build_backbone("resnet34", weights="model.weights.h5")


# === Fetching ===


def test_imagenet_download_then_cache_then_offline(hub, home, monkeypatch, resnet18_file):
    server, path, spec = hub
    first = build_backbone("resnet18", weights="imagenet", taps=("high",))
    assert server.counts[path] == 1
    target = weights_cache_path(spec.sha256, spec.cache_name)
    assert target.read_bytes() == resnet18_file.read_bytes()
    expected = build_backbone("resnet18", weights=resnet18_file, taps=("high",))
    for a, b in zip(first.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(a, b)
    build_backbone("resnet18", weights="imagenet")  # from the cache
    monkeypatch.setenv("MRRN_OFFLINE", "1")
    build_backbone("resnet18", weights="imagenet")  # offline, from the cache
    assert server.counts[path] == 1
    target.unlink()
    with pytest.raises(WeightsError, match="not in the cache and MRRN_OFFLINE is set") as err:
        build_backbone("resnet18", weights="imagenet")
    assert str(target) in str(err.value) and "\n" not in str(err.value)
    assert server.counts[path] == 1


def test_a_wrong_or_oversized_download_is_refused(hub, home, monkeypatch):
    server, path, spec = hub
    server.files[path] = b"x" * 1000
    with pytest.raises(WeightsError, match="does not match its checksum") as err:
        build_backbone("resnet18", weights="imagenet")
    assert f"{server.url}{path}" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setitem(IMAGENET_WEIGHTS, "resnet18", dataclasses.replace(spec, max_size=999))
    with pytest.raises(WeightsError, match="received more than 999 bytes, the most it may have"):
        build_backbone("resnet18", weights="imagenet")
    assert not any(p.is_file() for p in (home / "weights").rglob("*") if p.suffix != ".lock")


def test_resnet34_without_a_pinned_sha256(home, monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("MRRN_IMAGENET_RESNET34", raising=False)
    spec = IMAGENET_WEIGHTS["resnet34"]
    with pytest.raises(WeightsError, match="No sha256 is pinned") as err:
        build_backbone("resnet34", weights="imagenet")
    assert "MRRN_IMAGENET_RESNET34" in str(err.value) and spec.revision in str(err.value)
    path = tmp_path / "r34.safetensors"
    save_file(reference.random_state("resnet34"), str(path))
    monkeypatch.setenv("MRRN_IMAGENET_RESNET34", str(path))
    with caplog.at_level(logging.WARNING, logger="mrrn_keras.imagenet"):
        build_backbone("resnet34", weights="imagenet", taps=("low",))
    assert hashlib.sha256(path.read_bytes()).hexdigest() in caplog.text
    monkeypatch.setenv("MRRN_IMAGENET_RESNET34", str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightsError, match="no such file"):
        imagenet.imagenet_weights_path("resnet34")


def test_a_local_file_for_a_pinned_backbone_must_match(hub, monkeypatch, tmp_path, resnet18_file):
    server, path, _ = hub
    monkeypatch.setenv("MRRN_IMAGENET_RESNET18", str(resnet18_file))
    assert imagenet.imagenet_weights_path("resnet18") == resnet18_file
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"other")
    monkeypatch.setenv("MRRN_IMAGENET_RESNET18", str(other))
    with pytest.raises(WeightsError, match="from MRRN_IMAGENET_RESNET18.*sha256 is"):
        imagenet.imagenet_weights_path("resnet18")
    assert server.counts[path] == 0


def test_the_registry_pins_commits():
    for name, spec in IMAGENET_WEIGHTS.items():
        assert len(spec.revision) == 40 and int(spec.revision, 16) >= 0, name
        assert spec.sha256 is None or len(spec.sha256) == 64, name
        assert spec.url.endswith(f"/{spec.repo}/resolve/{spec.revision}/model.safetensors")


# === Zoo entries that start from ImageNet ===


def _paper_config(name="mrrn_r18.paper"):
    return json.loads((pathlib.Path(variant_info(name).location) / "config.json").read_text())


def imagenet_entry(root, **model):
    """mrrn_r18.paper shrunk to test size but for its backbone (full width, ImageNet start)."""
    data = _paper_config()
    data["name"] = "mrrn_r18.tiny"
    data["model"].update(sru_units=8, sru_layers=1, image_size=None, num_classes=3, **model)
    data["input"].update(frames=4, height=32, width=32)
    data["params"] = mrrn_parameter_count(data["model"])
    folder = root / "mrrn_r18.tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(data))
    (folder / "card.md").write_text("# mrrn_r18.tiny\n")
    return folder


def test_an_entry_without_weights_starts_from_imagenet(hub, tmp_path, resnet18_file):
    server, path, _ = hub
    entry = imagenet_entry(tmp_path)
    model = load_mrrn(entry, num_classes=2)
    assert server.counts[path] == 1 and model.output_shape == (None, 2)
    kernel = model.backbone.trunks[0].get_layer("conv1_conv").get_weights()[0]
    np.testing.assert_array_equal(
        kernel, read_safetensors(resnet18_file)["conv1.weight"].transpose(2, 3, 1, 0))
    load_mrrn(entry, weights=None)  # random everywhere: nothing fetched
    assert server.counts[path] == 1


def test_an_entry_without_weights_cannot_classify_or_export(hub, tmp_path, capsys):
    from mrrn_keras import cli
    from mrrn_keras.export import export_for_serving
    from mrrn_keras.zoo import load_for_inference

    server, path, _ = hub
    entry = imagenet_entry(tmp_path)
    with pytest.raises(ZooError, match="architecture-only: its heads are untrained"):
        load_for_inference(entry)
    with pytest.raises(ZooError, match="architecture-only"):
        export_for_serving(str(entry), tmp_path / "served")
    assert cli.main(["predict", "--variant", str(entry), "--stream"]) == 1
    assert "architecture-only" in capsys.readouterr().err
    assert server.counts[path] == 0


def test_entries_name_only_imagenet_and_only_without_weights(tmp_path):
    from mrrn_keras.zoo import parse_entry

    data = _paper_config()
    bad = json.loads(json.dumps(data))
    bad["model"]["backbone_weights"] = "places365"
    with pytest.raises(ZooError, match='`model.backbone_weights` must be null or "imagenet"'):
        parse_entry(bad, source="c.json", folder_name=None, location=".")
    both = json.loads(json.dumps(data))
    both["weights"] = {"url": "https://example.org/w.weights.h5", "sha256": "0" * 64, "size": 1}
    with pytest.raises(ZooError, match="must be null: the entry's own weights cover the backbone"):
        parse_entry(both, source="c.json", folder_name=None, location=".")


def test_reading_and_converting_import_neither_tensorflow_nor_keras(resnet18_file):
    # Any backend can load the weights: the reader and converter are NumPy only.
    code = (
        "import sys\n"
        "from mrrn_keras.imagenet import read_safetensors, torchvision_to_keras\n"
        f"state = read_safetensors({str(resnet18_file)!r})\n"
        "assert state['conv1.weight'].shape == (64, 3, 7, 7)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


# === Hostile safetensors files (issue 22) ===


def _raw_safetensors(blob: bytes, data=b"") -> bytes:
    return len(blob).to_bytes(8, "little") + blob + data


def test_hostile_safetensors_headers_are_refused_in_one_line(tmp_path):
    huge_int = b'{"w":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,8]}}'
    cases = {
        "deep": (_raw_safetensors(b"[" * 100_000 + b"]" * 100_000), "nested deeper than 64 levels"),
        "past the end": (_safetensors_bytes({"w": {**F32, "data_offsets": [8, 16]}}, bytes(8)),
                         "starts at byte 8, expected 0"),
        "overlap": (_safetensors_bytes({"w": F32, "v": F32}, bytes(8)), "starts at byte 0"),
        "huge dims": (_safetensors_bytes({"w": {**F32, "shape": [10**15, 10**15]}}, bytes(8)),
                      "holds 8 bytes, not those of shape"),
        "huge int": (_raw_safetensors(huge_int, bytes(8)), "an integer of 5000 digits"),
        "rank": (_safetensors_bytes({"w": {**F32, "shape": [1] * 9 + [2]}}, bytes(8)),
                 "malformed shape"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(WeightsError, match=message) as err:
            read_safetensors(path)
        assert str(err.value).startswith(f"{path}: not a safetensors file: "), name
        assert "\n" not in str(err.value)


def test_non_finite_weights_are_refused_naming_the_key(tmp_path, resnet18_file):
    state = reference.random_state("resnet18")
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = np.nan
    path = tmp_path / "nan.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError, match=r"nan.safetensors: not a safetensors file: tensor "
                                           r"`layer2.0.conv1.weight` holds NaN or infinite"):
        build_backbone("resnet18", weights=path)


def test_a_large_file_of_unrelated_tensors_is_refused_unread(tmp_path, monkeypatch):
    # 2 GB of one unrelated tensor, sparse on disk: refused from the header alone.
    size = 2 << 30
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(_safetensors_bytes({"unrelated": {"dtype": "U8", "shape": [size],
                                                  "data_offsets": [0, size]}}))
        f.truncate(f.tell() + size)
    reads = []
    real_frombuffer = np.frombuffer
    monkeypatch.setattr(imagenet.np, "frombuffer",
                        lambda *a, **k: reads.append(1) or real_frombuffer(*a, **k))
    with pytest.raises(WeightsError, match="missing key `conv1.weight`"):
        build_backbone("resnet18", weights=path)
    assert reads == []


def test_only_the_backbone_tensors_are_read(resnet18_file, monkeypatch):
    read = []
    original = imagenet.read_safetensors
    monkeypatch.setattr(imagenet, "read_safetensors",
                        lambda path, keys=None, **kw: read.append(keys) or original(path, keys, **kw))
    build_backbone("resnet18", weights=resnet18_file)
    (keys,) = read
    assert "fc.weight" not in keys and "conv1.weight" in keys
    assert not any(key.endswith("num_batches_tracked") for key in keys)
