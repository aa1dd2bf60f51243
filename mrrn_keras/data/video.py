"""Video decoding, clip sampling and writing with PyAV.

Frames are always uint8 RGB arrays shaped `(T, H, W, 3)`. Reading decodes a
file once, sequentially, and converts to RGB only the frames that are kept,
which is what makes `load_clip` cheap enough to run inside `tf.data`.

Every failure to read a file (missing, empty, not a video, no video stream,
nothing decodable) raises `mrrn_keras.errors.VideoError` naming the path;
PyAV's own exceptions never escape.

Example:

>>> import tempfile, pathlib
>>> import numpy as np
>>> path = pathlib.Path(tempfile.mkdtemp()) / "clip.avi"
>>> write_video(path, np.zeros((20, 48, 64, 3), np.uint8), fps=10)
>>> probe_video(path).num_frames
20
>>> load_clip(path, 8, size=32).shape
(8, 32, 32, 3)
"""

from __future__ import annotations

import dataclasses
import fractions
import logging
import math
import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence

import av
import av.error
import numpy as np

from mrrn_keras.data.sampling import SAMPLING_MODES, SHORT_POLICIES
from mrrn_keras.errors import VideoError
from mrrn_keras.files import current_umask
from mrrn_keras.validation import check_int

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


# Encoders that reject odd frame sizes with yuv420p; mpeg4 and mjpeg accept
# them, so only these are refused up front.
EVEN_SIZE_CODECS = frozenset({"libx264", "h264", "libopenh264", "libx265", "hevc"})

# Pixel format and quality options per encoder. mpeg4/mjpeg at qscale 2 and
# x264 at crf 18 are visually near-lossless; FFmpeg's default 200 kb/s makes
# small synthetic clips blocky. Other encoders keep FFmpeg's defaults.
_ENCODER_SETTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "mpeg4": ("yuv420p", {"flags": "qscale", "global_quality": "236"}),
    "mjpeg": ("yuvj444p", {"flags": "qscale", "global_quality": "236"}),
    "libx264": ("yuv420p", {"crf": "18"}),
    "h264": ("yuv420p", {"crf": "18"}),
    "png": ("rgb24", {}),
    "ffv1": ("bgr0", {}),
}


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a file's first video stream.

    Attributes:
        path: str. The file probed.
        num_frames: int. Frame count (see `probe_video` for how it is found).
            Headers can be wrong, so readers clamp indices past the true end.
        fps: float. Average frame rate; 0.0 when the file does not say.
        width: int. Frame width in pixels.
        height: int. Frame height in pixels.
        duration_s: float. Duration in seconds; 0.0 when unknown.
        rotation: int. Degrees (0, 90, 180 or 270, clockwise) the stored
            frames are turned by before they are returned, from the file's
            display matrix or rotate tag, so that a phone video is upright.
            `width` and `height` are those of the frames as returned.
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    rotation: int = 0


def _check_file(path: PathLike) -> str:
    """Returns `path` as str after checking it names a non-empty file."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VideoError(name, "file not found")
    if not os.path.isfile(name):
        raise VideoError(name, "not a regular file")
    if os.path.getsize(name) == 0:
        raise VideoError(name, "file is empty (0 bytes)")
    return name


def _open_video(path: PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Opens `path` and returns (container, first video stream)."""
    name = _check_file(path)
    try:
        container = av.open(name, mode="r")
    except (av.error.FFmpegError, OSError) as err:
        raise VideoError(name, f"not a readable media file ({_one_line(err)})") from err
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(name, f"no video stream (streams found: {', '.join(kinds)})")
    stream = container.streams.video[0]
    # Frame-level threading: several frames decode in parallel, in order.
    stream.thread_type = "AUTO"
    return container, stream


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _decode(name: str, container, stream) -> Iterator[av.VideoFrame]:
    """Yields decoded frames; a corrupt tail ends the stream with a warning.

    Truncated files are common in real datasets, so an FFmpeg error after at
    least one good frame is treated as the end of the video.
    """
    count = 0
    try:
        for frame in container.decode(stream):
            count += 1
            yield frame
    except (av.error.FFmpegError, OSError) as err:
        if count == 0:
            raise VideoError(name, f"cannot decode video stream ({_one_line(err)})") from err
        logger.warning("%s: decoding stopped after %d frames: %s", name, count, _one_line(err))


