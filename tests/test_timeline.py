"""Timelines of long videos: windows, segments, taps reused, annotated output, exports."""

import csv
import fractions
import io
import json
import weakref

import av
import numpy as np
import pytest

import mrrn_keras
from mrrn_keras import MRRN
from mrrn_keras.annotate import annotate_video
from mrrn_keras.cli import main
from mrrn_keras.data.synthetic import render_sequence
from mrrn_keras.data.video import frame_timestamps, read_frames, write_video
from mrrn_keras.timelines import (
    TimelineClassifier,
    Window,
    check_settings,
    iter_windows,
    merge_segments,
    run_timeline,
)
from mrrn_keras.zoo import load_mrrn

SIZE = (32, 32)
# Three motions of one scene back to back: right (2 s), still (3 s), left (2 s) at 8 fps.
ACTIVITIES = (("move_right", 16), ("still", 24), ("move_left", 16))
TRUTH = (("MoveRight", 0.0, 2.0), ("Still", 2.0, 5.0), ("MoveLeft", 5.0, 7.0))


def tiny_model(**kwargs):
    kwargs.setdefault("sru_layers", 2)
    return MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, image_size=SIZE,
                class_names=["a", "b", "c"], **kwargs)


def random_frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


class CountingTaps:
    """A stand-in classifier: a frame's tap is its index (its first pixel); records calls."""

    def __init__(self):
        self.seen = []
        self.backbone_frames = 0

    def frame_taps(self, frames):
        self.seen += [frame_index(f) for f in frames]
        self.backbone_frames += len(frames)
        return {"s": np.asarray([[frame_index(f)] for f in frames], np.float32)}

    def classify_window(self, taps):
        return np.asarray([0.9, 0.1], np.float32)


def indexed(times):
    """`(seconds, frame)` whose first pixels hold the frame's index."""
    for i, t in enumerate(times):
        frame = np.zeros((2, 2, 3), np.uint8)
        frame[0, 0, :2] = i % 256, i // 256
        yield float(t), frame


def frame_index(frame):
    return int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])


@pytest.fixture(scope="module")
def three_activities(tmp_path_factory):
    path = tmp_path_factory.mktemp("timeline") / "three.avi"
    write_video(path, render_sequence(ACTIVITIES, size=64, rng=np.random.default_rng(0)), fps=8)
    return path


@pytest.mark.multi_backend
def test_window_from_tap_buffer_equals_the_classifier_on_the_clip():
    model = tiny_model()
    classifier = TimelineClassifier(model)
    clip = random_frames((6, *SIZE, 3))
    # Taps computed in two calls, in another order, gathered again: as the ring buffer does.
    first, second = classifier.frame_taps(clip[3:]), classifier.frame_taps(clip[:3])
    taps = {s: np.concatenate([second[s], first[s]]) for s in classifier.streams}
    np.testing.assert_allclose(classifier.classify_window(taps),
                               np.asarray(model(clip[None]))[0], atol=1e-5)
    assert classifier.backbone_frames == 6


def test_each_frame_through_the_backbone_at_most_once_and_memory_flat():
    classifier = CountingTaps()
    times = np.arange(400) / 10  # 40 s at 10 fps
    windows = list(iter_windows(classifier, indexed(times), clip_frames=4, window=2.0,
                                stride=0.5, labels=["x", "y"]))
    used = {i for w in windows for i in w.frames}
    assert sorted(classifier.seen) == sorted(used)  # every frame used, each once
    assert classifier.backbone_frames == len(used)
    assert len(windows) == 77  # starts 0, 0.5, ..., 38.0
    for k, w in enumerate(windows):  # each window judged on its own frames
        assert w.start_s == k * 0.5 and w.end_s == k * 0.5 + 2.0
        assert all(w.start_s <= times[i] < w.end_s for i in w.frames)
        assert len(w.frames) == 4


