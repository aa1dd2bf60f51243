"""Training where TensorFlow is absent: the JAX backend in a process that cannot import it.

`finetune`, the `mrrn prepare / finetune / evaluate` commands and a resumed run,
and JAX data parallelism (`--strategy data_parallel`) against one device.
These start JAX-backend processes from the TensorFlow suite (Keras picks its
backend once per process, and XLA its host devices once).
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.helpers import no_tensorflow_env, write_class_videos

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="starts its own JAX processes"
)

DATA_PARALLEL = """
import json, sys
import jax, keras, numpy as np
from mrrn_keras import MRRN
from mrrn_keras.distribute import make_strategy, run_scope
from mrrn_keras.training import compile_for_streams, repeat_labels

def loss_and_grads(strategy):
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1,
                     stream_outputs=True, image_size=(32, 32))
        compile_for_streams(model, keras.optimizers.SGD(0.1))
    x = np.random.default_rng(0).integers(0, 256, (4, 4, 32, 32, 3), dtype=np.uint8)
    y = repeat_labels(model, np.array([0, 1, 2, 1], np.int32))
    with run_scope(strategy):
        before = [np.asarray(v) for v in model.trainable_variables]
        loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
        after = [np.asarray(v) for v in model.trainable_variables]
        shardings = {str(model.trainable_variables[0].value.sharding)}
    # SGD without momentum: the step is -0.1 * gradient.
    grads = [(b - a) / 0.1 for b, a in zip(before, after)]
    return loss, grads, shardings

one = loss_and_grads(make_strategy("default"))
two = loss_and_grads(make_strategy("data_parallel"))
auto = type(make_strategy("auto")).__name__
np.save(sys.argv[1], np.concatenate([g.ravel() for g in one[1]]))
np.save(sys.argv[2], np.concatenate([g.ravel() for g in two[1]]))
print(json.dumps({"devices": len(jax.devices()), "loss_one": one[0], "loss_two": two[0],
                  "auto": auto, "sharding": sorted(two[2])[0]}))
"""


def test_data_parallel_gives_one_device_loss_and_gradients(tmp_path):
    env = no_tensorflow_env(tmp_path, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    one, two = tmp_path / "one.npy", tmp_path / "two.npy"
    done = subprocess.run([sys.executable, "-c", DATA_PARALLEL, str(one), str(two)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["devices"] == 2
    # Two CPU devices are not accelerators: "auto" stays on one device.
    assert report["auto"] == "LocalStrategy"
    # The variables live on a 2-device "batch" mesh, replicated (no axis sharded).
    assert "'batch': 2" in report["sharding"] and "spec=P(None, None, None, None)" in report["sharding"]
    assert report["loss_two"] == pytest.approx(report["loss_one"], rel=1e-5)
    np.testing.assert_allclose(np.load(two), np.load(one), rtol=1e-4, atol=1e-5)


def _dataset(root):
    write_class_videos(root / "train", {"a": 3, "b": 3}, num_frames=10)
    write_class_videos(root / "test", {"a": 1, "b": 1}, num_frames=10)
    return root


CLI_WITHOUT_TENSORFLOW = """
import json, sys
from mrrn_keras.cli import main
data, cache, run = sys.argv[1:4]
codes = [
    main(["prepare", "--data_format", "folder", "--data_dir", data, "--out_dir", cache,
          "--short_side", "40"]),
    main(["finetune", "--variant", "mrrn_tiny.motion", "--data_format", "folder",
          "--data_dir", data, "--cache_dir", cache, "--out_dir", run, "--epochs", "2",
          "--warmup_epochs", "1", "--batch_size", "2", "--workers", "2"]),
    main(["evaluate", "--variant", run + "/model.keras", "--data_format", "folder",
          "--data_dir", data, "--cache_dir", cache, "--out_dir", run + "/evaluated"]),
]
print(json.dumps({"codes": codes, "tensorflow_imported": "tensorflow" in sys.modules}))
"""


@pytest.mark.slow
def test_prepare_finetune_evaluate_commands_without_tensorflow(tmp_path):
    data = _dataset(tmp_path / "data")
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITHOUT_TENSORFLOW, str(data), str(tmp_path / "cache"), str(run)],
        env=no_tensorflow_env(tmp_path), capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(done.stdout.splitlines()[-1])
    assert status == {"codes": [0, 0, 0], "tensorflow_imported": False}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["videos"] == 2 and metrics["model_selection"]["method"] == "last_epoch"
    # `mrrn evaluate` of the saved model on the same cache agrees with the run's own test.
    evaluated = json.loads((run / "evaluated" / "metrics.json").read_text())
    assert evaluated["top1"] == metrics["top1"] and evaluated["videos"] == 2
    for name in ("model.keras", "log.csv", "curves.png", "confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert len(list((run / "entry").iterdir())) == 1
    assert not (run / "tensorboard").exists()  # Keras writes TensorBoard logs with tf.summary
    # Two epochs logged (warm-up, then the whole model).
    assert len((run / "log.csv").read_text().splitlines()) == 3


@pytest.mark.slow
def test_killed_run_resumes_without_tensorflow_on_the_same_clips(tmp_path):
    _dataset(tmp_path / "data")
    fields = dict(variant="tiny", data_format="folder", data_dir=str(tmp_path / "data"),
                  out_dir=str(tmp_path / "run"), frames=4, size=32, batch_size=2, epochs=4,
                  validation_fraction=0.34, jit_compile=False)
    cmd = [sys.executable, "-m", "tests.finetune_job", json.dumps(fields)]
    env = no_tensorflow_env(tmp_path)
    metadata = tmp_path / "run" / "backup" / "main" / "training_metadata.json"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline, done_at_kill = time.time() + 600, None
    while time.time() < deadline and proc.poll() is None:
        try:
            done_at_kill = json.loads(metadata.read_text())["epoch"]
        except (OSError, ValueError):
            done_at_kill = None
        if done_at_kill:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    assert done_at_kill and proc.returncode == -signal.SIGKILL, proc.stdout.read()[-3000:]
    resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    epochs = [int(line.split()[1].split("/")[0]) for line in resumed.stdout.splitlines()
              if line.startswith("epoch ")]
    assert epochs and epochs[0] >= done_at_kill + 1 and epochs[-1] == 4, resumed.stdout[-3000:]
    assert "METRICS " in resumed.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model_selection"]["method"] == "best_validation_top1"
    assert not (tmp_path / "run" / "backup").exists()


def test_resumed_phase_reads_the_epoch_its_backup_names(tmp_path):
    from mrrn_keras.finetune import _resume_epoch

    backup = tmp_path / "main"
    assert _resume_epoch(backup, 2) == 2
    backup.mkdir()
    (backup / "training_metadata.json").write_text('{"epoch": 5, "batch": -1}')
    assert _resume_epoch(backup, 2) == 5
    (backup / "training_metadata.json").write_text('{"epo')  # half written: start over
    assert _resume_epoch(backup, 2) == 2


def test_plots_are_left_out_with_a_warning_without_matplotlib(monkeypatch, caplog):
    import builtins

    from mrrn_keras.finetune import _can_plot

    assert _can_plot()
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert not _can_plot()
    assert "matplotlib is not installed" in caplog.text
