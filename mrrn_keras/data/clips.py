"""One clip source for every backend: index position + seed -> clip and label.

`ClipSource` holds the whole path from a video (a `VideoIndex` of raw files
or a `FrameCache`) to a batch of training or evaluation clips: which videos
go into batch `b` of epoch `e`, which frames of each (`clip_indices`), the
decode (PyAV seeking, or the cache's JPEGs), the crop, the flip, the
batching. It is NumPy, PyAV and Pillow only, picklable, and a pure function
of `(epoch, batch)` and its seed, so two adapters serve it and give the same
clips: `mrrn_keras.data.pipeline.clip_dataset` (tf.data, for TensorFlow and
tf.distribute) and `mrrn_keras.data.loader.ClipLoader` (a
`keras.utils.PyDataset`, for every backend, TensorFlow not needed).

Spatial handling is one crop box per clip, so every frame of a clip sees the
same crop and the same flip:

- training with an `Augment`: a random resized crop (area fraction and
  aspect ratio drawn per clip) and, only if `Augment.flip`, a horizontal
  flip. Flip is off by default: it turns `move_left` into `move_right`.
- otherwise: the centre square (side = the frame's short side), resized to
  `ClipSpec.size`; with `num_crops=3`, the two ends of the long side too.

Crops are resized by Pillow's bilinear filter (antialiased when shrinking;
a box as large as the output copies the pixels exactly).

Example:

>>> import tempfile, pathlib
>>> import numpy as np
>>> from mrrn_keras.data.datasets import VideoIndex
>>> from mrrn_keras.data.video import write_video
>>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
>>> write_video(path, np.zeros((12, 40, 48, 3), np.uint8))
>>> index = VideoIndex((str(path),) * 3, (0, 1, 1), ("a", "b"))
>>> source = ClipSource(index, ClipSpec(clip_len=4, size=32), training=True, batch_size=2,
...                     seed=0)
>>> len(source)
1
>>> frames, labels = source.batch(0)
>>> frames.shape, frames.dtype.name, labels.shape
((2, 4, 32, 32, 3), 'uint8', (2,))
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mrrn_keras.data.datasets import VideoIndex
from mrrn_keras.data.sampling import SAMPLING_MODES, SHORT_POLICIES
from mrrn_keras.data.video import probe_video, read_frames, sample_indices
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

    Thread-safe: loaders add to it from their worker threads.
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
    num_frames: int,
    clip_len: int,
    *,
    mode: str = "segments",
    stride: int = 1,
    short: str = "loop",
    training: bool = False,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices of `num_clips` clips of a video.

    The rules of `mrrn_keras.data.video.sample_indices`, which gives clip 0
    of 1. Several test clips are spread evenly: clip `j` of `k` takes, in
    each segment (or in the room a dense clip can start in), the point at
    `(2j + 1) / 2k`. `"uniform"` clips do not move, so its `k` clips are
    identical.

    Args:
        num_frames: int >= 1. Frames in the video.
        clip_len: int >= 1. Frames per clip.
        mode, stride, short: see `sample_indices`.
        training: bool. One random clip, drawn from `rng`; `num_clips` must
            be 1.
        num_clips: int >= 1. Evenly spread clips (when not training).
        rng: numpy Generator for the training draw.

    Returns:
        int64 array `(num_clips, clip_len)` of indices in `[0, num_frames)`.

    Raises:
        ValueError: an argument is out of range.

    Example:

    >>> clip_indices(100, 4).tolist()
    [[12, 37, 62, 87]]
    >>> clip_indices(100, 2, num_clips=2).tolist()
    [[12, 62], [37, 87]]
    """
    num_clips = check_int("num_clips", num_clips)
    if training and num_clips != 1:
        raise ValueError(f"Training draws one clip. Received: num_clips={num_clips}")
    one = sample_indices(num_frames, clip_len, mode=mode, stride=stride, short=short,
                         training=training, rng=rng)
    span = (clip_len - 1) * stride + 1 if mode == "dense" else clip_len
    if num_clips == 1 or training or mode == "uniform" or num_frames < span:
        return np.tile(one[None], (num_clips, 1))
    k = np.arange(num_clips, dtype=np.int64)[:, None]  # (K, 1)
    positions = np.arange(clip_len, dtype=np.int64)
    if mode == "dense":
        room = num_frames - span
        return ((2 * k + 1) * room) // (2 * num_clips) + positions[None] * stride
    starts = positions * num_frames // clip_len
    lengths = (positions + 1) * num_frames // clip_len - starts
    return starts + ((2 * k + 1) * lengths) // (2 * num_clips)


def span_frames(num_frames: int, fps: float, span: tuple[float, float] | None) -> tuple[int, int]:
    """`(first frame, frame count)` of a `(start, end)` span in seconds; None: the whole video."""
    if span is None or fps <= 0:
        return 0, num_frames
    first = min(max(int(math.floor(span[0] * fps)), 0), num_frames - 1)
    last = min(max(int(math.ceil(span[1] * fps)), first + 1), num_frames)
    return first, last - first


