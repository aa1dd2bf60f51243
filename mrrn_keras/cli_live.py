"""`mrrn predict --stream` on a live source: a camera, a URL, a FIFO or `--realtime`.

Kept apart from `mrrn_keras.cli` (which calls `live_arguments` and
`predict_live`) so the live loop, its options and its key handling stay in
one place. One line per window (`--json`: one JSON object), printed and
flushed as it comes; `q` (on a terminal) or Ctrl-C stops after the current
window with a last summary line on stderr; a source that does not open,
stalls or dies ends with one line naming it (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import sys
import threading
import time

from mrrn_keras.data.live import DEFAULT_OPEN_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S
from mrrn_keras.text import printable

# Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def live_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the live-source options to `mrrn predict`."""
    group = parser.add_argument_group(
        "live sources", "with --stream and a --source that is not a regular file (a camera, "
        "a stream URL, a FIFO), or with --realtime: windows of the model's frames per clip at "
        "its frame rate, each judged on its own; frames the model has no time for are dropped, "
        "oldest first")
    group.add_argument("--realtime", action="store_true",
                       help="read the file (--source or one VIDEO) at its own frame rate, as a "
                            "camera delivers frames")
    group.add_argument("--smooth", type=float, default=0.0, metavar="SECONDS",
                       help="average the answers of the last SECONDS")
    group.add_argument("--open_timeout", type=float, default=DEFAULT_OPEN_TIMEOUT_S,
                       metavar="SECONDS", help="seconds a source has to open")
    group.add_argument("--read_timeout", type=float, default=DEFAULT_READ_TIMEOUT_S,
                       metavar="SECONDS", help="seconds a source has for each next frame")


def wants_live(args: argparse.Namespace) -> bool:
    """Whether `mrrn predict` runs the live loop: `--realtime`, or a `--source`
    that is not a regular file."""
    return bool(args.realtime or (
        args.stream and args.source is not None and not os.path.isfile(args.source)))


def stream_classifier(args: argparse.Namespace):
    """`(classifier, (height, width), labels, frames per clip, fps or None)` for --stream.

    `--model` runs an exported streaming file on every frame, in windows of
    `--chunk` frames (rounded up to a multiple of a LiteRT file's fixed
    chunk); otherwise `--variant`'s Keras model, in windows of its entry's
    frames per clip at its frame rate.
    """
    if args.model:
        from mrrn_keras.deploy.runtime import ExportedStream

        classifier = ExportedStream(args.model)
        piece = classifier.chunk_frames or 1
        window = -(-args.chunk // piece) * piece
        return classifier, classifier.frame_shape, classifier.labels, window, None
    from mrrn_keras.streaming import StreamingClassifier
    from mrrn_keras.zoo import load_for_inference

    model, spec, _, labels = load_for_inference(args.variant)
    return (StreamingClassifier(model), (spec["height"], spec["width"]), labels,
            spec["frames"], spec.get("fps"))


def predict_live(args: argparse.Namespace) -> int:
    """Runs `mrrn predict` on a live source; returns the exit code."""
    from mrrn_keras.live import classify_live

    sources = ([args.source] if args.source else []) + list(args.videos)
    problem = (
        "--realtime and live sources need --stream" if not args.stream else
        f"a live run reads one source (--source or one VIDEO), got {len(sources)}"
        if len(sources) != 1 else
        "--chunk and --top_k must be >= 1" if args.chunk < 1 or args.top_k < 1 else None
    )
    if problem:
        print(f"mrrn predict: {problem}", file=sys.stderr)
        return 2
    (source,) = sources
    classifier, size, labels, window, fps = stream_classifier(args)
    stop = threading.Event()
    try:
        results = classify_live(
            classifier, source, window=window, size=size, labels=labels, fps=fps,
            realtime=args.realtime, smooth=args.smooth, threshold=args.threshold or 0.0,
            top_k=args.top_k, open_timeout=args.open_timeout, read_timeout=args.read_timeout,
            stop=stop,
        )
    except ValueError as err:  # a bad --smooth, --threshold or timeout
        print(printable(f"mrrn predict: {err}"), file=sys.stderr)
        return 2
    last, how, count = None, "ended", 0
    # A SourceError goes on to `mrrn_keras.cli.main`, which prints its one line.
    with _quit_key(stop):
        try:
            for count, last in enumerate(results, 1):
                _print_result(source, last, args.json)
        except KeyboardInterrupt:
            how = "interrupted"
        finally:
            results.close()  # stops the reader
    if stop.is_set():
        how = "stopped"
    frames = "" if last is None else f", {last.frames} frames read, {last.dropped} dropped"
    print(printable(f"mrrn predict: {source}: {how} after {count} windows{frames}"),
          file=sys.stderr, flush=True)
    return INTERRUPTED if how == "interrupted" else 0


def _print_result(source: str, result, as_json: bool) -> None:
    latency = time.monotonic() - result.captured
    if as_json:
        print(json.dumps({
            "source": source, "time": round(result.time, 3), "label": result.label,
            "score": result.score, "top_k": result.top_k, "latency_s": round(latency, 4),
            "dropped": result.dropped,
        }), flush=True)
        return
    best = "  ".join(f"{label} {p:6.1%}" for label, p in result.top_k)
    label = result.label if result.label is not None else "-"
    print(printable(f"{result.time:8.2f}s  {label}  [{best}]  latency {latency:.2f}s  "
                    f"dropped {result.dropped}"), flush=True)


@contextlib.contextmanager
def _quit_key(stop: threading.Event):
    """While inside, a `q` typed on the terminal sets `stop` (no Enter needed).

    Does nothing when stdin is not a terminal; the terminal's mode is put
    back on the way out.
    """
    if not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    done = threading.Event()

    def watch():
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready and os.read(fd, 1) in (b"q", b"Q"):
                stop.set()
                return

    tty.setcbreak(fd)
    watcher = threading.Thread(target=watch, name="mrrn-quit-key", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
