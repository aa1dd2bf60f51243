"""A procedural motion dataset: classes defined by motion, not appearance.

No real action dataset can be downloaded here, so the zoo's `*.motion`
checkpoints train on clips rendered by this module. Each clip shows one
textured object moving over a static, cluttered background. The label says
only how the object moves; its shape, colours, texture, size, starting pose
and the background are drawn from one distribution shared by every class.

The classes come in time-reversed pairs (`REVERSED`): reversing the frames of
a `move_left` clip gives exactly the `move_right` clip rendered from the same
random generator state, and so on (`still` is its own reverse). A model that
ignores frame order therefore sees identical inputs for the two classes of a
pair and cannot beat chance on them; a model must use temporal order.

How the exact reversal is kept: a clip's motion is an interpolation between a
start state and an end state (centre, angle, scale); the reverse class swaps
the two. The random draws never depend on which class of a pair is rendered,
each frame is rendered alone from its state, and the per-frame noise
(brightness flicker and pixel noise) is a palindrome in time, so it reads the
same both ways. The palindrome is shared by every class, so it says nothing
about the label.

Example:

>>> import numpy as np
>>> clip = render_clip("move_left", frames=8, size=32, rng=np.random.default_rng(0))
>>> clip.shape, clip.dtype
((8, 32, 32, 3), dtype('uint8'))
>>> twin = render_clip("move_right", frames=8, size=32, rng=np.random.default_rng(0))
>>> bool(np.array_equal(clip[::-1], twin))
True
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from mrrn_keras.data import video
from mrrn_keras.validation import check_int

logger = logging.getLogger(__name__)

MOTION_CLASSES = (
    "still",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "rotate_cw",
    "rotate_ccw",
    "grow",
    "shrink",
)

# Class -> the class its time-reversal belongs to.
REVERSED = {
    "still": "still",
    "move_left": "move_right",
    "move_right": "move_left",
    "move_up": "move_down",
    "move_down": "move_up",
    "rotate_cw": "rotate_ccw",
    "rotate_ccw": "rotate_cw",
    "grow": "shrink",
    "shrink": "grow",
}

# Class -> CamelCase folder / file name, as UCF-101 names its classes.
UCF_CLASS_NAMES = {
    "still": "Still",
    "move_left": "MoveLeft",
    "move_right": "MoveRight",
    "move_up": "MoveUp",
    "move_down": "MoveDown",
    "rotate_cw": "RotateCW",
    "rotate_ccw": "RotateCCW",
    "grow": "Grow",
    "shrink": "Shrink",
}

# Class -> (motion family, whether the start and end states are swapped).
# Both classes of a pair share a family, hence the same random draws.
_FAMILY = {
    "still": ("still", False),
    "move_right": ("horizontal", False),
    "move_left": ("horizontal", True),
    "move_down": ("vertical", False),
    "move_up": ("vertical", True),
    "rotate_cw": ("rotate", False),
    "rotate_ccw": ("rotate", True),
    "grow": ("scale", False),
    "shrink": ("scale", True),
}

SHAPES = ("square", "disc", "triangle", "cross", "diamond")
TEXTURES = ("stripes", "checker", "noise")

_SUPERSAMPLE = 2  # anti-aliasing: render at 2x and average 2x2 blocks
_NOISE_GRID = 6  # cells per side of the "noise" texture


def _class_name(label: int | str) -> str:
    if isinstance(label, str):
        if label not in MOTION_CLASSES:
            raise ValueError(f"`label` must be one of {MOTION_CLASSES}. Received: label={label!r}")
        return label
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if 0 <= label < len(MOTION_CLASSES):
            return MOTION_CLASSES[int(label)]
    raise ValueError(
        f"`label` must be a class name or an int in [0, {len(MOTION_CLASSES)}). "
        f"Received: label={label!r}"
    )


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of `shape` in object coordinates (unit half-size)."""
    au, av_ = np.abs(u), np.abs(v)
    if shape == "square":
        return np.maximum(au, av_) <= 1.0
    if shape == "disc":
        return u * u + v * v <= 1.0
    if shape == "triangle":
        return (v <= 0.8) & (1.8 * au <= v + 1.0)
    if shape == "cross":
        return ((au <= 1.0) & (av_ <= 0.35)) | ((au <= 0.35) & (av_ <= 1.0))
    return au + av_ <= 1.1  # diamond


