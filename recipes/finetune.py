"""Fine-tunes a zoo variant on a video dataset: `mrrn_keras.finetune.finetune` behind absl flags.

Every `FinetuneConfig` field is a flag of the same name (`--variant`,
`--data_format`, `--data_dir`, `--out_dir`, `--epochs`, `--warmup_epochs`,
`--strategy`, ...; see `--helpfull`). `mrrn finetune` takes the same options.
The run writes its resolved configuration (`run_config.json`), metrics,
plots, a `.keras` model and a zoo entry under `--out_dir`; see
`mrrn_keras/finetune.py`. Killed and restarted with the same command, it
resumes from the last finished epoch.

With `--make_motion_data`, a procedural motion dataset (UCF-101 layout) is
first generated at `--data_dir` if none is there: `--motion_classes` picks a
subset of `mrrn_keras.data.synthetic.MOTION_CLASSES`, relabelled 0..k-1 in
the order given, rendered with a new `--motion_seed`.

Measured (2 CPU cores shared with another training job, TF 2.21): fine-tuning the bundled
`mrrn_tiny.motion` (9 motion classes, 8 frames at 64x64) on a freshly generated 4-class subset,
relabelled 0..3 in a new order, rendered with a new seed, once per training seed:

    python recipes/finetune.py --variant mrrn_tiny.motion --make_motion_data \
        --motion_classes grow,shrink,rotate_cw,rotate_ccw --motion_seed 7 \
        --motion_videos_per_class 60 --data_format ucf101 --data_dir runs/motion4b/data \
        --out_dir runs/motion4b --epochs 12 --warmup_epochs 2 --batch_size 8 \
        --learning_rate 3e-3 --eval_clips 2 --seeds 0,1,2

    176 train / 64 test videos (16 frames at 64x64), 2 frozen-backbone epochs + 10,
    2.3-3.1 min of training per seed. The last epoch is kept (no --validation_fraction) and
    the test split is evaluated once. Test, video level (2 clips averaged), mean ± standard
    deviation over seeds 0, 1, 2 (runs/motion4b/summary.json): top-1 73.4% ± 5.6 (67.2%,
    75.0%, 78.1%); per class Grow 85.4%, Shrink 95.8%, RotateCW 52.1%, RotateCCW 60.4%;
    chance 25%. Same command with --nopretrained --out_dir runs/motion4b_scratch (same
    architecture from scratch, same budget): 26.0% ± 3.9 (21.9%, 26.6%, 29.7%).

The four classes are ones the checkpoint learned (under other label indices),
so this measures how well its body transfers to a new head, not to new motions.

Smoke size (CI: 8 generated videos per class, 1 epoch, no XLA; about a minute):

    python recipes/finetune.py --smoke --variant mrrn_tiny.motion --out_dir /tmp/ft_smoke
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from mrrn_keras.data.synthetic import MOTION_CLASSES, make_motion_dataset  # noqa: E402
from mrrn_keras.errors import MRRNError  # noqa: E402
from mrrn_keras.finetune import finetune  # noqa: E402
from mrrn_keras.finetune_config import FinetuneConfig, config_options  # noqa: E402
from mrrn_keras.training import seed_spread  # noqa: E402

FLAGS = flags.FLAGS
_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           bool: flags.DEFINE_boolean}
for _option in config_options():
    if _option.choices:
        flags.DEFINE_enum(_option.name, _option.default, list(_option.choices), _option.help)
    else:
        _DEFINE[_option.kind](_option.name, _option.default, _option.help)
    if _option.required and _option.name in ("variant", "out_dir"):
        flags.mark_flag_as_required(_option.name)
flags.DEFINE_boolean("make_motion_data", False, "Generate a motion dataset at --data_dir if missing.")
flags.DEFINE_list("motion_classes", ["grow", "shrink", "rotate_cw", "rotate_ccw"],
                  f"Motion classes to generate, from {', '.join(MOTION_CLASSES)}.")
flags.DEFINE_integer("motion_videos_per_class", 40, "Generated videos per class.")
flags.DEFINE_integer("motion_frames", 16, "Frames per generated video.")
flags.DEFINE_integer("motion_size", 64, "Generated frame size.")
flags.DEFINE_integer("motion_seed", 7, "Seed of the generated videos.")
flags.DEFINE_boolean("smoke", False, "Tiny sizes: generated data, 1 epoch, no XLA.")
flags.DEFINE_list("seeds", [], "Train once per seed, each in <out_dir>/seed<N>, and write "
                  "<out_dir>/summary.json with the mean and spread of top-1 (overrides --seed).")


def main(argv):
    del argv
    values = {option.name: FLAGS[option.name].value for option in config_options()}
    if FLAGS.smoke:
        # No XLA on TensorFlow (compiling costs more than 8 tiny steps); JAX
        # without jit runs op by op, far slower still.
        values.update(epochs=1, warmup_epochs=0, batch_size=2,
                      jit_compile=keras.backend.backend() != "tensorflow",
                      data_format="ucf101")
        values["data_dir"] = values["data_dir"] or str(pathlib.Path(values["out_dir"]) / "data")
    if FLAGS.make_motion_data or FLAGS.smoke:
        root = pathlib.Path(values["data_dir"])
        if not (root / "splits" / "classInd.txt").exists():
            logging.info("Generating motion classes %s in %s", FLAGS.motion_classes, root)
            make_motion_dataset(
                root, classes=FLAGS.motion_classes, seed=FLAGS.motion_seed,
                videos_per_class=8 if FLAGS.smoke else FLAGS.motion_videos_per_class,
                frames=FLAGS.motion_frames, size=FLAGS.motion_size,
            )
        values["data_format"] = "ucf101"
    if not values["data_dir"] or not values["data_format"]:
        raise app.UsageError("--data_dir and --data_format are needed (or --smoke)")
    command = "python " + " ".join(["recipes/finetune.py", *sys.argv[1:]])
    seeds = [int(seed) for seed in FLAGS.seeds]
    runs = {}
    try:
        if seeds:
            out = pathlib.Path(values["out_dir"])
            for seed in seeds:
                runs[seed] = finetune(
                    FinetuneConfig(**{**values, "seed": seed, "out_dir": str(out / f"seed{seed}")}),
                    command=command,
                )
                logging.info("seed %d: top-1 %.4f", seed, runs[seed]["top1"])
        else:
            runs[values["seed"]] = finetune(FinetuneConfig(**values), command=command)
    except MRRNError as err:  # bad input: one line, no traceback
        logging.error("%s", err)
        sys.exit(1)
    if seeds:
        first = runs[seeds[0]]
        summary = {
            "command": command, "seeds": seeds,
            "top1": seed_spread([m["top1"] for m in runs.values()]),
            "per_class": {name: seed_spread([m["per_class"][name] for m in runs.values()])
                          for name in first["per_class"]},
            "train_seconds": [m["train_seconds"] for m in runs.values()],
            "videos": first["videos"], "train_videos": first["train_videos"],
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        top1 = summary["top1"]
        logging.info("top-1 over seeds %s: %.4f ± %.4f (min %.4f, max %.4f)", seeds, top1["mean"],
                     top1["std"], top1["min"], top1["max"])
        return
    metrics = runs[values["seed"]]
    logging.info(
        "top-1 %.4f on %d test videos (trained on %d, model: %s; %d unreadable files "
        "skipped), %.0f s training; outputs: %s",
        metrics["top1"], metrics["videos"], metrics["train_videos"],
        metrics["model_selection"]["method"], metrics["skipped_videos"],
        metrics["train_seconds"], metrics["outputs"],
    )


if __name__ == "__main__":
    app.run(main)
