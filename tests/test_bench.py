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


@pytest.mark.slow
def test_motion_probe_runs_on_jax_without_tensorflow(tmp_path):
    # What a GPU session runs to search sizes for the motion checkpoint; the machine
    # has no TensorFlow, so here it is made unimportable (Keras imports it when present).
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _NoTensorFlow())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run(
        ["bash", "bench/gpu.sh", "motion", "--size", "32", "--epochs", "1", "--per_class", "8",
         "--test_per_class", "2", "--symmetries", "reverse,hflip", "--tap_grid", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["backend"] == "jax" and report["tensorflow_imported"] is False
    # 6 training clips per class, times 2 (time reversal) times 2 (mirror).
    assert report["train_clips"] == 3 * 6 * 4
    assert report["changes"] == {"symmetries": "reverse,hflip", "tap_grid": 2}
    assert set(report["per_class"]) == {"still", "rotate_cw", "rotate_ccw"}
    assert 0.0 <= report["test_top1"] <= 1.0


@pytest.mark.slow
def test_tap_motion_reports_every_tap_and_class():
    result = subprocess.run(
        [sys.executable, "bench/tap_motion.py", "--classes", "still,move_left", "--per_class", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    for tap in ("low", "mid", "high"):
        assert set(report[tap]) == {"still", "move_left"}
        # A translation moves the averaged taps more than a still clip's noise does.
        assert report[tap]["move_left"] > report[tap]["still"] > 0


@pytest.mark.slow
def test_pipeline_bench_reports_every_adapter_source_and_worker_count():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "bench/pipeline.py", "--videos", "2", "--clips", "4", "--frames", "12",
         "--shapes", "4x32", "--batch_size", "2", "--models", "tiny", "--steps", "1",
         "--adapters", "tf.data,pydataset"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)["loader_clips_per_s"]["4x32"]
    expected = {f"{source}/{adapter}" for source in ("raw_video", "frame_cache")
                for adapter in ("tf.data", "pydataset")}
    assert expected <= set(rows)
    for name in expected:
        assert set(rows[name]) == {"workers_1", "workers_2", "scaling"}
        assert rows[name]["scaling"] == pytest.approx(rows[name]["workers_2"] / rows[name]["workers_1"], rel=0.02)


@pytest.mark.slow
def test_live_latency_bench_reports_latency_and_drops():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "bench/live.py", "--seconds", "2", "--models", "tiny"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tiny = json.loads(result.stdout)["models"]["tiny"]
    assert tiny["answers"] == 2  # windows of 8 frames at 8 fps: one answer per second
    assert tiny["frames_kept"] == 16 and 0 <= tiny["frames_dropped"] <= 16
    assert 0 <= tiny["latency_ms"]["p50"] <= tiny["latency_ms"]["p99"]


@pytest.mark.slow
def test_timeline_bench_prints_json():
    result = subprocess.run(
        [sys.executable, "bench/timeline.py", "--minutes", "0.1", "--fps", "8", "--size", "32"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = json.loads(result.stdout)["runs"]
    assert run["frames_decoded"] == 48
    assert run["backbone_frame_calls"] == run["distinct_frames_used"] <= 48
    assert run["peak_rss_mib"] > 0 and run["windows"] > 0


@pytest.mark.slow
def test_decode_bench_reports_both_files_with_identical_frames(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "bench/decode.py", "--minutes", "0.1", "--gop", "50", "--short_s", "2",
         "--repeats", "1", "--short_repeats", "1", "--cache_dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["long"]["frames"] == 150 and report["short"]["frames"] == 50
    for part in ("long", "short"):
        assert report[part]["identical"] is True
        assert set(report[part]["seconds"]) == {"sequential", "seek", "seek_warm", "auto"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long_150f_gop50.avi", "short_50f_gop12.avi"]


def _gpu_sh_without_tensorflow(tmp_path, *args, timeout=900):
    """`bash bench/gpu.sh ARGS` under JAX in a process where `import tensorflow` fails."""
    from tests.helpers import no_tensorflow_env

    env = no_tensorflow_env(tmp_path)
    del env["KERAS_BACKEND"]  # gpu.sh sets it
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(["bash", "bench/gpu.sh", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow  # JAX compiles the tiny MRRN's step: about a minute on 2 busy cores
def test_gpu_train_mode_runs_on_jax_without_tensorflow(tmp_path):
    result = _gpu_sh_without_tensorflow(
        tmp_path, "train", "--variant", "mrrn_tiny.motion", "--frames", "4", "--size", "32",
        "--batch", "2", "--steps", "2", "--videos", "2", "--video_size", "64x48",
        "--video_frames", "16")
    report = json.loads(result.stdout)
    assert report["backend"] == "jax" and report["tensorflow_imported"] is False
    assert (report["frames"], report["size"], report["batch"]) == (4, 32, 2)
    rates = report["clips_per_s"]
    assert set(rates) == {"consumption", "loader", "fit_loader"} and min(rates.values()) > 0
    assert report["loader_over_consumption"] == pytest.approx(
        rates["loader"] / rates["consumption"], rel=0.01)


@pytest.mark.slow
def test_gpu_motion_retrain_mode_runs_the_recipe_on_jax_without_tensorflow(tmp_path):
    _gpu_sh_without_tensorflow(tmp_path, "motion-retrain", "--smoke", f"--out={tmp_path / 'run'}",
                               f"--zoo_entry={tmp_path / 'mrrn_tiny.smoke'}", timeout=1800)
    assert (tmp_path / "mrrn_tiny.smoke" / "config.json").is_file()
    assert "on JAX" in (tmp_path / "mrrn_tiny.smoke" / "card.md").read_text()
