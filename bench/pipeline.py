"""Input pipeline throughput vs training consumption; prints JSON.

Measures, for 16-frame clips at 112x112 (TSN segments, random resized
crops, the training pipeline of `mrrn_keras.data.pipeline.clip_dataset`):

- clips/s of the pipeline alone reading raw videos (PyAV in tf.data),
- clips/s of the pipeline alone reading a frame cache (JPEG TFRecords),
- clips/s consumed by a training step (`fit`-style `train_on_batch` of a
  stream-output MRRN on in-memory clips, XLA), per model,

and the ratio pipeline / training. The videos are generated: 320x240 mpeg4
.avi (UCF-101's format), `--frames` frames each, smooth moving content.

    python bench/pipeline.py                     # defaults below
    python bench/pipeline.py --videos 24 --batches 6 --models tiny,r18
"""

import argparse
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mrrn_keras import MRRN  # noqa: E402
from mrrn_keras.data.cache import prepare_cache  # noqa: E402
from mrrn_keras.data.datasets import VideoIndex  # noqa: E402
from mrrn_keras.data.pipeline import Augment, ClipSpec, clip_dataset  # noqa: E402
from mrrn_keras.data.video import write_video  # noqa: E402
from mrrn_keras.training import compile_for_streams, repeat_labels  # noqa: E402

MODELS = {
    # The bundled zoo architecture (mrrn_tiny.motion).
    "tiny": dict(backbone="resnet18", backbone_width=0.25, sru_units=64, sru_layers=2),
    # A full-width ResNet-18 MRRN with paper-style SRUs, narrower than the paper's 1024.
    "r18": dict(backbone="resnet18", backbone_width=1.0, sru_units=256, sru_layers=2),
}


def make_videos(root, count, frames, height=240, width=320):
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
    return VideoIndex(tuple(paths), tuple(i % 4 for i in range(count)), ("a", "b", "c", "d"))


def pipeline_rate(source, spec, batch_size, batches):
    ds = clip_dataset(source, spec, training=True, batch_size=batch_size, augment=Augment(),
                      seed=0).repeat()
    it = iter(ds)
    next(it)  # warm-up: tracing, thread pools
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def train_rate(arch, spec, batch_size, steps):
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
    seconds = time.perf_counter() - start
    return steps * batch_size / seconds, model.count_params()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=64, help="frames per generated video")
    parser.add_argument("--clip_len", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--models", default="tiny,r18")
    args = parser.parse_args()
    spec = ClipSpec(clip_len=args.clip_len, size=args.size, short_side=128)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        index = make_videos(tmp, args.videos, args.frames)
        start = time.perf_counter()
        cache = prepare_cache(index, tmp / "cache", short_side=128, workers=2)
        prepare_s = time.perf_counter() - start
        raw = pipeline_rate(index, spec, args.batch_size, args.batches)
        cached = pipeline_rate(cache, spec, args.batch_size, args.batches)
    result = {
        "clip": {"frames": spec.clip_len, "size": spec.size, "mode": spec.mode,
                 "source_video": f"320x240 mpeg4 avi, {args.frames} frames"},
        "cpu_cores": os.cpu_count(),
        "pipeline_clips_per_s": {"raw_video": round(raw, 1), "frame_cache": round(cached, 1)},
        "prepare_cache_videos_per_s": round(args.videos / prepare_s, 2),
        "train": {},
    }
    for name in args.models.split(","):
        rate, params = train_rate(MODELS[name], spec, args.batch_size, args.steps)
        result["train"][name] = {
            "params": params, "train_clips_per_s": round(rate, 2),
            "ratio_raw": round(raw / rate, 1), "ratio_cache": round(cached / rate, 1),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
