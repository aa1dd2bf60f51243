"""End-to-end training throughput of a zoo variant, as JSON: in-memory clips, and the loader.

Three numbers, clips per second, for `model.fit` of a zoo architecture
(`--variant`, default `mrrn_r34.paper`; random initial weights, the per-stream
losses of `mrrn_keras.finetune`) at `--frames` x `--size`² and `--batch`:

    consumption   fit on clips already in memory (what the accelerator can take)
    loader        the TensorFlow-free `ClipLoader` alone, decoding `--videos`
                  rendered `--video_size` mpeg4 videos with `--workers` threads
    fit_loader    fit reading through that loader (end to end)

and `loader_over_consumption` = loader / consumption: below 1 the decoding
starves the model. The first fit step (compilation) is not timed.

    python bench/train.py                                   # the GPU table's row
    bash bench/gpu.sh train                                 # the same on the GPU machine
    python bench/train.py --variant mrrn_tiny.motion --frames 4 --size 32 --batch 2 \\
        --steps 2 --videos 4 --video_size 64x48              # the CPU smoke test

Prints `{"backend", "tensorflow_imported", "devices", "variant", "frames",
"size", "batch", "steps", "workers", "video_size", "clips_per_s": {...},
"loader_over_consumption"}`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrrn_keras.data.clips import ClipSource, ClipSpec, default_workers  # noqa: E402
from mrrn_keras.data.datasets import VideoIndex  # noqa: E402
from mrrn_keras.data.loader import ClipLoader  # noqa: E402
from mrrn_keras.data.video import write_video  # noqa: E402
from mrrn_keras.distribute import make_strategy  # noqa: E402
from mrrn_keras.training import compile_for_streams, output_keys  # noqa: E402
from mrrn_keras.zoo import load_mrrn  # noqa: E402

NUM_CLASSES = 101


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="mrrn_r34.paper")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10, help="timed fit steps per measurement")
    parser.add_argument("--videos", type=int, default=60, help="rendered videos for the loader")
    parser.add_argument("--video_size", default="320x240", help="WIDTHxHEIGHT of those videos")
    parser.add_argument("--video_frames", type=int, default=64, help="frames per rendered video")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader threads (default: the CPUs this process may use)")
    parser.add_argument("--strategy", default="auto", help="see mrrn_keras.distribute")
    return parser.parse_args(argv)


def render_videos(folder: pathlib.Path, count: int, width: int, height: int, frames: int, *,
                  entries: int) -> VideoIndex:
    """`count` mpeg4 videos of moving noise (decoding cost like a real video's), indexed
    round-robin as `entries` videos."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width + frames, 3), dtype=np.uint8)
    paths = []
    for i in range(count):
        clip = np.stack([np.roll(base, -t - i, axis=1)[:, :width] for t in range(frames)])
        paths.append(str(folder / f"v{i:04d}.avi"))
        write_video(paths[-1], clip)
    return VideoIndex(tuple(paths[i % count] for i in range(entries)),
                      tuple(i % NUM_CLASSES for i in range(entries)),
                      tuple(f"c{k}" for k in range(NUM_CLASSES)))


class _StepTimer(keras.callbacks.Callback):
    """Seconds from the end of the first training step to the end of the last."""

    def __init__(self):
        super().__init__()
        self.start = self.end = None

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:  # a scalar: waits for the step to finish
            float(logs["loss"])
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        self.end = now


def fit_clips_per_s(model, data, steps: int, batch: int) -> float:
    """Clips/s of `steps` fit steps after one untimed (compiling) step."""
    timer = _StepTimer()
    model.fit(data, epochs=1, steps_per_epoch=steps + 1, verbose=0, shuffle=False,
              callbacks=[timer])
    return steps * batch / (timer.end - timer.start)


def loader_clips_per_s(loader: ClipLoader, batch: int) -> float:
    """Clips/s of a loader's threads over one epoch, the first batch (codecs opening) untimed."""
    start = None
    for i, _ in enumerate(_threaded(loader)):
        if i == 0:
            start = time.perf_counter()
    return (len(loader) - 1) * batch / (time.perf_counter() - start)


def _threaded(loader: ClipLoader):
    """The loader's batches in order, `loader.workers` decoding ahead (as fit reads them)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(loader.workers) as pool:
        yield from pool.map(loader.__getitem__, range(len(loader)))


def main(argv=None) -> int:
    args = parse_args(argv)
    width, height = (int(v) for v in args.video_size.lower().split("x"))
    workers = default_workers() if args.workers is None else args.workers
    strategy = make_strategy(args.strategy)
    with strategy.scope():
        model = load_mrrn(args.variant, weights=None, num_classes=NUM_CLASSES, stream_outputs=True,
                          image_size=(args.size, args.size))
        compile_for_streams(model, keras.optimizers.AdamW(1e-4))
        keys = output_keys(model)
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (args.batch, args.frames, args.size, args.size, 3), np.uint8)
        y = {k: rng.integers(0, NUM_CLASSES, args.batch) for k in keys}

        def in_memory():
            while True:
                yield x, y

        consumption = fit_clips_per_s(model, in_memory(), args.steps, args.batch)
        with tempfile.TemporaryDirectory() as tmp:
            index = render_videos(pathlib.Path(tmp), args.videos, width, height,
                                  args.video_frames, entries=(args.steps + 1) * args.batch)
            source = ClipSource(index, ClipSpec(clip_len=args.frames, size=args.size),
                                training=True, batch_size=args.batch, label_keys=keys, seed=0)
            loader_rate = loader_clips_per_s(ClipLoader(source, workers=workers), args.batch)
            fit_loader = fit_clips_per_s(model, ClipLoader(source, workers=workers), args.steps,
                                         args.batch)
    report = {
        "backend": keras.backend.backend(),
        "tensorflow_imported": "tensorflow" in sys.modules,
        "devices": keras.distribution.list_devices() if keras.backend.backend() == "jax" else None,
        "variant": args.variant, "frames": args.frames, "size": args.size, "batch": args.batch,
        "steps": args.steps, "workers": workers, "video_size": args.video_size,
        "clips_per_s": {"consumption": round(consumption, 2), "loader": round(loader_rate, 2),
                        "fit_loader": round(fit_loader, 2)},
        "loader_over_consumption": round(loader_rate / consumption, 3),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
