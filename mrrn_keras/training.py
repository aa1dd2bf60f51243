"""Training helpers shared by the recipes: losses per stream, evaluation, plots, callbacks."""

import logging
import os
import time

import keras
import numpy as np

from mrrn_keras.model import FUSED_OUTPUT
from mrrn_keras.progress import progress_bar

logger = logging.getLogger(__name__)


def output_keys(model) -> list[str]:
    """Names of a `stream_outputs=True` MRRN's outputs: fused first, then streams.

    Args:
        model: an `MRRN` built with `stream_outputs=True`.

    Returns:
        `["probabilities", <stream>, ...]`.

    Raises:
        ValueError: if the model returns a single tensor.
    """
    if not getattr(model, "stream_outputs", False):
        raise ValueError(
            "Per-stream training needs a model built with stream_outputs=True. "
            f"Received: stream_outputs={getattr(model, 'stream_outputs', None)!r}"
        )
    return [FUSED_OUTPUT, *model.streams]


def compile_for_streams(model, optimizer, *, stream_weight: float = 1.0, jit_compile=True):
    """Compiles a `stream_outputs=True` MRRN with a cross-entropy per output.

    Every stream gets its own loss (the paper trains its streams end to end)
    and the fused output one more, so that learned fusion weights train.
    Labels are sparse class indices; feed them as a dict `{key: y}` over
    `output_keys(model)` (see `repeat_labels`).

    Args:
        model: an `MRRN` with `stream_outputs=True`.
        optimizer: a Keras optimizer.
        stream_weight: loss weight of each stream relative to the fused output.
        jit_compile: passed to `compile`.

    Returns:
        The model, compiled.
    """
    keys = output_keys(model)
    model.compile(
        optimizer=optimizer,
        loss={k: keras.losses.SparseCategoricalCrossentropy() for k in keys},
        loss_weights={k: 1.0 if k == FUSED_OUTPUT else stream_weight for k in keys},
        metrics={k: [keras.metrics.SparseCategoricalAccuracy(name="acc")] for k in keys},
        jit_compile=jit_compile,
    )
    return model


def repeat_labels(model, labels):
    """`{key: labels}` for every output of a `stream_outputs=True` MRRN."""
    return {k: labels for k in output_keys(model)}


