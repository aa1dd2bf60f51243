"""Writing files safely: names checked, paths kept inside their folder, folders replaced
in one step, owners of temporaries.

Untrusted input (a remote zoo entry, a URL) may suggest a file name; before
the package writes anything under such a name, `is_safe_name` checks it is
one plain name (no separators, no `..`, nothing hidden) and `is_inside`
checks that the path, symbolic links resolved, stays inside the folder it
belongs to. Temporary files and folders carry the id of the process that
writes them, so a later run can tell those of a killed process
(`process_is_gone`) from those still being written.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import pathlib
import re
from collections.abc import Callable

logger = logging.getLogger(__name__)

# One plain file name: letters, digits and `._+-`, not starting with a dot
# (no hidden files, no `.` or `..`), at most 200 characters.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# Where `replace_folder` leaves a replaced folder for the instant between two
# renames, inside the scratch folder of the new one.
STASH_NAME = "old"


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
