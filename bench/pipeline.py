"""Clip loading throughput per adapter and worker count, beside training consumption; prints JSON.

For each clip shape (`--shapes`, default 8x64 and 12x224: frames x side),
each source (raw 320x240 mpeg4 .avi videos, UCF-101's format, and the
frame cache `mrrn prepare` writes) and each adapter:

- `tf.data`: `mrrn_keras.data.pipeline.clip_dataset` (only where
  TensorFlow imports),
- `pydataset`: `mrrn_keras.data.loader.ClipLoader`, the TensorFlow-free
  loader (threads),
- `pydataset-processes`: the same `ClipSource` in a
  `keras.utils.PyDataset` with `use_multiprocessing=True` (the
  alternative the loader did not take),
- `grain`: the same `ClipSource` behind a `grain.MapDataset` with a thread
  pool (only where `grain` imports),

with 1 and 2 workers, it reports the clips/s that `model.fit` receives
(a model that only pools the clip, so the input side is what is timed;
one warm-up epoch, then `--epochs` timed epochs of training batches with
augmentation), and the 2-worker / 1-worker ratio. Beside them: clips/s a
training step of an MRRN consumes on this machine at the same shape, on
in-memory clips.

    python bench/pipeline.py                          # defaults below
    python bench/pipeline.py --videos 4 --clips 16 --shapes 8x64 --models tiny  # quick run
    KERAS_BACKEND=jax python bench/pipeline.py        # no tf.data column
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrrn_keras import MRRN  # noqa: E402
from mrrn_keras.data.cache import prepare_cache  # noqa: E402
from mrrn_keras.data.clips import Augment, ClipSource, ClipSpec  # noqa: E402
from mrrn_keras.data.datasets import VideoIndex  # noqa: E402
from mrrn_keras.data.loader import ClipLoader  # noqa: E402
from mrrn_keras.data.video import write_video  # noqa: E402
from mrrn_keras.training import compile_for_streams, repeat_labels  # noqa: E402

MODELS = {
    # The bundled zoo architecture (mrrn_tiny.motion).
    "tiny": dict(backbone="resnet18", backbone_width=0.25, sru_units=64, sru_layers=2),
    # A full-width ResNet-18 MRRN with paper-style SRUs, narrower than the paper's 1024.
    "r18": dict(backbone="resnet18", backbone_width=1.0, sru_units=256, sru_layers=2),
}


def make_videos(root, count, frames, height=240, width=320, clips=None):
    """`count` 320x240 mpeg4 .avi files of smooth moving content, 4 labels.

    With `clips`, the index lists the files round-robin `clips` times in
    all (epochs long enough that a loader's start-up at each epoch is a
    small part of it, as in a real dataset).
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(count):
        t = np.arange(frames, dtype=np.float32)[:, None, None]
        red = 128 + 90 * np.sin(xx / width * np.pi * 3 + t * 0.2 + i)
        green = 128 + 90 * np.cos(yy / height * np.pi * 2 - t * 0.15)
        blue = np.broadcast_to(60 + 2 * t + i, red.shape)
        clip = np.stack([red, green, blue], -1).round().astype(np.uint8)
        path = root / f"v{i:03d}.avi"
        write_video(path, clip, fps=25)
        paths.append(str(path))
    paths = [paths[i % count] for i in range(clips or count)]
    return VideoIndex(tuple(paths), tuple(i % 4 for i in range(len(paths))), ("a", "b", "c", "d"))


class _ProcessLoader(keras.utils.PyDataset):
    """A ClipSource in a PyDataset with worker processes (the road not taken)."""

    def __init__(self, source, workers):
        super().__init__(workers=workers, use_multiprocessing=True, max_queue_size=8)
        self.source = source
        self.epoch = 0

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        return self.source.batch(index, self.epoch)

    def on_epoch_end(self):
        self.epoch += 1


