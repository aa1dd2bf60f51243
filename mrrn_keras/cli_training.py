"""`mrrn prepare`, `mrrn finetune` and `mrrn evaluate`: arguments and runners.

Rows of `mrrn_keras.cli.COMMANDS`; each maps its arguments onto a library
function (`prepare_cache`, `finetune`, `evaluate`) and prints the result.

    mrrn prepare --data_format ucf101 --data_dir D --out_dir CACHE [--short_side 128] [--overwrite]
    mrrn finetune --variant NAME --data_format F --data_dir D --out_dir RUN [...]
    mrrn evaluate --variant NAME|ENTRY|MODEL.keras --data_format F --data_dir D [--clips 10]
"""

from __future__ import annotations

import argparse
import json
import pathlib

from mrrn_keras.data.sampling import SAMPLING_MODES, SHORT_POLICIES


def prepare_arguments(parser: argparse.ArgumentParser) -> None:
    _dataset_arguments(parser)
    parser.add_argument("--out_dir", required=True,
                        help="cache folder; gets one sub-folder per subset")
    parser.add_argument("--subsets", default="train,test", help="comma-separated subsets")
    parser.add_argument("--short_side", type=int, default=128, help="frames' short side (px)")
    parser.add_argument("--every", type=int, default=1, help="keep one frame in EVERY")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--shards", type=int, default=None,
                        help="shards per subset; none: about 1 GB each")
    parser.add_argument("--workers", type=int, default=2, help="videos decoded in parallel")
    parser.add_argument("--on_error", choices=("skip", "raise"), default="skip",
                        help="unreadable videos: skip (listed in cache.json) or stop")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a subset's frame cache written by an earlier prepare")


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """`--data_format`, `--data_dir`, `--split`, `--videos_dir`, `--splits_dir`: as `mrrn finetune`."""
    from mrrn_keras.finetune_config import config_options

    wanted = ("data_format", "data_dir", "split", "videos_dir", "splits_dir")
    for option in config_options():
        if option.name in wanted:
            parser.add_argument(f"--{option.name}", type=option.kind, default=option.default,
                                required=option.required, choices=option.choices,
                                help=option.help)


def _read_dataset(args, subset, class_names=None):
    from mrrn_keras.data.datasets import read_dataset

    return read_dataset(args.data_format, args.data_dir, subset=subset, split=args.split,
                        class_names=class_names, videos_dir=args.videos_dir,
                        splits_dir=args.splits_dir)


def prepare(args) -> int:
    from mrrn_keras.data.cache import check_cache_target, prepare_cache

    subsets = args.subsets.split(",")
    for subset in subsets:  # all refused before any is written
        check_cache_target(pathlib.Path(args.out_dir) / subset, args.overwrite)
    class_names = None
    for subset in subsets:
        index = _read_dataset(args, subset, class_names)
        class_names = class_names or index.class_names
        cache = prepare_cache(
            index, pathlib.Path(args.out_dir) / subset, short_side=args.short_side, every=args.every,
            quality=args.quality, num_shards=args.shards, workers=args.workers,
            on_error=args.on_error, progress=True, name=subset, overwrite=args.overwrite,
        )
        print(f"{subset}: {cache.num_videos} videos, {cache.num_frames} frames, "
              f"{len(cache.skipped)} skipped -> {cache.root}")
        for path, reason in cache.skipped:
            print(f"  skipped {path}: {reason}")
    return 0


def finetune_arguments(parser: argparse.ArgumentParser) -> None:
    from mrrn_keras.finetune_config import config_options

    for option in config_options():
        if option.kind is bool:
            parser.add_argument(f"--{option.name}", action=argparse.BooleanOptionalAction,
                                default=option.default, help=option.help)
        else:
            parser.add_argument(f"--{option.name}", type=option.kind, default=option.default,
                                required=option.required, choices=option.choices,
                                help=option.help)


def finetune_config(args):
    """The `FinetuneConfig` of parsed `mrrn finetune` arguments."""
    from mrrn_keras.finetune_config import FinetuneConfig, config_options

    return FinetuneConfig(**{o.name: getattr(args, o.name) for o in config_options()})


def finetune(args) -> int:
    import sys

    from mrrn_keras.finetune import finetune as run

    metrics = run(finetune_config(args), command="mrrn " + " ".join(sys.argv[1:]))
    top_k = next(k for k in metrics if k.startswith("top") and k != "top1")
    print(f"top-1 {metrics['top1']:.2%}  {top_k} {metrics[top_k]:.2%}  on {metrics['videos']} "
          f"test videos; trained on {metrics['train_videos']}, model chosen by "
          f"{metrics['model_selection']['method']}; {metrics['skipped_videos']} unreadable "
          "files skipped")
    for name, path in metrics["outputs"].items():
        print(f"  {name}: {path}")
    return 0


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True,
                        help="zoo name, entry folder, URL, hf://owner/repo[@revision] or the "
                             ".keras file `mrrn finetune` wrote")
    _dataset_arguments(parser)
    parser.add_argument("--subset", default="test", help="subset to evaluate")
    parser.add_argument("--cache_dir", default=None,
                        help="frame cache from `mrrn prepare` (its SUBSET folder is read)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per clip; none: the model's input spec")
    parser.add_argument("--size", type=int, default=None,
                        help="frame size; none: the model's input spec")
    parser.add_argument("--sampling", choices=SAMPLING_MODES, default=None,
                        help="frame sampling; none: the model's input spec")
    parser.add_argument("--stride", type=int, default=1, help="frame step of dense sampling")
    parser.add_argument("--short", choices=SHORT_POLICIES, default="loop",
                        help="videos shorter than a clip")
    parser.add_argument("--clips", type=int, default=1, help="clips per video (scores averaged)")
    parser.add_argument("--crops", type=int, choices=(1, 3), default=1, help="crops per clip")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per batch")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads decoding clips (default: tf.data's AUTOTUNE under "
                             "TensorFlow, the CPUs otherwise)")
    parser.add_argument("--out_dir", default=None,
                        help="folder for metrics.json and the confusion PNG")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def evaluate(args) -> int:
    from mrrn_keras.data.cache import open_cache
    from mrrn_keras.errors import DatasetError
    from mrrn_keras.finetune import FinetuneConfig, evaluate as run, resolve_clip_spec
    from mrrn_keras.zoo import load_for_inference

    # --frames/--size/--sampling may stand in for a spec the file lacks.
    model, spec_input, _, _ = load_for_inference(args.variant, require_spec=False)
    if args.cache_dir:
        source = open_cache(pathlib.Path(args.cache_dir) / args.subset)
    else:
        source = _read_dataset(args, args.subset, getattr(model, "class_names", None)
                               if args.data_format in ("folder", "csv") else None)
    labels = tuple(getattr(model, "class_names", None) or ())
    if labels and labels != tuple(source.class_names):
        raise DatasetError(
            f"The model's labels {list(labels)} are not the dataset's classes "
            f"{list(source.class_names)}; evaluate a model fine-tuned on this dataset"
        )
    config = FinetuneConfig(
        variant=str(args.variant), data_format=args.data_format, data_dir=args.data_dir,
        out_dir=".", frames=args.frames, size=args.size, sampling=args.sampling,
        stride=args.stride, short=args.short,
    )
    spec = resolve_clip_spec(config, spec_input, fixed_size=getattr(model, "image_size", None))
    metrics = run(model, source, spec, batch_size=args.batch_size, num_clips=args.clips,
                  num_crops=args.crops, out_dir=args.out_dir, workers=args.workers)
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
