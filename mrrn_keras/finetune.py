"""Fine-tuning a zoo variant on a video dataset with `model.fit`, and evaluating it.

`finetune(FinetuneConfig(...))` is what `recipes/finetune.py` and
`mrrn finetune` run: read the dataset (UCF-101, HMDB-51, folder or CSV; raw
videos or a frame cache), load the variant with new heads for the dataset's
classes, optionally train the heads alone on a frozen backbone for a few
epochs, then train everything with AdamW on a cosine schedule and a loss per
stream plus the fused output. A run writes, under `out_dir`:

    run_config.json      the resolved configuration
    log.csv              per-epoch metrics (appended across restarts)
    tensorboard/         TensorBoard logs
    backup/              BackupAndRestore state while training (deleted at the end)
    best.weights.h5      the best epoch by validation fused accuracy
    metrics.json         final video-level evaluation (top-1/5, per class, confusion)
    confusion_matrix.png, curves.png
    model.keras          the deploy model (fused output only)
    entry/               a zoo entry folder: config.json, card.md, weights, sha256

A run killed at any point and started again with the same configuration
resumes from the last finished epoch (`keras.callbacks.BackupAndRestore`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import time

import keras
import tensorflow as tf

from mrrn_keras.data.cache import open_cache
from mrrn_keras.data.datasets import read_dataset
from mrrn_keras.data.pipeline import Augment, ClipSpec, SkippedVideos, clip_dataset
from mrrn_keras.distribute import is_chief, make_strategy, task_name
from mrrn_keras.finetune_config import FinetuneConfig
from mrrn_keras.model import MRRNBackbone
from mrrn_keras.training import (
    SkippedVideosCallback,
    compile_for_streams,
    evaluate_videos,
    output_keys,
    plot_confusion_matrix,
    plot_history,
)
from mrrn_keras.zoo import load_mrrn, save_entry, variant_info

logger = logging.getLogger(__name__)

BEST_MONITOR = "val_probabilities_acc"
_WARMUP_DONE = "warmup_done.weights.h5"


def _load_variant(variant, num_classes, class_names, pretrained):
    return load_mrrn(
        variant, weights="pretrained" if pretrained else None, num_classes=num_classes,
        stream_outputs=True, class_names=class_names,
    )


def resolve_clip_spec(config: FinetuneConfig, variant_input: dict | None) -> ClipSpec:
    """The `ClipSpec` of a run: the config's values, else the variant's input spec."""
    spec = variant_input or {}
    frames = config.frames or spec.get("frames")
    size = config.size or spec.get("height")
    if frames is None or size is None:
        raise ValueError(
            "The clip length and frame size come from the variant's input spec or from "
            f"`frames` and `size`. Received: frames={config.frames!r}, size={config.size!r}"
        )
    return ClipSpec(
        clip_len=int(frames), size=int(size),
        mode=config.sampling or spec.get("sampling", "segments"),
        stride=config.stride, short=config.short,
    )


def read_sources(config: FinetuneConfig):
    """(train source, test source, class names): raw `VideoIndex`es or `FrameCache`s."""
    if config.cache_dir:
        train = open_cache(pathlib.Path(config.cache_dir) / "train")
        test = open_cache(pathlib.Path(config.cache_dir) / "test")
    else:
        train = read_dataset(config.data_format, config.data_dir, subset="train", split=config.split)
        test = read_dataset(
            config.data_format, config.data_dir, subset="test", split=config.split,
            class_names=train.class_names,
        )
    return train, test, tuple(train.class_names)


def _set_trunks_trainable(model, trainable: bool) -> None:
    for trunk in model.backbone.trunks:
        trunk.trainable = trainable


def _compile(model, config, learning_rate):
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    if config.mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    compile_for_streams(
        model, optimizer, stream_weight=config.stream_weight, jit_compile=config.jit_compile
    )


def _multi_worker_compat(model, strategy, dataset) -> None:
    """Works around two Keras 3.15 `fit` failures under MultiWorkerMirroredStrategy.

    1. `fit` first reduces a distributed batch with `strategy.reduce("MEAN",
       (x, y))` to build metrics; across workers that fails on a nested batch
       ("Attempt to convert a value (PerReplica ...) to a Tensor"). Metrics and
       losses are built here from one local batch instead, and that step is off.
    2. Every step reduces the logs with `strategy.reduce("MEAN", v, axis=0)`,
       which fails on scalar logs ("Invalid reduction dimension 0 for input
       with 0 dimensions", tensorflow/tensorflow#72388). The steps here return
       each log as a 1-vector, which that reduction turns back into a scalar.
    Other strategies are left alone.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with strategy.scope():
        model._symbolic_build(data_batch=next(iter(dataset.take(1))))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    for name in ("train_step", "test_step"):
        step = getattr(type(model), name).__get__(model)
        setattr(model, name, lambda data, step=step: keras.tree.map_structure(
            lambda v: tf.reshape(v, [1]), step(data)))


def _read_log(path) -> dict:
    """Columns of a CSVLogger file as `{name: [float]}`."""
    import csv

    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for row in rows:
        for key, value in row.items():
            if key != "epoch" and value not in ("", None):
                columns.setdefault(key, []).append(float(value))
    return columns


def deploy_model(model):
    """The fused-output twin of a `stream_outputs=True` classifier, same weights.

    Built under the current dtype policy: after a mixed-precision run the
    backbone is rebuilt in float32 (its variables were float32 all along),
    else it is shared.

    Args:
        model: an `MRRNVideoClassifier`.

    Returns:
        An `MRRNVideoClassifier` with `stream_outputs=False`.
    """
    backbone = model.backbone
    if backbone.dtype_policy.name != keras.mixed_precision.global_policy().name:
        backbone = MRRNBackbone.from_config({**backbone.get_config(), "dtype": None})
        backbone.set_weights(model.backbone.get_weights())
    return model.with_heads(backbone=backbone, stream_outputs=False)


def _card(name, config, spec, metrics, counts, seconds, command):
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    per_class = "\n".join(
        f"| {k} | {'n/a' if v is None else pct(v)} |" for k, v in metrics["per_class"].items()
    )
    return f"""# {name}

{'Fine-tuned from' if config.pretrained else 'Trained from scratch (architecture of)'} `{config.variant}` with `mrrn_keras.finetune` on `{config.data_dir}`
({config.data_format}, split {config.split}): {counts['train']} training videos,
{counts['test']} test videos, {len(metrics['per_class'])} classes.

## Protocol
- Input: {spec.clip_len} frames at {spec.size}x{spec.size}, uint8 RGB, `{spec.mode}` sampling
  (stride {spec.stride}, short videos: {spec.short}).
- Test: {config.eval_clips} clip(s) x {config.eval_crops} crop(s) per video, scores averaged per video.
- Training: {config.epochs} epochs ({config.warmup_epochs} with the backbone frozen), AdamW
  (peak lr {config.learning_rate}, weight decay {config.weight_decay}, cosine decay), batch
  {config.batch_size}, a loss per stream (weight {config.stream_weight}) plus the fused output,
  augmentation: {'random resized crops (min area ' + str(config.min_scale) + ')' if config.augment else 'none'},
  flips {'on' if config.flip else 'off'}; seed {config.seed}; {seconds / 60:.1f} min of training.

## Results (test split, video level)
top-1 {pct(metrics['top1'])}, {[k for k in metrics if k.startswith('top') and k != 'top1'][0]}
{pct(next(v for k, v in metrics.items() if k.startswith('top') and k != 'top1'))},
mean class accuracy {pct(metrics['mean_class_accuracy'])}.

| class | accuracy |
|---|---|
{per_class}

## Command
`{command}`
"""


def _callbacks(out, backup_dir, skipped, with_validation):
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        SkippedVideosCallback(skipped),
        keras.callbacks.TensorBoard(str(out / "tensorboard")),
    ]
    if with_validation:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(out / "best.weights.h5"), monitor=BEST_MONITOR, mode="max",
                save_best_only=True, save_weights_only=True,
            )
        )
    return callbacks