def _object_coords(xs, ys, cx, cy, angle, half):
    """Inverse-maps pixel coordinates into the object's unit frame.

    Only +, -, * and / touch the pixel arrays (the trigonometry is scalar),
    so a frame's pixels depend on its state alone, bit for bit.
    """
    cos, sin = math.cos(angle), math.sin(angle)
    dx = (xs - cx) / half
    dy = (ys - cy) / half
    # p = c + half * R(angle) u  =>  u = R(-angle) (p - c) / half; y points down,
    # so a growing angle turns the object clockwise on screen.
    return cos * dx + sin * dy, cos * dy - sin * dx


def _draw_scene(rng: np.random.Generator, size: int) -> dict:
    """Draws the appearance of a clip: identical distribution for every class."""
    while True:
        background = rng.uniform(0, 255, 3)
        colour = rng.uniform(0, 255, 3)
        if abs(_luma(background) - _luma(colour)) >= 70:
            break
    # Second texture colour: the object colour pushed towards black or white,
    # away from the background, so the whole object contrasts with it.
    towards = 0.0 if _luma(colour) < _luma(background) else 255.0
    shade = rng.uniform(0.35, 0.6)
    colour2 = colour + (towards - colour) * shade
    marker = 255.0 - colour  # a dot that makes every shape asymmetric
    clutter = []
    for _ in range(int(rng.integers(2, 5))):
        clutter.append(
            dict(
                shape=SHAPES[int(rng.integers(len(SHAPES)))],
                colour=rng.uniform(0, 255, 3),
                cx=rng.uniform(0, size),
                cy=rng.uniform(0, size),
                angle=rng.uniform(0, 2 * math.pi),
                half=rng.uniform(0.04, 0.08) * size,
            )
        )
    return dict(
        background=background,
        gradient=rng.uniform(-30, 30, 2),
        static_noise=rng.uniform(0, 6),
        clutter=clutter,
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        colour=colour,
        colour2=colour2,
        marker=marker,
        marker_uv=(rng.uniform(-0.45, 0.45), rng.uniform(-0.45, 0.45)),
        stripe_angle=rng.uniform(0, math.pi),
        texture_freq=rng.uniform(1.2, 2.5),
        noise_grid=rng.random((_NOISE_GRID, _NOISE_GRID)) < 0.5,
        half=rng.uniform(0.10, 0.16) * size,
        angle=rng.uniform(0, 2 * math.pi),
    )


def _draw_motion(rng: np.random.Generator, family: str, scene: dict, size: int):
    """Returns the (start, end) states `[cx, cy, angle, scale]` of a family."""
    half, angle = scene["half"], scene["angle"]

    def centre(margin: float) -> float:
        return rng.uniform(margin, size - margin) if size > 2 * margin else size / 2

    if family == "horizontal" or family == "vertical":
        travel = rng.uniform(0.30, 0.50) * size
        along = rng.uniform(half, max(half, size - half - travel))
        across = centre(half)
        start, end = (along, across), (along + travel, across)
        if family == "vertical":
            start, end = start[::-1], end[::-1]
        return np.array([*start, angle, 1.0]), np.array([*end, angle, 1.0])
    if family == "rotate":
        turn = math.radians(rng.uniform(60, 180))
        cx, cy = centre(half * 1.2), centre(half * 1.2)
        return np.array([cx, cy, angle, 1.0]), np.array([cx, cy, angle + turn, 1.0])
    if family == "scale":
        ratio = math.sqrt(rng.uniform(1.6, 2.5))
        cx, cy = centre(half * ratio), centre(half * ratio)
        # Geometric mean size = the drawn size, as for the other families.
        return np.array([cx, cy, angle, 1.0 / ratio]), np.array([cx, cy, angle, ratio])
    cx, cy = centre(half * 1.2), centre(half * 1.2)
    state = np.array([cx, cy, angle, 1.0])
    return state, state.copy()


