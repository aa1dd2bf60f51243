"""Can the tiny MRRN learn a subset of the motion classes? One small training run, as JSON.

The bundled `mrrn_tiny.motion` learns translations and grow/shrink but leaves
RotateCW, RotateCCW and Still near chance among themselves. This probe trains
the same architecture on a class subset rendered in memory
(`mrrn_keras.data.synthetic.render_dataset`, no video codec) so that one
change can be tried in minutes instead of a full retrain: frame size, epochs,
data, an `MRRN` argument, or one of these probe-only changes (they patch the
renderer or the model graph in this process; the library offers none of them):

    --no_noise         no per-frame brightness flicker or pixel noise
    --object_size A,B  the object's half-width drawn from A..B of the frame
                       (the dataset's is 0.10..0.16), for every class alike
    --tap_grid G       taps averaged to a GxG grid (at most the map's size)
                       and flattened, instead of one vector per tap
    --tap_diff         each tap sequence x_t extended with x_t - x_{t-1}
    --symmetries ...   training set expanded by time reversal / mirror images
                       with the labels mapped (RotateCW <-> RotateCCW, ...)

    python bench/motion_probe.py --size 64 --epochs 12
    python bench/motion_probe.py --size 64 --epochs 24 --per_class 660
    python bench/motion_probe.py --size 64 --epochs 12 --tap_grid 4
    python bench/motion_probe.py --size 64 --epochs 6 --symmetries reverse,hflip

It runs on any Keras backend without TensorFlow, so `bash bench/gpu.sh motion
...` runs it on the JAX GPU machine. Prints `{"backend",
"tensorflow_imported", "size", "epochs", "frames", "model", "changes",
"train_clips", "train_seconds", "train_top1", "test_top1", "per_class"}`; the
train/test split is by clip index (the first `--test_per_class` clips of each
class are the test set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrrn_keras import MRRN  # noqa: E402
from mrrn_keras.data import synthetic  # noqa: E402
from mrrn_keras.layers import taps  # noqa: E402
import mrrn_keras.model  # noqa: E402

# Mirror images of the motions: a left-right mirror swaps left/right and the turning sense,
# an up-down mirror swaps up/down and the turning sense.
HFLIP = {"move_left": "move_right", "move_right": "move_left",
         "rotate_cw": "rotate_ccw", "rotate_ccw": "rotate_cw"}
VFLIP = {"move_up": "move_down", "move_down": "move_up",
         "rotate_cw": "rotate_ccw", "rotate_ccw": "rotate_cw"}

ARCHITECTURE = dict(backbone="resnet18", backbone_width=0.25, sru_units=64, sru_layers=2,
                    state_gates=False, time_pooling="mean", dropout=0.2, fusion="fixed")


def _patch_object_size(low: float, high: float) -> None:
    """Draws the object's half-width from `low..high` of the frame (every class alike)."""
    draw = synthetic._draw_scene

    def scene(rng, size):
        drawn = draw(rng, size)
        u = (drawn["half"] / size - 0.10) / 0.06  # the dataset's uniform draw, back in [0, 1]
        drawn["half"] = (low + (high - low) * u) * size
        return drawn

    synthetic._draw_scene = scene


class _GridPool(keras.layers.Layer):
    """(N, h, w, C) -> (N, g*g*C): averages over a g x g grid of equal cells."""

    def __init__(self, grid, **kwargs):
        super().__init__(**kwargs)
        self.grid = grid

    def call(self, x):
        g = min(self.grid, x.shape[1])
        cell = (x.shape[1] // g, x.shape[2] // g)
        x = keras.ops.average_pool(x, cell, strides=cell)
        return keras.ops.reshape(x, (-1, g * g * x.shape[-1]))


class _WithDifference(keras.layers.Layer):
    """(B, T, C) -> (B, T, 2C): [x_t, x_t - x_{t-1}] (zero difference at t = 0)."""

    def call(self, x):
        previous = keras.ops.concatenate([x[:, :1], x[:, :-1]], axis=1)
        return keras.ops.concatenate([x, x - previous], axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:2], 2 * shape[2])


