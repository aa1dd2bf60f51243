"""Tests for mrrn_keras/data/clips.py and loader.py: one clip source, two adapters.

The clip source and `ClipLoader` need no TensorFlow (these tests run under
JAX too); the tf.data adapter must give bit-identical batches.
"""

import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from mrrn_keras.data.cache import open_cache, prepare_cache
from mrrn_keras.data.clips import Augment, ClipSource, ClipSpec, SkippedVideos
from mrrn_keras.data.datasets import VideoIndex, read_folder
from mrrn_keras.data.loader import ClipLoader, make_clip_data
from mrrn_keras.data.video import sample_indices
from mrrn_keras.errors import DatasetError, VideoError
from tests.helpers import frame_numbers, no_tensorflow_env, write_class_videos

pytestmark = pytest.mark.multi_backend

SPEC = ClipSpec(clip_len=4, size=24, short_side=32)
ON_TF = keras.backend.backend() == "tensorflow"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_class_videos(root, {"a": 3, "b": 3}, num_frames=10, height=32, width=40)
    return read_folder(root)


@pytest.fixture(scope="module")
def cache(videos, tmp_path_factory):
    return prepare_cache(videos, tmp_path_factory.mktemp("cache") / "train", short_side=32,
                         num_shards=2)


def loader_batches(loader, epochs=2):
    out = []
    for _ in range(epochs):
        out.append([loader[i] for i in range(len(loader))])
        loader.on_epoch_end()
    return out


def as_numpy(batch):
    return tuple(
        {k: np.asarray(v) for k, v in part.items()} if isinstance(part, dict) else np.asarray(part)
        for part in batch
    )


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for p, q in zip(as_numpy(x), as_numpy(y)):
            if isinstance(p, dict):
                assert p.keys() == q.keys()
                for key in p:
                    np.testing.assert_array_equal(p[key], q[key])
            else:
                assert p.dtype == q.dtype
                np.testing.assert_array_equal(p, q)


TRAINING = dict(training=True, batch_size=2, augment=Augment(flip=True), seed=7)
EVALUATION = dict(training=False, batch_size=4, num_clips=2, num_crops=3)


@pytest.mark.parametrize("kind", ["raw", "cache"])
@pytest.mark.parametrize("mode", ["training", "evaluation"])
def test_workers_and_epochs_give_the_same_batches(videos, cache, kind, mode):
    source = videos if kind == "raw" else cache
    kwargs = TRAINING if mode == "training" else EVALUATION
    one = loader_batches(ClipLoader(ClipSource(source, SPEC, **kwargs), workers=1))
    again = loader_batches(ClipLoader(ClipSource(source, SPEC, **kwargs), workers=2))
    assert_same_batches(one[0] + one[1], again[0] + again[1])
    if mode == "training":
        # Epochs differ (order, clips, crops); the same epoch is the same.
        assert not np.array_equal(one[0][0][0], one[1][0][0])
        resumed = ClipLoader(ClipSource(source, SPEC, **kwargs), epoch=1)
        assert_same_batches(one[1], [resumed[i] for i in range(len(resumed))])
    else:
        frames, labels, ids = (np.concatenate(p) for p in zip(*one[0]))
        assert frames.shape == (6 * 6, 4, 24, 24, 3)
        assert ids.tolist() == sorted(list(range(6)) * 6)


@pytest.mark.skipif(not ON_TF, reason="the tf.data adapter needs the TensorFlow backend")
@pytest.mark.parametrize("kind", ["raw", "cache"])
@pytest.mark.parametrize("mode", ["training", "evaluation"])
def test_tf_data_and_the_tensorflow_free_loader_agree_bit_for_bit(videos, cache, kind, mode):
    source = videos if kind == "raw" else cache
    kwargs = dict(TRAINING if mode == "training" else EVALUATION, label_keys=("low", "fused"))
    loader = make_clip_data(source, SPEC, adapter="pydataset", **kwargs)
    dataset = make_clip_data(source, SPEC, adapter="tf.data", **kwargs)
    expected = loader_batches(loader)
    # Each pass over the dataset is the next epoch, as fit iterates it.
    got = [list(dataset), list(dataset)]
    assert_same_batches(expected[0] + expected[1], got[0] + got[1])


