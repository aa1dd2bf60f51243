"""Tests for mrrn_keras/data/pipeline.py and cache.py: sampling, crops, errors, cache."""

import itertools
import os
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from mrrn_keras.data import pipeline
from mrrn_keras.data.cache import open_cache, prepare_cache
from mrrn_keras.data.clips import clip_indices
from mrrn_keras.data.datasets import VideoIndex, read_folder
from mrrn_keras.data.video import sample_indices, write_video
from mrrn_keras.errors import DatasetError
from tests.helpers import frame_numbers, indexed_frames, write_class_videos


def test_clip_indices_training_and_multi_clip():
    draws = {tuple(clip_indices(40, 4, training=True, rng=np.random.default_rng(1))[0])}
    assert draws == {tuple(clip_indices(40, 4, training=True, rng=np.random.default_rng(1))[0])}
    for s in range(20):
        got = clip_indices(40, 4, training=True, rng=np.random.default_rng(s))[0]
        assert [10 * i <= g < 10 * (i + 1) for i, g in enumerate(got)] == [True] * 4
        draws.add(tuple(got))
    assert len(draws) > 5
    dense = clip_indices(20, 4, mode="dense", stride=2, num_clips=3)
    assert dense[:, 0].tolist() == [2, 6, 10] and (np.diff(dense, axis=1) == 2).all()
    # Segments: clip j of k at (2j + 1) / 2k of each segment.
    assert clip_indices(40, 2, num_clips=4).tolist() == [[2, 22], [7, 27], [12, 32], [17, 37]]
    for n, t, k in itertools.product([1, 3, 13, 50], [1, 4], [1, 3]):
        got = clip_indices(n, t, num_clips=k)
        assert got.shape == (k, t) and 0 <= got.min() and got.max() < n
        assert got[0].tolist() == sample_indices(n, t).tolist() or k > 1


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_class_videos(root, {"a": 2, "b": 2}, num_frames=8, height=32, width=40)
    return read_folder(root)


def collect(ds):
    out = [tuple(np.asarray(t) for t in element) for element in ds]
    return [np.concatenate(parts) for parts in zip(*out)]


def test_raw_eval_clips_are_the_sampled_frames(videos):
    spec = pipeline.ClipSpec(clip_len=4, size=32)
    frames, labels, ids = collect(pipeline.clip_dataset(videos, spec, training=False, batch_size=3))
    assert frames.shape == (4, 4, 32, 32, 3) and frames.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1] and ids.tolist() == [0, 1, 2, 3]
    # Videos have 8 + i frames (see write_class_videos).
    for clip, n in zip(frames, [8, 9, 8, 9]):
        assert frame_numbers(clip) == sample_indices(n, 4).tolist()


def test_multi_clip_multi_crop_views(videos):
    spec = pipeline.ClipSpec(clip_len=2, size=32, mode="dense")
    frames, labels, ids = collect(
        pipeline.clip_dataset(videos, spec, training=False, batch_size=4, num_clips=2, num_crops=3)
    )
    assert frames.shape == (24, 2, 32, 32, 3)
    assert ids.tolist() == sorted([0, 1, 2, 3] * 6)
    assert frame_numbers(frames[0]) == [1, 2] and frame_numbers(frames[3]) == [4, 5]


def test_augmentation_is_the_same_for_every_frame(tmp_path):
    # A static horizontal ramp: every frame of a clip must get the same crop.
    ramp = np.broadcast_to(np.linspace(0, 255, 64)[None, None, :, None], (6, 48, 64, 3))
    write_video(tmp_path / "ramp.avi", ramp.round().astype(np.uint8), codec="png")
    index = VideoIndex((str(tmp_path / "ramp.avi"),) * 8, (0,) * 8, ("ramp",))
    spec = pipeline.ClipSpec(clip_len=3, size=32)

    def clips(augment, seed=0):
        ds = pipeline.clip_dataset(index, spec, training=True, batch_size=8, augment=augment,
                                   seed=seed)
        return next(iter(ds))[0].numpy().astype(int)

    plain = clips(pipeline.Augment(flip=False))
    assert (plain == plain[:, :1]).all()  # frames of a clip identical
    assert len({c[0].tobytes() for c in plain}) > 1  # crops differ between clips
    assert (np.diff(plain[:, :, 16, :, 0], axis=-1) >= 0).all()  # never flipped
    flipped = clips(pipeline.Augment(flip=True))
    assert (flipped == flipped[:, :1]).all()
    rising = np.diff(flipped[:, 0, 16, :, 0].astype(float), axis=-1).mean(-1) > 0
    assert rising.any() and not rising.all()


def test_corrupt_videos_are_skipped_and_counted_or_raise(videos, tmp_path):
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "junk.avi").write_bytes(b"not a video" * 100)
    index = VideoIndex(
        videos.paths[:2] + (str(tmp_path / "empty.avi"), str(tmp_path / "junk.avi")),
        (0, 0, 1, 1), ("a", "b"),
    )
    spec = pipeline.ClipSpec(clip_len=4, size=32)
    skipped = pipeline.SkippedVideos()
    ds = pipeline.clip_dataset(index, spec, training=True, batch_size=1, skipped=skipped, seed=3)
    # An unreadable video's place is taken by the next readable one: batches stay full.
    labels = [int(y[0]) for _, y in ds]
    assert labels == [0, 0, 0, 0]
    reasons = dict(skipped.take())
    assert set(reasons) == {str(tmp_path / "empty.avi"), str(tmp_path / "junk.avi")}
    assert "empty" in reasons[str(tmp_path / "empty.avi")]
    assert sum(1 for _ in ds) == 4 and skipped.count >= 2 and skipped.total >= 4
    frames, _, ids = collect(pipeline.clip_dataset(index, spec, training=False, batch_size=3,
                                                   skipped=skipped))
    assert ids.tolist() == [0, 1] and len(frames) == 2  # evaluation leaves them out
    ds = pipeline.clip_dataset(index, spec, training=False, batch_size=1, on_error="raise")
    with pytest.raises(tf.errors.OpError, match="empty.avi"):
        list(ds)


