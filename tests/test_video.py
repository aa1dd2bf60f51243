"""Tests for mrrn_keras/data/video.py: write, probe, read, sample, errors."""

import fractions
import logging

import av
import numpy as np
import pytest

from mrrn_keras.data import video
from mrrn_keras.errors import VideoError


def smooth_frames(num_frames=10, height=48, width=64):
    """Moving low-frequency gradients: content lossy codecs keep well."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    t = np.arange(num_frames, dtype=np.float64)[:, None, None]
    red = 128 + 90 * np.sin(xx / width * np.pi + t * 0.3)
    green = 128 + 90 * np.cos(yy / height * np.pi - t * 0.2)
    blue = np.broadcast_to(40 + 4 * t, red.shape)
    return np.stack([red, green, blue], -1).round().astype(np.uint8)


def flat_frames(num_frames, height=32, width=32):
    """Frame t is uniformly 10 * t: identifies frames after decoding."""
    values = (np.arange(num_frames) * 10).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (num_frames, height, width, 3)).copy()


@pytest.mark.parametrize(
    "codec, name, max_error",
    [
        ("mpeg4", "v.avi", 4.0),
        ("libx264", "v.mp4", 4.0),
        ("mjpeg", "v.avi", 3.0),
        ("png", "v.avi", 0.0),
        ("ffv1", "v.mkv", 0.0),
    ],
)
def test_round_trip(tmp_path, codec, name, max_error):
    frames = smooth_frames()
    path = tmp_path / name
    video.write_video(path, frames, fps=12, codec=codec)
    info = video.probe_video(path)
    assert (info.num_frames, info.height, info.width, info.fps) == (10, 48, 64, 12.0)
    assert info.duration_s == pytest.approx(10 / 12, abs=0.1)
    assert info.path == str(path)
    decoded = video.read_frames(path)
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() <= max_error
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


def test_odd_fps_and_resolution(tmp_path):
    frames = smooth_frames(9, height=47, width=63)
    path = tmp_path / "odd.mkv"  # Matroska: no frame count in the header
    video.write_video(path, frames, fps=29.97, codec="mpeg4")
    info = video.probe_video(path)
    assert info.fps == pytest.approx(29.97, abs=1e-6)
    assert (info.num_frames, info.height, info.width) == (9, 47, 63)
    assert video.read_frames(path).shape == (9, 47, 63, 3)
    assert video.load_clip(path, 4, size=(20, 30)).shape == (4, 20, 30, 3)


def test_odd_size_rejected_for_h264_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match="height=47 width=64"):
        video.write_video(tmp_path / "v.mp4", smooth_frames(3, 47, 64), codec="libx264")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing(tmp_path):
    # PNG frames cannot go into Matroska: the muxer refuses the stream.
    with pytest.raises(VideoError, match="png"):
        video.write_video(tmp_path / "v.mkv", smooth_frames(3), codec="png")
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "v.avi"
    video.write_video(path, flat_frames(3), codec="png")
    video.write_video(path, flat_frames(5), codec="png")
    assert video.probe_video(path).num_frames == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frames=np.zeros((2, 8, 8, 3), np.float32)), "dtype=float32"),
        (dict(frames=np.zeros((2, 8, 8), np.uint8)), "shape=\\(2, 8, 8\\)"),
        (dict(frames=np.zeros((0, 8, 8, 3), np.uint8)), "T >= 1"),
        (dict(fps=0), "fps=0"),
        (dict(codec="nope"), "codec='nope'"),
    ],
)
def test_write_validation(tmp_path, kwargs, match):
    args = dict(frames=np.zeros((2, 8, 8, 3), np.uint8), fps=25, codec="mpeg4")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        video.write_video(tmp_path / "v.avi", args.pop("frames"), **args)


def test_read_order_repeats_and_clamping(tmp_path):
    path = tmp_path / "v.avi"
    video.write_video(path, flat_frames(10), codec="png")
    got = video.read_frames(path, [3, 0, 3, 9, 100, 12])
    assert got[:, 0, 0, 0].tolist() == [30, 0, 30, 90, 90, 90]
    assert video.read_frames(path, [99])[:, 0, 0, 0].tolist() == [90]
    assert video.read_frames(path, []).shape == (0, 32, 32, 3)
    with pytest.raises(ValueError, match="indices"):
        video.read_frames(path, [1, -1])


def test_resize(tmp_path):
    path = tmp_path / "v.avi"
    frames = smooth_frames(4)
    video.write_video(path, frames, codec="png")
    assert video.read_frames(path, [0, 1], size=16).shape == (2, 16, 16, 3)
    small = video.read_frames(path, [2], size=(24, 32))
    assert small.shape == (1, 24, 32, 3)
    # Halving a smooth image: close to the 2x2 block mean.
    blocks = frames[2].reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(small[0] - blocks).mean() < 3
    for size in (0, (4,), (4, 0), 2.5, True):
        with pytest.raises(ValueError, match="Received: size="):
            video.read_frames(path, [0], size=size)


def test_header_frame_count_overstated(tmp_path, monkeypatch):
    path = tmp_path / "v.avi"
    video.write_video(path, flat_frames(5), codec="png")
    lying = video.VideoInfo(str(path), 50, 25.0, 32, 32, 2.0)
    monkeypatch.setattr(video, "probe_video", lambda p: lying)
    clip = video.load_clip(path, 5, mode="uniform")
    # Uniform over 50 "frames" asks 0, 12, 24, 37, 49; the stream ends at 4.
    assert clip[:, 0, 0, 0].tolist() == [0, 40, 40, 40, 40]


def write_cut_short(path, num_frames=20):
    """An AVI (index at the front) cut in half: its header promises `num_frames`."""
    full = path.with_name("full_" + path.name)
    noise = np.random.default_rng(0).integers(0, 256, (num_frames, 32, 32, 3), dtype=np.uint8)
    video.write_video(full, noise, fps=8)  # noise: frames, not the header, fill the file
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_file_cut_short_warns_with_counts(tmp_path, caplog):
    path = write_cut_short(tmp_path / "cut.avi")
    assert video.probe_video(path).num_frames == 20
    with caplog.at_level(logging.WARNING, logger="mrrn_keras.data.video"):
        clip = video.load_clip(path, 4, mode="uniform")
    decoded = len(video.read_frames(path))
    assert 1 <= decoded < 20 and clip.shape[0] == 4
    (message,) = [r.getMessage() for r in caplog.records if "promises" in r.getMessage()]
    assert str(path) in message
    assert f"only {decoded} frames could be decoded of the 20 its header promises" in message


# sample_indices


def test_segments_test_mode_is_centred_and_deterministic():
    assert video.sample_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert video.sample_indices(8, 8).tolist() == list(range(8))
    a = video.sample_indices(37, 5, training=False, rng=np.random.default_rng(1))
    b = video.sample_indices(37, 5, training=False, rng=np.random.default_rng(2))
    assert a.tolist() == b.tolist()


def test_segments_training_stays_within_segments():
    rng = np.random.default_rng(0)
    num_frames, clip_len = 50, 6
    bounds = [(k * num_frames // clip_len, (k + 1) * num_frames // clip_len) for k in range(6)]
    draws = np.stack(
        [video.sample_indices(num_frames, clip_len, training=True, rng=rng) for _ in range(300)]
    )
    for k, (lo, hi) in enumerate(bounds):
        assert draws[:, k].min() == lo and draws[:, k].max() == hi - 1
    seeded = [
        video.sample_indices(50, 6, training=True, rng=np.random.default_rng(7)) for _ in range(2)
    ]
    assert seeded[0].tolist() == seeded[1].tolist()


def test_uniform_endpoints():
    assert video.sample_indices(100, 4, mode="uniform").tolist() == [0, 33, 66, 99]
    got = video.sample_indices(57, 8, mode="uniform", training=True)
    assert got[0] == 0 and got[-1] == 56 and np.all(np.diff(got) > 0)
    assert video.sample_indices(5, 1, mode="uniform").tolist() == [0]


def test_dense_stride_centre_and_random_start():
    assert video.sample_indices(20, 4, mode="dense", stride=2).tolist() == [6, 8, 10, 12]
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        got = video.sample_indices(20, 4, mode="dense", stride=3, training=True, rng=rng)
        assert np.all(np.diff(got) == 3) and got[0] >= 0 and got[-1] <= 19
        starts.add(int(got[0]))
    assert starts == set(range(0, 11))


@pytest.mark.parametrize(
    "mode, stride, loop, pad",
    [
        ("segments", 1, [0, 1, 2, 0, 1, 2], [0, 1, 2, 2, 2, 2]),
        ("uniform", 1, [0, 1, 2, 0, 1, 2], [0, 1, 2, 2, 2, 2]),
        ("dense", 1, [0, 1, 2, 0, 1, 2], [0, 1, 2, 2, 2, 2]),
        ("dense", 2, [0, 2, 1, 0, 2, 1], [0, 2, 2, 2, 2, 2]),
    ],
)
def test_short_videos_loop_or_pad(mode, stride, loop, pad):
    kwargs = dict(mode=mode, stride=stride, training=True, rng=np.random.default_rng(0))
    assert video.sample_indices(3, 6, short="loop", **kwargs).tolist() == loop
    assert video.sample_indices(3, 6, short="pad", **kwargs).tolist() == pad


def test_dense_longer_span_than_video_uses_short_policy():
    assert video.sample_indices(6, 3, mode="dense", stride=4, short="pad").tolist() == [0, 4, 5]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_frames=0), "num_frames=0"),
        (dict(num_frames=2.0), "num_frames=2.0"),
        (dict(clip_len=0), "clip_len=0"),
        (dict(stride=0), "stride=0"),
        (dict(mode="random"), "mode='random'"),
        (dict(short="wrap"), "short='wrap'"),
        (dict(rng=3), "rng=3"),
    ],
)
def test_sample_indices_validation(kwargs, match):
    args = dict(num_frames=10, clip_len=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"Received: {match}"):
        video.sample_indices(args.pop("num_frames"), args.pop("clip_len"), **args)


# load_clip


@pytest.mark.parametrize("mode", ["segments", "uniform", "dense"])
@pytest.mark.parametrize("num_frames", [3, 24])
def test_load_clip_short_and_long(tmp_path, mode, num_frames):
    path = tmp_path / "v.avi"
    video.write_video(path, flat_frames(num_frames), codec="png")
    clip = video.load_clip(path, 8, mode=mode, training=True, rng=np.random.default_rng(0), size=16)
    assert clip.shape == (8, 16, 16, 3) and clip.dtype == np.uint8
    expected = video.sample_indices(
        num_frames, 8, mode=mode, training=True, rng=np.random.default_rng(0)
    )
    assert clip[:, 0, 0, 0].tolist() == (expected * 10).tolist()


# errors


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = np.zeros((1, 800), np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.time_base = fractions.Fraction(1, 8000)
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "audio", "directory"])
@pytest.mark.parametrize("reader", ["probe", "read", "load"])
def test_unreadable_files_raise_video_error(tmp_path, kind, reader):
    path = {
        "missing": tmp_path / "missing.mp4",
        "empty": tmp_path / "empty.mp4",
        "text": tmp_path / "notes.mp4",
        "audio": tmp_path / "sound.wav",
        "directory": tmp_path / "folder.avi",
    }[kind]
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("not a video\n")
    elif kind == "audio":
        write_audio_only(path)
    elif kind == "directory":
        path.mkdir()
    call = {
        "probe": video.probe_video,
        "read": lambda p: video.read_frames(p, [0]),
        "load": lambda p: video.load_clip(p, 4),
    }[reader]
    with pytest.raises(VideoError) as info:
        call(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    expected = {
        "missing": "not found",
        "empty": "empty",
        "text": "not a readable",
        "audio": "no video stream",
        "directory": "not a regular file",
    }
    assert expected[kind] in info.value.reason


@pytest.mark.parametrize("chunk_len, stride", [(4, 1), (3, 2), (20, 1)])
def test_iter_frame_chunks_concatenate_to_the_video(tmp_path, chunk_len, stride):
    path = tmp_path / "v.avi"
    video.write_video(path, flat_frames(10), codec="png")
    chunks = list(video.iter_frame_chunks(path, chunk_len, stride=stride, size=16))
    assert all(1 <= len(c) <= chunk_len for c in chunks)
    assert all(len(c) == chunk_len for c in chunks[:-1])
    np.testing.assert_array_equal(
        np.concatenate(chunks), video.read_frames(path, range(0, 10, stride), size=16)
    )


def test_iter_frame_chunks_bad_arguments(tmp_path):
    path = tmp_path / "v.avi"
    video.write_video(path, flat_frames(3), codec="png")
    with pytest.raises(ValueError, match="Received: chunk_len=0"):
        next(video.iter_frame_chunks(path, 0))
    with pytest.raises(ValueError, match="Received: stride=0"):
        next(video.iter_frame_chunks(path, 2, stride=0))
    with pytest.raises(VideoError, match="missing.avi"):
        next(video.iter_frame_chunks(tmp_path / "missing.avi", 2))


def test_one_decoding_thread_gives_the_same_frames(tmp_path):
    path = tmp_path / "v.mp4"
    clip = np.random.default_rng(3).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
    video.write_video(path, clip, codec="libx264")
    indices = [0, 7, 7, 29, 12]
    np.testing.assert_array_equal(video.read_frames(path, indices, size=(24, 32), threads=1),
                                  video.read_frames(path, indices, size=(24, 32)))
    with pytest.raises(ValueError, match="threads"):
        video.read_frames(path, [0], threads=4)
