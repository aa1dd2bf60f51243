"""What a fine-tuning run is told: `FinetuneConfig` and its command-line options.

Kept apart from `mrrn_keras.finetune` (which loads TensorFlow for tf.data) so
that building the `mrrn` command's parser imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses

from mrrn_keras.data.datasets import DATASET_FORMATS
from mrrn_keras.data.sampling import SAMPLING_MODES, SHORT_POLICIES
from mrrn_keras.distribute import STRATEGIES
from mrrn_keras.errors import ConfigError
from mrrn_keras.validation import check_int

OPTIMIZERS = ("adamw", "sgd")

@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Everything a fine-tuning run needs; `finetune` saves it as `run_config.json`.

    Args:
        variant: str. Zoo name, entry folder, URL or
            `hf://owner/repo[@revision]` (see `load_mrrn`).
        data_format: str. One of `DATASET_FORMATS`.
        data_dir: str. Dataset root (see `read_dataset`); for ucf101 and
            hmdb51 the folders the official archives unpack to are found
            in it (see `mrrn_keras.data.datasets.find_layout`).
        out_dir: str. Run folder (outputs, backups).
        split: int. Split of ucf101 / hmdb51. Defaults to 1.
        videos_dir, splits_dir: str or None. The video and split-file
            folders of ucf101 / hmdb51, when not found under `data_dir`.
        validation_fraction: float in [0, 0.5). Share of the training
            videos held out (by group: a UCF-101 `gNN`, an HMDB-51 source
            video) to choose the best epoch on. Defaults to 0: no
            selection, the last epoch is kept. The test split is used once,
            for the final evaluation.
        overwrite: bool. Start over in an `out_dir` holding a finished run.
            Defaults to False (refused).
        cache_dir: str or None. A frame cache from `mrrn prepare` holding
            `train/` and `test/`; used instead of the raw videos when set.
        frames, size, sampling: clip length, frame size and sampling mode;
            `None` takes the variant's own input spec.
        stride: int. Frame step of dense sampling. Defaults to 1.
        short: str. Short videos: "loop" or "pad". Defaults to "loop".
        batch_size: int. Global batch size. Defaults to 8.
        epochs: int. Total epochs, warm-up included. Defaults to 10.
        warmup_epochs: int. Leading epochs with the backbone frozen (heads
            and SRUs train). Defaults to 0.
        optimizer: str. `"adamw"` or `"sgd"` (with `momentum`; the
            paper-proxy recipe). Defaults to "adamw".
        momentum: float in [0, 1). SGD momentum. Defaults to 0.9.
        learning_rate: float. Peak learning rate. Defaults to 1e-3.
        weight_decay: float. Weight decay, applied as Keras does for every
            optimizer: decoupled, `w -= learning_rate * weight_decay * w`
            each step (torch's SGD instead adds `weight_decay * w` to the
            gradient, which momentum m amplifies about 1 / (1 - m) times).
            Defaults to 1e-4.
        stream_weight: float. Loss weight of each stream next to the fused
            output. Defaults to 1.0.
        augment: bool. Random resized crops when training. Defaults to True.
        min_scale: float. Smallest crop area fraction. Defaults to 0.5.
        flip: bool. Random horizontal flips. Defaults to False (they swap
            direction-sensitive labels such as left/right).
        eval_clips, eval_crops: views per video in the final evaluation.
        mixed_precision: bool. `mixed_float16` compute. Defaults to False.
        strategy: str. One of `STRATEGIES` (see
            `mrrn_keras.distribute.make_strategy`). Defaults to "auto":
            data parallel under JAX on several accelerators, else one device.
        tpu: str or None. TPU address for strategy "tpu".
        workers: int or None. Threads decoding clips ahead of the model
            (tf.data's parallel calls under TensorFlow, the
            `ClipLoader`'s threads elsewhere). Defaults to None: AUTOTUNE
            under tf.data, the CPUs this process may use otherwise.
        on_error: str. Unreadable videos: "skip" (counted) or "raise".
        seed: int. Seeds data order, clip draws, augmentation, init.
        jit_compile: bool. XLA-compile the train step. Defaults to True.
        deterministic: bool. TensorFlow op determinism
            (`tf.config.experimental.enable_op_determinism`): the same seed
            reruns to the same weights on the same machine. Keras compiles
            no XLA step under it (`jit_compile` is then ignored), so a run
            is several times slower. Other backends are seeded only.
            Defaults to False.
        entry_name: str or None. Name of the written zoo entry; defaults
            to "<architecture>.<out_dir folder name>".
        pretrained: bool. Start from the variant's weights; False trains
            the same architecture from scratch (a baseline). Defaults to True.
    """

    variant: str
    data_format: str
    data_dir: str
    out_dir: str
    split: int = 1
    videos_dir: str | None = None
    splits_dir: str | None = None
    validation_fraction: float = 0.0
    overwrite: bool = False
    cache_dir: str | None = None
    frames: int | None = None
    size: int | None = None
    sampling: str | None = None
    stride: int = 1
    short: str = "loop"
    batch_size: int = 8
    epochs: int = 10
    warmup_epochs: int = 0
    optimizer: str = "adamw"
    momentum: float = 0.9
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    stream_weight: float = 1.0
    augment: bool = True
    min_scale: float = 0.5
    flip: bool = False
    eval_clips: int = 1
    eval_crops: int = 1
    mixed_precision: bool = False
    strategy: str = "auto"
    tpu: str | None = None
    workers: int | None = None
    on_error: str = "skip"
    seed: int = 0
    jit_compile: bool = True
    deterministic: bool = False
    entry_name: str | None = None
    pretrained: bool = True

    def __post_init__(self):
        if self.data_format not in DATASET_FORMATS:
            raise ConfigError(
                f"`data_format` must be one of {DATASET_FORMATS}. "
                f"Received: data_format={self.data_format!r}"
            )
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"`strategy` must be one of {STRATEGIES}. Received: strategy={self.strategy!r}"
            )
        if self.sampling is not None and self.sampling not in SAMPLING_MODES:
            raise ConfigError(
                f"`sampling` must be one of {SAMPLING_MODES}. Received: sampling={self.sampling!r}"
            )
        if self.short not in SHORT_POLICIES:
            raise ConfigError(f"`short` must be one of {SHORT_POLICIES}. Received: short={self.short!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"`optimizer` must be one of {OPTIMIZERS}. Received: optimizer={self.optimizer!r}"
            )
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"`momentum` must be in [0, 1). Received: momentum={self.momentum!r}")
        if self.eval_crops not in (1, 3):
            raise ConfigError(f"`eval_crops` must be 1 or 3. Received: eval_crops={self.eval_crops!r}")
        if self.workers is not None:
            try:
                check_int("workers", self.workers)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        for name in ("batch_size", "epochs", "eval_clips"):
            try:
                check_int(name, getattr(self, name))
            except ValueError as err:
                raise ConfigError(str(err)) from None
        if not 0 <= self.validation_fraction < 0.5:
            raise ConfigError(
                "`validation_fraction` must be in [0, 0.5). "
                f"Received: validation_fraction={self.validation_fraction!r}"
            )
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(
                "`warmup_epochs` must be in [0, epochs). "
                f"Received: warmup_epochs={self.warmup_epochs}, epochs={self.epochs}"
            )


