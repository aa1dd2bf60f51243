"""SRU speed against its matmul floor and Keras LSTM/GRU, side by side.

Prints one JSON object (and a short table on stderr). Every candidate runs in
the same process on the same inputs, timed interleaved (one call of each
candidate per round, so load changes hit all alike); each time is the median
over up to `--repeats` rounds after warm-up (fewer when a round takes longer
than `--budget_s / --repeats`, never under 3), and ratios are to the matmul floor:
the SRU's own `Dense(3 * units)` projection alone, forward and
forward+backward (against a random output gradient).

Runs on the active Keras backend (`KERAS_BACKEND`, TensorFlow by default) and
on JAX without importing TensorFlow. Candidates: `floor`; `sru_*` the 2018
SRU (`state_gates=True`), `paper_*` the 2017 form MRRN uses
(`state_gates=False`, whose linear recurrence also runs as a parallel scan):
`*_auto` what `implementation="auto"` picks here, `*_xla` the loop,
`*_graph` the loop without its own XLA compile (TF; the same loop on JAX),
`*_unroll{2,4,8}` the loop running that many steps per iteration (a plan
set on the layer for the benchmark: `SRU` has no unroll argument),
`paper_scan`; `lstm`, `gru` (Keras, same backend); `torch_lstm`
(`torch.nn.LSTM` on CUDA, i.e. cuDNN; reported as skipped without torch or
a CUDA device).

On TensorFlow each candidate is wrapped in one `tf.function`; `--outer_jit`
(default on) XLA-compiles that function, as `model.fit(jit_compile=True)`
does; `--nouter_jit` leaves it a plain graph, as `model.predict` on CPU does.
On JAX each candidate is `jax.jit` over the layer's `stateless_call`
(forward, and `jax.grad` of the loss for forward+backward): always compiled.

    python bench/sru.py                          # B32 T64, B8 T512, B8 T2048; d=512
    python bench/sru.py --grid full              # T 16..2048 x B 1..32 x d 256..1024
    python bench/sru.py --grid full --times 512,2048 --batches 1 --candidates floor,paper_xla,paper_scan
    python bench/sru.py --shapes 32x64x512 --repeats 20
    KERAS_BACKEND=jax python bench/sru.py --candidates floor,sru_xla,sru_unroll8,paper_scan
    bash bench/gpu.sh                            # issue 10's accelerator table (--preset gpu)
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
from absl import app, flags  # noqa: E402

from mrrn_keras import SRU  # noqa: E402
from mrrn_keras.layers import recurrence  # noqa: E402
from provenance import provenance  # noqa: E402  (bench/ is the script's folder)

UNROLLS = (2, 4, 8)
GRIDS = {
    "default": {"batches": [32, 8, 8], "times": [64, 512, 2048], "units": [512]},
    "full": {"batches": [1, 8, 32], "times": [16, 64, 512, 2048], "units": [256, 512, 1024]},
}
# Issue 10's accelerator table: every T from 16 to 2048 at B 8 and 32, d=512.
PRESETS = {
    "gpu": {
        "shapes": [
            f"{b}x{t}x512" for b in (8, 32) for t in (16, 32, 64, 128, 256, 512, 1024, 2048)
        ],
        "candidates": [
            "floor", "sru_auto", "sru_xla", "sru_unroll8", "paper_auto", "paper_xla",
            "paper_unroll8", "paper_scan", "lstm", "gru", "torch_lstm",
        ],
        "repeats": 20,
        "budget_s": 10.0,
        "matmul_precision": "highest",
    },
}


class PlannedSRU(SRU):
    """An SRU whose recurrence always runs one fixed `recurrence.Plan` (benchmark only)."""

    def __init__(self, units, plan, **kwargs):
        super().__init__(units, **kwargs)
        self.plan = plan

    def _plan(self, steps):
        return self.plan


def _sru(state_gates, **kwargs):
    return lambda u: SRU(u, return_sequences=True, state_gates=state_gates, **kwargs)


def _unrolled(state_gates, unroll):
    plan = recurrence.Plan("loop", unroll=unroll)
    return lambda u: PlannedSRU(u, plan, return_sequences=True, state_gates=state_gates)


CANDIDATES = {
    "floor": lambda u: keras.layers.Dense(3 * u, use_bias=False),
    "lstm": lambda u: keras.layers.LSTM(u, return_sequences=True),
    "gru": lambda u: keras.layers.GRU(u, return_sequences=True),
    "paper_scan": _sru(False, implementation="scan"),
}
for _form, _gates in (("sru", True), ("paper", False)):
    for _implementation in ("auto", "xla", "graph"):
        CANDIDATES[f"{_form}_{_implementation}"] = _sru(_gates, implementation=_implementation)
    for _unroll in UNROLLS:
        CANDIDATES[f"{_form}_unroll{_unroll}"] = _unrolled(_gates, _unroll)
# Not a Keras layer: timed by `torch_functions`, interleaved with the others.
TORCH_CANDIDATES = ("torch_lstm",)

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", None, sorted(PRESETS), "A named set of the flags below; "
                  "flags given on the command line override it.")
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
    f"Which layers to time, from {sorted(CANDIDATES) + list(TORCH_CANDIDATES)}.",
)
flags.DEFINE_list("passes", ["forward", "forward_backward"], "Which passes to time.")
flags.DEFINE_integer("repeats", 10, "Most timed calls per measurement (median).")
flags.DEFINE_float("budget_s", 5.0, "Rough time budget per measurement.")
flags.DEFINE_boolean("outer_jit", True, "TensorFlow: XLA-compile each candidate's function "
                     "(JAX always compiles).")
flags.DEFINE_enum("matmul_precision", None, ["default", "high", "highest"],
                  "JAX's `jax_default_matmul_precision` (and TF32 off in torch for "
                  "'highest'); unset leaves the backend's default.")


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


def _apply_preset():
    for name, value in PRESETS.get(FLAGS.preset, {}).items():
        if not FLAGS[name].present:
            setattr(FLAGS, name, value)


def _is_out_of_memory(err):
    # TF: ResourceExhaustedError; JAX: XlaRuntimeError "RESOURCE_EXHAUSTED";
    # torch: torch.cuda.OutOfMemoryError.
    text = f"{type(err).__name__} {err}"
    return any(key in text for key in ("ResourceExhausted", "RESOURCE_EXHAUSTED", "OutOfMemory"))


def _tf_passes(layer, x, cotangent):
    import tensorflow as tf

    @tf.function(jit_compile=FLAGS.outer_jit)
    def forward(x, cotangent):
        del cotangent
        return (layer(x),)

    @tf.function(jit_compile=FLAGS.outer_jit)
    def forward_backward(x, cotangent):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * cotangent)
        return tape.gradient(loss, [x] + layer.trainable_weights)

    x, cotangent = tf.constant(x), tf.constant(cotangent)
    return {
        name: (lambda fn=fn: np.asarray(fn(x, cotangent)[0]))
        for name, fn in (("forward", forward), ("forward_backward", forward_backward))
    }


def _jax_passes(layer, x, cotangent):
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def output(x, trainable, non_trainable):
        return layer.stateless_call(trainable, non_trainable, x)[0]

    def loss(x, trainable, non_trainable, cotangent):
        return jnp.sum(output(x, trainable, non_trainable) * cotangent)

    forward = jax.jit(lambda x, trainable, non_trainable, cotangent: output(
        x, trainable, non_trainable
    ))
    # Gradients for the input and every weight, as the TF version's tape.
    forward_backward = jax.jit(jax.grad(loss, argnums=(0, 1)))
    args = (jnp.asarray(x), trainable, non_trainable, jnp.asarray(cotangent))
    return {
        name: (lambda fn=fn: jax.block_until_ready(fn(*args)))
        for name, fn in (("forward", forward), ("forward_backward", forward_backward))
    }


def keras_passes(name, x, rng):
    """`{pass: zero-argument call that waits for its result}` for one Keras candidate.

    The output gradient is a random input, not the ones of a plain sum: XLA
    would simplify a matmul's backward against a constant ones tensor into a
    reduction and flatter the floor.
    """
    layer = CANDIDATES[name](x.shape[-1])
    layer.build(x.shape)
    # Output widths differ (floor: 3 * dim), so one output gradient per candidate.
    shape = layer.compute_output_shape(x.shape)
    cotangent = rng.standard_normal(shape, dtype=np.float32)
    if keras.backend.backend() == "jax":
        return _jax_passes(layer, x, cotangent)
    return _tf_passes(layer, x, cotangent)


def torch_passes(name, x, rng):
    """`torch.nn.LSTM` on CUDA (cuDNN) as `keras_passes` does, or why it is skipped."""
    del name
    try:
        import torch
    except ImportError:
        return "skipped: torch is not installed"
    if not torch.cuda.is_available():
        return "skipped: torch sees no CUDA device"
    if FLAGS.matmul_precision == "highest":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    dim = x.shape[-1]
    lstm = torch.nn.LSTM(dim, dim, batch_first=True).cuda()
    inputs = torch.tensor(x, device="cuda", requires_grad=True)
    cotangent = torch.tensor(rng.standard_normal(x.shape, dtype=np.float32), device="cuda")

    def forward():
        with torch.no_grad():
            lstm(inputs)
        torch.cuda.synchronize()

    def forward_backward():
        loss = torch.sum(lstm(inputs)[0] * cotangent)
        torch.autograd.grad(loss, [inputs, *lstm.parameters()])
        torch.cuda.synchronize()

    return {"forward": forward, "forward_backward": forward_backward}


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(names, batch, steps, dim, passes, repeats=10, budget_s=5.0):
    """Returns `{name: {pass: median seconds or error}}` or `{name: "skipped: ..."}`.

    Candidates are timed interleaved: one round calls every candidate once,
    in turn; the median over rounds keeps a load change on a shared machine
    from favouring one candidate.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, dim), dtype=np.float32)
    calls, result = {}, {}
    for name in names:
        build = torch_passes if name in TORCH_CANDIDATES else keras_passes
        built = build(name, x, rng)
        if isinstance(built, str):
            result[name] = built
        else:
            calls[name], result[name] = built, {}
    for p in passes:
        running = []
        for name in calls:
            try:
                for _ in range(2):  # compile, then warm
                    calls[name][p]()
                running.append(name)
            except Exception as err:  # noqa: BLE001 -- only out-of-memory is reported
                if not _is_out_of_memory(err):
                    raise
                # Keras LSTM under TF's XLA at B8 T2048 asks for 16 GiB.
                result[name][p] = f"out of memory: {str(err).strip().splitlines()[0]}"
        times = {name: [_timed(calls[name][p])] for name in running}
        round_s = sum(t[0] for t in times.values())
        for _ in range(max(3, min(repeats, int(budget_s / max(round_s, 1e-6)))) - 1):
            for name in running:
                times[name].append(_timed(calls[name][p]))
        for name in running:
            result[name][p] = statistics.median(times[name])
    return result


