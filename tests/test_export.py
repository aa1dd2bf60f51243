"""Tests for mrrn_keras/export.py: the SavedModel a TF Serving process runs."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import types

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from mrrn_keras import MRRN
from mrrn_keras import export as export_lib
from mrrn_keras import files as files_lib
from mrrn_keras.export import export_for_serving

CLASS_NAMES = ["a", "b", "c"]
TOP_K = 2
SIZE = (32, 32)


def tiny_model(**kwargs):
    kwargs.setdefault("class_names", CLASS_NAMES)
    kwargs.setdefault("image_size", SIZE)
    return MRRN(
        3, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1, **kwargs
    )


def random_frames(shape, seed=0):
    return np.random.RandomState(seed).randint(0, 256, shape).astype("uint8")


def encode_clips(frames):
    # (B, T, H, W, 3) uint8 -> (B, T) encoded JPEG bytes
    return [[tf.io.encode_jpeg(frame).numpy() for frame in clip] for clip in frames]


def decode_clips(jpegs):
    return np.stack([[tf.io.decode_jpeg(j, channels=3).numpy() for j in clip] for clip in jpegs])


def saved_function_defs(path):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(path) / "saved_model.pb").read_bytes())
    return list(proto.meta_graphs[0].graph_def.library.function)


def xla_functions(path):
    return [
        f.signature.name
        for f in saved_function_defs(path)
        if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tf.random.set_seed(0)
    model = tiny_model()
    base = tmp_path_factory.mktemp("serving")
    path = export_for_serving(model, base, top_k=TOP_K, frames=3)
    return model, path


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported[1]))


CHILD = textwrap.dedent(
    """
    import json, sys

    class BlockMRRN:
        def find_spec(self, name, path=None, target=None):
            if name == "mrrn_keras" or name.startswith("mrrn_keras."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
            return None

    sys.meta_path.insert(0, BlockMRRN())
    try:
        import mrrn_keras  # noqa: F401
    except ImportError:
        importable = False
    else:
        importable = True

    import numpy as np
    import tensorflow as tf

    saved_model, inputs, outputs = sys.argv[1:4]
    data = np.load(inputs)
    loaded = tf.saved_model.load(saved_model)
    results = {}
    results_frames = loaded.signatures["serving_default"](frames=tf.constant(data["frames"]))
    jpegs = [[open(f"{inputs}.{name}.{b}.{t}", "rb").read() for t in range(data["time"])]
             for name in ("same", "other") for b in range(data["batch"])]
    out = {}
    for key, value in results_frames.items():
        out[f"frames/{key}"] = value.numpy()
    batch = int(data["batch"])
    for name, clips in (("same", jpegs[:batch]), ("other", jpegs[batch:])):
        result = loaded.signatures["serving_jpeg"](jpeg_frames=tf.constant(clips))
        for key, value in result.items():
            out[f"{name}/{key}"] = value.numpy()
    for key in list(out):
        if out[key].dtype == object:
            out[key] = out[key].astype(str)
    np.savez(outputs, **out)
    print(json.dumps({"importable": importable,
                      "imported": sorted(m for m in sys.modules if m.startswith("mrrn_keras"))}))
    """
)


def test_signatures_match_keras_in_a_process_without_mrrn_keras(exported, tmp_path):
    model, path = exported
    batch, time = 2, 3
    frames = random_frames((batch, time, *SIZE, 3))
    other = random_frames((batch, time, 40, 48, 3), seed=1)
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, frames=frames, batch=batch, time=time)
    jpegs = {"same": encode_clips(frames), "other": encode_clips(other)}
    for name, clips in jpegs.items():
        for b, clip in enumerate(clips):
            for t, data in enumerate(clip):
                pathlib.Path(f"{inputs}.{name}.{b}.{t}").write_bytes(data)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    outputs = tmp_path / "outputs.npz"

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(path), str(inputs), str(outputs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"importable": False, "imported": []}
    got = np.load(outputs)

    def check(prefix, expected):
        np.testing.assert_allclose(got[f"{prefix}/probabilities"], expected, atol=1e-5, rtol=0)
        order = np.argsort(-expected, axis=-1, kind="stable")[:, :TOP_K]
        np.testing.assert_allclose(
            got[f"{prefix}/top_k_scores"],
            np.take_along_axis(expected, order, axis=-1),
            atol=1e-5,
            rtol=0,
        )
        np.testing.assert_array_equal(got[f"{prefix}/top_k_labels"], np.array(CLASS_NAMES)[order])

    check("frames", model(frames, training=False).numpy())
    check("same", model(decode_clips(jpegs["same"]), training=False).numpy())
    # Frames of another size are resized to the model's size in the graph.
    decoded = tf.image.resize(decode_clips(jpegs["other"]).reshape(-1, 40, 48, 3), SIZE)
    check("other", model(tf.reshape(decoded, (batch, time, *SIZE, 3)), training=False).numpy())


def test_saved_model_cli_lists_both_signatures(exported):
    path = exported[1]
    cli = shutil.which("saved_model_cli") or os.path.join(
        sysconfig.get_path("scripts"), "saved_model_cli"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [cli, "show", "--dir", str(path), "--all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    blocks = {}
    for block in result.stdout.split("signature_def[")[1:]:
        blocks[block.split("'")[1]] = " ".join(block.split())
    assert {"serving_default", "serving_jpeg"} <= set(blocks)
    outputs = (
        f"outputs['probabilities'] tensor_info: dtype: DT_FLOAT shape: (-1, 3)",
        f"outputs['top_k_labels'] tensor_info: dtype: DT_STRING shape: (-1, {TOP_K})",
        f"outputs['top_k_scores'] tensor_info: dtype: DT_FLOAT shape: (-1, {TOP_K})",
    )
    default, jpeg = blocks["serving_default"], blocks["serving_jpeg"]
    assert "inputs['frames'] tensor_info: dtype: DT_UINT8 shape: (-1, -1, 32, 32, 3)" in default
    assert "inputs['jpeg_frames'] tensor_info: dtype: DT_STRING shape: (-1, -1)" in jpeg
    for line in outputs:
        assert line in default
        assert line in jpeg
    assert "Method name is: tensorflow/serving/predict" in default


def signature_inputs(loaded, name):
    return loaded.signatures[name].structured_input_signature[1]


def test_warmup_requests_match_signatures(exported, loaded):
    path = exported[1]
    warmup = path / "assets.extra" / "tf_serving_warmup_requests"
    logs = []
    for record in tf.data.TFRecordDataset(str(warmup)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    by_signature = {}
    for log in logs:
        request = log.predict_log.request
        by_signature.setdefault(request.model_spec.signature_name, []).append(request)
    assert set(by_signature) == {"serving_default", "serving_jpeg"}
    for name, requests in by_signature.items():
        assert 1 <= len(requests) <= 10
        specs = signature_inputs(loaded, name)
        for request in requests:
            assert set(request.inputs) == set(specs)
            arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            for key, spec in specs.items():
                assert tf.as_dtype(request.inputs[key].dtype) == spec.dtype
                assert spec.shape.is_compatible_with(arrays[key].shape)
                # batch 1, the frame count asked for
                assert arrays[key].shape[:2] == (1, 3)
            outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in arrays.items()})
            assert outputs["probabilities"].shape == (1, 3)


def test_predict_request_for_each_signature(exported, loaded):
    model, _ = exported
    frames = random_frames((1, 2, *SIZE, 3), seed=2)
    requests = {
        "serving_default": {"frames": tf.make_tensor_proto(frames)},
        "serving_jpeg": {
            "jpeg_frames": tf.make_tensor_proto(encode_clips(frames), dtype=tf.string)
        },
    }
    for name, inputs in requests.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mrrn"
        request.model_spec.signature_name = name
        for key, proto in inputs.items():
            request.inputs[key].CopyFrom(proto)
        request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
        specs = signature_inputs(loaded, name)
        assert set(request.inputs) == set(specs)
        arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        for key, spec in specs.items():
            assert tf.as_dtype(request.inputs[key].dtype) == spec.dtype
            assert spec.shape.is_compatible_with(arrays[key].shape)
        outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in arrays.items()})
        clip = frames if name == "serving_default" else decode_clips(arrays["jpeg_frames"])
        np.testing.assert_allclose(
            outputs["probabilities"], model(clip, training=False), atol=1e-5, rtol=0
        )


def test_bad_inputs_fail_clearly(loaded):
    serve = loaded.signatures["serving_default"]
    frames = random_frames((1, 2, *SIZE, 3))
    # The signature itself rejects another dtype.
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="expected to be a uint8 tensor but is a float tensor",
    ):
        serve(frames=tf.constant(frames, tf.float32))
    # Shapes are not checked by the signature; the graph's EnsureShape is.
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Shape of tensor frames \[2,32,32,3\] is not compatible with "
        r"expected shape \[\?,\?,32,32,3\]",
    ):
        serve(frames=tf.constant(frames[0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Shape of tensor frames"):
        serve(frames=tf.constant(frames[..., None]))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="`frames` must have at least one time step"
    ):
        serve(frames=tf.constant(frames[:, :0]))
    jpeg = loaded.signatures["serving_jpeg"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="Shape of tensor jpeg_frames"):
        jpeg(jpeg_frames=tf.constant(encode_clips(frames)[0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a string tensor"):
        jpeg(jpeg_frames=tf.constant([[1, 2]]))


def test_no_xla_by_default_and_xla_on_request(exported, tmp_path):
    model, path = exported
    assert saved_function_defs(path)
    assert xla_functions(path) == []
    model.set_implementation("auto")
    xla_path = export_for_serving(model, tmp_path, jit_compile=True, warmup=False)
    assert xla_functions(xla_path)
    frames = random_frames((1, 2, *SIZE, 3), seed=3)
    outputs = tf.saved_model.load(str(xla_path)).signatures["serving_default"](
        frames=tf.constant(frames)
    )
    np.testing.assert_allclose(
        outputs["probabilities"], model(frames, training=False), atol=1e-5, rtol=0
    )
    # The export switches the SRUs only while tracing.
    assert model.implementation == "auto"
    assert {s.implementation for s in model.backbone.sru_stacks["low"]} == {"auto"}


def fake_saved_model(model, path, **kwargs):
    (pathlib.Path(path) / "saved_model.pb").write_text(json.dumps(kwargs["labels"]))


def test_versions_refuse_overwrite_and_increment(tmp_path, monkeypatch):
    monkeypatch.setattr(export_lib, "_write_saved_model", fake_saved_model)
    model = tiny_model()
    base = tmp_path / "models"
    assert export_for_serving(model, base, warmup=False) == base / "1"
    (base / "7").mkdir()
    (base / "notes").mkdir()
    (base / "12.txt").write_text("")
    assert export_for_serving(model, base, warmup=False) == base / "8"
    assert export_for_serving(model, base, version=3, warmup=False) == base / "3"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_for_serving(model, base, version=3, warmup=False)
    export_for_serving(model, base, version=3, overwrite=True, labels=["x", "y", "z"], warmup=False)
    assert json.loads((base / "3" / "saved_model.pb").read_text()) == ["x", "y", "z"]
    assert sorted(p.name for p in base.iterdir()) == ["1", "12.txt", "3", "7", "8", "notes"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch, overwrite):
    base = tmp_path / "models"
    base.mkdir()
    if overwrite:
        (base / "1").mkdir()
        (base / "1" / "saved_model.pb").write_text("old")

    def interrupted_save(obj, export_dir, **kwargs):
        (pathlib.Path(export_dir) / "variables").mkdir()
        (pathlib.Path(export_dir) / "saved_model.pb").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        export_for_serving(tiny_model(), base, version=1, overwrite=overwrite)
    expected = ["1"] if overwrite else []
    assert sorted(p.name for p in base.iterdir()) == expected
    if overwrite:
        assert (base / "1" / "saved_model.pb").read_text() == "old"


def test_failed_fallback_swap_restores_the_old_version(tmp_path, monkeypatch):
    monkeypatch.setattr(export_lib, "_write_saved_model", fake_saved_model)
    base = tmp_path / "models"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_text("old")
    rename = os.rename
    calls = []

    def failing_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # moving the new version in
            raise OSError("disk gone")
        rename(src, dst)

    monkeypatch.setattr(export_lib.os, "rename", failing_rename)
    monkeypatch.setattr(files_lib, "exchange_paths", lambda a, b: False)  # the fallback
    with pytest.raises(OSError, match="disk gone"):
        export_for_serving(tiny_model(), base, version=1, overwrite=True, warmup=False)
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert (base / "1" / "saved_model.pb").read_text() == "old"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_versions_are_readable_as_the_umask_allows(tmp_path, monkeypatch, umask):
    monkeypatch.setattr(export_lib, "_write_saved_model", fake_saved_model)
    old = os.umask(umask)
    try:
        path = export_for_serving(tiny_model(), tmp_path / "models", warmup=False)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask


def test_real_export_readable_by_others(exported):
    umask = os.umask(0)
    os.umask(umask)
    if umask & 0o005:
        pytest.skip(f"umask {umask:o} hides files from others")
    for path in [exported[1], *exported[1].rglob("*")]:
        mode = path.stat().st_mode
        assert mode & 0o004, path
        assert not path.is_dir() or mode & 0o001, path


def test_concurrent_exports_get_distinct_versions(tmp_path, monkeypatch):
    barrier = threading.Barrier(3, timeout=30)

    def slow_save(model, path, **kwargs):
        barrier.wait()  # all three are exporting at once
        fake_saved_model(model, path, **kwargs)

    monkeypatch.setattr(export_lib, "_write_saved_model", slow_save)
    base = tmp_path / "models"
    (base / "2").mkdir(parents=True)
    model = tiny_model()
    results, errors = [], []

    def run():
        try:
            results.append(export_for_serving(model, base, warmup=False))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in results) == ["3", "4", "5"]
    assert sorted(p.name for p in base.iterdir()) == ["2", "3", "4", "5"]


def test_overwrite_keeps_a_complete_version_at_every_instant(tmp_path, monkeypatch):
    monkeypatch.setattr(export_lib, "_write_saved_model", fake_saved_model)
    base = tmp_path / "models"
    target = base / "1"
    export_for_serving(tiny_model(), base, version=1, warmup=False, labels=["o", "l", "d"])
    steps = []

    def watched(name, function):
        def call(*args, **kwargs):
            assert (target / "saved_model.pb").is_file(), f"before {name}{args}"
            result = function(*args, **kwargs)
            assert (target / "saved_model.pb").is_file(), f"after {name}{args}"
            steps.append(name)
            return result
        return call

    monkeypatch.setattr(export_lib.os, "rename", watched("rename", os.rename))
    monkeypatch.setattr(files_lib, "exchange_paths", watched("exchange", files_lib.exchange_paths))
    monkeypatch.setattr(export_lib.shutil, "rmtree", watched("rmtree", shutil.rmtree))
    export_for_serving(tiny_model(), base, version=1, overwrite=True, warmup=False,
                       labels=["n", "e", "w"])
    assert "exchange" in steps
    assert json.loads((target / "saved_model.pb").read_text()) == ["n", "e", "w"]
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def _claim(base, name, *, pid=None, age_s=0.0, old_version=False, host=None):
    claim = base / name
    claim.mkdir(parents=True)
    if pid is not None:
        files_lib.mark_owned(claim, export_lib.CLAIM_KIND)
        record = json.loads((claim / files_lib.OWNED_MARKER).read_text())
        record.update(pid=pid, host=host or socket.gethostname())
        (claim / files_lib.OWNED_MARKER).write_text(json.dumps(record))
    if old_version:
        (claim / "old").mkdir()
        (claim / "old" / "saved_model.pb").write_text("old")
    when = time.time() - age_s
    for path in claim.iterdir():
        os.utime(path, (when, when))
    os.utime(claim, (when, when))
    return claim


def test_claims_of_killed_exports_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(export_lib, "_write_saved_model", fake_saved_model)
    base = tmp_path / "models"
    killed = _claim(base, ".tmp-5", pid=999999999)
    running = _claim(base, ".tmp-6", pid=os.getpid())
    # A user's folders of the same name pattern, however old, carry no marker.
    user_old = _claim(base, ".tmp-1-k2j3h4", age_s=7 * 86400)
    user_young = _claim(base, ".tmp-2-a8b7c6")
    mid_swap = _claim(base, ".tmp-3", pid=999999999, old_version=True)
    other_host_old = _claim(base, ".tmp-9", pid=os.getpid(), host="elsewhere", age_s=2 * 86400)
    other_host = _claim(base, ".tmp-10", pid=os.getpid(), host="elsewhere")
    path = export_for_serving(tiny_model(), base, warmup=False)
    assert path.name == "11"  # 6 and 10 are being exported
    assert not killed.exists() and not mid_swap.exists() and not other_host_old.exists()
    assert running.exists() and other_host.exists()
    assert user_old.exists() and user_young.exists()
    assert (base / "3" / "saved_model.pb").read_text() == "old"  # put back in service


def test_versions_bounded_to_int64(tmp_path, monkeypatch):
    monkeypatch.setattr(export_lib, "_write_saved_model", fake_saved_model)
    base = tmp_path / "models"
    with pytest.raises(ValueError, match="2\\*\\*63 - 1"):
        export_for_serving(tiny_model(), base, version=2**63, warmup=False)
    (base / "99999999999999999999").mkdir(parents=True)  # TF Serving ignores it
    assert export_for_serving(tiny_model(), base, warmup=False).name == "1"
    export_for_serving(tiny_model(), base, version=2**63 - 1, warmup=False)
    with pytest.raises(ValueError, match="pass `version` explicitly"):
        export_for_serving(tiny_model(), base, warmup=False)


def test_unwritable_base_one_line_error(tmp_path, capsys):
    from mrrn_keras import cli
    from mrrn_keras.errors import ExportError
    from tests.test_zoo import write_tiny_entry

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match=str(blocker / "models")):
        export_for_serving(tiny_model(), blocker / "models", warmup=False)
    entry, _, _ = write_tiny_entry(tmp_path / "zoo")
    assert cli.main(["export", str(entry), "--out", str(blocker / "models")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(blocker / "models") in err


def test_variant_name_uses_the_zoo(tmp_path, monkeypatch):
    model = tiny_model(class_names=None, image_size=None)
    info = types.SimpleNamespace(
        input={"frames": 4, "height": 48, "width": 40}, labels=["run", "jump", "sit"]
    )
    zoo = types.ModuleType("mrrn_keras.zoo")
    zoo.load_mrrn = lambda variant: model
    zoo.variant_info = lambda variant: info
    zoo.check_trained = lambda info: None
    monkeypatch.setitem(sys.modules, "mrrn_keras.zoo", zoo)
    import mrrn_keras

    monkeypatch.setattr(mrrn_keras, "zoo", zoo, raising=False)
    seen = {}
    monkeypatch.setattr(
        export_lib, "_write_saved_model", lambda model, path, **kwargs: seen.update(kwargs)
    )
    path = export_for_serving("mrrn_tiny.test", tmp_path)
    assert seen["labels"] == ["run", "jump", "sit"]
    assert seen["resize_to"] == (48, 40)
    assert seen["frame_shape"] == (None, None)
    warmup = path / "assets.extra" / "tf_serving_warmup_requests"
    shapes = set()
    for record in tf.data.TFRecordDataset(str(warmup)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for proto in log.predict_log.request.inputs.values():
            shapes.add(tuple(d.size for d in proto.tensor_shape.dim))
    assert shapes == {(1, 4, 48, 40, 3), (1, 4)}


def test_invalid_arguments(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="top_k=0"):
        export_for_serving(model, tmp_path, top_k=0)
    with pytest.raises(ValueError, match="version=-1"):
        export_for_serving(model, tmp_path, version=-1)
    with pytest.raises(ValueError, match="2 labels"):
        export_for_serving(model, tmp_path, labels=["x", "y"])
    with pytest.raises(ValueError, match="must match the model's input size"):
        export_for_serving(model, tmp_path, image_size=(64, 64))
    with pytest.raises(ValueError, match="pass image_size"):
        export_for_serving(tiny_model(image_size=None), tmp_path)
    with pytest.raises(ValueError, match="model_or_variant"):
        export_for_serving(3, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_maps_arguments(tmp_path, monkeypatch, capsys):
    from mrrn_keras import cli

    calls = []

    def fake_export(variant, base_dir, **kwargs):
        calls.append((variant, base_dir, kwargs))
        if kwargs["version"] == 1:
            raise FileExistsError(f"{base_dir}/1 already exists")
        return pathlib.Path(base_dir) / "4"

    monkeypatch.setattr(export_lib, "export_for_serving", fake_export)
    out = str(tmp_path)
    assert cli.main(["export", "mrrn_tiny.motion", "--out", out, "--top-k", "2", "--xla"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "4")
    assert calls[-1] == (
        "mrrn_tiny.motion",
        out,
        {"version": None, "overwrite": False, "top_k": 2, "jit_compile": True},
    )
    assert cli.main(["export", "x", "--out", out, "--version", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["export", "x", "--out", out, "--version", "3", "--overwrite"]) == 0
    assert calls[-1][2] == {"version": 3, "overwrite": True, "top_k": 5, "jit_compile": False}
