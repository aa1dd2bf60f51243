"""Classifying video files with a loaded MRRN: what `mrrn predict` runs.

Every readable file is decoded to the clip the variant expects and the clips
go through `model.predict` a batch at a time, results coming out as each
batch is done, so memory holds one batch of clips however many files there
are. A file that cannot be read becomes a `VideoFailure` in its place, so
one bad file never hides the others' results; what the decoder warned about
a file (a file cut short, a damaged tail) travels with its `Prediction`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.resources
import logging
import os
import pathlib
from collections.abc import Iterator

import numpy as np

from mrrn_keras.data.video import load_clip
from mrrn_keras.errors import VideoError
from mrrn_keras.labels import resolve_labels
from mrrn_keras.model import FUSED_OUTPUT

SAMPLE_CLIP = "assets/sample_clip.avi"
DEFAULT_VARIANT = "mrrn_tiny.motion"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The top-k classes of one video.

    Attributes:
        path: str. The video file.
        top_k: tuple of `(label, probability)`, most probable first.
        warnings: tuple of str. What the decoder warned about the file
            (e.g. fewer frames decoded than its header promises), also
            logged as warnings.
    """

    path: str
    top_k: tuple[tuple[str, float], ...]
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class VideoFailure:
    """A video that could not be classified.

    Attributes:
        path: str. The video file.
        reason: str. Why (missing, empty, not a video, no video stream...).
    """

    path: str
    reason: str


def sample_clip_path() -> pathlib.Path:
    """The small sample clip bundled with the package (`mrrn_keras/assets/sample_clip.avi`)."""
    return pathlib.Path(str(importlib.resources.files("mrrn_keras").joinpath(SAMPLE_CLIP)))


@functools.lru_cache(maxsize=4)
def _inference_model(variant: str):
    from mrrn_keras.zoo import load_for_inference

    return load_for_inference(variant)


def classify(
    video: str | os.PathLike, variant: str | os.PathLike = DEFAULT_VARIANT, *, top_k: int = 5
) -> list[dict]:
    """Classifies one video file in one call, as a Hugging Face pipeline does.

    The clip (frames, size, sampling) is the one the variant was trained on,
    read from its zoo entry (or from the `.keras` file `mrrn finetune`
    wrote); the model is loaded once per variant and kept for later calls.

    Args:
        video: a video file FFmpeg reads.
        variant: a zoo name, entry folder, URL, or a `.keras` file from
            `mrrn finetune`. Defaults to the bundled `mrrn_tiny.motion`.
        top_k: int >= 1. Classes returned.

    Returns:
        `[{"label": str, "score": float}, ...]`, most probable first.

    Raises:
        VideoError: the file is missing or unreadable.
        ZooError, WeightsError: the variant cannot be loaded.

    Example:

    >>> import mrrn_keras
    >>> top = mrrn_keras.classify(sample_clip_path(), top_k=2)
    >>> top[0]["label"], round(top[0]["score"], 2)
    ('MoveLeft', 0.78)
    """
    model, spec, _, labels = _inference_model(os.fspath(variant))
    (result,) = iter_classify_videos(
        model, [video], frames=spec["frames"], size=(spec["height"], spec["width"]),
        sampling=spec["sampling"], top_k=top_k, labels=labels,
    )
    if isinstance(result, VideoFailure):
        raise VideoError(result.path, result.reason)
    return [{"label": label, "score": score} for label, score in result.top_k]


def classify_videos(model, paths, **kwargs) -> list[Prediction | VideoFailure]:
    """Classifies video files; unreadable files give `VideoFailure`s.

    Args:
        model, paths, **kwargs: as `iter_classify_videos` (`frames`,
            `size`, `sampling`, `top_k`, `labels`, `batch_size`), which
            yields each result as soon as its batch is classified.

    Returns:
        One `Prediction` or `VideoFailure` per path, in order.

    Raises:
        ValueError: an invalid `top_k` or `batch_size`.
    """
    return list(iter_classify_videos(model, paths, **kwargs))


