"""Dataset indexes: datasets on disk turned into (path, label) lists.

Four layouts are read: UCF-101 split files (`read_ucf101`), HMDB-51 split
files (`read_hmdb51`), a folder of class folders (`read_folder`) and a CSV
of `path,label[,start,end]` rows as Kinetics ships (`read_csv`);
`read_dataset` picks one by name for the recipes and the CLI.
"""

import csv
import dataclasses
import math
import os
import pathlib
import re

from mrrn_keras.errors import DatasetError
from mrrn_keras.files import is_inside


@dataclasses.dataclass(frozen=True)
class VideoIndex:
    """A labelled list of videos.

    Args:
        paths: absolute video paths.
        labels: 0-based class index per video.
        class_names: the class names; label `k` is `class_names[k]`.
        spans: `None` (every video is used whole) or one `(start, end)` pair
            in seconds per video, `None` for a whole video (CSV rows with
            start and end, as Kinetics trims its clips).
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    spans: tuple[tuple[float, float] | None, ...] | None = None

    def __len__(self) -> int:
        return len(self.paths)


def _read_lines(path: pathlib.Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]


def _video_path(folder: pathlib.Path, rel: str, file, number: int) -> str:
    """The resolved path of `rel` in `folder`, refused (naming `file:number`) outside it.

    An index names videos; it does not choose which files are read: `..`,
    absolute paths and symbolic links that lead out of `folder` are refused.
    """
    path = (folder / rel).resolve()
    if not is_inside(folder, path):
        raise DatasetError(
            f"{file}:{number}: {rel!r} resolves to {path}, outside the videos folder "
            f"{folder}; index only videos inside it"
        )
    return str(path)


def read_ucf101(
    root: str | os.PathLike,
    *,
    split: int = 1,
    subset: str = "train",
    videos_dir: str = "videos",
    splits_dir: str = "splits",
) -> VideoIndex:
    """Reads a UCF-101 style split: `classInd.txt`, `trainlist0N.txt`, `testlist0N.txt`.

    `classInd.txt` is 1-based ("1 ApplyEyeMakeup"); trainlist lines carry a
    1-based label, testlist lines do not (the label comes from the class
    folder in the path, as UCF-101 ships them).

    Args:
        root: dataset root holding `videos_dir/` and `splits_dir/`.
        split: 1, 2 or 3.
        subset: `"train"` or `"test"`.
        videos_dir: folder of class folders, relative to `root`.
        splits_dir: folder of the split files, relative to `root`.

    Returns:
        A `VideoIndex`.

    Raises:
        DatasetError: a split file is missing or has a malformed line, or a
            line whose path resolves outside `videos_dir` (`..`, symbolic
            links); the message names the file and line number.
        ValueError: for a bad `split` or `subset`.

    Example:

    >>> index = read_ucf101("/data/UCF-101", split=1, subset="test")  # doctest: +SKIP
    """
    _check_split_subset(split, subset)
    root = pathlib.Path(root)
    class_file = root / splits_dir / "classInd.txt"
    class_names = []
    for number, line in _read_lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(class_names) + 1:
            raise DatasetError(
                f"{class_file}:{number}: expected '<index> <ClassName>' with "
                f"index {len(class_names) + 1}, got {line!r}"
            )
        class_names.append(parts[1])
    lookup = {name: k for k, name in enumerate(class_names)}

    list_file = root / splits_dir / f"{subset}list0{split}.txt"
    paths, labels = [], []
    for number, line in _read_lines(list_file):
        parts = line.split()
        rel = parts[0]
        folder = rel.split("/")[0]
        if len(parts) > 2 or folder not in lookup:
            raise DatasetError(
                f"{list_file}:{number}: expected '<Class>/<video> [label]' with a "
                f"class from {class_file.name}, got {line!r}"
            )
        label = lookup[folder]
        if len(parts) == 2:
            if not parts[1].isdigit() or int(parts[1]) - 1 != label:
                raise DatasetError(
                    f"{list_file}:{number}: label {parts[1]!r} does not match "
                    f"class folder {folder!r} (index {label + 1} in {class_file.name})"
                )
        paths.append(_video_path(root / videos_dir, rel, list_file, number))
        labels.append(label)
    return VideoIndex(tuple(paths), tuple(labels), tuple(class_names))


VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv")
DATASET_FORMATS = ("ucf101", "hmdb51", "folder", "csv")
_HMDB_SPLIT = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")
_HMDB_TAGS = {"train": "1", "test": "2"}


def _check_split_subset(split, subset, subsets=("train", "test")):
    if split not in (1, 2, 3):
        raise ValueError(f"`split` must be 1, 2 or 3. Received: split={split!r}")
    if subset not in subsets:
        raise ValueError(f"`subset` must be one of {subsets}. Received: subset={subset!r}")


def read_hmdb51(
    root: str | os.PathLike,
    *,
    split: int = 1,
    subset: str = "train",
    videos_dir: str = "videos",
    splits_dir: str = "splits",
) -> VideoIndex:
    """Reads an HMDB-51 style split: one `<class>_test_split<N>.txt` per class.

    Each line is `<video file> <tag>`, tag 1 = train, 2 = test, 0 = unused;
    videos live in `videos_dir/<class>/<video file>`. Classes are the split
    files' class names, sorted.

    Args:
        root: dataset root holding `videos_dir/` and `splits_dir/`.
        split: 1, 2 or 3.
        subset: `"train"` or `"test"`.
        videos_dir: folder of class folders, relative to `root`.
        splits_dir: folder of the split files, relative to `root`.

    Returns:
        A `VideoIndex`.

    Raises:
        DatasetError: no split file for `split`, or a malformed line, or a
            line whose path resolves outside `videos_dir/<class>`'s videos
            folder; the message names the file and line number.
        ValueError: for a bad `split` or `subset`.

    Example:

    >>> index = read_hmdb51("/data/hmdb51", split=1, subset="test")  # doctest: +SKIP
    """
    _check_split_subset(split, subset)
    root = pathlib.Path(root)
    split_root = root / splits_dir
    files = {}
    if split_root.is_dir():
        for path in split_root.iterdir():
            match = _HMDB_SPLIT.match(path.name)
            if match and int(match["split"]) == split:
                files[match["cls"]] = path
    if not files:
        raise DatasetError(
            f"{split_root}: no HMDB-51 split files '<class>_test_split{split}.txt' found"
        )
    class_names = tuple(sorted(files))
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for number, line in _read_lines(files[name]):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(
                    f"{files[name]}:{number}: expected '<video> <0|1|2>' "
                    f"(0 unused, 1 train, 2 test), got {line!r}"
                )
            if parts[1] == _HMDB_TAGS[subset]:
                paths.append(_video_path(root / videos_dir, f"{name}/{parts[0]}", files[name],
                                         number))
                labels.append(label)
    return VideoIndex(tuple(paths), tuple(labels), class_names)


def _check_class_names(class_names, found, where):
    """Returns the class names to use: `class_names` if given (must cover `found`)."""
    if class_names is None:
        return tuple(sorted(found))
    class_names = tuple(class_names)
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DatasetError(
            f"{where}: classes {unknown} are not among the given class_names {list(class_names)}"
        )
    return class_names


def read_folder(
    root: str | os.PathLike,
    *,
    class_names=None,
    extensions=VIDEO_EXTENSIONS,
) -> VideoIndex:
    """Reads a folder of class folders: `root/<class>/<video>`.

    Args:
        root: the folder. Each sub-folder is a class; files whose suffix is
            in `extensions` (any case) are its videos. Hidden entries are
            ignored.
        class_names: optional class names, in label order. Defaults to the
            sorted sub-folder names. Give the training set's names when
            reading a test folder, so labels agree.
        extensions: video file suffixes, with the dot.

    Returns:
        A `VideoIndex`, videos sorted by class then file name.

    Raises:
        DatasetError: `root` is not a folder, has no class folder with a
            video, or has a class folder not in `class_names`.

    Example:

    >>> index = read_folder("/data/my_videos/train")  # doctest: +SKIP
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    suffixes = {e.lower() for e in extensions}
    found = {}
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        videos = sorted(
            p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
        )
        if videos:
            found[folder.name] = videos
    if not found:
        raise DatasetError(
            f"{root}: expected class folders holding videos ({', '.join(sorted(suffixes))}), "
            "found none"
        )
    class_names = _check_class_names(class_names, found, root)
    lookup = {name: k for k, name in enumerate(class_names)}
    paths, labels = [], []
    for name in sorted(found, key=lookup.__getitem__):
        for video in found[name]:
            paths.append(str(video.resolve()))
            labels.append(lookup[name])
    return VideoIndex(tuple(paths), tuple(labels), class_names)