def test_spans_limit_the_frames(tmp_path):
    write_video(tmp_path / "long.avi", indexed_frames(24), fps=8)
    # Seconds 1.0-2.0 at 8 fps: frames 8..15.
    index = VideoIndex((str(tmp_path / "long.avi"),), (0,), ("a",), ((1.0, 2.0),))
    spec = pipeline.ClipSpec(clip_len=4, size=32, mode="uniform")
    frames, _, _ = collect(pipeline.clip_dataset(index, spec, training=False, batch_size=1))
    assert frame_numbers(frames[0]) == [8, 10, 13, 15]
    cache = prepare_cache(index, tmp_path / "cache", short_side=32)
    assert cache.num_frames == 8
    frames, _, _ = collect(pipeline.clip_dataset(cache, spec, training=False, batch_size=1))
    assert frame_numbers(frames[0]) == [8, 10, 13, 15]


def test_prepare_decodes_a_video_in_bounded_memory(tmp_path):
    num_frames, height, width = 300, 96, 128
    frames = np.broadcast_to(
        np.linspace(0, 255, width, dtype=np.uint8)[None, None, :, None],
        (num_frames, height, width, 3),
    )
    write_video(tmp_path / "long.avi", np.ascontiguousarray(frames), fps=25)
    index = VideoIndex((str(tmp_path / "long.avi"),), (0,), ("a",))
    raw_bytes = num_frames * height * width * 3  # 11 MB of RGB
    tracemalloc.start()
    try:
        cache = prepare_cache(index, tmp_path / "cache", short_side=height, every=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cache.num_frames == num_frames // 2
    # One chunk of raw frames plus the JPEGs: ~1.6 MB (the whole video kept was ~6 MB).
    assert peak < raw_bytes / 4, f"peak {peak} bytes for {raw_bytes} bytes of frames"
    frames_back, _, _ = collect(
        pipeline.clip_dataset(cache, pipeline.ClipSpec(clip_len=2, size=32), training=False,
                              batch_size=1)
    )
    assert frames_back.shape[1:] == (2, 32, 32, 3)


def test_cache_gives_the_same_clips_as_raw_videos(videos, tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"")
    index = VideoIndex(videos.paths + (str(bad),), videos.labels + (1,), videos.class_names)
    cache = prepare_cache(index, tmp_path / "cache", short_side=32, num_shards=2)
    assert cache.num_videos == 4 and cache.skipped == ((str(bad), "file is empty (0 bytes)"),)
    assert sorted(os.listdir(tmp_path / "cache")) == [
        ".mrrn-owned", "cache.json", "index.npz", "videos-00000-of-00002.frames", "videos-00001-of-00002.frames"]
    reopened = open_cache(tmp_path / "cache")
    assert reopened == cache
    spec = pipeline.ClipSpec(clip_len=4, size=32)
    raw = collect(pipeline.clip_dataset(videos, spec, training=False, batch_size=8, num_clips=2))
    cached = collect(pipeline.clip_dataset(cache, spec, training=False, batch_size=8, num_clips=2))
    order = np.argsort(cached[2], kind="stable")
    assert cached[2][order].tolist() == raw[2].tolist()
    assert cached[1][order].tolist() == raw[1].tolist()
    assert [frame_numbers(c) for c in cached[0][order]] == [frame_numbers(c) for c in raw[0]]
    np.testing.assert_allclose(cached[0][order], raw[0], atol=6)
    train = pipeline.clip_dataset(cache, spec, training=True, batch_size=2, seed=0,
                                  augment=pipeline.Augment(), label_keys=("x", "y"))
    x, y = next(iter(train))
    assert x.shape == (2, 4, 32, 32, 3) and set(y) == {"x", "y"}


def test_cache_errors(tmp_path):
    with pytest.raises(DatasetError, match="cache.json"):
        open_cache(tmp_path)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"")
    with pytest.raises(DatasetError, match="No video of the index could be read"):
        prepare_cache(VideoIndex((str(bad),), (0,), ("a",)), tmp_path / "c")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size=0"),
        (dict(num_crops=2), "num_crops=2"),
        (dict(on_error="ignore"), "on_error='ignore'"),
        (dict(training=True, num_clips=2), "num_clips=2"),
    ],
)
def test_validation(videos, kwargs, match):
    args = {**dict(training=False, batch_size=1), **kwargs}
    with pytest.raises(ValueError, match=match):
        pipeline.clip_dataset(videos, pipeline.ClipSpec(), **args)
    with pytest.raises(ValueError, match="mode='tsn'"):
        pipeline.ClipSpec(mode="tsn")
    with pytest.raises(ValueError, match="scale="):
        pipeline.Augment(scale=(0.0, 1.0))
