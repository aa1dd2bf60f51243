"""Can the tiny MRRN learn a subset of the motion classes? One small training run, as JSON.

The bundled `mrrn_tiny.motion` learns translations and grow/shrink but leaves
RotateCW, RotateCCW and Still near chance among themselves. This probe trains
the same architecture on a class subset rendered in memory
(`mrrn_keras.data.synthetic.render_dataset`, no video codec) so that one
change (frame size, epochs, an architecture argument, the per-frame flicker
and pixel noise) can be tried in minutes instead of a full retrain.

    python bench/motion_probe.py --size 64 --epochs 12
    python bench/motion_probe.py --size 96 --epochs 12
    python bench/motion_probe.py --size 64 --epochs 16 --no_noise
    python bench/motion_probe.py --size 64 --epochs 16 --model '{"tap_pooling": "max"}'

Prints `{"size", "epochs", "frames", "model", "no_noise", "train_seconds",
"train_top1", "test_top1", "per_class"}`; the train/test split is by clip
index (the first `--test_per_class` clips of each class are the test set).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrrn_keras import MRRN  # noqa: E402
from mrrn_keras.data import synthetic  # noqa: E402

ARCHITECTURE = dict(backbone="resnet18", backbone_width=0.25, sru_units=64, sru_layers=2,
                    state_gates=False, time_pooling="mean", dropout=0.2, fusion="fixed")


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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

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

    keras.utils.set_random_seed(args.seed)
    changes = json.loads(args.model)
    model = MRRN(len(classes), image_size=(args.size, args.size), **{**ARCHITECTURE, **changes})
    steps = args.epochs * (int((~test).sum()) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=args.learning_rate, warmup_steps=max(1, steps // 20))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    start = time.time()
    history = model.fit(clips[~test], labels[~test], batch_size=args.batch_size,
                        epochs=args.epochs, verbose=0, shuffle=True)
    seconds = time.time() - start
    predicted = model.predict(clips[test], verbose=0).argmax(-1)
    truth = labels[test]
    print(json.dumps({
        "size": args.size, "epochs": args.epochs, "frames": args.frames, "model": changes,
        "no_noise": args.no_noise, "train_seconds": round(seconds),
        "train_top1": round(float(history.history["accuracy"][-1]), 4),
        "test_top1": round(float((predicted == truth).mean()), 4),
        "per_class": {name: round(float((predicted[truth == k] == k).mean()), 4)
                      for k, name in enumerate(classes)},
    }))


if __name__ == "__main__":
    main()
