"""Live sources (mrrn_keras/data/live.py), the live loop (mrrn_keras/live.py) and
`mrrn predict --stream` on them (mrrn_keras/cli_live.py).

Sources that never answer are served here: a port nobody listens on, an
HTTP server on 127.0.0.1 that accepts and never sends, FIFOs with no writer
and with a stalled writer. Each must end in a `SourceError` after its small
timeout; a generous join guards against a hang (no speed is asserted).
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mrrn_keras.data.live import LatestFrames, LiveSource
from mrrn_keras.data.video import write_video
from mrrn_keras.errors import SourceError
from mrrn_keras.live import classify_live
from tests.helpers import frame_numbers, indexed_frames

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = (32, 32)
# A source given 0.5 s must have answered long before this: only a hang gets here.
HANG_S = 30.0


def _fails_in_time(fn):
    """Runs `fn` in a thread; returns the SourceError it raised (None if it returned)."""
    outcome = {}

    def run():
        try:
            fn()
        except SourceError as err:
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_S)
    assert not thread.is_alive(), "the source hung past its timeout"
    return outcome.get("error")


def _read_all(source, **kwargs):
    with LiveSource(source, size=SIZE, open_timeout=0.5, read_timeout=0.5, **kwargs) as live:
        while live.take(4):
            pass


# === the drop-oldest buffer ===


def test_full_buffer_drops_the_oldest_and_take_returns_the_newest():
    frames = LatestFrames(3)
    for i in range(7):
        assert frames.put(i)
    assert frames.dropped == 4 and frames.received == 7
    assert frames.take(3, timeout=1.0) == [4, 5, 6]
    frames.put(7)
    frames.close()
    assert not frames.put(8)  # closed: nothing more is kept
    assert frames.take(3, timeout=1.0) == [7]  # what is left, then nothing
    assert frames.take(3, timeout=1.0) == []


def test_lossless_buffer_makes_the_producer_wait():
    frames = LatestFrames(2, drop=False)
    produced = threading.Thread(target=lambda: [frames.put(i) for i in range(6)], daemon=True)
    produced.start()
    got = []
    while len(got) < 6:
        got += frames.take(2, timeout=5.0)
    produced.join(5.0)
    assert got == list(range(6)) and frames.dropped == 0


def test_take_times_out_raises_the_producer_error_and_stops_on_request():
    frames = LatestFrames(2)
    frames.put(0)
    with pytest.raises(TimeoutError):
        frames.take(2, timeout=0.2)
    stop = threading.Event()
    stop.set()
    assert frames.take(2, timeout=5.0, stop=stop) == []
    frames.close(SourceError("cam", "the source failed"))
    with pytest.raises(SourceError, match="cam: the source failed"):
        frames.take(1, timeout=1.0)


# === reading ===


def test_frames_are_kept_at_the_model_rate(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, indexed_frames(24, *SIZE), fps=24)
    with LiveSource(path, size=SIZE, fps=8, capacity=2) as live:
        taken = []
        while chunk := live.take(2):
            taken += chunk
    assert frame_numbers(np.stack([f.image for f in taken])) == list(range(0, 24, 3))
    np.testing.assert_allclose([f.time for f in taken], np.arange(8) / 8, atol=1e-6)
    assert live.dropped == 0  # a file read as fast as it decodes waits instead


def test_realtime_file_drops_what_a_slow_model_has_no_time_for(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, indexed_frames(30, *SIZE), fps=30)
    windows = []

    class Slow:  # a model slower than the source: 0.25 s per 4-frame window (0.13 s of video)
        def reset(self):
            pass

        def update(self, clip):
            windows.append(frame_numbers(clip[0]))
            time.sleep(0.25)
            return np.array([[0.5, 0.5]])

    results = list(classify_live(Slow(), path, window=4, size=SIZE, realtime=True,
                                 warm_up=False))
    assert results[-1].dropped > 0
    for numbers in windows:  # each window is consecutive frames: the newest ones buffered
        assert numbers == list(range(numbers[0], numbers[0] + 4))
    assert all(a[-1] < b[0] for a, b in zip(windows, windows[1:]))
    skipped = sum(b[0] - a[-1] - 1 for a, b in zip(windows, windows[1:]))
    assert skipped <= results[-1].dropped  # frames between windows were dropped, not queued


def test_stop_ends_the_results_and_the_reader(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, indexed_frames(24, *SIZE), fps=24)
    stop = threading.Event()

    class Model:
        def reset(self):
            pass

        def update(self, clip):
            stop.set()  # as `q` would, during the first window
            return np.array([[0.2, 0.8]])

    results = list(classify_live(Model(), path, window=4, size=SIZE, realtime=True,
                                 labels=["a", "b"], threshold=0.9, stop=stop, warm_up=False))
    assert [(r.label, r.score) for r in results] == [(None, 0.8)]  # under the threshold
    assert not [t for t in threading.enumerate() if t.name.startswith("LiveSource(")]


def test_smoothing_averages_the_last_seconds(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, indexed_frames(24, *SIZE), fps=8)
    answers = iter([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])

    class Model:
        def reset(self):
            pass

        def update(self, clip):
            return np.array([next(answers)])

    results = list(classify_live(Model(), path, window=8, size=SIZE, smooth=1.5,
                                 labels=["a", "b"], warm_up=False))
    assert [r.time for r in results] == [0.875, 1.875, 2.875]
    assert [r.top_k[0] for r in results] == [("a", 1.0), ("a", 0.5), ("b", 1.0)]


@pytest.mark.multi_backend
def test_each_window_is_judged_on_its_own_frames(tmp_path):
    from mrrn_keras import MRRN
    from mrrn_keras.data.video import read_frames
    from mrrn_keras.streaming import StreamingClassifier

    model = MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1,
                 image_size=SIZE)
    path = tmp_path / "v.avi"
    write_video(path, np.random.default_rng(0).integers(0, 256, (12, *SIZE, 3), np.uint8),
                fps=8, codec="mjpeg")
    results = list(classify_live(StreamingClassifier(model), path, window=4, size=SIZE,
                                 top_k=3, labels=["a", "b", "c"]))
    # (12, H, W, 3) -> (3 windows, 4, H, W, 3): the model on each window alone
    expected = np.asarray(model.predict(read_frames(path).reshape(3, 4, *SIZE, 3), verbose=0))
    assert len(results) == 3
    for result, probabilities in zip(results, expected):
        np.testing.assert_allclose(dict(result.top_k)["b"], probabilities[1], atol=1e-5)
        assert result.label == "abc"[int(np.argmax(probabilities))]


# === sources that never answer ===


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dead_url_is_a_one_line_error():
    url = f"http://127.0.0.1:{_free_port()}/live.avi"
    error = _fails_in_time(lambda: _read_all(url))
    assert error is not None and str(error).startswith(f"{url}: cannot open the source")


@pytest.fixture
def silent_server():
    """An HTTP server on 127.0.0.1 that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        try:
            while True:
                held.append(server.accept()[0])
        except OSError:  # closed at teardown
            pass

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/live.avi"
    server.close()
    for connection in held:
        connection.close()


