"""Seek decoding, rotation and the frame-size bound of mrrn_keras/data/video.py.

Every file is written here with PyAV: h264 with B-frames (mp4), mpeg4 (.avi),
a variable-frame-rate Matroska file, an .avi with its idx1 index stripped, a
Matroska file whose every packet claims to be a keyframe, and files carrying a
display matrix (a phone's portrait video).
"""

import fractions
import logging

import av
import numpy as np
import pytest

from mrrn_keras.data import video
from mrrn_keras.errors import ConfigError, VideoError


def moving_frames(num_frames, height=48, width=64, seed=0):
    """Textured frames that move a little each step, so P/B frames reference others."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width * 2, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 3 * t, axis=1)[:, :width] for t in range(num_frames)])


def write_stream(path, frames, *, codec, gop, options=None, pts=None, time_base=None,
                 rotation=None, pix_fmt="yuv420p"):
    """Writes `frames` with explicit encoder settings (and timestamps, and a display matrix)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.codec_context.gop_size = gop
        stream.options = dict(options or {})
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = int(pts[i]), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def h264_bframes(path, num_frames=60):
    write_stream(path, moving_frames(num_frames), codec="libx264", gop=10,
                 options={"bf": "2", "crf": "30", "sc_threshold": "0"})
    return path


def mpeg4_avi(path, num_frames=60):
    write_stream(path, moving_frames(num_frames), codec="mpeg4", gop=8,
                 options={"flags": "qscale", "global_quality": "600"})
    return path


def vfr_mkv(path, num_frames=60):
    # Gaps of 10 to 40 ms: no constant rate describes these times.
    steps = np.random.default_rng(1).integers(1, 5, num_frames) * 10
    pts = np.concatenate([[0], np.cumsum(steps[:-1])])
    write_stream(path, moving_frames(num_frames), codec="mpeg4", gop=8, pts=pts,
                 time_base=fractions.Fraction(1, 1000),
                 options={"flags": "qscale", "global_quality": "600"})
    return path


INDICES = [55, 3, 17, 17, 40, 9, 0, 59, 31]


def seek_log(caplog):
    return [r.getMessage() for r in caplog.records if "seek" in r.getMessage()]


@pytest.mark.parametrize("writer", [h264_bframes, mpeg4_avi, vfr_mkv], ids=["h264-bframes", "mpeg4-avi", "vfr"])
def test_seek_equals_sequential_bit_for_bit(tmp_path, writer, caplog):
    path = writer(tmp_path / {"h264_bframes": "v.mp4", "mpeg4_avi": "v.avi"}.get(writer.__name__, "v.mkv"))
    sequential = video.read_frames(path, INDICES, method="sequential")
    whole = video.read_frames(path, method="sequential")
    np.testing.assert_array_equal(sequential, whole[INDICES])
    with caplog.at_level(logging.DEBUG, logger="mrrn_keras.data.video"):
        sought = video.read_frames(path, INDICES, method="seek")
        resized = video.read_frames(path, INDICES, size=(24, 20), method="seek")
    np.testing.assert_array_equal(sought, sequential)
    np.testing.assert_array_equal(resized, video.read_frames(path, INDICES, size=(24, 20), method="sequential"))
    messages = seek_log(caplog)
    assert any("seeks for" in m and not m.split(": ")[-1].startswith("0 seeks") for m in messages), messages
    assert not any("gave up" in m for m in messages), messages


@pytest.mark.parametrize("writer", [h264_bframes, vfr_mkv], ids=["h264-bframes", "vfr"])
def test_iter_frames_seek_equals_sequential(tmp_path, writer):
    path = writer(tmp_path / ("v.mp4" if writer is h264_bframes else "v.mkv"))
    times = video.frame_timestamps(path)
    start = float(times[37])
    sequential = list(video.iter_frames(path, start_s=start, every=3, method="sequential"))
    sought = list(video.iter_frames(path, start_s=start, every=3, method="seek"))
    assert [t for t, _ in sought] == [t for t, _ in sequential] == times[37::3].tolist()
    for (_, a), (_, b) in zip(sought, sequential):
        np.testing.assert_array_equal(a, b)


