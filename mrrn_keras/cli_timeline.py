"""`mrrn predict --timeline`: a long video as windows and segments (mrrn_keras.timelines).

Kept apart from `mrrn_keras.cli` so the predict command only gains two
hooks: `timeline_arguments` adds the options, `predict_timeline` runs them.
"""

from __future__ import annotations

import csv
import json
import os
import sys

from mrrn_keras.text import printable

CSV_COLUMNS = ("path", "start_s", "end_s", "label", "score", "windows")


def timeline_arguments(parser) -> None:
    """Adds `--timeline` and its options to the `predict` parser."""
    group = parser.add_argument_group("timelines (--timeline)")
    group.add_argument("--timeline", action="store_true",
                       help="classify overlapping windows of each (long) video and print the "
                            "segments where one label holds; with --model PATH, an exported "
                            "streaming model's frame_taps and window signatures run it")
    group.add_argument("--window", type=float, default=2.0,
                       help="window length in seconds")
    group.add_argument("--stride", type=float, default=None,
                       help="seconds between window starts (default: a quarter of --window)")
    group.add_argument("--threshold", type=float, default=None, metavar="P",
                       help="minimum top score: with --timeline, windows below it belong to no "
                            "segment (default 0.5); live, the label is printed only when its "
                            "(smoothed) probability reaches P, else '-' (default 0)")
    group.add_argument("--csv", action="store_true",
                       help="print the segments as CSV (" + ",".join(CSV_COLUMNS) + ")")
    group.add_argument("--annotate", metavar="OUT_VIDEO",
                       help="also write the video with the current label and score drawn on it "
                            "(one input video)")


def predict_timeline(args) -> int:
    """Runs `mrrn predict --timeline`; returns the exit code (0 ok, 1 a video failed, 2 usage)."""
    from mrrn_keras.errors import VideoError
    from mrrn_keras.predict import sample_clip_path
    from mrrn_keras.timelines import timeline

    videos = list(args.videos)
    usage = _usage_error(args, videos)
    if usage:
        print(f"mrrn predict: {usage}", file=sys.stderr)
        return 2
    if not videos:
        videos = [str(sample_clip_path())]
        print(f"No video given: classifying the bundled sample clip {videos[0]}", file=sys.stderr)
    try:
        run = _exported_runner(args.model) if args.model else None
    except (ValueError, OSError) as err:
        print(printable(f"mrrn predict: {args.model}: {' '.join(str(err).split())}"),
              file=sys.stderr)
        return 1
    writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if writer:
        writer.writerow(CSV_COLUMNS)
    if args.json:
        print(f'{{"variant": {json.dumps(args.variant)}, "timelines": [', flush=True)
    failed, first = False, True
    for path in videos:
        try:
            settings = dict(window=args.window, stride=args.stride, threshold=_threshold(args),
                            top_k=args.top_k)
            result = run(path, **settings) if run else timeline(path, args.variant, **settings)
            if args.annotate:
                from mrrn_keras.annotate import annotate_video

                annotate_video(path, args.annotate, result)
        except (VideoError, ValueError, OSError) as err:
            failed = True
            print(printable(f"mrrn predict: {path}: {err}"), file=sys.stderr, flush=True)
            continue
        if args.json:
            print(("" if first else ",") + json.dumps(result.to_json()), flush=True)
            first = False
        elif writer:
            for s in result.segments:
                writer.writerow((printable(path), f"{s.start_s:.3f}", f"{s.end_s:.3f}",
                                 printable(s.label), f"{s.score:.4f}", s.windows))
        else:
            print("\n".join(printable(line) for line in _table(result)), flush=True)
    if args.json:
        print("]}", flush=True)
    return 1 if failed else 0


def _exported_runner(model_path):
    """`path, **settings -> Timeline` on an exported model's timeline signatures."""
    from mrrn_keras.deploy.runtime import ExportedTimeline
    from mrrn_keras.timelines import run_timeline

    classifier = ExportedTimeline(model_path)

    def run(path, **settings):
        return run_timeline(classifier, path, size=classifier.frame_shape,
                            clip_frames=classifier.window_frames, sampling=classifier.sampling,
                            labels=classifier.labels, **settings)

    return run


def _threshold(args) -> float:
    from mrrn_keras.timelines import DEFAULT_THRESHOLD

    return DEFAULT_THRESHOLD if args.threshold is None else args.threshold


def _usage_error(args, videos) -> str | None:
    from mrrn_keras.timelines import check_settings

    try:
        check_settings(args.window, args.stride, _threshold(args))
    except ValueError as err:
        return str(err)
    if args.json and args.csv:
        return "--json and --csv cannot be combined"
    if args.stream:
        return "--timeline and --stream cannot be combined"
    if args.annotate and len(videos) != 1:
        return f"--annotate writes one video: give exactly one VIDEO, got {len(videos)}"
    if args.annotate and os.path.lexists(args.annotate):
        return f"--annotate {args.annotate} already exists: remove it or choose another name"
    return None


def _table(result) -> list[str]:
    """The readable form: a heading, then one row per segment."""
    lines = [
        f"{result.path}  ({len(result.windows)} windows of {result.window_s:g} s every "
        f"{result.stride_s:g} s; {result.backbone_frames} of {result.frames_decoded} frames "
        "through the backbone)",
        f"  {'start':>8}  {'end':>8}  {'score':>6}  label",
    ]
    lines += [f"  {s.start_s:8.2f}  {s.end_s:8.2f}  {s.score:6.2f}  {s.label}"
              for s in result.segments]
    if not result.segments:
        lines.append(f"  (no window scored {result.threshold:g} or more)")
    return lines
