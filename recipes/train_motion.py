"""Trains `mrrn_tiny.motion`, the bundled checkpoint, on procedural motion videos.

No action-recognition dataset can be downloaded on the machines this project
is built on, so the bundled checkpoint is trained on `mrrn_keras.data.synthetic`
videos, whose classes are defined by motion over time and come in
time-reversed pairs. The recipe is thin: it renders the videos (UCF-101
layout), then trains with the library's own pipeline and loop,
`mrrn_keras.finetune.finetune` (from scratch, `build_model=`), which decodes
the files, samples TSN segments, evaluates the test split once and writes a
`.keras` model and metrics. Each seed trains the MRRN and an order-blind twin
(same backbone, heads, data and budget; tap vectors averaged over time instead
of SRUs). The zoo entry holds the MRRN of the first seed whose training left
chance (the test split chooses nothing); its card gives every accuracy as
mean and spread over all seeds.

Command (the one behind the shipped entry):

    python recipes/train_motion.py --out runs/mrrn_tiny_motion --zoo_entry zoo/mrrn_tiny.motion

Smoke size (CI-sized, under a minute):

    python recipes/train_motion.py --smoke --out /tmp/motion_smoke

Cost and results of the shipped run are written into the entry's card.md and
`<out>/summary.json` by the run itself.
"""

import dataclasses
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from mrrn_keras import MRRN, save_entry  # noqa: E402
from mrrn_keras.data.synthetic import MOTION_CLASSES, make_motion_dataset  # noqa: E402
from mrrn_keras.errors import ConfigError, MRRNError  # noqa: E402
from mrrn_keras.finetune import finetune  # noqa: E402
from mrrn_keras.finetune_config import FinetuneConfig  # noqa: E402
from mrrn_keras.training import read_training_log, seed_spread  # noqa: E402
from mrrn_keras.zoo import load_model_file  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/mrrn_tiny_motion", "Output folder.")
flags.DEFINE_string("data_dir", None, "Motion dataset root; generated if missing. Default: <out>/data.")
flags.DEFINE_string("zoo_entry", None, "If set, write the shipped model (the first seed whose "
                    "training left chance) as a zoo entry folder here.")
flags.DEFINE_integer("videos_per_class", 300, "Videos per class (train + test).")
flags.DEFINE_integer("video_frames", 16, "Frames per generated video.")
flags.DEFINE_integer("frames", 8, "Frames per clip seen by the model (TSN segments).")
flags.DEFINE_integer("size", 64, "Frame height and width.")
flags.DEFINE_integer("epochs", 16, "Epochs for the model and for the twin.")
flags.DEFINE_integer("batch_size", 16, "Clips per batch.")
flags.DEFINE_float("learning_rate", 3e-3, "Peak AdamW learning rate (cosine decay).")
flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay.")
flags.DEFINE_integer("data_seed", 0, "Seed of the rendered videos.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds, each trained to the end and reported.")
flags.DEFINE_boolean("twin", True, "Also train the order-blind twin for every seed.")
flags.DEFINE_boolean("deterministic", False, "TensorFlow op determinism (Keras then turns XLA "
                     "off: several times slower).")
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
TWIN = {**ARCHITECTURE, "sru_layers": 0}
DESCRIPTION = "Tiny MRRN (ResNet-18 x0.25, 2x64 SRUs) trained on procedural motion videos."