def _parse_seconds(text, file, number, line):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise DatasetError(
            f"{file}:{number}: start/end must be seconds >= 0, got {text!r} in {line!r}"
        )
    return value


def read_csv(
    path: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    class_names=None,
) -> VideoIndex:
    """Reads a CSV of `path,label[,start,end]` rows (Kinetics style).

    A first row `path,label[,start,end]` is taken as a header. `label` is a
    class name (or any string); `start`/`end` are seconds into the video
    (both or neither per row; empty means the whole video).

    Args:
        path: the CSV file.
        root: folder video paths are relative to; every path must resolve
            inside it (no absolute paths, no `..` or symbolic link leading
            out). Defaults to the CSV's folder.
        class_names: optional class names in label order. Defaults to the
            sorted distinct labels of the file; give the training set's
            names when reading a test CSV.

    Returns:
        A `VideoIndex` in file order, with `spans` set when any row has
        start and end.

    Raises:
        DatasetError: the file is missing, empty, or a row is malformed or
            names a path outside `root` (the message names the file and
            line number).

    Example:

    >>> index = read_csv("/data/kinetics/train.csv")  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: CSV file not found")
    base = pathlib.Path(root) if root is not None else path.parent
    rows = []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for number, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not any(row):
                continue
            if not rows and number == 1 and row[:2] == ["path", "label"]:
                continue
            line = ",".join(row)
            if len(row) not in (2, 4) or not row[0] or not row[1]:
                raise DatasetError(
                    f"{path}:{number}: expected 'path,label[,start,end]', got {line!r}"
                )
            span = None
            if len(row) == 4 and (row[2] or row[3]):
                start = _parse_seconds(row[2], path, number, line)
                end = _parse_seconds(row[3], path, number, line)
                if end <= start:
                    raise DatasetError(f"{path}:{number}: end must be after start, got {line!r}")
                span = (start, end)
            rows.append((_video_path(base, row[0], path, number), row[1], span))
    if not rows:
        raise DatasetError(f"{path}: no 'path,label[,start,end]' rows")
    class_names = _check_class_names(class_names, {r[1] for r in rows}, path)
    lookup = {name: k for k, name in enumerate(class_names)}
    spans = tuple(r[2] for r in rows)
    return VideoIndex(
        tuple(r[0] for r in rows),
        tuple(lookup[r[1]] for r in rows),
        class_names,
        spans if any(s is not None for s in spans) else None,
    )


# Where the official archives put things, relative to the folder they are
# unpacked in, after this package's own `videos/` + `splits/`. UCF101.rar
# unpacks to `UCF-101/<class>/`, UCF101TrainTestSplits-RecognitionTask.zip to
# `ucfTrainTestlist/`; HMDB-51's per-class archives to `<class>/` and its
# split archive to `testTrainMulti_7030_splits/`.
LAYOUTS = {
    "ucf101": {"videos": ("videos", "UCF-101", "UCF101/UCF-101", "UCF101"),
               "splits": ("splits", "ucfTrainTestlist",
                          "UCF101TrainTestSplits-RecognitionTask/ucfTrainTestlist")},
    "hmdb51": {"videos": ("videos", "hmdb51_org", "hmdb51", "."),
               "splits": ("splits", "testTrainMulti_7030_splits")},
}


def _has_split_files(folder: pathlib.Path, format: str) -> bool:
    if format == "ucf101":
        return (folder / "classInd.txt").is_file()
    return folder.is_dir() and any(_HMDB_SPLIT.match(p.name) for p in folder.iterdir())


def find_layout(
    format: str,
    root: str | os.PathLike,
    *,
    videos_dir: str | os.PathLike | None = None,
    splits_dir: str | os.PathLike | None = None,
) -> tuple[pathlib.Path, pathlib.Path]:
    """The video and split-file folders of a UCF-101 or HMDB-51 tree.

    Finds the layouts of `LAYOUTS`: this package's `videos/` + `splits/`,
    and the folders the official archives unpack to (UCF-101: `UCF-101/` +
    `ucfTrainTestlist/`; HMDB-51: class folders + `testTrainMulti_7030_splits/`).

    Args:
        format: `"ucf101"` or `"hmdb51"`.
        root: the folder the dataset was unpacked in.
        videos_dir, splits_dir: the folders themselves (absolute, or
            relative to `root`), overriding the search.

    Returns:
        `(videos folder, splits folder)`.

    Raises:
        DatasetError: no split-file folder (or no video folder) is found; the
            message lists the places looked at.

    Example:

    >>> find_layout("ucf101", "/data", videos_dir="/data/UCF-101",
    ...             splits_dir="/data/ucfTrainTestlist")
    (PosixPath('/data/UCF-101'), PosixPath('/data/ucfTrainTestlist'))
    """
    root = pathlib.Path(root)
    layout = LAYOUTS[format]
    if splits_dir is not None:
        splits = root / splits_dir
    else:
        tried = [root / c for c in layout["splits"]]
        found = [p for p in tried if _has_split_files(p, format)]
        if not found:
            wanted = "classInd.txt" if format == "ucf101" else "<class>_test_split<N>.txt files"
            raise DatasetError(
                f"{root}: no {format} split folder (holding {wanted}) found; looked at "
                f"{', '.join(str(p) for p in tried)}. Pass --splits_dir (splits_dir=)"
            )
        splits = found[0]
    if videos_dir is not None:
        videos = root / videos_dir
    else:
        tried = [root / c for c in layout["videos"]]
        found = [p for p in tried if p.is_dir()]
        if not found:
            raise DatasetError(
                f"{root}: no {format} video folder found; looked at "
                f"{', '.join(str(p) for p in tried)}. Pass --videos_dir (videos_dir=)"
            )
        videos = found[0]
    # Absolute: the readers join them to `root` again.
    return videos.absolute(), splits.absolute()


def read_dataset(
    format: str,
    root: str | os.PathLike,
    *,
    subset: str = "train",
    split: int = 1,
    class_names=None,
    videos_dir: str | os.PathLike | None = None,
    splits_dir: str | os.PathLike | None = None,
) -> VideoIndex:
    """Reads one subset of a dataset in one of `DATASET_FORMATS`.

    Layouts: `"ucf101"` and `"hmdb51"`: the folders `find_layout` finds
    under `root` (this package's `videos/` + `splits/`, or the official
    archives' own; see `read_ucf101`, `read_hmdb51`); `"folder"`:
    `root/<subset>/<class>/` (see `read_folder`); `"csv"`:
    `root/<subset>.csv` (see `read_csv`).

    Args:
        format: one of `DATASET_FORMATS`.
        root: the dataset root.
        subset: `"train"` or `"test"` (folder and csv also accept any
            other name, e.g. `"val"`).
        split: split number for ucf101 and hmdb51.
        class_names: class names for folder and csv, e.g. the training
            subset's, so that labels agree across subsets.
        videos_dir, splits_dir: ucf101 / hmdb51 folders, overriding the
            search (see `find_layout`).

    Returns:
        A `VideoIndex`.

    Raises:
        ValueError: an unknown format.
        DatasetError: see the readers and `find_layout`.
    """
    if format in LAYOUTS:
        videos, splits = find_layout(format, root, videos_dir=videos_dir, splits_dir=splits_dir)
        reader = read_ucf101 if format == "ucf101" else read_hmdb51
        return reader(root, split=split, subset=subset, videos_dir=videos, splits_dir=splits)
    if format == "folder":
        return read_folder(pathlib.Path(root) / subset, class_names=class_names)
    if format == "csv":
        return read_csv(pathlib.Path(root) / f"{subset}.csv", class_names=class_names)
    raise ValueError(f"`format` must be one of {DATASET_FORMATS}. Received: format={format!r}")


_UCF_GROUP = re.compile(r"_(g\d+)_c\d+$")


def video_groups(index: VideoIndex, format: str) -> tuple[str, ...]:
    """The group of each video: clips of one group must stay on one side of a split.

    UCF-101: the `gNN` of `v_<Class>_gNN_cMM` (one group is one set of
    takes by the same actors in the same place, the unit of its official
    splits); HMDB-51: the source film, the name before `_<class>_`; other
    formats, and names that do not follow the pattern: the video itself.

    Args:
        index: a `VideoIndex`.
        format: one of `DATASET_FORMATS`.

    Returns:
        One group key per video.

    Example:

    >>> index = VideoIndex(("/d/A/v_A_g08_c01.avi", "/d/B/v_B_g08_c02.avi"), (0, 1), ("A", "B"))
    >>> video_groups(index, "ucf101")
    ('g08', 'g08')
    """
    groups = []
    for path, label in zip(index.paths, index.labels):
        stem = pathlib.PurePath(path).stem
        key = path
        if format == "ucf101" and (match := _UCF_GROUP.search(stem)):
            key = match[1]
        elif format == "hmdb51" and f"_{index.class_names[label]}_" in stem:
            key = stem.split(f"_{index.class_names[label]}_")[0]
        groups.append(key)
    return tuple(groups)


def split_by_group(
    index: VideoIndex, groups, fraction: float, *, seed: int = 0
) -> tuple[VideoIndex, VideoIndex]:
    """Holds out whole groups of an index, about `fraction` of its groups.

    Args:
        index: a `VideoIndex`.
        groups: one key per video (see `video_groups`).
        fraction: float in (0, 1). Share of the groups held out; at least
            one group is held out and one kept.
        seed: int. Which groups are drawn.

    Returns:
        `(kept, held_out)` indexes with the same class names.

    Raises:
        DatasetError: fewer than two groups.
    """
    import random

    keys = sorted(set(groups))
    if len(keys) < 2:
        raise DatasetError(
            f"cannot hold out a validation part: the training videos form {len(keys)} group(s)"
        )
    count = min(len(keys) - 1, max(1, round(fraction * len(keys))))
    held = set(random.Random(seed).sample(keys, count))

    def pick(keep):
        rows = [i for i, g in enumerate(groups) if (g in held) != keep]
        spans = None if index.spans is None else tuple(index.spans[i] for i in rows)
        return VideoIndex(tuple(index.paths[i] for i in rows), tuple(index.labels[i] for i in rows),
                          index.class_names, spans)

    return pick(True), pick(False)
