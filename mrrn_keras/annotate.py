"""Annotated output: a video with the timeline's current label and score drawn on it.

What `mrrn predict --timeline --annotate out.mp4` writes. The source is
decoded again front to back at its own size (one frame in memory at a
time), each frame gets the label and score of the window that speaks for
its time (`Timeline.label_at`) drawn in its top-left corner with Pillow,
and PyAV encodes it with the frame's own timestamp, so the output keeps
the source's size, rate and (for variable-frame-rate files) timing.
"""

from __future__ import annotations

import fractions
import os
import pathlib

import numpy as np

from mrrn_keras.data.video import PathLike, iter_frames, probe_video
from mrrn_keras.errors import VideoError

# Encoder and pixel format: mpeg4 takes any size (H.264 needs even ones) and
# every container FFmpeg writes for .mp4/.avi/.mkv/.mov.
ANNOTATE_CODEC = "mpeg4"
_CODEC_OPTIONS = {"flags": "qscale", "global_quality": "236"}
# Output timestamps are kept in milliseconds.
_TIME_BASE = fractions.Fraction(1, 1000)
_DEFAULT_RATE = 25


def annotate_video(source: PathLike, out: PathLike, timeline, *,
                   overwrite: bool = False) -> pathlib.Path:
    """Writes `source` with `timeline`'s current label and score drawn on each frame.

    The file is written under a temporary name beside `out` and renamed
    over it once complete (`mrrn_keras.files.write_whole`), so a failure
    leaves nothing half-written.

    Args:
        source: the video the timeline was computed on.
        out: the file to write; its extension picks the container
            (`.mp4`, `.avi`, `.mkv`, `.mov`), its folder must exist.
        timeline: a `mrrn_keras.timelines.Timeline` of `source`.
        overwrite: replace an existing `out`. Defaults to `False`.

    Returns:
        `out` as a `pathlib.Path`.

    Raises:
        ValueError: `out` is `source`, or has no extension.
        FileExistsError: `out` exists and `overwrite` is False.
        FileNotFoundError: the folder of `out` does not exist.
        VideoError: `source` cannot be read, or FFmpeg cannot write `out`.

    Example:

    >>> import tempfile, pathlib
    >>> import mrrn_keras
    >>> from mrrn_keras.data.video import read_frames
    >>> from mrrn_keras.predict import sample_clip_path
    >>> result = mrrn_keras.timeline(sample_clip_path(), window=1.0)
    >>> out = annotate_video(sample_clip_path(), pathlib.Path(tempfile.mkdtemp()) / "a.mp4",
    ...                      result)
    >>> len(read_frames(out)) == len(read_frames(sample_clip_path()))
    True
    """
    from mrrn_keras.files import write_whole

    target = pathlib.Path(out)
    if not target.suffix:
        raise ValueError(f"`out` needs a video extension (.mp4, .avi, .mkv). Received: out={out}")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"Directory does not exist: {target.parent}")
    if target.exists() and os.path.samefile(target, source):
        raise ValueError(f"`out` must not be the source video. Received: out={out}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: remove it or choose another name")
    info = probe_video(source)
    rate = fractions.Fraction(str(info.fps)).limit_denominator(1001) if info.fps else None
    return write_whole(target, lambda tmp: _write(source, tmp, timeline, rate or _DEFAULT_RATE))


def _write(source, tmp: pathlib.Path, timeline, rate) -> None:
    import av

    try:
        with av.open(str(tmp), mode="w") as container:
            stream = None
            last_pts = -1
            for seconds, frame in iter_frames(source):
                if stream is None:
                    stream = container.add_stream(ANNOTATE_CODEC, rate=rate)
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.time_base = _TIME_BASE
                    stream.codec_context.time_base = _TIME_BASE
                    stream.options = dict(_CODEC_OPTIONS)
                window = timeline.label_at(seconds)
                picture = av.VideoFrame.from_ndarray(draw_label(frame, window), format="rgb24")
                # Timestamps strictly increase, as encoders require.
                last_pts = max(last_pts + 1, round(seconds / _TIME_BASE))
                picture.pts, picture.time_base = last_pts, _TIME_BASE
                container.mux(stream.encode(picture))
            container.mux(stream.encode())
    except (av.error.FFmpegError, OSError, ValueError) as err:
        reason = f"cannot write the annotated video ({' '.join(str(err).split())})"
        raise VideoError(tmp.name, reason) from err


def draw_label(frame: np.ndarray, window) -> np.ndarray:
    """`frame` `(H, W, 3)` uint8 with `window`'s label and score in its top-left corner.

    Args:
        frame: uint8 RGB frame.
        window: a `mrrn_keras.timelines.Window`, or None (nothing drawn).

    Returns:
        A new uint8 RGB frame of the same shape.

    Example:

    >>> import numpy as np
    >>> from mrrn_keras.timelines import Window
    >>> frame = np.zeros((48, 64, 3), np.uint8)
    >>> drawn = draw_label(frame, Window(0.0, 1.0, (("Grow", 0.9),), (0,)))
    >>> drawn.shape, bool(drawn.any())
    ((48, 64, 3), True)
    """
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.asarray(frame, np.uint8))
    if window is None:
        return np.asarray(image)
    text = f"{window.label} {window.score:.2f}"
    font = ImageFont.load_default(size=max(8, image.height // 12))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((2, 2), text, font=font)
    draw.rectangle((0, 0, right + 2, bottom + 2), fill=(0, 0, 0))
    draw.text((2, 2), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)
