"""Timelines of long videos: overlapping windows, each judged on its own frames.

A window of `window` seconds starts every `stride` seconds. Each window is
classified as the model was trained: the entry's frames per clip placed in
the window as its sampling says (`mrrn_keras.data.video.sample_indices` over
the frames shown in the window), with times from the stream's timestamps,
so variable-frame-rate files get their real times. Consecutive windows with
the same top label above a threshold merge into segments.

Cost: a decoded frame goes through the backbone (preprocessing, ResNet, tap
pooling) at most once, when the first window that samples it is complete;
its tap vectors stay in a buffer keyed by frame index until no later window
can contain the frame, and each window runs only the SRU stacks, time
pooling, heads and fusion on the gathered tap vectors. Memory holds one
window's frames and taps whatever the video's length; time is linear in it.

Times in segments: a window speaks for the `stride` seconds around its
centre (the first window from its start, the last to its end), so the
segments tile `[0, end of the last window]` and a change of activity shows
up at most a stride away from where it happens.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import math
import os
from collections.abc import Iterable, Iterator

import numpy as np

from mrrn_keras.data.video import PathLike, iter_frames, sample_indices
from mrrn_keras.labels import resolve_labels
from mrrn_keras.validation import check_choice, check_int

DEFAULT_WINDOW_S = 2.0
DEFAULT_THRESHOLD = 0.5
# Window edges are k * stride (never accumulated): a frame at exactly an edge
# belongs to the window that starts there, up to this rounding.
_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class Window:
    """One window of a timeline.

    Attributes:
        start_s: float. Start of the window, seconds from the first frame.
        end_s: float. End (exclusive).
        top_k: tuple of `(label, score)`, most probable first.
        frames: tuple of int. The frame indices the window's clip was made of.
    """

    start_s: float
    end_s: float
    top_k: tuple[tuple[str, float], ...]
    frames: tuple[int, ...]

    @property
    def label(self) -> str:
        """The top label."""
        return self.top_k[0][0]

    @property
    def score(self) -> float:
        """The top label's score."""
        return self.top_k[0][1]


@dataclasses.dataclass(frozen=True)
class Segment:
    """Consecutive windows with the same top label above the threshold.

    Attributes:
        start_s: float. Start in seconds.
        end_s: float. End in seconds.
        label: str. The windows' top label.
        score: float. The mean of the windows' top scores.
        windows: int. How many windows were merged.
    """

    start_s: float
    end_s: float
    label: str
    score: float
    windows: int

    def __str__(self) -> str:
        return f"{self.start_s:.2f}\u2013{self.end_s:.2f}: {self.label} ({self.score:.2f})"


@dataclasses.dataclass(frozen=True)
class Timeline:
    """What `timeline` returns.

    Attributes:
        path: str. The video.
        window_s, stride_s, threshold: the settings used.
        windows: tuple of `Window`, in time order.
        segments: tuple of `Segment`, in time order.
        frames_decoded: int. Frames read from the file.
        backbone_frames: int. Frames that went through the backbone (each
            at most once; equal to the distinct frames the windows used).
    """

    path: str
    window_s: float
    stride_s: float
    threshold: float
    windows: tuple[Window, ...]
    segments: tuple[Segment, ...]
    frames_decoded: int
    backbone_frames: int

    def label_at(self, seconds: float) -> Window | None:
        """The window that speaks for the time `seconds` (see the module's doc).

        Returns None before the first window's start or when there is no
        window; after the last window's end, the last window.
        """
        if not self.windows or seconds < self.windows[0].start_s - _EPS:
            return None
        ends = self._span_ends
        return self.windows[min(bisect.bisect_right(ends, seconds + _EPS), len(ends) - 1)]

    @functools.cached_property
    def _span_ends(self) -> list[float]:
        return [end for _, end in _spans(self.windows, self.stride_s)]

    def to_json(self) -> dict:
        """A JSON-ready dict: settings, windows and segments."""
        return {
            "path": self.path,
            "window_s": self.window_s,
            "stride_s": self.stride_s,
            "threshold": self.threshold,
            "frames_decoded": self.frames_decoded,
            "backbone_frames": self.backbone_frames,
            "windows": [
                {"start_s": w.start_s, "end_s": w.end_s,
                 "top_k": [{"label": label, "score": score} for label, score in w.top_k]}
                for w in self.windows
            ],
            "segments": [dataclasses.asdict(s) for s in self.segments],
        }