def top1_by_output(probabilities: dict, labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy of each output from `{key: (N, K) scores}` and labels `(N,)`.

    Example:

    >>> import numpy as np
    >>> top1_by_output({"probabilities": np.eye(2)}, np.array([0, 0]))
    {'probabilities': 0.5}
    """
    labels = np.asarray(labels)
    return {
        key: float(np.mean(np.argmax(np.asarray(p), axis=-1) == labels))
        for key, p in probabilities.items()
    }


def seed_spread(values) -> dict:
    """Mean, sample standard deviation, min and max of one accuracy over training seeds.

    Args:
        values: the per-seed values, in seed order.

    Returns:
        `{"mean", "std", "min", "max", "values"}` as floats; `std` is the
        sample standard deviation (0.0 for a single seed).

    Example:

    >>> seed_spread([0.5, 0.7, 0.6])["mean"], seed_spread([0.5])["std"]
    (0.6, 0.0)
    """
    array = np.asarray(values, np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
        "values": [float(v) for v in array],
    }


def read_training_log(path) -> dict:
    """The columns of a `keras.callbacks.CSVLogger` file (a run's `log.csv`).

    Args:
        path: str or path-like. The CSV file; a missing file reads as empty.

    Returns:
        `{column: [float per epoch]}` without the `epoch` column; cells a
        phase did not log (CSVLogger's `NA`) are left out.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = path.write_text("epoch,loss,val_loss\\n0,2.0,NA\\n1,1.5,1.7\\n")
    >>> read_training_log(path)
    {'loss': [2.0, 1.5], 'val_loss': [1.7]}
    """
    import csv

    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for row in rows:
        for key, value in row.items():
            # "NA": a column a phase did not log (CSVLogger's filler).
            if key != "epoch" and value not in ("", "NA", None):
                columns.setdefault(key, []).append(float(value))
    return columns


def classification_metrics(scores, labels, class_names=None, *, top_k: int = 5) -> dict:
    """Top-1, top-k, per-class accuracy and confusion matrix of `(N, K)` scores.

    Args:
        scores: array `(N, K)` of class scores (probabilities or logits).
        labels: int array `(N,)`.
        class_names: optional K names for `per_class`; defaults to "0".."K-1".
        top_k: int. The k of the top-k accuracy (capped at K).

    Returns:
        `{"count", "top1", "top<k>", "mean_class_accuracy", "per_class":
        {name: accuracy or None when the class has no sample},
        "confusion_matrix": [[count]] (rows true, columns predicted)}`.

    Example:

    >>> import numpy as np
    >>> m = classification_metrics(np.array([[.9, .1, 0], [.2, .3, .5]]), np.array([0, 1]),
    ...                            top_k=2)
    >>> m["top1"], m["top2"], m["confusion_matrix"]
    (0.5, 1.0, [[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    num_classes = scores.shape[-1]
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(
            f"`class_names` must have one name per score column ({num_classes}). "
            f"Received: {len(names)} names"
        )
    k = min(top_k, num_classes)
    predicted = np.argmax(scores, -1)
    ranked = np.argsort(-scores, -1, kind="stable")[:, :k]
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    support = matrix.sum(1)
    per_class = {
        name: (float(matrix[c, c] / support[c]) if support[c] else None)
        for c, name in enumerate(names)
    }
    present = [v for v in per_class.values() if v is not None]
    count = len(labels)
    return {
        "count": count,
        "top1": float(np.mean(predicted == labels)) if count else 0.0,
        f"top{k}": float(np.mean((ranked == labels[:, None]).any(-1))) if count else 0.0,
        "mean_class_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def predict_views(model, dataset, *, progress: bool | None = None):
    """Runs `model` over `(frames, labels, video_ids)` batches.

    Args:
        model: a Keras model.
        dataset: the batches.
        progress: bool or None. A bar of batches done on stderr; `None`
            shows it on a terminal.

    Returns:
        `(scores, labels, video_ids)`: scores `{output: (N, K)}` (one entry,
        `"probabilities"`, for a single-output model), labels and ids `(N,)`.
    """
    scores, labels, ids = {}, [], []
    total = int(dataset.cardinality()) if hasattr(dataset, "cardinality") else None
    batches = progress_bar(dataset, enabled=progress, desc="evaluate", unit="batch",
                           total=total if total and total > 0 else None)
    for frames, y, video_ids in batches:
        # NumPy in: the batches come from tf.data under every Keras backend.
        out = _predict_batch(model, np.asarray(frames))
        out = out if isinstance(out, dict) else {FUSED_OUTPUT: out}
        for key, value in out.items():
            scores.setdefault(key, []).append(np.asarray(value, np.float32))
        y = next(iter(y.values())) if isinstance(y, dict) else y
        labels.append(np.asarray(y))
        ids.append(np.asarray(video_ids))
    if not labels:
        raise ValueError("The evaluation dataset yielded no batch: every video was skipped?")
    return (
        {k: np.concatenate(v) for k, v in scores.items()},
        np.concatenate(labels),
        np.concatenate(ids),
    )


def _predict_batch(model, frames: np.ndarray):
    """The model's outputs for one batch, one row per clip, under any distribution strategy."""
    from mrrn_keras.distribute import data_parallel_devices

    devices = data_parallel_devices()
    if len(frames) % devices:
        # keras.distribution splits a batch evenly between its devices: pad, then cut.
        pad = devices - len(frames) % devices
        padded = np.concatenate([frames, np.zeros((pad,) + frames.shape[1:], frames.dtype)])
        out = model.predict_on_batch(padded)
        return keras.tree.map_structure(lambda v: np.asarray(v)[: len(frames)], out)
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        # Under tf.distribute, Keras 3.15's predict_on_batch hands every replica the whole
        # batch and returns its rows once per replica; predict splits the batch instead.
        return model.predict(frames, batch_size=len(frames), verbose=0)
    return model.predict_on_batch(frames)


def evaluate_videos(model, dataset, class_names=None, *, top_k: int = 5,
                    progress: bool | None = None) -> dict:
    """Video-level evaluation: scores of a video's views (clips x crops) averaged.

    Args:
        model: an MRRN (single or stream outputs).
        dataset: batches of `(frames, labels, video_ids)`, e.g.
            `clip_dataset(..., training=False, num_clips=10)`.
        class_names: names for the per-class accuracies.
        top_k: k of the top-k accuracy.
        progress: bool or None. A progress bar (see `predict_views`).

    Returns:
        `classification_metrics` of the fused output, plus `"videos"`,
        `"views"` (views per video, on average) and `"by_output"`
        `{output: top-1}` for every output.
    """
    scores, labels, ids = predict_views(model, dataset, progress=progress)
    videos, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    counts = np.bincount(inverse)
    averaged = {}
    for key, value in scores.items():
        total = np.zeros((len(videos), value.shape[-1]), np.float64)
        np.add.at(total, inverse, value)
        averaged[key] = total / counts[:, None]
    video_labels = labels[first]
    metrics = classification_metrics(averaged[FUSED_OUTPUT], video_labels, class_names, top_k=top_k)
    metrics["videos"] = int(len(videos))
    metrics["views"] = float(len(ids) / len(videos))
    metrics["by_output"] = top1_by_output(averaged, video_labels)
    return metrics


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix, class_names, path, *, title="Confusion matrix") -> None:
    """Writes a confusion matrix (rows true, columns predicted) as a PNG, row-normalised colours."""
    plt = _pyplot()
    matrix = np.asarray(matrix, np.float64)
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    n = len(class_names)
    side = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color=color,
                            fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)


def plot_history(history: dict, path, *, title="Training curves") -> None:
    """Writes loss and accuracy curves (train and `val_`) per epoch as a PNG.

    Args:
        history: `{metric: [value per epoch]}`, e.g. `History.history` or
            the columns of a `CSVLogger` file.
        path: the PNG to write.
    """
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, values in sorted(history.items()):
        base = key[4:] if key.startswith("val_") else key
        if base == "loss" or (base.endswith("acc") and base.startswith(FUSED_OUTPUT)):
            ax = loss_ax if base == "loss" else acc_ax
            ax.plot(range(1, len(values) + 1), values, marker="o", label=key)
    from matplotlib.ticker import MaxNLocator

    for ax, name in ((loss_ax, "loss"), (acc_ax, "fused accuracy")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)


class SkippedVideosCallback(keras.callbacks.Callback):
    """Reports the videos a pipeline skipped, at the end of every epoch.

    Adds `skipped_videos` (distinct files since the last epoch end) to the epoch's
    logs, so `CSVLogger` and TensorBoard record it, and logs a warning
    naming them. Decoding runs ahead of training (prefetch), so a video is
    reported at the end of the epoch in which it was read.

    With `on_error="raise"` it raises the first unreadable video's
    `VideoError` at the next batch or epoch end, so place it before
    callbacks that save progress.

    Args:
        skipped: the `mrrn_keras.data.pipeline.SkippedVideos` given to
            `clip_dataset`.
        others: more `SkippedVideos` (e.g. the validation data's) whose
            errors are raised the same way.
    """

    def __init__(self, skipped, others=()):
        super().__init__()
        self.skipped = skipped
        self.others = tuple(others)

    def _raise(self):
        for skipped in (self.skipped, *self.others):
            skipped.raise_error()

    def on_train_batch_end(self, batch, logs=None):
        self._raise()

    def on_test_batch_end(self, batch, logs=None):
        self._raise()

    def on_epoch_end(self, epoch, logs=None):
        self._raise()
        # A file met twice in one epoch (the stream repeats) is one skipped video.
        pending = list(dict(self.skipped.take()).items())
        if logs is not None:
            logs["skipped_videos"] = len(pending)
        if pending:
            logger.warning(
                "Epoch %d: skipped %d unreadable videos: %s", epoch + 1, len(pending),
                "; ".join(f"{p} ({r})" for p, r in pending[:10])
                + (" ..." if len(pending) > 10 else ""),
            )


class EpochLog(keras.callbacks.Callback):
    """One short log line per epoch, and a bar of its steps on a terminal.

    Replaces `fit(verbose=2)`, whose line lists every metric of every stream.
    The line: epoch, loss, fused top-1 on the training batches and, when
    there is validation data, on it, skipped videos, seconds.

    Args:
        epochs: total epochs (for "epoch k/N").
        steps: steps per epoch (for the bar).
        progress: bool or None. The bar; `None` shows it on a terminal.
    """

    def __init__(self, epochs: int, steps: int, *, progress: bool | None = None):
        super().__init__()
        self.epochs = epochs
        self.steps = steps
        self.progress = progress
        self._bar = None
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()
        self._bar = progress_bar(total=self.steps, enabled=self.progress,
                                 desc=f"epoch {epoch + 1}/{self.epochs}", unit="step")

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update()

    def on_epoch_end(self, epoch, logs=None):
        self._bar.close()
        logs = logs or {}
        parts = [f"loss {logs['loss']:.4f}"] if "loss" in logs else []
        for key, name in ((f"{FUSED_OUTPUT}_acc", "train top-1"),
                          (f"val_{FUSED_OUTPUT}_acc", "validation top-1")):
            if key in logs:
                parts.append(f"{name} {100 * logs[key]:.1f}%")
        if logs.get("skipped_videos"):
            parts.append(f"{int(logs['skipped_videos'])} videos skipped")
        parts.append(f"{time.time() - self._start:.0f} s")
        logger.info("epoch %d/%d: %s", epoch + 1, self.epochs, ", ".join(parts))
