"""Streaming inference: an MRRN fed a video chunk by chunk.

Each chunk's frames go through preprocessing and the backbone once; each
stream's SRUs continue from the states the previous chunk left, and the time
pooling is carried as a running value (last output, running sum, running
max), so after any number of chunks the prediction equals the one-shot
prediction on all frames seen so far.
"""

import os
from collections.abc import Iterator

import keras
import numpy as np
from keras import ops

from mrrn_keras.data.video import PathLike, iter_frame_chunks
from mrrn_keras.errors import VideoError
from mrrn_keras.labels import resolve_labels
from mrrn_keras.layers.sru import SRU
from mrrn_keras.model import MRRNVideoClassifier
from mrrn_keras.validation import check_int


class StreamingClassifier:
    """Runs an MRRN on a live video chunk by chunk, carrying SRU state.

    A long video then costs one backbone pass per frame, and the memory does
    not grow with its length. After `update` has seen frames `x_1..x_n` in
    any chunking, the returned probabilities equal `model.predict` on
    `x_1..x_n` at once (up to float rounding) for every `time_pooling`:
    `"last"` keeps the top SRU's latest output, `"mean"` a running sum and
    count of the top outputs, `"max"` a running maximum.

    The SRUs run as copies with `return_state=True` whose weights are taken
    from `model` at construction and again at every `reset()`. The parts are
    found through the model's attributes: `backbone.tap_outputs`,
    `backbone.sru_stacks`, `heads` and `stream_fusion`.

    Args:
        model: an `MRRNVideoClassifier` (any backbone mode, `sru_layers >= 0`).

    Example:

    >>> import numpy as np
    >>> from mrrn_keras import MRRN
    >>> model = MRRN(3, backbone="resnet18", backbone_width=0.125,
    ...              sru_units=8, sru_layers=1, time_pooling="last")
    >>> stream = StreamingClassifier(model)
    >>> video = np.zeros((1, 6, 32, 32, 3), "uint8")
    >>> for chunk in np.split(video, 3, axis=1):
    ...     probabilities = stream.update(chunk)
    >>> bool(np.allclose(probabilities, model.predict(video, verbose=0), atol=1e-5))
    True
    """

    def __init__(self, model):
        if not isinstance(model, MRRNVideoClassifier):
            raise TypeError(
                "StreamingClassifier needs an MRRNVideoClassifier. "
                f"Received: model of type {type(model).__name__}"
            )
        backbone = model.backbone
        self.model = model
        self.streams = tuple(model.streams)
        self.time_pooling = backbone.time_pooling
        # Shares the model's preprocessing and trunk(s): frames -> {tap: (B, T, C)}.
        self._taps = keras.Model(backbone.inputs, backbone.tap_outputs)
        self._srus = {}
        for stream, layers in backbone.sru_stacks.items():
            self._srus[stream] = []
            for layer in layers:
                config = {**layer.get_config(), "return_sequences": True, "return_state": True}
                clone = SRU.from_config(config)
                clone.build(layer.input.shape)
                self._srus[stream].append((layer, clone))
        self._heads = model.heads
        self._fusion = model.stream_fusion
        # One traced graph per chunk shape on TensorFlow; JAX runs the
        # layers eagerly (their ops are compiled one by one).
        self._advance = (
            _tf_function(self._advance_graph)
            if keras.backend.backend() == "tensorflow"
            else self._advance_graph
        )
        self.reset()

    def reset(self):
        """Forgets the frames seen so far and re-reads the model's SRU weights."""
        for pairs in self._srus.values():
            for layer, clone in pairs:
                clone.set_weights(layer.get_weights())
        self._state = None
        self.frames_seen = 0
        self.stream_probabilities = None

    def update(self, chunk_frames):
        """Feeds the next frames and returns the fused probabilities so far.

        Args:
            chunk_frames: `(batch, time, height, width, 3)` uint8 or float
                frames, `time >= 1`; the batch size must stay the same until
                `reset()`.

        Returns:
            NumPy float32 `(batch, num_classes)`: the fused probabilities for
            all frames seen since the last `reset()`. The per-stream
            probabilities are left in `stream_probabilities`.

        Raises:
            ValueError: for frames of rank other than 5, with no time step, or
                a batch size different from the previous chunks'.
        """
        frames = ops.convert_to_tensor(chunk_frames)
        shape = tuple(frames.shape)
        if len(shape) != 5 or shape[1] == 0:
            raise ValueError(
                "`chunk_frames` must have shape (batch, time >= 1, height, width, 3). "
                f"Received: chunk_frames.shape={shape}"
            )
        if self._state is None:
            self._state = self._initial_state(shape[0])
        elif shape[0] != self._batch:
            raise ValueError(
                f"`chunk_frames` must keep the batch size {self._batch} until reset(). "
                f"Received: chunk_frames.shape={shape}"
            )
        self._state, fused, per_stream = self._advance(frames, self._state)
        self.frames_seen += shape[1]
        self.stream_probabilities = {s: ops.convert_to_numpy(p) for s, p in per_stream.items()}
        return ops.convert_to_numpy(fused)

    def _initial_state(self, batch):
        self._batch = batch
        state = {}
        for stream in self.streams:
            dim = self._taps.output[stream].shape[-1]
            layers = self._srus[stream]
            width = layers[-1][1].units if layers else dim
            start = -np.inf if self.time_pooling == "max" else 0.0
            state[stream] = {
                "c": [ops.zeros((batch, clone.units)) for _, clone in layers],
                "pool": ops.full((batch, width), start, "float32"),
                "count": ops.convert_to_tensor(0.0, "float32"),
            }
        return state

    def _advance_graph(self, frames, state):
        taps = self._taps(frames, training=False)
        new_state, probabilities = {}, {}
        for stream in self.streams:
            h = ops.cast(taps[stream], "float32")  # (B, T_chunk, C_tap)
            carried = []
            for (_, clone), c in zip(self._srus[stream], state[stream]["c"]):
                h, c = clone(h, initial_state=c, training=False)  # (B, T_chunk, U), (B, U)
                carried.append(c)
            pool, count = state[stream]["pool"], state[stream]["count"]
            steps = ops.cast(ops.shape(h)[1], "float32")
            if self.time_pooling == "mean":
                pool = pool + ops.sum(h, axis=1)
                pooled = pool / (count + steps)
            elif self.time_pooling == "max":
                pool = ops.maximum(pool, ops.max(h, axis=1))
                pooled = pool
            else:
                pool = h[:, -1, :]
                pooled = pool
            new_state[stream] = {"c": carried, "pool": pool, "count": count + steps}
            probabilities[stream] = self._heads[stream](pooled)
        fused = self._fusion([probabilities[s] for s in self.streams])
        return new_state, fused, probabilities


