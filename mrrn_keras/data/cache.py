"""A frame cache: a dataset decoded once into sharded files of JPEG frames.

Decoding videos costs most of a raw-video input pipeline; TF Model Garden and
mmaction2 extract frames once for this reason. `prepare_cache` decodes every
video of a `VideoIndex` (short side resized, aspect kept, optionally every
n-th frame, only the `spans` of a trimmed CSV), JPEG-encodes the frames and
appends them to `<name>-SSSSS-of-NNNNN.frames` shards. Beside them:

    index.npz   videos (V, 4) int64: video_id, label, shard, first frame
                frames (F, 2) int64: byte offset in its shard, byte length
    cache.json  manifest: format, version, class names, counts, settings,
                the source path of every video, the skipped videos

Video `v`'s frames are rows `videos[v, 3]` to `videos[v + 1, 3]` (or `F`) of
`frames`. A reader (`FrameCache.frames`) reads and decodes only the JPEGs a
clip needs, with `os.pread`, so threads and worker processes share it; no
TensorFlow is needed to write or read it. The folder is written under a
temporary name and renamed when complete, so a cache is either whole or
absent. It carries the package's marker (`mrrn_keras.files.OWNED_MARKER`):
an existing folder is replaced only if it is a cache the package wrote
(marker and cache.json) and `overwrite` is given. Caches of format version 1 (TFRecord shards, written before the
TensorFlow-free loader) are refused with a message saying how to rebuild.

Memory: a video is decoded a few frames at a time and each frame is JPEG
encoded as it comes, so what a video costs is its JPEGs, never its raw
frames; at most `2 * workers` videos are in flight at once.

Example:

>>> import tempfile, pathlib
>>> import numpy as np
>>> from mrrn_keras.data.datasets import VideoIndex
>>> from mrrn_keras.data.video import write_video
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> write_video(tmp / "v.avi", np.zeros((6, 32, 48, 3), np.uint8))
>>> cache = prepare_cache(VideoIndex((str(tmp / "v.avi"),), (0,), ("a",)), tmp / "cache",
...                       short_side=32)
>>> cache.num_videos, cache.num_frames, cache.class_names
(1, 6, ('a',))
>>> cache.frames(0, [0, 5]).shape
(2, 32, 48, 3)
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import io
import json
import logging
import os
import pathlib
import shutil
import threading

import numpy as np
from PIL import Image

from mrrn_keras.data.datasets import VideoIndex
from mrrn_keras.data.video import iter_frame_chunks, probe_video
from mrrn_keras.errors import DatasetError, ExistingPathError, VideoError
from mrrn_keras.files import check_replaceable, mark_owned, replace_folder, scratch_folder
from mrrn_keras.validation import check_int

logger = logging.getLogger(__name__)

MANIFEST = "cache.json"
# Frames decoded (as raw RGB) at a time while a video is encoded.
DECODE_CHUNK = 16
CACHE_FORMAT = "mrrn-frame-cache"
# The kind named by a cache folder's marker (`mrrn_keras.files.mark_owned`).
CACHE_KIND = "frame cache"
CACHE_VERSION = 2
INDEX = "index.npz"


@dataclasses.dataclass(frozen=True, eq=False)
class FrameCache:
    """A prepared frame cache (see `prepare_cache`, `open_cache`).

    Picklable: worker processes reopen the shards on first read.

    Attributes:
        root: the cache folder.
        class_names: class names; label `k` is `class_names[k]`.
        num_videos: videos stored.
        num_frames: frames stored, all videos together.
        shards: shard file names, relative to `root`.
        short_side: frames' short side in pixels.
        every: one frame in `every` was kept.
        skipped: `(path, reason)` of the videos that could not be read.
        paths: the source video of every stored video (for reports).
        videos: int64 `(num_videos, 4)`: video id, label, shard, first frame.
        frame_table: int64 `(num_frames, 2)`: byte offset and length of
            every JPEG in its shard.
    """

    root: str
    class_names: tuple[str, ...]
    num_videos: int
    num_frames: int
    shards: tuple[str, ...]
    short_side: int
    every: int
    skipped: tuple[tuple[str, str], ...]
    paths: tuple[str, ...] = ()
    videos: np.ndarray = dataclasses.field(default=None, repr=False)
    frame_table: np.ndarray = dataclasses.field(default=None, repr=False)

    def __eq__(self, other):
        if not isinstance(other, FrameCache):
            return NotImplemented
        return (
            self._identity() == other._identity()
            and np.array_equal(self.videos, other.videos)
            and np.array_equal(self.frame_table, other.frame_table)
        )

    def _identity(self):
        return (self.root, self.class_names, self.num_videos, self.num_frames, self.shards,
                self.short_side, self.every, self.skipped, self.paths)

    def __len__(self) -> int:
        return self.num_videos

    def video(self, position: int) -> tuple[int, int, int]:
        """`(label, video id, frame count)` of the video stored at `position`."""
        video_id, label, _, first = (int(v) for v in self.videos[position])
        end = int(self.videos[position + 1, 3]) if position + 1 < self.num_videos else (
            self.num_frames)
        return label, video_id, end - first

    def frames(self, position: int, indices) -> np.ndarray:
        """Decodes frames `indices` of the video at `position`: uint8 `(len, H, W, 3)`.

        Raises:
            VideoError: a JPEG is damaged or a shard cannot be read.
        """
        _, _, shard, first = (int(v) for v in self.videos[position])
        name = os.path.join(self.root, self.shards[shard])
        fd = self._fd(shard)
        out = []
        decoded: dict[int, np.ndarray] = {}
        for i in np.asarray(indices, np.int64).reshape(-1):
            i = int(i)
            if i not in decoded:
                offset, length = (int(v) for v in self.frame_table[first + i])
                data = os.pread(fd, length, offset)
                try:
                    with Image.open(io.BytesIO(data)) as image:
                        decoded[i] = np.asarray(image.convert("RGB"))
                except (OSError, ValueError) as err:
                    raise VideoError(name, f"frame {i} of video {position} cannot be "
                                           f"decoded ({err}); rebuild the cache") from err
            out.append(decoded[i])
        return np.stack(out)

    def _fd(self, shard: int) -> int:
        # One descriptor per shard per process (pread needs no shared offset).
        handles = _HANDLES.setdefault((os.getpid(), self.root), {})
        if shard not in handles:
            with _HANDLES_LOCK:
                if shard not in handles:
                    handles[shard] = os.open(os.path.join(self.root, self.shards[shard]),
                                             os.O_RDONLY)
        return handles[shard]


_HANDLES: dict[tuple[int, str], dict[int, int]] = {}
_HANDLES_LOCK = threading.Lock()


def open_cache(root: str | os.PathLike) -> FrameCache:
    """Opens a cache written by `prepare_cache`.

    Raises:
        DatasetError: no readable manifest or index, a different format or
            version (one written before version 2 must be rebuilt), a shard
            missing or shorter than its index says.
    """
    root = pathlib.Path(root)
    manifest_path = root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(
            f"{manifest_path}: not a frame cache manifest ({err}); create one with `mrrn prepare`"
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise DatasetError(f"{manifest_path}: not a {CACHE_FORMAT!r} manifest; create one with "
                           "`mrrn prepare`")
    if manifest.get("version") != CACHE_VERSION:
        raise DatasetError(
            f"{manifest_path}: frame cache version {manifest.get('version')!r}, this mrrn-keras "
            f"reads version {CACHE_VERSION}; rebuild it with `mrrn prepare ... --overwrite`"
        )
    missing = [s for s in manifest["shards"] if not (root / s).is_file()]
    if missing:
        raise DatasetError(f"{root}: shards listed in {MANIFEST} are missing: {missing}")
    try:
        with np.load(root / INDEX, allow_pickle=False) as index:
            videos, frame_table = index["videos"], index["frames"]
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f"{root / INDEX}: unreadable cache index ({err}); rebuild it with "
                           "`mrrn prepare ... --overwrite`") from err
    num_videos, num_frames = int(manifest["num_videos"]), int(manifest["num_frames"])
    if videos.shape != (num_videos, 4) or frame_table.shape != (num_frames, 2):
        raise DatasetError(f"{root / INDEX}: index shapes {videos.shape}, {frame_table.shape} do "
                           f"not match {num_videos} videos, {num_frames} frames in {MANIFEST}")
    for shard, name in enumerate(manifest["shards"]):
        rows = frame_table[_frame_rows(videos, shard, num_frames)]
        end = int((rows[:, 0] + rows[:, 1]).max()) if len(rows) else 0
        if (root / name).stat().st_size < end:
            raise DatasetError(f"{root / name}: shorter than {INDEX} says ({end} bytes); the "
                               "cache is damaged, rebuild it with `mrrn prepare ... --overwrite`")
    return FrameCache(
        root=str(root.resolve()),
        class_names=tuple(manifest["class_names"]),
        num_videos=num_videos,
        num_frames=num_frames,
        shards=tuple(manifest["shards"]),
        short_side=int(manifest["short_side"]),
        every=int(manifest["every"]),
        skipped=tuple((s["path"], s["reason"]) for s in manifest["skipped"]),
        paths=tuple(manifest["paths"]),
        videos=videos,
        frame_table=frame_table,
    )


def _frame_rows(videos: np.ndarray, shard: int, num_frames: int) -> np.ndarray:
    """Indices into the frame table of every frame stored in `shard`."""
    ends = np.append(videos[1:, 3], num_frames)
    rows = [np.arange(f, e) for (_, _, s, f), e in zip(videos, ends) if s == shard]
    return np.concatenate(rows) if rows else np.zeros(0, np.int64)


def _encode_video(path, span, short_side, every, quality):
    """Decodes one video, `DECODE_CHUNK` frames at a time, and returns its frames as JPEG bytes."""
    info = probe_video(path)
    first, last = 0, info.num_frames
    if span is not None and info.fps > 0:
        first = min(int(np.floor(span[0] * info.fps)), info.num_frames - 1)
        last = max(first + 1, min(info.num_frames, int(np.ceil(span[1] * info.fps))))
    scale = short_side / min(info.height, info.width)
    size = (max(1, round(info.height * scale)), max(1, round(info.width * scale)))
    wanted = len(range(first, last, every))
    encoded = []
    chunks = iter_frame_chunks(path, DECODE_CHUNK, size=size, stride=every, start=first)
    with contextlib.closing(chunks):
        for chunk in chunks:
            for frame in chunk[: wanted - len(encoded)]:
                buffer = io.BytesIO()
                Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
                encoded.append(buffer.getvalue())
            if len(encoded) == wanted:
                break
    if len(encoded) < wanted:
        logger.warning(
            "%s: only %d of the %d frames its header promises from frame %d could be "
            "decoded; the file may be cut short or damaged", path, len(encoded), wanted, first,
        )
    if not encoded:
        raise VideoError(path, f"no frame could be decoded from frame {first} on")
    return encoded


def _in_order(pool, index: VideoIndex, spans, args, depth: int):
    """Yields `(video_id, future)` in index order, with at most `depth + 1` submitted and unread."""
    pending = collections.deque()
    for video_id, (path, span) in enumerate(zip(index.paths, spans)):
        pending.append((video_id, pool.submit(_encode_video, path, span, *args)))
        if len(pending) > depth:
            yield pending.popleft()
    yield from pending


def check_cache_target(out_dir: str | os.PathLike, overwrite: bool) -> None:
    """Checks that `prepare_cache` may write `out_dir`: free, or a cache it wrote and `overwrite`.

    Raises:
        ExistingPathError: see `prepare_cache`; one line naming the folder.
    """
    out_dir = pathlib.Path(out_dir)
    if check_replaceable(out_dir, CACHE_KIND, overwrite=overwrite) and not (
        out_dir / MANIFEST
    ).is_file():
        raise ExistingPathError(
            f"{out_dir} holds no {MANIFEST}, so it is not a frame cache; it is left as it is: "
            "move it away or choose another folder"
        )


def prepare_cache(
    index: VideoIndex,
    out_dir: str | os.PathLike,
    *,
    short_side: int = 128,
    every: int = 1,
    quality: int = 90,
    num_shards: int | None = None,
    workers: int = 2,
    on_error: str = "skip",
    progress: bool = False,
    name: str = "videos",
    overwrite: bool = False,
) -> FrameCache:
    """Decodes a dataset once into a sharded cache of JPEG frames.

    Args:
        index: the videos (a `VideoIndex`).
        out_dir: the cache folder to create; with `overwrite`, a cache the
            package wrote there is replaced once the new one is complete.
        short_side: int. Frames' short side after resizing (aspect kept).
            Defaults to 128.
        every: int. Keep one frame in `every` (a lower frame rate).
            Defaults to 1.
        quality: int. JPEG quality, 1-100. Defaults to 90.
        num_shards: int. Defaults to one shard per 256 videos, at least 1.
        workers: int. Videos decoded and encoded in parallel (PyAV and
            Pillow release the GIL). Defaults to 2.
        on_error: `"skip"` (record the video in the manifest's `skipped`
            and go on) or `"raise"`.
        progress: bool. Show a tqdm progress bar on stderr (the CLI does).
        name: shard file name prefix.
        overwrite: bool. Replace an existing cache the package wrote at
            `out_dir`. Defaults to False.

    Returns:
        The `FrameCache`.

    Raises:
        VideoError: a video is unreadable and `on_error="raise"`.
        DatasetError: no video could be read.
        ExistingPathError: `out_dir` exists and is not a frame cache the
            package wrote (its marker and cache.json), or `overwrite` is false;
            checked before any video is read, and again before the rename.
        ValueError: bad arguments.
    """
    for arg, value in (("short_side", short_side), ("every", every), ("workers", workers)):
        check_int(arg, value)
    if not 1 <= quality <= 100:
        raise ValueError(f"`quality` must be in [1, 100]. Received: quality={quality!r}")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"`on_error` must be 'skip' or 'raise'. Received: on_error={on_error!r}")
    if not len(index):
        raise DatasetError("Cannot prepare a cache of an empty VideoIndex")
    num_shards = num_shards or max(1, min(len(index), -(-len(index) // 256)))
    out_dir = pathlib.Path(out_dir)
    check_cache_target(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_folder(out_dir.parent, f".{out_dir.name}.tmp")
    tmp = scratch / "cache"
    tmp.mkdir()
    mark_owned(tmp, CACHE_KIND)
    shards = [f"{name}-{i:05d}-of-{num_shards:05d}.frames" for i in range(num_shards)]
    spans = index.spans or (None,) * len(index)
    skipped, stored, frames_total = [], 0, 0
    videos, frame_table, paths = [], [], []
    try:
        with contextlib.ExitStack() as files, concurrent.futures.ThreadPoolExecutor(workers) as pool:
            writers = [files.enter_context(open(tmp / s, "wb")) for s in shards]
            # Bounded: finished videos wait in memory only until written in order.
            jobs = _in_order(pool, index, spans, (short_side, every, quality), 2 * workers)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(index), desc=f"prepare {out_dir.name}", unit="video")
            for video_id, job in jobs:
                try:
                    jpegs = job.result()
                except VideoError as err:
                    if on_error == "raise":
                        raise
                    logger.warning("Skipping unreadable video %s", err)
                    skipped.append({"path": err.path, "reason": err.reason})
                else:
                    shard = stored % num_shards
                    writer = writers[shard]
                    videos.append((video_id, index.labels[video_id], shard, frames_total))
                    paths.append(index.paths[video_id])
                    for jpeg in jpegs:
                        frame_table.append((writer.tell(), len(jpeg)))
                        writer.write(jpeg)
                    stored += 1
                    frames_total += len(jpegs)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(skipped=len(skipped))
            if bar is not None:
                bar.close()
        if not stored:
            raise DatasetError(
                f"No video of the index could be read ({len(skipped)} skipped); first: "
                f"{skipped[0]['path']}: {skipped[0]['reason']}"
            )
        manifest = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "class_names": list(index.class_names),
            "num_videos": stored,
            "num_frames": frames_total,
            "shards": shards,
            "short_side": short_side,
            "every": every,
            "quality": quality,
            "skipped": skipped,
            "paths": paths,
        }
        np.savez(tmp / INDEX, videos=np.asarray(videos, np.int64).reshape(-1, 4),
                 frames=np.asarray(frame_table, np.int64).reshape(-1, 2))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        check_cache_target(out_dir, overwrite)  # a folder may have appeared meanwhile
        replace_folder(tmp, out_dir, overwrite=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info(
        "Frame cache %s: %d videos, %d frames, %d skipped", out_dir, stored, frames_total,
        len(skipped),
    )
    return open_cache(out_dir)
