"""Fine-tuning a zoo variant on a video dataset with `model.fit`, and evaluating it.

`finetune(FinetuneConfig(...))` is what `recipes/finetune.py` and
`mrrn finetune` run: read the dataset (UCF-101, HMDB-51, folder or CSV; raw
videos or a frame cache), load the variant with new heads for the dataset's
classes, optionally train the heads alone on a frozen backbone for a few
epochs, then train everything with AdamW (or SGD with momentum) on a cosine
schedule and a loss per stream plus the fused output. A run writes, under `out_dir`:

    run_config.json      the resolved configuration
    log.csv              per-epoch metrics (appended across restarts)
    tensorboard/         TensorBoard logs
    backup/              resume state; deleted only once every output below is written
    best.weights.h5      the best epoch by validation fused accuracy (with
                         `validation_fraction`: groups held out of the training split)
    metrics.json         final video-level evaluation on the test split (top-1/5, per
                         class, confusion), how the model was chosen, videos used/skipped
    confusion_matrix.png, curves.png
    model.keras          the deploy model (fused output only)
    entry/               a zoo entry folder: config.json, card.md, weights, sha256

A run killed at any point and started again with the same configuration
resumes from the last finished epoch (`keras.callbacks.BackupAndRestore`);
killed after training, it goes straight to writing its outputs. A folder
holding a finished run is refused unless `overwrite`; the data, the clip
spec and the folder are checked before anything is written. The run
replaces or removes only what it wrote: the files above are recorded in the
run folder's marker (`mrrn_keras.files.OWNED_MARKER`), and `backup/` and the
entry folder carry markers of their own; a user's file or folder of one of
these names is refused, naming it, before anything is written.

The test split never chooses the model: with `validation_fraction` the epoch
with the best accuracy on groups held out of the training split is kept,
otherwise the last epoch; the test split is evaluated once, at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import pathlib
import time

import keras

from mrrn_keras.data.cache import open_cache
from mrrn_keras.data.clips import Augment, ClipSpec, SkippedVideos
from mrrn_keras.data.datasets import read_dataset, split_by_group, video_groups
from mrrn_keras.data.loader import make_clip_data
from mrrn_keras.distribute import data_parallel_devices, is_chief, make_strategy, run_scope, task_name
from mrrn_keras.errors import ConfigError, RunFolderError
from mrrn_keras.files import check_replaceable, own_folder, record_files, remove_owned, write_whole
from mrrn_keras.finetune_config import FinetuneConfig
from mrrn_keras.hub import is_hub_handle, parse_handle
from mrrn_keras.model import MRRNBackbone
from mrrn_keras.training import (
    EpochLog,
    SkippedVideosCallback,
    compile_for_streams,
    evaluate_videos,
    output_keys,
    plot_confusion_matrix,
    plot_history,
    read_training_log,
)
from mrrn_keras.zoo import ENTRY_KIND, load_mrrn, save_entry, save_model_file, variant_info

logger = logging.getLogger(__name__)

BEST_MONITOR = "val_probabilities_acc"
_WARMUP_DONE = "warmup_done.weights.h5"
# The kinds named by the markers of a run folder and its backup folder.
RUN_KIND = "finetune run"
BACKUP_KIND = "finetune backup"
# The plain files a run writes into its folder, recorded in the folder's marker.
RUN_FILES = ("run_config.json", "log.csv", "best.weights.h5", "metrics.json",
             "confusion_matrix.png", "curves.png", "model.keras")


@contextlib.contextmanager
def op_determinism(enabled: bool):
    """TensorFlow op determinism inside the block when `enabled`, restored after.

    `tf.config.experimental.enable_op_determinism` is process-wide and has no
    public inverse; the previous state is put back through TensorFlow's
    internal switch so one deterministic run does not slow the rest of a
    process down. With `enabled=False`, or under another Keras backend
    (JAX's CPU kernels are deterministic; on a GPU set
    `XLA_FLAGS=--xla_gpu_deterministic_ops=true` before starting), nothing
    changes.

    Args:
        enabled: bool. Turn op determinism on for the block.

    Example:

    >>> with op_determinism(True):
    ...     pass
    """
    if not enabled or keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    if enabled and not before:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if enabled and not before:
            tf_config.disable_op_determinism()


def _variant_input(variant):
    """The variant's input spec `{frames, height, width, sampling}` and fixed size or None."""
    info = variant_info(variant)
    return dict(info.input), info.model["image_size"]


