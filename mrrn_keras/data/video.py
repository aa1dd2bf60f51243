"""Video decoding, clip sampling and writing with PyAV.

Frames are always uint8 RGB arrays shaped `(T, H, W, 3)`, upright: the
rotation of a file's display matrix (phone videos) is applied. Reading
converts to RGB only the frames that are kept, and `read_frames` /
`iter_frames` seek to the keyframe before each needed stretch of frames
when that is cheaper than decoding from the start (`method="auto"`); the
frames are the same, bit for bit, as a sequential decode's, because a
frame is identified by its presentation timestamp.

A frame of more than `MRRN_MAX_VIDEO_PIXELS` pixels (width x height,
default 7680x4320; the variable takes a count or `WxH`) is refused from the
stream header, before anything is decoded.

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
from mrrn_keras.errors import ConfigError, VideoError
from mrrn_keras.files import current_umask
from mrrn_keras.validation import check_int

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


# Encoders that reject odd frame sizes with yuv420p; mpeg4 and mjpeg accept
# them, so only these are refused up front.
EVEN_SIZE_CODECS = frozenset({"libx264", "h264", "libopenh264", "libx265", "hevc"})

# Environment variable bounding a frame's width x height, and its default (8K UHD).
MAX_PIXELS_ENV = "MRRN_MAX_VIDEO_PIXELS"
DEFAULT_MAX_PIXELS = 7680 * 4320

# How `read_frames` and `iter_frames` reach the frames they need.
DECODE_METHODS = ("auto", "seek", "sequential")

# What one seek is taken to cost, in decoded frames (the demuxer's jump, the
# decoder's flush, its threads refilling): a setting, not a measurement.
# "auto" seeks only where it skips more frames than this.
SEEK_COST_FRAMES = 16

# Packet indexes kept per process (the sparse decoder's map of a file), keyed
# by the file's identity and modification time.
_INDEX_CACHE_SIZE = 64

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


def _open_video(
    path: PathLike, threads: int = 0
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Opens `path` and returns (container, first video stream).

    `threads`: 0 lets FFmpeg decode several frames in parallel (over the
    CPUs); 1 decodes in the calling thread only.
    """
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
    width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    limit = max_video_pixels()
    if width * height > limit:
        container.close()
        raise VideoError(
            name,
            f"frame size {width}x{height} ({width * height} pixels) is over the limit of "
            f"{limit} pixels ({MAX_PIXELS_ENV})",
        )
    if threads == 1:
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
    else:
        # Frame-level threading: several frames decode in parallel, in order.
        stream.thread_type = "AUTO"
    return container, stream


