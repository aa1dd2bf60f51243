"""SRU speed against its matmul floor and Keras LSTM/GRU, side by side.

Prints one JSON object (and a short table on stderr). Every candidate runs in
the same process on the same inputs; each time is the median of `--repeats`
calls after warm-up, and ratios are to the matmul floor: the SRU's own
`Dense(3 * units)` projection alone, forward and forward+backward.

Each candidate is wrapped in one `tf.function`; `--outer_jit` (default on)
XLA-compiles that function, as `model.fit` does with `jit_compile=True`.

    python bench/sru.py                          # B32 T64 and B8 T512, d=512
    python bench/sru.py --shapes 32x64x512 --repeats 20
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mrrn_keras import SRU  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("shapes", ["32x64x512", "8x512x512"], "BxTxD; units = D.")
flags.DEFINE_list(
    "candidates",
    ["floor", "sru_xla", "sru_graph", "lstm", "gru"],
    "Which layers to time.",
)
flags.DEFINE_integer("repeats", 10, "Timed calls per measurement (median).")
flags.DEFINE_boolean("outer_jit", True, "XLA-compile each candidate's function.")


def _layer(name, units):
    return {
        "floor": lambda: keras.layers.Dense(3 * units, use_bias=False),
        "sru_xla": lambda: SRU(units, return_sequences=True, implementation="xla"),
        "sru_graph": lambda: SRU(units, return_sequences=True, implementation="graph"),
        "lstm": lambda: keras.layers.LSTM(units, return_sequences=True),
        "gru": lambda: keras.layers.GRU(units, return_sequences=True),
    }[name]()


def _median_seconds(fn, x, repeats):
    for _ in range(3):
        np.asarray(fn(x)[0])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(fn(x)[0])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name, batch, steps, dim, repeats, outer_jit):
    """Returns (forward seconds, forward+backward seconds) for one candidate."""
    layer = _layer(name, dim)
    x = tf.random.normal((batch, steps, dim), seed=0)
    layer(x)

    @tf.function(jit_compile=outer_jit)
    def forward(x):
        return (layer(x),)

    @tf.function(jit_compile=outer_jit)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    return (
        _median_seconds(forward, x, repeats),
        _median_seconds(forward_backward, x, repeats),
    )


def main(argv):
    del argv
    results = []
    for shape in FLAGS.shapes:
        batch, steps, dim = (int(v) for v in shape.split("x"))
        row = {"batch": batch, "time": steps, "units": dim, "layers": {}}
        for name in FLAGS.candidates:
            fwd, fwd_bwd = measure(name, batch, steps, dim, FLAGS.repeats, FLAGS.outer_jit)
            row["layers"][name] = {"forward_ms": fwd * 1e3, "forward_backward_ms": fwd_bwd * 1e3}
        floor = row["layers"].get("floor")
        for name, t in row["layers"].items():
            if floor:
                t["forward_x_floor"] = t["forward_ms"] / floor["forward_ms"]
                t["forward_backward_x_floor"] = (
                    t["forward_backward_ms"] / floor["forward_backward_ms"]
                )
        sru = row["layers"].get("sru_xla")
        lstm = row["layers"].get("lstm")
        if sru and lstm:
            row["lstm_forward_backward_x_sru"] = (
                lstm["forward_backward_ms"] / sru["forward_backward_ms"]
            )
        results.append(row)
        for name, t in row["layers"].items():
            print(
                f"B{batch} T{steps} d{dim} {name:10s} fwd {t['forward_ms']:8.2f} ms "
                f"({t.get('forward_x_floor', float('nan')):5.2f}x)  fwd+bwd "
                f"{t['forward_backward_ms']:8.2f} ms "
                f"({t.get('forward_backward_x_floor', float('nan')):5.2f}x)",
                file=sys.stderr,
            )
    print(
        json.dumps(
            {
                "benchmark": "sru",
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "cpu_threads": os.cpu_count(),
                "outer_jit": FLAGS.outer_jit,
                "repeats": FLAGS.repeats,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    app.run(main)