def _grain_data(source, workers, epochs):
    import grain

    steps = len(source)
    dataset = grain.MapDataset.range(steps * epochs).map(
        lambda i: source.batch(i % steps, i // steps))
    options = grain.ReadOptions(num_threads=workers, prefetch_buffer_size=8)
    return dataset.to_iter_dataset(read_options=options)


def _adapters():
    names = []
    try:
        import tensorflow  # noqa: F401

        names.append("tf.data")
    except ImportError:
        pass
    names += ["pydataset", "pydataset-processes"]
    try:
        import grain  # noqa: F401

        names.append("grain")
    except ImportError:
        pass
    return names


class _EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def on_train_begin(self, logs=None):
        self.times = []


def _pooling_model(spec):
    inputs = keras.Input((spec.clip_len, spec.size, spec.size, 3), dtype="uint8")
    x = keras.layers.GlobalAveragePooling3D()(keras.ops.cast(inputs, "float32"))
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def fit_rate(adapter, source, spec, workers, epochs, batch_size):
    """Clips/s `fit` receives over `epochs` timed epochs after one warm-up epoch."""
    clips = ClipSource(source, spec, training=True, batch_size=batch_size, augment=Augment(),
                       seed=0)
    steps = len(clips)
    if adapter == "tf.data":
        from mrrn_keras.data.pipeline import tf_batches

        data = tf_batches(clips, workers=workers).repeat()
        kwargs = {"steps_per_epoch": steps}
    elif adapter == "pydataset":
        data, kwargs = ClipLoader(clips, workers=workers), {}
    elif adapter == "pydataset-processes":
        data, kwargs = _ProcessLoader(clips, workers), {}
    else:
        data, kwargs = _grain_data(clips, workers, epochs + 1), {"steps_per_epoch": steps}
    times = _EpochTimes()
    _pooling_model(spec).fit(data, epochs=epochs + 1, verbose=0, callbacks=[times], **kwargs)
    return epochs * steps * batch_size / sum(times.times[1:])


def train_rate(arch, spec, batch_size, steps):
    """Clips/s of MRRN training steps on in-memory clips, and its parameter count."""
    model = MRRN(4, stream_outputs=True, image_size=(spec.size, spec.size), **arch)
    compile_for_streams(model, keras.optimizers.AdamW(1e-3))
    x = np.random.default_rng(0).integers(
        0, 255, (batch_size, spec.clip_len, spec.size, spec.size, 3), dtype=np.uint8)
    y = repeat_labels(model, np.zeros(batch_size, np.int32))
    model.train_on_batch(x, y)  # compile
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - start), model.count_params()


def _shape(text):
    frames, size = (int(part) for part in text.split("x"))
    return frames, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=100, help="frames per generated video")
    parser.add_argument("--clips", type=int, default=96, help="videos listed per epoch (files repeat)")
    parser.add_argument("--shapes", default="8x64,12x224", help="clip frames x side, comma-separated")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per measurement")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--adapters", default=None, help="default: every one that imports here")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per model")
    parser.add_argument("--models", default="tiny,r18", help="'' for none")
    args = parser.parse_args()
    adapters = args.adapters.split(",") if args.adapters else _adapters()
    workers = [int(w) for w in args.workers.split(",")]
    result = {
        "backend": keras.backend.backend(),
        "cpu_cores": os.cpu_count(),
        "source_video": f"320x240 mpeg4 avi, {args.frames} frames, {args.videos} files",
        "clips_per_epoch": args.clips,
        "batch_size": args.batch_size,
        "loader_clips_per_s": {},
        "train_clips_per_s": {},
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        index = make_videos(tmp, args.videos, args.frames, clips=args.clips)
        for text in args.shapes.split(","):
            frames, size = _shape(text)
            short_side = max(size, 72) + size // 7
            spec = ClipSpec(clip_len=frames, size=size, short_side=short_side)
            start = time.perf_counter()
            cache = prepare_cache(index, tmp / f"cache{size}", short_side=short_side, workers=2)
            rows = {"prepare_cache_videos_per_s": round(len(index) / (time.perf_counter() - start), 2)}
            for source_name, source in (("raw_video", index), ("frame_cache", cache)):
                for adapter in adapters:
                    rates = {w: fit_rate(adapter, source, spec, w, args.epochs, args.batch_size)
                             for w in workers}
                    row = {f"workers_{w}": round(rate, 1) for w, rate in rates.items()}
                    if len(workers) > 1:
                        row["scaling"] = round(rates[workers[-1]] / rates[workers[0]], 2)
                    rows[f"{source_name}/{adapter}"] = row
            result["loader_clips_per_s"][text] = rows
            if args.models:
                train = {}
                for name in args.models.split(","):
                    rate, params = train_rate(MODELS[name], spec, args.batch_size, args.steps)
                    train[name] = {"params": params, "clips_per_s": round(rate, 2)}
                result["train_clips_per_s"][text] = train
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
