"""Runs an exported streaming model (SavedModel folder or LiteRT file).

`ExportedStream` has the interface of `mrrn_keras.streaming.
StreamingClassifier` (`reset`, `update`, `frames_seen`), so the same
chunk loop drives a Keras model or an exported file. `iter_source_chunks`
reads frames from a video file, a stream URL (rtsp://, http://, ...), a FIFO
or a camera device, wherever FFmpeg (PyAV) can open it.
"""

import json
import os
import pathlib
from collections.abc import Iterator

import numpy as np

from mrrn_keras.errors import BackendError


INIT_SIGNATURE = "init_states"
STEP_SIGNATURE = "step"
PROBABILITIES = "probabilities"
LABELS_FILE = "labels.txt"


def litert_interpreter(path):
    """A LiteRT interpreter of the `.tflite` file `path`, allocated.

    TensorFlow's (`tf.lite.Interpreter`) where TensorFlow imports; the
    standalone `ai-edge-litert` package's otherwise (JAX or PyTorch
    machines, phones' Python), the same runtime without TensorFlow.

    Args:
        path: a `.tflite` file.

    Returns:
        An `Interpreter` with its tensors allocated.

    Raises:
        BackendError: neither TensorFlow nor `ai-edge-litert` can be imported.
    """
    try:
        from tensorflow import lite

        interpreter_class = lite.Interpreter
    except ImportError:
        try:
            from ai_edge_litert.interpreter import Interpreter as interpreter_class
        except ImportError as err:
            raise BackendError(
                f"{path}: running a .tflite file needs TensorFlow or the LiteRT runtime; "
                f"install it with `pip install ai-edge-litert` ({err})"
            ) from None
    interpreter = interpreter_class(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


class ExportedStream:
    """Feeds chunks through an exported `init_states` / `step` model.

    Args:
        path: a streaming SavedModel folder or a `stream.tflite` file (from
            `mrrn export --stream`); `labels.txt` beside it names the classes.

    Attributes:
        labels: class names, or None when no `labels.txt` is found.
        frame_shape: `(height, width)` the model takes.
        chunk_frames: the fixed chunk length of a LiteRT file (None: any).
    """

    def __init__(self, path):
        path = pathlib.Path(path)
        folder = path if path.is_dir() else path.parent
        labels = folder / LABELS_FILE
        self.labels = labels.read_text().splitlines() if labels.is_file() else None
        if path.is_dir():
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            self._keep = loaded
            init, step = loaded.signatures[INIT_SIGNATURE], loaded.signatures[STEP_SIGNATURE]
            shape = step.structured_input_signature[1]["frames"].shape
            self._init = lambda batch: {
                k: v.numpy() for k, v in init(batch_size=tf.constant(batch, tf.int32)).items()
            }
            self._step = lambda **kw: {k: v.numpy() for k, v in step(
                **{k: tf.constant(v) for k, v in kw.items()}).items()}
            self.chunk_frames = None
        else:
            interpreter = litert_interpreter(path)
            init = interpreter.get_signature_runner(INIT_SIGNATURE)
            step = interpreter.get_signature_runner(STEP_SIGNATURE)
            shape = step.get_input_details()["frames"]["shape"]
            self._init = lambda batch: init()
            self._step = step
            self.chunk_frames = int(shape[1])
        self.frame_shape = (int(shape[2]), int(shape[3]))
        self.reset()

    def reset(self):
        """Forgets the frames seen so far."""
        self._state = None
        self.frames_seen = 0

    def update(self, chunk_frames) -> np.ndarray:
        """Feeds `(batch, time, H, W, 3)` uint8 frames; returns `(batch, K)` probabilities so far.

        A LiteRT file takes a fixed chunk length: longer chunks are fed in
        pieces of it; a length that is not a multiple raises `ValueError`.
        """
        frames = np.asarray(chunk_frames, np.uint8)
        if frames.ndim != 5 or frames.shape[1] == 0:
            raise ValueError(
                "`chunk_frames` must have shape (batch, time >= 1, height, width, 3). "
                f"Received: chunk_frames.shape={frames.shape}"
            )
        piece = self.chunk_frames or frames.shape[1]
        if frames.shape[1] % piece:
            raise ValueError(
                f"This LiteRT file takes chunks of {piece} frames. "
                f"Received: chunk_frames.shape={frames.shape}"
            )
        if self._state is None:
            self._state = dict(self._init(frames.shape[0]))
        for start in range(0, frames.shape[1], piece):
            outputs = self._step(frames=frames[:, start:start + piece], **self._state)
            probabilities = outputs.pop(PROBABILITIES)
            self._state = outputs
        self.frames_seen += frames.shape[1]
        return np.asarray(probabilities)


def iter_source_chunks(source: str, chunk_len: int, *, size) -> Iterator[np.ndarray]:
    """Frames of a file, stream URL, FIFO or camera in chunks `(n, H, W, 3)` uint8.

    A path to an existing file goes through `mrrn_keras.data.video.
    iter_frame_chunks`; anything else through `mrrn_keras.data.live.
    LiveSource` (FFmpeg by name, a FIFO read under deadlines, a device such
    as `/dev/video0` with the `v4l2` format), every frame kept: it is read
    until it ends or the caller stops.

    Raises:
        VideoError: the file cannot be read.
        SourceError: the source did not open within 10 s, gave no frame
            for 10 s, has no video stream or failed.
    """
    from mrrn_keras.data.live import LiveSource
    from mrrn_keras.data.video import iter_frame_chunks

    if os.path.isfile(source):
        yield from iter_frame_chunks(source, chunk_len, size=size)
        return
    with LiveSource(source, size=size, capacity=chunk_len, drop=False) as live:
        while chunk := live.take(chunk_len):
            yield np.stack([frame.image for frame in chunk])  # (n, H, W, 3)


def stream_timeline(classifier, source: str, *, chunk_len: int, size, labels, top_k: int = 1):
    """Yields one timeline row per chunk: `{"frames": n, "top_k": [(label, p), ...]}`.

    `classifier` is a `StreamingClassifier` or an `ExportedStream`; it is
    reset first.
    """
    classifier.reset()
    for chunk in iter_source_chunks(source, chunk_len, size=size):
        # (T_chunk, H, W, 3) -> (1, T_chunk, H, W, 3)
        row = classifier.update(chunk[None])[0]
        order = np.argsort(-row, kind="stable")[:top_k]
        names = labels or [f"class_{i}" for i in range(row.shape[-1])]
        yield {"frames": classifier.frames_seen,
               "top_k": [(names[j], float(row[j])) for j in order]}


def read_manifest(path) -> dict:
    """The `deploy.json` beside an exported file (empty when absent)."""
    path = pathlib.Path(path)
    manifest = (path if path.is_dir() else path.parent) / "deploy.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else {}


class ExportedTimeline:
    """Runs an exported streaming model's `frame_taps` and `window` signatures.

    It has `mrrn_keras.timelines.TimelineClassifier`'s interface
    (`frame_taps`, `classify_window`, `backbone_frames`), so
    `mrrn_keras.timelines.run_timeline` (and `mrrn predict --timeline
    --model PATH`) runs an export as it runs the Keras model.

    Args:
        path: a streaming SavedModel folder or `stream.tflite` (from
            `mrrn export --stream`); `labels.txt` and `deploy.json` beside it
            name the classes and the window's frames and sampling.

    Attributes:
        labels: class names, or None.
        frame_shape: `(height, width)` the model takes.
        window_frames: frames per window (`deploy.json`'s `timeline`).
        sampling: how they are placed in the window.

    Raises:
        ValueError: the export has no timeline signatures.
    """

    def __init__(self, path):
        from mrrn_keras.deploy.stream import TAPS_SIGNATURE, WINDOW_SIGNATURE

        path = pathlib.Path(path)
        folder = path if path.is_dir() else path.parent
        labels = folder / LABELS_FILE
        self.labels = labels.read_text().splitlines() if labels.is_file() else None
        spec = read_manifest(path).get("timeline") or {}
        self.window_frames, self.sampling = spec.get("frames"), spec.get("sampling", "segments")
        if not isinstance(self.window_frames, int):
            raise ValueError(f"{path}: deploy.json says no timeline window (frames per window): "
                             "re-export it with `mrrn export --stream`")
        import tensorflow as tf

        if path.is_dir():
            loaded = tf.saved_model.load(str(path))
            self._keep = loaded
            if TAPS_SIGNATURE not in loaded.signatures:
                raise ValueError(f"{path} has no {TAPS_SIGNATURE!r} signature: re-export it "
                                 "with `mrrn export --stream`")
            taps, window = loaded.signatures[TAPS_SIGNATURE], loaded.signatures[WINDOW_SIGNATURE]
            shape = taps.structured_input_signature[1]["frames"].shape
            names = list(window.structured_input_signature[1])
            self._taps = lambda frames: {k: v.numpy() for k, v in taps(
                frames=tf.constant(frames)).items()}
            self._window = lambda **kw: window(**{k: tf.constant(v) for k, v in kw.items()})
            self._per_frame = False
        else:
            interpreter = tf.lite.Interpreter(model_path=str(path))
            if TAPS_SIGNATURE not in interpreter.get_signature_list():
                raise ValueError(f"{path} has no {TAPS_SIGNATURE!r} signature: re-export it "
                                 "with `mrrn export --format litert --stream`")
            taps = interpreter.get_signature_runner(TAPS_SIGNATURE)
            window = interpreter.get_signature_runner(WINDOW_SIGNATURE)
            shape = taps.get_input_details()["frames"]["shape"]
            names = list(window.get_input_details())
            self._taps, self._window, self._per_frame = taps, window, True
        self.frame_shape = (int(shape[1]), int(shape[2]))
        self._names = {name.removesuffix("_taps"): name for name in names}
        self.backbone_frames = 0

    def frame_taps(self, frames) -> dict[str, np.ndarray]:
        """The tap vectors of uint8 frames `(n, H, W, 3)`: `{stream: (n, channels)}`."""
        frames = np.asarray(frames, np.uint8)
        # A LiteRT file takes one frame per call.
        pieces = [frames[i:i + 1] for i in range(len(frames))] if self._per_frame else [frames]
        outputs = [self._taps(frames=piece) for piece in pieces]
        self.backbone_frames += len(frames)
        return {s: np.concatenate([np.asarray(o[name]) for o in outputs])
                for s, name in self._names.items()}

    def classify_window(self, taps: dict) -> np.ndarray:
        """Fused probabilities `(K,)` of one window's taps `{stream: (T, C)}`."""
        inputs = {name: np.asarray(taps[s], np.float32)[None] for s, name in self._names.items()}
        return np.asarray(self._window(**inputs)[PROBABILITIES])[0]
