"""Tests for mrrn_keras/cli_training.py: `mrrn prepare`, `finetune` and `evaluate` arguments."""

import argparse
import json

import pytest

from mrrn_keras import cli_training
from mrrn_keras.data.cache import open_cache
from mrrn_keras.finetune import FinetuneConfig
from tests.helpers import write_class_videos


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
    assert test.shards == ("test-00000-of-00001.tfrecord",)


def test_finetune_arguments_map_onto_the_config():
    args = parse(cli_training.finetune_arguments, [
        "--variant", "mrrn_tiny.motion", "--data_format", "csv", "--data_dir", "d",
        "--out_dir", "o", "--epochs", "3", "--warmup_epochs", "1", "--no-augment", "--flip",
        "--strategy", "mirrored", "--learning_rate", "0.01"])
    config = cli_training.finetune_config(args)
    assert config == FinetuneConfig(
        variant="mrrn_tiny.motion", data_format="csv", data_dir="d", out_dir="o", epochs=3,
        warmup_epochs=1, augment=False, flip=True, strategy="mirrored", learning_rate=0.01)
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