def test_avi_without_index_still_gives_the_right_frames(tmp_path, caplog):
    path = mpeg4_avi(tmp_path / "v.avi")
    expected = video.read_frames(path, INDICES, method="sequential")
    data = path.read_bytes()
    cut = data.rindex(b"idx1")
    stripped = tmp_path / "noindex.avi"
    stripped.write_bytes(data[:cut])
    for method in video.DECODE_METHODS:
        np.testing.assert_array_equal(video.read_frames(stripped, INDICES, method=method), expected)
    got = list(video.iter_frames(stripped, start_s=1.2, method="seek"))
    assert len(got) == 60 - 30


def test_bogus_keyframe_flags_fall_back_to_sequential(tmp_path, caplog):
    source = mpeg4_avi(tmp_path / "v.avi")
    expected = video.read_frames(source, INDICES, method="sequential")
    bogus = tmp_path / "allkeys.mp4"  # mp4 keeps the flags (stss); avi and mkv re-derive them
    with av.open(str(source)) as src, av.open(str(bogus), "w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.is_keyframe = True
                packet.stream = out
                dst.mux(packet)
    with caplog.at_level(logging.DEBUG, logger="mrrn_keras.data.video"):
        got = video.read_frames(bogus, INDICES, method="seek")
        frames = list(video.iter_frames(bogus, start_s=1.0, method="seek"))
    np.testing.assert_array_equal(got, expected)
    assert any("gave up" in m for m in seek_log(caplog))
    sequential = list(video.iter_frames(bogus, start_s=1.0, method="sequential"))
    assert len(frames) == len(sequential) == 35
    np.testing.assert_array_equal(frames[0][1], sequential[0][1])


def test_auto_reads_short_and_past_the_end(tmp_path, caplog):
    path = mpeg4_avi(tmp_path / "v.avi")
    with caplog.at_level(logging.WARNING):
        got = video.read_frames(path, [58, 70], method="auto")
    np.testing.assert_array_equal(got, video.read_frames(path, [58, 59], method="sequential"))
    assert "only 60 frames could be decoded" in caplog.text
    with pytest.raises(ValueError, match="Received: method='fast'"):
        video.read_frames(path, [1], method="fast")


def portrait_source():
    """Landscape stored frames with a marked top-left corner."""
    frames = moving_frames(6, height=32, width=48)
    frames[:, :4, :4] = 255
    return frames


def test_display_matrix_rotation_is_applied(tmp_path):
    frames = portrait_source()
    path = tmp_path / "phone.mkv"
    # A phone's "rotate=90" tag: the display matrix turns 90 degrees clockwise.
    write_stream(path, frames, codec="ffv1", gop=1, rotation=-90, pix_fmt="bgr0")
    upright = np.rot90(frames, k=-1, axes=(1, 2))
    info = video.probe_video(path)
    assert (info.rotation, info.width, info.height) == (90, 32, 48)
    np.testing.assert_array_equal(video.read_frames(path), upright)
    np.testing.assert_array_equal(video.read_frames(path, [4, 1], method="seek"), upright[[4, 1]])
    assert video.read_frames(path, [0], size=(40, 20)).shape == (1, 40, 20, 3)
    np.testing.assert_array_equal(np.concatenate(list(video.iter_frame_chunks(path, 4))), upright)
    np.testing.assert_array_equal(np.stack([f for _, f in video.iter_frames(path)]), upright)
    assert video.read_frames(path, []).shape == (0, 48, 32, 3)


@pytest.mark.parametrize("ccw, turn", [(180, 180), (90, 270), (0, 0)])
def test_other_rotations(tmp_path, ccw, turn):
    frames = portrait_source()
    path = tmp_path / "r.mkv"
    write_stream(path, frames, codec="ffv1", gop=1, rotation=ccw, pix_fmt="bgr0")
    assert video.probe_video(path).rotation == turn
    np.testing.assert_array_equal(video.read_frames(path), np.rot90(frames, k=-turn // 90, axes=(1, 2)))


def test_frame_size_bound_refuses_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "v.avi"
    video.write_video(path, moving_frames(2), codec="mpeg4")
    monkeypatch.setenv("MRRN_MAX_VIDEO_PIXELS", "40x40")
    for read in (video.probe_video, video.read_frames, video.frame_timestamps,
                 lambda p: next(video.iter_frames(p)), lambda p: next(video.iter_frame_chunks(p, 2))):
        with pytest.raises(VideoError, match=r"v\.avi: frame size 64x48 \(3072 pixels\) is over the limit of 1600"):
            read(path)
    monkeypatch.setenv("MRRN_MAX_VIDEO_PIXELS", "3072")
    assert video.probe_video(path).width == 64
    monkeypatch.setenv("MRRN_MAX_VIDEO_PIXELS", "lots")
    with pytest.raises(ConfigError, match="MRRN_MAX_VIDEO_PIXELS='lots'"):
        video.probe_video(path)


@pytest.mark.slow
def test_default_bound_refuses_a_frame_over_8k(tmp_path, monkeypatch):
    monkeypatch.delenv("MRRN_MAX_VIDEO_PIXELS", raising=False)
    path = tmp_path / "huge.avi"
    # One flat 8000x4200 frame: a small file announcing 33.6 M pixels (> 7680x4320).
    write_stream(path, np.zeros((1, 4200, 8000, 3), np.uint8), codec="mpeg4", gop=1)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(VideoError, match="huge.avi: frame size 8000x4200"):
        video.read_frames(path)


def test_avi_index_stands_in_for_demuxing(tmp_path):
    path = mpeg4_avi(tmp_path / "v.avi")
    name = str(path)
    container, stream = video._open_video(path)
    with container:
        video._INDEXES.clear()
        from_idx1, untouched = video._packet_index(name, container, stream)
        assert untouched
        pts, keys = video._demuxed_packets(container, stream)
    np.testing.assert_array_equal(from_idx1.pts, np.sort(pts))
    np.testing.assert_array_equal(np.flatnonzero(keys), np.unique(from_idx1.key))
    assert np.unique(from_idx1.key).tolist() == list(range(0, 60, 8))


def test_frame_cache_stores_a_phone_video_upright(tmp_path):
    from mrrn_keras.data.cache import prepare_cache
    from mrrn_keras.data.datasets import VideoIndex

    frames = np.zeros((4, 32, 48, 3), np.uint8)
    frames[:, :8, :8] = 255  # stored top-left: upright (turned clockwise), top-right
    path = tmp_path / "phone.mkv"
    write_stream(path, frames, codec="ffv1", gop=1, rotation=-90, pix_fmt="bgr0")
    index = VideoIndex((str(path),), (0,), ("a",))
    cache = prepare_cache(index, tmp_path / "cache", short_side=32, workers=1)
    (frame,) = cache.frames(0, [2])
    assert frame.shape == (48, 32, 3)
    assert frame[:8, -8:].mean() > 200 and frame[:8, :8].mean() < 50


def test_live_source_shows_a_phone_video_upright(tmp_path):
    from mrrn_keras.data.live import LiveSource

    frames = portrait_source()
    path = tmp_path / "phone.mkv"
    write_stream(path, frames, codec="ffv1", gop=1, rotation=-90, pix_fmt="bgr0")
    with LiveSource(path, size=(48, 32), capacity=8) as live:
        taken = []
        while chunk := live.take(2):
            taken += chunk
    np.testing.assert_array_equal(np.stack([f.image for f in taken]),
                                  np.rot90(frames, k=-1, axes=(1, 2)))
