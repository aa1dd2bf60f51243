"""Live latency: frame captured -> label printed, and frames dropped; prints JSON.

A generated 320x240 mpeg4 video at 30 fps is read at its own rate
(`--realtime`, what a camera does) by `mrrn_keras.live.classify_live`, the
loop `mrrn predict --stream` runs on a live source, for:

- `tiny`: the bundled `mrrn_tiny.motion` (64x64, windows of 8 frames kept at
  the entry's 8 fps: one answer per second of video),
- `r18`: `mrrn_r18.paper`'s architecture (ResNet-18, 3x1024 SRUs) with random
  weights at 112x112, windows of its 12 frames kept at its 25 fps,
- `r18_224` (not run by default): the same at the entry's 224x224, a model
  slower than the source, to see the drops keep the latency bounded.

The latency of an answer is the time its line is written (and flushed)
minus the time the window's newest frame was due from the source; the first
window's graph tracing is done before the source starts (`classify_live`
warms the model up; that call is left out of `inference_ms_p50`). `dropped` counts
frames kept at the model's rate that the model had no time for (the buffer
drops the oldest, so each window is the newest one).

    python bench/live.py                        # defaults below
    python bench/live.py --seconds 10 --models tiny
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from mrrn_keras.data.video import write_video  # noqa: E402
from mrrn_keras.live import classify_live  # noqa: E402
from mrrn_keras.streaming import StreamingClassifier  # noqa: E402
from mrrn_keras.zoo import load_mrrn, variant_info  # noqa: E402

SOURCE_FPS = 30
# name -> (zoo entry, load_mrrn arguments, frame size)
MODELS = {
    "tiny": ("mrrn_tiny.motion", {}, (64, 64)),
    "r18": ("mrrn_r18.paper", {"weights": None, "image_size": (112, 112)}, (112, 112)),
    # The entry's own 224x224: slower than the source here, so frames drop.
    "r18_224": ("mrrn_r18.paper", {"weights": None}, (224, 224)),
}


def make_video(path, seconds, height=240, width=320):
    """Smooth moving colour bands, `seconds` long at 30 fps."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((seconds * SOURCE_FPS, height, width, 3), np.uint8)
    for t, frame in enumerate(frames):  # one frame at a time: memory of the uint8 video only
        frame[..., 0] = 128 + 90 * np.sin(xx / width * np.pi * 3 + t * 0.2)
        frame[..., 1] = 128 + 90 * np.cos(yy / height * np.pi * 2 - t * 0.15)
        frame[..., 2] = 60 + t % 120
    write_video(path, frames, fps=SOURCE_FPS)


class Timed:
    """A classifier that records the seconds of each `update`."""

    def __init__(self, classifier):
        self.classifier, self.seconds = classifier, []

    def reset(self):
        self.classifier.reset()

    def update(self, clip):
        start = time.perf_counter()
        out = self.classifier.update(clip)
        self.seconds.append(time.perf_counter() - start)
        return out


def run(name, video, out):
    entry, kwargs, size = MODELS[name]
    spec = variant_info(entry).input
    window, fps = spec["frames"], spec.get("fps")
    classifier = Timed(StreamingClassifier(load_mrrn(entry, **kwargs)))
    latencies, last = [], None
    results = classify_live(classifier, video, window=window, size=size, fps=fps,
                            realtime=True, top_k=1)  # warms up (traces) before the source opens
    for last in results:
        out.write(f"{last.time:8.2f}s  {last.label} {last.score:6.1%}\n")
        out.flush()
        latencies.append(time.monotonic() - last.captured)
    ms = np.asarray(latencies) * 1000
    return {
        "entry": entry, "weights": "random" if kwargs.get("weights", "x") is None else "trained",
        "size": list(size), "window_frames": window, "model_fps": fps, "answers": len(ms),
        "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 1),
                       "p99": round(float(np.percentile(ms, 99)), 1),
                       "max": round(float(ms.max()), 1)},
        "inference_ms_p50": round(1000 * float(np.median(classifier.seconds[1:])), 1),
        "frames_kept": last.frames, "frames_dropped": last.dropped,
        "drop_rate": round(last.dropped / last.frames, 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="length of the paced video")
    parser.add_argument("--models", default="tiny,r18")
    args = parser.parse_args()
    result = {"source": f"320x240 mpeg4, {SOURCE_FPS} fps, {args.seconds} s, read at its rate",
              "cpu_cores": os.cpu_count(), "load_average_before": os.getloadavg()[0],
              "models": {}}
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as out:
        video = pathlib.Path(tmp) / "paced.avi"
        make_video(video, args.seconds)
        for name in args.models.split(","):
            result["models"][name] = run(name, video, out)
    result["load_average_after"] = os.getloadavg()[0]
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
