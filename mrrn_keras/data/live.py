"""Live sources: a camera, a stream URL, a FIFO, or a file read at its own rate.

`LiveSource` decodes its source in a reader thread into a `LatestFrames`
buffer of a few frames. When a live source outruns the consumer the buffer
drops its oldest frame, so what the consumer takes next are the most recent
frames (the answer refers to the last second, not to a backlog) and the
drops are counted. A regular file read as fast as it decodes drops nothing:
the reader waits for room instead.

Nothing here waits without a deadline: opening must finish within
`open_timeout` seconds and, once open, a new frame must come within
`read_timeout` seconds, else `mrrn_keras.errors.SourceError` says which
source and what happened. A URL gets FFmpeg's own deadlines (PyAV's
`timeout=`); a FIFO is opened non-blocking and every read waits in `poll`
with a deadline (a FIFO nobody writes to blocks a plain `open()` for ever);
any other source is opened in the reader thread and watched from the
caller's. Importing this module loads neither PyAV nor NumPy (the `mrrn`
parser reads its defaults); reading does.

Example:

>>> import tempfile, pathlib
>>> import numpy as np
>>> from mrrn_keras.data.video import write_video
>>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
>>> write_video(path, np.zeros((6, 32, 32, 3), np.uint8), fps=30)
>>> with LiveSource(path, size=(32, 32), capacity=4) as source:
...     [len(source.take(4)), len(source.take(4)), len(source.take(4))]
[4, 2, 0]
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import select
import stat
import threading
import time

from mrrn_keras.data.video import upright_rgb
from mrrn_keras.errors import SourceError
from mrrn_keras.validation import check_image_size, check_int, check_number

DEFAULT_OPEN_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 10.0
# How long the caller waits past `open_timeout` or `read_timeout` for the
# reader thread's own (more specific) error before giving its own.
_GRACE_S = 1.0
# The longest a wait sleeps before looking at a caller's stop event again.
_STOP_POLL_S = 0.1


@dataclasses.dataclass(frozen=True)
class LiveFrame:
    """One frame of a live source.

    Attributes:
        time: float. Seconds since the source's first frame, from its
            timestamps (the reader's clock where it has none).
        captured: float. `time.monotonic()` when the frame was read (for a
            paced file: when it was due), the start of its latency.
        image: uint8 array `(H, W, 3)`, RGB.
    """

    time: float
    captured: float
    image: np.ndarray


class LatestFrames:
    """A bounded, thread-safe buffer between one producer and one consumer.

    With `drop=True`, `put` on a full buffer drops the oldest item (counted
    in `dropped`); with `drop=False` it waits for room. `take(n)` waits for
    `n` items and removes the `n` oldest.

    Args:
        capacity: int >= 1. Items held at most.
        drop: bool. Drop the oldest item when full (True) or make the
            producer wait (False). Defaults to `True`.

    Example:

    >>> frames = LatestFrames(3)
    >>> for i in range(5):
    ...     _ = frames.put(i)
    >>> frames.dropped, frames.take(3, timeout=1.0)
    (2, [2, 3, 4])
    """

    def __init__(self, capacity: int, *, drop: bool = True):
        self.capacity = check_int("capacity", capacity)
        self.drop = bool(drop)
        self.dropped = 0
        self.received = 0
        self._items = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._error = None

    def put(self, item) -> bool:
        """Adds `item`; returns False (and keeps nothing) once the buffer is closed."""
        with self._cond:
            while not self.drop and len(self._items) >= self.capacity and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.received += 1
            self._cond.notify_all()
            return True

    def close(self, error: BaseException | None = None) -> None:
        """Ends the buffer: no more puts; `take` raises `error` when one is given."""
        with self._cond:
            if not self._closed:
                self._closed, self._error = True, error
            self._cond.notify_all()

    def take(self, n: int, *, timeout: float, stop: threading.Event | None = None) -> list:
        """Waits for `n` items and returns the `n` oldest, removed.

        Args:
            n: int >= 1. Items wanted.
            timeout: float > 0. The longest wait for the next item: the
                deadline restarts whenever an item arrives.
            stop: an event that ends the wait early (returns `[]`).

        Returns:
            `n` items; fewer (maybe none) once the buffer is closed without
            an error or `stop` is set.

        Raises:
            TimeoutError: no item came for `timeout` seconds.
            BaseException: the error the buffer was closed with.
        """
        n = check_int("n", n)
        timeout = check_number("timeout", timeout)
        with self._cond:
            deadline = time.monotonic() + timeout
            seen = self.received
            while len(self._items) < n and not self._closed:
                if stop is not None and stop.is_set():
                    return []
                if self.received != seen:
                    deadline, seen = time.monotonic() + timeout, self.received
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no new item for {timeout:g} s")
                self._cond.wait(min(remaining, _STOP_POLL_S))
            if self._error is not None:
                raise self._error
            count = min(n, len(self._items))
            taken = [self._items.popleft() for _ in range(count)]
            self._cond.notify_all()
            return taken


class _FifoFile(io.RawIOBase):
    """A FIFO read without blocking: each read waits in `poll` under a deadline.

    Reads before `mark_opened()` share the open deadline; later ones each get
    `read_timeout`. A missed deadline raises `SourceError` once; later reads
    return end of file, so FFmpeg winds down quietly.
    """

    def __init__(self, path: str, *, open_timeout: float, read_timeout: float):
        super().__init__()
        self._name = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._open_deadline = time.monotonic() + open_timeout
        self._open_timeout, self._read_timeout = open_timeout, read_timeout
        self._opened = False
        self.error = None

    def mark_opened(self) -> None:
        self._opened = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.error is not None:
            return 0
        deadline = self._open_deadline if not self._opened else (
            time.monotonic() + self._read_timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poll.poll(max(1, int(remaining * 1000))):
                if time.monotonic() < deadline:
                    continue
                self.error = SourceError(self._name, (
                    f"no data within {self._read_timeout:g} s (the writer stalled)"
                    if self._opened else
                    f"no data within {self._open_timeout:g} s (no writer, or it sends nothing)"
                ))
                raise self.error
            try:
                data = os.read(self._fd, len(buffer))
            except BlockingIOError:
                continue
            buffer[:len(data)] = data
            return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class LiveSource:
    """Reads a source in a thread into a `LatestFrames` buffer.

    Sources: a regular file (paced at its own frame rate with
    `realtime=True`), a FIFO, a camera device (`/dev/video*`, FFmpeg's
    `v4l2`), or anything FFmpeg opens by name (rtsp://, http://, ...).

    Args:
        source: str or path-like. What to read.
        size: `(height, width)` the frames are resized to.
        fps: float > 0 or None. Keep one frame per `1 / fps` seconds of the
            source's time (the rate a model was trained at); None keeps all.
        realtime: bool. Hand frames over no faster than their timestamps
            (a file then behaves as a camera would). Defaults to `False`.
        capacity: int >= 1. Frames buffered at most. Defaults to `8`.
        drop: bool or None. Drop the oldest frame when the buffer is full;
            None: drop for every source but a regular file read without
            `realtime`, which waits for room instead.
        open_timeout: float > 0. Seconds the source has to open.
        read_timeout: float > 0. Seconds the source has for each next frame.

    Attributes:
        opened: bool. Whether the source has opened.
        dropped: int. Frames read but dropped before they were taken.
        read: int. Frames put into the buffer (kept by `fps`).
    """

    def __init__(
        self,
        source,
        *,
        size,
        fps: float | None = None,
        realtime: bool = False,
        capacity: int = 8,
        drop: bool | None = None,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    ):
        self.name = os.fspath(source)
        self.size = check_image_size("size", size)
        self.fps = None if fps is None else check_number("fps", fps)
        self.realtime = bool(realtime)
        self.open_timeout = check_number("open_timeout", open_timeout)
        self.read_timeout = check_number("read_timeout", read_timeout)
        self.is_file = os.path.isfile(self.name)
        if drop is None:
            drop = self.realtime or not self.is_file
        self._buffer = LatestFrames(capacity, drop=drop)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.opened = False
        self._failure = None
        self._thread = None

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def read(self) -> int:
        return self._buffer.received

    def __enter__(self) -> LiveSource:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Starts the reader and waits (at most `open_timeout`) for the source to open.

        Raises:
            SourceError: the source cannot be opened, has no video stream
                or did not open in time.
        """
        self._thread = threading.Thread(target=self._read, name=f"LiveSource({self.name})",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(self.open_timeout + _GRACE_S):
            self.close()
            raise SourceError(self.name, f"did not open within {self.open_timeout:g} s")
        if not self.opened:
            self.close()
            raise self._failure or SourceError(self.name, "closed before it opened")

    def take(self, n: int, *, stop: threading.Event | None = None) -> list[LiveFrame]:
        """The next `n` frames (the `n` most recent when the source outran the caller).

        Args:
            n: int >= 1. Frames wanted.
            stop: an event that ends the wait early.

        Returns:
            A list of `n` `LiveFrame`s; fewer, maybe none, once the source
            has ended or `stop` is set.

        Raises:
            SourceError: no frame came for `read_timeout` seconds, or the
                source failed while being read.
        """
        try:
            # The reader's own deadlines (FFmpeg's, the FIFO's) say more; this
            # one also ends a source that trickles bytes but never a frame.
            return self._buffer.take(n, timeout=self.read_timeout + _GRACE_S, stop=stop)
        except TimeoutError:
            raise SourceError(self.name, (
                f"no frame for over {self.read_timeout:g} s (the source stalled or went away)"
            )) from None

    def close(self) -> None:
        """Stops the reader; frames not yet taken are discarded."""
        self._stop.set()
        self._buffer.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=_STOP_POLL_S)

    def _open_container(self):
        import av

        name, timeouts = self.name, (self.open_timeout, self.read_timeout)
        if self.is_file:
            return av.open(name, mode="r"), None
        if _is_fifo(name):
            fifo = _FifoFile(name, open_timeout=self.open_timeout, read_timeout=self.read_timeout)
            try:
                return av.open(fifo, mode="r"), fifo
            except BaseException:
                fifo.close()
                raise
        options = {"format": "v4l2"} if name.startswith("/dev/video") else {}
        return av.open(name, mode="r", timeout=timeouts, **options), None

    def _read(self) -> None:
        import av.error

        container = fifo = None
        error = None
        try:
            try:
                container, fifo = self._open_container()
            except (av.error.FFmpegError, OSError) as err:
                raise SourceError(self.name, f"cannot open the source ({_reason(err, self)})")
            if not container.streams.video:
                raise SourceError(self.name, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if fifo is not None:
                fifo.mark_opened()
            self.opened = True
            self._ready.set()
            self._pump(container, stream)
        except SourceError as err:
            error = err
        except (av.error.FFmpegError, OSError) as err:
            error = SourceError(self.name, (
                f"the source failed after {self._buffer.received} frames ({_reason(err, self)})"))
        except Exception as err:  # noqa: BLE001 -- the thread's last stop: the consumer raises it
            error = SourceError(self.name, f"reading failed ({type(err).__name__}: {err})")
        finally:
            if container is not None:
                container.close()
            if fifo is not None:
                error = fifo.error or error
                fifo.close()
            if self._stop.is_set():
                error = None
            self._failure = error
            self._buffer.close(error)
            self._ready.set()

    def _pump(self, container, stream) -> None:
        height, width = self.size
        rate = stream.average_rate or stream.guessed_rate
        step = 1.0 / self.fps if self.fps else 0.0
        origin = clock = next_time = None
        for index, frame in enumerate(container.decode(stream)):
            if self._stop.is_set():
                return
            now = time.monotonic()
            clock = now if clock is None else clock
            if frame.time is not None:
                seconds = frame.time
            else:
                seconds = index / float(rate) if rate else now - clock
            origin = seconds if origin is None else origin
            seconds -= origin
            if next_time is not None and seconds < next_time - 1e-6:
                continue  # between two kept frames at `fps`
            next_time = (seconds if next_time is None else next_time) + step
            while step and next_time <= seconds:
                next_time += step
            if self.realtime and self._stop.wait(max(0.0, clock + seconds - time.monotonic())):
                return
            image = upright_rgb(frame, (height, width))  # a phone stream's rotation applied
            captured = clock + seconds if self.realtime else time.monotonic()
            if not self._buffer.put(LiveFrame(seconds, captured, image)):
                return


def _reason(err: BaseException, source: LiveSource) -> str:
    """FFmpeg's error in one line; its interrupt (a missed deadline) said plainly."""
    import av.error

    if isinstance(err, av.error.ExitError):
        return (f"no data for {source.read_timeout:g} s" if source.opened else
                f"no answer within {source.open_timeout:g} s")
    return " ".join(str(err).split()) or type(err).__name__
