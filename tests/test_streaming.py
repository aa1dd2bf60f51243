import numpy as np
import pytest

from mrrn_keras import MRRN
from mrrn_keras.streaming import StreamingClassifier

TINY = dict(backbone="resnet18", backbone_width=0.125, sru_units=8)


def _frames(batch=2, steps=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, steps, size, size, 3)).astype("uint8")


def _stream(stream, video, chunks):
    stream.reset()
    for part in np.array_split(video, chunks, axis=1):
        probabilities = stream.update(part)
    return probabilities


@pytest.mark.multi_backend
@pytest.mark.parametrize("pooling", ("last", "mean", "max"))
def test_chunks_equal_the_whole_clip(pooling):
    model = MRRN(4, sru_layers=2, time_pooling=pooling, **TINY)
    video = _frames()
    whole = np.asarray(model(video))
    stream = StreamingClassifier(model)
    for chunks in (1, 2, 4):
        np.testing.assert_allclose(_stream(stream, video, chunks), whole, atol=1e-5)
    assert stream.frames_seen == 8


def test_uneven_chunks_independent_backbones_and_stream_outputs():
    model = MRRN(
        3, sru_layers=1, backbone_mode="independent", streams=("low", "high"),
        stream_outputs=True, **TINY,
    )
    video = _frames(steps=7)
    whole = model(video)
    stream = StreamingClassifier(model)
    stream.update(video[:, :3])
    got = stream.update(video[:, 3:])
    np.testing.assert_allclose(got, whole["probabilities"], atol=1e-5)
    for name in ("low", "high"):
        np.testing.assert_allclose(stream.stream_probabilities[name], whole[name], atol=1e-5)


def test_order_blind_twin_streams():
    model = MRRN(3, sru_layers=0, time_pooling="mean", **TINY)
    video = _frames(steps=4)
    stream = StreamingClassifier(model)
    np.testing.assert_allclose(_stream(stream, video, 2), model(video), atol=1e-5)


def test_prefix_after_each_chunk_equals_the_prefix_clip():
    model = MRRN(3, sru_layers=1, time_pooling="last", **TINY)
    video = _frames(steps=6)
    stream = StreamingClassifier(model)
    for end in (2, 4, 6):
        got = stream.update(video[:, end - 2 : end])
        np.testing.assert_allclose(got, model(video[:, :end]), atol=1e-5)


def test_reset_rereads_weights():
    model = MRRN(3, sru_layers=1, time_pooling="last", **TINY)
    video = _frames(steps=4)
    stream = StreamingClassifier(model)
    sru = model.backbone.sru_stacks["low"][0]
    sru.set_weights([w * 0.5 for w in sru.get_weights()])
    np.testing.assert_allclose(_stream(stream, video, 2), model(video), atol=1e-5)


def test_bad_chunks_raise():
    model = MRRN(3, sru_layers=1, **TINY)
    stream = StreamingClassifier(model)
    with pytest.raises(ValueError, match="chunk_frames"):
        stream.update(np.zeros((4, 32, 32, 3), "uint8"))
    stream.update(_frames(batch=2, steps=2))
    with pytest.raises(ValueError, match="batch size"):
        stream.update(_frames(batch=3, steps=2))
    with pytest.raises(TypeError, match="MRRN"):
        StreamingClassifier(object())


@pytest.mark.multi_backend
def test_stream_video_equals_the_whole_file(tmp_path):
    from mrrn_keras.data.video import read_frames, write_video
    from mrrn_keras.streaming import stream_video

    path = tmp_path / "v.avi"
    write_video(path, _frames(batch=1, steps=9, size=40)[0], codec="png")
    model = MRRN(3, sru_layers=1, time_pooling="mean", **TINY)
    stream = StreamingClassifier(model)
    updates = list(stream_video(stream, path, chunk_len=4, size=32, stride=2))
    assert [n for n, _ in updates] == [4, 5]
    frames = read_frames(path, range(0, 9, 2), size=32)[None]  # (1, 5, 32, 32, 3)
    np.testing.assert_allclose(updates[-1][1], np.asarray(model(frames))[0], atol=1e-5)


def test_classify_videos_streaming_and_the_cli(tmp_path, capsys):
    import json

    from mrrn_keras import cli
    from mrrn_keras.data.video import read_frames, write_video
    from mrrn_keras.streaming import classify_videos_streaming
    from mrrn_keras.zoo import load_mrrn
    from tests.test_zoo import write_tiny_entry

    entry, _, _ = write_tiny_entry(tmp_path / "zoo")
    good, bad = tmp_path / "good.avi", tmp_path / "bad.avi"
    write_video(good, _frames(batch=1, steps=7, size=40)[0], codec="png")
    bad.write_text("not a video\n")
    model = load_mrrn(entry)
    results = classify_videos_streaming(model, [good, bad], size=(32, 32), chunk_len=3, top_k=2)
    assert [type(r).__name__ for r in results] == ["Prediction", "VideoFailure"]
    whole = np.asarray(model(read_frames(good, size=32)[None]))[0]
    labels = list(model.class_names)
    for label, probability in results[0].top_k:
        assert probability == pytest.approx(whole[labels.index(label)], abs=1e-5)
    assert results[0].top_k[0][1] == pytest.approx(whole.max(), abs=1e-5)

    args = ["predict", str(good), "--variant", str(entry), "--stream", "--chunk", "3"]
    assert cli.main(args + ["--json", "--top-k", "2"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["predictions"]
    assert [(r["label"], pytest.approx(r["probability"], abs=1e-5)) for r in row["top_k"]] == list(
        results[0].top_k
    )
    assert cli.main(args[:-1] + ["0"]) == 2