def _tf_function(fn):
    import tensorflow as tf

    return tf.function(fn, reduce_retracing=True)


def stream_video(
    classifier: StreamingClassifier,
    path: PathLike,
    *,
    chunk_len: int = 16,
    size=None,
    stride: int = 1,
) -> Iterator[tuple[int, np.ndarray]]:
    """Classifies a video file chunk by chunk, decoding it only once.

    Resets `classifier`, then decodes `path` front to back
    (`mrrn_keras.data.video.iter_frame_chunks`) and feeds every chunk, so a
    long file needs memory for one chunk only.

    Args:
        classifier: a `StreamingClassifier`.
        path: str or path-like. The video file.
        chunk_len: int >= 1. Frames per chunk. Defaults to `16`.
        size: None, int or `(height, width)`: resize frames when decoding.
        stride: int >= 1. Keep every `stride`-th frame. Defaults to `1`.

    Yields:
        `(frames_seen, probabilities)` after each chunk: the number of kept
        frames so far and the fused `(num_classes,)` probabilities for them,
        equal to the model's prediction on all those frames at once.

    Raises:
        VideoError: the file cannot be read.
        ValueError: an invalid `chunk_len`, `stride` or `size`.
    """
    classifier.reset()
    for chunk in iter_frame_chunks(path, chunk_len, size=size, stride=stride):
        # (T_chunk, H, W, 3) -> (1, T_chunk, H, W, 3)
        probabilities = classifier.update(chunk[None])
        yield classifier.frames_seen, probabilities[0]


def classify_videos_streaming(
    model,
    paths,
    *,
    size,
    chunk_len: int = 16,
    stride: int = 1,
    top_k: int = 5,
    labels=None,
):
    """Classifies whole video files by streaming; what `mrrn predict --stream` runs.

    Unlike `mrrn_keras.predict.classify_videos`, which samples a fixed-length
    clip, every kept frame of each file goes through the model, chunk by
    chunk, in memory for one chunk.

    Args:
        model: an `MRRNVideoClassifier`.
        paths: video files.
        size: `(height, width)` the frames are resized to.
        chunk_len: int >= 1. Frames per chunk. Defaults to `16`.
        stride: int >= 1. Keep every `stride`-th frame. Defaults to `1`.
        top_k: int >= 1. Classes reported per video.
        labels: class names, or None for the model's `class_names`, else
            `class_<i>`.

    Returns:
        One `mrrn_keras.predict.Prediction` or `VideoFailure` per path, in
        order.
    """
    from mrrn_keras.predict import Prediction, VideoFailure

    check_int("top_k", top_k)
    classifier = StreamingClassifier(model)
    results = []
    for path in map(os.fspath, paths):
        try:
            *_, (_, row) = stream_video(
                classifier, path, chunk_len=chunk_len, size=tuple(size), stride=stride
            )
        except VideoError as err:
            results.append(VideoFailure(path, err.reason))
            continue
        names = resolve_labels(labels, model, None, row.shape[-1])
        order = np.argsort(-row, kind="stable")[:top_k]
        results.append(Prediction(path, tuple((names[j], float(row[j])) for j in order)))
    return results
