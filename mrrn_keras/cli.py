"""The `mrrn` command: parses arguments, calls the library, prints.

Each subcommand is one `Command` row in `COMMANDS`: a function adding its
arguments and a function running it (returning the exit code). Adding a
subcommand is a new row and its two functions.

    mrrn [-v | -q] [--version]
    mrrn list [PATTERN] [--pretrained]
    mrrn info NAME|FOLDER|URL|hf://OWNER/REPO[@REVISION]
    mrrn predict [VIDEO ...] [--variant NAME|MODEL.keras] [--top_k K] [--json]
                 [--stream [--chunk N] [--model PATH] [--source URL]]
                 [--realtime] [--smooth SECONDS] [--threshold P] [--open_timeout S]
                 [--read_timeout S]
                 [--timeline [--window S] [--stride S] [--csv] [--annotate OUT.mp4]]
    mrrn export NAME_OR_PATH --out_dir BASE_DIR [--version N] [--overwrite] [--top_k K] [--xla]
                [--format savedmodel|litert|onnx] [--stream] [--quantize dynamic|int8]

One vocabulary across the subcommands and `recipes/finetune.py`: options are
spelled with underscores (`--data_format`, `--out_dir`, `--top_k`), booleans
as `--flag` / `--no-flag` (absl's `--noflag` is accepted too). Building the
parser, `list`, `info`, `--help` and `--version` import neither Keras nor
TensorFlow, so they answer at once.
"""

from __future__ import annotations

import os

# Quiet TensorFlow's C++ logging unless the user asked for it (only effective
# if TensorFlow is not imported yet).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

from mrrn_keras import __version__, cli_live, cli_timeline, cli_training  # noqa: E402
from mrrn_keras.cli_options import HelpFormatter, canonical_argv, option_strings  # noqa: E402
from mrrn_keras.text import printable  # noqa: E402

DEFAULT_VARIANT = "mrrn_tiny.motion"  # mrrn_keras.predict.DEFAULT_VARIANT (that module loads Keras)


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument setup and runner."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# === list ===


def _list_arguments(parser):
    parser.add_argument("pattern", nargs="?", help="wildcard, e.g. 'mrrn_r*' or '*.paper'")
    parser.add_argument("--pretrained", action="store_true",
                        help="only entries with weights (bundled or by URL)")


