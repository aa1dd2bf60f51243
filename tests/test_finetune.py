"""Tests for mrrn_keras/finetune.py and distribute.py: each dataset format end to end,
the whole fine-tuning run, distribution strategies and resuming after SIGKILL."""

import json
import os
import pathlib
import re
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
from mrrn_keras.files import OWNED_MARKER
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


def test_finetune_run_writes_everything(tmp_path, recwarn, caplog):
    write_format(tmp_path / "data", "folder")
    write_class_videos(tmp_path / "data" / "train", {"a": 1, "b": 1}, ext=".mp4")
    config = FinetuneConfig(
        variant="tiny", data_format="folder", data_dir=str(tmp_path / "data"),
        out_dir=str(tmp_path / "run"), frames=4, size=32, batch_size=2, epochs=2,
        warmup_epochs=1, eval_clips=2, jit_compile=False, entry_name="mrrn_test.ab",
        validation_fraction=0.25,
    )
    with caplog.at_level("INFO", logger="mrrn_keras"):
        metrics = finetune(config, build_model=tiny_mrrn, command="pytest")
    # A correct run: no Keras warning, one short line per epoch.
    assert not [w for w in recwarn if "ran out of data" in str(w.message)
                or "shuffle" in str(w.message)]
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(len(line) < 120 and "validation top-1" in line for line in epoch_lines)
    run = tmp_path / "run"
    for name in ("metrics.json", "confusion_matrix.png", "curves.png", "model.keras",
                 "log.csv", "run_config.json", "best.weights.h5"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["top1"] == metrics["top1"] and saved["videos"] == 2 and saved["views"] == 2.0
    # One of the 4 training videos (its own group in a folder dataset) chose the epoch.
    assert saved["model_selection"]["method"] == "best_validation_top1"
    assert saved["model_selection"]["validation_videos"] == 1 and saved["train_videos"] == 3
    assert "test split, once" in saved["evaluated_on"]
    assert set(saved["per_class"]) == {"a", "b"} and "top2" in saved
    log_epochs = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert log_epochs == ["0", "1"]
    entry = run / "entry" / "mrrn_test.ab"
    config_json = json.loads((entry / "config.json").read_text())
    assert config_json["labels"] == ["a", "b"]
    assert config_json["weights"]["sha256"] == sha256_file(entry / "model.weights.h5")
    assert config_json["model"]["stream_outputs"] is False
    assert {m["name"] for m in config_json["metrics"]} == {"top1", "top2", "mean_class_accuracy"}
    card = (entry / "card.md").read_text()
    assert card.startswith("# mrrn_test.ab") and "1 validation" in card and "chose nothing" in card
    deploy = keras.saving.load_model(run / "model.keras")
    # No temporary file left behind; the one hidden file is the run folder's ownership marker.
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == [OWNED_MARKER]
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
    # One row per clip: predict_on_batch under two replicas returned each row twice.
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["videos"] == written["videos"] == 2 and written["views"] == 1.0
    assert_top1_matches_confusion(written)
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
    epochs = [int(line.split()[1].split("/")[0].rstrip(":")) for line in result.stdout.splitlines()
              if line.startswith("epoch ")]
    # The run logs "epoch k/N: ..." (1-based) for every epoch it runs: the restart
    # begins right after the last backed-up epoch, so at most the epoch in
    # progress at the kill is redone.
    assert epochs and epochs[0] >= done_at_kill + 1 and epochs[-1] == 4, result.stdout[-3000:]
    assert metrics["videos"] == 2


def test_run_folder_lifecycle_and_honest_counts(tmp_path, monkeypatch):
    from mrrn_keras import finetune as finetune_module
    from mrrn_keras.errors import ConfigError, RunFolderError

    data = tmp_path / "data"
    write_class_videos(data / "train", {"a": 2, "b": 2})
    write_class_videos(data / "test", {"a": 1, "b": 1})
    (data / "train" / "a" / "broken.avi").write_bytes(b"\0" * 64)
    (data / "test" / "b" / "broken.avi").write_bytes(b"\0" * 64)
    run = tmp_path / "run"
    fields = dict(variant="tiny", data_format="folder", data_dir=str(data), out_dir=str(run),
                  frames=4, size=32, batch_size=2, epochs=2, jit_compile=False,
                  entry_name="mrrn_test.life")

    # A kill after training (here: while writing the entry) keeps the resume state...
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune_module, "save_entry", killed)
    with pytest.raises(KeyboardInterrupt):
        finetune(FinetuneConfig(**fields), build_model=tiny_mrrn, command="pytest")
    assert (run / "backup").is_dir()
    monkeypatch.undo()
    # ... so the rerun trains no epoch again and writes what was missing.
    metrics = finetune(FinetuneConfig(**fields), build_model=tiny_mrrn, command="pytest")
    epochs = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"] and not (run / "backup").exists()
    assert (run / "entry" / "mrrn_test.life" / "config.json").is_file()
    # 2 unreadable files, read in 2 epochs and at evaluation: 2 skipped, counted once each.
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["skipped_videos"] == metrics["skipped_videos"] == 2
    assert sorted(pathlib.Path(p).name for p in saved["skipped_files"]) == ["broken.avi"] * 2
    assert saved["train_videos"] == 4 and saved["videos"] == 2
    assert saved["model_selection"] == {"method": "last_epoch"}
    card = (run / "entry" / "mrrn_test.life" / "card.md").read_text()
    assert "4 training videos" in card and "2 unreadable files skipped" in card

    # A finished run is refused, and a failed start touches nothing.
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    with pytest.raises(RunFolderError, match="finished run"):
        finetune(FinetuneConfig(**fields), build_model=tiny_mrrn)
    with pytest.raises(datasets.DatasetError, match="no_data"):
        finetune(FinetuneConfig(**{**fields, "data_dir": str(tmp_path / "no_data"),
                                   "overwrite": True}), build_model=tiny_mrrn)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    # Bad folders and sizes fail in one line, before anything is written.
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="must be a folder"):
        finetune(FinetuneConfig(**{**fields, "out_dir": str(tmp_path / "file")}),
                 build_model=tiny_mrrn)
    with pytest.raises(ConfigError, match="exactly 64x64.*size=32"):
        finetune(FinetuneConfig(**{**fields, "variant": "mrrn_tiny.motion",
                                   "out_dir": str(tmp_path / "other")}))
    assert not (tmp_path / "other").exists()


