"""tf.data pipelines of clips for `model.fit`, from raw videos or a frame cache.

`clip_dataset` turns a `VideoIndex` (raw videos, decoded by PyAV inside
`tf.numpy_function` with `num_parallel_calls=AUTOTUNE`) or a `FrameCache`
(JPEG frames in TFRecords, decoded in-graph by `tf.io.decode_jpeg`) into
batches of uint8 clips `(batch, clip_len, height, width, 3)` and labels.

Frame choice happens in the graph (`clip_indices`), the same code for both
sources; with `num_clips=1` and `training=False` it picks exactly the frames
of `mrrn_keras.data.video.sample_indices`. Spatial handling is one crop box
per clip, so every frame of a clip sees the same crop and the same flip:

- training with an `Augment`: a random resized crop (area fraction and
  aspect ratio drawn per clip) and, only if `Augment.flip`, a horizontal
  flip. Flip is off by default: it turns `move_left` into `move_right`.
- otherwise: the centre square (side = the frame's short side), resized to
  `ClipSpec.size`; with `num_crops=3`, the two ends of the long side too.

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

import dataclasses
import logging
import math
import threading
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mrrn_keras.data import cache as cache_lib
from mrrn_keras.data.datasets import VideoIndex
from mrrn_keras.data.video import SAMPLING_MODES, SHORT_POLICIES, probe_video, read_frames
from mrrn_keras.errors import VideoError
from mrrn_keras.validation import check_int

logger = logging.getLogger(__name__)

ERROR_POLICIES = ("skip", "raise")
CROP_COUNTS = (1, 3)


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """What a clip is: how many frames, chosen how, at what size.

    Args:
        clip_len: int. Frames per clip. Defaults to 8.
        size: int. Output height and width. Defaults to 112.
        mode: str. `"segments"`, `"uniform"` or `"dense"` (see
            `mrrn_keras.data.video.sample_indices`). Defaults to `"segments"`.
        stride: int. Frame step of `"dense"` clips. Defaults to 1.
        short: str. Videos shorter than a clip: `"loop"` or `"pad"`.
            Defaults to `"loop"`.
        short_side: int or None. Raw videos are decoded with their short
            side resized to this (aspect kept) before cropping. Defaults to
            `size` (the evaluation crop is then the exact centre square).
    """

    clip_len: int = 8
    size: int = 112
    mode: str = "segments"
    stride: int = 1
    short: str = "loop"
    short_side: int | None = None

    def __post_init__(self):
        check_int("clip_len", self.clip_len)
        check_int("size", self.size)
        check_int("stride", self.stride)
        if self.short_side is not None:
            check_int("short_side", self.short_side)
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"`mode` must be one of {SAMPLING_MODES}. Received: mode={self.mode!r}")
        if self.short not in SHORT_POLICIES:
            raise ValueError(
                f"`short` must be one of {SHORT_POLICIES}. Received: short={self.short!r}"
            )

    @property
    def decode_short_side(self) -> int:
        return self.short_side or self.size


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation, drawn once per clip and applied to all its frames.

    Args:
        scale: (min, max) area fraction of the random resized crop. Defaults
            to `(0.4, 1.0)`; `(1.0, 1.0)` with `ratio=(1, 1)` disables it.
        ratio: (min, max) aspect ratio (width / height) of the crop, drawn
            log-uniformly. Defaults to `(3/4, 4/3)`.
        flip: bool. Random horizontal flip. Defaults to `False`, because it
            changes the label of direction-sensitive classes.
    """

    scale: tuple[float, float] = (0.4, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = False

    def __post_init__(self):
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(
                f"`scale` must be (min, max) with 0 < min <= max <= 1. Received: scale={self.scale!r}"
            )
        lo, hi = self.ratio
        if not 0 < lo <= hi:
            raise ValueError(
                f"`ratio` must be (min, max) with 0 < min <= max. Received: ratio={self.ratio!r}"
            )


class SkippedVideos:
    """Counts the videos a pipeline skipped because they could not be read.

    Thread-safe: the pipeline's decoders add to it from tf.data threads.
    `mrrn_keras.training.SkippedVideosCallback` reports it at each epoch end.

    Example:

    >>> skipped = SkippedVideos()
    >>> skipped.add("bad.avi", "file is empty (0 bytes)")
    >>> skipped.count, skipped.take()
    (1, [('bad.avi', 'file is empty (0 bytes)')])
    >>> skipped.count, skipped.total
    (0, 1)
    >>> skipped.add("bad.avi", "file is empty (0 bytes)")  # read again, next epoch
    >>> skipped.total, skipped.files
    (2, {'bad.avi': 'file is empty (0 bytes)'})
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._files: dict[str, str] = {}
        self.total = 0
        self.error: VideoError | None = None

    def fail(self, err: VideoError) -> None:
        """Records the first unreadable video of an `on_error="raise"` pipeline."""
        with self._lock:
            self.error = self.error or err

    def raise_error(self) -> None:
        """Raises the `VideoError` recorded by `fail`, if any."""
        if self.error is not None:
            raise self.error

    def add(self, path: str, reason: str) -> None:
        with self._lock:
            self._pending.append((path, reason))
            self._files.setdefault(path, reason)
            self.total += 1

    @property
    def files(self) -> dict[str, str]:
        """`{path: reason}` of every distinct file skipped so far (a file read
        every epoch counts once); `total` counts every skip."""
        with self._lock:
            return dict(self._files)

    @property
    def count(self) -> int:
        """Videos skipped since the last `take`."""
        with self._lock:
            return len(self._pending)

    def take(self) -> list[tuple[str, str]]:
        """Returns and forgets the (path, reason) pairs skipped since the last call."""
        with self._lock:
            pending, self._pending = self._pending, []
        return pending


def clip_indices(
    num_frames,
    clip_len: int,
    *,
    mode: str = "segments",
    stride: int = 1,
    short: str = "loop",
    training: bool = False,
    num_clips: int = 1,
    seed=None,
):
    """Frame indices of `num_clips` clips of a video, computed in the graph.

    The same rules as `mrrn_keras.data.video.sample_indices`; with
    `training=False` and `num_clips=1` the result equals it. Several test
    clips are spread evenly: clip `j` of `k` takes, in each segment (or in
    the room a dense clip can start in), the point at `(2j + 1) / 2k`.
    `"uniform"` clips do not move, so its `k` clips are identical.

    Args:
        num_frames: int scalar tensor >= 1. Frames in the video.
        clip_len: int. Frames per clip.
        mode, stride, short: see `sample_indices`.
        training: bool. One random clip (random segment offsets or dense
            start) per call; `num_clips` must be 1.
        num_clips: int. Evenly spread clips (when not training).
        seed: int tensor `(2,)`, the stateless seed used when `training`.

    Returns:
        int32 tensor `(num_clips, clip_len)` of indices in `[0, num_frames)`.

    Example:

    >>> clip_indices(100, 4).numpy().tolist()
    [[12, 37, 62, 87]]
    >>> clip_indices(100, 2, num_clips=2).numpy().tolist()
    [[12, 62], [37, 87]]
    """
    n = tf.cast(num_frames, tf.int32)
    k = num_clips
    positions = tf.range(clip_len, dtype=tf.int32)
    span = (clip_len - 1) * stride + 1 if mode == "dense" else clip_len
    clip_index = tf.range(k, dtype=tf.int32)[:, None]  # (k, 1)

    def too_short():
        steps = positions * stride if mode == "dense" else positions
        wrapped = steps % n if short == "loop" else tf.minimum(steps, n - 1)
        return tf.tile(wrapped[None], [k, 1])

    def long_enough():
        if mode == "uniform":
            line = tf.linspace(tf.constant(0.0, tf.float64), tf.cast(n - 1, tf.float64), clip_len)
            return tf.tile(tf.cast(tf.round(line), tf.int32)[None], [k, 1])
        if mode == "dense":
            room = n - span
            if training:
                start = tf.random.stateless_uniform((1, 1), seed, 0, room + 1, dtype=tf.int32)
            else:
                start = ((2 * clip_index + 1) * room) // (2 * k)
            return start + positions[None] * stride
        starts = positions * n // clip_len
        lengths = (positions + 1) * n // clip_len - starts
        if training:
            u = tf.random.stateless_uniform((1, clip_len), seed, dtype=tf.float32)
            return starts + tf.cast(u * tf.cast(lengths, tf.float32), tf.int32)
        return starts + ((2 * clip_index + 1) * lengths) // (2 * k)

    return tf.cond(n < span, too_short, long_enough)


def _crop_boxes(height, width, *, augment, num_crops, seed):
    """Crop boxes `(views, 4)` in normalised `crop_and_resize` coordinates."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    if augment is not None:
        seeds = tf.random.experimental.stateless_split(seed, 4)
        area = h * w * tf.random.stateless_uniform((), seeds[0], *augment.scale)
        log_ratio = tf.random.stateless_uniform(
            (), seeds[1], math.log(augment.ratio[0]), math.log(augment.ratio[1])
        )
        crop_w = tf.clip_by_value(tf.sqrt(area * tf.exp(log_ratio)), 1.0, w)
        crop_h = tf.clip_by_value(tf.sqrt(area / tf.exp(log_ratio)), 1.0, h)
        jitter = tf.random.stateless_uniform((2,), seeds[2])
        top = jitter[0] * (h - crop_h)
        left = jitter[1] * (w - crop_w)
        tops, lefts = top[None], left[None]
        crop_h, crop_w = crop_h[None], crop_w[None]
    else:
        side = tf.minimum(h, w)
        # Centre square, then (num_crops=3) the two ends of the long side.
        fractions = tf.constant([0.5, 0.0, 1.0][:num_crops])
        tops = (h - side) * fractions
        lefts = (w - side) * fractions
        crop_h = crop_w = tf.fill([num_crops], side)
    # Pixel edges -> centres of the first and last sampled pixels; with a
    # crop as large as the output this samples the pixel grid exactly.
    y1 = tops / tf.maximum(h - 1, 1.0)
    x1 = lefts / tf.maximum(w - 1, 1.0)
    y2 = (tops + crop_h - 1) / tf.maximum(h - 1, 1.0)
    x2 = (lefts + crop_w - 1) / tf.maximum(w - 1, 1.0)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def _views(frames, size, *, augment, num_crops, seed):
    """Crops every clip of `frames` to `size`: `(K, T, H, W, 3)` -> `(K*V, T, size, size, 3)`."""
    shape = tf.shape(frames)
    k, t = shape[0], shape[1]
    boxes = _crop_boxes(shape[2], shape[3], augment=augment, num_crops=num_crops, seed=seed)
    views = tf.shape(boxes)[0]
    # (K, T, H, W, 3) -> (K*T, H, W, 3): one box per (clip, view, frame).
    flat = tf.reshape(frames, tf.concat([[k * t], shape[2:]], 0))
    box_per_frame = tf.tile(boxes[None, :, None, :], [k, 1, t, 1])  # (K, V, T, 4)
    image_index = tf.tile(tf.reshape(tf.range(k * t), [k, 1, t]), [1, views, 1])  # (K, V, T)
    crops = tf.image.crop_and_resize(
        tf.cast(flat, tf.float32),
        tf.reshape(box_per_frame, [-1, 4]),
        tf.reshape(image_index, [-1]),
        (size, size),
    )
    crops = tf.cast(tf.clip_by_value(tf.round(crops), 0, 255), tf.uint8)
    # (K*V*T, size, size, 3) -> (K*V, T, size, size, 3)
    crops = tf.reshape(crops, [k * views, t, size, size, 3])
    if augment is not None and augment.flip:
        flip_seed = tf.random.experimental.stateless_split(seed, 4)[3]
        flip = tf.random.stateless_uniform((), flip_seed) < 0.5
        crops = tf.cond(flip, lambda: tf.reverse(crops, axis=[3]), lambda: crops)
    return crops


def _frame_range(num_frames, fps, start, end):
    """(first frame, frame count) of a `(start, end)` span in seconds; start < 0: whole video."""
    n = tf.cast(num_frames, tf.int32)
    has_span = tf.logical_and(start >= 0, fps > 0)
    first = tf.where(has_span, tf.cast(tf.floor(start * fps), tf.int32), 0)
    first = tf.clip_by_value(first, 0, n - 1)
    last = tf.where(has_span, tf.cast(tf.math.ceil(end * fps), tf.int32), n)
    last = tf.clip_by_value(last, first + 1, n)
    return first, last - first


class _RawDecoder:
    """The Python side of raw-video decoding: PyAV calls run by `tf.numpy_function`."""

    def __init__(self, on_error, skipped, short_side):
        self.on_error = on_error
        self.skipped = skipped
        self.short_side = short_side

    def _failed(self, err: VideoError):
        if self.on_error == "raise":
            if self.skipped is None:
                raise err
            # Raised from Python by the consumer (`SkippedVideos.raise_error`):
            # an exception inside tf.numpy_function leaves the iterator unable
            # to shut down, and the process hangs at exit.
            self.skipped.fail(err)
            return
        logger.warning("Skipping unreadable video %s", err)
        if self.skipped is not None:
            self.skipped.add(err.path, err.reason)

    def probe(self, path):
        try:
            info = probe_video(path.decode())
        except VideoError as err:
            self._failed(err)
            return np.int32(1), np.float32(0), np.int32(1), np.int32(1), False
        return (
            np.int32(info.num_frames), np.float32(info.fps),
            np.int32(info.height), np.int32(info.width), True,
        )

    def read(self, path, indices, height, width):
        scale = self.short_side / min(height, width)
        # Keep the aspect ratio; FFmpeg's scaler needs at least 1 pixel.
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        try:
            frames = read_frames(path.decode(), indices, size=size)
        except VideoError as err:
            self._failed(err)
            return np.zeros((len(indices), 1, 1, 3), np.uint8), False
        return frames, True


def _index_slices(index: VideoIndex) -> tf.data.Dataset:
    """(path, label, video id, span start, span end) per video; -1 spans mean whole."""
    spans = index.spans or (None,) * len(index)
    return tf.data.Dataset.from_tensor_slices(
        (
            list(index.paths),
            np.asarray(index.labels, np.int32),
            np.arange(len(index), dtype=np.int32),
            np.asarray([s[0] if s else -1.0 for s in spans], np.float32),
            np.asarray([s[1] if s else -1.0 for s in spans], np.float32),
        )
    )


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
    shuffle_buffer: int | None = None,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of clips and labels from raw videos or a frame cache.

    Args:
        source: a `VideoIndex` (raw videos) or a `FrameCache` (see
            `mrrn_keras.data.cache.open_cache`).
        spec: a `ClipSpec`.
        training: bool. Shuffles, draws random clips (and `augment`) and
            drops the last partial batch. When False, every view (clip x
            crop) of every video is one element, in index order.
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
        shuffle_buffer: shuffle buffer when training. Defaults to the whole
            index (raw) or 1024 videos (cache).
        seed: int or None. Seeds shuffling, clip draws and augmentation.

    Returns:
        A `tf.data.Dataset`. Frames are uint8 `(B, clip_len, size, size, 3)`,
        labels int32 `(B,)`, video ids int32 `(B,)` (position in the index).

    Raises:
        ValueError: bad arguments.
    """
    if not isinstance(source, (VideoIndex, cache_lib.FrameCache)):
        raise ValueError(
            "`source` must be a VideoIndex or a FrameCache. "
            f"Received: source of type {type(source).__name__}"
        )
    if isinstance(source, VideoIndex) and not len(source):
        raise ValueError("`source` is an empty VideoIndex. Received: 0 videos")
    check_int("batch_size", batch_size)
    check_int("num_clips", num_clips)
    if num_crops not in CROP_COUNTS:
        raise ValueError(f"`num_crops` must be one of {CROP_COUNTS}. Received: num_crops={num_crops!r}")
    if on_error not in ERROR_POLICIES:
        raise ValueError(f"`on_error` must be one of {ERROR_POLICIES}. Received: on_error={on_error!r}")
    if training and (num_clips != 1 or num_crops != 1):
        raise ValueError(
            "Training draws one random clip per video; num_clips and num_crops are for "
            f"evaluation. Received: num_clips={num_clips}, num_crops={num_crops}"
        )
    if augment is not None and not isinstance(augment, Augment):
        raise ValueError(f"`augment` must be an Augment or None. Received: augment={augment!r}")
    augment = augment if training else None
    t, size = spec.clip_len, spec.size
    sampling = dict(mode=spec.mode, stride=spec.stride, short=spec.short, training=training,
                    num_clips=num_clips)

    if isinstance(source, VideoIndex):
        ds = _index_slices(source)
        if training:
            ds = ds.shuffle(shuffle_buffer or len(source), seed=seed, reshuffle_each_iteration=True)
    else:
        ds = source.records(shuffle=training, seed=seed)
        if training:
            ds = ds.shuffle(shuffle_buffer or 1024, seed=seed, reshuffle_each_iteration=True)
    # One stateless seed pair per video, drawn from a seeded stream.
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=seed).batch(2))

    if isinstance(source, VideoIndex):
        decoder = _RawDecoder(on_error, skipped, spec.decode_short_side)

        def probe(item, seeds):
            path, label, video, start, end = item
            n, fps, height, width, ok = tf.numpy_function(
                decoder.probe, [path], (tf.int32, tf.float32, tf.int32, tf.int32, tf.bool),
                stateful=True,
            )
            return dict(path=path, label=label, video=video, start=start, end=end, seed=seeds,
                        n=n, fps=fps, height=height, width=width, ok=ok)

        def read(e):
            first, count = _frame_range(e["n"], e["fps"], e["start"], e["end"])
            clip_seed, _ = tf.unstack(tf.random.experimental.stateless_split(e["seed"], 2))
            indices = first + clip_indices(count, t, seed=clip_seed, **sampling)  # (K, T)
            frames, ok = tf.numpy_function(
                decoder.read, [e["path"], tf.reshape(indices, [-1]), e["height"], e["width"]],
                (tf.uint8, tf.bool), stateful=True,
            )
            # (K*T, H, W, 3) -> (K, T, H, W, 3)
            frames = tf.reshape(frames, tf.concat([[num_clips, t], tf.shape(frames)[1:]], 0))
            return dict(frames=frames, label=e["label"], video=e["video"], seed=e["seed"], ok=ok)

        ds = ds.map(probe, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
        ds = ds.filter(lambda e: e["ok"])
        ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
        ds = ds.filter(lambda e: e["ok"])
        if on_error == "raise" and skipped is not None:
            # The stream ends at the first failure; the consumer raises it.
            ds = ds.take_while(lambda e: tf.reshape(tf.numpy_function(
                lambda: np.bool_(skipped.error is None), [], tf.bool, stateful=True), []))
    else:

        def read(record, seeds):
            e = cache_lib.parse_record(record)
            clip_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seeds, 2))
            indices = clip_indices(e["num_frames"], t, seed=clip_seed, **sampling)  # (K, T)
            jpegs = tf.gather(e["frames"], tf.reshape(indices, [-1]))
            frames = tf.map_fn(
                lambda b: tf.io.decode_jpeg(b, channels=3), jpegs,
                fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
            )
            # (K*T, H, W, 3) -> (K, T, H, W, 3)
            frames = tf.reshape(frames, tf.concat([[num_clips, t], tf.shape(frames)[1:]], 0))
            return dict(frames=frames, label=e["label"], video=e["video_id"], seed=seeds)

        ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)

    def crop(e):
        _, view_seed = tf.unstack(tf.random.experimental.stateless_split(e["seed"], 2))
        views = _views(e["frames"], size, augment=augment, num_crops=num_crops, seed=view_seed)
        count = tf.shape(views)[0]
        return views, tf.fill([count], e["label"]), tf.fill([count], e["video"])

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    ds = ds.unbatch()
    keys = None if label_keys is None else list(label_keys)
    ids = (not training) if with_video_ids is None else with_video_ids

    def finish(x, y, v):
        x = tf.ensure_shape(x, [t, size, size, 3])
        y = y if keys is None else {k: y for k in keys}
        return (x, y, v) if ids else (x, y)

    ds = ds.map(finish)
    ds = ds.batch(batch_size, drop_remainder=training)
    return ds.prefetch(tf.data.AUTOTUNE)
