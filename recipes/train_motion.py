"""Trains `mrrn_tiny.motion`, the bundled checkpoint, on procedural motion videos.

No action-recognition dataset can be downloaded on the machines this project
is built on, so the bundled checkpoint is trained on `mrrn_keras.data.synthetic`
videos, whose classes are defined by motion over time and come in
time-reversed pairs. The same run trains an order-blind twin (same backbone,
same budget, tap vectors averaged over time instead of SRUs) and reports both.

Command (the one behind the shipped entry; fixed seeds):

    python recipes/train_motion.py --out runs/mrrn_tiny_motion --zoo_entry zoo/mrrn_tiny.motion

Smoke size (CI-sized, about a minute):

    python recipes/train_motion.py --smoke --out /tmp/motion_smoke

Cost and result of the shipped run are written into the entry's card.md and
`<out>/metrics.json` by the run itself.
"""

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from mrrn_keras import MRRN, save_entry  # noqa: E402
from mrrn_keras.data.datasets import read_ucf101  # noqa: E402
from mrrn_keras.data.synthetic import MOTION_CLASSES, make_motion_dataset  # noqa: E402
from mrrn_keras.data.video import read_frames  # noqa: E402
from mrrn_keras.training import (  # noqa: E402
    compile_for_streams,
    repeat_labels,
    top1_by_output,
)

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/mrrn_tiny_motion", "Output folder.")
flags.DEFINE_string("data_dir", None, "Motion dataset root; generated if missing. Default: <out>/data.")
flags.DEFINE_string("zoo_entry", None, "If set, write the trained model as a zoo entry folder here.")
flags.DEFINE_integer("videos_per_class", 300, "Videos per class (train + test).")
flags.DEFINE_integer("video_frames", 16, "Frames per generated video.")
flags.DEFINE_integer("frames", 8, "Frames per clip seen by the model (TSN segments).")
flags.DEFINE_integer("size", 64, "Frame height and width.")
flags.DEFINE_integer("epochs", 20, "Epochs for the model and for the twin.")
flags.DEFINE_integer("batch_size", 16, "Clips per batch.")
flags.DEFINE_float("learning_rate", 3e-3, "Peak AdamW learning rate (cosine decay).")
flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay.")
flags.DEFINE_integer("seed", 0, "Seed of the data and of training.")
flags.DEFINE_boolean("twin", True, "Also train the order-blind twin.")
flags.DEFINE_boolean("smoke", False, "Tiny sizes for a quick end-to-end check.")

ARCHITECTURE = dict(
    backbone="resnet18",
    backbone_width=0.25,
    sru_units=64,
    sru_layers=2,
    state_gates=False,
    time_pooling="mean",
    dropout=0.2,
    fusion="fixed",
)


def load_split(root, subset, size):
    """Decodes every video of a split into memory: uint8 (N, F, S, S, 3)."""
    index = read_ucf101(root, split=1, subset=subset)
    clips = np.stack([read_frames(p, size=size) for p in index.paths])
    return clips, np.asarray(index.labels, "int32"), index.class_names


def segment_indices(num_frames, clip_len, training, seed=None):
    """TSN segments in-graph: a random frame per segment, or the centre one."""
    seg = num_frames / clip_len
    starts = tf.range(clip_len, dtype=tf.float32) * seg
    offset = (
        tf.random.uniform((clip_len,), 0.0, seg, seed=seed) if training else tf.fill((clip_len,), seg / 2)
    )
    return tf.cast(tf.floor(starts + offset), tf.int32)


