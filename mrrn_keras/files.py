"""Writing files safely: names checked, paths kept inside their folder, folders replaced
in one step, owners of temporaries, and proof of what the package wrote.

Untrusted input (a remote zoo entry, a URL) may suggest a file name; before
the package writes anything under such a name, `is_safe_name` checks it is
one plain name (no separators, no `..`, nothing hidden) and `is_inside`
checks that the path, symbolic links resolved, stays inside the folder it
belongs to. Temporary files and folders carry the id of the process that
writes them, so a later run can tell those of a killed process
(`process_is_gone`) from those still being written.

The package deletes or replaces only what it can prove it wrote. Every
folder it creates (a run's `backup/`, a zoo entry, a frame cache, an export,
a temporary folder) gets a marker file, `.mrrn-owned` (`OWNED_MARKER`):
JSON naming the kind of folder, the host and the process that wrote it, and
the plain files it wrote there (`mark_owned`, `record_files`). Before a
removal or a replacement the marker is checked (`check_replaceable`,
`remove_owned`): a folder without it, of another kind, or reached through a
symbolic link is left as it is and named in an `ExistingPathError`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import pathlib
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable

from mrrn_keras.errors import ExistingPathError

logger = logging.getLogger(__name__)

# One plain file name: letters, digits and `._+-`, not starting with a dot
# (no hidden files, no `.` or `..`), at most 200 characters.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# Where `replace_folder` leaves a replaced folder for the instant between two
# renames, inside the scratch folder of the new one.
STASH_NAME = "old"
# The marker of a folder the package created (see the module docstring).
OWNED_MARKER = ".mrrn-owned"
_WRITER = "mrrn_keras"
_MAX_MARKER_BYTES = 1 << 16
# A temporary folder whose writer cannot be checked (another host, or a pid
# reused since) counts as left by a killed process after this long.
STALE_TEMP_S = 24 * 3600.0
# The kind of the scratch folders of `scratch_folder`.
TEMP_KIND = "temporary folder"


def is_safe_name(name) -> bool:
    """Whether `name` is a plain file name safe to create in a folder.

    Args:
        name: the candidate, already percent-decoded if it came from a URL.

    Returns:
        True for a str of letters, digits and `._+-` that does not start
        with a dot; False for anything else (separators, `..`, absolute
        paths, backslashes, control characters, empty or non-str values).

    Example:

    >>> is_safe_name("model.weights.h5"), is_safe_name("../x"), is_safe_name("a\\\\b")
    (True, False, False)
    """
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether `path`, with symbolic links resolved, lies inside `root`.

    Args:
        root: the folder `path` must stay in (it need not exist yet).
        path: the path to check (it need not exist yet).

    Returns:
        True if `path` resolves to `root` or below it.
    """
    root = pathlib.Path(root).resolve()
    return pathlib.Path(path).resolve().is_relative_to(root)


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def process_is_gone(pid) -> bool:
    """Whether no process with id `pid` runs on this machine.

    Args:
        pid: int, or None for "unknown owner" (counted as gone).

    Returns:
        True if `pid` is None, not positive, or names no running process; a
        process of another user counts as running.
    """
    if pid is None or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    except OverflowError:
        return True
    return False


