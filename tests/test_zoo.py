"""Tests for mrrn_keras.zoo (entries, registry, load_mrrn) and mrrn_keras.download."""

import collections
import copy
import functools
import http.server
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mrrn_keras.download import sha256_file, weights_cache_path
from mrrn_keras.errors import WeightsError, ZooError
from mrrn_keras.model import MRRN
from mrrn_keras.zoo import (
    list_variants,
    load_mrrn,
    parse_entry,
    save_entry,
    variant_info,
    zoo_dir,
)

TINY = dict(
    backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1, dropout=0.0,
    image_size=(32, 32),
)
LABELS = ["left", "right", "still"]
REPO = pathlib.Path(__file__).resolve().parent.parent


INPUT = {"frames": 4, "height": 32, "width": 32, "fps": 8, "sampling": "segments"}


def write_tiny_entry(root, name="mrrn_test.tiny", *, weights_url=None):
    """Writes a tiny entry folder with `save_entry` (bundled weights, or moved to be
    served from `weights_url`) and returns (folder, model, weights bytes)."""
    model = MRRN(len(LABELS), class_names=LABELS, **TINY)
    folder = pathlib.Path(root) / name
    save_entry(
        model, folder, input_spec=INPUT, description="Tiny test entry.",
        card=f"# {name}\n\nA tiny test entry.",
        dataset={"name": "none", "split": "1", "recipe": "tests/test_zoo.py"},
        metrics=[{"name": "top1", "value": 0.5, "split": "test", "subset": "probabilities",
                  "command": "tests/test_zoo.py"}],
    )
    weights_file = folder / "model.weights.h5"
    data = weights_file.read_bytes()
    if weights_url is not None:
        entry = json.loads((folder / "config.json").read_text())
        entry["weights"] = {"url": weights_url, "sha256": entry["weights"]["sha256"],
                            "size": entry["weights"]["size"]}
        (folder / "config.json").write_text(json.dumps(entry, indent=2))
        weights_file.unlink()
    return folder, model, data