def test_frames_are_released_once_no_window_can_hold_them():
    alive, peak = [], [0]

    def frames():
        for item in indexed(np.arange(3000) / 10):  # 5 minutes at 10 fps
            peak[0] = max(peak[0], sum(ref() is not None for ref in alive))
            alive.append(weakref.ref(item[1]))
            yield item

    windows = list(iter_windows(CountingTaps(), frames(), clip_frames=4, window=2.0,
                                stride=0.5))
    assert len(windows) == 597
    # Frames still referenced: at most one window's worth (20 frames) and the next one.
    assert peak[0] <= 22


def test_variable_frame_rate_times_come_from_timestamps(tmp_path):
    # Frames at 0, 0.1, ..., 0.9 s, then a 2-frames-per-second stretch: 1.0, 1.5, ... 3.5.
    times = [i / 10 for i in range(10)] + [1.0 + i / 2 for i in range(6)]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * i, np.uint8), "rgb24")
            frame.pts, frame.time_base = round(t * 1000), fractions.Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    np.testing.assert_allclose(frame_timestamps(path), times, atol=2e-3)
    classifier = TimelineClassifier(tiny_model())
    result = run_timeline(classifier, path, size=SIZE, clip_frames=4, window=1.0, stride=1.0)
    assert [(w.start_s, w.end_s) for w in result.windows] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    # The first second holds 10 frames, the others 2 each (the last frame is shown until
    # 4.0 s, one frame gap on): frames by time, not by count.
    assert [len(set(w.frames)) for w in result.windows] == [4, 2, 2, 2]
    assert set(result.windows[1].frames) == {10, 11}
    assert result.frames_decoded == 16


def test_merge_segments_threshold_and_labels():
    ws = [Window(k * 1.0, k * 1.0 + 2.0, ((label, score),), (k,))
          for k, (label, score) in enumerate([("a", 0.9), ("a", 0.7), ("a", 0.2), ("b", 0.8)])]
    assert [(s.start_s, s.end_s, s.label, s.windows) for s in merge_segments(ws, stride=1.0)] \
        == [(0.0, 2.5, "a", 2), (3.5, 5.0, "b", 1)]
    with pytest.raises(ValueError, match="threshold=2"):
        check_settings(1.0, None, 2)
    with pytest.raises(ValueError, match="stride=-1"):
        check_settings(1.0, -1)


def test_three_activities_give_segments_within_one_stride_of_the_truth(three_activities):
    stride = 0.5
    result = mrrn_keras.timeline(three_activities, window=2.0, stride=stride, threshold=0.25)
    got = [(s.label, s.start_s, s.end_s) for s in result.segments]
    assert [label for label, _, _ in got] == [label for label, _, _ in TRUTH], got
    for (_, start, end), (_, true_start, true_end) in zip(got, TRUTH):
        assert abs(start - true_start) <= stride and abs(end - true_end) <= stride, got
    assert result.backbone_frames == len({i for w in result.windows for i in w.frames})
    assert result.backbone_frames <= result.frames_decoded == 56
    # A window from the tap buffer = the checkpoint run on that window's clip.
    model = load_mrrn("mrrn_tiny.motion")
    frames = read_frames(three_activities, size=(64, 64))
    for w in result.windows[::5]:
        probabilities = model.predict(frames[list(w.frames)][None], verbose=0)[0]
        order = np.argsort(-probabilities)[:len(w.top_k)]
        np.testing.assert_allclose([s for _, s in w.top_k], probabilities[order], atol=1e-5)


