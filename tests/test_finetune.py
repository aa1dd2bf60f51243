"""Tests for mrrn_keras/finetune.py and distribute.py: each dataset format end to end,
the whole fine-tuning run, distribution strategies and resuming after SIGKILL."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from mrrn_keras import MRRN
from mrrn_keras.data import datasets, pipeline
from mrrn_keras.data.cache import prepare_cache
from mrrn_keras.data.synthetic import make_motion_dataset
from mrrn_keras.distribute import is_chief, make_strategy
from mrrn_keras.download import sha256_file
from mrrn_keras.finetune import FinetuneConfig, evaluate, finetune
from mrrn_keras.training import compile_for_streams, evaluate_videos, output_keys
from mrrn_keras.zoo import load_mrrn
from tests.helpers import assert_top1_matches_confusion, write_class_videos

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = pipeline.ClipSpec(clip_len=4, size=32)


def tiny_mrrn(num_classes, class_names=None, stream_outputs=True):
    return MRRN(
        num_classes, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1,
        stream_outputs=stream_outputs, class_names=class_names, image_size=(32, 32),
    )


def write_format(root, fmt):
    """A 2-class dataset in `fmt` with 2 train and 2 test videos (mpeg4 .avi)."""
    if fmt == "ucf101":
        make_motion_dataset(root, videos_per_class=2, frames=8, size=32, classes=("grow", "shrink"),
                            clips_per_group=1, test_fraction=0.5)
        return
    if fmt == "folder":
        write_class_videos(root / "train", {"a": 1, "b": 1})
        write_class_videos(root / "test", {"a": 1, "b": 1})
        return
    paths = write_class_videos(root / "videos", {"a": 2, "b": 2})
    rel = [os.path.relpath(p, root / "videos") for p in paths]
    if fmt == "hmdb51":
        (root / "splits").mkdir()
        for name in ("a", "b"):
            lines = [f"{name}_0.avi 1", f"{name}_1.avi 2"]
            (root / "splits" / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")
        return
    (root / "train.csv").write_text(f"path,label\nvideos/{rel[0]},a\nvideos/{rel[2]},b\n")
    (root / "test.csv").write_text(f"videos/{rel[1]},a,0,0.5\nvideos/{rel[3]},b,0,0.5\n")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = tiny_mrrn(2)
    compile_for_streams(model, keras.optimizers.AdamW(1e-3), jit_compile=False)
    return model


@pytest.mark.parametrize("fmt", datasets.DATASET_FORMATS)
def test_each_format_indexes_fits_and_evaluates(tmp_path, fmt, model):
    write_format(tmp_path, fmt)
    train = datasets.read_dataset(fmt, tmp_path, subset="train")
    test = datasets.read_dataset(fmt, tmp_path, subset="test", class_names=train.class_names)
    assert len(train) == len(test) == 2 and len(train.class_names) == 2
    keys = output_keys(model)
    train_ds = pipeline.clip_dataset(train, SPEC, training=True, batch_size=2, label_keys=keys,
                                     augment=pipeline.Augment(), seed=0)
    history = model.fit(train_ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    metrics = evaluate_videos(
        model, pipeline.clip_dataset(test, SPEC, training=False, batch_size=3, num_clips=2),
        train.class_names,
    )
    assert metrics["videos"] == 2 and metrics["views"] == 2.0
    assert set(metrics["by_output"]) == {"probabilities", "low", "mid", "high"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 2


def test_finetune_run_writes_everything(tmp_path):
    write_format(tmp_path / "data", "folder")
    write_class_videos(tmp_path / "data" / "train", {"a": 1, "b": 1}, ext=".mp4")
    config = FinetuneConfig(
        variant="tiny", data_format="folder", data_dir=str(tmp_path / "data"),
        out_dir=str(tmp_path / "run"), frames=4, size=32, batch_size=2, epochs=2,
        warmup_epochs=1, eval_clips=2, jit_compile=False, entry_name="mrrn_test.ab",
    )
    metrics = finetune(config, build_model=tiny_mrrn, command="pytest")
    run = tmp_path / "run"
    for name in ("metrics.json", "confusion_matrix.png", "curves.png", "model.keras",
                 "log.csv", "run_config.json", "best.weights.h5"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["top1"] == metrics["top1"] and saved["videos"] == 2 and saved["views"] == 2.0
    assert set(saved["per_class"]) == {"a", "b"} and "top2" in saved
    log_epochs = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert log_epochs == ["0", "1"]
    entry = run / "entry" / "mrrn_test.ab"
    config_json = json.loads((entry / "config.json").read_text())
    assert config_json["labels"] == ["a", "b"]
    assert config_json["weights"]["sha256"] == sha256_file(entry / "model.weights.h5")
    assert config_json["model"]["stream_outputs"] is False
    assert {m["name"] for m in config_json["metrics"]} == {"top1", "top2", "mean_class_accuracy"}
    assert (entry / "card.md").read_text().startswith("# mrrn_test.ab")
    deploy = keras.saving.load_model(run / "model.keras")
    restored = load_mrrn(entry)
    assert restored.class_names == ("a", "b")
    frames = np.random.default_rng(0).integers(0, 255, (1, 4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(restored(frames), deploy(frames), atol=1e-6)
    # Evaluation alone, on the frame cache this time.
    test = datasets.read_dataset("folder", tmp_path / "data", subset="test")
    cache = prepare_cache(test, tmp_path / "cache", short_side=32)
    again = evaluate(deploy, cache, SPEC, num_clips=2, out_dir=tmp_path / "eval")
    assert again["top1"] == metrics["top1"] and (tmp_path / "eval" / "confusion_matrix.png").is_file()


def test_config_validation():
    with pytest.raises(ValueError, match="data_format='kinetics'"):
        FinetuneConfig(variant="v", data_format="kinetics", data_dir="d", out_dir="o")
    with pytest.raises(ValueError, match="warmup_epochs=3, epochs=3"):
        FinetuneConfig(variant="v", data_format="csv", data_dir="d", out_dir="o", epochs=3,
                       warmup_epochs=3)
    with pytest.raises(ValueError, match="eval_crops=2"):
        FinetuneConfig(variant="v", data_format="csv", data_dir="d", out_dir="o", eval_crops=2)
    with pytest.raises(ValueError, match="strategy=.gpu."):
        make_strategy("gpu")


def test_is_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 0}}))
    assert is_chief()


def job_command(fields, *extra):
    return [sys.executable, "-m", "tests.finetune_job", json.dumps(fields), *map(str, extra)]


def job_fields(tmp_path, **overrides):
    data = tmp_path / "data"
    if not data.exists():
        write_format(data, "folder")
        write_class_videos(data / "train", {"a": 1, "b": 1}, ext=".mp4")
    fields = dict(variant="tiny", data_format="folder", data_dir=str(data),
                  out_dir=str(tmp_path / "run"), frames=4, size=32, batch_size=2, epochs=1,
                  jit_compile=False)
    return {**fields, **overrides}


def run_job(cmd, env=None, timeout=600):
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("METRICS ")][-1]
    return json.loads(line[len("METRICS "):]), result


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    metrics, result = run_job(job_command(job_fields(tmp_path, strategy="mirrored"), 2))
    assert metrics["videos"] == 2
    assert (tmp_path / "run" / "entry").is_dir()


@pytest.mark.slow
def test_mixed_precision_run(tmp_path):
    run_job(job_command(job_fields(tmp_path, mixed_precision=True)))
    assert_top1_matches_confusion(json.loads((tmp_path / "run" / "metrics.json").read_text()))
    # The deploy model is float32 although it was trained in mixed precision.
    entry = next((tmp_path / "run" / "entry").iterdir())
    assert load_mrrn(entry).predict(np.zeros((1, 4, 32, 32, 3), "uint8"), verbose=0).dtype == np.float32


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_mirrored_two_local_workers(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    fields = job_fields(tmp_path, strategy="multi_worker")
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen(job_command(fields), cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out[-2000:] + err[-4000:]
        assert "METRICS " in out
    run = tmp_path / "run"
    assert (run / "metrics.json").is_file() and (run / "entry").is_dir()
    scratch = [p for p in run.iterdir() if p.name.startswith("worker_scratch_")]
    assert len(scratch) == 1  # the non-chief kept its files apart


@pytest.mark.slow
def test_sigkill_then_restart_resumes(tmp_path):
    fields = job_fields(tmp_path, epochs=4)
    cmd = job_command(fields)
    metadata = tmp_path / "run" / "backup" / "main" / "training_metadata.json"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 600
    done_at_kill = None
    while time.time() < deadline and proc.poll() is None:
        if metadata.exists():
            try:
                done_at_kill = json.loads(metadata.read_text())["epoch"]
            except ValueError:
                done_at_kill = None
            if done_at_kill:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.2)
    proc.wait()
    assert done_at_kill and proc.returncode == -signal.SIGKILL, proc.stdout.read()[-3000:]
    metrics, result = run_job(cmd)
    epochs = [int(line.split()[1].split("/")[0]) for line in result.stdout.splitlines()
              if line.startswith("Epoch ")]
    # Keras prints "Epoch k/N" (1-based) for every epoch it runs: the restart
    # begins right after the last backed-up epoch, so at most the epoch in
    # progress at the kill is redone.
    assert epochs and epochs[0] >= done_at_kill + 1 and epochs[-1] == 4, result.stdout[-3000:]
    assert metrics["videos"] == 2