FIELD_HELP = {
    "variant": "Zoo variant name, entry folder or URL to start from.",
    "data_format": f"Dataset layout: one of {', '.join(DATASET_FORMATS)}.",
    "data_dir": "Dataset root (ucf101: UCF-101/ + ucfTrainTestlist/ as unpacked, or videos/ + "
    "splits/; hmdb51: class folders + testTrainMulti_7030_splits/, or videos/ + splits/; "
    "folder: train/ and test/ of class folders; csv: train.csv and test.csv).",
    "out_dir": "Run folder: logs, backups, checkpoints, metrics, plots, model, zoo entry.",
    "split": "Split number for ucf101/hmdb51.",
    "videos_dir": "ucf101/hmdb51: folder of class folders of videos (default: found in "
    "data_dir).",
    "splits_dir": "ucf101/hmdb51: folder of the split files (default: found in data_dir).",
    "validation_fraction": "Share of training videos (whole groups) held out to pick the best "
    "epoch; 0 keeps the last epoch. The test split is evaluated once, at the end.",
    "overwrite": "Start over in an out_dir that holds a finished run (refused otherwise).",
    "cache_dir": "Frame cache from `mrrn prepare` (holding train/ and test/) to read "
    "instead of the raw videos.",
    "frames": "Frames per clip (default: the variant's).",
    "size": "Frame height and width (default: the variant's).",
    "sampling": f"Frame sampling: {', '.join(SAMPLING_MODES)} (default: the variant's).",
    "stride": "Frame step of dense sampling.",
    "short": "Videos shorter than a clip: loop or pad.",
    "batch_size": "Global batch size.",
    "epochs": "Total epochs, warm-up included.",
    "warmup_epochs": "Leading epochs with the backbone frozen.",
    "optimizer": "Optimizer: adamw, or sgd with --momentum (the paper-proxy recipe).",
    "momentum": "SGD momentum (with --optimizer sgd).",
    "learning_rate": "Peak learning rate (cosine decay).",
    "weight_decay": "Weight decay, decoupled as Keras applies it: w -= lr * wd * w each step.",
    "stream_weight": "Loss weight of each stream next to the fused output.",
    "augment": "Random resized crops when training.",
    "min_scale": "Smallest area fraction of a random resized crop.",
    "flip": "Random horizontal flips (off: they swap left/right-type labels).",
    "eval_clips": "Clips per video in the final evaluation (scores averaged).",
    "eval_crops": "Crops per clip in the final evaluation: 1 or 3.",
    "mixed_precision": "Compute in mixed_float16.",
    "strategy": "Distribution: auto (data_parallel under JAX on several accelerators, else "
    "default), default (one device), data_parallel (JAX: keras.distribution.DataParallel over "
    "the local devices), or a tf.distribute strategy: mirrored, multi_worker, tpu.",
    "tpu": "TPU name or address for --strategy tpu.",
    "workers": "Threads decoding clips ahead of the model (default: tf.data's AUTOTUNE under "
    "TensorFlow, the CPUs otherwise).",
    "on_error": "Unreadable videos: skip (counted, reported each epoch) or raise.",
    "seed": "Seed of data order, clip draws, augmentation and initialisation.",
    "jit_compile": "XLA-compile the training step.",
    "deterministic": "TensorFlow op determinism: a seed reruns to the same weights (turns XLA "
    "off: slower).",
    "entry_name": "Name of the zoo entry written (default: <architecture>.<out_dir folder>).",
    "pretrained": "Start from the variant's weights (--no-pretrained: from scratch, a baseline).",
}


