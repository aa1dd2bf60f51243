"""Classifying video files with a loaded MRRN: what `mrrn predict` runs.

Every readable file is decoded to the clip the variant expects and all clips
go through one batched `model.predict`; a file that cannot be read becomes a
`VideoFailure` in its place, so one bad file never hides the others' results.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import pathlib

import numpy as np

from mrrn_keras.data.video import load_clip
from mrrn_keras.errors import VideoError
from mrrn_keras.labels import resolve_labels
from mrrn_keras.model import FUSED_OUTPUT

SAMPLE_CLIP = "assets/sample_clip.avi"


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The top-k classes of one video.

    Attributes:
        path: str. The video file.
        top_k: tuple of `(label, probability)`, most probable first.
    """

    path: str
    top_k: tuple[tuple[str, float], ...]


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


def classify_videos(
    model,
    paths,
    *,
    frames: int,
    size: tuple[int, int],
    sampling: str = "segments",
    top_k: int = 5,
    labels=None,
    batch_size: int = 8,
) -> list[Prediction | VideoFailure]:
    """Classifies video files; unreadable files give `VideoFailure`s.

    Args:
        model: a Keras model from uint8 frames `(B, T, H, W, 3)` to
            probabilities `(B, classes)` (or a dict holding
            `"probabilities"`, as `stream_outputs=True` returns).
        paths: video files (any container/codec FFmpeg reads).
        frames: int. Clip length (the variant's `input.frames`).
        size: `(height, width)` the frames are resized to.
        sampling: str. `load_clip` mode (the variant's `input.sampling`).
        top_k: int >= 1. Classes reported per video (capped at the number
            of classes).
        labels: class names, or None for the model's `class_names`, else
            `class_<i>`.
        batch_size: int. Clips per forward pass.

    Returns:
        One `Prediction` or `VideoFailure` per path, in order.
    """
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive integer. Received: top_k={top_k!r}")
    paths = [os.fspath(p) for p in paths]
    results: list[Prediction | VideoFailure | None] = [None] * len(paths)
    clips, good = [], []
    for i, path in enumerate(paths):
        try:
            clips.append(load_clip(path, frames, size=tuple(size), mode=sampling, training=False))
            good.append(i)
        except VideoError as err:
            results[i] = VideoFailure(path, err.reason)
    if clips:
        probabilities = model.predict(np.stack(clips), batch_size=batch_size, verbose=0)
        if isinstance(probabilities, dict):
            probabilities = probabilities[FUSED_OUTPUT]
        probabilities = np.asarray(probabilities)  # (B, classes)
        names = resolve_labels(labels, model, None, probabilities.shape[-1])
        for i, row in zip(good, probabilities):
            order = np.argsort(-row, kind="stable")[:top_k]
            results[i] = Prediction(paths[i], tuple((names[j], float(row[j])) for j in order))
    return results

