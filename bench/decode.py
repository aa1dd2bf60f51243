"""Sparse (seek) vs sequential decoding of sampled frames; prints JSON.

Two synthetic 320x240 mpeg4 .avi files are rendered once into `--cache_dir`
(reused while their settings match): a long one (`--minutes`, keyframe every
`--gop` frames) and a UCF-101-length one (`--short_s` seconds, FFmpeg's
default 12-frame GOP, as `write_video` writes). For each, the frames of a
`--segments`-segment TSN clip (`sample_indices(mode="segments")`, test mode)
are read with `read_frames(method=...)`:

- "sequential": decode from frame 0 up to the last index (the old reader),
- "seek": the packet index is rebuilt (cold, cache cleared) and each
  needed stretch is reached by seeking to the keyframe before it,
- "seek_warm": the same with the file's packet index already cached,
- "auto": what `ClipSource` uses (index cached).

Each is the best of `--repeats` runs (`--short_repeats` for the short
file), taken in turns, in seconds; ratios are sequential / x.
The frames of every method are checked equal to the sequential ones.

    python bench/decode.py                     # 10 minutes, 12 segments
    python bench/decode.py --minutes 1 --repeats 1 --short_repeats 3
"""

import argparse
import json
import os
import pathlib
import tempfile
import time

import av
import numpy as np

from mrrn_keras.data import video

HEIGHT, WIDTH, FPS = 240, 320, 25


def render(path: pathlib.Path, num_frames: int, gop: int) -> None:
    """Writes moving textured frames to `path` (atomically), without holding them all."""
    if path.exists():
        return
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (HEIGHT, WIDTH * 2, 3), dtype=np.uint8)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"flags": "qscale", "global_quality": "600"}
        for t in range(num_frames):
            array = np.ascontiguousarray(np.roll(base, 2 * t, axis=1)[:, :WIDTH])
            array[:8, : t % WIDTH] = 255  # a bar that grows: no two frames alike
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    os.replace(tmp, path)


def measure(path: pathlib.Path, segments: int, repeats: int) -> dict:
    info = video.probe_video(path)
    indices = video.sample_indices(info.num_frames, segments, mode="segments")

    def cold_seek():
        video._INDEXES.clear()
        return video.read_frames(path, indices, method="seek")

    methods = {
        "sequential": lambda: video.read_frames(path, indices, method="sequential"),
        "seek": cold_seek,
        "seek_warm": lambda: video.read_frames(path, indices, method="seek"),
        "auto": lambda: video.read_frames(path, indices, method="auto"),
    }
    # Round-robin repeats, so that load from other processes hits every method alike.
    seconds = {name: float("inf") for name in methods}
    frames = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            frames[name] = fn()
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    identical = all(np.array_equal(frames[k], frames["sequential"]) for k in frames)
    return {
        "file": path.name,
        "frames": info.num_frames,
        "duration_s": round(info.duration_s, 2),
        "indices": ",".join(map(str, indices.tolist())),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "speedup": {
            k: round(seconds["sequential"] / v, 2) for k, v in seconds.items() if k != "sequential"
        },
        "identical": identical,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--gop", type=int, default=250)
    parser.add_argument("--short_s", type=float, default=7.0)
    parser.add_argument("--segments", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--short_repeats", type=int, default=30)
    parser.add_argument("--cache_dir", default=os.path.join(tempfile.gettempdir(), "mrrn_bench_decode"))
    args = parser.parse_args()
    root = pathlib.Path(args.cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    long_frames = int(round(args.minutes * 60 * FPS))
    short_frames = int(round(args.short_s * FPS))
    long_path = root / f"long_{long_frames}f_gop{args.gop}.avi"
    short_path = root / f"short_{short_frames}f_gop12.avi"
    start = time.perf_counter()
    render(long_path, long_frames, args.gop)
    render(short_path, short_frames, 12)
    render_s = time.perf_counter() - start
    print(json.dumps({
        "benchmark": "decode",
        "size": f"{WIDTH}x{HEIGHT}",
        "codec": "mpeg4",
        "segments": args.segments,
        "repeats": args.repeats,
        "short_repeats": args.short_repeats,
        "seek_cost_frames": video.SEEK_COST_FRAMES,
        "render_s": round(render_s, 2),
        "long": measure(long_path, args.segments, args.repeats),
        "short": measure(short_path, args.segments, args.short_repeats),
    }, indent=2))


if __name__ == "__main__":
    main()