def finetune(config: FinetuneConfig, *, build_model=None, command: str | None = None) -> dict:
    """Runs a fine-tuning job end to end; see the module docstring for its outputs.

    Args:
        config: a `FinetuneConfig`.
        build_model: optional `(num_classes, class_names) -> MRRNVideoClassifier` with
            `stream_outputs=True`, called inside the strategy's scope; by
            default the variant is loaded from the zoo with new heads.
        command: the command line behind the run, for the card and metrics.

    Returns:
        The final metrics (as written to `metrics.json`), with `"outputs"`
        naming the files written.
    """
    out = pathlib.Path(config.out_dir)
    chief = is_chief()
    if not chief:
        # Non-chief workers train in lockstep but keep their files (and
        # backups, found again after a restart) apart.
        out = out / f"worker_scratch_{task_name()}"
    out.mkdir(parents=True, exist_ok=True)
    command = command or f"mrrn finetune ({config})"
    (out / "run_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")

    train_src, test_src, class_names = read_sources(config)
    variant_input = None if build_model is not None else dict(variant_info(config.variant).input)
    spec = resolve_clip_spec(config, variant_input)
    backup_root = out / "backup"
    resuming = backup_root.exists()
    if not resuming and (out / "log.csv").exists():
        (out / "log.csv").unlink()

    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(config.seed)
        strategy = make_strategy(config.strategy, tpu=config.tpu)
        with strategy.scope():
            if build_model is not None:
                model = build_model(len(class_names), class_names)
            else:
                model = _load_variant(config.variant, len(class_names), class_names, config.pretrained)
        keys = output_keys(model)
        skipped = SkippedVideos()
        augment = Augment(scale=(config.min_scale, 1.0), flip=config.flip) if config.augment else None
        train_ds = clip_dataset(
            train_src, spec, training=True, batch_size=config.batch_size, augment=augment,
            on_error=config.on_error, skipped=skipped, label_keys=keys, seed=config.seed,
        )
        val_ds = clip_dataset(
            test_src, spec, training=False, batch_size=config.batch_size,
            on_error=config.on_error, skipped=skipped, label_keys=keys, with_video_ids=False,
        )
        num_train = train_src.num_videos if hasattr(train_src, "num_videos") else len(train_src)
        # A fixed epoch length over a repeated stream: skipped videos leave the
        # cardinality unknown, and every multi-worker replica must take the
        # same number of steps.
        steps_per_epoch = max(1, num_train // config.batch_size)
        train_ds = train_ds.repeat()

        start = time.time()
        if config.warmup_epochs:
            done = backup_root / _WARMUP_DONE
            if done.exists():
                with strategy.scope():
                    model.load_weights(str(done))
            else:
                _set_trunks_trainable(model, False)
                with strategy.scope():
                    _compile(model, config, config.learning_rate)
                _multi_worker_compat(model, strategy, train_ds)
                model.fit(
                    train_ds, validation_data=val_ds, epochs=config.warmup_epochs, verbose=2,
                    steps_per_epoch=steps_per_epoch,
                    callbacks=_callbacks(out, backup_root / "warmup", skipped, True),
                )
                _set_trunks_trainable(model, True)
                model.save_weights(str(done))
        decay_steps = (config.epochs - config.warmup_epochs) * steps_per_epoch
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if not config.warmup_epochs else config.learning_rate,
            decay_steps,
            warmup_target=None if config.warmup_epochs else config.learning_rate,
            warmup_steps=0 if config.warmup_epochs else max(1, decay_steps // 20),
        )
        with strategy.scope():
            _compile(model, config, schedule)
        _multi_worker_compat(model, strategy, train_ds)
        model.fit(
            train_ds, validation_data=val_ds, epochs=config.epochs,
            initial_epoch=config.warmup_epochs, steps_per_epoch=steps_per_epoch, verbose=2,
            callbacks=_callbacks(out, backup_root / "main", skipped, True),
        )
        seconds = time.time() - start
        if (out / "best.weights.h5").exists():
            model.load_weights(str(out / "best.weights.h5"))
        shutil.rmtree(backup_root, ignore_errors=True)

        eval_ds = clip_dataset(
            test_src, spec, training=False, batch_size=config.batch_size,
            num_clips=config.eval_clips, num_crops=config.eval_crops,
            on_error=config.on_error, skipped=skipped,
        )
        metrics = evaluate_videos(model, eval_ds, class_names)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    # Built under the caller's policy: a mixed-precision run still exports a
    # float32 model (its variables were float32 all along).
    deploy = deploy_model(model)

    metrics.update(
        command=command, train_seconds=round(seconds, 1), skipped_videos=skipped.total,
        eval_clips=config.eval_clips, eval_crops=config.eval_crops,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion_matrix(metrics["confusion_matrix"], class_names, out / "confusion_matrix.png")
    plot_history(_read_log(out / "log.csv"), out / "curves.png")
    deploy.save(str(out / "model.keras"))
    dataset_name = pathlib.Path(config.data_dir).resolve().name or "dataset"
    architecture = "mrrn" if build_model is not None else pathlib.Path(config.variant).name
    name = config.entry_name or f"{architecture.split('.')[0]}.{pathlib.Path(config.out_dir).name}"
    input_spec = {"frames": spec.clip_len, "height": spec.size, "width": spec.size,
                  "sampling": spec.mode}
    counts = {"train": num_train,
              "test": test_src.num_videos if hasattr(test_src, "num_videos") else len(test_src)}
    top_k = next(k for k in metrics if k.startswith("top") and k != "top1")
    rows = [
        {"name": key, "value": round(metrics[key], 4), "split": "test", "subset": "probabilities",
         "command": command}
        for key in ("top1", top_k, "mean_class_accuracy")
    ]
    save_entry(
        deploy, out / "entry" / name, input_spec=input_spec,
        dataset={"name": dataset_name, "format": config.data_format, "split": str(config.split),
                 "recipe": command},
        metrics=rows,
        description=f"MRRN fine-tuned from {config.variant} on {dataset_name}.",
        card=_card(name, config, spec, metrics, counts, seconds, command),
    )
    metrics["outputs"] = {
        "metrics": str(out / "metrics.json"), "model": str(out / "model.keras"),
        "entry": str(out / "entry" / name), "confusion_matrix": str(out / "confusion_matrix.png"),
        "curves": str(out / "curves.png"), "log": str(out / "log.csv"),
    }
    return metrics


def evaluate(
    model,
    source,
    spec: ClipSpec,
    *,
    class_names=None,
    batch_size: int = 8,
    num_clips: int = 1,
    num_crops: int = 1,
    on_error: str = "skip",
    out_dir=None,
) -> dict:
    """Video-level evaluation of a model on a `VideoIndex` or `FrameCache`.

    Writes `metrics.json` and `confusion_matrix.png` into `out_dir` if given.

    Returns:
        The metrics of `mrrn_keras.training.evaluate_videos`, plus
        `skipped_videos`.
    """
    skipped = SkippedVideos()
    ds = clip_dataset(
        source, spec, training=False, batch_size=batch_size, num_clips=num_clips,
        num_crops=num_crops, on_error=on_error, skipped=skipped,
    )
    class_names = tuple(class_names or source.class_names)
    metrics = evaluate_videos(model, ds, class_names)
    metrics["skipped_videos"] = skipped.total
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        plot_confusion_matrix(metrics["confusion_matrix"], class_names, out / "confusion_matrix.png")
    return metrics