def test_url_that_never_answers_ends_after_the_open_timeout(silent_server):
    error = _fails_in_time(lambda: _read_all(silent_server))
    assert error is not None
    assert str(error) == f"{silent_server}: cannot open the source (no answer within 0.5 s)"


def test_url_that_stalls_mid_stream_ends_after_the_read_timeout(tmp_path):
    video = tmp_path / "v.mkv"
    write_video(video, indexed_frames(30, *SIZE), fps=30, codec="mjpeg")
    data = video.read_bytes()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():  # headers and half the body, then silence with the connection open
        connection = server.accept()[0]
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/x-matroska\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(data) + data[: len(data) // 2])
        release.wait(HANG_S)
        connection.close()

    release = threading.Event()
    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v.mkv"
    try:
        error = _fails_in_time(lambda: _read_all(url))
    finally:
        release.set()
        server.close()
    assert re.fullmatch(rf"{url}: the source failed after \d+ frames \(no data for 0.5 s\)",
                        str(error))


def test_fifo_with_no_writer_ends_after_the_open_timeout(tmp_path):
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    error = _fails_in_time(lambda: _read_all(fifo))
    assert str(error) == f"{fifo}: no data within 0.5 s (no writer, or it sends nothing)"


def _read_from_a_failing_writer(tmp_path, trickle):
    """The SourceError of reading a FIFO whose writer sends half a video, then
    holds it open silent (`trickle=False`) or sends a byte per 0.1 s."""
    video, fifo = tmp_path / "v.avi", tmp_path / "camera.fifo"
    write_video(video, indexed_frames(30, 64, 64), fps=30, codec="mjpeg")
    data = video.read_bytes()
    os.mkfifo(fifo)
    release = threading.Event()

    def writer():
        with open(fifo, "wb", buffering=0) as out:
            out.write(data[: len(data) // 2])
            for byte in data[len(data) // 2:] if trickle else ():
                if release.wait(0.1):
                    return
                out.write(bytes([byte]))
            release.wait(HANG_S)

    threading.Thread(target=writer, daemon=True).start()
    try:
        return fifo, _fails_in_time(lambda: _read_all(fifo))
    finally:
        release.set()


def test_fifo_whose_writer_stalls_ends_after_the_read_timeout(tmp_path):
    fifo, error = _read_from_a_failing_writer(tmp_path, trickle=False)
    assert str(error) == f"{fifo}: no data within 0.5 s (the writer stalled)"


def test_fifo_that_trickles_bytes_but_no_frame_ends_after_the_read_timeout(tmp_path):
    # Every read gets a byte in time, but a frame never completes.
    fifo, error = _read_from_a_failing_writer(tmp_path, trickle=True)
    assert str(error) == f"{fifo}: no frame for over 0.5 s (the source stalled or went away)"


def test_fifo_with_a_writer_is_read_to_its_end(tmp_path):
    video, fifo = tmp_path / "v.avi", tmp_path / "camera.fifo"
    write_video(video, indexed_frames(12, *SIZE), fps=30)
    os.mkfifo(fifo)
    threading.Thread(target=lambda: fifo.write_bytes(video.read_bytes()), daemon=True).start()
    with LiveSource(fifo, size=SIZE, open_timeout=5, read_timeout=5, capacity=12) as live:
        frames = live.take(12)
    assert frame_numbers(np.stack([f.image for f in frames])) == list(range(12))


# === mrrn predict ===


def test_cli_fifo_with_no_writer_prints_one_line(tmp_path, capsys):
    from mrrn_keras.cli import main

    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    code = main(["predict", "--stream", "--source", str(fifo), "--open_timeout", "0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"mrrn predict: {fifo}: no data within 0.5 s (no writer, or it sends nothing)"]


def test_cli_bad_live_options_are_usage_errors(tmp_path, capsys):
    from mrrn_keras.cli import main

    video = tmp_path / "v.avi"
    write_video(video, indexed_frames(8, *SIZE), fps=8)
    assert main(["predict", "--realtime", str(video)]) == 2
    assert "need --stream" in capsys.readouterr().err
    assert main(["predict", "--stream", "--realtime", str(video), str(video)]) == 2
    assert "one source" in capsys.readouterr().err
    assert main(["predict", "--stream", "--realtime", str(video), "--smooth", "-1"]) == 2
    assert "`smooth` must be a finite number >= 0. Received: smooth=-1.0" in capsys.readouterr().err


def test_cli_realtime_file_with_the_bundled_checkpoint(tmp_path, capsys):
    from mrrn_keras.cli import main
    from mrrn_keras.data.video import load_clip
    from mrrn_keras.predict import sample_clip_path
    from mrrn_keras.zoo import load_mrrn

    video = tmp_path / "clip.avi"
    write_video(video, load_clip(sample_clip_path(), 16, size=(64, 64)), fps=8, codec="mjpeg")
    assert main(["predict", "--stream", "--realtime", str(video), "--json", "--top_k", "2"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["time"] for r in rows] == [0.875, 1.875]  # windows of 8 frames at the entry's 8 fps
    assert all(r["latency_s"] >= 0 and r["dropped"] == 0 for r in rows)
    model = load_mrrn("mrrn_tiny.motion")
    decoded = load_clip(video, 16, size=(64, 64))
    expected = model.predict(np.stack([decoded[:8], decoded[8:]]), verbose=0)
    for row, probabilities in zip(rows, expected):
        label, p = row["top_k"][0]
        assert label == row["label"] == model.class_names[int(np.argmax(probabilities))]
        np.testing.assert_allclose(p, probabilities.max(), atol=1e-4)
    assert err.strip().splitlines()[-1] == (
        f"mrrn predict: {video}: ended after 2 windows, 16 frames read, 0 dropped")


def test_q_on_the_terminal_stops_and_the_terminal_mode_comes_back(monkeypatch):
    import pty
    import termios

    from mrrn_keras.cli_live import _quit_key

    main_end, terminal = pty.openpty()
    with os.fdopen(terminal, "r") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        before = termios.tcgetattr(terminal)
        stop = threading.Event()
        with _quit_key(stop):
            assert not termios.tcgetattr(terminal)[3] & termios.ICANON  # keys come one by one
            os.write(main_end, b"xq")
            assert stop.wait(HANG_S)
        assert termios.tcgetattr(terminal) == before
    os.close(main_end)


@pytest.mark.slow
def test_cli_ctrl_c_stops_cleanly_and_flushes(tmp_path):
    video = tmp_path / "long.avi"
    write_video(video, np.zeros((240, 64, 64, 3), np.uint8), fps=8, codec="mjpeg")
    process = subprocess.Popen(
        [sys.executable, "-m", "mrrn_keras.cli", "predict", "--stream", "--realtime",
         str(video), "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = process.stdout.readline()  # the first window is out: the loop is running
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert json.loads(first)["time"] == 0.875
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"mrrn predict: {video}: interrupted after ")
    assert all(json.loads(line) for line in out.splitlines())  # whole lines only