def _list(args) -> int:
    from mrrn_keras.zoo import list_variants, variant_info

    names = list_variants(args.pattern, pretrained=args.pretrained)
    rows = [("name", "dataset", "classes", "top-1", "weights")]
    for name in names:
        info = variant_info(name)
        dataset = info.dataset["name"] if info.dataset else "-"
        rows.append((name, dataset, str(info.num_classes), _percent(info.metric("top1")),
                     info.weights_source))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(printable("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()))
    if not names:
        print(f"no variant matches {args.pattern!r}", file=sys.stderr)
        return 1
    return 0


# === info ===


def _info_arguments(parser):
    parser.add_argument("name", help="registered name, entry folder, URL or "
                                     "hf://owner/repo[@revision]")


def _info(args) -> int:
    from mrrn_keras.errors import ZooError
    from mrrn_keras.zoo import variant_info

    info = variant_info(args.name)
    spec = info.input
    size = f"{spec['frames']} frames at {spec['height']}x{spec['width']}, {spec['sampling']} sampling"
    if info.weights is None:
        start = info.model["backbone_weights"]
        weights = "none (architecture only" + (f"; the backbone starts from {start})" if start else ")")
    else:
        where = info.weights.file or info.weights.url
        weights = f"{info.weights_source}: {where} ({info.weights.size:,} bytes, sha256 {info.weights.sha256})"
    lines = [
        f"name:        {info.name}",
        f"description: {info.description}",
        f"location:    {info.location}",
    ]
    if info.handle is not None:
        handle = info.handle
        if handle.is_pinned:
            note = "(a commit: fixed)"
        elif info.commit:
            note = (
                f"(a branch or tag, now at commit {info.commit}; it can move: pin it as "
                f"{handle.at(info.commit)})"
            )
        else:
            note = "(a branch or tag: it can move; pin a commit, hf://owner/repo@<40-hex commit>)"
        lines.append(f"hub:         {handle} {note}")
    lines += [
        f"backbone:    {info.model['backbone']} (width {info.model['backbone_width']}), "
        f"streams {', '.join(info.model['streams'])}",
        f"input:       {size}",
        f"classes:     {info.num_classes}" + (f" ({', '.join(info.labels)})" if info.labels else ""),
        f"dataset:     {info.dataset['name'] + ', split ' + info.dataset['split'] if info.dataset else '-'}",
        f"params:      {info.params:,}",
        f"license:     {info.license}",
        f"weights:     {weights}",
    ]
    lines += [
        f"metric:      {m['name']} {m['subset']} ({m['split']}) = {m['value']}" for m in info.metrics
    ]
    # Every line holds text from the entry: control characters are shown, not sent.
    print("\n".join(printable(line) for line in lines))
    print()
    try:
        print(printable(info.read_card().rstrip(), multiline=True))
    except ZooError as err:  # a card is optional
        print(printable(f"(no model card: {err})"))
    return 0


# === predict ===


def _predict_arguments(parser):
    parser.add_argument("videos", nargs="*", metavar="VIDEO",
                        help="video files; none classifies the bundled sample clip")
    parser.add_argument("--variant", default=DEFAULT_VARIANT,
                        help="registered name, entry folder, URL, hf://owner/repo[@revision], "
                             "or a .keras file from `mrrn finetune`")
    parser.add_argument("--top_k", type=int, default=5, help="classes shown per video")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--stream", action="store_true",
                        help="classify every frame of each (long) file, decoded and fed chunk "
                             "by chunk with the SRU states carried over")
    parser.add_argument("--chunk", type=int, default=16, help="frames per chunk with --stream")
    parser.add_argument("--model", metavar="PATH",
                        help="with --stream: run an exported streaming model (a SavedModel "
                             "folder or stream.tflite from `mrrn export --stream`) and print a "
                             "per-chunk timeline")
    parser.add_argument("--source", metavar="FILE_URL_OR_DEVICE",
                        help="with --stream: read frames from a file, a stream URL, a FIFO or a "
                             "camera (e.g. /dev/video0), wherever FFmpeg can; a file prints a "
                             "per-chunk timeline, anything else runs live (see below)")
    cli_live.live_arguments(parser)
    cli_timeline.timeline_arguments(parser)


def _predict(args) -> int:
    from mrrn_keras.predict import (
        Prediction,
        VideoFailure,
        iter_classify_videos,
        sample_clip_path,
    )
    from mrrn_keras.progress import progress_bar
    from mrrn_keras.zoo import load_for_inference

    if args.top_k < 1:
        print(f"mrrn predict: --top_k must be >= 1, got {args.top_k}", file=sys.stderr)
        return 2
    if args.timeline:
        return cli_timeline.predict_timeline(args)
    if cli_live.wants_live(args):
        return cli_live.predict_live(args)
    if args.stream and (args.model or args.source):
        return _predict_timeline(args)
    videos = args.videos
    if not videos:
        videos = [str(sample_clip_path())]
        print(f"No video given: classifying the bundled sample clip {videos[0]}", file=sys.stderr)
    model, spec, name, labels = load_for_inference(args.variant)
    if args.stream:
        from mrrn_keras.streaming import classify_videos_streaming

        if args.chunk < 1:
            print(f"mrrn predict: --chunk must be >= 1, got {args.chunk}", file=sys.stderr)
            return 2
        results = classify_videos_streaming(
            model, videos, size=(spec["height"], spec["width"]), chunk_len=args.chunk,
            top_k=args.top_k, labels=labels,
        )
    else:
        results = iter_classify_videos(
            model, videos, frames=spec["frames"], size=(spec["height"], spec["width"]),
            sampling=spec["sampling"], top_k=args.top_k, labels=labels,
        )
    if len(videos) > 1:
        results = progress_bar(results, total=len(videos), desc="predict", unit="video")
    if args.json:
        print(f'{{"variant": {json.dumps(name)}, "predictions": [', flush=True)
    failed = False
    # Each result is printed as it comes; the JSON document streams out too.
    for i, result in enumerate(results):
        if isinstance(result, VideoFailure):
            failed = True
            print(printable(f"mrrn predict: {result.path}: {result.reason}"), file=sys.stderr,
                  flush=True)
        if args.json:
            print(("" if i == 0 else ",") + json.dumps(_json_item(result)), flush=True)
        elif isinstance(result, Prediction):
            lines = [result.path] + [f"  {p:7.2%}  {label}" for label, p in result.top_k]
            print("\n".join(printable(line) for line in lines), flush=True)
    if args.json:
        print("]}", flush=True)
    return 1 if failed else 0


def _predict_timeline(args) -> int:
    """`predict --stream` with --model or --source: one line per chunk."""
    from mrrn_keras.deploy.runtime import stream_timeline
    from mrrn_keras.errors import VideoError
    from mrrn_keras.predict import sample_clip_path

    if args.chunk < 1 or args.top_k < 1:
        print("mrrn predict: --chunk and --top-k must be >= 1", file=sys.stderr)
        return 2
    sources = ([args.source] if args.source else []) + list(args.videos)
    if not sources:
        sources = [str(sample_clip_path())]
    classifier, size, labels, _, _ = cli_live.stream_classifier(args)
    failed = False
    for source in sources:
        try:
            for row in stream_timeline(classifier, source, chunk_len=args.chunk, size=size,
                                       labels=labels, top_k=args.top_k):
                if args.json:
                    print(json.dumps({"source": source, **row}), flush=True)
                else:
                    best = "  ".join(f"{label} {p:6.1%}" for label, p in row["top_k"])
                    print(printable(f"{source}  frames {row['frames']:5d}  {best}"), flush=True)
        except (VideoError, ValueError) as err:
            failed = True
            print(printable(f"mrrn predict: {source}: {err}"), file=sys.stderr, flush=True)
    return 1 if failed else 0


def _json_item(result) -> dict:
    """One element of `mrrn predict --json`'s `predictions`."""
    if not hasattr(result, "top_k"):  # a VideoFailure
        return {"path": result.path, "error": result.reason}
    return {
        "path": result.path,
        "top_k": [{"label": label, "probability": p} for label, p in result.top_k],
        "warnings": list(result.warnings),
    }


# === export ===


def _export_arguments(parser):
    parser.add_argument("variant", metavar="NAME_OR_PATH",
                        help="registered name, entry folder, URL, hf://owner/repo[@revision], "
                             "or a .keras file from `mrrn finetune`")
    parser.add_argument("--out_dir", required=True, metavar="BASE_DIR",
                        help="model base path for TF Serving; the version goes in BASE_DIR/N")
    parser.add_argument("--version", type=int, default=None,
                        help="version number; none: one more than the largest in BASE_DIR")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a version (savedmodel) or a folder (litert, onnx, --stream) "
                             "that an earlier export wrote")
    parser.add_argument("--top_k", type=int, default=5,
                        help="labels and scores returned per clip")
    parser.add_argument("--xla", action="store_true",
                        help="keep the SRU loops XLA-compiled (the server then needs "
                             "--xla_cpu_compilation_enabled=true)")
    parser.add_argument("--format", choices=("savedmodel", "litert", "onnx"), default="savedmodel",
                        help="savedmodel (TF Serving; default), litert (built-in ops only) or "
                             "onnx; all but the plain savedmodel write the folder --out_dir")
    parser.add_argument("--stream", action="store_true",
                        help="the streaming model with explicit state (init_states, step); "
                             "savedmodel or litert")
    parser.add_argument("--quantize", choices=("dynamic", "int8"), default=None,
                        help="litert clip model: dynamic-range or int8 quantization")
    parser.add_argument("--calibration", nargs="+", metavar="VIDEO", default=None,
                        help="videos to calibrate --quantize int8 (default: motion clips for "
                             "an entry trained on them)")
    parser.add_argument("--frames", type=int, default=None,
                        help="clip length of a litert/onnx clip model (default: the variant's)")


