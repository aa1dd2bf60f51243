"""Training helpers shared by the recipes: losses per stream and evaluation."""

import keras
import numpy as np

from mrrn_keras.model import FUSED_OUTPUT


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