def test_validation_is_held_out_by_group():
    index = datasets.VideoIndex(
        tuple(f"/d/{c}/v_{c}_g{g:02d}_c{k}.avi" for c in ("A", "B") for g in (1, 2, 3, 4)
              for k in (1, 2)),
        tuple(label for label in (0, 1) for _ in range(8)), ("A", "B"))
    groups = datasets.video_groups(index, "ucf101")
    kept, held = datasets.split_by_group(index, groups, 0.25, seed=3)
    assert len(kept) == 12 and len(held) == 4
    held_groups = {datasets.video_groups(held, "ucf101")[i] for i in range(len(held))}
    assert len(held_groups) == 1 and not held_groups & set(datasets.video_groups(kept, "ucf101"))
    hmdb = datasets.VideoIndex(("/h/run/Film_A_run_f_nm_np1_ba_med_0.avi",
                                "/h/run/Film_A_run_f_nm_np1_ba_med_1.avi"), (0, 0), ("run",))
    assert datasets.video_groups(hmdb, "hmdb51") == ("Film_A", "Film_A")


@pytest.mark.slow
def test_on_error_raise_stops_the_run_and_the_process_exits(tmp_path):
    fields = job_fields(tmp_path, on_error="raise", epochs=2)
    (tmp_path / "data" / "train" / "a" / "broken.avi").write_bytes(b"\0" * 64)
    start = time.time()
    done = subprocess.run(job_command(fields), cwd=ROOT, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode != 0 and "broken.avi" in done.stderr, done.stderr[-3000:]
    assert "VideoError" in done.stderr and time.time() - start < 400
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_deterministic_runs_repeat_and_restore_the_switch(tmp_path):
    from tensorflow.python.framework import config as tf_config

    data = tmp_path / "data"
    write_class_videos(data / "train", {"a": 2, "b": 2})
    write_class_videos(data / "test", {"a": 1, "b": 1})

    def run(name, seed):
        fields = dict(variant="tiny", data_format="folder", data_dir=str(data),
                      out_dir=str(tmp_path / name), frames=4, size=32, batch_size=2, epochs=1,
                      jit_compile=False, deterministic=True, seed=seed, augment=True,
                      entry_name=f"mrrn_test.{name}")
        finetune(FinetuneConfig(**fields), build_model=tiny_mrrn, command="pytest")
        return load_mrrn(tmp_path / name / "entry" / f"mrrn_test.{name}").get_weights()

    first, again = run("first", 3), run("again", 3)
    assert not tf_config.is_op_determinism_enabled()  # put back after each run
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_backup_killed_mid_write_keeps_the_previous_epoch(tmp_path, monkeypatch):
    # Keras's BackupAndRestore rewrote latest.weights.h5 in place: a run killed while
    # writing it could not restart ("bad object header version number").
    from mrrn_keras.finetune import _AtomicBackupAndRestore

    def build():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
        return model

    model = build()
    backup = _AtomicBackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)
    backup.set_model(model)
    backup.on_epoch_end(0)
    saved = [w.copy() for w in model.get_weights()]

    def killed(*args, **kwargs):  # half a file, then the process dies
        path = kwargs["filepath"] if "filepath" in kwargs else args[0]
        pathlib.Path(path).write_bytes(b"\x89HDF\r\n")
        raise KeyboardInterrupt

    model.set_weights([w + 1.0 for w in saved])
    monkeypatch.setattr(model, "save_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(1)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "latest.weights.h5", "training_metadata.json"]

    restarted = build()
    restore = _AtomicBackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)
    restore.set_model(restarted)
    restore.on_train_begin()
    assert restarted._initial_epoch == 1
    for got, want in zip(restarted.get_weights(), saved):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["backup", "log.csv", "model.keras", "entry/mrrn_test.mine"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_user_files_in_the_run_folder_are_kept(tmp_path, name, overwrite):
    from mrrn_keras.errors import ExistingPathError

    data = tmp_path / "data"
    write_class_videos(data / "train", {"a": 1, "b": 1}, num_frames=4)
    write_class_videos(data / "test", {"a": 1}, num_frames=4)
    run = tmp_path / "run"
    user = run / name
    if "." in user.name and "/" not in name:
        run.mkdir()
        user.write_text("mine")
    else:
        user.mkdir(parents=True)
        (user / "notes.txt").write_text("mine")
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))

    def must_not_train(num_classes, class_names):
        raise AssertionError("the run started although its folder holds a user's file")

    fields = dict(variant="tiny", data_format="folder", data_dir=str(data), out_dir=str(run),
                  frames=4, size=32, batch_size=2, epochs=1, jit_compile=False,
                  entry_name="mrrn_test.mine", overwrite=overwrite)
    with pytest.raises(ExistingPathError, match=re.escape(str(user))) as err:
        finetune(FinetuneConfig(**fields), build_model=must_not_train)
    assert "\n" not in str(err.value)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    kept = user / "notes.txt" if user.is_dir() else user
    assert kept.read_text() == "mine"
