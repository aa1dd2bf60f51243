"""`mrrn prepare`, `mrrn finetune` and `mrrn evaluate`: arguments and runners.

Rows of `mrrn_keras.cli.COMMANDS`; each maps its arguments onto a library
function (`prepare_cache`, `finetune`, `evaluate`) and prints the result.

    mrrn prepare --format ucf101 --data_dir D --out CACHE [--short_side 128]
    mrrn finetune --variant NAME --data_format F --data_dir D --out_dir RUN [...]
    mrrn evaluate --variant NAME|ENTRY|MODEL.keras --format F --data_dir D [--clips 10]
"""

from __future__ import annotations

import argparse
import json
import pathlib

from mrrn_keras.data.datasets import DATASET_FORMATS
from mrrn_keras.data.video import SAMPLING_MODES, SHORT_POLICIES


def prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=DATASET_FORMATS, help="dataset layout")
    parser.add_argument("--data_dir", required=True, help="dataset root")
    parser.add_argument("--out", required=True, help="cache folder; gets one sub-folder per subset")
    parser.add_argument("--split", type=int, default=1, help="split of ucf101/hmdb51")
    parser.add_argument("--subsets", default="train,test", help="comma-separated subsets")
    parser.add_argument("--short_side", type=int, default=128, help="frames' short side (px)")
    parser.add_argument("--every", type=int, default=1, help="keep one frame in EVERY")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--shards", type=int, default=None, help="shards per subset")
    parser.add_argument("--workers", type=int, default=2, help="videos decoded in parallel")
    parser.add_argument("--on_error", choices=("skip", "raise"), default="skip",
                        help="unreadable videos: skip (listed in cache.json) or stop")


def prepare(args) -> int:
    from mrrn_keras.data.cache import prepare_cache
    from mrrn_keras.data.datasets import read_dataset

    class_names = None
    for subset in args.subsets.split(","):
        index = read_dataset(args.format, args.data_dir, subset=subset, split=args.split,
                             class_names=class_names)
        class_names = class_names or index.class_names
        cache = prepare_cache(
            index, pathlib.Path(args.out) / subset, short_side=args.short_side, every=args.every,
            quality=args.quality, num_shards=args.shards, workers=args.workers,
            on_error=args.on_error, progress=True, name=subset,
        )
        print(f"{subset}: {cache.num_videos} videos, {cache.num_frames} frames, "
              f"{len(cache.skipped)} skipped -> {cache.root}")
        for path, reason in cache.skipped:
            print(f"  skipped {path}: {reason}")
    return 0


def finetune_arguments(parser: argparse.ArgumentParser) -> None:
    from mrrn_keras.finetune_config import config_options

    for name, kind, default, required, help_text in config_options():
        if kind is bool:
            parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)
        else:
            parser.add_argument(f"--{name}", type=kind, default=default, required=required,
                                help=help_text)


def finetune_config(args):
    """The `FinetuneConfig` of parsed `mrrn finetune` arguments."""
    from mrrn_keras.finetune_config import FinetuneConfig, config_options

    return FinetuneConfig(**{name: getattr(args, name) for name, *_ in config_options()})


def finetune(args) -> int:
    import sys

    from mrrn_keras.finetune import finetune as run

    metrics = run(finetune_config(args), command="mrrn " + " ".join(sys.argv[1:]))
    top_k = next(k for k in metrics if k.startswith("top") and k != "top1")
    print(f"top-1 {metrics['top1']:.2%}  {top_k} {metrics[top_k]:.2%}  over {metrics['videos']} "
          f"videos ({metrics['skipped_videos']} skipped)")
    for name, path in metrics["outputs"].items():
        print(f"  {name}: {path}")
    return 0


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True,
                        help="zoo name, entry folder or a .keras model file")
    parser.add_argument("--format", required=True, choices=DATASET_FORMATS, help="dataset layout")
    parser.add_argument("--data_dir", required=True, help="dataset root")
    parser.add_argument("--subset", default="test", help="subset to evaluate")
    parser.add_argument("--split", type=int, default=1, help="split of ucf101/hmdb51")
    parser.add_argument("--cache_dir", default=None,
                        help="frame cache from `mrrn prepare` (its SUBSET folder is read)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip")
    parser.add_argument("--size", type=int, default=None, help="frame size")
    parser.add_argument("--sampling", choices=SAMPLING_MODES, default=None)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--short", choices=SHORT_POLICIES, default="loop")
    parser.add_argument("--clips", type=int, default=1, help="clips per video (scores averaged)")
    parser.add_argument("--crops", type=int, choices=(1, 3), default=1, help="crops per clip")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--out", default=None, help="folder for metrics.json and the confusion PNG")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _evaluation_model(variant):
    """(model, input spec or None) for a .keras file or a zoo variant."""
    from mrrn_keras.zoo import load_mrrn, load_model_file, variant_info

    if str(variant).endswith(".keras"):
        model = load_model_file(variant)
        size = getattr(model, "image_size", None)
        return model, ({"height": size[0]} if size else None)

    return load_mrrn(variant), dict(variant_info(variant).input)


def evaluate(args) -> int:
    from mrrn_keras.data.cache import open_cache
    from mrrn_keras.data.datasets import read_dataset
    from mrrn_keras.errors import DatasetError
    from mrrn_keras.finetune import FinetuneConfig, evaluate as run, resolve_clip_spec

    model, spec_input = _evaluation_model(args.variant)
    if args.cache_dir:
        source = open_cache(pathlib.Path(args.cache_dir) / args.subset)
    else:
        source = read_dataset(args.format, args.data_dir, subset=args.subset, split=args.split,
                              class_names=getattr(model, "class_names", None)
                              if args.format in ("folder", "csv") else None)
    labels = tuple(getattr(model, "class_names", None) or ())
    if labels and labels != tuple(source.class_names):
        raise DatasetError(
            f"The model's labels {list(labels)} are not the dataset's classes "
            f"{list(source.class_names)}; evaluate a model fine-tuned on this dataset"
        )
    config = FinetuneConfig(
        variant=str(args.variant), data_format=args.format, data_dir=args.data_dir, out_dir=".",
        frames=args.frames, size=args.size, sampling=args.sampling, stride=args.stride,
        short=args.short,
    )
    spec = resolve_clip_spec(config, spec_input)
    metrics = run(model, source, spec, batch_size=args.batch_size, num_clips=args.clips,
                  num_crops=args.crops, out_dir=args.out)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        top_k = next(k for k in metrics if k.startswith("top") and k != "top1")
        print(f"top-1 {metrics['top1']:.2%}  {top_k} {metrics[top_k]:.2%}  mean class "
              f"{metrics['mean_class_accuracy']:.2%}  ({metrics['videos']} videos, "
              f"{metrics['views']:g} views each, {metrics['skipped_videos']} skipped)")
        for name, value in metrics["per_class"].items():
            print(f"  {'-' if value is None else f'{value:.1%}':>6}  {name}")
    return 0
