"""Tests for mrrn_keras/deploy: LiteRT, ONNX and the streaming exports."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mrrn_keras import MRRN
from mrrn_keras.cli import main
from mrrn_keras.data.video import load_clip, write_video
from mrrn_keras.deploy.export import export_model
from mrrn_keras.deploy.litert import custom_ops
from mrrn_keras.deploy.runtime import ExportedStream, litert_interpreter
from mrrn_keras.errors import BackendError, ExportError
from mrrn_keras.predict import sample_clip_path
from mrrn_keras.zoo import load_mrrn
from tests.helpers import no_tensorflow_env

VARIANT = "mrrn_tiny.motion"
SIZE = (32, 32)


def tiny_model(**kwargs):
    kwargs.setdefault("sru_layers", 2)
    return MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, image_size=SIZE,
                class_names=["a", "b", "c"], **kwargs)


def random_frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


def run_litert(path, frames):
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    assert runner.get_input_details()["frames"]["dtype"] == np.uint8
    return runner(frames=frames)["probabilities"]


@pytest.fixture(scope="module")
def motion():
    model = load_mrrn(VARIANT)
    clip = load_clip(sample_clip_path(), 8, size=(64, 64))[None]  # (1, 8, 64, 64, 3)
    return model, clip, model.predict(clip, verbose=0)


def test_litert_on_builtin_ops_matches_keras_on_the_bundled_clip(motion, tmp_path):
    _, clip, expected = motion
    path = export_model(VARIANT, tmp_path / "litert", format="litert")
    assert path.name == "model.tflite"
    assert custom_ops(path.read_bytes()) == set()
    np.testing.assert_allclose(run_litert(path, clip), expected, atol=1e-4)
    labels = (path.parent / "labels.txt").read_text().splitlines()
    assert labels == list(motion[0].class_names)
    manifest = json.loads((path.parent / "deploy.json").read_text())
    assert manifest["signatures"]["serving_default"]["frames"] == "uint8 (1, 8, 64, 64, 3)"


def test_onnx_matches_keras_on_the_bundled_clip(motion, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    _, clip, expected = motion
    path = export_model(VARIANT, tmp_path / "onnx", format="onnx")
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["frames"]
    (got,) = session.run(["probabilities"], {"frames": clip})
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ("dynamic", "int8"))
def test_quantized_litert_stays_on_builtin_ops(tmp_path, quantization):
    model = tiny_model()
    video = random_frames((1, 4, *SIZE, 3))
    float_path = export_model(model, tmp_path / "float", format="litert", frames=4)
    path = export_model(model, tmp_path / quantization, format="litert", frames=4,
                        quantization=quantization,
                        representative=list(random_frames((4, 4, *SIZE, 3), seed=1)))
    assert custom_ops(path.read_bytes()) == set()
    assert path.stat().st_size < float_path.stat().st_size
    probabilities = run_litert(path, video)
    # int8: the softmax output is dequantized from 8 bits in steps of 1/256 (TFLite's fixed
    # softmax output scale), so each of the 3 probabilities may be half a step off.
    tolerance = probabilities.size * 0.5 / 256 if quantization == "int8" else 1e-3
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=tolerance)
    assert json.loads((path.parent / "deploy.json").read_text())["quantization"] == quantization


@pytest.mark.parametrize("pooling", ("last", "mean", "max"))
def test_stream_exports_frame_by_frame_equal_the_whole_clip(tmp_path, pooling):
    model = tiny_model(time_pooling=pooling)
    video = random_frames((1, 5, *SIZE, 3))
    whole = np.asarray(model(video))
    for fmt in ("savedmodel", "litert"):
        path = export_model(model, tmp_path / fmt, format=fmt, stream=True)
        if fmt == "litert":
            assert custom_ops(path.read_bytes()) == set()
        stream = ExportedStream(path)
        assert stream.labels == ["a", "b", "c"]
        for t in range(video.shape[1]):
            got = stream.update(video[:, t:t + 1])
            np.testing.assert_allclose(got, model(video[:, :t + 1]), atol=1e-4)
        np.testing.assert_allclose(got, whole, atol=1e-4)
        assert stream.frames_seen == 5


def test_stream_savedmodel_takes_any_batch_and_chunk(tmp_path):
    model = tiny_model(time_pooling="mean")
    video = random_frames((2, 6, *SIZE, 3))
    loaded = tf.saved_model.load(str(export_model(model, tmp_path / "sm", format="savedmodel",
                                                  stream=True)))
    states = loaded.signatures["init_states"](batch_size=tf.constant(2))
    assert sorted(states) == sorted(
        ["frames_seen"] + [f"{s}_sru_{i}_c" for s in ("low", "mid", "high") for i in (0, 1)]
        + [f"{s}_pool" for s in ("low", "mid", "high")]
    )
    for chunk in (video[:, :4], video[:, 4:]):
        outputs = loaded.signatures["step"](frames=tf.constant(chunk), **states)
        states = {k: v for k, v in outputs.items() if k != "probabilities"}
    np.testing.assert_allclose(outputs["probabilities"], model(video), atol=1e-4)


def test_invalid_combinations(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="streaming model"):
        export_model(model, tmp_path / "a", format="onnx", stream=True)
    with pytest.raises(ValueError, match="Quantization"):
        export_model(model, tmp_path / "b", format="litert", stream=True, quantization="dynamic")
    with pytest.raises(ValueError, match="format"):
        export_model(model, tmp_path / "c", format="tflite")
    with pytest.raises(ValueError, match="representative"):
        export_model(model, tmp_path / "d", format="litert", frames=2, quantization="int8")
    with pytest.raises(ExportError, match="state_gates"):
        export_model(tiny_model(state_gates=True), tmp_path / "e", format="litert", frames=2)
    assert not any(tmp_path.iterdir())


def test_cli_exports_litert_stream_and_predicts_from_it(tmp_path, capsys):
    out = tmp_path / "stream"
    assert main(["export", VARIANT, "--format", "litert", "--stream", "--out", str(out)]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("stream.tflite")
    assert main(["export", VARIANT, "--format", "litert", "--stream", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err

    video = tmp_path / "clip.avi"
    frames = load_clip(sample_clip_path(), 8, size=(64, 64))
    write_video(video, frames, codec="mjpeg")
    decoded = load_clip(video, 8, size=(64, 64))[None]
    assert main(["predict", "--stream", "--model", path, "--source", str(video), "--chunk", "4",
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frames"] for r in rows] == [4, 8]
    expected = load_mrrn(VARIANT).predict(decoded, verbose=0)[0]
    label, p = rows[-1]["top_k"][0]
    assert label == load_mrrn(VARIANT).class_names[int(np.argmax(expected))]
    np.testing.assert_allclose(p, expected.max(), atol=1e-4)

    # The same file where TensorFlow cannot be imported: ai-edge-litert's runtime.
    script = ("import sys; from mrrn_keras.cli import main; "
              "code = main(sys.argv[1:]); assert 'tensorflow' not in sys.modules; sys.exit(code)")
    done = subprocess.run(
        [sys.executable, "-c", script, "predict", "--stream", "--model", path, "--source",
         str(video), "--chunk", "4", "--json"],
        env=no_tensorflow_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    litert_rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frames"] for r in litert_rows] == [4, 8]
    for row, other in zip(rows, litert_rows):  # another build of the same runtime
        assert [label for label, _ in row["top_k"]] == [label for label, _ in other["top_k"]]
        np.testing.assert_allclose([p for _, p in row["top_k"]], [p for _, p in other["top_k"]],
                                   atol=1e-5)

    # Live, at the file's own rate: windows of --chunk frames, each judged on its own.
    assert main(["predict", "--stream", "--realtime", "--model", path, str(video), "--chunk", "4",
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    windows = load_mrrn(VARIANT).predict(decoded.reshape(2, 4, 64, 64, 3), verbose=0)
    assert len(rows) == 2
    for row, expected in zip(rows, windows):
        np.testing.assert_allclose(row["top_k"][0][1], expected.max(), atol=1e-4)


def test_litert_without_a_runtime_is_a_one_line_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_runtime(name, *args, **kwargs):
        if name.split(".")[0] in ("tensorflow", "ai_edge_litert"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_runtime)
    with pytest.raises(BackendError, match=r"x\.tflite: .*pip install ai-edge-litert"):
        litert_interpreter(tmp_path / "x.tflite")


def test_predict_source_that_cannot_open(capsys):
    assert main(["predict", "--stream", "--source", "rtsp://127.0.0.1:9/none"]) == 1
    assert "cannot open the source" in capsys.readouterr().err


# === Only what an export wrote is replaced ===


def fake_write(model, folder, **kwargs):
    (folder / "model.tflite").write_bytes(b"new")
    return {"format": "litert", "file": "model.tflite", "stream": False}


@pytest.fixture
def no_conversion(monkeypatch):
    """Exports that write a stand-in model file instead of converting; counts the conversions."""
    from mrrn_keras.deploy import export as deploy_export

    calls = []
    monkeypatch.setattr(deploy_export, "_write",
                        lambda *args, **kwargs: calls.append(1) or fake_write(*args, **kwargs))
    return calls


@pytest.mark.parametrize("kind", ["folder", "symlink", "file"])
def test_overwrite_refuses_what_no_export_wrote_before_converting(tmp_path, no_conversion,
                                                                  capsys, kind):
    from mrrn_keras.errors import ExistingPathError

    out = tmp_path / "mine"
    mine = tmp_path / "elsewhere"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    if kind == "folder":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif kind == "symlink":
        out.symlink_to(mine, target_is_directory=True)
    else:
        out.write_text("mine")
    with pytest.raises(ExistingPathError, match=str(out)):
        export_model(tiny_model(), out, format="litert", frames=2, overwrite=True)
    assert no_conversion == []
    assert main(["export", VARIANT, "--format", "onnx", "--overwrite", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(out) in err and no_conversion == []
    assert (mine / "notes.txt").read_text() == "mine"
    assert (out / "notes.txt").read_text() == "mine" if kind != "file" else out.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "mine"]


def test_overwrite_replaces_an_export_and_killed_exports_are_cleaned(tmp_path, no_conversion):
    from mrrn_keras.errors import ExistingPathError
    from mrrn_keras.files import TEMP_KIND, mark_owned

    out = tmp_path / "litert"
    export_model(tiny_model(), out, format="litert", frames=2)
    with pytest.raises(ExistingPathError, match="already exists"):
        export_model(tiny_model(), out, format="litert", frames=2)
    killed = tmp_path / ".tmp-litert-killed"
    killed.mkdir()
    (killed / "export").mkdir()
    mark_owned(killed, TEMP_KIND)
    record = json.loads((killed / ".mrrn-owned").read_text())
    (killed / ".mrrn-owned").write_text(json.dumps({**record, "pid": 999999999}))
    user = tmp_path / ".tmp-litert-user"  # the same name pattern, no marker
    user.mkdir()
    path = export_model(tiny_model(), out, format="litert", frames=2, overwrite=True)
    assert path == out / "model.tflite" and path.read_bytes() == b"new"
    assert not killed.exists() and user.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-litert-user", "litert"]
