"""`mrrn_keras.timeline` on long videos: seconds, peak RSS, backbone frame calls.

Renders a motion video of `--minutes` (one scene doing right, left,
clockwise rotation and still, 2 s each, over and over:
`mrrn_keras.data.synthetic.render_sequence`) at `--fps` and `--size`,
written as mpeg4 .avi, then runs the timeline of `mrrn_tiny.motion` on it
in a fresh process per length, so each peak RSS (`ru_maxrss`) is that run's
alone, and prints one JSON document: per length, the seconds the timeline
took (model load excluded, a warm-up window included), the peak RSS, frames
decoded, backbone frame calls, windows and segments. Memory flat in the
length and time linear in it show as equal `peak_rss_mib` and
`seconds_per_video_minute` across lengths.

    python bench/timeline.py                       # 1- and 10-minute videos
    python bench/timeline.py --minutes 10 --fps 25 --window 2 --stride 0.5
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# One scene, motions that bring the object back where it started.
CYCLE = (("move_right", 16), ("move_left", 16), ("rotate_cw", 16), ("still", 16))
RENDER_CYCLES = 8  # cycles rendered at a time (64 s), so memory holds one such chunk


def render(path: pathlib.Path, *, minutes: float, fps: int, size: int) -> None:
    """Writes the video, rendered a chunk of `RENDER_CYCLES` cycles at a time."""
    import av
    import numpy as np

    from mrrn_keras.data.synthetic import render_sequence

    # Each activity lasts 2 s whatever the rate: frames per activity = 2 * fps.
    per = 2 * fps
    total = round(minutes * 60 * fps)
    cycle = [(label, per) for label, _ in CYCLE]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"flags": "qscale", "global_quality": "236"}
        written = 0
        while written < total:
            count = min(RENDER_CYCLES * per * len(cycle), total - written)
            plan = (cycle * (count // (per * len(cycle)) + 1))
            video = render_sequence(plan, size=size, clip_frames=per,
                                    rng=np.random.default_rng(0))[:count]
            for array in video:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
            written += count
        container.mux(stream.encode())


def measure(path: str, window: float, stride: float) -> dict:
    """One timeline run in this process: what the parent prints for one length."""
    import mrrn_keras
    from mrrn_keras.predict import sample_clip_path

    mrrn_keras.timeline(sample_clip_path(), window=1.0)  # loads the model and traces
    start = time.perf_counter()
    result = mrrn_keras.timeline(path, window=window, stride=stride)
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "frames_decoded": result.frames_decoded,
        "backbone_frame_calls": result.backbone_frames,
        "distinct_frames_used": len({i for w in result.windows for i in w.frames}),
        "windows": len(result.windows),
        "segments": len(result.segments),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--stride", type=float, default=0.5)
    parser.add_argument("--measure", metavar="VIDEO", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.window, args.stride)))
        return
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            path = pathlib.Path(folder) / f"motion_{minutes:g}min.avi"
            render(path, minutes=minutes, fps=args.fps, size=args.size)
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(path), "--window", str(args.window),
                 "--stride", str(args.stride)], check=True, capture_output=True, text=True,
            ).stdout
            run = {"minutes": minutes, **json.loads(out.strip().splitlines()[-1])}
            run["seconds_per_video_minute"] = round(run["seconds"] / minutes, 2)
            runs.append(run)
    print(json.dumps({
        "variant": "mrrn_tiny.motion", "fps": args.fps, "size": args.size,
        "window_s": args.window, "stride_s": args.stride, "load": os.getloadavg(),
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
