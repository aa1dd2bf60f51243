"""Live classification: each window of the latest frames judged on its own.

`classify_live` reads a camera, a stream URL, a FIFO or a paced file
through `mrrn_keras.data.live.LiveSource` and classifies windows of
`window` frames (kept at the model's frame rate): the classifier is reset
before each window, so an answer is about those frames alone, not diluted by
everything seen since the start. When the model is slower than the source,
the frames it had no time for are dropped, oldest first, so each window is
the latest one and the latency stays bounded. Answers are averaged over the
last `smooth` seconds and named only when the average reaches `threshold`.

The classifier is anything with `reset()` and `update(frames) ->
probabilities` (`mrrn_keras.streaming.StreamingClassifier`,
`mrrn_keras.deploy.runtime.ExportedStream`); this module imports neither
Keras nor TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from mrrn_keras.data.live import DEFAULT_OPEN_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S, LiveSource
from mrrn_keras.validation import check_int, check_number


@dataclasses.dataclass(frozen=True)
class LiveResult:
    """The answer for one window of a live source.

    Attributes:
        time: float. Source seconds of the window's newest frame.
        label: str or None. The top class of the smoothed probabilities;
            None when its probability is under the threshold.
        score: float. The smoothed probability of the top class.
        top_k: `((label, probability), ...)`, smoothed, best first.
        captured: float. `time.monotonic()` when the window's newest frame
            was captured: the latency of an answer is the time it is shown
            minus this.
        dropped: int. Frames dropped so far (the model had no time for them).
        frames: int. Frames read so far (kept at the model's rate).
    """

    time: float
    label: str | None
    score: float
    top_k: tuple
    captured: float
    dropped: int
    frames: int


class Smoother:
    """The mean of the probabilities of the last `seconds` of windows.

    Args:
        seconds: float >= 0. Windows whose time is within this many seconds
            of the newest one are averaged; 0 keeps the newest alone.

    Example:

    >>> smoother = Smoother(1.0)
    >>> smoother.add(0.5, np.array([1.0, 0.0])).tolist()
    [1.0, 0.0]
    >>> smoother.add(1.0, np.array([0.0, 1.0])).tolist()
    [0.5, 0.5]
    >>> smoother.add(2.0, np.array([0.0, 1.0])).tolist()
    [0.0, 1.0]
    """

    def __init__(self, seconds: float):
        self.seconds = check_number("seconds", seconds, zero=True)
        self._recent = collections.deque()

    def add(self, time: float, probabilities: np.ndarray) -> np.ndarray:
        """Adds a window's probabilities; returns the mean over the last `seconds`."""
        self._recent.append((time, np.asarray(probabilities, np.float64)))
        while self._recent[0][0] <= time - self.seconds and len(self._recent) > 1:
            self._recent.popleft()
        return np.mean([p for _, p in self._recent], axis=0)


def classify_live(
    classifier,
    source,
    *,
    window: int,
    size,
    labels: Sequence[str] | None = None,
    fps: float | None = None,
    realtime: bool = False,
    smooth: float = 0.0,
    threshold: float = 0.0,
    top_k: int = 1,
    open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    stop: threading.Event | None = None,
    warm_up: bool = True,
) -> Iterator[LiveResult]:
    """Classifies a live source window by window, as the frames come.

    Args:
        classifier: has `reset()` and `update((1, T, H, W, 3) uint8) ->
            (1, K)` probabilities: a `StreamingClassifier` or an
            `ExportedStream`.
        source: a camera device (`/dev/video0`), a stream URL (rtsp://,
            http://, ...), a FIFO, or a video file.
        window: int >= 1. Frames per window (the model's frames per clip).
        size: `(height, width)` the frames are resized to.
        labels: class names, or None for `class_<i>`.
        fps: float > 0 or None. The rate frames are kept at (the model's);
            None keeps every frame.
        realtime: bool. Read a file at its own frame rate, as a camera
            delivers frames; frames then drop when the model falls behind.
        smooth: float >= 0. Seconds of windows averaged. Defaults to `0`.
        threshold: float in [0, 1]. A smoothed probability under it gives
            `label=None`. Defaults to `0`.
        top_k: int >= 1. Classes in each result's `top_k`.
        open_timeout: float > 0. Seconds the source has to open.
        read_timeout: float > 0. Seconds the source has for each next frame.
        stop: an event; once set, the results end after the current window.
        warm_up: bool. Run the classifier once on a black window before the
            source opens, so that building its graph is not paid by the
            first frames (which a live source would drop). Defaults to `True`.

    Yields:
        One `LiveResult` per window, until the source ends (a last window
        shorter than `window` is not classified), `stop` is set or the
        generator is closed (which stops the reader).

    Raises:
        SourceError: the source did not open, stalled or failed.
        ValueError: an invalid window, size, fps, smooth, threshold or top_k.

    Example:

    >>> import tempfile, pathlib
    >>> from mrrn_keras.data.video import write_video
    >>> class Brightness:  # a stand-in model: "bright" vs "dark"
    ...     def reset(self): pass
    ...     def update(self, frames):
    ...         p = frames.mean() / 255
    ...         return np.array([[1 - p, p]])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.full((8, 32, 32, 3), 255, np.uint8), fps=8)
    >>> results = classify_live(Brightness(), path, window=4, size=(32, 32),
    ...                         labels=["dark", "bright"], threshold=0.9, warm_up=False)
    >>> [(r.time, r.label) for r in results]
    [(0.375, 'bright'), (0.875, 'bright')]
    """
    window = check_int("window", window)
    top_k = check_int("top_k", top_k)
    smoother = Smoother(check_number("smooth", smooth, zero=True))
    ok = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not ok or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be a number in [0, 1]. Received: threshold={threshold!r}")
    live = LiveSource(source, size=size, fps=fps, realtime=realtime, capacity=window,
                      open_timeout=open_timeout, read_timeout=read_timeout)
    # Arguments are checked above, when called; the source opens on the first result.
    return _results(classifier, live, window=window, smoother=smoother, labels=labels,
                    threshold=threshold, top_k=top_k, stop=stop, warm_up=warm_up)


def _results(classifier, live, *, window, smoother, labels, threshold, top_k, stop, warm_up):
    if warm_up:
        classifier.reset()
        classifier.update(np.zeros((1, window, *live.size, 3), np.uint8))
    with live:
        while not (stop is not None and stop.is_set()):
            frames = live.take(window, stop=stop)
            if len(frames) < window:
                return
            clip = np.stack([frame.image for frame in frames])[None]  # (1, T, H, W, 3)
            classifier.reset()
            probabilities = np.asarray(classifier.update(clip))[0]
            mean = smoother.add(frames[-1].time, probabilities)
            names = labels or [f"class_{i}" for i in range(mean.shape[-1])]
            order = np.argsort(-mean, kind="stable")[:top_k]
            best = float(mean[order[0]])
            yield LiveResult(
                time=frames[-1].time,
                label=names[order[0]] if best >= threshold else None,
                score=best,
                top_k=tuple((names[j], float(mean[j])) for j in order),
                captured=frames[-1].captured,
                dropped=live.dropped,
                frames=live.read,
            )
