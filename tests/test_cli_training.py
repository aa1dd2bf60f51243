"""Tests for mrrn_keras/cli_training.py: `mrrn prepare`, `finetune` and `evaluate` arguments."""

import argparse
import json

import pytest

from mrrn_keras import cli_training
from mrrn_keras.data.cache import open_cache
from mrrn_keras.finetune import FinetuneConfig
from tests.helpers import write_class_videos
from tests.test_imagenet import hub, imagenet_entry, resnet18_file  # noqa: F401  (fixtures)
from tests.test_zoo import home, server  # noqa: F401  (fixtures)


def parse(add_arguments, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_prepare_writes_a_cache_per_subset(tmp_path, capsys):
    write_class_videos(tmp_path / "data" / "train", {"a": 1, "b": 1})
    write_class_videos(tmp_path / "data" / "test", {"b": 1})
    (tmp_path / "data" / "test" / "b" / "broken.avi").write_bytes(b"\0" * 64)
    args = parse(cli_training.prepare_arguments, [
        "--data_format", "folder", "--data_dir", str(tmp_path / "data"), "--out_dir", str(tmp_path / "c"),
        "--short_side", "32"])
    assert cli_training.prepare(args) == 0
    out = capsys.readouterr().out
    assert "train: 2 videos" in out and "test: 1 videos" in out and "skipped" in out
    test = open_cache(tmp_path / "c" / "test")
    assert test.class_names == ("a", "b") and len(test.skipped) == 1
    assert test.shards == ("test-00000-of-00001.frames",)


def test_finetune_arguments_map_onto_the_config():
    args = parse(cli_training.finetune_arguments, [
        "--variant", "mrrn_tiny.motion", "--data_format", "csv", "--data_dir", "d",
        "--out_dir", "o", "--epochs", "3", "--warmup_epochs", "1", "--no-augment", "--flip",
        "--strategy", "mirrored", "--learning_rate", "0.01", "--optimizer", "sgd",
        "--momentum", "0.8"])
    config = cli_training.finetune_config(args)
    assert config == FinetuneConfig(
        variant="mrrn_tiny.motion", data_format="csv", data_dir="d", out_dir="o", epochs=3,
        warmup_epochs=1, augment=False, flip=True, strategy="mirrored", learning_rate=0.01,
        optimizer="sgd", momentum=0.8)
    with pytest.raises(SystemExit):
        parse(cli_training.finetune_arguments, ["--variant", "v"])


def test_evaluate_refuses_a_model_of_other_classes(tmp_path):
    from mrrn_keras.errors import DatasetError

    write_class_videos(tmp_path / "test", {"x": 1})
    args = parse(cli_training.evaluate_arguments, [
        "--variant", "mrrn_tiny.motion", "--data_format", "folder", "--data_dir", str(tmp_path)])
    with pytest.raises(DatasetError, match=r"\['x'\]"):
        cli_training.evaluate(args)


@pytest.mark.parametrize("kind", ["missing", "not a zip", "lambda", "no config"])
def test_evaluate_refuses_a_bad_model_file_in_one_line(tmp_path, capsys, kind):
    import zipfile

    import keras

    from mrrn_keras import cli

    path = tmp_path / "model.keras"
    if kind == "not a zip":
        path.write_text("not a model")
    elif kind == "lambda":  # would run code on load: safe_mode refuses it
        keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)]).save(path)
    elif kind == "no config":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "hello")
    write_class_videos(tmp_path / "data", {"a": 1})
    argv = ["evaluate", "--variant", str(path), "--format", "folder", "--data_dir",
            str(tmp_path / "data")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mrrn evaluate: {path}: ") and "\n" not in err
    if kind == "lambda":
        assert "Lambda" in err


def test_evaluate_takes_the_clip_spec_from_the_model_file(tmp_path, capsys):
    from mrrn_keras import MRRN, cli
    from mrrn_keras.zoo import save_model_file

    model = MRRN(2, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1,
                 class_names=["a", "b"])
    path = save_model_file(model, tmp_path / "model.keras",
                           input_spec={"frames": 4, "height": 32, "width": 32,
                                       "sampling": "segments"})
    write_class_videos(tmp_path / "data" / "test", {"a": 1, "b": 1})
    assert cli.main(["evaluate", "--variant", str(path), "--data_format", "folder",
                     "--data_dir", str(tmp_path / "data")]) == 0
    assert "(2 videos, 1 views each, 0 skipped)" in capsys.readouterr().out


def test_bad_run_folders_and_sizes_get_one_line(tmp_path, capsys):
    from mrrn_keras import cli

    (tmp_path / "file").write_text("x")
    write_class_videos(tmp_path / "data" / "train", {"a": 1, "b": 1})
    write_class_videos(tmp_path / "data" / "test", {"a": 1, "b": 1})
    base = ["finetune", "--variant", "mrrn_tiny.motion", "--data_format", "folder",
            "--data_dir", str(tmp_path / "data")]
    assert cli.main([*base, "--out_dir", str(tmp_path / "file")]) == 1
    assert cli.main([*base, "--out_dir", str(tmp_path / "run"), "--size", "32"]) == 1
    first, second = capsys.readouterr().err.strip().splitlines()
    assert first.startswith("mrrn finetune: ") and "must be a folder" in first
    assert "exactly 64x64" in second and "size=32" in second


def test_the_paper_recipe_command_runs_on_a_tiny_ucf101_tree(hub, tmp_path, resnet18_file,  # noqa: F811
                                                              capsys):
    # README's command (fine-tune an entry that starts from ImageNet; UCF-101's official layout
    # named by --videos_dir/--splits_dir; SGD, momentum 0.9, cosine), at test size: the entry is
    # mrrn_r18.paper with a tiny head, the ImageNet file random weights served by the stand-in hub.
    import numpy as np

    from mrrn_keras import cli
    from mrrn_keras.data.synthetic import make_motion_dataset
    from mrrn_keras.imagenet import read_safetensors
    from mrrn_keras.zoo import load_model_file

    server, path, _ = hub
    data = make_motion_dataset(tmp_path / "ucf101", videos_per_class=4, frames=6, size=32,
                               classes=("still", "grow"), clips_per_group=2, test_fraction=0.5)
    entry = imagenet_entry(tmp_path)
    run = tmp_path / "run"
    argv = ["finetune", "--variant", str(entry), "--data_format", "ucf101",
            "--data_dir", str(data), "--videos_dir", str(data / "videos"),
            "--splits_dir", str(data / "splits"), "--split", "1", "--out_dir", str(run),
            "--frames", "4", "--size", "32", "--sampling", "segments",
            "--optimizer", "sgd", "--momentum", "0.9", "--learning_rate", "1e-3",
            "--weight_decay", "1e-4", "--batch_size", "2", "--epochs", "1", "--eval_clips", "2",
            "--no-jit_compile"]
    assert cli.main(argv) == 0
    assert "top-1" in capsys.readouterr().out
    assert server.counts[path] == 1
    config = json.loads((run / "run_config.json").read_text())
    assert (config["optimizer"], config["momentum"], config["weight_decay"]) == ("sgd", 0.9, 1e-4)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["videos"] == 4 and metrics["train_videos"] == 4
    assert "SGD (momentum 0.9)" in next((run / "entry").iterdir()).joinpath("card.md").read_text()
    # The backbone started from the file: two small SGD steps leave it near those weights
    # (a random start is ~0.1 away).
    model = load_model_file(run / "model.keras")
    kernel = model.backbone.trunks[0].get_layer("conv1_conv").get_weights()[0]
    start = read_safetensors(resnet18_file)["conv1.weight"].transpose(2, 3, 1, 0)
    assert np.abs(kernel - start).max() < 1e-2


def test_optimizer_options():
    import keras

    from mrrn_keras.errors import ConfigError
    from mrrn_keras.finetune import _optimizer

    base = dict(variant="v", data_format="csv", data_dir="d", out_dir="o")
    sgd = _optimizer(FinetuneConfig(**base, optimizer="sgd", momentum=0.8, weight_decay=1e-5), 0.1)
    assert isinstance(sgd, keras.optimizers.SGD)
    assert (sgd.momentum, sgd.weight_decay, sgd.nesterov) == (0.8, 1e-5, False)
    assert isinstance(_optimizer(FinetuneConfig(**base), 0.1), keras.optimizers.AdamW)
    with pytest.raises(ConfigError, match="Received: optimizer='adam'"):
        FinetuneConfig(**base, optimizer="adam")
    with pytest.raises(ConfigError, match="Received: momentum=1.0"):
        FinetuneConfig(**base, momentum=1.0)


def test_prepare_replaces_only_a_cache_it_wrote(tmp_path, capsys):
    from mrrn_keras import cli
    from mrrn_keras.errors import ExistingPathError
    from mrrn_keras.files import OWNED_MARKER

    write_class_videos(tmp_path / "data" / "train", {"a": 1}, num_frames=4)
    write_class_videos(tmp_path / "data" / "test", {"a": 1}, num_frames=4)
    out = tmp_path / "c"
    user = out / "test"
    user.mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    argv = ["--data_format", "folder", "--data_dir", str(tmp_path / "data"), "--out_dir", str(out),
            "--short_side", "32"]
    for overwrite in ([], ["--overwrite"]):
        with pytest.raises(ExistingPathError, match=str(user)):
            cli_training.prepare(parse(cli_training.prepare_arguments, argv + overwrite))
        assert cli.main(["prepare", *argv, *overwrite]) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(user) in err
        # Refused before any subset was written.
        assert sorted(p.name for p in out.iterdir()) == ["test"]
        assert (user / "notes.txt").read_text() == "mine"
    # A copied cache.json does not make a folder a cache the package wrote.
    (user / "cache.json").write_text("{}")
    with pytest.raises(ExistingPathError, match=OWNED_MARKER):
        cli_training.prepare(parse(cli_training.prepare_arguments, argv + ["--overwrite"]))
    user.rename(tmp_path / "kept")
    assert cli_training.prepare(parse(cli_training.prepare_arguments, argv)) == 0
    with pytest.raises(ExistingPathError, match="already exists"):
        cli_training.prepare(parse(cli_training.prepare_arguments, argv))
    assert cli_training.prepare(parse(cli_training.prepare_arguments, argv + ["--overwrite"])) == 0
    assert open_cache(out / "test").num_videos == 1
    assert (tmp_path / "kept" / "notes.txt").read_text() == "mine"
