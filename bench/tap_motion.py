"""How far does each motion move the shipped model's tap vectors? One JSON line.

For clips of each class (rendered in memory, 8 of 16 frames at 64x64, data
seed 7), the bundled `mrrn_tiny.motion` backbone gives one spatially averaged
vector per tap and frame. This prints, per tap and class, the standard
deviation over a clip's frames (averaged over channels and clips) divided by
the spread of clip-mean vectors over clips: how much a clip's taps move over
time, compared with how different two clips look. Still clips move only by
their per-frame flicker and noise.

    python bench/tap_motion.py
    python bench/tap_motion.py --classes still,rotate_cw,rotate_ccw,move_left,grow --per_class 100
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrrn_keras import load_mrrn  # noqa: E402
from mrrn_keras.data import synthetic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", default="still,rotate_cw,rotate_ccw,move_left,grow")
    parser.add_argument("--per_class", type=int, default=100)
    parser.add_argument("--variant", default="mrrn_tiny.motion")
    args = parser.parse_args()

    model = load_mrrn(args.variant)
    backbone = model.backbone
    preprocessing, trunk = backbone.get_layer("preprocessing"), backbone.get_layer("resnet")
    size = model.input_shape[2]
    classes = tuple(args.classes.split(","))
    clips, labels = synthetic.render_dataset(args.per_class, frames=16, size=size, seed=7,
                                             classes=classes)
    clips = clips[:, 1::2]  # (N, T, H, W, 3)
    maps = {}
    for start in range(0, len(clips), 32):
        batch = clips[start:start + 32]
        frames = keras.ops.reshape(preprocessing(batch), (-1, size, size, 3))
        for tap, feature_map in trunk(frames).items():
            # (N*T, h, w, C) -> spatial average -> (N, T, C), as the model's "avg" taps
            vectors = keras.ops.convert_to_numpy(keras.ops.mean(feature_map, axis=(1, 2)))
            maps.setdefault(tap, []).append(vectors.reshape(len(batch), clips.shape[1], -1))
    report = {}
    for tap, parts in maps.items():
        sequences = np.concatenate(parts)
        across = float(sequences.mean(axis=1).std(axis=0).mean())
        within = sequences.std(axis=1)  # (clips, channels)
        report[tap] = {c: round(float(within[labels == k].mean()) / across, 3)
                       for k, c in enumerate(classes)}
    print(json.dumps({"variant": args.variant, "per_class": args.per_class, **report}))


if __name__ == "__main__":
    main()
