"""Tests for the `mrrn` command (mrrn_keras.cli) and mrrn_keras.predict."""

import json

import numpy as np
import pytest

from mrrn_keras import cli, predict
from mrrn_keras.data.video import write_video
from mrrn_keras.zoo import load_mrrn, variant_info
from tests.test_video import write_cut_short
from tests.test_zoo import LABELS, write_tiny_entry


@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    folder, _, _ = write_tiny_entry(tmp_path_factory.mktemp("zoo"))
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    good = root / "good.avi"
    write_video(good, rng.integers(0, 256, (6, 40, 48, 3), dtype=np.uint8), fps=8, codec="mpeg4")
    text = root / "notes.avi"
    text.write_text("not a video\n")
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    return {"good": good, "text": text, "empty": empty, "missing": root / "missing.avi"}


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "dataset", "classes", "top-1", "weights"]
    row = next(line for line in out.splitlines() if line.startswith("mrrn_r34.paper"))
    assert row.split() == ["mrrn_r34.paper", "-", "101", "-", "none"]
    assert cli.main(["list", "*.paper"]) == 0
    assert "mrrn_tiny" not in capsys.readouterr().out
    assert cli.main(["list", "nothing*"]) == 1


def test_info(capsys, entry):
    assert cli.main(["info", "mrrn_r50.paper"]) == 0
    out = capsys.readouterr().out
    # The count shown is the entry's (test_zoo checks it against a built model),
    # written with thousands separators.
    params = variant_info("mrrn_r50.paper").params
    assert f"params:      {params:,}" in out and "none (architecture only)" in out
    assert "# mrrn_r50.paper" in out
    assert cli.main(["info", str(entry)]) == 0
    out = capsys.readouterr().out
    assert "left, right, still" in out and "bundled: model.weights.h5" in out


def test_info_unknown_name(capsys):
    assert cli.main(["info", "mrrn_r34.papr"]) == 1
    assert "Did you mean 'mrrn_r34.paper'" in capsys.readouterr().err


