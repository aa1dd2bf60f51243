"""Dataset indexes: datasets on disk turned into (path, label) lists."""

import dataclasses
import os
import pathlib

from mrrn_keras.errors import DatasetError


@dataclasses.dataclass(frozen=True)
class VideoIndex:
    """A labelled list of videos.

    Args:
        paths: absolute video paths.
        labels: 0-based class index per video.
        class_names: the class names; label `k` is `class_names[k]`.
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def _read_lines(path: pathlib.Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]


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
        DatasetError: a split file is missing or has a malformed line (the
            message names the file and line number).
        ValueError: for a bad `split` or `subset`.

    Example:

    >>> index = read_ucf101("/data/UCF-101", split=1, subset="test")  # doctest: +SKIP
    """
    if split not in (1, 2, 3):
        raise ValueError(f"`split` must be 1, 2 or 3. Received: split={split!r}")
    if subset not in ("train", "test"):
        raise ValueError(f"`subset` must be 'train' or 'test'. Received: subset={subset!r}")
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
        paths.append(str((root / videos_dir / rel).resolve()))
        labels.append(label)
    return VideoIndex(tuple(paths), tuple(labels), tuple(class_names))
