"""TensorFlow and JAX agree: the same weights give the same numbers on both.

These run in the TensorFlow suite and start JAX-backend Python processes
(Keras picks its backend once per process).
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from mrrn_keras import load_mrrn
from mrrn_keras.data.video import load_clip
from mrrn_keras.predict import classify_videos, sample_clip_path
from tests.helpers import assert_top1_matches_confusion, no_tensorflow_env
from mrrn_keras.zoo import variant_info

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="compares the TensorFlow backend with JAX"
)


def run_under(args, cwd, timeout=600, backend="jax", block_tensorflow=False):
    """Runs `python args...` with KERAS_BACKEND=backend; returns the completed process.

    With `block_tensorflow` (JAX only), `import tensorflow` fails in that process.
    """
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "JAX_PLATFORMS": "cpu",
    }
    if block_tensorflow:
        env = no_tensorflow_env(cwd)
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


CLI_UNDER_JAX = """
import json, sys
from mrrn_keras.cli import main
code = main(["predict", "--json", "--top-k", "9"])
with open(sys.argv[1], "w") as status:
    json.dump({"code": code, "tensorflow_imported": "tensorflow" in sys.modules}, status)
"""


def test_bundled_checkpoint_and_cli_agree_with_tensorflow(tmp_path):
    # `mrrn predict` under JAX, in a process that never imports TensorFlow.
    done = run_under(["-c", CLI_UNDER_JAX, str(tmp_path / "status.json")], tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status == {"code": 0, "tensorflow_imported": False}
    (jax_result,) = json.loads(done.stdout)["predictions"]
    jax_scores = {r["label"]: r["probability"] for r in jax_result["top_k"]}

    info = variant_info("mrrn_tiny.motion")
    (tf_result,) = classify_videos(
        load_mrrn("mrrn_tiny.motion"), [sample_clip_path()], frames=int(info.input["frames"]),
        size=(info.input["height"], info.input["width"]), sampling=info.input["sampling"], top_k=9,
    )
    tf_scores = dict(tf_result.top_k)
    assert sorted(jax_scores) == sorted(tf_scores) == sorted(info.labels)
    for label, score in tf_scores.items():
        assert abs(jax_scores[label] - score) <= 1e-5, label


PREDICT_UNDER_JAX = """
import sys
import keras
import numpy as np
import mrrn_keras  # registers the layers
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), verbose=0)))
"""


def test_finetuned_under_jax_loads_and_exports_under_tensorflow(tmp_path):
    import tensorflow as tf

    from mrrn_keras.export import export_for_serving

    out = tmp_path / "run"
    # Trained where TensorFlow cannot be imported, as on the GPU machine.
    run_under(
        [str(ROOT / "recipes" / "finetune.py"), "--smoke", "--variant", "mrrn_tiny.motion",
         f"--out_dir={out}"],
        tmp_path, block_tensorflow=True,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert_top1_matches_confusion(metrics)
    clip = np.random.default_rng(0).integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "clip.npy", clip)
    run_under(
        ["-c", PREDICT_UNDER_JAX, str(out / "model.keras"), str(tmp_path / "clip.npy"),
         str(tmp_path / "jax.npy")],
        tmp_path,
    )
    jax_probabilities = np.load(tmp_path / "jax.npy")

    model = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(model.predict(clip, verbose=0), jax_probabilities, atol=1e-5)
    version = export_for_serving(model, tmp_path / "serving", warmup=False)
    serving = tf.saved_model.load(str(version)).signatures["serving_default"]
    served = serving(frames=tf.constant(clip))["probabilities"]
    np.testing.assert_allclose(served, jax_probabilities, atol=1e-5)


TORCH_RUN = """
import sys
import numpy as np
import mrrn_keras
from mrrn_keras.data.video import load_clip
from mrrn_keras.predict import sample_clip_path
model = mrrn_keras.load_mrrn("mrrn_tiny.motion")
clip = load_clip(sample_clip_path(), 8, size=(64, 64), mode="segments", training=False)
np.save(sys.argv[1], np.asarray(model.predict(clip[None], verbose=0)))
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed")
def test_torch_backend_agrees_on_the_bundled_checkpoint(tmp_path):
    # Not installed by the test extra (a multi-GB wheel); runs where PyTorch is.
    run_under(["-c", TORCH_RUN, str(tmp_path / "torch.npy")], tmp_path, backend="torch")
    clip = load_clip(sample_clip_path(), 8, size=(64, 64), mode="segments", training=False)
    want = load_mrrn("mrrn_tiny.motion").predict(clip[None], verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "torch.npy"), want, atol=1e-5)
