"""The benchmark scripts run end to end at a tiny size (no timings are checked)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_preset_runs_on_jax_without_tensorflow():
    # The one command of a GPU session, at a size a CPU runs in seconds; the
    # GPU machine has no TensorFlow, so the run must not import it.
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "bench/gpu.sh", "--shapes", "2x8x16", "--repeats", "3", "--budget_s", "0.1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["backend"] == "jax"
    assert report["tensorflow_imported"] is False
    assert report["matmul_precision"] == "highest"
    (row,) = report["results"]
    layers = row["layers"]
    for name in ("floor", "sru_auto", "sru_xla", "sru_unroll8", "paper_auto", "paper_xla",
                 "paper_unroll8", "paper_scan", "lstm", "gru"):
        assert {"forward_ms", "forward_backward_ms"} <= set(layers[name]), name
        assert layers[name]["forward_x_floor"] > 0
    torch_lstm = layers["torch_lstm"]
    assert "forward_ms" in torch_lstm or torch_lstm["skipped"].startswith("skipped: ")