def crop_boxes(height: int, width: int, *, augment: Augment | None, num_crops: int,
               rng: np.random.Generator | None) -> list[tuple[float, float, float, float]]:
    """Crop boxes `(left, top, right, bottom)` in pixel-edge coordinates, one per view."""
    h, w = float(height), float(width)
    if augment is not None:
        area = h * w * rng.uniform(*augment.scale)
        log_ratio = rng.uniform(math.log(augment.ratio[0]), math.log(augment.ratio[1]))
        crop_w = min(max(math.sqrt(area * math.exp(log_ratio)), 1.0), w)
        crop_h = min(max(math.sqrt(area / math.exp(log_ratio)), 1.0), h)
        top, left = rng.random(2) * (h - crop_h, w - crop_w)
        return [(left, top, left + crop_w, top + crop_h)]
    side = min(h, w)
    # Centre square, then (num_crops=3) the two ends of the long side.
    return [
        ((w - side) * f, (h - side) * f, (w - side) * f + side, (h - side) * f + side)
        for f in (0.5, 0.0, 1.0)[:num_crops]
    ]


def crop_clip(frames: np.ndarray, box, size: int) -> np.ndarray:
    """One box of every frame, resized: `(T, H, W, 3)` -> `(T, size, size, 3)`."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for t, frame in enumerate(frames):
        image = Image.fromarray(frame)
        out[t] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=box))
    return out


class ClipSource:
    """Batches of clips and labels from raw videos or a frame cache, as NumPy.

    Batch `b` of epoch `e` is a pure function of `(seed, e, b)`: the video
    order of an epoch comes from `(seed, e)`, each clip's frames and crop
    from `(seed, e, position)`. So any number of workers, threads or
    processes, and either adapter, give the same batches.

    Training: the videos are shuffled per epoch and cut into
    `len(self)` = `num_videos // batch_size` full batches; a video that
    cannot be read is replaced by the next readable one in the epoch's
    order (wrapping), so every batch stays full. Evaluation: every view
    (clip x crop) of every video is one element, in index order, batched
    with a final partial batch; an unreadable video's views are left out.

    Args:
        source: a `VideoIndex` (raw videos) or a `FrameCache` (see
            `mrrn_keras.data.cache.open_cache`).
        spec: a `ClipSpec`.
        training: bool. Random order, clips and `augment`.
        batch_size: int. Clips per batch.
        augment: an `Augment`, used only when `training`. Defaults to None.
        num_clips: int. Evenly spread clips per video when not training.
        num_crops: 1 or 3. Crops per clip when not training.
        on_error: `"skip"` (count in `skipped`, log, go on) or `"raise"`
            (the `VideoError` propagates).
        skipped: a `SkippedVideos` to count skipped videos in.
        label_keys: if given, labels become `{key: labels}` (the outputs of
            a `stream_outputs=True` MRRN, see `training.output_keys`).
        with_video_ids: batches are `(frames, labels, video_ids)` rather
            than `(frames, labels)`. Defaults to `not training`.
        seed: int or None (a random seed, drawn once).

    Raises:
        ValueError: bad arguments.
    """

    def __init__(
        self,
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
    ):
        from mrrn_keras.data.cache import FrameCache

        if not isinstance(source, (VideoIndex, FrameCache)):
            raise ValueError(
                "`source` must be a VideoIndex or a FrameCache. "
                f"Received: source of type {type(source).__name__}"
            )
        if not len(source):
            raise ValueError(f"`source` is empty. Received: 0 videos in {type(source).__name__}")
        if not isinstance(spec, ClipSpec):
            raise ValueError(f"`spec` must be a ClipSpec. Received: spec={spec!r}")
        check_int("batch_size", batch_size)
        check_int("num_clips", num_clips)
        if num_crops not in CROP_COUNTS:
            raise ValueError(
                f"`num_crops` must be one of {CROP_COUNTS}. Received: num_crops={num_crops!r}"
            )
        if on_error not in ERROR_POLICIES:
            raise ValueError(
                f"`on_error` must be one of {ERROR_POLICIES}. Received: on_error={on_error!r}"
            )
        if training and (num_clips != 1 or num_crops != 1):
            raise ValueError(
                "Training draws one random clip per video; num_clips and num_crops are for "
                f"evaluation. Received: num_clips={num_clips}, num_crops={num_crops}"
            )
        if augment is not None and not isinstance(augment, Augment):
            raise ValueError(f"`augment` must be an Augment or None. Received: augment={augment!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.source = source
        self.spec = spec
        self.training = bool(training)
        self.batch_size = int(batch_size)
        self.augment = augment if training else None
        self.num_clips = int(num_clips)
        self.num_crops = int(num_crops)
        self.on_error = on_error
        self.skipped = skipped
        self.label_keys = None if label_keys is None else tuple(label_keys)
        self.with_video_ids = (not training) if with_video_ids is None else bool(with_video_ids)
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)

    @property
    def num_videos(self) -> int:
        return len(self.source)

    @property
    def views_per_video(self) -> int:
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.training:
            return max(1, self.num_videos // self.batch_size)
        return -(-self.num_videos * self.views_per_video // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Positions of the videos in epoch `epoch`'s order."""
        if not self.training:
            return np.arange(self.num_videos)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_videos)

    def views(self, position: int, epoch: int = 0) -> tuple[np.ndarray, int, int]:
        """`(frames (views, T, size, size, 3), label, video id)` of one video.

        Raises:
            VideoError: the video cannot be read (whatever `on_error` says).
        """
        rng = np.random.default_rng([self.seed, epoch, int(position)])
        clip_rng, view_rng = rng.spawn(2)
        spec, k = self.spec, self.num_clips
        sampling = dict(mode=spec.mode, stride=spec.stride, short=spec.short,
                        training=self.training, num_clips=k, rng=clip_rng)
        if isinstance(self.source, VideoIndex):
            path = self.source.paths[position]
            label, video_id = self.source.labels[position], int(position)
            info = probe_video(path)
            span = self.source.spans[position] if self.source.spans else None
            first, count = span_frames(info.num_frames, info.fps, span)
            indices = first + clip_indices(count, spec.clip_len, **sampling)  # (K, T)
            scale = spec.decode_short_side / min(info.height, info.width)
            # Keep the aspect ratio; FFmpeg's scaler needs at least 1 pixel.
            size = (max(1, round(info.height * scale)), max(1, round(info.width * scale)))
            # One decoding thread per file: loaders decode a file per worker, and
            # FFmpeg's own frame threads would only contend with the other workers.
            frames = read_frames(path, indices.reshape(-1), size=size, threads=1)
        else:
            label, video_id, num_frames = self.source.video(position)
            indices = clip_indices(num_frames, spec.clip_len, **sampling)  # (K, T)
            frames = self.source.frames(position, indices.reshape(-1))
        # (K*T, H, W, 3) -> (K, T, H, W, 3)
        frames = frames.reshape((k, spec.clip_len) + frames.shape[1:])
        boxes = crop_boxes(frames.shape[2], frames.shape[3], augment=self.augment,
                           num_crops=self.num_crops, rng=view_rng)
        # (K, T, H, W, 3) -> (K*V, T, size, size, 3), clip-major.
        out = np.stack([crop_clip(clip, box, spec.size) for clip in frames for box in boxes])
        if self.augment is not None and self.augment.flip and view_rng.random() < 0.5:
            out = out[:, :, :, ::-1]
        return np.ascontiguousarray(out), int(label), video_id

    def _try_views(self, position, epoch):
        try:
            return self.views(position, epoch)
        except VideoError as err:
            if self.on_error == "raise":
                raise
            logger.warning("Skipping unreadable video %s", err)
            if self.skipped is not None:
                self.skipped.add(err.path, err.reason)
            return None

    def batch(self, index: int, epoch: int = 0) -> tuple:
        """Batch `index` of epoch `epoch`: `(frames, labels[, video_ids])`.

        Frames are uint8 `(B, clip_len, size, size, 3)`, labels int32 `(B,)`
        (or `{key: labels}`), video ids int32 `(B,)` (position in the index;
        for a cache, the id it was written with).

        Raises:
            IndexError: `index` is not in `[0, len(self))`.
            VideoError: a video is unreadable and `on_error="raise"`.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} of {len(self)}")
        got: list[tuple[np.ndarray, int, int]] = []
        if self.training:
            order = self.order(epoch)
            start = index * self.batch_size
            for tried in range(self.num_videos):
                if len(got) == self.batch_size:
                    break
                item = self._try_views(int(order[(start + tried) % self.num_videos]), epoch)
                if item is not None:
                    got.append(item)
            frames = [f[0] for f, _, _ in got]
            labels = [label for _, label, _ in got]
            ids = [video_id for _, _, video_id in got]
        else:
            v = self.views_per_video
            lo = index * self.batch_size
            hi = min(lo + self.batch_size, self.num_videos * v)
            frames, labels, ids = [], [], []
            for position in range(lo // v, (hi - 1) // v + 1):
                item = self._try_views(position, epoch)
                if item is None:
                    continue
                views, label, video_id = item
                for view in range(max(lo - position * v, 0), min(hi - position * v, v)):
                    frames.append(views[view])
                    labels.append(label)
                    ids.append(video_id)
        t, s = self.spec.clip_len, self.spec.size
        x = np.stack(frames) if frames else np.zeros((0, t, s, s, 3), np.uint8)
        y = np.asarray(labels, np.int32)
        y = y if self.label_keys is None else {key: y for key in self.label_keys}
        if self.with_video_ids:
            return x, y, np.asarray(ids, np.int32)
        return x, y

    def __getstate__(self):
        state = dict(self.__dict__)
        # Counts stay in the process that owns them; worker processes log.
        state["skipped"] = None
        return state


def default_workers() -> int:
    """Loader workers when none are asked for: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
