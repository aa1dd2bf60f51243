"""SRU speed against its matmul floor and Keras LSTM/GRU, side by side.

Prints one JSON object (and a short table on stderr). Every candidate runs in
the same process on the same inputs, timed interleaved (one call of each
candidate per round, so load changes hit all alike); each time is the median
over up to `--repeats` rounds after warm-up (fewer when a round takes longer
than `--budget_s / --repeats`, never under 3), and ratios are to the matmul floor:
the SRU's own `Dense(3 * units)` projection alone, forward and
forward+backward.

Candidates: `floor`; `sru_xla`, `sru_graph` (the 2018 SRU, `state_gates=True`:
XLA loop, plain graph loop); `paper_xla`, `paper_graph`, `paper_scan`,
`paper_auto` (the 2017 form MRRN uses, `state_gates=False`, whose linear
recurrence also runs as a parallel scan); `lstm`, `gru` (Keras).

Each candidate is wrapped in one `tf.function`; `--outer_jit` (default on)
XLA-compiles that function, as `model.fit(jit_compile=True)` does;
`--nouter_jit` leaves it a plain graph, as `model.predict` on CPU does.

    python bench/sru.py                          # B32 T64, B8 T512, B8 T2048; d=512
    python bench/sru.py --grid full              # T 16..2048 x B 1..32 x d 256..1024
    python bench/sru.py --grid full --times 512,2048 --batches 1 --candidates floor,paper_xla,paper_scan
    python bench/sru.py --shapes 32x64x512 --repeats 20
"""

import itertools
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

GRIDS = {
    "default": {"batches": [32, 8, 8], "times": [64, 512, 2048], "units": [512]},
    "full": {"batches": [1, 8, 32], "times": [16, 64, 512, 2048], "units": [256, 512, 1024]},
}
CANDIDATES = {
    "floor": lambda u: keras.layers.Dense(3 * u, use_bias=False),
    "sru_xla": lambda u: SRU(u, return_sequences=True, implementation="xla"),
    "sru_graph": lambda u: SRU(u, return_sequences=True, implementation="graph"),
    "paper_xla": lambda u: SRU(u, return_sequences=True, state_gates=False, implementation="xla"),
    "paper_graph": lambda u: SRU(
        u, return_sequences=True, state_gates=False, implementation="graph"
    ),
    "paper_scan": lambda u: SRU(u, return_sequences=True, state_gates=False, implementation="scan"),
    "paper_auto": lambda u: SRU(u, return_sequences=True, state_gates=False),
    "lstm": lambda u: keras.layers.LSTM(u, return_sequences=True),
    "gru": lambda u: keras.layers.GRU(u, return_sequences=True),
}

FLAGS = flags.FLAGS
flags.DEFINE_enum("grid", "default", sorted(GRIDS), "Shape grid; the default grid pairs "
                  "batches/times positionally (B32 T64, B8 T512, B8 T2048), the full grid "
                  "takes every combination.")
flags.DEFINE_list("shapes", None, "BxTxD list (units = D); overrides --grid.")
flags.DEFINE_list("batches", None, "Keep only these batch sizes of the grid.")
flags.DEFINE_list("times", None, "Keep only these sequence lengths of the grid.")
flags.DEFINE_list("units", None, "Keep only these widths of the grid.")
flags.DEFINE_list(
    "candidates",
    ["floor", "sru_xla", "sru_graph", "paper_xla", "paper_scan", "lstm", "gru"],
    f"Which layers to time, from {sorted(CANDIDATES)}.",
)
flags.DEFINE_list("passes", ["forward", "forward_backward"], "Which passes to time.")
flags.DEFINE_integer("repeats", 10, "Most timed calls per measurement (median).")
flags.DEFINE_float("budget_s", 5.0, "Rough time budget per measurement.")
flags.DEFINE_boolean("outer_jit", True, "XLA-compile each candidate's function.")


def _shapes():
    if FLAGS.shapes:
        return [tuple(int(v) for v in s.split("x")) for s in FLAGS.shapes]
    grid = GRIDS[FLAGS.grid]
    if FLAGS.grid == "default":
        shapes = [(b, t, u) for b, t in zip(grid["batches"], grid["times"]) for u in grid["units"]]
    else:
        shapes = list(itertools.product(grid["batches"], grid["times"], grid["units"]))
    keep = [
        {int(v) for v in chosen} if chosen else None
        for chosen in (FLAGS.batches, FLAGS.times, FLAGS.units)
    ]
    return [
        shape for shape in shapes
        if all(k is None or v in k for v, k in zip(shape, keep))
    ]


def _call(fn, args):
    start = time.perf_counter()
    np.asarray(fn(*args)[0])
    return time.perf_counter() - start