def _variant_stem(variant) -> str:
    """The name a variant is known by, read from the variant itself (no request):
    the last part of a name, folder or URL, or a hub handle's repository."""
    if is_hub_handle(variant):
        return parse_handle(variant).repo
    return pathlib.Path(variant).name


def _load_variant(variant, num_classes, class_names, pretrained):
    return load_mrrn(
        variant, weights="pretrained" if pretrained else None, num_classes=num_classes,
        stream_outputs=True, class_names=class_names,
    )


def resolve_clip_spec(
    config: FinetuneConfig, variant_input: dict | None, *, fixed_size=None
) -> ClipSpec:
    """The `ClipSpec` of a run: the config's values, else the variant's input spec.

    Args:
        config: a `FinetuneConfig` (its `frames`, `size`, `sampling`,
            `stride`, `short`).
        variant_input: the model's input spec `{frames, height, sampling}`
            or None.
        fixed_size: the model's fixed `(height, width)` input, or None when
            it takes any size.

    Raises:
        ConfigError: no clip length or size, or a size the model cannot take.
    """
    spec = variant_input or {}
    frames = config.frames or spec.get("frames")
    size = config.size or spec.get("height")
    if frames is None or size is None:
        raise ConfigError(
            "The clip length and frame size come from the model's input spec or from "
            f"--frames and --size. Received: frames={config.frames!r}, size={config.size!r}"
        )
    if fixed_size is not None and [size, size] != list(fixed_size):
        raise ConfigError(
            f"{config.variant} takes frames of exactly {fixed_size[0]}x{fixed_size[1]}; "
            f"omit --size or pass --size {fixed_size[0]}. Received: size={size}"
        )
    return ClipSpec(
        clip_len=int(frames), size=int(size),
        mode=config.sampling or spec.get("sampling", "segments"),
        stride=config.stride, short=config.short,
    )


def read_sources(config: FinetuneConfig):
    """(train, validation or None, test, class names): raw `VideoIndex`es or `FrameCache`s.

    With `validation_fraction`, whole groups of the training split (see
    `video_groups`) become the validation part.
    """
    if config.cache_dir:
        if config.validation_fraction:
            raise ConfigError(
                "validation_fraction needs the raw videos (groups are held out by file "
                "name); drop --cache_dir or use validation_fraction=0. "
                f"Received: validation_fraction={config.validation_fraction}"
            )
        train = open_cache(pathlib.Path(config.cache_dir) / "train")
        test = open_cache(pathlib.Path(config.cache_dir) / "test")
        return train, None, test, tuple(train.class_names)
    layout = dict(split=config.split, videos_dir=config.videos_dir, splits_dir=config.splits_dir)
    train = read_dataset(config.data_format, config.data_dir, subset="train", **layout)
    test = read_dataset(config.data_format, config.data_dir, subset="test",
                        class_names=train.class_names, **layout)
    validation = None
    if config.validation_fraction:
        train, validation = split_by_group(
            train, video_groups(train, config.data_format), config.validation_fraction,
            seed=config.seed,
        )
    return train, validation, test, tuple(train.class_names)


def _num_videos(source) -> int:
    return source.num_videos if hasattr(source, "num_videos") else len(source)


