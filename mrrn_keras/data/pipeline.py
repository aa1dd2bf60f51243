"""The tf.data adapter of the clip source, for TensorFlow and tf.distribute.

`clip_dataset` serves a `mrrn_keras.data.clips.ClipSource` (raw videos of a
`VideoIndex`, or a `FrameCache`) as a `tf.data.Dataset` of batches of uint8
clips `(batch, clip_len, height, width, 3)` and labels. Each batch is made by
`ClipSource.batch` in a `tf.numpy_function`, `workers` batches at a time, in
order, so the batches are exactly those of the TensorFlow-free
`mrrn_keras.data.loader.ClipLoader` for the same seed. The epoch advances each
time the dataset is iterated again (each `fit` epoch, or each pass of
`.repeat()`).

Evaluation with `num_clips`/`num_crops` > 1 yields every view of a video as
its own element, tagged with the video id, so scores can be averaged per
video (`mrrn_keras.training.evaluate_videos`).

A video that cannot be read is skipped and counted in a `SkippedVideos`
(`on_error="skip"`, the default: a logged warning per video, an epoch never
stops) or stops the pipeline with the `VideoError` (`on_error="raise"`).

Example:

>>> import tempfile, pathlib
>>> import numpy as np
>>> from mrrn_keras.data.datasets import VideoIndex
>>> from mrrn_keras.data.video import write_video
>>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
>>> write_video(path, np.zeros((12, 40, 48, 3), np.uint8))
>>> index = VideoIndex((str(path),), (0,), ("a",))
>>> ds = clip_dataset(index, ClipSpec(clip_len=4, size=32), training=False, batch_size=1)
>>> frames, label, video = next(iter(ds))
>>> frames.shape, frames.dtype.name, int(label[0]), int(video[0])
(TensorShape([1, 4, 32, 32, 3]), 'uint8', 0, 0)
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mrrn_keras.data.clips import (  # noqa: F401  (re-exported: the names' old home)
    CROP_COUNTS,
    ERROR_POLICIES,
    Augment,
    ClipSource,
    ClipSpec,
    SkippedVideos,
)
from mrrn_keras.errors import VideoError


def tf_batches(clips: ClipSource, *, epoch: int = 0, workers: int | None = None) -> tf.data.Dataset:
    """Serves `clips` as a `tf.data.Dataset` of its batches, epoch after epoch.

    Args:
        clips: a `ClipSource`.
        epoch: the epoch the first iteration reads; each later iteration
            reads the next one (training only: evaluation has one order).
        workers: batches made in parallel. Defaults to AUTOTUNE.

    Returns:
        A `tf.data.Dataset` yielding `(frames, labels[, video_ids])`.
    """
    counter = itertools.count(epoch)
    lock = threading.Lock()
    with_ids = clips.with_video_ids
    t, size = clips.spec.clip_len, clips.spec.size
    raise_later = clips.on_error == "raise" and clips.skipped is not None

    def next_epoch():
        with lock:
            return np.int64(next(counter) if clips.training else 0)

    def make(e, b):
        try:
            x, y, *ids = clips.batch(int(b), int(e))
        except VideoError as err:
            if not raise_later:
                raise
            # Raised from Python by the consumer (`SkippedVideos.raise_error`):
            # an exception inside tf.numpy_function leaves the iterator unable
            # to shut down, and the process hangs at exit.
            clips.skipped.fail(err)
            empty = np.zeros((0,), np.int32)
            return np.zeros((0, t, size, size, 3), np.uint8), empty, empty, False
        y = next(iter(y.values())) if isinstance(y, dict) else y
        return x, y, (ids[0] if ids else np.zeros_like(y)), True

    def read(e, b):
        x, y, v, ok = tf.numpy_function(make, [e, b], (tf.uint8, tf.int32, tf.int32, tf.bool),
                                        stateful=True)
        x = tf.ensure_shape(x, [None, t, size, size, 3])
        y = tf.ensure_shape(y, [None])
        return x, y, tf.ensure_shape(v, [None]), ok

    num_batches = len(clips)
    ds = tf.data.Dataset.from_tensors(np.int64(0)).map(
        lambda _: tf.numpy_function(next_epoch, [], tf.int64, stateful=True))
    ds = ds.flat_map(lambda e: tf.data.Dataset.range(num_batches).map(lambda b: (e, b)))
    ds = ds.map(read, num_parallel_calls=workers or tf.data.AUTOTUNE, deterministic=True)
    if raise_later:
        ds = ds.take_while(lambda x, y, v, ok: ok)
    # An evaluation batch whose every video was unreadable is empty.
    ds = ds.filter(lambda x, y, v, ok: tf.shape(x)[0] > 0)
    keys = clips.label_keys

    def finish(x, y, v, ok):
        if clips.training:
            x = tf.ensure_shape(x, [clips.batch_size, t, size, size, 3])
        y = y if keys is None else {k: y for k in keys}
        return (x, y, v) if with_ids else (x, y)

    return ds.map(finish).prefetch(tf.data.AUTOTUNE)


def clip_dataset(
    source,
    spec: ClipSpec,
    *,
    training: bool,
    batch_size: int,
    augment: Augment | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    on_error: str = "skip",
    skipped: SkippedVideos | None = None,
    label_keys: Sequence[str] | None = None,
    with_video_ids: bool | None = None,
    seed: int | None = None,
    epoch: int = 0,
    workers: int | None = None,
) -> tf.data.Dataset:
    """Batches of clips and labels from raw videos or a frame cache, as tf.data.

    Args:
        source: a `VideoIndex` (raw videos) or a `FrameCache` (see
            `mrrn_keras.data.cache.open_cache`).
        spec: a `ClipSpec`.
        training: bool. Shuffles, draws random clips (and `augment`) and
            makes only full batches. When False, every view (clip x crop)
            of every video is one element, in index order.
        batch_size: int. Clips per batch (global, under a distribution
            strategy).
        augment: an `Augment`, used only when `training`. Defaults to None
            (centre crop).
        num_clips: int. Evenly spread clips per video when not training.
        num_crops: 1 or 3. Crops per clip when not training.
        on_error: `"skip"` (count in `skipped`, log, go on) or `"raise"`:
            with `skipped`, the stream ends at the first unreadable video
            and `skipped.raise_error()` raises it (a `fit` callback such
            as `training.SkippedVideosCallback` does so at once); without,
            the `VideoError` surfaces from inside tf.data.
        skipped: a `SkippedVideos` to count skipped videos in.
        label_keys: if given, labels become `{key: labels}` (the outputs of
            a `stream_outputs=True` MRRN, see `training.output_keys`).
        with_video_ids: yield `(frames, labels, video_ids)` rather than
            `(frames, labels)`. Defaults to `not training`; pass False for
            `fit(validation_data=...)`, which would read a third element as
            sample weights.
        seed: int or None. Seeds the order, clip draws and augmentation.
        epoch: the epoch the first iteration reads (resumed runs).
        workers: batches made in parallel. Defaults to AUTOTUNE.

    Returns:
        A `tf.data.Dataset`. Frames are uint8 `(B, clip_len, size, size, 3)`,
        labels int32 `(B,)`, video ids int32 `(B,)` (position in the index).

    Raises:
        ValueError: bad arguments.
    """
    clips = ClipSource(
        source, spec, training=training, batch_size=batch_size, augment=augment,
        num_clips=num_clips, num_crops=num_crops, on_error=on_error, skipped=skipped,
        label_keys=label_keys, with_video_ids=with_video_ids, seed=seed,
    )
    return tf_batches(clips, epoch=epoch, workers=workers)