class TimelineClassifier:
    """An MRRN split for timelines: per-frame taps, then windows on gathered taps.

    `frame_taps` runs preprocessing, the ResNet and tap pooling on frames
    (and counts them in `backbone_frames`); `classify_window` runs each
    stream's SRU stack from a zero state, the time pooling, the heads and
    the fusion on one window's tap vectors. The two together equal
    `model.predict` on the clip (up to float rounding). The parts are the
    model's own layers, found through `backbone.tap_outputs`,
    `backbone.sru_stacks`, `heads` and `stream_fusion`.

    Args:
        model: an `MRRNVideoClassifier`.

    Raises:
        TypeError: `model` is not an `MRRNVideoClassifier`.

    Example:

    >>> import numpy as np
    >>> from mrrn_keras import MRRN
    >>> model = MRRN(3, backbone="resnet18", backbone_width=0.125,
    ...              sru_units=8, sru_layers=1)
    >>> classifier = TimelineClassifier(model)
    >>> clip = np.zeros((4, 32, 32, 3), "uint8")
    >>> taps = classifier.frame_taps(clip)
    >>> probabilities = classifier.classify_window(taps)
    >>> bool(np.allclose(probabilities, model.predict(clip[None], verbose=0)[0], atol=1e-5))
    True
    >>> classifier.backbone_frames
    4
    """

    def __init__(self, model):
        import keras

        from mrrn_keras.layers.time_pooling import TimePooling
        from mrrn_keras.model import MRRNVideoClassifier

        if not isinstance(model, MRRNVideoClassifier):
            raise TypeError(
                "TimelineClassifier needs an MRRNVideoClassifier. "
                f"Received: model of type {type(model).__name__}"
            )
        backbone = model.backbone
        self.model = model
        self.streams = tuple(model.streams)
        # Shares the model's preprocessing and trunk(s): frames -> {tap: (B, T, C)}.
        self._taps = keras.Model(backbone.inputs, backbone.tap_outputs)
        self._srus = backbone.sru_stacks
        self._pooling = TimePooling(backbone.time_pooling)
        self._heads = model.heads
        self._fusion = model.stream_fusion
        self._tap_graph = lambda frames: self._taps(frames, training=False)
        self._window_graph = self.window_probabilities
        if keras.backend.backend() == "tensorflow":
            # One trace for any number of frames and any window length (JAX runs eagerly).
            import tensorflow as tf

            channels = self.tap_channels
            self._tap_graph = tf.function(self._tap_graph, input_signature=[
                tf.TensorSpec([1, None, None, None, 3], tf.float32)])
            self._window_graph = tf.function(self._window_graph, input_signature=[
                {s: tf.TensorSpec([1, None, c], tf.float32) for s, c in channels.items()}])
        self.backbone_frames = 0

    @property
    def tap_channels(self) -> dict[str, int]:
        """`{stream: channels}` of the tap vectors."""
        return {s: int(self._taps.output[s].shape[-1]) for s in self.streams}

    def frame_taps(self, frames) -> dict[str, np.ndarray]:
        """The tap vectors of frames `(n, H, W, 3)`: `{stream: (n, channels)}`."""
        frames = np.asarray(frames, np.float32)  # uint8 values as floats: the same input
        # (n, H, W, 3) -> (1, n, H, W, 3): the frames as one clip, folded into the batch.
        taps = self._tap_graph(frames[None])
        self.backbone_frames += len(frames)
        return {s: np.asarray(taps[s])[0] for s in self.streams}

    def classify_window(self, taps: dict) -> np.ndarray:
        """Fused probabilities `(num_classes,)` of one window's taps `{stream: (T, C)}`."""
        # {stream: (T, C)} -> {stream: (1, T, C)}
        batch = {s: np.asarray(taps[s], np.float32)[None] for s in self.streams}
        return np.asarray(self._window_graph(batch))[0]

    def window_probabilities(self, taps: dict):
        """The fused probabilities `(B, K)` of tap sequences `{stream: (B, T, C)}`.

        Each stream's SRUs start from zero, as in the one-shot model; this
        is what the exported `window` signature traces.
        """
        probabilities = []
        for stream in self.streams:
            h = taps[stream]  # (B, T, C_tap)
            for sru in self._srus[stream]:
                h = sru(h, training=False)  # (B, T, U)
            probabilities.append(self._heads[stream](self._pooling(h)))  # (B, K)
        return self._fusion(probabilities)