def _prepare_run_folder(config: FinetuneConfig, out: pathlib.Path, entry: pathlib.Path) -> None:
    """Checks (and creates) the run folder; refuses a finished run unless `overwrite`, and
    files or folders of the run's names (`entry` too) that the package did not write."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out}: --out_dir must be a folder; this is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"{out}: cannot create the run folder ({err.strerror})") from err
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunFolderError(f"{out}: the run folder is not writable")
    # Before anything is written or removed: a user's file or folder of the run's names is kept.
    check_replaceable(out / "backup", BACKUP_KIND, overwrite=True)
    check_replaceable(entry, ENTRY_KIND, overwrite=True)
    record_files(out, RUN_KIND, RUN_FILES)
    finished = (out / "metrics.json").exists() and not (out / "backup").exists()
    if finished and not config.overwrite:
        raise RunFolderError(
            f"{out}: holds a finished run (metrics.json); pass --overwrite to train again "
            "and replace it, or choose another --out_dir"
        )
    if finished:
        for name in ("log.csv", "best.weights.h5"):
            (out / name).unlink(missing_ok=True)


def _set_trunks_trainable(model, trainable: bool) -> None:
    for trunk in model.backbone.trunks:
        trunk.trainable = trainable


def _optimizer(config, learning_rate) -> keras.optimizers.Optimizer:
    """The run's optimizer: AdamW, or SGD with momentum; weight decay decoupled in both."""
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)


def _compile(model, config, learning_rate):
    optimizer = _optimizer(config, learning_rate)
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
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with strategy.scope():
        model._symbolic_build(data_batch=next(iter(dataset.take(1))))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    for name in ("train_step", "test_step"):
        step = getattr(type(model), name).__get__(model)
        setattr(model, name, lambda data, step=step: keras.tree.map_structure(
            lambda v: tf.reshape(v, [1]), step(data)))


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


def _selection_text(selection: dict) -> str:
    if selection["method"] == "last_epoch":
        return "the last epoch (no validation part was held out)"
    return (f"the epoch with the best fused top-1 on {selection['validation_videos']} validation "
            f"videos, whole groups held out of the training split (epoch {selection['best_epoch']})")


def _optimizer_text(config) -> str:
    return f"SGD (momentum {config.momentum})" if config.optimizer == "sgd" else "AdamW"


def _card(name, config, spec, metrics, counts, seconds, command):
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    per_class = "\n".join(
        f"| {k} | {'n/a' if v is None else pct(v)} |" for k, v in metrics["per_class"].items()
    )
    return f"""# {name}

{'Fine-tuned from' if config.pretrained else 'Trained from scratch (architecture of)'} `{config.variant}` with `mrrn_keras.finetune` on `{config.data_dir}`
({config.data_format}, split {config.split}): {counts['train']} training videos,
{counts['validation']} validation videos, {counts['test']} test videos used
({counts['skipped']} unreadable files skipped), {len(metrics['per_class'])} classes.

## Protocol
- Input: {spec.clip_len} frames at {spec.size}x{spec.size}, uint8 RGB, `{spec.mode}` sampling
  (stride {spec.stride}, short videos: {spec.short}).
- Test: {config.eval_clips} clip(s) x {config.eval_crops} crop(s) per video, scores averaged per video.
- Training: {config.epochs} epochs ({config.warmup_epochs} with the backbone frozen), {_optimizer_text(config)}
  (peak lr {config.learning_rate}, weight decay {config.weight_decay} decoupled, cosine decay), batch
  {config.batch_size}, a loss per stream (weight {config.stream_weight}) plus the fused output,
  augmentation: {'random resized crops (min area ' + str(config.min_scale) + ')' if config.augment else 'none'},
  flips {'on' if config.flip else 'off'}; seed {config.seed}; {seconds / 60:.1f} min of training.
- Model kept: {_selection_text(metrics['model_selection'])}. The test split chose nothing;
  it was evaluated once, below.

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


class _AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose files are replaced whole, never rewritten in place.

    Keras writes `latest.weights.h5` over the previous one, so a process
    killed mid-write leaves a file that no restart can open ("bad object
    header version number"). Here the weights and the metadata are written
    to temporary names in the same folder and renamed over the old ones
    (`os.replace`): a kill leaves the previous epoch's backup, or the new one.
    """

    def _save_model(self):
        pathlib.Path(self.backup_dir).mkdir(parents=True, exist_ok=True)

        def save_weights(tmp: pathlib.Path) -> None:
            self.model.save_weights(str(tmp))

        def write_metadata(tmp: pathlib.Path) -> None:
            tmp.write_text(
                json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
            )
            # The weights go into place between the metadata's write and its rename, so
            # the two files disagree only for the instant between two renames.
            write_whole(self._weights_path, save_weights)

        write_whole(self._training_metadata_path, write_metadata)