def probe_video(path: PathLike) -> VideoInfo:
    """Reads a video's frame count, frame rate, size and duration.

    The frame count is, in order of preference: the stream header's count
    (AVI, MP4, MOV carry one) when positive; else `round(duration * fps)`
    when both are known (Matroska/WebM); else the frames are counted by
    decoding the whole stream. Header counts can be wrong, which is why
    `read_frames` clamps indices past the real end.

    Args:
        path: str or path-like. The video file.

    Returns:
        A `VideoInfo`.

    Raises:
        VideoError: the file is missing, empty, not a media file, has no
            video stream, or (when counting) decodes no frame.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((5, 32, 48, 3), np.uint8), fps=5)
    >>> info = probe_video(path)
    >>> (info.num_frames, info.width, info.height, info.fps)
    (5, 48, 32, 5.0)
    """
    container, stream = _open_video(path)
    name = os.fspath(path)
    try:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = 0.0
        num_frames = int(stream.frames or 0)
        if num_frames <= 0 and duration_s > 0 and fps > 0:
            num_frames = int(round(duration_s * fps))
        if num_frames <= 0:
            logger.debug("%s: no frame count in the header; counting by decoding", name)
            num_frames = sum(1 for _ in _decode(name, container, stream))
            if num_frames == 0:
                raise VideoError(name, "video stream has no decodable frames")
        if duration_s <= 0 and fps > 0:
            duration_s = num_frames / fps
        return VideoInfo(
            path=name,
            num_frames=num_frames,
            fps=fps,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            duration_s=duration_s,
        )
    finally:
        container.close()