def test_cli_timeline_table_json_csv_and_annotate(three_activities, tmp_path, capsys):
    args = ["predict", str(three_activities), "--timeline", "--stride", "0.5",
            "--threshold", "0.25"]
    out = tmp_path / "annotated.mp4"
    assert main(args + ["--annotate", str(out)]) == 0
    table = capsys.readouterr().out
    assert "MoveRight" in table and "Still" in table and "MoveLeft" in table
    frames = read_frames(out)
    assert frames.shape == (56, 64, 64, 3)
    source = read_frames(three_activities)
    # The label box is drawn in the top-left corner; the rest of the frame is the source.
    assert np.abs(frames[:, :8].astype(int) - source[:, :8]).mean() > 20
    assert np.abs(frames[:, 40:].astype(int) - source[:, 40:]).mean() < 8
    assert main(args + ["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (item,) = document["timelines"]
    assert [s["label"] for s in item["segments"]] == ["MoveRight", "Still", "MoveLeft"]
    assert len(item["windows"]) == 11 and item["windows"][0]["start_s"] == 0.0
    assert main(args + ["--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["label"] for r in rows] == ["MoveRight", "Still", "MoveLeft"]


def test_cli_timeline_bad_settings_are_one_line_errors(tmp_path, capsys):
    assert main(["predict", "--timeline", "--window", "0"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["predict", "a.mp4", "b.mp4", "--timeline", "--annotate", "x.mp4"]) == 2
    assert "exactly one VIDEO" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.mp4"), "--timeline"]) == 1
    err = capsys.readouterr().err
    assert "missing.mp4" in err and err.strip().count("\n") == 0


def test_annotate_refuses_its_source_and_leaves_nothing_on_failure(tmp_path):
    source = tmp_path / "v.avi"
    write_video(source, random_frames((4, *SIZE, 3)), fps=4)
    result = run_timeline(TimelineClassifier(tiny_model()), source, size=SIZE, clip_frames=2,
                          window=1.0)
    with pytest.raises(ValueError, match="source"):
        annotate_video(source, source, result)
    with pytest.raises(ValueError, match="extension"):
        annotate_video(source, tmp_path / "noext", result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="mine.mp4"):
        annotate_video(source, mine, result)
    assert mine.read_bytes() == b"not ours"
    assert main(["predict", str(source), "--timeline", "--annotate", str(mine)]) == 2
    assert mine.read_bytes() == b"not ours"


def test_streaming_savedmodel_serves_the_same_timeline(tmp_path):
    from mrrn_keras.deploy.export import export_model
    from mrrn_keras.deploy.runtime import ExportedTimeline

    model = tiny_model()
    source = tmp_path / "v.avi"
    write_video(source, random_frames((12, *SIZE, 3)), fps=4)
    keras_result = run_timeline(TimelineClassifier(model), source, size=SIZE, clip_frames=4,
                                window=2.0, stride=0.5)
    path = export_model(model, tmp_path / "sm", format="savedmodel", stream=True, frames=4)
    exported = ExportedTimeline(path)
    assert (exported.window_frames, exported.frame_shape) == (4, SIZE)
    result = run_timeline(exported, source, size=SIZE, clip_frames=4, window=2.0, stride=0.5)
    assert [w.frames for w in result.windows] == [w.frames for w in keras_result.windows]
    for got, want in zip(result.windows, keras_result.windows):
        np.testing.assert_allclose([s for _, s in got.top_k], [s for _, s in want.top_k],
                                   atol=1e-5)
    assert exported.backbone_frames == keras_result.backbone_frames


@pytest.mark.slow
def test_streaming_litert_serves_the_same_timeline(tmp_path, capsys):
    from mrrn_keras.deploy.export import export_model
    from mrrn_keras.deploy.litert import custom_ops

    model = tiny_model()
    source = tmp_path / "v.avi"
    write_video(source, random_frames((12, *SIZE, 3)), fps=4)
    keras_result = run_timeline(TimelineClassifier(model), source, size=SIZE, clip_frames=4,
                                window=2.0, stride=0.5, threshold=0.0)
    path = export_model(model, tmp_path / "lite", format="litert", stream=True, frames=4)
    assert custom_ops(path.read_bytes()) == set()
    assert main(["predict", str(source), "--timeline", "--model", str(path), "--stride", "0.5",
                 "--threshold", "0", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)["timelines"]
    assert item["backbone_frames"] == keras_result.backbone_frames
    for got, want in zip(item["windows"], keras_result.windows):
        np.testing.assert_allclose([t["score"] for t in got["top_k"]],
                                   [s for _, s in want.top_k], atol=1e-4)