# Fields whose values are a closed set: argparse `choices`, absl enums.
FIELD_CHOICES = {
    "data_format": DATASET_FORMATS,
    "sampling": SAMPLING_MODES,
    "short": SHORT_POLICIES,
    "strategy": STRATEGIES,
    "optimizer": OPTIMIZERS,
    "on_error": ("skip", "raise"),  # mrrn_keras.data.pipeline.ERROR_POLICIES (loads TensorFlow)
}


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option of a `FinetuneConfig` field.

    Attributes:
        name: the field and option name.
        kind: str, int, float or bool.
        default: the field's default (None when required).
        required: bool. The field has no default.
        help: one line.
        choices: the allowed values, or None.
    """

    name: str
    kind: type
    default: object
    required: bool
    help: str
    choices: tuple | None = None


def config_options() -> list[Option]:
    """The `Option` of every `FinetuneConfig` field.

    The recipe's absl flags and the CLI's arguments are both generated from
    this, so the two cannot drift apart.
    """
    types = {"str": str, "int": int, "float": float, "bool": bool}
    options = []
    for field in dataclasses.fields(FinetuneConfig):
        kind = types[str(field.type).split("|")[0].strip()]
        required = field.default is dataclasses.MISSING
        default = None if required else field.default
        options.append(Option(field.name, kind, default, required, FIELD_HELP[field.name],
                              FIELD_CHOICES.get(field.name)))
    return options