def _resume_epoch(backup_dir: pathlib.Path, first_epoch: int) -> int:
    """The epoch a phase's `fit` starts at: the one its backup names, else `first_epoch`."""
    try:
        return int(json.loads((backup_dir / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return first_epoch


def _can_plot() -> bool:
    """Whether matplotlib imports; where it does not (a lean accelerator image carrying only
    what training needs), the plots are left out with a warning: metrics.json and log.csv
    hold the same numbers."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.warning("matplotlib is not installed: confusion_matrix.png and curves.png are "
                       "not drawn (metrics.json and log.csv hold the numbers)")
        return False
    return True


def _tensorflow_importable() -> bool:
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def _is_tf_dataset(data) -> bool:
    return type(data).__module__.startswith("tensorflow")


def _callbacks(out, backup_dir, skipped, with_validation, epochs, steps):
    callbacks = [
        # First: with on_error="raise" it stops the run before progress is saved.
        SkippedVideosCallback(skipped["train"], others=[skipped["validation"]]),
        # Kept after `fit` (Keras deletes it by default): a run killed while
        # writing its outputs resumes there instead of training again.
        _AtomicBackupAndRestore(str(backup_dir), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        EpochLog(epochs, steps),
    ]
    if _tensorflow_importable():  # Keras writes TensorBoard logs with tf.summary
        callbacks.insert(3, keras.callbacks.TensorBoard(str(out / "tensorboard")))
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
    command = command or f"mrrn finetune ({config})"
    # Everything that can be checked is, before the run folder is touched.
    train_src, val_src, test_src, class_names = read_sources(config)
    if build_model is not None:
        variant_input, fixed_size = None, None
    else:
        variant_input, fixed_size = _variant_input(config.variant)
    spec = resolve_clip_spec(config, variant_input, fixed_size=fixed_size)
    architecture = "mrrn" if build_model is not None else _variant_stem(config.variant)
    name = config.entry_name or f"{architecture.split('.')[0]}.{pathlib.Path(config.out_dir).name}"
    _prepare_run_folder(config, out, out / "entry" / name)
    backup_root = out / "backup"
    resuming = own_folder(backup_root, BACKUP_KIND)
    (out / "run_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    if not resuming and (out / "log.csv").exists():
        (out / "log.csv").unlink()

    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    determinism = op_determinism(config.deterministic)
    determinism.__enter__()
    try:
        keras.utils.set_random_seed(config.seed)
        strategy = make_strategy(config.strategy, tpu=config.tpu)
        with run_scope(strategy):
            devices = data_parallel_devices()
        if config.batch_size % devices:
            raise ConfigError(
                f"`batch_size` must be a multiple of the {devices} devices data parallelism "
                f"splits each batch between. Received: batch_size={config.batch_size}"
            )
        with strategy.scope():
            if build_model is not None:
                model = build_model(len(class_names), class_names)
            else:
                model = _load_variant(config.variant, len(class_names), class_names, config.pretrained)
        keys = output_keys(model)
        # One count per source: a file is reported once however often it is read.
        skipped = {"train": SkippedVideos(), "validation": SkippedVideos(), "test": SkippedVideos()}
        augment = Augment(scale=(config.min_scale, 1.0), flip=config.flip) if config.augment else None
        num_train = _num_videos(train_src)

        def train_data(backup_dir, first_epoch):
            # Batches are a function of (seed, epoch, index): a resumed phase starts
            # from the epoch its backup names, so it sees the clips it would have seen.
            data = make_clip_data(
                train_src, spec, training=True, batch_size=config.batch_size, augment=augment,
                on_error=config.on_error, skipped=skipped["train"], label_keys=keys,
                seed=config.seed, epoch=_resume_epoch(backup_dir, first_epoch),
                workers=config.workers,
            )
            # tf.data: a fixed epoch length over a repeated stream (skipped videos leave
            # the cardinality unknown, and every multi-worker replica must take the
            # same number of steps). The loader has a length of its own.
            if _is_tf_dataset(data):
                return data.repeat(), {"steps_per_epoch": max(1, num_train // config.batch_size)}
            return data, {}

        val_data = None
        if val_src is not None:
            val_data = make_clip_data(
                val_src, spec, training=False, batch_size=config.batch_size,
                on_error=config.on_error, skipped=skipped["validation"], label_keys=keys,
                with_video_ids=False, workers=config.workers,
            )
            if _is_tf_dataset(val_data):
                # A known length: Keras warns "ran out of data" after every pass over a
                # dataset of unknown length (skippable videos make it so). A skipped
                # video's place is taken by the first ones again.
                val_data = val_data.repeat().take(-(-_num_videos(val_src) // config.batch_size))
        steps_per_epoch = max(1, num_train // config.batch_size)
        # Files skipped before a restart, so they are still reported after it.
        skipped_log = backup_root / "skipped_train.json"
        if skipped_log.exists():
            for path, reason in json.loads(skipped_log.read_text()).items():
                skipped["train"].add(path, reason)
            skipped["train"].take()  # counted in the run, not in the next epoch's report
        fit_args = dict(validation_data=val_data, verbose=0, shuffle=False)

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
                data, steps = train_data(backup_root / "warmup", 0)
                _multi_worker_compat(model, strategy, data)
                with run_scope(strategy):
                    model.fit(
                        data, epochs=config.warmup_epochs, **fit_args, **steps,
                        callbacks=_callbacks(out, backup_root / "warmup", skipped,
                                             val_data is not None, config.epochs,
                                             steps_per_epoch),
                    )
                _set_trunks_trainable(model, True)
                # Renamed into place: a kill mid-write must not leave a "done" that cannot load.
                write_whole(done, lambda tmp: model.save_weights(str(tmp)))
        decay_steps = (config.epochs - config.warmup_epochs) * steps_per_epoch
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if not config.warmup_epochs else config.learning_rate,
            decay_steps,
            warmup_target=None if config.warmup_epochs else config.learning_rate,
            warmup_steps=0 if config.warmup_epochs else max(1, decay_steps // 20),
        )
        with strategy.scope():
            _compile(model, config, schedule)
        data, steps = train_data(backup_root / "main", config.warmup_epochs)
        _multi_worker_compat(model, strategy, data)
        with run_scope(strategy):
            model.fit(
                data, epochs=config.epochs, initial_epoch=config.warmup_epochs, **fit_args,
                **steps, callbacks=_callbacks(out, backup_root / "main", skipped,
                                              val_data is not None, config.epochs,
                                              steps_per_epoch),
            )
        seconds = time.time() - start
        backup_root.mkdir(parents=True, exist_ok=True)
        skipped_log.write_text(json.dumps(skipped["train"].files))
        selection = {"method": "last_epoch"}
        if val_data is not None and (out / "best.weights.h5").exists():
            model.load_weights(str(out / "best.weights.h5"))
            log = read_training_log(out / "log.csv").get(BEST_MONITOR, [])
            selection = {
                "method": "best_validation_top1",
                "validation_videos": _num_videos(val_src) - len(skipped["validation"].files),
                "held_out": f"{config.validation_fraction:g} of the training split's groups",
                "best_epoch": int(max(range(len(log)), key=log.__getitem__)) + 1 if log else None,
            }

        logger.info("Evaluating on the test split (%d videos, %d view(s) each)",
                    _num_videos(test_src), config.eval_clips * config.eval_crops)
        eval_data = make_clip_data(
            test_src, spec, training=False, batch_size=config.batch_size,
            num_clips=config.eval_clips, num_crops=config.eval_crops,
            on_error=config.on_error, skipped=skipped["test"], workers=config.workers,
        )
        try:
            with run_scope(strategy):
                metrics = evaluate_videos(model, eval_data, class_names)
        finally:  # the unreadable video that ended the stream, if any, comes first
            skipped["test"].raise_error()
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        determinism.__exit__(None, None, None)
    # Built under the caller's policy: a mixed-precision run still exports a
    # float32 model (its variables were float32 all along).
    deploy = deploy_model(model)

    skipped_files = {}
    for source_skipped in skipped.values():
        skipped_files.update(source_skipped.files)
    counts = {
        "train": num_train - len(skipped["train"].files),
        "validation": 0 if val_src is None else selection.get("validation_videos", 0),
        "test": metrics["videos"],
        "skipped": len(skipped_files),
    }
    metrics.update(
        command=command, train_seconds=round(seconds, 1), skipped_videos=len(skipped_files),
        skipped_files=skipped_files, train_videos=counts["train"],
        validation_videos=counts["validation"], model_selection=selection,
        evaluated_on=f"test split, once, after training ({config.data_format}, split "
                     f"{config.split})",
        eval_clips=config.eval_clips, eval_crops=config.eval_crops,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if _can_plot():
        plot_confusion_matrix(metrics["confusion_matrix"], class_names,
                              out / "confusion_matrix.png")
        plot_history(read_training_log(out / "log.csv"), out / "curves.png")
    input_spec = {"frames": spec.clip_len, "height": spec.size, "width": spec.size,
                  "sampling": spec.mode}
    save_model_file(deploy, out / "model.keras", input_spec=input_spec)
    dataset_name = pathlib.Path(config.data_dir).resolve().name or "dataset"
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
    # Last: until here a restart resumes from the backup instead of training again.
    remove_owned(backup_root, BACKUP_KIND)
    metrics["outputs"] = {
        "metrics": str(out / "metrics.json"), "model": str(out / "model.keras"),
        "entry": str(out / "entry" / name), "confusion_matrix": str(out / "confusion_matrix.png"),
        "curves": str(out / "curves.png"), "log": str(out / "log.csv"),
    }
    for plot in ("confusion_matrix", "curves"):  # not drawn without matplotlib
        if not pathlib.Path(metrics["outputs"][plot]).exists():
            del metrics["outputs"][plot]
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
    workers: int | None = None,
) -> dict:
    """Video-level evaluation of a model on a `VideoIndex` or `FrameCache`.

    Writes `metrics.json` and `confusion_matrix.png` into `out_dir` if given.
    Clips come from `mrrn_keras.data.loader.make_clip_data` (tf.data under
    TensorFlow, the TensorFlow-free loader otherwise), `workers` at a time.

    Returns:
        The metrics of `mrrn_keras.training.evaluate_videos`, plus
        `skipped_videos`.
    """
    skipped = SkippedVideos()
    ds = make_clip_data(
        source, spec, training=False, batch_size=batch_size, num_clips=num_clips,
        num_crops=num_crops, on_error=on_error, skipped=skipped, workers=workers,
    )
    class_names = tuple(class_names or source.class_names)
    try:
        metrics = evaluate_videos(model, ds, class_names)
    finally:  # the unreadable video that ended the stream, if any, comes first
        skipped.raise_error()
    metrics["skipped_videos"] = len(skipped.files)
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        if _can_plot():
            plot_confusion_matrix(metrics["confusion_matrix"], class_names,
                                  out / "confusion_matrix.png")
    return metrics