def make_dataset(clips, labels, model, clip_len, training, batch_size, seed):
    num_frames = clips.shape[1]
    ds = tf.data.Dataset.from_tensor_slices((clips, labels))
    if training:
        ds = ds.shuffle(len(clips), seed=seed, reshuffle_each_iteration=True)

    def sample(clip, label):
        return tf.gather(clip, segment_indices(num_frames, clip_len, training)), label

    ds = ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (x, repeat_labels(model, y)))
    return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def train_one(name, arch, data, flags_values, out):
    """Trains one architecture; returns (deploy model, metrics, seconds)."""
    (train_x, train_y), (test_x, test_y), class_names = data
    keras.utils.set_random_seed(flags_values["seed"])
    size = flags_values["size"]
    model = MRRN(
        len(class_names), stream_outputs=True, class_names=class_names,
        image_size=(size, size), **arch,
    )
    steps = flags_values["epochs"] * (len(train_x) // flags_values["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=flags_values["learning_rate"],
        warmup_steps=max(1, steps // 20),
    )
    compile_for_streams(
        model, keras.optimizers.AdamW(schedule, weight_decay=flags_values["weight_decay"])
    )
    train_ds = make_dataset(
        train_x, train_y, model, flags_values["frames"], True, flags_values["batch_size"], flags_values["seed"]
    )
    test_ds = make_dataset(
        test_x, test_y, model, flags_values["frames"], False, flags_values["batch_size"], None
    )
    start = time.time()
    history = model.fit(
        train_ds, epochs=flags_values["epochs"], verbose=2,
        callbacks=[keras.callbacks.CSVLogger(str(out / f"{name}_log.csv"))],
    )
    seconds = time.time() - start
    predictions = model.predict(test_ds.map(lambda x, y: x), verbose=0)
    metrics = top1_by_output(predictions, test_y)
    metrics["train_fused_acc_last_epoch"] = float(history.history["probabilities_acc"][-1])

    return model.with_heads(stream_outputs=False), metrics, seconds


def write_entry(entry_dir, model, metrics, twin_metrics, flags_values, seconds, counts, command):
    """Writes the zoo entry (config.json, card.md, weights) with `mrrn_keras.save_entry`."""
    entry_dir = pathlib.Path(entry_dir)
    size = flags_values["size"]
    data_desc = (
        f"mrrn_keras.data.synthetic motion videos: {len(MOTION_CLASSES)} classes, "
        f"{flags_values['videos_per_class']} videos per class, {flags_values['video_frames']} "
        f"frames at {size}x{size}, mpeg4 .avi, seed {flags_values['seed']}; UCF-101 layout, split 1 "
        f"({counts['train']} train / {counts['test']} test videos, test groups disjoint)"
    )
    rows = [
        {"name": "top1", "value": round(value, 4), "split": "test", "subset": key, "command": command}
        for key, value in metrics.items() if not key.startswith("train_")
    ] + [
        {"name": "top1", "value": round(value, 4), "split": "test",
         "subset": f"order_blind_twin/{key}", "command": command}
        for key, value in twin_metrics.items() if not key.startswith("train_")
    ]
    input_spec = {"frames": flags_values["frames"], "height": size, "width": size, "fps": 8,
                  "sampling": "segments"}
    dataset = {"name": "synthetic-motion-9", "split": "1", "recipe": command}
    entry = {"name": entry_dir.name, "input": input_spec, "params": int(model.count_params()),
             "labels": list(model.class_names), "dataset": dataset}
    save_entry(
        model, entry_dir, input_spec=input_spec, dataset=dataset, metrics=rows,
        description="Tiny MRRN (ResNet-18 x0.25, 2x64 SRUs) trained on procedural motion videos.",
        card=card_text(entry, metrics, twin_metrics, data_desc, seconds, flags_values),
    )


def card_text(entry, metrics, twin_metrics, data_desc, seconds, fv):
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    rows = "\n".join(
        f"| {k} | {pct(metrics[k])} | {pct(twin_metrics[k]) if k in twin_metrics else 'n/a'} |"
        for k in ["probabilities", "low", "mid", "high"]
    )
    return f"""# {entry['name']}

A tiny MRRN trained on procedural *motion* videos. It exists so that
`load_mrrn("{entry['name']}")` and `mrrn predict` work out of the box, offline, with a
real trained checkpoint: no action-recognition dataset or ImageNet weight file
can be reached from the machines this project is built on.

## Model
- MRRN, backbone resnet18 at width 0.25 (stages of 16/32/64/128 channels), shared
  backbone, taps low/mid/high, 2 stacked SRUs of 64 units per stream (2017 form,
  gates read x only), mean time pooling, dropout 0.2, equal fixed fusion.
- Input: {entry['input']['frames']} frames at {entry['input']['height']}x{entry['input']['width']},
  uint8 RGB, sampled as TSN segments (centre frame of each segment at test time).
  The model preprocesses frames itself.
- Parameters: {entry['params']:,}.

## Data
{data_desc}.
Classes: {', '.join(entry['labels'])}. Each class is defined by how an object
moves, not by how it looks: shape, colour, texture and background clutter are
drawn from the same distribution for every class, and the classes come in
time-reversed pairs (move_left/move_right, move_up/move_down, rotate_cw/rotate_ccw,
grow/shrink; still is its own reverse), so a model that ignores frame order cannot
separate a pair.

## Results (held-out test split, one clip per video, centre segments)
| output | MRRN (SRU streams) | order-blind twin (mean of frame features) |
|---|---|---|
{rows}

The twin has the same backbone, taps, heads and training budget ({fv['epochs']} epochs),
with the SRUs removed and tap vectors averaged over time. Chance is {pct(1 / len(entry['labels']))}.

## Training
`{entry['dataset']['recipe']}`

AdamW (peak lr {fv['learning_rate']}, weight decay {fv['weight_decay']}, cosine decay with 5% warm-up),
batch {fv['batch_size']}, {fv['epochs']} epochs, a cross-entropy loss on each stream and
on the fused output, seed {fv['seed']}. Wall time of the MRRN training: {seconds / 60:.1f} min
on 2 CPU cores (TensorFlow {tf.__version__}).

## Intended use and limits
- Intended: a working example and a starting point for fine-tuning (`load_mrrn(...,
  num_classes=N)`), and a smoke test of the whole pipeline.
- Not a human-action model: it has never seen a real video. On real footage its
  labels describe the dominant motion at best.
- Synthetic scenes are simple (one moving object, static clutter); expect no
  robustness to camera motion, cuts or multiple movers.
"""


def main(argv):
    del argv
    fv = {k: FLAGS[k].value for k in (
        "videos_per_class", "video_frames", "frames", "size", "epochs", "batch_size",
        "learning_rate", "weight_decay", "seed", "twin", "smoke")}
    if FLAGS.smoke:
        fv.update(videos_per_class=8, epochs=1, size=32, frames=4, video_frames=8, batch_size=8)
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = pathlib.Path(FLAGS.data_dir or out / "data")
    command = "python " + " ".join(
        ["recipes/train_motion.py"] + [a for a in sys.argv[1:]]
    )
    (out / "flags.json").write_text(json.dumps({**fv, "command": command}, indent=2))

    if not (data_dir / "splits" / "classInd.txt").exists():
        logging.info("Generating the motion dataset in %s", data_dir)
        make_motion_dataset(
            data_dir, videos_per_class=fv["videos_per_class"], frames=fv["video_frames"],
            size=fv["size"], seed=fv["seed"],
        )
    train_x, train_y, class_names = load_split(data_dir, "train", fv["size"])
    test_x, test_y, _ = load_split(data_dir, "test", fv["size"])
    logging.info("train %s test %s", train_x.shape, test_x.shape)
    data = ((train_x, train_y), (test_x, test_y), class_names)

    model, metrics, seconds = train_one("mrrn", ARCHITECTURE, data, fv, out)
    twin_metrics = {}
    if fv["twin"]:
        twin_arch = {**ARCHITECTURE, "sru_layers": 0}
        _, twin_metrics, _ = train_one("twin", twin_arch, data, fv, out)
    result = {
        "mrrn_top1": metrics, "twin_top1": twin_metrics, "train_seconds": seconds,
        "train_videos": len(train_x), "test_videos": len(test_x), "command": command,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    model.save(str(out / "mrrn_tiny_motion.keras"))
    print(json.dumps(result, indent=2))
    if FLAGS.zoo_entry:
        write_entry(
            FLAGS.zoo_entry, model, metrics, twin_metrics, fv, seconds,
            {"train": len(train_x), "test": len(test_x)}, command,
        )


if __name__ == "__main__":
    app.run(main)