def _frames(batch=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, 4, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_entry(tmp_path_factory.mktemp("zoo"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "mrrn_home"
    monkeypatch.setenv("MRRN_HOME", str(path))
    monkeypatch.delenv("MRRN_OFFLINE", raising=False)
    return path


# === Every registered entry ===


@pytest.mark.parametrize("name", list_variants())
def test_registered_entry(name):
    info = variant_info(name)
    assert info.name == name and pathlib.Path(info.location).parent == zoo_dir()
    assert (pathlib.Path(info.location) / "card.md").is_file()
    # Built without the ImageNet start an entry may name (no download; same parameters).
    assert info.params == MRRN(**{**info.model_kwargs(), "backbone_weights": None}).count_params()
    if info.weights_source == "bundled":
        path = pathlib.Path(info.location) / info.weights.file
        assert path.stat().st_size == info.weights.size
        assert sha256_file(path) == info.weights.sha256


def test_registry():
    assert {"mrrn_r18.paper", "mrrn_r34.paper", "mrrn_r50.paper", "mrrn_r101.paper"} <= set(
        list_variants()
    )
    # Natural order: r18 before r101.
    assert list_variants("*.paper") == [
        "mrrn_r18.paper", "mrrn_r34.paper", "mrrn_r50.paper", "mrrn_r101.paper"
    ]
    assert list_variants(pretrained=True) == ["mrrn_tiny.motion"]
    assert list_variants("*.paper", pretrained=True) == []
    assert list_variants("nothing*") == []
    info = variant_info("mrrn_r34.paper")
    assert (info.weights, info.labels, info.metrics) == (None, None, ())
    assert info.model["sru_units"] == 1024 and info.input["frames"] == 12


# === Schema ===


def _mutations():
    def drop(key):
        return lambda d: d.pop(key)

    def setter(path, value):
        def apply(d):
            *parents, last = path
            for p in parents:
                d = d[p]
            d[last] = value
        return apply

    return [
        ("missing key", drop("license"), "`license` is missing"),
        ("wrong type", setter(["params"], "12"), "`params` must be an integer"),
        ("name not folder", setter(["name"], "mrrn_test.other"), "`name` must equal"),
        ("labels length", setter(["labels"], ["a", "b"]), "`labels` must hold"),
        ("short sha256", setter(["weights", "sha256"], "abc"), "`weights.sha256`"),
        ("file and url", setter(["weights", "url"], "https://x/y.weights.h5"),
         "`weights` must have exactly one"),
        ("unknown key", setter(["extra"], 1), "`extra` is not a known field"),
        ("unknown model key", setter(["model", "units"], 8), "`model.units` is not an MRRN"),
        ("bad sampling", setter(["input", "sampling"], "random"), "`input.sampling`"),
        ("metric field", setter(["metrics", 0, "value"], "high"), "`metrics[0].value`"),
        ("weights path", setter(["weights", "file"], "../x.weights.h5"), "`weights.file`"),
        ("huge weights", setter(["weights", "size"], 1 << 40), "`weights.size` must be"),
        ("empty weights", setter(["weights", "size"], 0), "`weights.size` must be"),
    ]


@pytest.mark.parametrize("case,mutate,message", _mutations(), ids=[m[0] for m in _mutations()])
def test_malformed_entry_names_file_and_field(tiny, tmp_path, case, mutate, message):
    folder = tmp_path / "mrrn_test.tiny"
    folder.mkdir()
    data = json.loads((tiny[0] / "config.json").read_text())
    mutate(data)
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ZooError) as err:
        variant_info(folder)
    assert str(folder / "config.json") in str(err.value)
    assert message in str(err.value)


def test_not_json_and_not_an_entry(tmp_path):
    folder = tmp_path / "mrrn_test.bad"
    folder.mkdir()
    with pytest.raises(ZooError, match="no config.json"):
        variant_info(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(ZooError, match="not valid JSON"):
        variant_info(folder)


def test_parse_entry_is_frozen(tiny):
    data = json.loads((tiny[0] / "config.json").read_text())
    info = parse_entry(copy.deepcopy(data), source="x", folder_name=None, location="x")
    with pytest.raises(TypeError):
        info.model["num_classes"] = 5
    assert info.metric("top1") == 0.5 and info.weights_source == "bundled"


# === load_mrrn ===


def _assert_same_weights(a, b):
    """Two Keras models (or layers) hold equal weights, in order."""
    a, b = a.get_weights(), b.get_weights()
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.multi_backend
def test_load_local_folder_and_file_url(tiny):
    folder, model, _ = tiny
    frames = _frames()
    expected = model.predict(frames, verbose=0)
    for variant in (folder, str(folder), folder.as_uri()):
        loaded = load_mrrn(variant)
        assert loaded.class_names == tuple(LABELS)
        np.testing.assert_allclose(loaded.predict(frames, verbose=0), expected, atol=1e-6)


def test_load_weights_none_and_path(tiny):
    folder, model, _ = tiny
    random_init = load_mrrn(folder, weights=None)
    assert not np.array_equal(
        random_init.heads["low"].get_weights()[0], model.heads["low"].get_weights()[0]
    )
    from_path = load_mrrn(folder, weights=folder / "model.weights.h5")
    _assert_same_weights(from_path, model)
    with pytest.raises(WeightsError, match="not found"):
        load_mrrn(folder, weights=folder / "missing.weights.h5")


@pytest.mark.multi_backend
def test_new_num_classes_keeps_body(tiny):
    folder, model, _ = tiny
    tuned = load_mrrn(folder, num_classes=5)
    assert tuned.output_shape == (None, 5) and tuned.class_names is None
    _assert_same_weights(tuned.backbone, model.backbone)
    assert all(head.get_weights()[0].shape[-1] == 5 for head in tuned.heads.values())
    named = load_mrrn(folder, num_classes=2, class_names=["x", "y"], stream_outputs=True)
    assert named.class_names == ("x", "y")
    _assert_same_weights(named.backbone, model.backbone)
    assert set(named.predict(_frames(1), verbose=0)) == {"probabilities", "low", "mid", "high"}


def test_overrides_reorder_layers_and_keep_weights(tiny):
    folder, model, _ = tiny
    frames = _frames()
    loaded = load_mrrn(folder, stream_outputs=True, implementation="reference")
    out = loaded.predict(frames, verbose=0)
    np.testing.assert_allclose(out["probabilities"], model.predict(frames, verbose=0), atol=1e-5)


@pytest.mark.multi_backend
def test_include_top_false(tiny):
    folder, model, _ = tiny
    features = load_mrrn(folder, include_top=False)
    out = features.predict(_frames(), verbose=0)
    assert set(out) == {"low", "mid", "high"}
    assert all(v.shape == (2, TINY["sru_units"]) for v in out.values())


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ZooError) as err:
        load_mrrn("mrrn_r34.papr")
    assert "'mrrn_r34.paper'" in str(err.value) and "Did you mean" in str(err.value)


def test_architecture_only_entry():
    with pytest.raises(ZooError, match="architecture-only.*weights=None"):
        load_mrrn("mrrn_r50.paper")
    # weights=None builds everything at random, the ImageNet start the entry names included
    # (TINY's width would not fit ImageNet weights).
    assert variant_info("mrrn_r18.paper").model["backbone_weights"] == "imagenet"
    model = load_mrrn("mrrn_r18.paper", weights=None, **TINY)
    assert model.output_shape == (None, 101)
    with pytest.raises(ZooError, match="Unknown MRRN argument"):
        load_mrrn("mrrn_r18.paper", weights=None, units=3)


@pytest.mark.multi_backend
def test_registered_pretrained_entry():
    model = load_mrrn("mrrn_tiny.motion")
    info = variant_info("mrrn_tiny.motion")
    assert model.class_names == info.labels and model.count_params() == info.params


def test_corrupt_bundled_weights_refused(tiny, tmp_path):
    folder, _, _ = tiny
    copy_dir = tmp_path / folder.name
    copy_dir.mkdir()
    (copy_dir / "config.json").write_bytes((folder / "config.json").read_bytes())
    data = bytearray((folder / "model.weights.h5").read_bytes())
    data[-1] ^= 0xFF
    (copy_dir / "model.weights.h5").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_mrrn(copy_dir)


def _legacy_archive(model, path):
    """A `.keras` file as `model.save` wrote it before the backbone/classifier split."""
    import zipfile

    from mrrn_keras.legacy import legacy_view

    weights = path.with_suffix(".weights.h5")
    legacy_view(model).save_weights(str(weights))
    config = {"module": "mrrn_keras.model", "class_name": "MRRN", "config": model.get_config(),
              "registered_name": "mrrn_keras>MRRN"}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps(config))
        archive.write(weights, "model.weights.h5")
    return weights


@pytest.mark.multi_backend
def test_files_from_before_the_split_load_with_equal_outputs(tiny, tmp_path):
    from mrrn_keras.legacy import is_legacy_weights
    from mrrn_keras.zoo import load_model_file

    folder, model, _ = tiny
    frames = _frames()
    expected = model.predict(frames, verbose=0)
    weights = _legacy_archive(model, tmp_path / "old.keras")
    assert is_legacy_weights(weights) and not is_legacy_weights(folder / "model.weights.h5")
    restored = load_model_file(tmp_path / "old.keras")
    np.testing.assert_allclose(restored.predict(frames, verbose=0), expected, atol=1e-6)
    # An entry written before the split: its weights file has the old layout.
    old_entry = tmp_path / folder.name
    old_entry.mkdir()
    (old_entry / "card.md").write_text("# old")
    (old_entry / "model.weights.h5").write_bytes(weights.read_bytes())
    entry = json.loads((folder / "config.json").read_text())
    entry["weights"].update(sha256=sha256_file(weights), size=weights.stat().st_size)
    (old_entry / "config.json").write_text(json.dumps(entry))
    np.testing.assert_allclose(load_mrrn(old_entry).predict(frames, verbose=0), expected, atol=1e-6)


@pytest.mark.multi_backend
def test_from_preset_beside_load_mrrn(tiny):
    from mrrn_keras import MRRNBackbone, MRRNVideoClassifier

    folder, model, _ = tiny
    backbone = MRRNBackbone.from_preset(folder)
    assert isinstance(backbone, MRRNBackbone)
    _assert_same_weights(backbone, model.backbone)
    tuned = MRRNVideoClassifier.from_preset(folder, num_classes=2, class_names=["x", "y"])
    assert isinstance(tuned, MRRNVideoClassifier) and tuned.class_names == ("x", "y")
    _assert_same_weights(tuned.backbone, model.backbone)
    assert MRRNVideoClassifier.from_preset(folder, load_weights=False).class_names == tuple(LABELS)


def test_entry_fills_missing_model_arguments_and_refuses_unknown(tiny):
    data = json.loads((tiny[0] / "config.json").read_text())
    for key in ("implementation", "fusion_weights", "tap_pooling"):
        del data["model"][key]
    info = parse_entry(copy.deepcopy(data), source="x", folder_name=None, location="x")
    assert info.model["implementation"] == "auto" and info.model["tap_pooling"] == "avg"
    data["model"]["units"] = 3
    with pytest.raises(ZooError, match="model.units"):
        parse_entry(data, source="x", folder_name=None, location="x")
    del data["model"]["units"], data["model"]["num_classes"]
    with pytest.raises(ZooError, match="model.num_classes"):
        parse_entry(data, source="x", folder_name=None, location="x")


def test_save_entry_replaces_an_entry_and_refuses_a_bad_one(tiny, tmp_path):
    folder, model, _ = tiny
    target = tmp_path / "mrrn_test.copy"
    kwargs = dict(input_spec=INPUT, description="d", card="# c")
    save_entry(model, target, **kwargs)
    info = save_entry(model, target, **{**kwargs, "description": "second"})
    assert info.description == "second" and sorted(p.name for p in tmp_path.iterdir()) == [
        "mrrn_test.copy"]
    with pytest.raises(ZooError, match="input.height"):
        save_entry(model, tmp_path / "mrrn_test.bad", **{**kwargs, "input_spec": {**INPUT, "height": 8}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mrrn_test.copy"]


# === Downloads against a local HTTP server ===


class _Server:
    """Serves `files` on 127.0.0.1; `mode` is "ok", "truncated" or "wrong".

    A `files` value may be a function of the request handler, which then
    writes the whole response itself.
    """

    def __init__(self):
        self.files = {}
        self.mode = "ok"
        self.delay_s = 0.0
        self.counts = collections.Counter()
        self._lock = threading.Lock()
        handler = functools.partial(_Handler, self)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path):
        with self._lock:
            self.counts[path] += 1


class _Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, server_state, *args, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.state
        state.count(self.path)
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        if callable(body):
            body(self)
            return
        if self.path.endswith(".h5"):
            time.sleep(state.delay_s)
            if state.mode == "wrong":
                body = bytes(b ^ 0x5A for b in body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.mode == "truncated" and self.path.endswith(".h5"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    state = _Server()
    yield state
    state.httpd.shutdown()
    state.httpd.server_close()


@pytest.fixture
def url_entry(tmp_path, server):
    """A local entry folder whose weights are a URL on the test server, and its model."""
    folder, model, data = write_tiny_entry(
        tmp_path / "entries", weights_url=f"{server.url}/w/tiny.weights.h5"
    )
    server.files["/w/tiny.weights.h5"] = data
    return folder, model


def _cache_files(home):
    return sorted(
        str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and p.suffix != ".lock"
    )


@pytest.mark.multi_backend
def test_download_success_then_cached(home, server, url_entry):
    url_entry, expected = url_entry
    model = load_mrrn(url_entry, progress=False)
    np.testing.assert_allclose(
        model.predict(_frames(), verbose=0), expected.predict(_frames(), verbose=0), atol=1e-6
    )
    info = variant_info(url_entry)
    target = weights_cache_path(info.weights.sha256, "tiny.weights.h5")
    assert target.is_file() and _cache_files(home) == [str(target.relative_to(home))]
    load_mrrn(url_entry)
    assert server.counts["/w/tiny.weights.h5"] == 1
    # A corrupt cached file is noticed and fetched again.
    target.write_bytes(b"garbage")
    load_mrrn(url_entry)
    assert server.counts["/w/tiny.weights.h5"] == 2 and sha256_file(target) == info.weights.sha256


def test_remote_entry_folder(home, server, tiny):
    folder, model, data = tiny
    server.files["/zoo/mrrn_test.tiny/config.json"] = (folder / "config.json").read_bytes()
    server.files["/zoo/mrrn_test.tiny/card.md"] = (folder / "card.md").read_bytes()
    server.files["/zoo/mrrn_test.tiny/model.weights.h5"] = data
    url = f"{server.url}/zoo/mrrn_test.tiny"
    loaded = load_mrrn(url + "/")
    np.testing.assert_allclose(
        loaded.predict(_frames(), verbose=0), model.predict(_frames(), verbose=0), atol=1e-6
    )
    info = variant_info(url)
    assert info.location == url and "tiny test entry" in info.read_card()


@pytest.mark.parametrize("mode", ["wrong", "truncated"])
def test_bad_download_refused_and_not_cached(home, server, url_entry, mode):
    url_entry, _ = url_entry
    server.mode = mode
    with pytest.raises(WeightsError) as err:
        load_mrrn(url_entry)
    message = str(err.value)
    info = variant_info(url_entry)
    assert info.weights.url in message
    assert str(weights_cache_path(info.weights.sha256, "tiny.weights.h5")) in message
    assert "place it at" in message
    assert _cache_files(home) == []


def test_server_down(home, tiny, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w/tiny.weights.h5"
    folder, _, _ = write_tiny_entry(tmp_path / "entries", weights_url=url)
    with pytest.raises(WeightsError, match="Could not download") as err:
        load_mrrn(folder)
    assert url in str(err.value) and _cache_files(home) == []


def test_offline_never_touches_network(home, server, url_entry, monkeypatch):
    url_entry, _ = url_entry
    monkeypatch.setenv("MRRN_OFFLINE", "1")
    with pytest.raises(WeightsError) as err:
        load_mrrn(url_entry)
    message = str(err.value)
    info = variant_info(url_entry)
    assert "tiny.weights.h5" in message and info.weights.url in message
    assert str(weights_cache_path(info.weights.sha256, "tiny.weights.h5")) in message
    assert sum(server.counts.values()) == 0
    monkeypatch.delenv("MRRN_OFFLINE")
    load_mrrn(url_entry)
    monkeypatch.setenv("MRRN_OFFLINE", "1")
    load_mrrn(url_entry)  # served from the cache
    assert sum(server.counts.values()) == 1


_WORKER = """
import pathlib, sys, time
from mrrn_keras.zoo import load_mrrn
ready, go = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.05)
print(load_mrrn(sys.argv[1]).count_params())
"""


def test_concurrent_loads_download_once(home, server, url_entry, tmp_path):
    url_entry, _ = url_entry
    server.delay_s = 1.0  # the first download is still running when the others ask
    env = {**os.environ, "MRRN_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(url_entry), str(tmp_path / f"ready{i}"), str(go)],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.1)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    assert len({out.strip() for out, _ in outputs}) == 1
    assert server.counts["/w/tiny.weights.h5"] == 1
    assert len(_cache_files(home)) == 1


def test_keras_free_copies_of_the_model_names_match_the_model():
    # zoo.py reads entries without importing the model (so `mrrn list` needs no Keras).
    import inspect

    from mrrn_keras import model, zoo

    defaults = {
        name: (None if p.default is inspect.Parameter.empty else p.default)
        for name, p in inspect.signature(model.MRRN.__init__).parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }
    assert zoo.MODEL_DEFAULTS == defaults
    assert tuple(defaults) == zoo.MODEL_ARGUMENTS
    assert zoo.BACKBONE_ARGUMENTS == tuple(
        name for name in inspect.signature(model.MRRNBackbone.__init__).parameters
        if name in defaults
    )
    assert zoo.FUSED_OUTPUT == model.FUSED_OUTPUT


def test_a_keras_file_keeps_its_input_spec(tmp_path):
    from mrrn_keras.zoo import load_for_inference, save_model_file

    model = MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1,
                 image_size=(32, 32), class_names=["a", "b", "c"])
    spec = {"frames": 4, "height": 32, "width": 32, "sampling": "segments"}
    path = save_model_file(model, tmp_path / "model.keras", input_spec=spec)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    loaded, got, name, labels = load_for_inference(path)
    assert got == spec and name == "model.keras" and labels == ("a", "b", "c")
    model.save(tmp_path / "plain.keras")
    with pytest.raises(ZooError, match="plain.keras: the model file does not record"):
        load_for_inference(tmp_path / "plain.keras")


# === Hostile entries (issue 22): sizes, labels, JSON, text caps ===


def _entry_copy(tiny, tmp_path, mutate=None, *, text=None):
    folder = tmp_path / "mrrn_test.tiny"
    folder.mkdir()
    data = json.loads((tiny[0] / "config.json").read_text())
    if mutate is not None:
        mutate(data)
    (folder / "config.json").write_text(json.dumps(data) if text is None else text)
    return folder


@pytest.mark.parametrize("path, value, message", [
    (("model", "sru_units"), 10_000_000, "`model.sru_units` must be an integer in [1, 8192]"),
    (("model", "sru_layers"), 1_000_000, "`model.sru_layers` must be an integer in [0, 16]"),
    (("model", "num_classes"), 100_000_000, "`model.num_classes` must be an integer in [1, 100000]"),
    (("model", "backbone_width"), 10_000.0, "`model.backbone_width` must be in (0, 4.0]"),
    (("model", "image_size"), [1_000_000, 32], "`model.image_size[0]` must be an integer in [32, 1024]"),
    (("model", "streams"), 3, "`model.streams` must be a list"),
    (("model", "state_gates"), "yes", "`model.state_gates` must be a boolean"),
    (("input", "frames"), 1_000_000_000, "`input.frames` must be an integer in [1, 1024]"),
    (("input", "height"), 1_000_000, "`input.height` must be an integer in [32, 1024]"),
    (("params",), 12, "`params` must equal the parameter count of the entry's `model`, "),
    (("labels", 1), "right\x1b]0;pwned\x07", "`labels[1]` must be one line of printable text; it holds the control or line-break character \\x1b"),
    (("labels", 2), "still\nextra", "`labels[2]` must be one line"),
    (("labels", 0), "left\u2028", "`labels[0]` must be one line"),
    (("labels", 0), "left\u202e", "`labels[0]` must be one line"),
    (("model", "class_names"), ["a", "b\r", "c"], "`model.class_names[1]` must be one line"),
], ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else None)
def test_hostile_sizes_and_labels_refused_before_building(tiny, tmp_path, path, value, message):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    folder = _entry_copy(tiny, tmp_path, mutate)
    with pytest.raises(ZooError) as err:
        variant_info(folder)
    assert str(err.value).startswith(f"{folder / 'config.json'}: field ")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested deeper than 64 levels"),
    ('{"params": ' + "9" * 5000 + "}", "an integer of 5000 digits"),
    ('{"params": NaN}', "NaN is not a number JSON allows"),
], ids=["deep", "huge integer", "NaN"])
def test_hostile_json_gives_one_line(tiny, tmp_path, text, message):
    folder = _entry_copy(tiny, tmp_path, text=text)
    with pytest.raises(ZooError, match=message) as err:
        variant_info(folder)
    assert str(err.value).startswith(f"{folder / 'config.json'}: not valid JSON")


def test_local_entry_text_is_capped(tiny, tmp_path):
    folder = _entry_copy(tiny, tmp_path)
    (folder / "card.md").write_text("x" * ((1 << 20) + 1))
    with pytest.raises(ZooError, match=r"card.md is larger than 1048576 bytes"):
        variant_info(folder).read_card()
    (folder / "config.json").write_text(" " * (1 << 20) + "{}")
    with pytest.raises(ZooError, match=r"config.json is larger than 1048576 bytes"):
        variant_info(folder)


def test_remote_hostile_entry_refused_in_one_line(tiny, tmp_path, server, home):
    data = json.loads((tiny[0] / "config.json").read_text())
    data["model"]["sru_units"] = 10_000_000
    server.files["/hostile/mrrn_test.tiny/config.json"] = json.dumps(data).encode()
    with pytest.raises(ZooError, match=r"config.json: field `model.sru_units` must be"):
        load_mrrn(f"{server.url}/hostile/mrrn_test.tiny")
    server.files["/deep/mrrn_test.tiny/config.json"] = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ZooError, match="nested deeper than 64 levels"):
        variant_info(f"{server.url}/deep/mrrn_test.tiny")


def _random_small_models():
    rng = np.random.default_rng(22)
    for _ in range(4):
        streams = [s for s in ("low", "mid", "high") if rng.random() < 0.6] or ["mid"]
        yield {
            "num_classes": int(rng.integers(1, 12)), "backbone": str(rng.choice(["resnet18", "resnet34"])),
            "streams": streams, "backbone_width": float(rng.choice([0.0625, 0.125, 0.2])),
            "backbone_mode": str(rng.choice(["shared", "independent"])),
            "sru_units": int(rng.integers(4, 40)), "sru_layers": int(rng.integers(0, 3)),
            "state_gates": bool(rng.random() < 0.5), "fusion": str(rng.choice(["fixed", "learned"])),
        }


@pytest.mark.parametrize("model", list(_random_small_models()))
def test_analytic_parameter_count_equals_count_params(model):
    from mrrn_keras.architecture import mrrn_parameter_count

    assert mrrn_parameter_count(model) == MRRN(**model, image_size=(32, 32)).count_params()


@pytest.mark.parametrize("name", list_variants())
def test_analytic_parameter_count_of_every_entry(name):
    from mrrn_keras.architecture import mrrn_parameter_count

    # test_registered_entry holds info.params to count_params() of the built model.
    info = variant_info(name)
    assert mrrn_parameter_count(info.model) == info.params


def _keras_file(tiny, tmp_path, *, config=None, spec=None):
    """A copy of a real .keras file with its config.json or mrrn_input.json replaced."""
    import zipfile

    from mrrn_keras.zoo import save_model_file

    source = tmp_path / "source.keras"
    if not source.exists():
        save_model_file(tiny[1], source, input_spec=INPUT)
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
        for item in old.namelist():
            data = old.read(item)
            if item == "config.json" and config is not None:
                data = config(json.loads(data)) if callable(config) else config
                data = data if isinstance(data, (bytes, str)) else json.dumps(data)
            if item == "mrrn_input.json" and spec is not None:
                data = spec
            new.writestr(item, data)
    return path


@pytest.mark.parametrize("spec, message", [
    ('{"frames": ' * 10_000 + "}" * 10_000, "nested deeper than 64"),
    ('{"frames": 4, "height": 32, "width": 32}', "field `sampling` is missing"),
    ('{"frames": 1000000000, "height": 32, "width": 32, "sampling": "segments"}',
     "field `frames` must be an integer in [1, 1024]"),
    ('[4, 32, 32]', "must be a JSON object"),
], ids=["deep", "missing key", "huge frames", "not an object"])
def test_keras_file_input_spec_is_checked(tiny, tmp_path, spec, message):
    from mrrn_keras.zoo import load_for_inference

    path = _keras_file(tiny, tmp_path, spec=spec)
    with pytest.raises(ZooError) as err:
        load_for_inference(path)
    assert str(err.value).startswith(f"{path}: mrrn_input.json")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_keras_file_config_is_bounded_before_keras_builds(tiny, tmp_path):
    from mrrn_keras.zoo import load_model_file

    def huge(config):
        config["config"]["sru_units"] = 10_000_000  # MRRN saves its arguments flat
        return config

    path = _keras_file(tiny, tmp_path, config=huge)
    with pytest.raises(ZooError, match=r"config.json: field `config.config.sru_units` must be an "
                                       r"integer in \[1, 8192\]"):
        load_model_file(path)

    def big(config):  # within every bound, but far more than the archive's weights hold
        config["config"]["num_classes"] = 10_000
        config["config"]["class_names"] = None
        config["config"]["sru_units"] = 4096
        return config

    with pytest.raises(ZooError, match=r"declares a model of \d+ parameters, but the archive's"):
        load_model_file(_keras_file(tiny, tmp_path, config=big))
    path = _keras_file(tiny, tmp_path, config=b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ZooError, match="config.json: not valid JSON"):
        load_model_file(path)