def train_one(kind: str, seed: int, fv: dict, data_dir: pathlib.Path, out: pathlib.Path) -> dict:
    """Trains the MRRN (`kind="mrrn"`) or its twin with `finetune`; returns its metrics.

    A finished run in its folder is read back instead of trained again, so a
    multi-seed command that was stopped carries on where it stopped (an
    interrupted run resumes from its last epoch, see `finetune`).
    """
    arch = ARCHITECTURE if kind == "mrrn" else TWIN
    size = fv["size"]
    run_dir = out / f"seed{seed}" / kind

    def build(num_classes, class_names):
        return MRRN(num_classes, stream_outputs=True, class_names=class_names,
                    image_size=(size, size), **arch)

    config = FinetuneConfig(
        variant="mrrn_tiny.motion", data_format="ucf101", data_dir=str(data_dir),
        out_dir=str(run_dir), pretrained=False,
        frames=fv["frames"], size=size, sampling="segments", batch_size=fv["batch_size"],
        epochs=fv["epochs"], learning_rate=fv["learning_rate"], weight_decay=fv["weight_decay"],
        augment=False, seed=seed, deterministic=fv["deterministic"], jit_compile=not fv["smoke"],
        entry_name=f"mrrn_tiny.motion_{kind}_seed{seed}",
    )
    if (run_dir / "metrics.json").exists() and (run_dir / "model.keras").exists():
        saved = json.loads((run_dir / "run_config.json").read_text())
        if saved != dataclasses.asdict(config):
            raise ConfigError(
                f"{run_dir} holds a finished run with other settings; use another --out. "
                f"Differences: { {k: v for k, v in saved.items() if dataclasses.asdict(config).get(k) != v} }"
            )
        logging.info("Reusing the finished run in %s", run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics["outputs"] = {"model": str(run_dir / "model.keras")}
        return metrics
    return finetune(config, build_model=build, command=fv["command"])


def final_train_top1(run_dir: pathlib.Path) -> float:
    """Fused training top-1 of the last epoch, from the run's `log.csv`."""
    column = read_training_log(run_dir / "log.csv").get("probabilities_acc", [])
    return column[-1] if column else 0.0


def shipped_seed(out: pathlib.Path, seeds: list[int]) -> int:
    """The first seed whose MRRN left chance in training (final training top-1 >= 2x chance).

    Decided on training data only (the test split picks nothing): a run that
    never left its starting plateau is not shipped; otherwise the order of
    `--seeds` decides. If no run left chance, the first seed.
    """
    floor = 2.0 / len(MOTION_CLASSES)
    for seed in seeds:
        if final_train_top1(out / f"seed{seed}" / "mrrn") >= floor:
            return seed
    return seeds[0]


def summarize(runs: dict) -> dict:
    """`{kind: {"top1": spread, "per_class": {class: spread}}}` over seeds."""
    summary = {}
    for kind, by_seed in runs.items():
        metrics = list(by_seed.values())
        summary[kind] = {
            "top1": seed_spread([m["top1"] for m in metrics]),
            "per_class": {
                name: seed_spread([m["per_class"][name] for m in metrics])
                for name in metrics[0]["per_class"]
            },
            "train_seconds": [m["train_seconds"] for m in metrics],
        }
    return summary


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def pm(s: dict) -> str:
    """`mean ± std (min–max)` in percent."""
    return f"{pct(s['mean'])} ± {100 * s['std']:.1f} ({pct(s['min'])}–{pct(s['max'])})"


def card_text(name, fv, summary, shipped, twin_shipped, counts, params, command, seed):
    seeds = ", ".join(str(s) for s in fv["seeds"])
    has_twin = "twin" in summary
    rows = [f"| top-1 (all classes) | {pct(shipped['top1'])} | {pm(summary['mrrn']['top1'])} | "
            + (f"{pm(summary['twin']['top1'])} |" if has_twin else "n/a |")]
    for cls in shipped["per_class"]:
        twin_cell = pm(summary["twin"]["per_class"][cls]) if has_twin else "n/a"
        rows.append(f"| {cls} | {pct(shipped['per_class'][cls])} | "
                    f"{pm(summary['mrrn']['per_class'][cls])} | {twin_cell} |")
    minutes = np.mean(summary["mrrn"]["train_seconds"]) / 60
    if fv["deterministic"]:
        determinism = "TensorFlow op determinism on (XLA off)"
    elif fv["smoke"]:
        determinism = "no XLA at smoke size"
    else:
        determinism = (
            "XLA on and TensorFlow op determinism off (Keras compiles no XLA step under it;\n"
            "`--deterministic` trades the speed for bit-identical reruns)"
        )
    streams = " / ".join(
        f"{key} {pct(shipped['by_output'][key])}" for key in ("low", "mid", "high")
        if key in shipped.get("by_output", {})
    )
    twin_note = (
        f"Order-blind twin, seed {seed}: {pct(twin_shipped['top1'])}." if twin_shipped else ""
    )
    return f"""# {name}

A tiny MRRN trained on procedural *motion* videos. It exists so that
`load_mrrn("{name}")` and `mrrn predict` work out of the box, offline, with a
real trained checkpoint: no action-recognition dataset or ImageNet weight file
can be reached from the machines this project is built on.

## Model
- MRRN, backbone resnet18 at width 0.25 (stages of 16/32/64/128 channels), shared
  backbone, taps low/mid/high, 2 stacked SRUs of 64 units per stream (2017 form,
  gates read x only), mean time pooling, dropout 0.2, equal fixed fusion.
- Input: {fv['frames']} frames at {fv['size']}x{fv['size']}, uint8 RGB, sampled as TSN segments
  (centre frame of each segment at test time). The model preprocesses frames itself.
- Parameters: {params:,}.

## Data
`mrrn_keras.data.synthetic` motion videos: {len(MOTION_CLASSES)} classes, {fv['videos_per_class']}
videos per class, {fv['video_frames']} frames at {fv['size']}x{fv['size']}, mpeg4 .avi, data seed
{fv['data_seed']}; UCF-101 layout, split 1 ({counts['train']} train / {counts['test']} test videos,
test groups disjoint from training groups). Each class is defined by how an object
moves, not by how it looks: shape, colour, texture and background clutter are
drawn from the same distribution for every class, and the classes come in
time-reversed pairs (MoveLeft/MoveRight, MoveUp/MoveDown, RotateCW/RotateCCW,
Grow/Shrink; Still is its own reverse), so a model that ignores frame order cannot
separate a pair.

## Results (held-out test split, one clip per video, centre segments)
Training seeds {seeds} (same data, same budget); "mean ± std (min–max)" over the seeds.
The shipped weights are seed {seed}'s MRRN: the first seed of the list whose training left
chance (final training top-1 at least twice chance; the test split chose nothing).

| class | shipped MRRN | MRRN over seeds | order-blind twin over seeds |
|---|---|---|---|
{chr(10).join(rows)}

The twin has the same backbone, taps, heads, data and training budget, with the SRUs
removed and tap vectors averaged over time. Chance is {pct(1 / len(MOTION_CLASSES))}. {twin_note}
Each stream of the shipped MRRN alone (its own head): {streams}.

## Training
`{command}`

Trained with `mrrn_keras.finetune.finetune` from scratch (the library's decoding
pipeline, TSN segment sampling, no augmentation): AdamW (peak lr {fv['learning_rate']},
weight decay {fv['weight_decay']}, cosine decay with 5% warm-up), batch {fv['batch_size']},
{fv['epochs']} epochs, a cross-entropy loss on each stream and on the fused output, the
last epoch kept, {determinism}. Mean wall time of one MRRN training: {minutes:.1f} min
({_runtime()}).

## Intended use and limits
- Intended: a working example and a starting point for fine-tuning (`load_mrrn(...,
  num_classes=N)`), and a smoke test of the whole pipeline.
- Not a human-action model: it has never seen a real video. On real footage its
  labels describe the dominant motion at best.
- It does not tell a rotating object from a still one: RotateCW, RotateCCW and Still stay
  near chance among themselves (table above). `bench/motion_probe.py` finds the same for
  this architecture at 96 px, with three times the steps, without the per-frame noise and
  with max-pooled taps (docs/benchmarks.md, section 9).
- Synthetic scenes are simple (one moving object, static clutter); expect no
  robustness to camera motion, cuts or multiple movers.
"""


def _runtime() -> str:
    """Where the run trained: Keras backend and version, devices, CPU count."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        version = f"TensorFlow {tf.__version__}"
    elif backend == "jax":
        import jax

        version = f"JAX {jax.__version__}"
    else:
        version = backend
    devices = [d for d in keras.distribution.list_devices() if not d.startswith("cpu")] \
        if backend == "jax" else []
    where = f"{len(devices)} accelerator(s)" if devices else f"{os.cpu_count()} CPU cores"
    return f"Keras {keras.__version__} on {version}, {where}"


def main(argv):
    del argv
    fv = {k: FLAGS[k].value for k in (
        "videos_per_class", "video_frames", "frames", "size", "epochs", "batch_size",
        "learning_rate", "weight_decay", "data_seed", "twin", "deterministic", "smoke")}
    fv["seeds"] = [int(s) for s in FLAGS.seeds]
    if FLAGS.smoke:
        fv.update(videos_per_class=8, epochs=1, size=32, frames=4, video_frames=8, batch_size=4,
                  seeds=fv["seeds"][:1])
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = pathlib.Path(FLAGS.data_dir or out / "data")
    command = "python " + " ".join(["recipes/train_motion.py", *sys.argv[1:]])
    fv["command"] = command
    (out / "flags.json").write_text(json.dumps(fv, indent=2) + "\n")

    try:
        if not (data_dir / "splits" / "classInd.txt").exists():
            logging.info("Generating the motion dataset in %s", data_dir)
            make_motion_dataset(
                data_dir, videos_per_class=fv["videos_per_class"], frames=fv["video_frames"],
                size=fv["size"], seed=fv["data_seed"],
            )
        kinds = ["mrrn", "twin"] if fv["twin"] else ["mrrn"]
        runs = {kind: {} for kind in kinds}
        for seed in fv["seeds"]:
            for kind in kinds:
                logging.info("Training %s, seed %d", kind, seed)
                runs[kind][seed] = train_one(kind, seed, fv, data_dir, out)
                logging.info("%s seed %d: test top-1 %.4f", kind, seed, runs[kind][seed]["top1"])
    except MRRNError as err:  # bad input: one line, no traceback
        logging.error("%s", err)
        sys.exit(1)

    summary = summarize(runs)
    first = shipped_seed(out, fv["seeds"])
    shipped = runs["mrrn"][first]
    twin_shipped = runs["twin"][first] if fv["twin"] else None
    result = {"summary": summary, "shipped_seed": first, "shipped": {
        k: shipped[k] for k in ("top1", "per_class", "by_output", "train_seconds")},
        "command": command}
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {"top1": v["top1"]} for k, v in summary.items()}, indent=2))
    if FLAGS.zoo_entry:
        model = load_model_file(shipped["outputs"]["model"])
        counts = {"train": shipped["train_videos"], "test": shipped["videos"]}
        entry = pathlib.Path(FLAGS.zoo_entry)
        input_spec = {"frames": fv["frames"], "height": fv["size"], "width": fv["size"], "fps": 8,
                      "sampling": "segments"}
        dataset = {"name": "synthetic-motion-9", "split": "1", "recipe": command}
        rows = [{"name": "top1", "value": round(shipped["top1"], 4), "split": "test",
                 "subset": "probabilities", "command": command}]
        for kind in kinds:
            s = summary[kind]["top1"]
            prefix = "" if kind == "mrrn" else "order_blind_twin/"
            rows += [
                {"name": "top1_mean", "value": round(s["mean"], 4), "split": "test",
                 "subset": f"{prefix}probabilities", "command": command},
                {"name": "top1_std", "value": round(s["std"], 4), "split": "test",
                 "subset": f"{prefix}probabilities", "command": command},
            ]
        save_entry(
            model, entry, input_spec=input_spec, dataset=dataset, metrics=rows,
            description=DESCRIPTION,
            card=card_text(entry.name, fv, summary, shipped, twin_shipped, counts,
                           int(model.count_params()), command, first),
        )
        logging.info("Wrote the zoo entry %s", entry)


if __name__ == "__main__":
    app.run(main)