def test_raw_evaluation_clips_are_the_sampled_frames(videos):
    source = ClipSource(videos, ClipSpec(clip_len=4, size=32), training=False, batch_size=4)
    frames, labels, ids = (np.concatenate(p) for p in zip(*[source.batch(i)
                                                            for i in range(len(source))]))
    assert labels.tolist() == [0, 0, 0, 1, 1, 1] and ids.tolist() == list(range(6))
    # Videos have 10 + i frames (write_class_videos); the centre crop keeps the pixels.
    for clip, n in zip(frames, [10, 11, 12, 10, 11, 12]):
        assert frame_numbers(clip) == sample_indices(n, 4).tolist()


def test_training_clips_stay_in_their_segments_and_depend_on_the_seed(videos):
    spec = ClipSpec(clip_len=2, size=32)
    firsts = set()
    for seed in range(6):
        source = ClipSource(videos, spec, training=True, batch_size=6, seed=seed,
                            with_video_ids=True)
        frames, labels, ids = source.batch(0)
        assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
        numbers = [frame_numbers(clip) for clip in frames]
        # Video i has 10 + i % 3 frames: two segments split at half of it.
        halves = [(10 + i % 3) // 2 for i in ids]
        assert all(0 <= a < h <= b < 2 * h + 1 for (a, b), h in zip(numbers, halves))
        firsts.add(tuple(map(tuple, numbers)))
    assert len(firsts) > 1


def test_unreadable_videos_are_replaced_in_training_and_raise_when_asked(videos, tmp_path):
    (tmp_path / "empty.avi").write_bytes(b"")
    index = VideoIndex(videos.paths[:3] + (str(tmp_path / "empty.avi"),), (0, 0, 0, 1),
                       ("a", "b"))
    skipped = SkippedVideos()
    source = ClipSource(index, SPEC, training=True, batch_size=2, seed=0, skipped=skipped)
    for epoch in range(3):
        for i in range(len(source)):
            frames, labels = source.batch(i, epoch)
            assert frames.shape[0] == 2 and labels.tolist() == [0, 0]
    assert list(skipped.files) == [str(tmp_path / "empty.avi")]
    strict = ClipSource(index, SPEC, training=False, batch_size=4, on_error="raise")
    with pytest.raises(VideoError, match="empty.avi"):
        strict.batch(0)


def test_batches_outside_the_epoch_raise_index_error(videos):
    source = ClipSource(videos, SPEC, training=True, batch_size=4)
    assert len(source) == 1
    with pytest.raises(IndexError):
        source.batch(1)


def test_cache_errors_name_the_file_and_how_to_rebuild(cache, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cache.root, copy)
    manifest = json.loads((copy / "cache.json").read_text())
    (copy / "cache.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(DatasetError, match=r"version 1.*rebuild it with `mrrn prepare"):
        open_cache(copy)
    (copy / "cache.json").write_text(json.dumps(manifest))
    assert open_cache(copy).num_videos == cache.num_videos
    shard = copy / manifest["shards"][1]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DatasetError, match="shorter than index.npz"):
        open_cache(copy)


def test_the_clip_path_imports_no_tensorflow(videos, cache, tmp_path):
    # The path the GPU machine trains through: a process where TensorFlow cannot load.
    script = (
        "import sys, numpy as np\n"
        "from mrrn_keras.data.cache import open_cache\n"
        "from mrrn_keras.data.datasets import read_folder\n"
        "from mrrn_keras.data.loader import make_clip_data\n"
        "from mrrn_keras.data.clips import ClipSpec\n"
        "spec = ClipSpec(clip_len=4, size=24, short_side=32)\n"
        "for source in (read_folder(sys.argv[1]), open_cache(sys.argv[2])):\n"
        "    data = make_clip_data(source, spec, training=True, batch_size=2, seed=7)\n"
        "    assert type(data).__name__ == 'ClipLoader', type(data)\n"
        "    np.save(sys.stdout.buffer, data[0][0])\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    env = no_tensorflow_env(tmp_path)
    done = subprocess.run([sys.executable, "-c", script, str(pathlib.Path(videos.paths[0]).parents[1]),
                           cache.root], env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    import io

    stream = io.BytesIO(done.stdout)
    raw, cached = np.load(stream), np.load(stream)
    here = ClipSource(videos, SPEC, training=True, batch_size=2, seed=7).batch(0)[0]
    np.testing.assert_array_equal(raw, here)
    assert cached.shape == raw.shape