def _palindrome(first_half: np.ndarray, frames: int) -> np.ndarray:
    """[a, b, c] -> [a, b, c, b, a] (odd) or [a, b, b, a] (even)."""
    return np.concatenate([first_half, first_half[: frames // 2][::-1]])


def render_clip(
    label: int | str,
    *,
    frames: int = 8,
    size: int = 64,
    rng: np.random.Generator,
) -> np.ndarray:
    """Renders one clip of a motion class.

    Per clip, at random: object shape (square, disc, triangle, cross,
    diamond), colours (contrasting with the background), texture (stripes,
    checker, noise) with an off-centre marker dot, size (10-16% of the frame
    as half-width), starting pose; background colour, gradient, 2-4 static
    distractor shapes and static noise; per-frame brightness flicker and
    pixel noise. Motion: translations travel 30-50% of the frame, rotations
    turn 60-180 degrees, grow/shrink scale by 1.6-2.5x; the object stays
    mostly inside the frame. Rendering is vectorised numpy, anti-aliased by
    2x supersampling.

    Args:
        label: int index into `MOTION_CLASSES` or a class name.
        frames: int >= 2. Frames in the clip.
        size: int >= 8. Height and width in pixels.
        rng: numpy Generator; the clip is a pure function of its state, and
            `render_clip(REVERSED[c], rng=g)` is the time-reversal of
            `render_clip(c, rng=g)` for two generators `g` in the same state.

    Returns:
        uint8 array `(frames, size, size, 3)`, RGB.

    Raises:
        ValueError: an unknown label, or `frames`/`size` out of range.

    Example:

    >>> import numpy as np
    >>> clip = render_clip(0, frames=4, size=16, rng=np.random.default_rng(1))
    >>> bool(np.array_equal(clip[::-1], clip))  # "still" is its own reverse
    True
    """
    name = _class_name(label)
    frames = check_int("frames", frames, minimum=2)
    size = check_int("size", size, minimum=8)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"`rng` must be a numpy Generator. Received: rng={rng!r}")
    family, swap = _FAMILY[name]

    scene = _draw_scene(rng, size)
    start, end = _draw_motion(rng, family, scene, size)
    if swap:
        start, end = end, start
    half_len = (frames + 1) // 2
    gains = _palindrome(1.0 + rng.normal(0, 0.03, half_len), frames)
    noise_std = rng.uniform(1.0, 4.0)
    noise = _palindrome(rng.normal(0, noise_std, (half_len, size, size, 3)), frames)
    static = rng.normal(0, scene["static_noise"], (size, size, 3))

    # Interpolation weights from integers, so weight_a[T-1-t] == weight_b[t]
    # exactly and a swapped (start, end) gives the exact time-reversal.
    steps = np.arange(frames)
    weight_a = (frames - 1 - steps) / (frames - 1)
    weight_b = steps / (frames - 1)
    states = weight_a[:, None] * start[None, :] + weight_b[:, None] * end[None, :]

    return _draw_frames(scene, states, gains, noise, static, size)



def render_sequence(
    activities: Sequence[tuple[int | str, int]],
    *,
    size: int = 64,
    clip_frames: int = 16,
    rng: np.random.Generator,
) -> np.ndarray:
    """Renders one scene whose object does several motions back to back.

    A test video of activities in a row (what `mrrn predict --timeline`
    finds): one background and object throughout; each activity moves the
    object from where the previous one left it, at the speed `render_clip`
    gives a clip of `clip_frames` frames, so there is no cut between
    activities, only a change of motion. Translations are not kept inside
    the frame: choose the order and lengths so the object stays visible.

    Args:
        activities: `(label, frames)` pairs: a class index or name of
            `MOTION_CLASSES` and how many frames (>= 1) it lasts.
        size: int >= 8. Height and width in pixels.
        clip_frames: int >= 2. The clip length whose speed each motion has
            (the motion dataset's videos have 16 frames).
        rng: numpy Generator; the video is a pure function of its state.

    Returns:
        uint8 array `(sum of frames, size, size, 3)`, RGB.

    Raises:
        ValueError: an unknown label, or a length out of range.

    Example:

    >>> import numpy as np
    >>> video = render_sequence([("still", 4), ("move_left", 6)], size=16,
    ...                         rng=np.random.default_rng(0))
    >>> video.shape
    (10, 16, 16, 3)
    """
    size = check_int("size", size, minimum=8)
    clip_frames = check_int("clip_frames", clip_frames, minimum=2)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"`rng` must be a numpy Generator. Received: rng={rng!r}")
    plan = [(_FAMILY[_class_name(label)], check_int("frames", frames))
            for label, frames in activities]
    if not plan:
        raise ValueError("`activities` must hold at least one (label, frames) pair.")
    scene = _draw_scene(rng, size)
    states, state = [], None
    for (family, swap), frames in plan:
        start, end = _draw_motion(rng, family, scene, size)
        if swap:
            start, end = end, start
        state = start if state is None else state
        step = (end - start) / (clip_frames - 1)  # the change per frame of a clip
        # Scale multiplies, the rest adds: grow/shrink by the clip's per-frame ratio.
        ratio = (end[3] / start[3]) ** (1 / (clip_frames - 1))
        for _ in range(frames):
            states.append(state)
            state = np.array([*(state[:3] + step[:3]), state[3] * ratio])
    states = np.stack(states)
    gains = 1.0 + rng.normal(0, 0.03, len(states))
    noise = rng.normal(0, rng.uniform(1.0, 4.0), (len(states), size, size, 3))
    static = rng.normal(0, scene["static_noise"], (size, size, 3))
    return _draw_frames(scene, states, gains, noise, static, size)

def _draw_frames(scene, states, gains, noise, static, size) -> np.ndarray:
    """Renders frames `(T, size, size, 3)` of `scene` at `states` `(T, 4)`: cx, cy, angle, scale."""
    fine = size * _SUPERSAMPLE
    axis = (np.arange(fine) + 0.5) / _SUPERSAMPLE  # pixel-centre coordinates
    xs, ys = np.meshgrid(axis, axis)  # (fine, fine) each

    backdrop = np.empty((fine, fine, 3))
    backdrop[:] = scene["background"]
    gx, gy = scene["gradient"]
    backdrop += ((xs / size - 0.5) * gx + (ys / size - 0.5) * gy)[..., None]
    for item in scene["clutter"]:
        u, v = _object_coords(xs, ys, item["cx"], item["cy"], item["angle"], item["half"])
        backdrop[_shape_mask(item["shape"], u, v)] = item["colour"]

    clip = np.empty((len(states), size, size, 3), np.uint8)
    for t in range(len(states)):
        cx, cy, angle, scale = states[t]
        u, v = _object_coords(xs, ys, cx, cy, angle, scene["half"] * scale)
        image = backdrop.copy()
        mask = _shape_mask(scene["shape"], u, v)
        image[mask] = scene["colour2"]
        image[mask & _texture(scene, u, v)] = scene["colour"]
        mu, mv = scene["marker_uv"]
        dot = mask & ((u - mu) ** 2 + (v - mv) ** 2 <= 0.25**2)
        image[dot] = scene["marker"]
        # (2S, 2S, 3) -> (S, 2, S, 2, 3) -> (S, S, 3): average 2x2 blocks.
        image = image.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
        image = image * gains[t] + noise[t] + static
        clip[t] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return clip


def _texture(scene: dict, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean texture pattern in object coordinates (moves with the object)."""
    freq = scene["texture_freq"]
    if scene["texture"] == "stripes":
        phi = scene["stripe_angle"]
        return np.floor((u * math.cos(phi) + v * math.sin(phi)) * freq) % 2 == 0
    if scene["texture"] == "checker":
        return (np.floor(u * freq) + np.floor(v * freq)) % 2 == 0
    cells = np.clip(((u + 1.0) * (_NOISE_GRID / 2)).astype(np.int64), 0, _NOISE_GRID - 1)
    rows = np.clip(((v + 1.0) * (_NOISE_GRID / 2)).astype(np.int64), 0, _NOISE_GRID - 1)
    return scene["noise_grid"][rows, cells]


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    classes = tuple(classes) if not isinstance(classes, str) else (classes,)
    unknown = [c for c in classes if c not in MOTION_CLASSES]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ValueError(
            f"`classes` must be distinct names from {MOTION_CLASSES}. Received: classes={classes!r}"
        )
    return classes


def _clip_rng(seed: int, name: str, index: int) -> np.random.Generator:
    """The generator of clip `index` of class `name`: independent of order."""
    return np.random.default_rng([seed, MOTION_CLASSES.index(name), index])


def render_dataset(
    n_per_class: int,
    *,
    frames: int,
    size: int,
    seed: int,
    classes: Sequence[str] = MOTION_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Renders a balanced motion dataset in memory.

    Clip `i` of class `c` is rendered from `np.random.default_rng([seed,
    MOTION_CLASSES.index(c), i])`, so a dataset is deterministic for a seed,
    and clips do not change when `classes` or `n_per_class` change.

    Args:
        n_per_class: int >= 1. Clips per class.
        frames: int >= 2. Frames per clip.
        size: int >= 8. Height and width.
        seed: int >= 0.
        classes: names from `MOTION_CLASSES`; label `k` is `classes[k]`.

    Returns:
        `(clips, labels)`: uint8 `(N, frames, size, size, 3)` and int64
        `(N,)`, with N = n_per_class * len(classes), grouped by class in
        the order of `classes`.

    Raises:
        ValueError: an argument is out of range.

    Example:

    >>> x, y = render_dataset(2, frames=4, size=16, seed=0, classes=("grow", "shrink"))
    >>> x.shape, y.tolist()
    ((4, 4, 16, 16, 3), [0, 0, 1, 1])
    """
    n_per_class = check_int("n_per_class", n_per_class, minimum=1)
    frames = check_int("frames", frames, minimum=2)
    size = check_int("size", size, minimum=8)
    seed = check_int("seed", seed, minimum=0)
    classes = _check_classes(classes)
    clips = np.empty((n_per_class * len(classes), frames, size, size, 3), np.uint8)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), n_per_class)
    for k, name in enumerate(classes):
        for i in range(n_per_class):
            clips[k * n_per_class + i] = render_clip(
                name, frames=frames, size=size, rng=_clip_rng(seed, name, i)
            )
    return clips, labels