def _patch_taps(grid: int, difference: bool) -> None:
    """Changes how the MRRNs built in this process turn feature maps into tap sequences."""
    if grid:
        taps.SPATIAL_POOLINGS["avg"] = lambda: _GridPool(grid)
    tap_sequences = mrrn_keras.model.tap_sequences

    def patched(frames, backbone, *, pooling="avg"):
        sequences = tap_sequences(frames, backbone, pooling=pooling)
        if difference:
            sequences = {tap: _WithDifference()(x) for tap, x in sequences.items()}
        return sequences

    mrrn_keras.model.tap_sequences = patched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", default="still,rotate_cw,rotate_ccw")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--frames", type=int, default=8, help="of 16 rendered, every other one")
    parser.add_argument("--per_class", type=int, default=260)
    parser.add_argument("--test_per_class", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--model", default="{}", help="JSON of MRRN arguments to change")
    parser.add_argument("--no_noise", action="store_true",
                        help="render without the per-frame brightness flicker and pixel noise")
    parser.add_argument("--symmetries", default="",
                        help="comma-separated training-set expansions with the labels mapped: "
                             "reverse (time), hflip, vflip")
    parser.add_argument("--object_size", default=None, help="A,B: object half-width range")
    parser.add_argument("--tap_grid", type=int, default=0, help="taps averaged to a GxG grid")
    parser.add_argument("--tap_diff", action="store_true", help="taps extended by x_t - x_{t-1}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.object_size:
        _patch_object_size(*map(float, args.object_size.split(",")))
    if args.tap_grid or args.tap_diff:
        _patch_taps(args.tap_grid, args.tap_diff)

    if args.no_noise:
        palindrome = synthetic._palindrome

        def flat(first_half, frames):  # gains of 1 and zero noise
            out = palindrome(first_half, frames)
            return np.ones_like(out) if out.ndim == 1 else np.zeros_like(out)

        synthetic._palindrome = flat
    classes = tuple(args.classes.split(","))
    clips, labels = synthetic.render_dataset(args.per_class, frames=16, size=args.size,
                                             seed=args.seed, classes=classes)
    step = 16 // args.frames
    clips = clips[:, step // 2::step]
    test = (np.arange(len(clips)) % args.per_class) < args.test_per_class

    train_x, train_y = clips[~test], labels[~test]
    for symmetry in filter(None, args.symmetries.split(",")):
        mapping = {"reverse": synthetic.REVERSED, "hflip": HFLIP, "vflip": VFLIP}[symmetry]
        moved = {"reverse": lambda c: c[:, ::-1], "hflip": lambda c: c[:, :, :, ::-1],
                 "vflip": lambda c: c[:, :, ::-1]}[symmetry](train_x)
        new_y = np.array([classes.index(mapping.get(classes[k], classes[k])) for k in train_y])
        train_x = np.concatenate([train_x, moved])
        train_y = np.concatenate([train_y, new_y])

    keras.utils.set_random_seed(args.seed)
    changes = json.loads(args.model)
    model = MRRN(len(classes), image_size=(args.size, args.size), **{**ARCHITECTURE, **changes})
    steps = args.epochs * (len(train_x) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=args.learning_rate, warmup_steps=max(1, steps // 20))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    start = time.time()
    history = model.fit(train_x, train_y, batch_size=args.batch_size,
                        epochs=args.epochs, verbose=0, shuffle=True)
    seconds = time.time() - start
    predicted = model.predict(clips[test], verbose=0).argmax(-1)
    truth = labels[test]
    probe_only = {k: getattr(args, k) for k in
                  ("no_noise", "object_size", "tap_grid", "tap_diff", "symmetries")
                  if getattr(args, k)}
    print(json.dumps({
        "backend": keras.backend.backend(), "tensorflow_imported": "tensorflow" in sys.modules,
        "size": args.size, "epochs": args.epochs, "frames": args.frames, "model": changes,
        "changes": probe_only, "train_clips": len(train_x), "train_seconds": round(seconds),
        "train_top1": round(float(history.history["accuracy"][-1]), 4),
        "test_top1": round(float((predicted == truth).mean()), 4),
        "per_class": {name: round(float((predicted[truth == k] == k).mean()), 4)
                      for k, name in enumerate(classes)},
    }))


if __name__ == "__main__":
    main()