def max_video_pixels() -> int:
    """The largest frame (width x height, in pixels) a video may have.

    Read from `MRRN_MAX_VIDEO_PIXELS`: a pixel count (`33177600`) or a size
    (`7680x4320`); unset or empty gives 7680x4320. Every reader checks the
    stream header against it before decoding, so a file announcing huge
    frames cannot exhaust memory.

    Returns:
        int > 0.

    Raises:
        ConfigError: the variable is set to something else.

    Example:

    >>> max_video_pixels() > 0
    True
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    parts = raw.lower().split("x")
    if len(parts) in (1, 2) and all(part.strip().isdigit() for part in parts):
        value = math.prod(int(part) for part in parts)
        if value > 0:
            return value
    raise ConfigError(
        f"{MAX_PIXELS_ENV} must be a positive pixel count or WIDTHxHEIGHT (e.g. 7680x4320). "
        f"Received: {MAX_PIXELS_ENV}={raw[:40]!r}"
    )


def _clockwise(frame: av.VideoFrame) -> int:
    """Degrees (0, 90, 180, 270) to turn `frame` clockwise to show it upright.

    `frame.rotation` is the display matrix's counter-clockwise angle, which
    FFmpeg's players undo by turning the picture clockwise by it.
    """
    return int(round(-frame.rotation / 90.0)) % 4 * 90


def upright_rgb(frame: av.VideoFrame, hw: tuple[int, int] | None) -> np.ndarray:
    """`frame` as an upright RGB uint8 array (its display matrix applied), resized to `hw`.

    Args:
        frame: a decoded `av.VideoFrame`.
        hw: `(height, width)` of the upright result, or None for the stored size.

    Returns:
        uint8 array `(H, W, 3)`.
    """
    turn = _clockwise(frame)
    if hw is None:
        array = frame.to_ndarray(format="rgb24")
    else:
        height, width = hw if turn in (0, 180) else hw[::-1]
        array = frame.to_ndarray(format="rgb24", height=height, width=width)
    if turn:
        # (H, W, 3) -> (W, H, 3) for 90 and 270.
        array = np.ascontiguousarray(np.rot90(array, k=-turn // 90))
    return array


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


def _first_rotation(name: str, container, stream, *, rewind: bool) -> int:
    """Clockwise turn of the stream's first frame; 0 when none decodes.

    The display matrix reaches PyAV on decoded frames only, so one frame is
    decoded; `rewind` first goes back to the start (after counting frames).
    """
    try:
        if rewind:
            container.seek(0, stream=stream)
    except (av.error.FFmpegError, OSError):
        return 0
    try:
        for frame in _decode(name, container, stream):
            return _clockwise(frame)
    except VideoError:
        pass
    return 0


def probe_video(path: PathLike) -> VideoInfo:
    """Reads a video's frame count, frame rate, size, duration and rotation.

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
        counted = num_frames <= 0
        if counted:
            logger.debug("%s: no frame count in the header; counting by decoding", name)
            num_frames = sum(1 for _ in _decode(name, container, stream))
            if num_frames == 0:
                raise VideoError(name, "video stream has no decodable frames")
        if duration_s <= 0 and fps > 0:
            duration_s = num_frames / fps
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        rotation = _first_rotation(name, container, stream, rewind=counted)
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=name,
            num_frames=num_frames,
            fps=fps,
            width=width,
            height=height,
            duration_s=duration_s,
            rotation=rotation,
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


@dataclasses.dataclass(frozen=True)
class _PacketIndex:
    """A file's frames as its demuxer lists them, without decoding.

    Attributes:
        pts: int64 `(n,)`. Presentation timestamp of frame `i` (ascending).
        key: int64 `(n,)`. Frame index of the keyframe to seek to for frame
            `i`: the last keyframe shown at or before it.
    """

    pts: np.ndarray
    key: np.ndarray


_INDEXES: dict[tuple, _PacketIndex | None] = {}


def _check_method(method: str) -> str:
    if method not in DECODE_METHODS:
        raise ValueError(f"`method` must be one of {DECODE_METHODS}. Received: method={method!r}")
    return method