def _export(args) -> int:
    from mrrn_keras.errors import require_tensorflow_backend

    # Checked before the import: the export module loads TensorFlow.
    require_tensorflow_backend("mrrn export (SavedModel for TF Serving)")
    if args.format != "savedmodel" or args.stream:
        return _export_deploy(args)
    from mrrn_keras.export import export_for_serving

    from mrrn_keras.zoo import is_model_file

    source, extra = args.variant, {}
    if is_model_file(source):
        from mrrn_keras.zoo import load_for_inference

        source, spec, _, _ = load_for_inference(source)
        extra = dict(frames=spec["frames"], image_size=(spec["height"], spec["width"]))
    try:
        path = export_for_serving(
            source, args.out_dir, version=args.version, overwrite=args.overwrite,
            top_k=args.top_k, jit_compile=args.xla, **extra,
        )
    except (FileExistsError, ValueError) as err:
        print(printable(f"mrrn export: {err}"), file=sys.stderr)
        return 1
    print(printable(path))
    return 0


def _export_deploy(args) -> int:
    from mrrn_keras.deploy.export import export_model

    try:
        path = export_model(
            args.variant, args.out_dir, format=args.format, stream=args.stream,
            quantization=args.quantize, representative=args.calibration, frames=args.frames,
            overwrite=args.overwrite,
        )
    except (FileExistsError, ValueError) as err:
        print(printable(f"mrrn export: {err}"), file=sys.stderr)
        return 1
    print(printable(path))
    return 0


