"""Tests for mrrn_keras/training.py: metrics, per-video averaging, plots, callbacks."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from mrrn_keras import training
from mrrn_keras.data.pipeline import SkippedVideos


def test_classification_metrics_by_hand():
    scores = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]])
    labels = np.array([0, 1, 2, 2])
    m = training.classification_metrics(scores, labels, ["a", "b", "c"], top_k=2)
    assert m["top1"] == 0.5 and m["top2"] == 1.0 and m["count"] == 4
    assert m["per_class"] == {"a": 1.0, "b": 0.0, "c": 0.5}
    assert m["mean_class_accuracy"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    absent = training.classification_metrics(scores[:1], labels[:1], ["a", "b", "c"])
    assert absent["per_class"]["b"] is None and "top3" in absent
    with pytest.raises(ValueError, match="Received: 2 names"):
        training.classification_metrics(scores, labels, ["a", "b"])


class MeanModel:
    """Scores from the mean pixel: class 1 when bright. Views of a video disagree."""

    def predict_on_batch(self, frames):
        bright = np.mean(np.asarray(frames, np.float32), axis=(1, 2, 3, 4)) / 255.0
        return {"probabilities": np.stack([1 - bright, bright], -1),
                "low": np.stack([bright, 1 - bright], -1)}


def test_evaluate_videos_averages_views_per_video():
    # Video 0: views 0.2 and 0.9 bright -> mean 0.55 -> class 1; video 1: 0.1 -> class 0.
    values = np.array([0.2, 0.9, 0.1]) * 255
    frames = np.broadcast_to(values[:, None, None, None, None], (3, 2, 4, 4, 3)).astype(np.uint8)
    ds = tf.data.Dataset.from_tensor_slices((frames, np.array([1, 1, 0]), np.array([0, 0, 1])))
    m = training.evaluate_videos(MeanModel(), ds.batch(2), ["dark", "bright"])
    assert m["videos"] == 2 and m["views"] == 1.5
    assert m["top1"] == 1.0 and m["by_output"] == {"probabilities": 1.0, "low": 0.0}
    assert m["confusion_matrix"] == [[1, 0], [0, 1]]


def test_plots_write_pngs(tmp_path):
    training.plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], tmp_path / "cm.png")
    history = {"loss": [2.0, 1.0], "val_loss": [2.5, 1.5], "probabilities_acc": [0.4, 0.8],
               "val_probabilities_acc": [0.3, 0.6], "low_acc": [0.1, 0.2]}
    training.plot_history(history, tmp_path / "curves.png")
    for name in ("cm.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_skipped_videos_callback_reports_each_epoch(caplog):
    skipped = SkippedVideos()
    callback = training.SkippedVideosCallback(skipped)
    skipped.add("/data/bad.avi", "file is empty (0 bytes)")
    logs = {}
    with caplog.at_level(logging.WARNING, logger="mrrn_keras.training"):
        callback.on_epoch_end(0, logs)
    assert logs["skipped_videos"] == 1 and "/data/bad.avi" in caplog.text
    logs = {}
    callback.on_epoch_end(1, logs)
    assert logs["skipped_videos"] == 0 and skipped.total == 1


def test_a_file_skipped_twice_in_an_epoch_counts_once_and_raise_mode_raises():
    from mrrn_keras.errors import VideoError

    skipped = SkippedVideos()
    callback = training.SkippedVideosCallback(skipped)
    skipped.add("/data/bad.avi", "empty")
    skipped.add("/data/bad.avi", "empty")  # the repeated stream met it again
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs["skipped_videos"] == 1 and skipped.files == {"/data/bad.avi": "empty"}
    skipped.fail(VideoError("/data/worse.avi", "not a video"))
    with pytest.raises(VideoError, match="worse.avi"):
        callback.on_train_batch_end(0)


def test_curves_have_whole_epoch_ticks(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    training.plot_history({"loss": [2.0, 1.5, 1.0], "val_probabilities_acc": [0.3, 0.5, 0.6]},
                          tmp_path / "curves.png")
    (figure,) = figures
    for ax in figure.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    monkeypatch.undo()
    plt.close(figure)
