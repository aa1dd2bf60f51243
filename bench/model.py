"""MRRN's cost per clip against its backbone alone and its twins, side by side.

For each backbone and frame size, builds (weights=None):

    backbone      preprocessing + the full ResNet (to the `high` tap) + spatial
                  and time mean + one softmax head: the backbone alone
                  (`MRRN(streams=("high",), sru_layers=0)`)
    mrrn_shared   MRRN, one backbone pass feeding the three taps
    mrrn_indep    MRRN, three backbones truncated at their taps (the paper's
                  separately trained streams)
    cnn_lstm      the shared MRRN with a Keras LSTM of the same width and depth
                  in place of each SRU (built from the same pieces)
    order_blind   MRRN with `sru_layers=0`: taps averaged over time

and prints JSON: parameters, analytic multiply-adds per clip
(`mrrn_keras.flops`), and the median wall and CPU time (this process, all
threads) per clip of inference (`predict_on_batch`) and of a training step
(`train_on_batch`, SGD), candidates timed interleaved (one call each per
round). Ratios are to
`backbone`. Runs on the active Keras backend (`KERAS_BACKEND`, TensorFlow by
default; JAX without importing TensorFlow). By default Keras decides whether
to XLA-compile (`jit_compile="auto"`: off for TF on CPU, always on JAX);
`--jit` / `--nojit` force it (JAX without jit runs op by op).

    python bench/model.py                                   # resnet18+50, 112+224, 16 frames
    python bench/model.py --backbones resnet18 --sizes 112 --models backbone,mrrn_shared
    python bench/model.py --notime                          # parameters and FLOPs only
    KERAS_BACKEND=jax python bench/model.py --backbones resnet18 --sizes 112 --models backbone,mrrn_shared
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from mrrn_keras import MRRN  # noqa: E402
from mrrn_keras.backbones import BACKBONES, TAP_NAMES, build_backbone  # noqa: E402
from mrrn_keras.flops import count_multiply_adds  # noqa: E402
from mrrn_keras.layers.fusion import StreamFusion  # noqa: E402
from mrrn_keras.layers.preprocessing import PREPROCESSING, FramePreprocessing  # noqa: E402
from mrrn_keras.layers.taps import tap_sequences  # noqa: E402
from mrrn_keras.layers.time_pooling import TimePooling  # noqa: E402
from provenance import provenance  # noqa: E402  (bench/ is the script's folder)

MODELS = ("backbone", "mrrn_shared", "mrrn_indep", "cnn_lstm", "order_blind")
TIMED_KEYS = (
    "gflops_per_clip",
    "inference_ms_per_clip",
    "inference_cpu_ms_per_clip",
    "train_step_ms_per_clip",
    "train_step_cpu_ms_per_clip",
)

FLAGS = flags.FLAGS
flags.DEFINE_list("backbones", ["resnet18", "resnet50"], "Backbones to compare.")
flags.DEFINE_list("sizes", ["112", "224"], "Square frame sizes.")
flags.DEFINE_list("models", list(MODELS), f"Which of {MODELS}.")
flags.DEFINE_integer("frames", 16, "Frames per clip.")
flags.DEFINE_integer("batch", 1, "Clips per inference call.")
flags.DEFINE_integer("train_batch", 1, "Clips per training step.")
flags.DEFINE_integer("num_classes", 101, "Classes (UCF-101).")
flags.DEFINE_integer("sru_units", 1024, "SRU / LSTM width (paper proxy: 1024).")
flags.DEFINE_integer("sru_layers", 3, "SRU / LSTM layers per stream (paper proxy: 3).")
flags.DEFINE_integer("repeats", 5, "Most timed rounds (median).")
flags.DEFINE_float("budget_s", 60.0, "Rough time budget per measurement.")
flags.DEFINE_boolean("time", True, "Time inference and training (else count only).")
flags.DEFINE_boolean("train", True, "Also time a training step.")
flags.DEFINE_boolean("jit", None, "XLA-compile inference and training; unset: Keras's "
                     "jit_compile=\"auto\" (off for TF on CPU, on for JAX).")


def cnn_lstm(num_classes, backbone, units, layers, dropout=0.5):
    """The shared-tap MRRN with `keras.layers.LSTM` in place of every SRU."""
    spec = BACKBONES[backbone]
    frames = keras.Input((None, None, None, 3), name="frames")
    x = FramePreprocessing(**PREPROCESSING[spec.preprocessing], name="preprocessing")(frames)
    taps = tap_sequences(x, build_backbone(backbone, model_name="backbone"))
    probabilities = []
    for stream in TAP_NAMES:
        h = taps[stream]  # (B, T, C_tap)
        for i in range(layers):
            h = keras.layers.LSTM(units, return_sequences=True, name=f"{stream}_lstm_{i}")(h)
        h = TimePooling("mean", name=f"{stream}_time_pooling")(h)  # (B, U)
        h = keras.layers.Dropout(dropout, name=f"{stream}_dropout")(h)
        probabilities.append(
            keras.layers.Dense(num_classes, activation="softmax", name=f"{stream}_head")(h)
        )
    fused = StreamFusion("fixed", num_streams=len(TAP_NAMES), name="fusion")(probabilities)
    return keras.Model(frames, fused, name="cnn_lstm")


def build(name, backbone):
    common = dict(num_classes=FLAGS.num_classes, backbone=backbone)
    srus = dict(sru_units=FLAGS.sru_units, sru_layers=FLAGS.sru_layers)
    if name == "backbone":
        return MRRN(streams=("high",), sru_layers=0, **common)
    if name == "mrrn_shared":
        return MRRN(**srus, **common)
    if name == "mrrn_indep":
        return MRRN(backbone_mode="independent", **srus, **common)
    if name == "order_blind":
        return MRRN(sru_layers=0, **common)
    return cnn_lstm(FLAGS.num_classes, backbone, FLAGS.sru_units, FLAGS.sru_layers)


def _timed(fn):
    """(wall seconds, CPU seconds of this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved_medians(calls, repeats, budget_s):
    """`{name: (median wall s, median CPU s)}` of zero-argument `calls`, one call each per round.

    CPU time counts the work this process did, so on a machine shared with
    other jobs it moves less with their load than wall time does.
    """
    for fn in calls.values():
        fn()  # trace / compile
        fn()  # warm
    times = {name: [_timed(fn)] for name, fn in calls.items()}
    round_s = sum(t[0][0] for t in times.values())
    for _ in range(max(3, min(repeats, int(budget_s / max(round_s, 1e-6)))) - 1):
        for name, fn in calls.items():
            times[name].append(_timed(fn))
    return {
        name: tuple(statistics.median(column) for column in zip(*t))
        for name, t in times.items()
    }


def _setting(backbone, size):
    shape = (FLAGS.batch, FLAGS.frames, size, size, 3)
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, shape).astype("uint8")
    train_clips = rng.integers(0, 256, (FLAGS.train_batch,) + shape[1:]).astype("uint8")
    labels = np.arange(FLAGS.train_batch) % FLAGS.num_classes
    models, rows = {}, {}
    for name in FLAGS.models:
        model = build(name, backbone)
        model.compile(
            optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile="auto" if FLAGS.jit is None else FLAGS.jit,
        )
        macs = count_multiply_adds(model, (1,) + shape[1:])
        models[name] = model
        rows[name] = {
            # What Keras resolved `jit_compile` to (XLA or not).
            "jit_compile": model.jit_compile,
            "params": model.count_params(),
            "multiply_adds_per_clip": macs,
            "gflops_per_clip": 2 * macs["total"] / 1e9,
        }
    if FLAGS.time:
        passes = {
            "inference": lambda m: (lambda: m.predict_on_batch(clips)),
        }
        if FLAGS.train:
            passes["train_step"] = lambda m: (lambda: m.train_on_batch(train_clips, labels))
        clips_per_call = {"inference": FLAGS.batch, "train_step": FLAGS.train_batch}
        for pass_name, make in passes.items():
            medians = interleaved_medians(
                {name: make(m) for name, m in models.items()}, FLAGS.repeats, FLAGS.budget_s
            )
            for name, (wall, cpu) in medians.items():
                per_clip = 1e3 / clips_per_call[pass_name]
                rows[name][f"{pass_name}_ms_per_clip"] = wall * per_clip
                rows[name][f"{pass_name}_cpu_ms_per_clip"] = cpu * per_clip
    base = rows.get("backbone")
    if base:
        for row in rows.values():
            for key in TIMED_KEYS:
                if key in row and key in base:
                    row[f"{key}_x_backbone"] = row[key] / base[key]
    return rows


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.models) - set(MODELS))
    if unknown:
        raise app.UsageError(f"Unknown models {unknown}; choose from {MODELS}")
    load_at_start = os.getloadavg()
    results = []
    for backbone in FLAGS.backbones:
        for size in (int(s) for s in FLAGS.sizes):
            rows = _setting(backbone, size)
            results.append({"backbone": backbone, "size": size, "models": rows})
            for name, row in rows.items():
                cells = [f"{backbone} {size}px {name:12s} params {row['params'] / 1e6:6.1f}M",
                         f"GFLOPs {row['gflops_per_clip']:7.1f}"]
                for key in TIMED_KEYS[1:]:
                    if key in row:
                        cells.append(
                            f"{key.replace('_per_clip', '')} {row[key]:7.0f} "
                            f"({row.get(key + '_x_backbone', float('nan')):4.2f}x)"
                        )
                print("  ".join(cells), file=sys.stderr, flush=True)
            keras.backend.clear_session()
    print(
        json.dumps(
            {
                "benchmark": "model",
                "command": " ".join(sys.argv),
                **provenance(),
                "load_average_at_start": load_at_start,
                "frames": FLAGS.frames,
                "batch": FLAGS.batch,
                "train_batch": FLAGS.train_batch,
                "sru_units": FLAGS.sru_units,
                "sru_layers": FLAGS.sru_layers,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    app.run(main)