COMMANDS = (
    Command("list", "list the registered variants", _list_arguments, _list),
    Command("info", "show a variant's metadata and model card", _info_arguments, _info),
    Command("predict", "classify video files", _predict_arguments, _predict),
    Command("export", "export a variant (SavedModel for TF Serving, LiteRT, ONNX)", _export_arguments,
            _export),
    Command("prepare", "decode a dataset once into a TFRecord frame cache",
            cli_training.prepare_arguments, cli_training.prepare),
    Command("finetune", "fine-tune a variant on a video dataset",
            cli_training.finetune_arguments, cli_training.finetune),
    Command("evaluate", "video-level accuracy of a model on a dataset",
            cli_training.evaluate_arguments, cli_training.evaluate),
)


def build_parser() -> argparse.ArgumentParser:
    """The `mrrn` parser; building it imports neither Keras nor TensorFlow."""
    parser = argparse.ArgumentParser(
        prog="mrrn", description="MRRN video action recognition model zoo.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true",
                          help="debug messages, and TensorFlow's own start-up lines")
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help,
                                    formatter_class=HelpFormatter)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


class _StderrHandler(logging.Handler):
    """Writes plain messages to the current `sys.stderr`; warnings and errors say so."""

    def emit(self, record):
        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                message = f"{record.levelname.lower()}: {message}"
            sys.stderr.write(printable(message, multiline=True) + "\n")
        except Exception:  # noqa: BLE001 -- logging's own contract: report, never raise
            self.handleError(record)


def _configure_logging(args) -> None:
    """Shows the package's log on stderr: INFO by default, DEBUG with -v, WARNING with -q."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    package = logging.getLogger("mrrn_keras")
    # One handler however often `main` runs in a process; records still
    # propagate, so an application's own root handlers see them too.
    package.handlers = [h for h in package.handlers if not isinstance(h, _StderrHandler)]
    package.addHandler(_StderrHandler())
    package.setLevel(level)
    # TF_CPP_MIN_LOG_LEVEL=0 or 1 asks for TensorFlow's INFO or WARNING lines.
    wants_tf_log = os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1")
    if not args.verbose and not wants_tf_log and args.command in ("predict", "export",
                                                                         "prepare", "finetune",
                                                                         "evaluate"):
        from mrrn_keras.native_stderr import filter_native_stderr

        filter_native_stderr()


def main(argv=None) -> int:
    """Runs `mrrn`; returns the exit code (0 ok, 1 failed, 2 bad usage)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((token for token in argv if not token.startswith("-")), None)
    args = parser.parse_args(canonical_argv(argv, option_strings(parser, command)))
    package = logging.getLogger("mrrn_keras")
    # Put back on return: `main` also runs inside other programs (and tests),
    # whose logging must not keep the command's handler.
    saved = (package.handlers[:], package.level, package.propagate)
    _configure_logging(args)
    from mrrn_keras.errors import MRRNError

    try:
        return args.run(args)
    except MRRNError as err:
        print(printable(f"mrrn {args.command}: {err}"), file=sys.stderr)
        return 1
    finally:
        package.handlers, package.level, package.propagate = saved


if __name__ == "__main__":
    sys.exit(main())