def iter_windows(
    classifier,
    frames: Iterable[tuple[float, np.ndarray]],
    *,
    clip_frames: int,
    sampling: str = "segments",
    window: float = DEFAULT_WINDOW_S,
    stride: float | None = None,
    labels=None,
    top_k: int = 3,
) -> Iterator[Window]:
    """Classifies the windows of a stream of timed frames as they complete.

    Window `k` covers `[k * stride, k * stride + window)` seconds. It is
    classified once a frame at or after its end arrives, or the stream ends
    (then only windows that end within the stream, or, for a stream shorter
    than one window, one window over all of it). Windows with no frame are
    skipped. Only frames a window samples go through
    `classifier.frame_taps`, each once.

    Args:
        classifier: a `TimelineClassifier`, or an object with its
            `frame_taps` and `classify_window` (an exported model's runner,
            `mrrn_keras.deploy.timeline.ExportedTimeline`).
        frames: `(seconds, uint8 frame (H, W, 3))` in time order, as
            `mrrn_keras.data.video.iter_frames` yields them.
        clip_frames: int >= 1. Frames per window's clip (the entry's
            `input["frames"]`).
        sampling: str. How they are placed in the window (the entry's
            `input["sampling"]`): `"segments"`, `"uniform"` or `"dense"`.
        window: float > 0. Window length in seconds.
        stride: float > 0 or None. Seconds between window starts. Defaults
            to a quarter of `window`.
        labels: class names, one per output; None gives `class_<i>`.
        top_k: int >= 1. Labels kept per window.

    Yields:
        `Window` records in time order.

    Raises:
        ValueError: an invalid argument.
    """
    window, stride = _check_times(window, stride)
    clip_frames = check_int("clip_frames", clip_frames)
    top_k = check_int("top_k", top_k)
    from mrrn_keras.data.sampling import SAMPLING_MODES

    check_choice("sampling", sampling, SAMPLING_MODES)
    return _windows(classifier, frames, clip_frames, sampling, window, stride, labels, top_k)


def _windows(classifier, frames, clip_frames, sampling, window, stride, labels, top_k):
    pending = collections.deque()  # (index, seconds) of frames a future window may hold
    pixels = {}  # index -> frame, for pending frames not yet through the backbone
    taps = {}  # index -> {stream: (C,)}: the ring buffer
    k, emitted, last, previous = 0, 0, None, None

    def classify(start, end):
        chosen = [pending[p][0] for p in sample_indices(len(pending), clip_frames, mode=sampling)]
        new = sorted({i for i in chosen if i not in taps})
        if new:
            computed = classifier.frame_taps(np.stack([pixels.pop(i) for i in new]))
            for row, i in enumerate(new):
                taps[i] = {s: v[row] for s, v in computed.items()}
        gathered = {s: np.stack([taps[i][s] for i in chosen]) for s in taps[chosen[0]]}
        row = np.asarray(classifier.classify_window(gathered))
        names = labels or [f"class_{j}" for j in range(row.shape[-1])]
        order = np.argsort(-row, kind="stable")[:top_k]
        return Window(float(start), float(end), tuple((names[j], float(row[j])) for j in order),
                      tuple(int(i) for i in chosen))

    def advance():
        # Forget what no window from k on can hold.
        while pending and pending[0][1] < k * stride - _EPS:
            index, _ = pending.popleft()
            pixels.pop(index, None)
            taps.pop(index, None)

    for index, (seconds, frame) in enumerate(frames):
        while seconds >= k * stride + window - _EPS:
            if pending:
                yield classify(k * stride, k * stride + window)
                emitted += 1
            k += 1
            advance()
        previous, last = last, seconds
        if seconds >= k * stride - _EPS:
            pending.append((index, seconds))
            pixels[index] = frame
    if last is None:
        return
    # The last frame is shown until the next would be: one more frame gap.
    end_of_stream = last + ((last - previous) if previous is not None else window)
    while k * stride + window <= end_of_stream + 1e-6:
        advance()
        if pending and pending[0][1] < k * stride + window - _EPS:
            yield classify(k * stride, k * stride + window)
            emitted += 1
        k += 1
    if not emitted:
        k = 0
        advance()
        yield classify(0.0, end_of_stream)