def _functions(name, x, outer_jit):
    """`{pass: tf.function}` for one candidate, built."""
    layer = CANDIDATES[name](x.shape[-1])
    layer(x)

    @tf.function(jit_compile=outer_jit)
    def forward(x, cotangent):
        del cotangent
        return (layer(x),)

    @tf.function(jit_compile=outer_jit)
    def forward_backward(x, cotangent):
        # The output gradient is an input, not the ones of a plain sum: XLA
        # would simplify a matmul's backward against a constant ones tensor
        # into a reduction and flatter the floor.
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * cotangent)
        return tape.gradient(loss, [x] + layer.trainable_weights)

    return {"forward": forward, "forward_backward": forward_backward}


def measure(names, batch, steps, dim, passes, repeats=10, budget_s=5.0, outer_jit=True):
    """Returns `{name: {pass: median seconds}}`, candidates timed interleaved.

    One round calls every candidate once, in turn; the median over rounds
    keeps a load change on a shared machine from favouring one candidate.
    """
    x = tf.random.normal((batch, steps, dim), seed=0)
    fns = {name: _functions(name, x, outer_jit) for name in names}
    # Output widths differ (floor: 3 * dim), so one cotangent per candidate.
    args = {
        name: (x, tf.random.normal(fns[name]["forward"](x, 0.0)[0].shape, seed=1))
        for name in names
    }
    result = {name: {} for name in names}
    for p in passes:
        running = []
        for name in names:
            try:
                for _ in range(2):  # compile, then warm
                    _call(fns[name][p], args[name])
                running.append(name)
            except tf.errors.ResourceExhaustedError as err:
                # Keras LSTM under XLA at B8 T2048 asks for 16 GiB.
                result[name][p] = f"out of memory: {err.message.splitlines()[0]}"
        first = {name: _call(fns[name][p], args[name]) for name in running}
        rounds = max(3, min(repeats, int(budget_s / max(sum(first.values()), 1e-6))))
        times = {name: [t] for name, t in first.items()}
        for _ in range(rounds - 1):
            for name in running:
                times[name].append(_call(fns[name][p], args[name]))
        for name in running:
            result[name][p] = statistics.median(times[name])
    return result


def _row(batch, steps, dim):
    row = {"batch": batch, "time": steps, "units": dim, "layers": {}}
    seconds = measure(
        FLAGS.candidates, batch, steps, dim, FLAGS.passes, FLAGS.repeats, FLAGS.budget_s,
        FLAGS.outer_jit,
    )
    for name in FLAGS.candidates:
        row["layers"][name] = {
            f"{p}_ms" if isinstance(s, float) else f"{p}_error": (
                s * 1e3 if isinstance(s, float) else s
            )
            for p, s in seconds[name].items()
        }
    layers = row["layers"]

    def ratio(p, a, b):
        if f"{p}_ms" in layers.get(a, {}) and f"{p}_ms" in layers.get(b, {}):
            return layers[a][f"{p}_ms"] / layers[b][f"{p}_ms"]
        return None

    for p in FLAGS.passes:
        for name, t in layers.items():
            if ratio(p, name, "floor") is not None:
                t[f"{p}_x_floor"] = ratio(p, name, "floor")
        if ratio(p, "lstm", "sru_xla") is not None:
            row[f"lstm_{p}_x_sru"] = ratio(p, "lstm", "sru_xla")
        if ratio(p, "paper_scan", "paper_xla") is not None:
            row[f"paper_{p}_scan_x_loop"] = ratio(p, "paper_scan", "paper_xla")
    return row


def _table_line(row, name):
    t = row["layers"][name]
    cells = [f"B{row['batch']:<3d} T{row['time']:<5d} d{row['units']:<5d} {name:12s}"]
    for p in FLAGS.passes:
        if f"{p}_ms" not in t:
            cells.append(f"{p} {t[f'{p}_error'][:40]}")
            continue
        ratio = t.get(f"{p}_x_floor", float("nan"))
        cells.append(f"{p} {t[f'{p}_ms']:9.2f} ms ({ratio:5.2f}x)")
    return "  ".join(cells)


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.candidates) - set(CANDIDATES))
    if unknown:
        raise app.UsageError(f"Unknown candidates {unknown}; choose from {sorted(CANDIDATES)}")
    results = []
    for batch, steps, dim in _shapes():
        row = _row(batch, steps, dim)
        results.append(row)
        for name in row["layers"]:
            print(_table_line(row, name), file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "benchmark": "sru",
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "cpu_threads": os.cpu_count(),
                "load_average": os.getloadavg(),
                "outer_jit": FLAGS.outer_jit,
                "repeats": FLAGS.repeats,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    app.run(main)
