"""Deployment formats of `mrrn_tiny.motion`: size, latency per clip, accuracy.

Exports the entry in every format (`mrrn_keras.deploy.export.export_model`),
then prints JSON with, per format: the file size, the median latency of one
clip (1 x 8 x 64 x 64 uint8; `--threads` CPU threads for LiteRT and ONNX
Runtime, TensorFlow's default pools otherwise) and top-1 on the motion test
split next to Keras's (and the change).

The test split is the one the entry was measured on (`recipes/train_motion.py`:
`make_motion_dataset(videos_per_class=300, frames=16, size=64, seed=0)`,
split 1 holds groups 1-19, i.e. videos 0-75 of each class, 684 in all):
those clips are re-rendered with `render_dataset(76, frames=16, size=64,
seed=0)`, written and decoded as mpeg4 .avi as the dataset does, and
sampled at the centre of 8 segments (frames 1, 3, ..., 15) as the recipe's
evaluation does. `--videos_per_class N` measures on the first N of each
class instead.

    python bench/deploy.py                     # the whole test split, 2 threads
    python bench/deploy.py --videos_per_class 10 --repeats 5
"""

import argparse
import json
import os
import pathlib
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mrrn_keras.data.synthetic import render_dataset  # noqa: E402
from mrrn_keras.data.video import read_frames, write_video  # noqa: E402
from mrrn_keras.deploy.export import export_model  # noqa: E402
from mrrn_keras.deploy.runtime import ExportedStream  # noqa: E402
from mrrn_keras.zoo import load_mrrn  # noqa: E402

VARIANT = "mrrn_tiny.motion"
TEST_VIDEOS_PER_CLASS = 76
CENTRE_FRAMES = [2 * i + 1 for i in range(8)]  # 8 segments of a 16-frame video


def test_split(videos_per_class, workdir):
    clips, labels = render_dataset(videos_per_class, frames=16, size=64, seed=0)
    sampled = []
    for i, clip in enumerate(clips):
        path = pathlib.Path(workdir) / f"v{i}.avi"
        write_video(path, clip, fps=8, codec="mpeg4")
        sampled.append(read_frames(path, CENTRE_FRAMES, size=64))
        path.unlink()
    return np.stack(sampled), labels


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def size_of(path):
    path = pathlib.Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos_per_class", type=int, default=TEST_VIDEOS_PER_CLASS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp())
    clips, labels = test_split(args.videos_per_class, work)
    model = load_mrrn(VARIANT)
    keras_probs = model.predict(clips, batch_size=32, verbose=0)
    keras_top1 = float(np.mean(keras_probs.argmax(-1) == labels))
    one = clips[:1]
    rows = {}

    serving = export_model(VARIANT, work / "serving", warmup=False)
    loaded = tf.saved_model.load(str(serving))
    serve = loaded.signatures["serving_default"]
    rows["keras"] = {"latency_ms": median_ms(lambda: model.predict_on_batch(one), args.repeats),
                     "top1": keras_top1}
    rows["savedmodel"] = {
        "bytes": size_of(serving),
        "latency_ms": median_ms(lambda: serve(frames=tf.constant(one)), args.repeats),
    }
    for name, quantization in (("litert", None), ("litert_dynamic", "dynamic"),
                               ("litert_int8", "int8")):
        path = export_model(VARIANT, work / name, format="litert", quantization=quantization)
        runner = tf.lite.Interpreter(
            model_path=str(path), num_threads=args.threads
        ).get_signature_runner("serving_default")
        probs = np.concatenate([runner(frames=c[None])["probabilities"] for c in clips])
        top1 = float(np.mean(probs.argmax(-1) == labels))
        rows[name] = {
            "bytes": size_of(path),
            "latency_ms": median_ms(lambda: runner(frames=one), args.repeats),
            "top1": top1, "top1_change": round(top1 - keras_top1, 4),
            "max_abs_diff_vs_keras": float(np.abs(probs - keras_probs).max()),
        }
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        path = export_model(VARIANT, work / "onnx", format="onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options)
        probs = np.concatenate([session.run(None, {"frames": c[None]})[0] for c in clips])
        top1 = float(np.mean(probs.argmax(-1) == labels))
        rows["onnx"] = {
            "bytes": size_of(path),
            "latency_ms": median_ms(lambda: session.run(None, {"frames": one}), args.repeats),
            "top1": top1, "top1_change": round(top1 - keras_top1, 4),
            "max_abs_diff_vs_keras": float(np.abs(probs - keras_probs).max()),
        }
    for name, fmt in (("stream_litert", "litert"), ("stream_savedmodel", "savedmodel")):
        path = export_model(VARIANT, work / name, format=fmt, stream=True)
        stream = ExportedStream(path)

        def clip_by_frames():
            stream.reset()
            for t in range(one.shape[1]):
                out = stream.update(one[:, t:t + 1])
            return out

        last = clip_by_frames()
        rows[name] = {
            "bytes": size_of(path),
            "latency_ms_per_clip_frame_by_frame": median_ms(clip_by_frames, args.repeats),
            "max_abs_diff_vs_keras_clip": float(np.abs(last - keras_probs[:1]).max()),
        }
    print(json.dumps({
        "variant": VARIANT, "test_clips": int(len(clips)), "threads": args.threads,
        "cpu_count": os.cpu_count(), "formats": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