def _row(batch, steps, dim):
    row = {"batch": batch, "time": steps, "units": dim, "layers": {}}
    seconds = measure(
        FLAGS.candidates, batch, steps, dim, FLAGS.passes, FLAGS.repeats, FLAGS.budget_s
    )
    for name in FLAGS.candidates:
        if isinstance(seconds[name], str):
            row["layers"][name] = {"skipped": seconds[name]}
            continue
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
        for peer in ("lstm", "torch_lstm"):
            if ratio(p, peer, "sru_xla") is not None:
                row[f"{peer}_{p}_x_sru"] = ratio(p, peer, "sru_xla")
            if ratio(p, peer, "paper_auto") is not None:
                row[f"{peer}_{p}_x_paper_auto"] = ratio(p, peer, "paper_auto")
        if ratio(p, "paper_scan", "paper_xla") is not None:
            row[f"paper_{p}_scan_x_loop"] = ratio(p, "paper_scan", "paper_xla")
    return row


def _table_line(row, name):
    t = row["layers"][name]
    cells = [f"B{row['batch']:<3d} T{row['time']:<5d} d{row['units']:<5d} {name:14s}"]
    if "skipped" in t:
        return "  ".join(cells + [t["skipped"]])
    for p in FLAGS.passes:
        if f"{p}_ms" not in t:
            cells.append(f"{p} {t[f'{p}_error'][:40]}")
            continue
        ratio = t.get(f"{p}_x_floor", float("nan"))
        cells.append(f"{p} {t[f'{p}_ms']:9.2f} ms ({ratio:5.2f}x)")
    return "  ".join(cells)


def main(argv):
    del argv
    _apply_preset()
    known = set(CANDIDATES) | set(TORCH_CANDIDATES)
    unknown = sorted(set(FLAGS.candidates) - known)
    if unknown:
        raise app.UsageError(f"Unknown candidates {unknown}; choose from {sorted(known)}")
    if FLAGS.matmul_precision and keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", FLAGS.matmul_precision)
    load_at_start = os.getloadavg()
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
                "command": " ".join(sys.argv),
                "preset": FLAGS.preset,
                **provenance(),
                "load_average_at_start": load_at_start,
                "outer_jit": FLAGS.outer_jit if keras.backend.backend() == "tensorflow" else None,
                "repeats": FLAGS.repeats,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    app.run(main)