def merge_segments(windows, *, stride: float, threshold: float = DEFAULT_THRESHOLD):
    """Consecutive windows with the same top label, scored at least `threshold`.

    Args:
        windows: `Window` records in time order, `stride` seconds apart.
        stride: float. Seconds between window starts.
        threshold: float in [0, 1]. Windows whose top score is below it
            belong to no segment.

    Returns:
        A tuple of `Segment`, in time order.

    Example:

    >>> ws = [Window(0.0, 2.0, (("a", 0.9),), (0,)), Window(1.0, 3.0, (("a", 0.7),), (1,)),
    ...       Window(2.0, 4.0, (("b", 0.8),), (2,))]
    >>> [str(s) for s in merge_segments(ws, stride=1.0)]
    ['0.00\u20132.50: a (0.80)', '2.50\u20134.00: b (0.80)']
    """
    threshold = _check_threshold(threshold)
    windows = list(windows)
    segments, run = [], []
    for window, span in zip(windows, _spans(windows, stride)):
        if run and (window.label != run[-1][0].label or window.score < threshold):
            segments.append(_segment(run))
            run = []
        if window.score >= threshold:
            run.append((window, span))
    if run:
        segments.append(_segment(run))
    return tuple(segments)


def _segment(run) -> Segment:
    scores = [w.score for w, _ in run]
    return Segment(run[0][1][0], run[-1][1][1], run[0][0].label,
                   float(np.mean(scores)), len(run))


def _spans(windows, stride):
    """The `(start, end)` each window speaks for: the stride around its centre."""
    spans = []
    for i, w in enumerate(windows):
        centre = (w.start_s + w.end_s) / 2
        start = w.start_s if i == 0 else max(w.start_s, centre - stride / 2)
        end = w.end_s if i == len(windows) - 1 else min(w.end_s, centre + stride / 2)
        spans.append((start, end))
    return spans


def timeline(
    path: PathLike,
    variant="mrrn_tiny.motion",
    *,
    window: float = DEFAULT_WINDOW_S,
    stride: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int = 3,
) -> Timeline:
    """Classifies a long video as a timeline of windows and segments.

    Each window of `window` seconds, one every `stride` seconds, is
    classified on its own frames: the variant's frames per clip placed in
    the window as its sampling says, with times from the stream's
    timestamps. Consecutive windows with the same top label scored at least
    `threshold` merge into segments `start-end: label (score)`. The video is
    decoded once, front to back; every frame used goes through the backbone
    once (see the module's doc).

    Args:
        path: the video file.
        variant: a zoo name, entry folder, URL, or a `.keras` file from
            `mrrn finetune`. Defaults to the bundled `mrrn_tiny.motion`.
        window: float > 0. Window length in seconds. Defaults to `2.0`.
        stride: float > 0 or None. Seconds between windows. Defaults to
            `window / 4`.
        threshold: float in [0, 1]. Defaults to `0.5`.
        top_k: int >= 1. Labels kept per window. Defaults to `3`.

    Returns:
        A `Timeline`.

    Raises:
        VideoError: the file cannot be read.
        ZooError, WeightsError: the variant cannot be loaded.
        ValueError: an invalid argument.

    Example:

    >>> import mrrn_keras
    >>> from mrrn_keras.predict import sample_clip_path
    >>> result = mrrn_keras.timeline(sample_clip_path(), window=2.0)
    >>> [str(s) for s in result.segments]
    ['0.00\u20132.00: MoveLeft (0.78)']
    """
    classifier, spec, names = _variant_classifier(os.fspath(variant))
    return run_timeline(
        classifier, path, size=(spec["height"], spec["width"]), clip_frames=spec["frames"],
        sampling=spec["sampling"], labels=names, window=window, stride=stride,
        threshold=threshold, top_k=top_k,
    )