def _packet_index(name: str, container, stream) -> tuple[_PacketIndex | None, bool]:
    """The stream's `_PacketIndex` (None if it cannot be trusted), and whether
    the container is still untouched (no packet read from it).

    Trusted means: every packet has a timestamp, no two share one, the first
    packet is a keyframe. An AVI's own index (idx1), when it lists one
    non-empty entry per frame of the header, stands in for the demuxing: its
    timestamps are the packets' (AVI stores no reordering). The container
    may be left at its end; callers seek. Indexes are cached per process by
    the file's identity and mtime.
    """
    stat = os.stat(name)
    cache_key = (os.path.realpath(name), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if cache_key in _INDEXES:
        return _INDEXES[cache_key], True
    entries = stream.index_entries if container.format.name == "avi" else None
    untouched = bool(entries) and len(entries) == stream.frames and all(e.size > 0 for e in entries)
    if untouched:
        pts = [entry.timestamp for entry in entries]
        keys = [entry.is_keyframe for entry in entries]
    else:
        pts, keys = _demuxed_packets(container, stream)
    index = None
    if pts and keys[0]:
        pts = np.asarray(pts, np.int64)
        order = np.argsort(pts, kind="stable")
        sorted_pts = pts[order]
        if np.all(np.diff(sorted_pts) > 0):
            is_key = np.asarray(keys, bool)[order]
            # The latest keyframe at or before each frame, in presentation order.
            key = np.maximum.accumulate(np.where(is_key, np.arange(len(pts)), 0))
            index = _PacketIndex(pts=sorted_pts, key=key.astype(np.int64))
    if len(_INDEXES) >= _INDEX_CACHE_SIZE:
        _INDEXES.pop(next(iter(_INDEXES)))
    _INDEXES[cache_key] = index
    return index, untouched


def _demuxed_packets(container, stream) -> tuple[list[int] | None, list[bool]]:
    """(pts, keyframe flags) of the stream's non-empty packets; pts None if one lacks it."""
    pts, keys = [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                pts = None
                break
            pts.append(packet.pts)
            keys.append(packet.is_keyframe)
    except (av.error.FFmpegError, OSError):
        pts = None
    return pts, keys


def _seek_runs(index: _PacketIndex, targets: np.ndarray, seek_cost: int) -> list[tuple[int, list[int]]]:
    """Groups sorted unique frame indices into decoding runs.

    Each run is `(keyframe index to seek to, or -1 to decode from the
    start, frames it collects)`. Going on decoding from the last frame
    collected costs the frames in between; a seek costs `seek_cost` plus the
    frames from the keyframe; the cheaper is taken at every target.
    """
    runs: list[tuple[int, list[int]]] = []
    position = -1
    for target in targets.tolist():
        key = int(index.key[target])
        if seek_cost + target - key + 1 < target - position:
            runs.append((key, [target]))
        elif runs:
            runs[-1][1].append(target)
        else:
            runs.append((-1, [target]))
        position = target
    return runs


class _SeekFailed(Exception):
    """The file's index disagrees with its decoded frames; decode sequentially."""


def _frames_from(name: str, container, stream, index: _PacketIndex, key: int):
    """Yields `(frame index, frame)`, seeking to keyframe `key` (-1: the first).

    Raises `_SeekFailed` when the seek does not land on that keyframe or a
    frame's timestamp is not in the index.
    """
    start = max(key, 0)
    try:
        container.seek(int(index.pts[start]), stream=stream, backward=True, any_frame=False)
    except (av.error.FFmpegError, OSError) as err:
        raise _SeekFailed(f"seek failed ({_one_line(err)})") from err
    landed = False
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                raise _SeekFailed("a frame without a timestamp")
            where = int(np.searchsorted(index.pts, frame.pts))
            if where >= len(index.pts) or index.pts[where] != frame.pts:
                raise _SeekFailed(f"frame pts {frame.pts} is not in the index")
            if where < start:
                continue  # shown before the keyframe (open GOP), not ours
            if not landed:
                if where != start or not frame.key_frame:
                    raise _SeekFailed(f"landed on frame {where}, not keyframe {start}")
                landed = True
            yield where, frame
    except (av.error.FFmpegError, OSError) as err:
        raise _SeekFailed(f"decoding failed ({_one_line(err)})") from err


def _read_seek(name: str, container, stream, targets: np.ndarray, hw, method: str):
    """The frames at sorted unique `targets`, by seeking.

    Returns `(frames by index or None, untouched)`: None asks for the
    sequential decode, which may go on with this container when `untouched`
    (nothing was read from it yet: the index came from idx1 or the cache).
    """
    index, untouched = _packet_index(name, container, stream)
    if index is None:
        logger.debug("%s: no trustworthy packet index; decoding sequentially", name)
        return None, False
    if targets[-1] >= len(index.pts):
        return None, untouched  # past the end: the sequential reader clamps and warns
    runs = _seek_runs(index, targets, 0 if method == "seek" else SEEK_COST_FRAMES)
    if method == "auto" and all(key < 0 for key, _ in runs):
        return None, untouched
    kept: dict[int, np.ndarray] = {}
    try:
        for key, wanted in runs:
            last = wanted[-1]
            needed = set(wanted)
            for where, frame in _frames_from(name, container, stream, index, key):
                if where in needed:
                    kept[where] = upright_rgb(frame, hw)
                if where >= last:
                    break
            if last not in kept:
                raise _SeekFailed(f"frame {last} was not decoded")
    except _SeekFailed as why:
        logger.debug("%s: seek decoding gave up (%s); decoding sequentially", name, why)
        return None, False
    seeks = sum(key >= 0 for key, _ in runs)
    logger.debug("%s: %d seeks for %d frames", name, seeks, len(targets))
    return kept, False


def read_frames(
    path: PathLike,
    indices: Sequence[int] | None = None,
    *,
    size: int | tuple[int, int] | None = None,
    method: str = "auto",
    threads: int = 0,
) -> np.ndarray:
    """Decodes the frames at `indices` from a video, as upright RGB uint8.

    Frame `i` is the `i`-th frame shown (ordered by presentation
    timestamp). `method="sequential"` decodes once from the start up to the
    largest index asked for; `"seek"` lists the file's packets (no
    decoding), then seeks to the keyframe before each needed stretch of
    frames and picks frames by timestamp; `"auto"` seeks only where that
    skips more frames than a seek costs (`SEEK_COST_FRAMES`), e.g. a few
    frames spread over a long video. All three return the same pixels; a
    file whose index is missing or disagrees with its frames (no
    timestamps, bogus keyframe flags, a seek that lands elsewhere) is
    decoded sequentially. Only the kept frames are converted to RGB (and
    resized, by FFmpeg's scaler). Indices may repeat and come in any order; frames are
    returned in the order asked. An index past the real end of the stream
    (a header that overstates the count, or a file cut short) gives the last
    decoded frame, with a warning naming the file and how many frames were
    decoded of how many its header promises.

    Args:
        path: str or path-like. The video file.
        indices: sequence of int >= 0, or None for every frame.
        size: None (keep the stored size), an int `s` (resize to `s`x`s`)
            or a `(height, width)` pair, of the upright frame.
        method: str. "auto", "seek" or "sequential" (see above).
        threads: int. 0 (FFmpeg decodes several frames of the file in
            parallel, over the CPUs) or 1 (one thread: what a loader that
            decodes a file per worker wants; on 2 cores, 2 workers read
            1.3x more clips/s than with FFmpeg's threads, docs/benchmarks.md).

    Returns:
        uint8 array `(len(indices), H, W, 3)`, RGB.

    Raises:
        VideoError: the file cannot be read or decodes no frame.
        ValueError: a negative index, an invalid `size` or `method`.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((6, 32, 32, 3), np.uint8))
    >>> read_frames(path, [5, 0, 0, 99], size=(16, 24)).shape
    (4, 16, 24, 3)
    """
    hw = _parse_size(size)
    _check_method(method)
    wanted = None if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if wanted is not None and wanted.size and wanted.min() < 0:
        raise ValueError(
            f"Frame indices must be >= 0. Received: indices={list(map(int, wanted))!r}"
        )
    if threads not in (0, 1):
        raise ValueError(f"`threads` must be 0 or 1. Received: threads={threads!r}")
    name = os.fspath(path)
    container, stream = _open_video(path, threads)
    try:
        targets = np.unique(wanted) if wanted is not None else None
        if targets is not None and targets.size and method != "sequential" and (
            method == "seek" or targets[-1] > SEEK_COST_FRAMES
        ):
            sought, untouched = _read_seek(name, container, stream, targets, hw, method)
            if sought is not None:
                return np.stack([sought[int(i)] for i in wanted])
            if not untouched:
                container.close()
                container, stream = _open_video(path, threads)
        if wanted is not None and wanted.size == 0:
            if hw is None:
                info = probe_video(path)
                hw = (info.height, info.width)
            return np.zeros((0, *hw, 3), np.uint8)
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
                kept[index] = upright_rgb(frame, hw)
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
            kept[count - 1] = upright_rgb(last_frame, hw)
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
    container, stream = _open_video(path)
    name = os.fspath(path)
    chunk: list[np.ndarray] = []
    decoded = 0
    try:
        for index, frame in enumerate(_decode(name, container, stream)):
            decoded = index + 1
            if index < start or (index - start) % stride:
                continue
            chunk.append(upright_rgb(frame, hw))
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


def _sought_frames(name: str, path, start_s: float, method: str):
    """Frames from the keyframe before `start_s`, by seeking, if that is cheaper.

    Returns `(container, frames, first pts)`: an open container (the caller
    closes it), an iterator of decoded frames that starts at the keyframe
    (its landing checked) and the stream's first timestamp; or None, when
    the sequential decode is to be used.
    """
    container, stream = _open_video(path)
    try:
        time_base = float(stream.time_base) if stream.time_base else 0.0
        index = _packet_index(name, container, stream)[0] if time_base else None
        if index is None:
            container.close()
            return None
        times = index.pts * time_base - index.pts[0] * time_base
        target = int(np.searchsorted(times, start_s, side="left"))
        cost = 0 if method == "seek" else SEEK_COST_FRAMES
        if target >= len(times) or cost + target - int(index.key[target]) >= target:
            container.close()
            return None
        frames = _frames_from(name, container, stream, index, int(index.key[target]))
        _, first = next(frames)
    except (_SeekFailed, StopIteration) as why:
        logger.debug("%s: seek decoding gave up (%s); decoding sequentially", name, why)
        container.close()
        return None
    except BaseException:
        container.close()
        raise
    return container, _after_landing(name, first, frames), int(index.pts[0])


def _after_landing(name: str, first: av.VideoFrame, frames) -> Iterator[av.VideoFrame]:
    """`first`, then the frames of `frames`; a failure past the landing ends them, as in `_decode`."""
    yield first
    count = 1
    try:
        for _, frame in frames:
            count += 1
            yield frame
    except _SeekFailed as why:
        logger.warning("%s: decoding stopped after %d frames: %s", name, count, why)


def _timed_frames(path, *, size, convert, start_s=0.0, end_s=None, every=1, method="sequential"):
    """Yields (seconds since the first frame, frame) front to back; the frame is an
    RGB array when `convert`, else None. With `start_s > 0`, `method` may seek."""
    hw = _parse_size(size)
    name = os.fspath(path)
    sought = None
    if start_s > 0 and method != "sequential":
        sought = _sought_frames(name, path, start_s, method)
    if sought is None:
        container, stream = _open_video(path)
        frames, origin = _decode(name, container, stream), None
    else:
        container, frames, first_pts = sought
        stream = container.streams.video[0]
    time_base = float(stream.time_base) if stream.time_base else 0.0
    if sought is not None:
        origin = first_pts * time_base
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    kept = 0
    try:
        for index, frame in enumerate(frames):
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
                yield seconds, (upright_rgb(frame, hw) if convert else None)
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
    method: str = "auto",
) -> Iterator[tuple[float, np.ndarray]]:
    """Decodes a video front to back, yielding `(time in seconds, frame)`.

    Times are those of `frame_timestamps`. Memory stays at one frame; this
    is what timelines over long videos and annotated output read. With
    `start_s > 0`, `method` ("auto", "seek", "sequential") says whether to
    seek to the keyframe before `start_s` rather than decode from the
    start; see `read_frames`. The frames and times are the same either way.

    Args:
        path: str or path-like. The video file.
        size: None, int or `(height, width)`; see `read_frames`.
        start_s: float >= 0. Frames shown before this time are skipped.
        end_s: float or None. Stop before the first frame at or after it.
        every: int >= 1. Keep every `every`-th frame from `start_s` on.
        method: str. "auto", "seek" or "sequential".

    Yields:
        `(seconds, uint8 array (H, W, 3))`, RGB.

    Raises:
        VideoError: the file cannot be read or decodes no frame.
        ValueError: an invalid `size`, `start_s`, `end_s`, `every` or `method`.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((6, 32, 32, 3), np.uint8), fps=2)
    >>> [t for t, frame in iter_frames(path, start_s=1.0, every=2)]
    [1.0, 2.0]
    """
    every = check_int("every", every)
    _check_method(method)
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
        path, size=size, convert=True, start_s=float(start_s), end_s=end_s, every=every,
        method=method,
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