def write_whole(path: str | os.PathLike, write: Callable[[pathlib.Path], object]) -> pathlib.Path:
    """Writes a file through a temporary name beside it, renamed over it once complete.

    `write(tmp)` writes the file at `tmp` (`.<pid>.tmp.<name>`: same folder,
    same suffix, so `model.save_weights` and `model.save` accept it); only
    then is it renamed over `path` (`os.replace`). An error or a kill while
    writing leaves `path` as it was, never half-written.

    Args:
        path: the file to write.
        write: callable taking the temporary path.

    Returns:
        `path` as a `pathlib.Path`.

    Example:

    >>> import tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> write_whole(target, lambda tmp: tmp.write_text("done")).read_text()
    'done'
    """
    path = pathlib.Path(path)
    tmp = path.with_name(f".{os.getpid()}.tmp.{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def replace_folder(new: pathlib.Path, target: pathlib.Path, *, overwrite: bool) -> None:
    """Moves the complete folder `new` to `target`, replacing `target` in one step.

    `new` must live in a scratch folder of its own (its parent, on the same
    filesystem as `target`), which the caller removes afterwards: an
    existing `target` ends up there. Where Linux `renameat2(RENAME_EXCHANGE)`
    exists the two folders are swapped atomically, so `target` is complete
    at every instant; elsewhere the old folder waits in
    `<scratch>/old` (`STASH_NAME`) for the instant between two renames and
    is put back if the second fails.

    Args:
        new: the folder to move into place.
        target: where it goes.
        overwrite: bool. Replace an existing `target`.

    Raises:
        FileExistsError: `target` exists and `overwrite` is false.
        OSError: a rename failed (`target` is then as it was).
    """
    new, target = pathlib.Path(new), pathlib.Path(target)
    if not target.exists():
        # A directory created meanwhile is replaced only if empty: rename
        # refuses to replace a non-empty one.
        os.rename(new, target)
        return
    if not overwrite:
        raise FileExistsError(f"{target} already exists")
    if exchange_paths(new, target):
        return
    logger.warning(
        "This system cannot swap two folders in one step: %s is missing for an instant.", target
    )
    old = new.parent / STASH_NAME
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise


def exchange_paths(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def mark_owned(folder: str | os.PathLike, kind: str, *, files: Iterable[str] = ()) -> None:
    """Writes the marker that proves the package wrote `folder` (replacing an older one).

    Args:
        folder: a folder the package created (or, for `record_files`, writes into).
        kind: str. What the folder is, e.g. `"frame cache"`; checks ask for it.
        files: names of plain files in `folder` the package writes.

    Example:

    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> mark_owned(folder, "demo", files=["log.csv"])
    >>> owned_record(folder)["kind"], owned_record(folder)["files"]
    ('demo', ['log.csv'])
    """
    record = {"written_by": _WRITER, "kind": kind, "host": socket.gethostname(),
              "pid": os.getpid(), "files": sorted(set(files))}
    write_whole(pathlib.Path(folder) / OWNED_MARKER,
                lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))


def owned_record(folder: str | os.PathLike) -> dict | None:
    """The marker of `folder`, or None when nothing proves the package wrote it.

    Returns:
        The marker's record (`kind`, `host`, `pid`, `files`), or None when
        `folder` is not a real folder (missing, a file, a symbolic link) or
        holds no readable marker of this package.
    """
    folder = pathlib.Path(folder)
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
        marker = folder / OWNED_MARKER
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return None
        with open(marker, "rb") as f:
            data = f.read(_MAX_MARKER_BYTES + 1)
        record = json.loads(data) if len(data) <= _MAX_MARKER_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    if (not isinstance(record, dict) or record.get("written_by") != _WRITER
            or not isinstance(record.get("kind"), str)
            or not isinstance(record.get("files"), list)):
        return None
    return record


def check_replaceable(
    path: str | os.PathLike, kind: str, *, overwrite: bool, hint: str = "pass overwrite=True (`--overwrite`)"
) -> bool:
    """Checks that `path` is free, or a folder of `kind` the package wrote that may be replaced.

    Args:
        path: the folder about to be written.
        kind: str. The kind its marker must name (`mark_owned`).
        overwrite: bool. Whether an existing folder of the package may be replaced.
        hint: str. What to do to replace it, for the message.

    Returns:
        True if `path` exists (and may be replaced), False if it is free.

    Raises:
        ExistingPathError: `path` exists and is a file, a symbolic link, a
            folder without the package's marker of `kind`, or one with it
            while `overwrite` is false; one line naming `path`.
    """
    path = pathlib.Path(path)
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_dir():
        what = "a symbolic link" if path.is_symlink() else "not a folder"
        raise ExistingPathError(
            f"{path} is {what}, so it was not written here as a {kind}; it is left as it "
            "is: remove it yourself or choose another path"
        )
    record = owned_record(path)
    if record is None or record["kind"] != kind:
        raise ExistingPathError(
            f"{path} exists and is not a {kind} written by mrrn_keras (no {OWNED_MARKER} "
            "marker); it is left as it is: move it away or choose another path"
        )
    if not overwrite:
        raise ExistingPathError(f"{path} already exists: {hint} to replace it")
    return True


def remove_owned(folder: str | os.PathLike, kind: str) -> None:
    """Removes `folder` (if it exists) once its marker proves it is a `kind` the package wrote.

    Raises:
        ExistingPathError: `folder` is not such a folder (see `check_replaceable`).
    """
    if check_replaceable(folder, kind, overwrite=True):
        shutil.rmtree(folder)


def own_folder(folder: str | os.PathLike, kind: str) -> bool:
    """Creates `folder` with the package's marker, or accepts one the package wrote.

    Returns:
        True if `folder` already existed as a `kind` the package wrote
        (e.g. resume state), False if it was created now.

    Raises:
        ExistingPathError: `folder` exists but is not such a folder.
    """
    folder = pathlib.Path(folder)
    if check_replaceable(folder, kind, overwrite=True):
        return True
    folder.mkdir(parents=True)
    mark_owned(folder, kind)
    return False


def record_files(folder: str | os.PathLike, kind: str, names: Iterable[str]) -> None:
    """Records in `folder`'s marker the plain files the package is about to write there.

    Files the package writes into a folder it did not create (a run
    folder) are proven its own by this record: an existing file that is
    not in it is refused, before anything is written.

    Args:
        folder: an existing folder.
        kind: str. The kind of the folder's marker.
        names: file names in `folder`.

    Raises:
        ExistingPathError: one of `names` exists in `folder` and the marker
            does not record it (naming the file).
    """
    folder = pathlib.Path(folder)
    record = owned_record(folder)
    recorded = set(record["files"]) if record is not None and record["kind"] == kind else set()
    names = set(names)
    for name in sorted(names - recorded):
        if os.path.lexists(folder / name):
            raise ExistingPathError(
                f"{folder / name} exists and was not written by mrrn_keras here (it is not "
                f"recorded in {folder / OWNED_MARKER}); it is left as it is: move it away or "
                "choose another folder"
            )
    if not names <= recorded:
        mark_owned(folder, kind, files=recorded | names)


def is_stale_temp(folder: str | os.PathLike, kind: str) -> bool:
    """Whether `folder` is a temporary `kind` folder of the package left by a killed process.

    Returns:
        True when its marker names `kind` and either a process of this host
        that is gone, or (another host, or a reused pid) it has not changed
        for `STALE_TEMP_S`; False for anything else, a folder without the
        marker included.
    """
    record = owned_record(folder)
    if record is None or record["kind"] != kind:
        return False
    try:
        age = time.time() - os.lstat(pathlib.Path(folder) / OWNED_MARKER).st_mtime
    except OSError:
        return False
    pid = record.get("pid")
    here = record.get("host") == socket.gethostname() and isinstance(pid, int)
    return (here and process_is_gone(pid)) or age > STALE_TEMP_S


def scratch_folder(parent: str | os.PathLike, prefix: str) -> pathlib.Path:
    """A fresh, marked temporary folder `<prefix><random>` in `parent`.

    The marked temporary folders with this prefix that killed processes
    left there are removed first (`is_stale_temp`); nothing else is.

    Args:
        parent: an existing folder (the one the result will be moved into).
        prefix: str. The start of the folder's name, e.g. `".cache.tmp"`.

    Returns:
        The new folder's path.
    """
    parent = pathlib.Path(parent)
    remove_stale_temps(parent, prefix)
    folder = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        mark_owned(folder, TEMP_KIND)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def remove_stale_temps(parent: str | os.PathLike, prefix: str, kind: str = TEMP_KIND) -> None:
    """Removes the folders `<prefix>*` in `parent` that `is_stale_temp` says killed processes left."""
    try:
        names = [name for name in os.listdir(parent) if name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        path = pathlib.Path(parent) / name
        if is_stale_temp(path, kind):
            shutil.rmtree(path, ignore_errors=True)
            logger.info("Removed %s, left by a killed process", path)
