"""The TensorFlow-free clip loader, and one call that picks the adapter for the backend.

`ClipLoader` serves a `ClipSource` as a `keras.utils.PyDataset`, which
`model.fit`, `evaluate` and `predict` take under every Keras backend (JAX,
PyTorch, TensorFlow): batch `i` of the current epoch is
`source.batch(i, epoch)`, decoded by `workers` threads (PyAV and Pillow
release the GIL while they decode and resize; see docs/benchmarks.md for
why threads and not processes or grain). The epoch advances at each
`on_epoch_end`, so an epoch's clips do not depend on how many workers read
them, and `set_epoch` puts a resumed run back where it was.

`make_clip_data` returns the tf.data adapter
(`mrrn_keras.data.pipeline.clip_dataset`) under the TensorFlow backend,
where tf.distribute needs it, and a `ClipLoader` otherwise; the batches are
the same for the same seed.

Example:

>>> import tempfile, pathlib
>>> import numpy as np
>>> from mrrn_keras.data.clips import ClipSource, ClipSpec
>>> from mrrn_keras.data.datasets import VideoIndex
>>> from mrrn_keras.data.video import write_video
>>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
>>> write_video(path, np.zeros((12, 40, 48, 3), np.uint8))
>>> index = VideoIndex((str(path),) * 2, (0, 1), ("a", "b"))
>>> loader = ClipLoader(ClipSource(index, ClipSpec(clip_len=4, size=32), training=False,
...                                batch_size=2))
>>> frames, labels, video_ids = loader[0]
>>> frames.shape, labels.tolist(), video_ids.tolist()
((2, 4, 32, 32, 3), [0, 1], [0, 1])
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import keras

from mrrn_keras.data.clips import Augment, ClipSource, ClipSpec, SkippedVideos, default_workers
from mrrn_keras.validation import check_int

ADAPTERS = ("auto", "tf.data", "pydataset")


class ClipLoader(keras.utils.PyDataset):
    """A `ClipSource` as a `keras.utils.PyDataset` (no TensorFlow needed).

    Args:
        source: a `ClipSource`.
        workers: int. Threads decoding batches ahead of the model. Defaults
            to the CPUs this process may use.
        max_queue_size: int. Batches decoded ahead. Defaults to 8.
        epoch: int. The epoch the next pass reads (a resumed run passes its
            initial epoch). Defaults to 0.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from mrrn_keras.data.clips import ClipSource, ClipSpec
    >>> from mrrn_keras.data.datasets import VideoIndex
    >>> from mrrn_keras.data.video import write_video
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((12, 40, 48, 3), np.uint8))
    >>> index = VideoIndex((str(path),) * 4, (0, 1, 0, 1), ("a", "b"))
    >>> source = ClipSource(index, ClipSpec(clip_len=4, size=32), training=True,
    ...                     batch_size=2, seed=1)
    >>> loader = ClipLoader(source, workers=1)
    >>> len(loader), loader[1][0].shape
    (2, (2, 4, 32, 32, 3))
    >>> loader.on_epoch_end()
    >>> loader.epoch
    1
    """

    def __init__(self, source: ClipSource, *, workers: int | None = None,
                 max_queue_size: int = 8, epoch: int = 0):
        if not isinstance(source, ClipSource):
            raise ValueError(f"`source` must be a ClipSource. Received: source={source!r}")
        workers = default_workers() if workers is None else check_int("workers", workers)
        check_int("max_queue_size", max_queue_size)
        super().__init__(workers=workers, use_multiprocessing=False,
                         max_queue_size=max_queue_size)
        self.source = source
        self.epoch = self._check_epoch(epoch)

    @staticmethod
    def _check_epoch(epoch) -> int:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"`epoch` must be an integer >= 0. Received: epoch={epoch!r}")
        return epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.source.batch(index, self.epoch)

    def __iter__(self) -> Iterator[tuple]:
        """The batches of one pass, in order, decoded `workers` at a time.

        What evaluation loops over (`mrrn_keras.training.evaluate_videos`);
        `fit` and `predict` run their own workers. An evaluation batch whose
        every video was unreadable (and skipped) is left out.
        """
        with ThreadPoolExecutor(self.workers) as pool:
            pending = collections.deque()
            for index in range(len(self)):
                pending.append(pool.submit(self.__getitem__, index))
                if len(pending) > self.max_queue_size:
                    yield from self._nonempty(pending.popleft().result())
            while pending:
                yield from self._nonempty(pending.popleft().result())

    @staticmethod
    def _nonempty(batch):
        if len(batch[0]):
            yield batch

    def on_epoch_end(self) -> None:
        if self.source.training:
            self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        """Makes the next pass read epoch `epoch` (a resumed run's initial epoch)."""
        self.epoch = self._check_epoch(epoch)


def make_clip_data(
    source,
    spec: ClipSpec,
    *,
    training: bool,
    batch_size: int,
    augment: Augment | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    on_error: str = "skip",
    skipped: SkippedVideos | None = None,
    label_keys: Sequence[str] | None = None,
    with_video_ids: bool | None = None,
    seed: int | None = None,
    adapter: str = "auto",
    workers: int | None = None,
    epoch: int = 0,
):
    """Batches of clips for `fit`/`evaluate`/`predict` on the running backend.

    Args:
        source, spec, training, batch_size, augment, num_clips, num_crops,
        on_error, skipped, label_keys, with_video_ids, seed: see
            `mrrn_keras.data.clips.ClipSource`.
        adapter: `"auto"` (tf.data under the TensorFlow backend, a
            `ClipLoader` otherwise), `"tf.data"` or `"pydataset"`.
        workers: decoding threads of a `ClipLoader`. Defaults to the CPUs.
        epoch: the epoch the first pass reads (resumed runs).

    Returns:
        A `tf.data.Dataset` or a `ClipLoader`, both yielding
        `(frames, labels[, video_ids])`.

    Raises:
        ValueError: bad arguments, or `"tf.data"` asked for where
            TensorFlow cannot be imported.

    Example:

    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from mrrn_keras.data.datasets import VideoIndex
    >>> from mrrn_keras.data.video import write_video
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.avi"
    >>> write_video(path, np.zeros((12, 40, 48, 3), np.uint8))
    >>> index = VideoIndex((str(path),), (0,), ("a",))
    >>> data = make_clip_data(index, ClipSpec(clip_len=4, size=32), training=False,
    ...                       batch_size=1, adapter="pydataset")
    >>> type(data).__name__, data[0][0].shape
    ('ClipLoader', (1, 4, 32, 32, 3))
    """
    if adapter not in ADAPTERS:
        raise ValueError(f"`adapter` must be one of {ADAPTERS}. Received: adapter={adapter!r}")
    clips = ClipSource(
        source, spec, training=training, batch_size=batch_size, augment=augment,
        num_clips=num_clips, num_crops=num_crops, on_error=on_error, skipped=skipped,
        label_keys=label_keys, with_video_ids=with_video_ids, seed=seed,
    )
    if adapter == "auto":
        adapter = "tf.data" if keras.backend.backend() == "tensorflow" else "pydataset"
    if adapter == "pydataset":
        return ClipLoader(clips, workers=workers, epoch=epoch)
    try:
        from mrrn_keras.data.pipeline import tf_batches
    except ImportError as err:
        raise ValueError(
            f"adapter='tf.data' needs TensorFlow, which cannot be imported here ({err}); use "
            "adapter='pydataset'"
        ) from err
    return tf_batches(clips, epoch=epoch, workers=workers)