def iter_classify_videos(
    model,
    paths,
    *,
    frames: int,
    size: tuple[int, int],
    sampling: str = "segments",
    top_k: int = 5,
    labels=None,
    batch_size: int = 8,
) -> Iterator[Prediction | VideoFailure]:
    """Classifies video files batch by batch, yielding results as they come.

    At most `batch_size` decoded clips are held at once, and `paths` is read
    lazily, so any number of files (or an endless iterator) runs in bounded
    memory.

    Args:
        model: a Keras model from uint8 frames `(B, T, H, W, 3)` to
            probabilities `(B, classes)` (or a dict holding
            `"probabilities"`, as `stream_outputs=True` returns).
        paths: iterable of video files (any container/codec FFmpeg reads).
        frames: int. Clip length (the variant's `input.frames`).
        size: `(height, width)` the frames are resized to.
        sampling: str. `load_clip` mode (the variant's `input.sampling`).
        top_k: int >= 1. Classes reported per video (capped at the number
            of classes).
        labels: class names, or None for the model's `class_names`, else
            `class_<i>`.
        batch_size: int >= 1. Clips per forward pass.

    Yields:
        One `Prediction` or `VideoFailure` per path, in order.

    Raises:
        ValueError: an invalid `top_k` or `batch_size`.
    """
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    warn_if_untrained_size(model, size)
    # Checked above, when called, rather than at the first result.
    return _classify_stream(model, paths, frames, tuple(size), sampling, top_k, labels, batch_size)


def warn_if_untrained_size(model, size) -> None:
    """Logs a warning, once per model, when frames are not the size it was trained at.

    The network is fully convolutional and takes any size, but a variant's
    accuracy is known only at the size of its zoo entry (`trained_size`,
    set by `load_mrrn`): frames of another size are classified, with this
    warning naming both sizes. `classify` and `mrrn predict` resize to the
    trained size, so they never warn.

    Args:
        model: a model from `load_mrrn` (others carry no trained size).
        size: `(height, width)` of the frames given to it.
    """
    trained = getattr(model, "trained_size", None)
    if trained is None or tuple(size) == tuple(trained):
        return
    warned = getattr(model, "_warned_sizes", ())
    if tuple(size) not in warned:
        logger.warning(
            "%s was trained on %dx%d frames; classifying %dx%d frames, at which its accuracy "
            "is unknown (resize to %dx%d for the measured accuracy)", model.name, *trained,
            *size, *trained,
        )
        model._warned_sizes = (*warned, tuple(size))


def _classify_stream(model, paths, frames, size, sampling, top_k, labels, batch_size):
    pending = []  # (path, clip or VideoFailure, warnings), in input order
    clips = 0
    for path in map(os.fspath, paths):
        with _decoder_warnings() as warnings:
            try:
                item = load_clip(path, frames, size=size, mode=sampling, training=False)
            except VideoError as err:
                item = VideoFailure(path, err.reason)
        if isinstance(item, VideoFailure) and not clips:
            yield item
            continue
        pending.append((path, item, tuple(warnings)))
        clips += not isinstance(item, VideoFailure)
        if clips == batch_size:
            yield from _classify_batch(model, pending, top_k=top_k, labels=labels)
            pending, clips = [], 0
    yield from _classify_batch(model, pending, top_k=top_k, labels=labels)


def _classify_batch(model, pending, *, top_k, labels) -> Iterator[Prediction | VideoFailure]:
    clips = [item for _, item, _ in pending if not isinstance(item, VideoFailure)]
    if clips:
        probabilities = model.predict(np.stack(clips), batch_size=len(clips), verbose=0)
        if isinstance(probabilities, dict):
            probabilities = probabilities[FUSED_OUTPUT]
        rows = iter(np.asarray(probabilities))  # (B, classes)
    for path, item, warnings in pending:
        if isinstance(item, VideoFailure):
            yield item
            continue
        row = next(rows)
        names = resolve_labels(labels, model, None, row.shape[-1])
        order = np.argsort(-row, kind="stable")[:top_k]
        yield Prediction(path, tuple((names[j], float(row[j])) for j in order), warnings)


@contextlib.contextmanager
def _decoder_warnings():
    """Collects the warnings the video reader logs meanwhile; they still reach the log."""
    seen: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            seen.append(record.getMessage())
        return True

    decoder_logger = logging.getLogger(load_clip.__module__)
    decoder_logger.addFilter(keep)
    try:
        yield seen
    finally:
        decoder_logger.removeFilter(keep)