SPLIT_FILES = ("trainlist01.txt", "testlist01.txt", "classInd.txt")


def _write_text(path: pathlib.Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def make_motion_dataset(
    root: str | os.PathLike,
    *,
    videos_per_class: int,
    frames: int = 16,
    size: int = 64,
    fps: int = 8,
    seed: int = 0,
    classes: Sequence[str] = MOTION_CLASSES,
    test_fraction: float = 0.25,
    codec: str = "mpeg4",
    container: str = "avi",
    clips_per_group: int = 4,
) -> pathlib.Path:
    """Writes the motion dataset as video files in the UCF-101 layout.

    Layout (class folders use `UCF_CLASS_NAMES`, e.g. "MoveLeft"):

        root/videos/<Class>/v_<Class>_g<GG>_c<CC>.<container>
        root/splits/classInd.txt     "1 Still" ... (1-based, order of `classes`)
        root/splits/trainlist01.txt  "<Class>/v_<Class>_g08_c01.avi 1"
        root/splits/testlist01.txt   "<Class>/v_<Class>_g01_c01.avi" (no label)

    Video `i` of a class is clip `i` of `render_dataset` with the same seed,
    in group `i // clips_per_group + 1` ("the person", as in UCF-101).
    Like UCF-101's split 1, the first groups form the test set:
    `round(groups * test_fraction)` of them (at least one when
    `test_fraction > 0`, and at least one group stays for training), so test
    groups never appear in training. Split files are deleted first and
    written last (each atomically, classInd.txt last): a dataset without
    split files is incomplete.

    Args:
        root: directory to write into (created if missing).
        videos_per_class: int >= 1.
        frames: int >= 2. Frames per video.
        size: int >= 8. Height and width; even for H.264 codecs.
        fps: int >= 1. Frame rate written in the files.
        seed: int >= 0.
        classes: names from `MOTION_CLASSES`.
        test_fraction: float in [0, 1). Share of groups held out.
        codec: str. Encoder, see `video.write_video`.
        container: str. File extension without the dot ("avi", "mp4", ...).
        clips_per_group: int >= 1. Videos per group.

    Returns:
        `root` as a `pathlib.Path`.

    Raises:
        ValueError: an argument is out of range.
        VideoError: a video could not be written.

    Example:

    >>> import tempfile
    >>> root = make_motion_dataset(tempfile.mkdtemp(), videos_per_class=2,
    ...     frames=4, size=16, classes=("grow", "shrink"), clips_per_group=1,
    ...     test_fraction=0.5)
    >>> (root / "splits" / "classInd.txt").read_text().split()
    ['1', 'Grow', '2', 'Shrink']
    """
    videos_per_class = check_int("videos_per_class", videos_per_class, minimum=1)
    frames = check_int("frames", frames, minimum=2)
    size = check_int("size", size, minimum=8)
    fps = check_int("fps", fps, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    clips_per_group = check_int("clips_per_group", clips_per_group, minimum=1)
    classes = _check_classes(classes)
    is_number = isinstance(test_fraction, (int, float)) and not isinstance(test_fraction, bool)
    if not is_number or not 0 <= test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be in [0, 1). Received: test_fraction={test_fraction!r}"
        )
    if not isinstance(container, str) or not container.isalnum():
        raise ValueError(
            f"`container` must be a file extension like 'avi'. Received: container={container!r}"
        )
    if codec in video.EVEN_SIZE_CODECS and size % 2:
        raise ValueError(f"Codec {codec!r} needs an even frame size. Received: size={size}")
    groups = -(-videos_per_class // clips_per_group)
    test_groups = round(groups * test_fraction)
    if test_fraction > 0:
        if groups < 2:
            raise ValueError(
                "A train/test split needs at least 2 groups: videos_per_class > "
                f"clips_per_group. Received: videos_per_class={videos_per_class}, "
                f"clips_per_group={clips_per_group}"
            )
        test_groups = min(max(test_groups, 1), groups - 1)
    digits = max(2, len(str(groups)), len(str(clips_per_group)))

    root = pathlib.Path(root)
    splits = root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    for name in SPLIT_FILES:
        (splits / name).unlink(missing_ok=True)

    train_lines, test_lines = [], []
    for k, name in enumerate(classes):
        folder = UCF_CLASS_NAMES[name]
        (root / "videos" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(videos_per_class):
            group, clip_no = i // clips_per_group + 1, i % clips_per_group + 1
            filename = f"v_{folder}_g{group:0{digits}d}_c{clip_no:0{digits}d}.{container}"
            clip = render_clip(name, frames=frames, size=size, rng=_clip_rng(seed, name, i))
            video.write_video(root / "videos" / folder / filename, clip, fps=fps, codec=codec)
            relative = f"{folder}/{filename}"
            if group <= test_groups:
                test_lines.append(relative)
            else:
                train_lines.append(f"{relative} {k + 1}")

    _write_text(splits / "trainlist01.txt", train_lines)
    _write_text(splits / "testlist01.txt", test_lines)
    class_lines = [f"{k + 1} {UCF_CLASS_NAMES[c]}" for k, c in enumerate(classes)]
    _write_text(splits / "classInd.txt", class_lines)
    logger.info(
        "Wrote %d motion videos (%d train, %d test) under %s",
        len(train_lines) + len(test_lines),
        len(train_lines),
        len(test_lines),
        root,
    )
    return root