def _parse_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """Returns (height, width) or None."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"`size` must be a positive integer. Received: size={size!r}")
        return int(size), int(size)
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1
            for s in size
        )
    ):
        return int(size[0]), int(size[1])
    raise ValueError(
        "`size` must be None, a positive int or a (height, width) pair of "
        f"positive ints. Received: size={size!r}"
    )


def read_frames(
    path: PathLike,
    indices: Sequence[int] | None = None,
    *,
    size: int | tuple[int, int] | None = None,
) -> np.ndarray:
    """Decodes the frames at `indices` from a video, as RGB uint8.

    The stream is decoded once, from the start, up to the largest index
    asked for; only the kept frames are converted to RGB (and resized, by
    FFmpeg's scaler). Indices may repeat and come in any order; frames are
    returned in the order asked. An index past the real end of the stream
    (a header that overstates the count, or a file cut short) gives the last
    decoded frame, with a warning naming the file and how many frames were
    decoded of how many its header promises.

    Args:
        path: str or path-like. The video file.
        indices: sequence of int >= 0, or None for every frame.
        size: None (keep the stored size), an int `s` (resize to `s`x`s`)
            or a `(height, width)` pair.

    Returns:
        uint8 array `(len(indices), H, W, 3)`, RGB.

    Raises:
        VideoError: the file cannot be read or decodes no frame.
        ValueError: a negative index or an invalid `size`.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((6, 32, 32, 3), np.uint8))
    >>> read_frames(path, [5, 0, 0, 99], size=(16, 24)).shape
    (4, 16, 24, 3)
    """
    hw = _parse_size(size)
    wanted = None if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if wanted is not None and wanted.size and wanted.min() < 0:
        raise ValueError(
            f"Frame indices must be >= 0. Received: indices={list(map(int, wanted))!r}"
        )
    container, stream = _open_video(path)
    name = os.fspath(path)
    try:
        if wanted is not None and wanted.size == 0:
            height, width = hw or (stream.codec_context.height, stream.codec_context.width)
            return np.zeros((0, height, width, 3), np.uint8)
        kwargs = {"format": "rgb24"}
        if hw is not None:
            kwargs.update(height=hw[0], width=hw[1])
        last_needed = None if wanted is None else int(wanted.max())
        needed = None if wanted is None else set(wanted.tolist())
        promised = int(stream.frames or 0)
        kept: dict[int, np.ndarray] = {}
        last_frame = None
        count = 0
        for index, frame in enumerate(_decode(name, container, stream)):
            count = index + 1
            last_frame = frame
            if needed is None or index in needed:
                kept[index] = frame.to_ndarray(**kwargs)
            if last_needed is not None and index >= last_needed:
                break
        if count == 0:
            raise VideoError(name, "video stream has no decodable frames")
    finally:
        container.close()
    if wanted is None:
        return np.stack([kept[i] for i in range(count)])
    if last_needed >= count:
        logger.warning(
            "%s: only %d frames could be decoded of the %s; frame %d was asked for, so the "
            "clip repeats the last frame (the file may be cut short or damaged)",
            name, count,
            f"{promised} its header promises" if promised > count else f"{last_needed + 1} needed",
            last_needed,
        )
        if count - 1 not in kept:
            kept[count - 1] = last_frame.to_ndarray(**kwargs)
    return np.stack([kept[min(int(i), count - 1)] for i in wanted])


def iter_frame_chunks(
    path: PathLike,
    chunk_len: int,
    *,
    size: int | tuple[int, int] | None = None,
    stride: int = 1,
    start: int = 0,
) -> Iterator[np.ndarray]:
    """Decodes a video once, front to back, yielding frames in chunks.

    Memory stays at one chunk whatever the video's length, which is what
    streaming inference over long files needs. Every `stride`-th frame from
    `start` is kept (frames start, start + stride, ...); the last chunk may
    be shorter. Frames not kept are decoded but never converted to RGB.

    Args:
        path: str or path-like. The video file.
        chunk_len: int >= 1. Kept frames per chunk.
        size: None, int or `(height, width)`; see `read_frames`.
        stride: int >= 1. Keep every `stride`-th decoded frame.
        start: int >= 0. The first frame kept.

    Yields:
        uint8 arrays `(n, H, W, 3)`, RGB, `1 <= n <= chunk_len`.

    Raises:
        VideoError: the file cannot be read or decodes no frame.
        ValueError: an invalid `chunk_len`, `stride`, `start` or `size`.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((7, 32, 32, 3), np.uint8))
    >>> [len(c) for c in iter_frame_chunks(path, 3)]
    [3, 3, 1]
    >>> [len(c) for c in iter_frame_chunks(path, 3, start=2, stride=2)]
    [3]
    """
    chunk_len = check_int("chunk_len", chunk_len)
    stride = check_int("stride", stride)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"`start` must be an integer >= 0. Received: start={start!r}")
    hw = _parse_size(size)
    kwargs = {"format": "rgb24"}
    if hw is not None:
        kwargs.update(height=hw[0], width=hw[1])
    container, stream = _open_video(path)
    name = os.fspath(path)
    chunk: list[np.ndarray] = []
    decoded = 0
    try:
        for index, frame in enumerate(_decode(name, container, stream)):
            decoded = index + 1
            if index < start or (index - start) % stride:
                continue
            chunk.append(frame.to_ndarray(**kwargs))
            if len(chunk) == chunk_len:
                yield np.stack(chunk)
                chunk = []
        if decoded == 0:
            raise VideoError(name, "video stream has no decodable frames")
    finally:
        container.close()
    if chunk:
        yield np.stack(chunk)


def frame_timestamps(path: PathLike) -> np.ndarray:
    """Presentation times of every frame of a video, in seconds, in order.

    Frame `i` of `read_frames`, `iter_frames` and `sample_indices` is the
    frame shown at `frame_timestamps(path)[i]`. Times come from the stream's
    timestamps, so variable-frame-rate files get their real times; the first
    frame is at 0.0 (the stream's start offset removed).

    Args:
        path: str or path-like. The video file.

    Returns:
        float64 array `(num_frames,)`, non-decreasing, starting at 0.0.

    Raises:
        VideoError: the file cannot be read or decodes no frame.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((4, 32, 32, 3), np.uint8), fps=4)
    >>> frame_timestamps(path).tolist()
    [0.0, 0.25, 0.5, 0.75]
    """
    return np.asarray([t for t, _ in _timed_frames(path, size=None, convert=False)], np.float64)


def _timed_frames(path, *, size, convert, start_s=0.0, end_s=None, every=1):
    """Yields (seconds since the first frame, frame) front to back; the frame is an
    RGB array when `convert`, else None."""
    hw = _parse_size(size)
    kwargs = {"format": "rgb24"}
    if hw is not None:
        kwargs.update(height=hw[0], width=hw[1])
    container, stream = _open_video(path)
    name = os.fspath(path)
    time_base = float(stream.time_base) if stream.time_base else 0.0
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    origin = None
    kept = 0
    try:
        for index, frame in enumerate(_decode(name, container, stream)):
            if frame.pts is not None and time_base:
                seconds = frame.pts * time_base
            else:
                seconds = index / fps if fps else float(index)
            origin = seconds if origin is None else origin
            seconds -= origin
            if seconds < start_s:
                continue
            if end_s is not None and seconds >= end_s:
                break
            if kept % every == 0:
                yield seconds, (frame.to_ndarray(**kwargs) if convert else None)
            kept += 1
        if origin is None:
            raise VideoError(name, "video stream has no decodable frames")
    finally:
        container.close()


def iter_frames(
    path: PathLike,
    *,
    size: int | tuple[int, int] | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    every: int = 1,
) -> Iterator[tuple[float, np.ndarray]]:
    """Decodes a video front to back, yielding `(time in seconds, frame)`.

    Times are those of `frame_timestamps`. Memory stays at one frame; this
    is what timelines over long videos and annotated output read.

    Args:
        path: str or path-like. The video file.
        size: None, int or `(height, width)`; see `read_frames`.
        start_s: float >= 0. Frames shown before this time are skipped.
        end_s: float or None. Stop before the first frame at or after it.
        every: int >= 1. Keep every `every`-th frame from `start_s` on.

    Yields:
        `(seconds, uint8 array (H, W, 3))`, RGB.

    Raises:
        VideoError: the file cannot be read or decodes no frame.
        ValueError: an invalid `size`, `start_s`, `end_s` or `every`.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((6, 32, 32, 3), np.uint8), fps=2)
    >>> [t for t, frame in iter_frames(path, start_s=1.0, every=2)]
    [1.0, 2.0]
    """
    every = check_int("every", every)
    ok = isinstance(start_s, (int, float)) and not isinstance(start_s, bool)
    if not ok or not math.isfinite(start_s) or start_s < 0:
        raise ValueError(f"`start_s` must be a finite number >= 0. Received: start_s={start_s!r}")
    if end_s is not None and (
        isinstance(end_s, bool) or not isinstance(end_s, (int, float)) or not end_s > start_s
    ):
        raise ValueError(
            f"`end_s` must be None or a number > start_s. Received: end_s={end_s!r}"
        )
    yield from _timed_frames(
        path, size=size, convert=True, start_s=float(start_s), end_s=end_s, every=every
    )


def sample_indices(
    num_frames: int,
    clip_len: int,
    *,
    mode: str = "segments",
    stride: int = 1,
    training: bool = False,
    rng: np.random.Generator | None = None,
    short: str = "loop",
) -> np.ndarray:
    """Chooses which frames of a video make a clip.

    Modes:
        "segments": TSN sampling. The video is cut into `clip_len` equal
            segments and one frame is taken from each: a random one when
            `training`, the centre one otherwise.
        "uniform": `clip_len` frames evenly spaced from the first frame to
            the last (`np.linspace`), the same whether training or not.
        "dense": `clip_len` consecutive frames `stride` apart, starting at a
            random frame when `training`, centred in the video otherwise.

    A video too short for the clip (fewer than `clip_len` frames, or fewer
    than the `(clip_len - 1) * stride + 1` a dense clip spans) is sampled as
    if it were long enough from frame 0, then `short` maps the overflow:
    "loop" wraps around to the start, "pad" repeats the last frame.

    Args:
        num_frames: int >= 1. Frames in the video.
        clip_len: int >= 1. Frames in the clip.
        mode: str. One of "segments", "uniform", "dense".
        stride: int >= 1. Step between frames of a "dense" clip.
        training: bool. Random offsets ("segments", "dense") when True.
        rng: numpy Generator used when `training`; a fresh unseeded one when
            None.
        short: str. "loop" or "pad".

    Returns:
        int64 array `(clip_len,)` of indices in `[0, num_frames)`.

    Raises:
        ValueError: an argument is out of range.

    Example:

    >>> sample_indices(100, 4).tolist()
    [12, 37, 62, 87]
    >>> sample_indices(100, 4, mode="uniform").tolist()
    [0, 33, 66, 99]
    >>> sample_indices(3, 5, mode="uniform", short="pad").tolist()
    [0, 1, 2, 2, 2]
    """
    num_frames = check_int("num_frames", num_frames)
    clip_len = check_int("clip_len", clip_len)
    stride = check_int("stride", stride)
    if mode not in SAMPLING_MODES:
        raise ValueError(f"`mode` must be one of {SAMPLING_MODES}. Received: mode={mode!r}")
    if short not in SHORT_POLICIES:
        raise ValueError(f"`short` must be one of {SHORT_POLICIES}. Received: short={short!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"`rng` must be a numpy Generator or None. Received: rng={rng!r}")
    if training and rng is None:
        rng = np.random.default_rng()

    positions = np.arange(clip_len, dtype=np.int64)
    span = (clip_len - 1) * stride + 1 if mode == "dense" else clip_len
    if num_frames < span:
        steps = positions * stride if mode == "dense" else positions
        if short == "loop":
            return steps % num_frames
        return np.minimum(steps, num_frames - 1)

    if mode == "uniform":
        return np.round(np.linspace(0, num_frames - 1, clip_len)).astype(np.int64)
    if mode == "dense":
        room = num_frames - span
        start = int(rng.integers(0, room + 1)) if training else room // 2
        return start + positions * stride
    # segments: boundaries floor(i * n / k); every segment has >= 1 frame
    # because num_frames >= clip_len.
    starts = positions * num_frames // clip_len
    ends = (positions + 1) * num_frames // clip_len
    if training:
        return starts + (rng.random(clip_len) * (ends - starts)).astype(np.int64)
    return (starts + ends) // 2


def load_clip(
    path: PathLike,
    clip_len: int,
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "segments",
    stride: int = 1,
    training: bool = False,
    rng: np.random.Generator | None = None,
    short: str = "loop",
) -> np.ndarray:
    """Probes a video, samples `clip_len` frame indices and decodes them.

    Args:
        path: str or path-like. Any container/codec FFmpeg reads.
        clip_len: int >= 1. Frames in the clip.
        size: None, int or `(height, width)`; see `read_frames`.
        mode, stride, training, rng, short: see `sample_indices`.

    Returns:
        uint8 array `(clip_len, H, W, 3)`, RGB.

    Raises:
        VideoError: the file cannot be read.
        ValueError: an argument is out of range.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((3, 32, 32, 3), np.uint8))
    >>> load_clip(path, 8, short="pad").shape
    (8, 32, 32, 3)
    """
    info = probe_video(path)
    indices = sample_indices(
        info.num_frames,
        clip_len,
        mode=mode,
        stride=stride,
        training=training,
        rng=rng,
        short=short,
    )
    return read_frames(path, indices, size=size)


def write_video(
    path: PathLike,
    frames: np.ndarray,
    *,
    fps: float = 25,
    codec: str = "mpeg4",
) -> None:
    """Writes uint8 RGB frames to a video file, atomically.

    The container comes from the file's extension (.avi, .mp4, .mkv,
    .mov, ...). The file is first written to a temporary file in the same
    directory and renamed into place, so on failure nothing is left behind
    and a reader never sees a half-written file.

    Quality: mpeg4 and mjpeg are written at qscale 2 and libx264/h264 at
    crf 18 (near-lossless for small clips); png and ffv1 are lossless.
    Odd sizes: mpeg4, mjpeg, png and ffv1 accept them; the H.264/H.265
    encoders need even width and height with yuv420p, so odd sizes raise
    ValueError for them rather than being silently padded or cropped.

    Args:
        path: str or path-like. Destination; its directory must exist.
        frames: uint8 array `(T, H, W, 3)`, RGB, T >= 1.
        fps: float > 0. Frame rate (fractional rates like 29.97 are kept).
        codec: str. An FFmpeg encoder name, e.g. "mpeg4", "libx264",
            "mjpeg", "png", "ffv1".

    Raises:
        ValueError: bad frames, fps or codec, or an odd size for a codec
            that needs even ones.
        FileNotFoundError: the destination directory does not exist.
        VideoError: FFmpeg failed to encode or mux (e.g. a codec the
            container cannot hold).

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> frames = np.full((4, 32, 32, 3), 200, np.uint8)
    >>> write_video(path, frames, fps=8, codec="mjpeg")
    >>> int(read_frames(path).mean())
    200
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(
            "`frames` must be a uint8 array (T, H, W, 3) with T >= 1. "
            f"Received: frames with dtype={frames.dtype} shape={frames.shape}"
        )
    is_number = isinstance(fps, (int, float, np.number)) and not isinstance(fps, bool)
    if not is_number or not fps > 0 or not math.isfinite(fps):
        raise ValueError(f"`fps` must be a finite number > 0. Received: fps={fps!r}")
    if not isinstance(codec, str) or codec not in av.codecs_available:
        raise ValueError(f"`codec` must be an FFmpeg encoder name. Received: codec={codec!r}")
    try:
        av.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError) as err:
        raise ValueError(
            f"`codec` has no encoder in this FFmpeg. Received: codec={codec!r}"
        ) from err
    _, height, width, _ = frames.shape
    if codec in EVEN_SIZE_CODECS and (height % 2 or width % 2):
        raise ValueError(
            f"Codec {codec!r} needs an even width and height; use an even size or "
            "codec='mpeg4'/'mjpeg'/'png'/'ffv1'. "
            f"Received: frames with height={height} width={width}"
        )
    target = pathlib.Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"Directory does not exist: {target.parent}")
    pix_fmt, options = _ENCODER_SETTINGS.get(codec, (None, {}))
    rate = fractions.Fraction(str(float(fps))).limit_denominator(1001)

    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}"
    )
    os.close(fd)
    try:
        try:
            # The temporary name ends in the real suffix so FFmpeg picks the
            # container from it, as it would from `path`.
            with av.open(tmp_name, mode="w") as container:
                stream = container.add_stream(codec, rate=rate)
                stream.width = width
                stream.height = height
                if pix_fmt is not None:
                    stream.pix_fmt = pix_fmt
                stream.options = dict(options)
                for array in frames:
                    frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
        except (av.error.FFmpegError, OSError, ValueError) as err:
            reason = f"cannot write with codec {codec!r} ({_one_line(err)})"
            raise VideoError(target, reason) from err
        # mkstemp creates 0600 files; give the video the usual permissions.
        os.chmod(tmp_name, 0o666 & ~current_umask())
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