def run_timeline(
    classifier,
    path: PathLike,
    *,
    size: tuple[int, int],
    clip_frames: int,
    sampling: str = "segments",
    labels=None,
    window: float = DEFAULT_WINDOW_S,
    stride: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int = 3,
) -> Timeline:
    """`timeline` with a classifier of one's own: a `TimelineClassifier` or an export's.

    Decodes `path` once at `size` (`iter_frames`) and feeds `iter_windows`.

    Args:
        classifier: a `TimelineClassifier`, or a
            `mrrn_keras.deploy.runtime.ExportedTimeline` (a streaming
            SavedModel or LiteRT file's `frame_taps` and `window`).
        path: the video file.
        size: `(height, width)` the frames are resized to.
        clip_frames, sampling, labels, top_k: as `iter_windows`.
        window, stride, threshold: as `timeline`.

    Returns:
        A `Timeline`.

    Raises:
        VideoError: the file cannot be read.
        ValueError: an invalid argument.

    Example:

    >>> from mrrn_keras import MRRN
    >>> from mrrn_keras.predict import sample_clip_path
    >>> model = MRRN(3, backbone="resnet18", backbone_width=0.125, sru_units=8, sru_layers=1)
    >>> result = run_timeline(TimelineClassifier(model), sample_clip_path(), size=(32, 32),
    ...                       clip_frames=4, window=1.0)
    >>> result.backbone_frames <= result.frames_decoded
    True
    """
    window, stride, threshold = check_settings(window, stride, threshold)
    start = classifier.backbone_frames
    decoded = [0]

    def counted():
        for item in iter_frames(path, size=size):
            decoded[0] += 1
            yield item

    windows = tuple(iter_windows(
        classifier, counted(), clip_frames=clip_frames, sampling=sampling,
        window=window, stride=stride, labels=labels, top_k=top_k,
    ))
    return Timeline(
        os.fspath(path), window, stride, threshold, windows,
        merge_segments(windows, stride=stride, threshold=threshold),
        decoded[0], classifier.backbone_frames - start,
    )


@functools.lru_cache(maxsize=4)
def _variant_classifier(variant: str):
    """A variant's `TimelineClassifier`, input spec and labels, built once per process."""
    from mrrn_keras.predict import _inference_model

    model, spec, _, labels = _inference_model(variant)
    return TimelineClassifier(model), spec, resolve_labels(labels, model, None, model.num_classes)


def check_settings(window, stride=None, threshold=DEFAULT_THRESHOLD) -> tuple[float, float, float]:
    """Checks a timeline's settings; what `timeline` and `mrrn predict --timeline` accept.

    Args:
        window: float > 0. Window length in seconds.
        stride: float > 0 or None (a quarter of `window`).
        threshold: float in [0, 1].

    Returns:
        `(window, stride, threshold)` as floats, the stride filled in.

    Raises:
        ValueError: a setting out of range, naming it and its value.

    Example:

    >>> check_settings(2, None, 0.5)
    (2.0, 0.5, 0.5)
    """
    return (*_check_times(window, stride), _check_threshold(threshold))


def _check_times(window, stride):
    stride = window / 4 if stride is None and _is_positive(window) else stride
    for name, value in (("window", window), ("stride", stride)):
        if not _is_positive(value):
            raise ValueError(f"`{name}` must be a positive number of seconds. "
                             f"Received: {name}={value!r}")
    return float(window), float(stride)


def _is_positive(value) -> bool:
    return (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _check_threshold(threshold) -> float:
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number))
            or not 0.0 <= threshold <= 1.0):
        raise ValueError(f"`threshold` must be in [0, 1]. Received: threshold={threshold!r}")
    return float(threshold)
