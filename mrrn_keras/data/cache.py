"""A frame cache: a dataset decoded once into sharded TFRecords of JPEG frames.

Decoding videos in Python inside tf.data holds the GIL between FFmpeg calls;
TF Model Garden and mmaction2 extract frames once for this reason.
`prepare_cache` decodes every video of a `VideoIndex` (short side resized,
aspect kept, optionally every n-th frame, only the `spans` of a trimmed CSV),
JPEG-encodes the frames and writes one `tf.train.Example` per video:

    video_id    int64   position of the video in the source index
    label       int64
    num_frames  int64
    path        bytes   the source video (for reports)
    frames      bytes   one JPEG per frame

into `<subset>-SSSSS-of-NNNNN.tfrecord` shards beside a `cache.json`
manifest (class names, counts, settings, skipped videos). The folder is
written under a temporary name and renamed when complete, so a cache is
either whole or absent. `clip_dataset` reads it and decodes only the frames
a clip needs, in the graph (`tf.io.decode_jpeg`).

Memory: a video is decoded a few frames at a time and each frame is JPEG
encoded as it comes, so what a video costs is its JPEGs (its record), never
its raw frames; at most `2 * workers` videos are in flight at once.

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

import numpy as np
import tensorflow as tf
from PIL import Image

from mrrn_keras.data.datasets import VideoIndex
from mrrn_keras.data.video import iter_frame_chunks, probe_video
from mrrn_keras.errors import DatasetError, VideoError
from mrrn_keras.files import replace_folder
from mrrn_keras.validation import check_int

logger = logging.getLogger(__name__)

MANIFEST = "cache.json"
# Frames decoded (as raw RGB) at a time while a video is encoded.
DECODE_CHUNK = 16
CACHE_FORMAT = "mrrn-frame-cache"
CACHE_VERSION = 1
_FEATURES = {
    "video_id": tf.io.FixedLenFeature([], tf.int64),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "num_frames": tf.io.FixedLenFeature([], tf.int64),
    "path": tf.io.FixedLenFeature([], tf.string),
    "frames": tf.io.VarLenFeature(tf.string),
}


@dataclasses.dataclass(frozen=True)
class FrameCache:
    """A prepared frame cache (see `prepare_cache`, `open_cache`).

    Attributes:
        root: the cache folder.
        class_names: class names; label `k` is `class_names[k]`.
        num_videos: videos stored.
        num_frames: frames stored, all videos together.
        shards: shard file names, relative to `root`.
        short_side: frames' short side in pixels.
        every: one frame in `every` was kept.
        skipped: `(path, reason)` of the videos that could not be read.
    """

    root: str
    class_names: tuple[str, ...]
    num_videos: int
    num_frames: int
    shards: tuple[str, ...]
    short_side: int
    every: int
    skipped: tuple[tuple[str, str], ...]

    def records(self, *, shuffle: bool = False, seed: int | None = None) -> tf.data.Dataset:
        """Serialised records; shards interleaved in random order when `shuffle`."""
        files = tf.data.Dataset.from_tensor_slices([os.path.join(self.root, s) for s in self.shards])
        if not shuffle:
            return tf.data.TFRecordDataset(files)
        files = files.shuffle(len(self.shards), seed=seed, reshuffle_each_iteration=True)
        return files.interleave(
            tf.data.TFRecordDataset, cycle_length=min(4, len(self.shards)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=False,
        )


def parse_record(record) -> dict:
    """Parses one serialised record into `{video_id, label, num_frames, path, frames}`.

    `label` and `video_id` come back as int32, `frames` as a dense string
    vector of JPEGs.
    """
    e = tf.io.parse_single_example(record, _FEATURES)
    return {
        "video_id": tf.cast(e["video_id"], tf.int32),
        "label": tf.cast(e["label"], tf.int32),
        "num_frames": tf.cast(e["num_frames"], tf.int32),
        "path": e["path"],
        "frames": tf.sparse.to_dense(e["frames"]),
    }


def open_cache(root: str | os.PathLike) -> FrameCache:
    """Opens a cache written by `prepare_cache`.

    Raises:
        DatasetError: no readable manifest, a different format or version,
            or a shard missing.
    """
    root = pathlib.Path(root)
    manifest_path = root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(
            f"{manifest_path}: not a frame cache manifest ({err}); create one with `mrrn prepare`"
        ) from err
    if manifest.get("format") != CACHE_FORMAT or manifest.get("version") != CACHE_VERSION:
        raise DatasetError(
            f"{manifest_path}: expected format {CACHE_FORMAT!r} version {CACHE_VERSION}, got "
            f"{manifest.get('format')!r} version {manifest.get('version')!r}"
        )
    missing = [s for s in manifest["shards"] if not (root / s).is_file()]
    if missing:
        raise DatasetError(f"{root}: shards listed in {MANIFEST} are missing: {missing}")
    return FrameCache(
        root=str(root.resolve()),
        class_names=tuple(manifest["class_names"]),
        num_videos=int(manifest["num_videos"]),
        num_frames=int(manifest["num_frames"]),
        shards=tuple(manifest["shards"]),
        short_side=int(manifest["short_side"]),
        every=int(manifest["every"]),
        skipped=tuple((s["path"], s["reason"]) for s in manifest["skipped"]),
    )


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


def _example(video_id, label, path, jpegs) -> bytes:
    feature = {
        "video_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[video_id])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "num_frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[len(jpegs)])),
        "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.encode()])),
        "frames": tf.train.Feature(bytes_list=tf.train.BytesList(value=jpegs)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


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
) -> FrameCache:
    """Decodes a dataset once into a sharded TFRecord cache of JPEG frames.

    Args:
        index: the videos (a `VideoIndex`).
        out_dir: the cache folder to create; an existing cache there is
            replaced only once the new one is complete.
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

    Returns:
        The `FrameCache`.

    Raises:
        VideoError: a video is unreadable and `on_error="raise"`.
        DatasetError: no video could be read.
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
    scratch = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    tmp = scratch / "cache"
    tmp.mkdir(parents=True)
    shards = [f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    spans = index.spans or (None,) * len(index)
    skipped, stored, frames_total = [], 0, 0
    try:
        writers = [tf.io.TFRecordWriter(str(tmp / s)) for s in shards]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
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
                    writer = writers[stored % num_shards]
                    writer.write(
                        _example(video_id, index.labels[video_id], index.paths[video_id], jpegs)
                    )
                    stored += 1
                    frames_total += len(jpegs)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(skipped=len(skipped))
            if bar is not None:
                bar.close()
        for writer in writers:
            writer.close()
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
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        replace_folder(tmp, out_dir, overwrite=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info(
        "Frame cache %s: %d videos, %d frames, %d skipped", out_dir, stored, frames_total,
        len(skipped),
    )
    return open_cache(out_dir)