@pytest.mark.multi_backend
def test_predict_json(capsys, entry, videos):
    code = cli.main(["predict", str(videos["good"]), "--variant", str(entry), "--json", "--top-k", "2"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["variant"] == "mrrn_test.tiny"
    (result,) = document["predictions"]
    assert result["path"] == str(videos["good"]) and len(result["top_k"]) == 2
    assert {r["label"] for r in result["top_k"]} <= set(LABELS)
    probabilities = [r["probability"] for r in result["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6


def test_predict_bad_files_reported_others_classified(capsys, entry, videos):
    args = [str(videos[k]) for k in ("missing", "text", "good", "empty")]
    assert cli.main(["predict", *args, "--variant", str(entry), "--top-k", "1"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3
    for key, line in zip(("missing", "text", "empty"), errors):
        assert str(videos[key]) in line
    assert "not found" in errors[0] and "empty" in errors[2]
    lines = captured.out.strip().splitlines()
    assert lines[0] == str(videos["good"]) and lines[1].split()[-1] in LABELS
    assert len(lines) == 2


def test_predict_sample_clip(capsys, entry, videos, monkeypatch):
    monkeypatch.setattr(predict, "sample_clip_path", lambda: videos["good"])
    assert cli.main(["predict", "--variant", str(entry)]) == 0
    captured = capsys.readouterr()
    assert "bundled sample clip" in captured.err
    assert captured.out.startswith(str(videos["good"]))


@pytest.mark.multi_backend
def test_predict_bundled_sample_clip_with_default_variant(capsys):
    assert cli.main(["predict", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["variant"] == cli.DEFAULT_VARIANT


def test_classify_videos(entry, videos):
    model = load_mrrn(entry)
    paths = [videos["good"], videos["text"], videos["good"]]
    results = predict.classify_videos(model, paths, frames=4, size=(32, 32), top_k=3)
    assert [type(r).__name__ for r in results] == ["Prediction", "VideoFailure", "Prediction"]
    assert results[0] == results[2]
    assert sum(p for _, p in results[0].top_k) == pytest.approx(1.0, abs=1e-5)
    assert str(videos["text"]) == results[1].path
    with pytest.raises(ValueError, match="top_k"):
        predict.classify_videos(model, paths, frames=4, size=(32, 32), top_k=0)


def test_predict_json_reports_a_file_cut_short(capsys, entry, videos, tmp_path):
    cut = write_cut_short(tmp_path / "cut.avi")
    assert cli.main(["predict", str(cut), str(videos["good"]), "--variant", str(entry),
                     "--json"]) == 0
    first, second = json.loads(capsys.readouterr().out)["predictions"]
    (warning,) = first["warnings"]
    assert str(cut) in warning and "of the 20 its header promises" in warning
    assert second["warnings"] == []


class _SpyModel:
    """Forwards to a model and records the batch size of every `predict`."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict(self, clips, **kwargs):
        self.batches.append(len(clips))
        return self.model.predict(clips, **kwargs)


def test_iter_classify_videos_streams_in_bounded_batches(entry, videos):
    model = _SpyModel(load_mrrn(entry))
    read = []

    def paths():
        for key in ("good", "text", "good", "good", "good"):
            read.append(key)
            yield videos[key]

    results = predict.iter_classify_videos(
        model, paths(), frames=4, size=(32, 32), top_k=1, batch_size=2
    )
    assert read == []  # nothing decoded before the first result is asked for
    first = next(results)
    assert first.path == str(videos["good"]) and len(read) == 3
    rest = list(results)
    assert [type(r).__name__ for r in rest] == ["VideoFailure", "Prediction", "Prediction",
                                               "Prediction"]
    assert model.batches == [2, 2]
    with pytest.raises(ValueError, match="batch_size=0"):
        predict.iter_classify_videos(model, [], frames=4, size=(32, 32), batch_size=0)


def test_predict_prints_each_result_as_it_comes(capsys, entry, videos, monkeypatch):
    paths = [str(videos["good"])] * 10
    seen = []
    load_clip = predict.load_clip

    def watched(path, *args, **kwargs):
        seen.append(capsys.readouterr().out)
        return load_clip(path, *args, **kwargs)

    monkeypatch.setattr(predict, "load_clip", watched)
    assert cli.main(["predict", *paths, "--variant", str(entry), "--top-k", "1"]) == 0
    printed = "".join(seen)
    assert printed.count(str(videos["good"])) >= 2  # before the last file was decoded


KERAS_FREE = """
import sys
from mrrn_keras.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("keras", "tensorflow", "jax") if m in sys.modules)
print("HEAVY", heavy, "CODE", code)
"""


@pytest.mark.parametrize("argv", [["list"], ["info", "mrrn_tiny.motion"], ["--help"],
                                  ["--version"], ["finetune", "--help"], ["evaluate", "--help"]])
def test_quick_commands_import_no_keras_or_tensorflow(argv):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", KERAS_FREE, *argv], capture_output=True,
                          text=True, timeout=120)
    assert "HEAVY [] CODE 0" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_version_and_one_vocabulary(capsys):
    from mrrn_keras import __version__

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"mrrn {__version__}"
    parser = cli.build_parser()
    known = cli.option_strings(parser, "finetune")
    for old in ("--top-k", "--format", "--out", "--nopretrained"):
        assert old not in known  # shown nowhere, still accepted:
    args = parser.parse_args(cli.canonical_argv(
        ["finetune", "--variant", "v", "--format", "csv", "--data_dir", "d", "--out", "o",
         "--nopretrained"], known))
    assert (args.data_format, args.out_dir, args.pretrained) == ("csv", "o", False)
    with pytest.raises(SystemExit):  # a closed set is checked by the parser
        parser.parse_args(["finetune", "--variant", "v", "--data_format", "kinetics",
                           "--data_dir", "d", "--out_dir", "o"])
    help_text = parser._subparsers._group_actions[0].choices["finetune"].format_help()
    assert "(default: 10)" in help_text and "{ucf101,hmdb51,folder,csv}" in help_text


def test_list_filters_entries_with_weights(capsys):
    assert cli.main(["list", "--pretrained"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["mrrn_tiny.motion"]


def test_log_messages_reach_stderr_unless_quiet(capsys, monkeypatch):
    import logging

    package = logging.getLogger("mrrn_keras")
    monkeypatch.setattr(package, "handlers", [])
    monkeypatch.setattr(package, "level", logging.NOTSET)

    logging.getLogger("mrrn_keras.test").info("hello from the library")
    cli._configure_logging(cli.build_parser().parse_args(["list"]))
    logging.getLogger("mrrn_keras.test").info("hello from the library")
    assert "hello from the library" in capsys.readouterr().err
    cli._configure_logging(cli.build_parser().parse_args(["-q", "list"]))
    logging.getLogger("mrrn_keras.test").info("hello from the library")
    logging.getLogger("mrrn_keras.test").warning("look out")
    assert capsys.readouterr().err == "warning: look out\n"


def test_native_start_up_noise_is_dropped_real_errors_kept():
    from mrrn_keras.native_stderr import is_noise

    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796009161.546580   31508 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        "E0000 00:00:1796009177.853584   31508 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    assert all(is_noise(line, has_nvidia_driver=False) for line in lines)
    assert not is_noise(lines[2], has_nvidia_driver=True)  # a GPU machine: a real error
    assert not is_noise("E0000 00:00:1.1 1 op.cc:1] something failed", has_nvidia_driver=False)
    assert not is_noise("mrrn predict: x.avi: file not found")


def test_predict_command_stderr_has_no_tensorflow_start_up_lines():
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "mrrn_keras.cli", "predict"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "MoveLeft" in done.stdout, done.stderr[-3000:]
    assert "cuInit" not in done.stderr and "I0000" not in done.stderr, done.stderr
    assert "bundled sample clip" in done.stderr


def test_predict_and_export_take_the_keras_file_finetune_writes(capsys, entry, videos, tmp_path):
    from mrrn_keras.zoo import save_model_file, variant_info

    model = load_mrrn(entry)
    path = save_model_file(model, tmp_path / "model.keras",
                           input_spec=dict(variant_info(entry).input))
    assert cli.main(["predict", str(videos["good"]), "--variant", str(path), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["predictions"]
    assert {r["label"] for r in result["top_k"]} <= set(LABELS)
    assert cli.main(["export", str(path), "--out_dir", str(tmp_path / "serving")]) == 0
    assert (tmp_path / "serving" / "1" / "saved_model.pb").is_file()


def test_classify_in_one_call_and_size_warnings(entry, videos, caplog):
    import mrrn_keras

    top = mrrn_keras.classify(videos["good"], variant=entry, top_k=2)
    assert [sorted(row) for row in top] == [["label", "score"]] * 2
    assert top[0]["label"] in LABELS and top[0]["score"] >= top[1]["score"]
    assert callable(mrrn_keras.load_clip) and "classify" in mrrn_keras.__all__
    from mrrn_keras.errors import VideoError

    with pytest.raises(VideoError, match="notes.avi"):
        mrrn_keras.classify(videos["text"], variant=entry)
    model = load_mrrn(entry)

    def ours():
        return [r for r in caplog.records if r.name.startswith("mrrn_keras")]

    with caplog.at_level("WARNING", logger="mrrn_keras"):
        predict.classify_videos(model, [videos["good"]] * 2, frames=4, size=(32, 32))
        assert not ours()  # the trained size
        predict.classify_videos(model, [videos["good"]], frames=4, size=(48, 48))
        predict.classify_videos(model, [videos["good"]], frames=4, size=(48, 48))
    (record,) = ours()  # once
    assert "trained on 32x32" in record.getMessage() and "48x48" in record.getMessage()


def test_new_heads_take_class_names():
    model = load_mrrn("mrrn_tiny.motion", num_classes=3, class_names=["a", "b", "c"])
    assert model.class_names == ("a", "b", "c") and model.output_shape == (None, 3)


def test_info_shows_entry_text_without_sending_control_sequences(capsys, entry, tmp_path):
    import shutil

    hostile = tmp_path / entry.name
    shutil.copytree(entry, hostile)
    data = json.loads((hostile / "config.json").read_text())
    data["description"] = "Clear\x1b[2J\x1b]0;owned\x07 \u202eevil"
    data["license"] = "MIT\x1b[8m"
    (hostile / "config.json").write_text(json.dumps(data))
    (hostile / "card.md").write_text("# Card\n\x1b]52;c;cGF5bG9hZA==\x07line\r\n")
    assert cli.main(["info", str(hostile)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\r" not in out
    assert "Clear\\x1b[2J\\x1b]0;owned\\x07 \\u202eevil" in out and "# Card\n" in out


def test_predict_prints_file_names_without_control_sequences(capsys, entry, videos, tmp_path):
    import shutil

    odd = tmp_path / "clip\x1b[2J.avi"
    shutil.copy(videos["good"], odd)
    assert cli.main(["predict", str(odd), "--variant", str(entry), "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "clip\\x1b[2J.avi" in out
